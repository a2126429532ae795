//! `TaskAdmissionController`: the hard resource ledger, task leases, release diagnostics, policy.
//!
//! A `&mut self` API: the scheduler calls it from its dispatch critical section; it is `Send` so
//! it can live in a `Mutex` shared across threads (not `Sync`: `is_eligible` remembers its last
//! verdict in a `Cell`). The ledger is authoritative; policy debt is stored beside it and changed
//! only through `PolicyStateDelta`s applied in the same call.

use crate::active_leases::{ActiveLeases, ActiveRecord};
use crate::admission_view::{
    reason_index, GroupLedger, LedgerState, ResourceSlot, TaskAdmissionView,
};
use crate::bounded_borrow::BoundedBorrowTaskAdmissionPolicy;
use crate::config::TaskAdmissionConfig;
use crate::lease::{TaskAdmissionDecision, TaskAdmissionDenied, TaskAdmissionLease};
use crate::policy::{
    AdmissionCandidate, LeaseContext, PolicyDetail, PolicyStateDelta, TaskAdmissionPolicy,
    TaskAdmissionPolicyDecision,
};
use crate::queue_view::QueueView;
use crate::shapes::ShapeTable;
use crate::strict_fair::StrictFairTaskAdmissionPolicy;
use crate::task::SchedulableTask;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_contracts::{
    ContractError, ControllerGeneration, LeaseId, ReleaseReason, ReleaseResult,
    SchedulerResourceRequest, TaskAdmissionDenyReason, TaskAdmissionSnapshot, TaskGroupKey,
    TaskGroupSpec,
};
use weir_telemetry::MonotonicClock;

/// The last plain "allow" verdict of `is_eligible`, keyed by everything it depended on: the
/// queue state (instance, version), the ledger version and the candidate's addresses.
///
/// Why: the scheduler's dispatch step asks `is_eligible` (the queue predicate) and then
/// `try_acquire` about the same head against the same, unchanged queue and ledger, so a second
/// policy evaluation would recompute the first. The hard capacity check is always re-run, so even
/// an address reused by a different request in between can never over-commit a resource.
/// One `Cell` per word: writing and re-reading a packed struct costs store-forwarding stalls.
#[derive(Debug, Default)]
struct VerdictMemo {
    key: [Cell<u64>; 6],
    /// The group's ledger slot `is_eligible` looked up (`u64::MAX`: none).
    slot: Cell<u64>,
    /// The interned request shape it found (`u64::MAX`: none).
    shape: Cell<u64>,
    /// False when the policy promised an empty `on_acquire` delta (its `admits_plainly`).
    hooks_needed: Cell<bool>,
    valid: Cell<bool>,
}

/// What a matching memo hands to `try_acquire`.
#[derive(Debug, Clone, Copy)]
struct MemoHit {
    slot: Option<u32>,
    shape: Option<u32>,
    hooks_needed: bool,
}

impl VerdictMemo {
    // Inlined so the key words go straight from registers into the cells (an out-of-line
    // call spilled them to the stack and re-read them wider: a store-forwarding stall).
    #[inline(always)]
    fn set(&self, key: [u64; 6], slot: Option<u32>, shape: Option<u32>, hooks_needed: bool) {
        for (c, k) in self.key.iter().zip(key) {
            c.set(k);
        }
        self.slot.set(slot.map_or(u64::MAX, u64::from));
        self.shape.set(shape.map_or(u64::MAX, u64::from));
        self.hooks_needed.set(hooks_needed);
        self.valid.set(true);
    }

    /// The memo when it matches `key`; it is consumed either way.
    #[inline(always)]
    fn take(&self, key: [u64; 6]) -> Option<MemoHit> {
        if !self.valid.replace(false) || self.key.iter().zip(key).any(|(c, k)| c.get() != k) {
            return None;
        }
        Some(MemoHit {
            slot: u32::try_from(self.slot.get()).ok(),
            shape: u32::try_from(self.shape.get()).ok(),
            hooks_needed: self.hooks_needed.get(),
        })
    }
}

