//! `Shard`: all admission state of one provider/model endpoint behind one mutex — static cap,
//! per-domain adaptive limits, the fair waiter queue, the active-lease ledger and the cooldown /
//! ramp timer. Different endpoints never share a lock.
//!
//! Every public operation locks once, mutates, collects its side effects (events, waiter wake-ups,
//! a timer action) into `Effects`, unlocks, and only then applies them.

use crate::config::RequestAdmissionConfig;
use crate::events::PendingEvent;
use crate::lease::{
    RequestAdmissionDecision, RequestAdmissionDenied, RequestAdmissionError, RequestAdmissionItem,
    RequestAdmissionLease,
};
use crate::ledger::{Grant, Ledger};
use crate::limit::{DomainLimit, ReleaseFacts, Transition};
use crate::timer::{self, TimerAction, TimerState};
use crate::waiters::{PendingWaiter, WaiterState, Waiters, WakeHandle};
use parking_lot::{Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;
use weir_contracts::payload::{
    LimitChangeCause, LimitChanged, RequestEffectiveCapChanged, RequestResourceRegistered,
    RequestWaitCompleted,
};
use weir_contracts::RequestEventPayload;
use weir_contracts::{
    CapMergeRule, ControllerGeneration, LeaseId, ProviderModelKey, ProviderModelPressureSnapshot,
    ProviderModelStaticCap, ReleaseReason, ReleaseResult, RequestAdmissionDenyReason,
    RequestDomain, RequestEventContext, RequestEventKind, RequestPressureSnapshot,
    RequestReleaseOutcome, RequestReleaseOutcomeKind, RequestResourceKey,
};
use weir_telemetry::{MonotonicClock, RequestEventStream};

const REJECT_REASONS: [ReleaseReason; 4] = [
    ReleaseReason::Duplicate,
    ReleaseReason::StaleLease,
    ReleaseReason::WrongControllerGeneration,
    ReleaseReason::UnknownLease,
];

/// Controller-wide state every shard reads.
pub(crate) struct Shared {
    pub generation: ControllerGeneration,
    pub config: RequestAdmissionConfig,
    pub events: RequestEventStream,
    pub clock: MonotonicClock,
    pub shutdown: AtomicBool,
    /// Rejected releases by reason (index into `REJECT_REASONS`).
    rejected: [AtomicU64; 4],
    snapshot_sequence: AtomicU64,
}

impl Shared {
    pub fn new(
        generation: ControllerGeneration,
        config: RequestAdmissionConfig,
        events: RequestEventStream,
    ) -> Self {
        let clock = events.clock();
        Self {
            generation,
            config,
            events,
            clock,
            shutdown: AtomicBool::new(false),
            rejected: Default::default(),
            snapshot_sequence: AtomicU64::new(0),
        }
    }

    pub fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Counts a rejected release and emits `request_release_diagnostic`.
    pub fn reject_release(
        &self,
        reason: ReleaseReason,
        lease_id: LeaseId,
        resource: &RequestResourceKey,
    ) -> ReleaseResult {
        if let Some(i) = REJECT_REASONS.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
        if self
            .events
            .wants(RequestEventKind::RequestReleaseDiagnostic)
        {
            PendingEvent::new(RequestEventKind::RequestReleaseDiagnostic)
                .resource(resource)
                .lease(lease_id)
                .reason(reason.as_str())
                .emit(&self.events);
        }
        let mut result = ReleaseResult::rejected(reason);
        result
            .diagnostics
            .insert("lease_id".to_string(), lease_id.to_string());
        result
    }

    /// Rejected releases by reason (non-zero entries).
    pub fn leak_diagnostics(&self) -> BTreeMap<ReleaseReason, u64> {
        REJECT_REASONS
            .iter()
            .zip(&self.rejected)
            .filter_map(|(r, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((*r, n))
            })
            .collect()
    }

    fn next_snapshot_sequence(&self) -> u64 {
        self.snapshot_sequence.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Side effects applied after the shard lock is released.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    events: Vec<PendingEvent>,
    wakes: Vec<WakeHandle>,
    timer: TimerAction,
}

/// Why a domain cannot admit right now (small; the hot path's error type).
#[derive(Debug, Clone, Copy)]
struct Block {
    reason: RequestAdmissionDenyReason,
    available_after: Option<Instant>,
}

impl Block {
    fn of(reason: RequestAdmissionDenyReason) -> Self {
        Self {
            reason,
            available_after: None,
        }
    }
}

impl From<Block> for Denial {
    fn from(b: Block) -> Self {
        Self {
            reason: b.reason,
            available_after: b.available_after,
            snapshot: None,
            diagnostics: BTreeMap::new(),
        }
    }
}

/// A denial decided under the lock (the item is attached outside).
#[derive(Debug, Clone)]
struct Denial {
    reason: RequestAdmissionDenyReason,
    available_after: Option<Instant>,
    snapshot: Option<RequestPressureSnapshot>,
    diagnostics: BTreeMap<String, String>,
}

impl Denial {
    fn of(reason: RequestAdmissionDenyReason) -> Self {
        Self {
            reason,
            available_after: None,
            snapshot: None,
            diagnostics: BTreeMap::new(),
        }
    }

    fn into_denied(
        self,
        item: RequestAdmissionItem,
        clock: &MonotonicClock,
        now: Instant,
    ) -> RequestAdmissionDenied {
        RequestAdmissionDenied {
            item,
            reason: self.reason,
            retry_after_seconds: self
                .available_after
                .map(|a| a.saturating_duration_since(now).as_secs_f64()),
            available_after_monotonic: self.available_after.map(|a| clock.seconds_at(a)),
            snapshot: self.snapshot,
            diagnostics: self.diagnostics,
        }
    }
}

/// Mutable state of one endpoint.
struct ShardState {
    aliases: BTreeMap<String, u32>,
    static_cap: u32,
    domains: [Option<DomainLimit>; 4],
    ledger: Ledger,
    waiters: Waiters,
    timer: TimerState,
}

/// One provider/model endpoint.
/// Test hook run before a batch of effects is emitted (a no-op outside unit tests, where it
/// widens the emission race window on purpose).
#[cfg(not(test))]
#[inline(always)]
fn before_emit(_events: &[PendingEvent]) {}

pub(crate) struct Shard {
    index: u64,
    key: ProviderModelKey,
    pub(crate) shared: Arc<Shared>,
    state: Mutex<ShardState>,
    /// Event order. Effects are formed under `state` but emitted after it is released, so two
    /// threads could emit in the opposite order: a waiter's `request_wait_completed` (formed by
    /// the releasing thread) could reach the sinks, and take its timestamp, before the waiter's
    /// own `request_wait_started`. Every operation that emits takes this lock *before* `state`
    /// and holds it until its effects are out, so a shard's events reach the sinks in the order
    /// they were formed. Taken only when some sink is attached.
    emission: Mutex<()>,
    timer_notify: Notify,
    runtime: OnceLock<Handle>,
}

fn di(d: RequestDomain) -> usize {
    d as usize
}

/// Outcome of the first, immediate admission attempt of a waiting acquire.
pub(crate) enum Start {
    Lease(RequestAdmissionLease),
    Denied(Box<RequestAdmissionDenied>),
    /// Boxed so the fast path (and the acquire future) stays small.
    Queued(Box<Queued>),
}

/// A waiter that was enqueued by [`Shard::start`].
pub(crate) struct Queued {
    shard: Arc<Shard>,
    item: RequestAdmissionItem,
    slot: u32,
    id: u64,
    deadline: Option<Instant>,
    wake: WakeHandle,
}

/// How a wait ended.
enum WaitEnd {
    Granted(Grant),
    Denied(Denial),
}

/// Removes an abandoned waiter (or releases its unclaimed grant) when an acquire is dropped.
struct WaiterGuard<'a> {
    shard: &'a Arc<Shard>,
    slot: u32,
    id: u64,
    armed: bool,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shard.cancel_waiter(self.slot, self.id);
        }
    }
}