/// Group-key equality with an address fast path: keys cloned from one spec share their
/// identity `Arc`, and std compares `Arc<[String]>` by content.
fn same_group_key(a: &TaskGroupKey, b: &TaskGroupKey) -> bool {
    a.kind == b.kind && (Arc::ptr_eq(&a.identity, &b.identity) || a.identity == b.identity)
}

/// Why queued work cannot be admitted now: the source of `admission_blocked` / `group_capped`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskAdmissionBlockSummary {
    /// Live queued tasks.
    pub queued_count: usize,
    /// Denied group heads per reason.
    pub dominant_denial_reasons: BTreeMap<TaskAdmissionDenyReason, u64>,
    /// Queued tasks blocked behind a denied head, per reason (heads block their whole group).
    pub blocked_tasks_by_reason: BTreeMap<TaskAdmissionDenyReason, u64>,
    /// Group heads whose request can never be admitted (unlimited resource / above limit).
    pub unsatisfiable_groups: u64,
    /// Earliest monotonic second at which a denial may lift, when any policy knows.
    pub available_after: Option<f64>,
    /// Per-group label → why its head is denied (typed; `PolicyDetail::diagnostics` renders JSON).
    pub diagnostics: BTreeMap<String, DeniedHead>,
    /// Ledger snapshot at the time of the explanation.
    pub snapshot: TaskAdmissionSnapshot,
}

/// A denied group head in a [`TaskAdmissionBlockSummary`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeniedHead {
    /// The denial reason.
    pub reason: TaskAdmissionDenyReason,
    /// Tasks queued in the group (all blocked behind the head).
    pub queued: u32,
    /// The policy's detail of the denial.
    pub detail: PolicyDetail,
}

impl TaskAdmissionBlockSummary {
    /// The reason blocking the most queued tasks (ties: plan order).
    pub fn dominant_reason(&self) -> Option<TaskAdmissionDenyReason> {
        let mut best: Option<(TaskAdmissionDenyReason, u64)> = None;
        for (r, n) in &self.blocked_tasks_by_reason {
            if best.is_none_or(|(_, b)| *n > b) {
                best = Some((*r, *n));
            }
        }
        best.map(|(r, _)| r)
    }
}

/// Owns task-stage resource availability, leases, per-group accounting and policy state.
#[derive(Debug)]
pub struct TaskAdmissionController {
    generation: ControllerGeneration,
    issued: u64,
    state: LedgerState,
    /// Active leases in a slab; a lease carries its slot index, so acquire and release are
    /// a vector index, not a hash operation. Memory is bounded by peak concurrent leases.
    active: ActiveLeases,
    /// Interned request shapes resolved to resource indices.
    shapes: ShapeTable,
    policy: Box<dyn TaskAdmissionPolicy>,
    clock: MonotonicClock,
    snapshot_on_denial: bool,
    /// Bumped by every change of the ledger (acquire, release, rejected release).
    ledger_version: u64,
    /// The last plain "allow" verdict of `is_eligible` with the group's ledger slot it looked
    /// up, consumed by the next `try_acquire`.
    memo: VerdictMemo,
}

impl TaskAdmissionController {
    /// A controller for a validated `config`; bounded borrow when configured, else strict fair.
    pub fn new(config: TaskAdmissionConfig) -> Result<Self, ContractError> {
        config.validate()?;
        let policy: Box<dyn TaskAdmissionPolicy> = match &config.bounded_borrow {
            Some(b) => Box::new(BoundedBorrowTaskAdmissionPolicy::new(b.clone())?),
            None => Box::new(StrictFairTaskAdmissionPolicy),
        };
        Self::with_policy(config, policy)
    }

    /// A controller with an explicit policy (it wins over `config.bounded_borrow`).
    pub fn with_policy(
        config: TaskAdmissionConfig,
        policy: Box<dyn TaskAdmissionPolicy>,
    ) -> Result<Self, ContractError> {
        config.validate()?;
        let resources = config
            .merged_limits()
            .into_iter()
            .map(|(key, limit)| ResourceSlot {
                key,
                limit,
                leased: 0,
            })
            .collect();
        Ok(Self {
            generation: ControllerGeneration::next(),
            issued: 0,
            state: LedgerState {
                resources,
                ..LedgerState::default()
            },
            active: ActiveLeases::default(),
            shapes: ShapeTable::default(),
            policy,
            clock: MonotonicClock::start(),
            snapshot_on_denial: config.snapshot_on_denial,
            ledger_version: 0,
            memo: VerdictMemo::default(),
        })
    }

    /// Uses `clock` for `acquired_at` (share the run's clock so timelines line up).
    pub fn with_clock(mut self, clock: MonotonicClock) -> Self {
        self.clock = clock;
        self
    }

    /// This controller's generation (leases from others are rejected).
    pub fn generation(&self) -> ControllerGeneration {
        self.generation
    }

    /// The active policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// Rejects a request that could never be admitted: a resource with no configured limit or
    /// an amount above its limit. Call it before enqueueing.
    pub fn validate_request(
        &self,
        request: &SchedulerResourceRequest,
    ) -> Result<(), ContractError> {
        for (k, a) in request.amounts() {
            match self.state.resource(k) {
                None => {
                    return Err(ContractError::new(
                        format!("resource_request.amounts.{k}"),
                        "no task admission limit is configured for this resource",
                    ))
                }
                Some(r) if *a > r.limit => {
                    return Err(ContractError::new(
                        format!("resource_request.amounts.{k}"),
                        format!("amount {a} exceeds the resource's limit {}", r.limit),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// [`Self::validate_request`] for a task.
    pub fn validate_task<P>(&self, task: &SchedulableTask<P>) -> Result<(), ContractError> {
        self.validate_request(&task.resource_request)
    }

    /// True when `item` could be admitted now; the queue predicate. Changes no admission state
    /// (it remembers an allowing verdict so the `try_acquire` that follows can reuse it).
    #[inline(always)]
    pub fn is_eligible<P>(&self, item: &SchedulableTask<P>, queue_view: &QueueView<'_>) -> bool {
        let slot = self.slot_if_needed(&item.group);
        let shape = self.shapes.find(&item.resource_request);
        let fits = match shape {
            Some(id) => self.shape_fits(id),
            None => self.hard_check(&item.resource_request).is_none(),
        };
        if !fits {
            return false;
        }
        let candidate = self.candidate(&item.group, &item.resource_request, slot, shape);
        let admission_view = self.view();
        // Built-in policies answer the common case without building a decision, and promise
        // that `on_acquire` books nothing for it.
        let (allowed, plain, hooks_needed) =
            if self
                .policy
                .admits_plainly(&candidate, queue_view, &admission_view)
            {
                (true, true, false)
            } else {
                let d = self
                    .policy
                    .evaluate(&candidate, queue_view, &admission_view);
                let plain = d.allowed
                    && d.borrow.is_empty()
                    && d.reason.is_none()
                    && d.available_after.is_none()
                    && matches!(d.detail, PolicyDetail::None);
                (d.allowed, plain, true)
            };
        if plain {
            self.memo
                .set(self.memo_key(item, queue_view), slot, shape, hooks_needed);
        }
        allowed
    }

    #[inline(always)]
    fn memo_key<P>(&self, item: &SchedulableTask<P>, queue_view: &QueueView<'_>) -> [u64; 6] {
        [
            queue_view.facts.instance,
            queue_view.facts.version,
            self.ledger_version,
            item as *const SchedulableTask<P> as usize as u64,
            Arc::as_ptr(&item.group) as usize as u64,
            Arc::as_ptr(&item.resource_request) as usize as u64,
        ]
    }

    /// Leases `item`'s resources, or returns a typed denial. The hard capacity check always runs;
    /// the policy verdict is reused only from an `is_eligible` call on this very item with the
    /// queue and ledger unchanged since. The lease's `acquired_at` is read from the controller's clock.
    #[inline(always)]
    pub fn try_acquire<P>(
        &mut self,
        item: &SchedulableTask<P>,
        queue_view: &QueueView<'_>,
    ) -> TaskAdmissionDecision {
        self.acquire(item, queue_view, None)
    }

    /// [`Self::try_acquire`] with a caller-supplied `acquired_at` (monotonic seconds on this
    /// controller's clock, e.g. the timestamp the caller already stamped its dispatch event
    /// with). It saves the clock read, which is the largest single cost of a dispatch cycle.
    #[inline(always)]
    pub fn try_acquire_at<P>(
        &mut self,
        item: &SchedulableTask<P>,
        queue_view: &QueueView<'_>,
        acquired_at: f64,
    ) -> TaskAdmissionDecision {
        self.acquire(item, queue_view, Some(acquired_at))
    }

    /// The controller's clock (shared with `with_clock`).
    pub fn clock(&self) -> MonotonicClock {
        self.clock
    }

    #[inline(always)]
    fn acquire<P>(
        &mut self,
        item: &SchedulableTask<P>,
        queue_view: &QueueView<'_>,
        acquired_at: Option<f64>,
    ) -> TaskAdmissionDecision {
        let request = &item.resource_request;
        // The fast path: `is_eligible` just allowed this very item against this very state.
        if let Some(memo) = self.memo.take(self.memo_key(item, queue_view)) {
            let fits = match memo.shape {
                Some(id) => self.shape_fits(id),
                None => self.hard_check(request).is_none(),
            };
            if fits {
                return TaskAdmissionDecision::Lease(self.grant(
                    item,
                    memo.slot,
                    memo.shape,
                    acquired_at,
                    if memo.hooks_needed {
                        Some(TaskAdmissionPolicyDecision::allow())
                    } else {
                        None
                    },
                ));
            }
        }
        let slot = self.slot_if_needed(&item.group);
        let decision = self.evaluate(&item.group, request, queue_view, slot);
        if !decision.allowed {
            return TaskAdmissionDecision::Denied(Box::new(TaskAdmissionDenied {
                task_id: item.task_id.clone(),
                group: item.group.clone(),
                reason: decision
                    .reason
                    .unwrap_or(TaskAdmissionDenyReason::PolicyDenial),
                available_after: decision.available_after,
                detail: decision.detail,
                snapshot: self
                    .snapshot_on_denial
                    .then(|| Box::new(self.view().to_snapshot())),
            }));
        }
        TaskAdmissionDecision::Lease(self.grant(item, slot, None, acquired_at, Some(decision)))
    }

    /// Books an admitted lease: ledger, group, slab, then the policy's `on_acquire` delta
    /// (`decision: None` when the policy promised an empty one).
    #[inline(always)]
    fn grant<P>(
        &mut self,
        item: &SchedulableTask<P>,
        slot: Option<u32>,
        known_shape: Option<u32>,
        acquired_at: Option<f64>,
        decision: Option<TaskAdmissionPolicyDecision>,
    ) -> TaskAdmissionLease {
        let slot = match slot {
            Some(s) => {
                if self.state.ledger(s).is_some_and(|g| g.is_idle()) {
                    self.state.idle_groups = self.state.idle_groups.saturating_sub(1);
                }
                s
            }
            None => self.create_group(&item.group),
        };
        // `known_shape` is the id `is_eligible` found for this very request `Arc`, with the
        // ledger (and so the shape table) unchanged since. `hold` fails only for a resource
        // without a limit, which the hard check that admitted this item has already ruled out;
        // the sentinel would book nothing.
        let shape = match known_shape {
            Some(id) => self.shapes.hold_id(id),
            None => self.shapes.hold(&item.resource_request, &mut self.state),
        }
        .unwrap_or(u32::MAX);
        let groups = &mut self.state.groups;
        let resources = &mut self.state.resources;
        let mut ledger = groups.get_mut(slot as usize).and_then(|g| g.as_mut());
        for &(idx, amount) in self.shapes.resolved(shape) {
            let a = u64::from(amount);
            if let Some(r) = resources.get_mut(idx as usize) {
                r.leased += a;
            }
            if let Some(g) = ledger.as_deref_mut() {
                if let Some(l) = g.leased.get_mut(idx as usize) {
                    *l += a;
                    g.leased_total += a;
                }
            }
        }
        if let Some(g) = ledger {
            g.running += 1;
        }
        // The new counter stays in a register: re-reading `self.issued` right after writing
        // it (next to `generation`, as one 16-byte load) stalls store forwarding.
        let counter = self.issued + 1;
        self.issued = counter;
        self.ledger_version += 1;
        self.state.active_leases += 1;
        let active_slot = self.active.insert(ActiveRecord {
            counter,
            group_slot: slot,
            shape,
        });
        let lease_id = LeaseId::new(self.generation, counter);
        let acquired_at = acquired_at.unwrap_or_else(|| self.clock.now());
        let Some(mut decision) = decision else {
            // Built once, in the return slot.
            return TaskAdmissionLease {
                lease_id,
                task_id: item.task_id.clone(),
                acquired_at,
                borrowed: Vec::new(),
                active_slot,
            };
        };
        let mut lease = TaskAdmissionLease {
            lease_id,
            task_id: item.task_id.clone(),
            acquired_at,
            borrowed: Vec::new(),
            active_slot,
        };
        let delta = match self.state.ledger_view(slot) {
            Some(ledger) => self.policy.on_acquire(
                &LeaseContext {
                    lease: &lease,
                    group: ledger.ledger.spec.as_ref(),
                    resources: &item.resource_request,
                    ledger: Some(ledger),
                },
                &decision,
            ),
            None => PolicyStateDelta::default(),
        };
        lease.borrowed = std::mem::take(&mut decision.borrow);
        if !delta.is_empty() {
            self.apply_delta(slot, delta);
        }
        lease
    }

    /// The group `lease` holds, while it is active on this controller.
    pub fn lease_group(&self, lease: &TaskAdmissionLease) -> Option<&Arc<TaskGroupSpec>> {
        let record = self.active_record(lease)?;
        self.state.ledger(record.group_slot).map(|g| &g.spec)
    }

    /// The resources `lease` holds, while it is active on this controller.
    pub fn lease_resources(
        &self,
        lease: &TaskAdmissionLease,
    ) -> Option<&Arc<SchedulerResourceRequest>> {
        let record = self.active_record(lease)?;
        self.shapes.request(record.shape)
    }

    fn active_record(&self, lease: &TaskAdmissionLease) -> Option<ActiveRecord> {
        if lease.lease_id.generation != self.generation {
            return None;
        }
        self.active.get(lease.active_slot, lease.lease_id.counter)
    }

    /// Returns `lease`'s resources exactly once. Never panics; a duplicate, wrong-generation or
    /// unknown release changes nothing but its diagnostic counter. (`stale_lease` is not
    /// produced here: leases cannot be forged, so an active counter is the genuine lease.)
    #[inline]
    pub fn release(&mut self, lease: &TaskAdmissionLease) -> ReleaseResult {
        let id = lease.lease_id;
        if id.generation != self.generation {
            return self.reject(ReleaseReason::WrongControllerGeneration, id);
        }
        if id.counter == 0 || id.counter > self.issued {
            return self.reject(ReleaseReason::UnknownLease, id);
        }
        // A lease's fields are private, so its (slab index, counter) pair is exactly what this
        // controller issued: an active counter there is the genuine lease, never a stale copy.
        let Some(record) = self.active.get(lease.active_slot, id.counter) else {
            // Counters are issued once and every issued, inactive id has been released: exact.
            return self.reject(ReleaseReason::Duplicate, id);
        };
        self.active.remove(lease.active_slot);
        self.ledger_version += 1;
        self.state.active_leases = self.state.active_leases.saturating_sub(1);
        let slot = record.group_slot;
        {
            let groups = &mut self.state.groups;
            let resources = &mut self.state.resources;
            let mut ledger = groups.get_mut(slot as usize).and_then(|g| g.as_mut());
            for &(idx, amount) in self.shapes.resolved(record.shape) {
                let a = u64::from(amount);
                if let Some(r) = resources.get_mut(idx as usize) {
                    r.leased = r.leased.saturating_sub(a);
                }
                if let Some(g) = ledger.as_deref_mut() {
                    if let Some(l) = g.leased.get_mut(idx as usize) {
                        let returned = a.min(*l);
                        *l -= returned;
                        g.leased_total -= returned;
                    }
                }
            }
            if let Some(g) = ledger {
                g.running = g.running.saturating_sub(1);
            }
        }
        self.shapes.release(record.shape);
        // `None` on the plain path: no delta value is built (or dropped) for it.
        let delta = match (
            self.state.ledger_view(slot),
            self.shapes.request(record.shape),
        ) {
            (Some(ledger), Some(resources)) => {
                let ctx = LeaseContext {
                    lease,
                    group: ledger.ledger.spec.as_ref(),
                    resources,
                    ledger: Some(ledger),
                };
                if self.policy.releases_plainly(&ctx) {
                    None
                } else {
                    Some(
                        self.policy
                            .on_release(&ctx, &TaskAdmissionView { state: &self.state }),
                    )
                }
            }
            _ => None,
        };
        if let Some(delta) = delta {
            self.apply_delta(slot, delta);
        }
        self.maybe_free_group(slot);
        ReleaseResult::released()
    }

    /// The O(1) borrowed view of the ledger.
    pub fn view(&self) -> TaskAdmissionView<'_> {
        TaskAdmissionView { state: &self.state }
    }

    /// The serializable snapshot of the ledger.
    pub fn snapshot(&self) -> TaskAdmissionSnapshot {
        self.view().to_snapshot()
    }

    /// Explains why no queued head is admissible: per-reason counts over group heads and the
    /// tasks blocked behind them, earliest `available_after`, and a snapshot.
    pub fn explain_blocked(&self, queue_view: &QueueView<'_>) -> TaskAdmissionBlockSummary {
        let mut s = TaskAdmissionBlockSummary {
            queued_count: queue_view.queued_total(),
            dominant_denial_reasons: BTreeMap::new(),
            blocked_tasks_by_reason: BTreeMap::new(),
            unsatisfiable_groups: 0,
            available_after: None,
            diagnostics: BTreeMap::new(),
            snapshot: self.snapshot(),
        };
        for g in queue_view.groups() {
            let slot = self.state.group_slot(g.key());
            let d = self.evaluate(g.head_spec(), g.head_request(), queue_view, slot);
            if d.allowed {
                continue;
            }
            let reason = d.reason.unwrap_or(TaskAdmissionDenyReason::PolicyDenial);
            *s.dominant_denial_reasons.entry(reason).or_default() += 1;
            *s.blocked_tasks_by_reason.entry(reason).or_default() += u64::from(g.queued());
            if matches!(d.detail, PolicyDetail::Unsatisfiable { .. }) {
                s.unsatisfiable_groups += 1;
            }
            if let Some(t) = d.available_after {
                s.available_after = Some(s.available_after.map_or(t, |a: f64| a.min(t)));
            }
            s.diagnostics.insert(
                g.key().label(),
                DeniedHead {
                    reason,
                    queued: g.queued(),
                    detail: d.detail,
                },
            );
        }
        s
    }

    // ---- internals ------------------------------------------------------------------------

    /// The group's ledger slot (`None` when the group holds nothing).
    fn slot_if_needed(&self, group: &TaskGroupSpec) -> Option<u32> {
        if self.state.group_index.is_empty() {
            return None;
        }
        self.state.group_slot_of(group)
    }

    /// Hard check, then the policy. Pure.
    fn evaluate(
        &self,
        group: &TaskGroupSpec,
        request: &SchedulerResourceRequest,
        queue_view: &QueueView<'_>,
        slot: Option<u32>,
    ) -> TaskAdmissionPolicyDecision {
        if let Some(denied) = self.hard_check(request) {
            return denied;
        }
        let candidate = self.candidate(group, request, slot, None);
        let mut d = self.policy.evaluate(&candidate, queue_view, &self.view());
        if !d.allowed && d.reason.is_none() {
            d.reason = Some(TaskAdmissionDenyReason::PolicyDenial);
        }
        d
    }

    /// The policy's view of a candidate.
    #[inline]
    fn candidate<'a>(
        &'a self,
        group: &'a TaskGroupSpec,
        request: &'a SchedulerResourceRequest,
        slot: Option<u32>,
        shape: Option<u32>,
    ) -> AdmissionCandidate<'a> {
        AdmissionCandidate {
            group,
            request,
            ledger: slot.and_then(|s| self.state.ledger_view(s)),
            resolved: shape.map(|id| self.shapes.resolved(id)),
        }
    }

    /// The hard ledger check for an interned (hence satisfiable) shape: every resource has
    /// room for its amount now.
    #[inline]
    fn shape_fits(&self, shape: u32) -> bool {
        self.shapes.resolved(shape).iter().all(|&(idx, amount)| {
            self.state
                .resources
                .get(idx as usize)
                .is_some_and(|r| u64::from(r.limit).saturating_sub(r.leased) >= u64::from(amount))
        })
    }

    /// The hard ledger check: `Some(denial)` when a requested resource is unlimited, above its
    /// limit, or short right now.
    fn hard_check(
        &self,
        request: &SchedulerResourceRequest,
    ) -> Option<TaskAdmissionPolicyDecision> {
        for (k, a) in request.amounts() {
            let Some(r) = self.state.resource(k) else {
                return Some(TaskAdmissionPolicyDecision::deny(
                    TaskAdmissionDenyReason::NoCapacity,
                    PolicyDetail::Unsatisfiable {
                        field: format!("resource_request.amounts.{k}"),
                        message: "no task admission limit is configured for this resource".into(),
                    },
                ));
            };
            if *a > r.limit {
                return Some(TaskAdmissionPolicyDecision::deny(
                    TaskAdmissionDenyReason::NoCapacity,
                    PolicyDetail::Unsatisfiable {
                        field: format!("resource_request.amounts.{k}"),
                        message: format!("amount {a} exceeds the resource's limit {}", r.limit),
                    },
                ));
            }
            let available = u64::from(r.limit).saturating_sub(r.leased);
            if available < u64::from(*a) {
                return Some(TaskAdmissionPolicyDecision::deny(
                    TaskAdmissionDenyReason::NoCapacity,
                    PolicyDetail::NoCapacity {
                        resource: k.clone(),
                        requested: *a,
                        available,
                    },
                ));
            }
        }
        None
    }

    fn create_group(&mut self, spec: &Arc<TaskGroupSpec>) -> u32 {
        let ledger = GroupLedger::new(spec.clone(), self.state.resources.len());
        let slot = match self.state.free_groups.pop() {
            Some(s) => {
                self.state.groups[s as usize] = Some(ledger);
                s
            }
            None => {
                self.state.groups.push(Some(ledger));
                (self.state.groups.len() - 1) as u32
            }
        };
        self.state.group_index.insert(spec.key.clone(), slot);
        self.state
            .spec_ptr_index
            .insert(Arc::as_ptr(spec) as usize as u64, slot);
        slot
    }

    /// Counts a ledger that now holds nothing; sweeps idle ledgers once they outnumber
    /// `max(4096, active leases)`, so memory stays bounded by live work (amortized O(1)).
    fn maybe_free_group(&mut self, slot: u32) {
        if !self.state.ledger(slot).is_some_and(|g| g.is_idle()) {
            return;
        }
        self.state.idle_groups += 1;
        // A generous floor: groups cycle between holding one lease and none all the time, and
        // re-creating a ledger costs a key hash; 4,096 idle ledgers are a few hundred KiB.
        let bound = 4096usize.max(self.state.active_leases as usize);
        if self.state.idle_groups <= bound {
            return;
        }
        for s in 0..self.state.groups.len() {
            if self.state.groups[s].as_ref().is_some_and(|g| g.is_idle()) {
                if let Some(g) = self.state.groups[s].take() {
                    self.state.group_index.remove(&g.spec.key);
                    let addr = Arc::as_ptr(&g.spec) as usize as u64;
                    if self.state.spec_ptr_index.get(&addr) == Some(&(s as u32)) {
                        self.state.spec_ptr_index.remove(&addr);
                    }
                }
                self.state.free_groups.push(s as u32);
            }
        }
        self.state.idle_groups = 0;
    }

    /// Ledger slots currently held (groups with leases or debt, plus idle ones awaiting reuse).
    pub fn tracked_groups(&self) -> usize {
        self.state.groups.iter().flatten().count()
    }

    /// Applies a policy delta; debt is clamped at zero. `own` is the lease's group slot.
    fn apply_delta(&mut self, own: u32, delta: PolicyStateDelta) {
        if delta.is_empty() {
            return;
        }
        for c in delta.debt_changes {
            let own_matches = self
                .state
                .ledger(own)
                .is_some_and(|g| same_group_key(&g.spec.key, &c.group));
            let slot = if own_matches {
                Some(own)
            } else {
                self.state.group_slot(&c.group)
            };
            let Some(slot) = slot else {
                // A repayment for a group holding nothing changes nothing; a new debt for one
                // is not representable without a spec, so it is dropped (and counted).
                *self
                    .state
                    .policy_counters
                    .entry("dropped_debt_changes".into())
                    .or_default() += 1;
                continue;
            };
            let idx = self.state.resource_index(&c.resource);
            if let Some(Some(g)) = self.state.groups.get_mut(slot as usize) {
                if g.is_idle() && c.delta > 0 {
                    self.state.idle_groups = self.state.idle_groups.saturating_sub(1);
                }
                // Debt on a resource without a limit cannot arise (leases need limits).
                if let Some(idx) = idx {
                    g.add_debt(idx, c.delta);
                }
            }
            if slot != own {
                self.maybe_free_group(slot);
            }
        }
        for (name, n) in delta.diagnostic_counters {
            *self.state.policy_counters.entry(name).or_default() += n;
        }
    }

    fn reject(&mut self, reason: ReleaseReason, id: LeaseId) -> ReleaseResult {
        // The diagnostics are part of the view a policy may read.
        self.ledger_version += 1;
        self.state.release_diagnostics[reason_index(reason)] += 1;
        let mut r = ReleaseResult::rejected(reason);
        r.diagnostics.insert("lease_id".into(), id.to_string());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::FairTaskQueue;
    use weir_contracts::{SchedulingKind, TaskGroupKey, TaskId};

    fn spec(name: &str) -> Arc<TaskGroupSpec> {
        let key = TaskGroupKey::new(SchedulingKind::Local, vec!["local".into(), name.into()]);
        Arc::new(TaskGroupSpec::new(key, 1, None).expect("valid"))
    }

    #[test]
    fn unknown_leases_change_nothing() {
        let mut adm =
            TaskAdmissionController::new(TaskAdmissionConfig::with_submission_capacity(2))
                .expect("valid");
        let q: FairTaskQueue<()> = FairTaskQueue::new();
        let t = SchedulableTask::new(
            TaskId::new("t"),
            (),
            spec("a"),
            Arc::new(SchedulerResourceRequest::submission()),
        );
        let lease = adm
            .try_acquire(&t, &q.view())
            .into_lease()
            .expect("admitted");
        let before = adm.snapshot();

        let mut unknown = lease.clone();
        unknown.lease_id = LeaseId::new(adm.generation(), 99);
        assert_eq!(adm.release(&unknown).reason, ReleaseReason::UnknownLease);

        let mut after = adm.snapshot();
        assert_eq!(
            after
                .release_diagnostics
                .remove(&ReleaseReason::UnknownLease),
            Some(1)
        );
        assert_eq!(after, before);
        assert!(adm.release(&lease).released);
        assert_eq!(adm.snapshot().active_lease_count, 0);
        assert!(
            adm.view().groups().next().is_none(),
            "no group holds anything"
        );
    }
}