impl Shard {
    pub fn new(index: u64, key: ProviderModelKey, shared: Arc<Shared>) -> Self {
        Self {
            index,
            key,
            shared,
            state: Mutex::new(ShardState {
                aliases: BTreeMap::new(),
                static_cap: 0,
                domains: [None, None, None, None],
                ledger: Ledger::new(index),
                waiters: Waiters::default(),
                timer: TimerState::default(),
            }),
            emission: Mutex::new(()),
            timer_notify: Notify::new(),
            runtime: OnceLock::new(),
        }
    }

    /// The endpoint.
    pub fn key(&self) -> &ProviderModelKey {
        &self.key
    }

    fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state.lock()
    }

    /// The emission-order guard (see `emission`); `None` when no sink is attached.
    fn event_order(&self) -> Option<MutexGuard<'_, ()>> {
        self.shared
            .events
            .is_enabled()
            .then(|| self.emission.lock())
    }

    /// The one way an operation touches the shard: (emission order →) lock → apply `f` →
    /// unlock → emit the events `f` collected, wake its waiters, act on the timer.
    fn locked<R>(self: &Arc<Self>, f: impl FnOnce(&mut ShardState, &mut Effects) -> R) -> R {
        let order = self.event_order();
        let mut fx = Effects::default();
        let result = {
            let mut st = self.lock();
            f(&mut st, &mut fx)
        };
        self.finish(fx);
        drop(order);
        result
    }

    /// Applies effects collected under the lock (call with no lock held).
    fn finish(self: &Arc<Self>, fx: Effects) {
        before_emit(&fx.events);
        for e in fx.events {
            e.emit(&self.shared.events);
        }
        for w in fx.wakes {
            w.wake();
        }
        match fx.timer {
            TimerAction::None => {}
            TimerAction::Notify => self.timer_notify.notify_one(),
            TimerAction::Spawn(epoch) => self.spawn_timer(epoch),
        }
    }

    /// Turns a grant into the caller's lease; the lease owns (moves in) this `Arc`.
    fn lease_from_grant(
        self: Arc<Self>,
        item: RequestAdmissionItem,
        g: Grant,
    ) -> RequestAdmissionLease {
        RequestAdmissionLease {
            lease_id: LeaseId::new(self.shared.generation, g.counter),
            item,
            acquired_at: g.acquired_at,
            current_adaptive_limit: g.limit,
            admitted_in_flight: g.in_flight,
            effective_max: g.effective_max,
            slot: g.slot,
            shard: self,
            armed: true,
        }
    }

    // ----- registration -------------------------------------------------------------------

    /// Upserts an alias cap; the endpoint's static cap is the minimum over its aliases.
    pub fn register_alias(
        self: &Arc<Self>,
        alias: &str,
        max_parallel_requests: u32,
    ) -> ProviderModelStaticCap {
        let now = Instant::now();
        let cap = self.locked(|st, fx| {
            let previous = st.static_cap;
            st.aliases
                .insert(alias.to_string(), max_parallel_requests.max(1));
            st.static_cap = st.aliases.values().copied().min().unwrap_or(1).max(1);
            let current = st.static_cap;
            if current != previous {
                st.rebase_limits(&self.shared, now);
            }
            let chat = self.key.with_domain(RequestDomain::Chat);
            if self
                .shared
                .events
                .wants(RequestEventKind::RequestResourceRegistered)
            {
                fx.events.push(
                    PendingEvent::of(RequestEventPayload::RequestResourceRegistered(
                        RequestResourceRegistered {
                            alias: alias.to_string(),
                            provider_model: self.key.to_string(),
                            max_parallel_requests,
                        },
                    ))
                    .resource(&chat),
                );
            }
            if current != previous
                && self
                    .shared
                    .events
                    .wants(RequestEventKind::RequestEffectiveCapChanged)
            {
                fx.events.push(
                    PendingEvent::of(RequestEventPayload::RequestEffectiveCapChanged(
                        RequestEffectiveCapChanged { previous, current },
                    ))
                    .resource(&chat),
                );
            }
            st.admit_waiters(&self.shared, now, fx);
            st.plan_timer(&self.shared, now, fx);
            st.static_cap_info()
        });
        cap
    }

    // ----- acquisition --------------------------------------------------------------------

    /// Non-blocking: a lease now, or a denial; never queues and never jumps an eligible waiter.
    // The denial is boxed by the caller once the lock is released; under it stays unboxed.
    #[allow(clippy::result_large_err)]
    pub fn try_acquire(self: Arc<Self>, item: RequestAdmissionItem) -> RequestAdmissionDecision {
        let now = Instant::now();
        let result = self.locked(|st, fx| {
            let d = item.resource.domain;
            st.ensure_domain(&self.shared, &item.resource, now);
            let verdict = match st.check(&self.shared, d, now, fx) {
                Err(block) => Err(Denial::from(block)),
                Ok(()) if st.has_eligible_waiter(&self.shared, now, fx) => {
                    Err(Denial::of(RequestAdmissionDenyReason::QueuedWaitersAhead))
                }
                Ok(()) => Ok(st.admit(&self.shared, d, now)),
            };
            match verdict {
                Ok(grant) => {
                    st.immediate_events(&self.shared, &item, grant, fx);
                    Ok(grant)
                }
                Err(mut denial) => {
                    st.enrich_denial(&self.shared, d, now, &mut denial);
                    st.denied_event(
                        &self.shared,
                        &item,
                        &denial,
                        RequestEventKind::RequestAcquireDenied,
                        fx,
                    );
                    Err(denial)
                }
            }
        });
        match result {
            Ok(grant) => RequestAdmissionDecision::Lease(self.lease_from_grant(item, grant)),
            Err(denial) => RequestAdmissionDecision::Denied(Box::new(denial.into_denied(
                item,
                &self.shared.clock,
                now,
            ))),
        }
    }

    /// First step of every waiting acquire: admit now, deny, or enqueue.
    pub fn start(self: Arc<Self>, item: RequestAdmissionItem, blocking: bool) -> Start {
        let now = Instant::now();
        let timeout = item
            .queue_wait_timeout
            .or_else(|| self.shared.config.default_queue_wait_timeout());
        // An absurd timeout (e.g. `Duration::MAX` for "forever") means no deadline, not a panic.
        let deadline = timeout.and_then(|t| now.checked_add(t));
        let result = self.locked(|st, fx| {
            let d = item.resource.domain;
            st.ensure_domain(&self.shared, &item.resource, now);
            // Catch up on cooldown ends / ramp steps first: queued waiters go before this item.
            st.admit_waiters(&self.shared, now, fx);
            match st.check(&self.shared, d, now, fx) {
                Ok(()) => {
                    let grant = st.admit(&self.shared, d, now);
                    st.immediate_events(&self.shared, &item, grant, fx);
                    Ok(Ok(grant))
                }
                Err(block) if block.reason == RequestAdmissionDenyReason::Shutdown => {
                    let mut denial = Denial::from(block);
                    st.enrich_denial(&self.shared, d, now, &mut denial);
                    st.denied_event(
                        &self.shared,
                        &item,
                        &denial,
                        RequestEventKind::RequestAcquireDenied,
                        fx,
                    );
                    Ok(Err(denial))
                }
                Err(last) if timeout == Some(Duration::ZERO) => {
                    // A zero queue-wait timeout means "try once".
                    let mut denial = Denial::of(RequestAdmissionDenyReason::QueueTimeout);
                    denial
                        .diagnostics
                        .insert("last_denial".to_string(), last.reason.as_str().to_string());
                    st.enrich_denial(&self.shared, d, now, &mut denial);
                    st.denied_event(
                        &self.shared,
                        &item,
                        &denial,
                        RequestEventKind::RequestWaitTimeout,
                        fx,
                    );
                    Ok(Err(denial))
                }
                Err(_) => {
                    // Only a waiter that really queues pays for its wake-up handle.
                    let wake = if blocking {
                        st.waiters.blocking += 1;
                        WakeHandle::Thread(std::thread::current())
                    } else {
                        WakeHandle::Task(Arc::new(Notify::new()))
                    };
                    let (slot, id) =
                        st.enqueue(&self.shared, &item, wake.clone(), deadline, now, fx);
                    st.plan_timer(&self.shared, now, fx);
                    Err((slot, id, wake))
                }
            }
        });
        match result {
            Ok(Ok(grant)) => Start::Lease(self.lease_from_grant(item, grant)),
            Ok(Err(denial)) => {
                Start::Denied(Box::new(denial.into_denied(item, &self.shared.clock, now)))
            }
            Err((slot, id, wake)) => Start::Queued(Box::new(Queued {
                shard: self,
                item,
                slot,
                id,
                deadline,
                wake,
            })),
        }
    }

    /// Waits for a queued waiter's lease; see `AdaptiveRequestAdmissionController::acquire`.
    pub async fn wait(queued: Box<Queued>) -> Result<RequestAdmissionLease, RequestAdmissionError> {
        let Queued {
            shard,
            item,
            slot,
            id,
            deadline,
            wake,
        } = *queued;
        let WakeHandle::Task(notify) = wake else {
            unreachable!("invariant: start(blocking = false) queues a task waker")
        };
        // Remember a runtime for the cooldown timer, in case a later release that arms it
        // happens on a thread outside any runtime.
        if shard.runtime.get().is_none() {
            if let Ok(handle) = Handle::try_current() {
                let _ = shard.runtime.set(handle);
            }
        }
        let mut guard = WaiterGuard {
            shard: &shard,
            slot,
            id,
            armed: true,
        };
        let end = loop {
            let timed_out = match deadline {
                Some(deadline) => {
                    tokio::select! {
                        biased;
                        () = notify.notified() => false,
                        () = tokio::time::sleep_until(deadline) => true,
                    }
                }
                None => {
                    notify.notified().await;
                    false
                }
            };
            if let Some(end) = shard.poll_waiter(slot, id, timed_out) {
                break end;
            }
        };
        guard.armed = false;
        drop(guard);
        shard.end_wait(item, end)
    }

    /// Blocking variant of [`Shard::wait`] for threads outside any tokio runtime.
    pub fn acquire_blocking(
        self: Arc<Self>,
        item: RequestAdmissionItem,
    ) -> Result<RequestAdmissionLease, RequestAdmissionError> {
        let q = match self.start(item, true) {
            Start::Lease(lease) => return Ok(lease),
            Start::Denied(d) => return Err(RequestAdmissionError::Denied(d)),
            Start::Queued(q) => q,
        };
        let Queued {
            shard: this,
            item,
            slot,
            id,
            deadline,
            ..
        } = *q;
        let this = &this;
        let mut guard = WaiterGuard {
            shard: this,
            slot,
            id,
            armed: true,
        };
        let end = loop {
            let now = Instant::now();
            let timed_out = deadline.is_some_and(|d| now >= d);
            // Blocking waiters are their own timers: they may run where no tokio timer exists.
            let (end, next_wake) = this.locked(|st, fx| {
                st.admit_waiters(&this.shared, now, fx);
                let end = st.settle_waiter(&this.shared, slot, id, timed_out, now, fx);
                let next = st.next_wake(&this.shared, now, fx);
                (end, next)
            });
            if let Some(end) = end {
                break end;
            }
            let wake_at = match (deadline, next_wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake_at {
                Some(at) => std::thread::park_timeout(at.saturating_duration_since(Instant::now())),
                None => std::thread::park(),
            }
        };
        guard.armed = false;
        drop(guard);
        Arc::clone(this).end_wait(item, end)
    }

    fn end_wait(
        self: Arc<Self>,
        item: RequestAdmissionItem,
        end: WaitEnd,
    ) -> Result<RequestAdmissionLease, RequestAdmissionError> {
        match end {
            WaitEnd::Granted(g) => Ok(self.lease_from_grant(item, g)),
            WaitEnd::Denied(denial) => {
                let now = Instant::now();
                Err(RequestAdmissionError::Denied(Box::new(denial.into_denied(
                    item,
                    &self.shared.clock,
                    now,
                ))))
            }
        }
    }

    /// Checks a woken waiter; `Some` when its wait is over.
    fn poll_waiter(self: &Arc<Self>, slot: u32, id: u64, timed_out: bool) -> Option<WaitEnd> {
        let now = Instant::now();
        self.locked(|st, fx| st.settle_waiter(&self.shared, slot, id, timed_out, now, fx))
    }

    /// Drop path of an abandoned acquire: remove the waiter, or release its unclaimed grant.
    fn cancel_waiter(self: &Arc<Self>, slot: u32, id: u64) {
        let now = Instant::now();
        self.locked(|st, fx| {
            let Some(w) = st.waiters.remove(slot, id) else {
                return;
            };
            let info = w.event_info.as_deref();
            let resource = st.domains[di(w.domain)]
                .as_ref()
                .map(|s| s.resource.clone());
            match w.state {
                WaiterState::Queued => {
                    st.waiters.queue.remove(id);
                    st.dec_waiters(
                        &self.shared,
                        w.domain,
                        info,
                        fx,
                        |e| e.reason(RequestAdmissionDenyReason::Cancellation.as_str()),
                        RequestEventKind::RequestWaitCancelled,
                    );
                    // The removed waiter may have been its group's head, blocking an eligible
                    // waiter behind it: admit now, or nothing would.
                    st.admit_waiters(&self.shared, now, fx);
                    st.plan_timer(&self.shared, now, fx);
                }
                WaiterState::Granted(g) => {
                    if let Some(resource) = resource {
                        if self
                            .shared
                            .events
                            .wants(RequestEventKind::RequestWaitCancelled)
                        {
                            fx.events.push(
                                PendingEvent::new(RequestEventKind::RequestWaitCancelled)
                                    .resource(&resource)
                                    .group(info.map(|i| &i.0))
                                    .context(info.map(|i| &i.1))
                                    .lease(LeaseId::new(self.shared.generation, g.counter))
                                    .reason(RequestAdmissionDenyReason::Cancellation.as_str()),
                            );
                        }
                        let ctx = EventRefs {
                            resource: &resource,
                            group: info.map(|i| &i.0),
                            context: info.map(|i| &i.1),
                        };
                        st.release_locked(
                            &self.shared,
                            g.slot,
                            g.counter,
                            w.domain,
                            (g.limit, g.in_flight),
                            &RequestReleaseOutcome::local_cancelled(),
                            ctx,
                            Now::At(now),
                            g.acquired_at,
                            fx,
                        );
                    }
                }
                WaiterState::Denied(_) => {}
            }
        });
    }

    // ----- release ------------------------------------------------------------------------

    /// Releases `lease` (whose generation matches) exactly once.
    pub fn release(
        self: &Arc<Self>,
        lease: &RequestAdmissionLease,
        outcome: &RequestReleaseOutcome,
    ) -> ReleaseResult {
        match self.release_inner(lease, outcome) {
            Ok(()) => ReleaseResult::released(),
            Err(reason) => self
                .shared
                .reject_release(reason, lease.lease_id, &lease.item.resource),
        }
    }

    /// Drop-guard path: releases as `local_cancelled` if the lease is still active, else nothing.
    pub fn release_dropped(self: &Arc<Self>, lease: &RequestAdmissionLease) {
        let _ = self.release_inner(lease, &RequestReleaseOutcome::local_cancelled());
    }

    fn release_inner(
        self: &Arc<Self>,
        lease: &RequestAdmissionLease,
        outcome: &RequestReleaseOutcome,
    ) -> Result<(), ReleaseReason> {
        let counter = lease.lease_id.counter;
        let domain = lease.item.resource.domain;
        self.locked(|st, fx| match st.ledger.leases.get(lease.slot, counter) {
            Some(active) if active.domain == domain => {
                let refs = EventRefs {
                    resource: &lease.item.resource,
                    group: Some(&lease.item.group.key),
                    context: Some(&lease.item.event_context),
                };
                st.release_locked(
                    &self.shared,
                    lease.slot,
                    counter,
                    domain,
                    (lease.current_adaptive_limit, lease.admitted_in_flight),
                    outcome,
                    refs,
                    Now::Lazy(lease.acquired_at),
                    lease.acquired_at,
                    fx,
                );
                Ok(())
            }
            Some(_) => Err(ReleaseReason::StaleLease),
            None => Err(st.ledger.classify_inactive(self.index, counter)),
        })
    }

    // ----- shutdown -----------------------------------------------------------------------

    /// Denies every queued waiter with `shutdown` (the controller flag is already set).
    pub fn shutdown(self: &Arc<Self>) {
        self.locked(|st, fx| {
            for w in st.waiters.queue.drain() {
                let Some(p) = st.waiters.pending.get_mut(w.slot, w.id) else {
                    continue;
                };
                p.state = WaiterState::Denied(RequestAdmissionDenyReason::Shutdown);
                let wake = p.wake.clone();
                let info = p.event_info.take();
                fx.wakes.push(wake);
                st.dec_waiters(
                    &self.shared,
                    w.domain,
                    info.as_deref(),
                    fx,
                    |e| e.reason(RequestAdmissionDenyReason::Shutdown.as_str()),
                    RequestEventKind::RequestAcquireDenied,
                );
            }
            if st.timer.running {
                fx.timer = TimerAction::Notify;
            }
        });
    }

    // ----- timer --------------------------------------------------------------------------

    fn spawn_timer(self: &Arc<Self>, epoch: u64) {
        let handle = Handle::try_current()
            .ok()
            .or_else(|| self.runtime.get().cloned());
        match handle {
            Some(h) => {
                h.spawn(timer::timer_loop(Arc::downgrade(self), epoch));
            }
            None => {
                // No runtime anywhere: blocking waiters time themselves.
                self.lock().timer.stopped(epoch);
            }
        }
    }

    /// One timer wake-up: admit whatever time made eligible; the next wake-up, if any.
    pub(crate) fn timer_tick(self: &Arc<Self>, epoch: u64) -> Option<Instant> {
        let now = Instant::now();
        self.locked(|st, fx| {
            if st.timer.epoch != epoch || !st.timer.running {
                return None;
            }
            st.admit_waiters(&self.shared, now, fx);
            let next = st.next_wake(&self.shared, now, fx);
            st.timer.armed = next;
            if next.is_none() {
                st.timer.running = false;
            }
            next
        })
    }

    /// The timer task of `epoch` ended.
    pub(crate) fn timer_stopped(&self, epoch: u64) {
        self.lock().timer.stopped(epoch);
    }

    /// Resolves when an operation re-armed the timer earlier.
    pub(crate) async fn timer_notified(&self) {
        self.timer_notify.notified().await;
    }

    // ----- snapshots ----------------------------------------------------------------------

    pub fn snapshot(&self, domain: RequestDomain) -> Option<RequestPressureSnapshot> {
        let st = self.lock();
        st.domains[di(domain)].as_ref()?;
        Some(st.resource_snapshot(&self.shared, domain, Instant::now()))
    }

    pub fn snapshots(&self) -> Vec<RequestPressureSnapshot> {
        let st = self.lock();
        let now = Instant::now();
        RequestDomain::ALL
            .iter()
            .filter(|d| st.domains[di(**d)].is_some())
            .map(|d| st.resource_snapshot(&self.shared, *d, now))
            .collect()
    }

    pub fn global_snapshot(&self) -> ProviderModelPressureSnapshot {
        let st = self.lock();
        let now = Instant::now();
        let ramp = self.shared.config.startup_ramp();
        ProviderModelPressureSnapshot {
            captured_at: self.shared.clock.seconds_at(now),
            sequence: self.shared.next_snapshot_sequence(),
            provider_model: self.key.clone(),
            static_cap: st.static_cap,
            aggregate_in_flight: st.ledger.in_flight,
            max_aggregate_in_flight: st.ledger.max_in_flight,
            aggregate_active_lease_count: st.ledger.leases.len() as u32,
            aggregate_waiters: st.waiters.queue.view().queued_total as u32,
            aliases: st.aliases.keys().cloned().collect(),
            raw_caps: st.aliases.clone(),
            domains: st
                .domains
                .iter()
                .flatten()
                .map(|s| {
                    let target = st.initial_limit(&self.shared, &s.resource);
                    let limit = s.limit_at(target, ramp, now);
                    (s.resource.domain, limit)
                })
                .collect(),
        }
    }

    pub fn static_cap(&self) -> ProviderModelStaticCap {
        self.lock().static_cap_info()
    }
}

/// The release time: known, or read only when some rule needs it.
#[derive(Debug, Clone, Copy)]
enum Now {
    At(Instant),
    /// Read the clock if needed; otherwise use this (stale but harmless) instant.
    Lazy(Instant),
}

mod emit;

/// Borrowed event data of one lease.
#[derive(Clone, Copy)]
struct EventRefs<'a> {
    resource: &'a RequestResourceKey,
    group: Option<&'a RequestResourceKey>,
    context: Option<&'a RequestEventContext>,
}

impl ShardState {
    fn effective_max(&self, shared: &Shared, resource: &RequestResourceKey) -> u32 {
        let cap = self.static_cap.max(1);
        let clamp = shared
            .config
            .max_limit_clamps
            .get(resource)
            .copied()
            .unwrap_or(cap);
        cap.min(clamp).max(1)
    }

    fn initial_limit(&self, shared: &Shared, resource: &RequestResourceKey) -> u32 {
        let eff = self.effective_max(shared, resource);
        shared
            .config
            .initial_limits
            .get(resource)
            .copied()
            .unwrap_or(eff)
            .clamp(1, eff)
    }

    fn static_cap_info(&self) -> ProviderModelStaticCap {
        ProviderModelStaticCap {
            cap: self.static_cap.max(1),
            aliases: self.aliases.keys().cloned().collect(),
            raw_caps: self
                .aliases
                .iter()
                .map(|(k, v)| (k.clone(), Some(*v)))
                .collect(),
            merge_rule: CapMergeRule::MinSameEndpoint,
        }
    }

    /// Creates the domain's state on first touch (the startup ramp starts then).
    fn ensure_domain(&mut self, shared: &Shared, resource: &RequestResourceKey, now: Instant) {
        let i = di(resource.domain);
        if self.domains[i].is_none() {
            let initial = self.initial_limit(shared, resource);
            let config = &shared.config;
            let state = DomainLimit::new(
                resource.clone(),
                initial,
                config.initial_limits.contains_key(resource),
                config,
                config
                    .latency_saturation
                    .get(&resource.provider_model())
                    .copied(),
                now,
            );
            self.domains[i] = Some(state);
        }
    }

    /// After a static-cap change: limits never rate limited follow the new initial limit
    /// (up or down); rate-limited ones are only clamped to the new effective max.
    fn rebase_limits(&mut self, shared: &Shared, now: Instant) {
        let ramp = shared.config.startup_ramp();
        for i in 0..4 {
            let Some(resource) = self.domains[i].as_ref().map(|s| s.resource.clone()) else {
                continue;
            };
            let eff = self.effective_max(shared, &resource);
            let target = self.initial_limit(shared, &resource);
            let Some(s) = self.domains[i].as_mut() else {
                continue;
            };
            s.rebase(target, eff, ramp, now);
        }
    }

    /// Brings a domain's time-driven state up to `now` (startup ramp).
    fn refresh(&mut self, shared: &Shared, d: RequestDomain, now: Instant, fx: &mut Effects) {
        let Some(target) = self.domains[di(d)]
            .as_ref()
            .filter(|s| s.ramping())
            .map(|s| self.initial_limit(shared, &s.resource))
        else {
            return;
        };
        let Some(s) = self.domains[di(d)].as_mut() else {
            return;
        };
        if let Some((prev, cur)) = s.refresh(target, shared.config.startup_ramp(), now) {
            if shared.events.wants(RequestEventKind::RequestLimitIncreased) && cur > prev {
                fx.events.push(
                    PendingEvent::of(RequestEventPayload::RequestLimitIncreased(LimitChanged {
                        previous: prev,
                        current: cur,
                        policy: None,
                        cause: Some(LimitChangeCause::StartupRamp),
                    }))
                    .resource(&s.resource),
                );
            }
        }
    }

    /// Whether `d` may admit one more lease now.
    fn check(
        &mut self,
        shared: &Shared,
        d: RequestDomain,
        now: Instant,
        fx: &mut Effects,
    ) -> Result<(), Block> {
        if shared.is_shut_down() {
            return Err(Block::of(RequestAdmissionDenyReason::Shutdown));
        }
        self.refresh(shared, d, now, fx);
        let Some(s) = self.domains[di(d)].as_ref() else {
            return Err(Block::of(RequestAdmissionDenyReason::HardPolicyDenial));
        };
        if s.cooling(now) {
            return Err(Block {
                reason: RequestAdmissionDenyReason::Cooldown,
                available_after: s.cooldown_end(),
            });
        }
        if s.in_flight >= s.current() || self.ledger.in_flight >= self.static_cap {
            return Err(Block::of(RequestAdmissionDenyReason::NoCapacity));
        }
        Ok(())
    }

    /// Snapshot for non-hot denials (cooldown, shutdown, timeout).
    fn enrich_denial(&self, shared: &Shared, d: RequestDomain, now: Instant, denial: &mut Denial) {
        if !matches!(
            denial.reason,
            RequestAdmissionDenyReason::NoCapacity | RequestAdmissionDenyReason::QueuedWaitersAhead
        ) && self.domains[di(d)].is_some()
        {
            denial.snapshot = Some(self.resource_snapshot(shared, d, now));
        }
    }

    fn has_eligible_waiter(&mut self, shared: &Shared, now: Instant, fx: &mut Effects) -> bool {
        if self.waiters.queue.is_empty() {
            return false;
        }
        let elig = self.eligible_domains(shared, now, fx);
        self.waiters
            .queue
            .select_next(|w| elig[di(w.domain)])
            .is_some()
    }

    fn eligible_domains(&mut self, shared: &Shared, now: Instant, fx: &mut Effects) -> [bool; 4] {
        let mut elig = [false; 4];
        for d in RequestDomain::ALL {
            if self.domains[di(d)].as_ref().is_some_and(|s| s.waiters > 0) {
                elig[di(d)] = self.check(shared, d, now, fx).is_ok();
            }
        }
        elig
    }

    /// Counts a new lease in; the caller turns the grant into a lease.
    fn admit(&mut self, shared: &Shared, d: RequestDomain, now: Instant) -> Grant {
        let eff = self.domains[di(d)]
            .as_ref()
            .map_or(1, |s| self.effective_max(shared, &s.resource));
        let (counter, slot) = self.ledger.issue(d);
        let (limit, in_flight) = match self.domains[di(d)].as_mut() {
            Some(s) => {
                s.in_flight += 1;
                debug_assert!(
                    s.in_flight <= s.current(),
                    "admitted above the domain limit"
                );
                (s.current(), s.in_flight)
            }
            None => (1, 1),
        };
        debug_assert!(
            self.ledger.in_flight <= self.static_cap,
            "admitted above the static cap"
        );
        Grant {
            counter,
            slot,
            limit,
            in_flight,
            effective_max: eff,
            acquired_at: now,
        }
    }

    fn enqueue(
        &mut self,
        shared: &Shared,
        item: &RequestAdmissionItem,
        wake: WakeHandle,
        deadline: Option<Instant>,
        now: Instant,
        fx: &mut Effects,
    ) -> (u32, u64) {
        let id = self.waiters.next_id;
        self.waiters.next_id += 1;
        let d = item.resource.domain;
        let event_info = shared
            .events
            .is_enabled()
            .then(|| Box::new((item.group.key.clone(), item.event_context.clone())));
        let slot = self.waiters.pending.insert(
            id,
            PendingWaiter {
                state: WaiterState::Queued,
                wake,
                domain: d,
                enqueued_at: now,
                deadline,
                event_info,
            },
        );
        self.waiters
            .queue
            .enqueue(&item.group.key, item.group.weight, id, slot, d);
        let formed = match self.domains[di(d)].as_mut() {
            Some(s) => {
                s.waiters += 1;
                s.waiters == 1
            }
            None => false,
        };
        let refs = Some(&item.event_context);
        if formed && shared.events.wants(RequestEventKind::RequestQueueFormed) {
            fx.events.push(
                PendingEvent::new(RequestEventKind::RequestQueueFormed)
                    .resource(&item.resource)
                    .group(Some(&item.group.key))
                    .context(refs),
            );
        }
        if shared.events.wants(RequestEventKind::RequestWaitStarted) {
            let snap = self.resource_snapshot(shared, d, now);
            fx.events.push(
                PendingEvent::new(RequestEventKind::RequestWaitStarted)
                    .resource(&item.resource)
                    .group(Some(&item.group.key))
                    .context(refs)
                    .snapshot(snap),
            );
        }
        (slot, id)
    }

    /// Decrements a domain's waiter count and emits the waiter's end event (+ queue drained).
    fn dec_waiters(
        &mut self,
        shared: &Shared,
        d: RequestDomain,
        info: Option<&(RequestResourceKey, RequestEventContext)>,
        fx: &mut Effects,
        decorate: impl FnOnce(PendingEvent) -> PendingEvent,
        kind: RequestEventKind,
    ) {
        let Some(s) = self.domains[di(d)].as_mut() else {
            return;
        };
        s.waiters = s.waiters.saturating_sub(1);
        let drained = s.waiters == 0;
        let resource = s.resource.clone();
        if shared.events.wants(kind) {
            fx.events.push(decorate(
                PendingEvent::new(kind)
                    .resource(&resource)
                    .group(info.map(|i| &i.0))
                    .context(info.map(|i| &i.1)),
            ));
        }
        if drained && shared.events.wants(RequestEventKind::RequestQueueDrained) {
            fx.events
                .push(PendingEvent::new(RequestEventKind::RequestQueueDrained).resource(&resource));
        }
    }

    /// Admits queued waiters in fair order while any is eligible.
    fn admit_waiters(&mut self, shared: &Shared, now: Instant, fx: &mut Effects) {
        while !self.waiters.queue.is_empty() && self.ledger.in_flight < self.static_cap {
            let elig = self.eligible_domains(shared, now, fx);
            let Some(selection) = self.waiters.queue.select_next(|w| elig[di(w.domain)]) else {
                break;
            };
            let Some(w) = self.waiters.queue.commit(selection) else {
                break;
            };
            if self
                .waiters
                .pending
                .get_mut(w.slot, w.id)
                .is_some_and(|p| p.deadline.is_some_and(|d| d <= now))
            {
                // Its deadline passed before its own wake-up ran: a timeout, never a lease.
                self.expire_waiter(shared, w.slot, w.id, w.domain, fx);
                continue;
            }
            let grant = self.admit(shared, w.domain, now);
            let (wake, info, waited) = match self.waiters.pending.get_mut(w.slot, w.id) {
                Some(p) => {
                    p.state = WaiterState::Granted(grant);
                    (
                        Some(p.wake.clone()),
                        p.event_info.take(),
                        now.saturating_duration_since(p.enqueued_at),
                    )
                }
                None => (None, None, Duration::ZERO),
            };
            let Some(wake) = wake else {
                // Invariant: a queued waiter always has a pending record; undo defensively.
                self.undo_admit(w.domain, grant);
                continue;
            };
            fx.wakes.push(wake);
            let lease_id = LeaseId::new(shared.generation, grant.counter);
            let resource = self.domains[di(w.domain)]
                .as_ref()
                .map(|s| s.resource.clone());
            if let Some(resource) = resource {
                if shared.events.wants(RequestEventKind::RequestWaitCompleted) {
                    fx.events.push(
                        PendingEvent::of(RequestEventPayload::RequestWaitCompleted(
                            RequestWaitCompleted {
                                wait_seconds: waited.as_secs_f64(),
                            },
                        ))
                        .resource(&resource)
                        .group(info.as_deref().map(|i| &i.0))
                        .context(info.as_deref().map(|i| &i.1))
                        .lease(lease_id),
                    );
                }
                if shared.events.wants(RequestEventKind::RequestLeaseAcquired) {
                    let snap = self.resource_snapshot(shared, w.domain, now);
                    fx.events.push(
                        PendingEvent::new(RequestEventKind::RequestLeaseAcquired)
                            .resource(&resource)
                            .group(info.as_deref().map(|i| &i.0))
                            .context(info.as_deref().map(|i| &i.1))
                            .lease(lease_id)
                            .snapshot(snap),
                    );
                }
            }
            if let Some(s) = self.domains[di(w.domain)].as_mut() {
                s.waiters = s.waiters.saturating_sub(1);
                if s.waiters == 0 && shared.events.wants(RequestEventKind::RequestQueueDrained) {
                    fx.events.push(
                        PendingEvent::new(RequestEventKind::RequestQueueDrained)
                            .resource(&s.resource),
                    );
                }
            }
        }
    }

    /// Ends a waiter (already out of the fair queue) whose deadline passed with `queue_timeout`.
    fn expire_waiter(
        &mut self,
        shared: &Shared,
        slot: u32,
        id: u64,
        d: RequestDomain,
        fx: &mut Effects,
    ) {
        let Some(p) = self.waiters.pending.get_mut(slot, id) else {
            return;
        };
        p.state = WaiterState::Denied(RequestAdmissionDenyReason::QueueTimeout);
        fx.wakes.push(p.wake.clone());
        let info = p.event_info.take();
        self.dec_waiters(
            shared,
            d,
            info.as_deref(),
            fx,
            |e| e.reason(RequestAdmissionDenyReason::QueueTimeout.as_str()),
            RequestEventKind::RequestWaitTimeout,
        );
    }

    fn undo_admit(&mut self, d: RequestDomain, grant: Grant) {
        self.ledger.undo(grant.slot, grant.counter);
        if let Some(s) = self.domains[di(d)].as_mut() {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }

    /// Settles a woken waiter: its grant, its denial, or (after its deadline) a timeout.
    fn settle_waiter(
        &mut self,
        shared: &Shared,
        slot: u32,
        id: u64,
        timed_out: bool,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<WaitEnd> {
        let state = self.waiters.pending.get_mut(slot, id)?.state;
        let end = match state {
            WaiterState::Granted(g) => WaitEnd::Granted(g),
            WaiterState::Denied(reason) => WaitEnd::Denied(Denial::of(reason)),
            WaiterState::Queued if timed_out => {
                self.waiters.queue.remove(id);
                let domain = self.waiters.pending.get_mut(slot, id).map(|w| w.domain);
                let info = self
                    .waiters
                    .pending
                    .get_mut(slot, id)
                    .and_then(|w| w.event_info.take());
                let mut denial = Denial::of(RequestAdmissionDenyReason::QueueTimeout);
                if let Some(d) = domain {
                    self.dec_waiters(
                        shared,
                        d,
                        info.as_deref(),
                        fx,
                        |e| e.reason(RequestAdmissionDenyReason::QueueTimeout.as_str()),
                        RequestEventKind::RequestWaitTimeout,
                    );
                    self.enrich_denial(shared, d, now, &mut denial);
                }
                // As on cancellation: a head that timed out may have blocked an eligible waiter.
                self.admit_waiters(shared, now, fx);
                self.plan_timer(shared, now, fx);
                WaitEnd::Denied(denial)
            }
            WaiterState::Queued => return None,
        };
        let _ = self.waiters.remove(slot, id);
        Some(end)
    }

    /// The earliest instant time alone makes a queued waiter eligible (cooldown end, ramp step).
    fn next_wake(&mut self, shared: &Shared, now: Instant, fx: &mut Effects) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let ramp = shared.config.startup_ramp();
        for d in RequestDomain::ALL {
            if self.domains[di(d)].as_ref().is_none_or(|s| s.waiters == 0) {
                continue;
            }
            self.refresh(shared, d, now, fx);
            let Some(s) = self.domains[di(d)].as_ref() else {
                continue;
            };
            let candidate = s.next_deadline(self.initial_limit(shared, &s.resource), ramp, now);
            if let Some(c) = candidate.filter(|c| *c > now) {
                next = Some(next.map_or(c, |n| n.min(c)));
            }
        }
        next
    }

    /// Arms (spawns or re-arms) the shard timer when queued waiters depend on time.
    fn plan_timer(&mut self, shared: &Shared, now: Instant, fx: &mut Effects) {
        if self.waiters.queue.is_empty() {
            return;
        }
        let Some(next) = self.next_wake(shared, now, fx) else {
            return;
        };
        match self.timer.plan(next) {
            TimerAction::None => return,
            action => fx.timer = action,
        }
        if self.waiters.blocking > 0 {
            // Blocking waiters time themselves; let them re-read the new schedule.
            for w in self.waiters.pending.iter() {
                if matches!(w.wake, WakeHandle::Thread(_)) && matches!(w.state, WaiterState::Queued)
                {
                    fx.wakes.push(w.wake.clone());
                }
            }
        }
    }

    /// Returns a lease's capacity exactly once and applies its outcome.
    #[allow(clippy::too_many_arguments)]
    fn release_locked(
        &mut self,
        shared: &Shared,
        slot: u32,
        counter: u64,
        d: RequestDomain,
        (admitted_limit, admitted_in_flight): (u32, u32),
        outcome: &RequestReleaseOutcome,
        refs: EventRefs<'_>,
        now: Now,
        acquired_at: Instant,
        fx: &mut Effects,
    ) {
        if !self.ledger.retire(slot, counter) {
            return;
        }
        let now = match now {
            Now::At(t) => t,
            Now::Lazy(stale) => {
                // Reading the clock is a large share of an uncontended release; skip it when no
                // rule can look at the time (no cooldown, ramp, plateau, waiters or events).
                let timeless = outcome.kind != RequestReleaseOutcomeKind::RateLimited
                    && self.waiters.queue.is_empty()
                    && !shared.events.is_enabled()
                    && self.domains[di(d)]
                        .as_ref()
                        .is_none_or(|s| !s.needs_clock());
                if timeless {
                    stale
                } else {
                    Instant::now()
                }
            }
        };
        let (effective_max, ramp_target) = match self.domains[di(d)].as_ref() {
            Some(s) => (
                self.effective_max(shared, &s.resource),
                self.initial_limit(shared, &s.resource),
            ),
            None => (1, 1),
        };
        let transition = match self.domains[di(d)].as_mut() {
            Some(s) => {
                s.in_flight = s.in_flight.saturating_sub(1);
                let in_flight = s.in_flight;
                s.apply_release(
                    &shared.config,
                    ReleaseFacts {
                        kind: outcome.kind,
                        retry_after_seconds: outcome.retry_after_seconds,
                        signal: outcome.rate_limit_signal,
                        admitted_limit,
                        admitted_in_flight,
                        in_flight,
                        effective_max,
                        ramp_target,
                        now,
                        acquired_at,
                    },
                )
            }
            None => Transition::default(),
        };
        if shared.events.is_enabled() {
            self.release_events(shared, counter, d, outcome, &transition, refs, now, fx);
        }
        self.admit_waiters(shared, now, fx);
        self.plan_timer(shared, now, fx);
    }
}

/// Milliseconds `finish` sleeps before emitting a batch holding `request_wait_started`.
#[cfg(test)]
static WAIT_STARTED_DELAY_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
fn before_emit(events: &[PendingEvent]) {
    let ms = WAIT_STARTED_DELAY_MS.load(std::sync::atomic::Ordering::Relaxed);
    if ms > 0
        && events
            .iter()
            .any(|e| e.kind() == RequestEventKind::RequestWaitStarted)
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    //! The emission-order regression, with the race window widened deterministically.

    use super::WAIT_STARTED_DELAY_MS;
    use crate::AdaptiveRequestAdmissionController;
    use crate::RequestAdmissionItem;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;
    use weir_contracts::{
        RequestAttemptId, RequestDomain, RequestEventContext, RequestEventKind,
        RequestReleaseOutcome, RequestResourceKey,
    };
    use weir_telemetry::{EventStream, InMemoryAdmissionEventSink, MonotonicClock};

    /// A waiter granted by another thread while its own thread has not yet emitted its
    /// `request_wait_started`: the grant's `request_wait_completed` must still come after it.
    /// (Without the shard's emission-order lock this fails every time.)
    #[test]
    fn a_grant_by_another_thread_cannot_overtake_the_waiters_own_events() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sink = Arc::new(InMemoryAdmissionEventSink::new());
        let c = Arc::new(
            AdaptiveRequestAdmissionController::builder()
                .events(EventStream::single(sink.clone(), MonotonicClock::start()))
                .build()
                .unwrap(),
        );
        c.register("prov", "model", "alias", 1).unwrap();
        let item = |attempt| {
            let key =
                RequestResourceKey::new("prov", "model", RequestDomain::Chat).expect("valid key");
            RequestAdmissionItem::new(key).with_event_context(RequestEventContext {
                captured_correlation: None,
                task_execution_id: None,
                request_attempt_id: Some(RequestAttemptId(attempt)),
            })
        };
        rt.block_on(async {
            let held = c.acquire(item(1)).await.unwrap();
            WAIT_STARTED_DELAY_MS.store(200, Ordering::Relaxed);
            let waiter = {
                let (c, it) = (c.clone(), item(2));
                tokio::spawn(async move { c.acquire(it).await })
            };
            // The waiter is queued (and now sleeping before its emission): grant it from here.
            tokio::time::sleep(Duration::from_millis(50)).await;
            WAIT_STARTED_DELAY_MS.store(0, Ordering::Relaxed);
            c.release(held, RequestReleaseOutcome::success());
            let lease = waiter.await.unwrap().unwrap();
            c.release(lease, RequestReleaseOutcome::success());
        });
        let of = |kind| {
            sink.request_events()
                .iter()
                .find(|e| {
                    e.event_kind() == kind && e.request_attempt_id == Some(RequestAttemptId(2))
                })
                .map(|e| e.sequence)
        };
        let started = of(RequestEventKind::RequestWaitStarted).expect("the request waited");
        let completed = of(RequestEventKind::RequestWaitCompleted).expect("the wait completed");
        assert!(
            started < completed,
            "wait_started #{started} after wait_completed #{completed}"
        );
    }
}
