//! The shared-limits seam (issue 17): an optional gate after the local controller and budgets.
//!
//! Several weir processes calling one endpoint each keep their own adaptive limit and budgets,
//! but admit only under limits they share through a store: a concurrency lease set with
//! expiry, a learned shared cap, a shared cooldown-until and shared request/token budgets. The
//! store is a [`SharedLimits`] backend (this crate knows no store; `weir-redis` implements it
//! on Redis). With no backend configured nothing here runs: the executor holds an
//! `Option<Arc<SharedGate>>` and the in-process ledger stays the fast path.
//!
//! [`SharedGate`] owns the waiting: one try per wake-up, at most one waiting try in flight per
//! endpoint and process (a FIFO baton, so a full shared cap costs one poller per worker, not one
//! per waiter), woken by this process's own shared releases or after the backend's suggested
//! wait (jittered, bounded by the caller's `max_wait`). [`SharedLease`] is released exactly
//! once: by [`SharedLease::release`], or by its drop guard ([`SharedLimits::abandon`]: the
//! backend releases it in the background if it can; a lease that cannot be released is left
//! to expire in the store).

use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use weir_contracts::payload::SharedLimitsModeChanged;
use weir_contracts::{
    ProviderModelKey, RequestAdmissionEvent, RequestEventKind, RequestEventPayload,
    SharedLimitsMode, SharedLimitsSnapshot,
};
use weir_telemetry::RequestEventStream;

/// What one admission asks of the shared layer besides one concurrency slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedDemand {
    /// The endpoint's static cap in this process (the shared cap never exceeds it).
    pub static_cap: u32,
    /// Estimated tokens of the request (input + output), for a shared token budget.
    pub tokens: u64,
    /// Configured requests per minute (the spec's `rate_limits`), if any.
    pub requests_per_minute: Option<u64>,
    /// Configured tokens per minute, if any.
    pub tokens_per_minute: Option<u64>,
}

/// A backend's handle on one granted lease (opaque to the gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedLeaseToken(pub u64);

/// The answer to one admission try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedTry {
    /// Admitted: the lease is held until released or abandoned.
    Admitted(SharedLeaseToken),
    /// Admitted with a request-budget slot booked this far ahead: the caller waits until then
    /// (holding the lease) before it sends.
    Booked(SharedLeaseToken, Duration),
    /// Not now (cap full, cooling down, budget slot ahead, store lost in pause mode): try again
    /// after about this long (zero = no hint; the gate picks a short backoff).
    Wait(Duration),
}

/// How a shared lease's attempt ended, as the shared layer needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SharedOutcome {
    /// The provider answered successfully.
    #[default]
    Success,
    /// A 429/503 that is not a rate window's: the provider's concurrency was exceeded.
    ConcurrencyLimited,
    /// A 429 from a request or token window (the budgets learn it, not the cap).
    WindowLimited,
    /// Anything else (errors, timeouts, cancellation): frees the slot, teaches nothing.
    Other,
}

/// What a finished attempt tells the shared layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedRelease {
    /// How it ended.
    pub outcome: SharedOutcome,
    /// The provider's Retry-After on a rate limit (a shared cooldown-until).
    pub retry_after: Option<Duration>,
    /// The request limit per minute a response header stated.
    pub observed_requests_per_minute: Option<u64>,
    /// The token limit per minute a response header stated.
    pub observed_tokens_per_minute: Option<u64>,
}

/// A store of limits shared by every worker of one job (one key scope).
#[async_trait]
pub trait SharedLimits: Send + Sync + fmt::Debug {
    /// One admission try (at most one store round trip on the common path).
    async fn try_admit(&self, endpoint: &ProviderModelKey, demand: SharedDemand) -> SharedTry;
    /// Releases a granted lease (at most one store round trip). A dropped release future
    /// leaves the lease to expire in the store; it is no longer renewed.
    async fn release(
        &self,
        endpoint: &ProviderModelKey,
        lease: SharedLeaseToken,
        release: SharedRelease,
    );
    /// A lease dropped without [`release`](Self::release) (a cancelled call): stop renewing
    /// it and release it in the background where possible; otherwise it expires.
    fn abandon(&self, endpoint: &ProviderModelKey, lease: SharedLeaseToken);
    /// How the backend admits right now.
    fn mode(&self) -> SharedLimitsMode;
    /// The store's last error, while degraded.
    fn last_error(&self) -> Option<String> {
        None
    }
    /// Counters and state for the run's summary.
    fn snapshot(&self) -> SharedLimitsSnapshot;
}

/// The shared layer's per-endpoint waiting state in this process.
#[derive(Debug)]
struct Lane {
    /// One waiting try at a time (FIFO): a full cap costs one poller per process.
    baton: Semaphore,
    /// Signalled when this process releases a shared lease of the endpoint.
    released: Notify,
}

/// The caller's wait for a shared slot ran out (`max_wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedWaitExceeded {
    /// How long it waited.
    pub waited: Duration,
}

/// Waits for shared admission over a [`SharedLimits`] backend and hands out [`SharedLease`]s.
pub struct SharedGate {
    backend: Arc<dyn SharedLimits>,
    events: RequestEventStream,
    lanes: Mutex<HashMap<ProviderModelKey, Arc<Lane>>>,
    mode: Mutex<SharedLimitsMode>,
    jitter: AtomicU64,
}

impl fmt::Debug for SharedGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGate")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Backoff when the backend gives no hint (cap full): short, since a slot frees within a
/// call's latency, and jittered so workers do not try in step.
const DEFAULT_WAIT: Duration = Duration::from_millis(10);
/// Longest single sleep between tries (a hint further away is re-checked this often, so a
/// cooldown that another worker's success ended early is not overslept by much).
const MAX_WAIT_STEP: Duration = Duration::from_millis(250);

impl SharedGate {
    /// A gate over `backend`; mode changes become `shared_limits_degraded` /
    /// `shared_limits_recovered` events on `events` (the controller's request stream).
    pub fn new(backend: Arc<dyn SharedLimits>, events: RequestEventStream) -> Self {
        let mode = backend.mode();
        Self {
            backend,
            events,
            lanes: Mutex::default(),
            mode: Mutex::new(mode),
            jitter: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn SharedLimits> {
        &self.backend
    }

    /// The backend's snapshot.
    pub fn snapshot(&self) -> SharedLimitsSnapshot {
        self.backend.snapshot()
    }

    fn lane(&self, endpoint: &ProviderModelKey) -> Arc<Lane> {
        let mut lanes = self.lanes.lock();
        if let Some(l) = lanes.get(endpoint) {
            return l.clone();
        }
        let lane = Arc::new(Lane {
            baton: Semaphore::new(1),
            released: Notify::new(),
        });
        lanes.insert(endpoint.clone(), lane.clone());
        lane
    }

    /// Admits one request of `endpoint` under the shared limits, waiting at most `max_wait`
    /// (None: until admitted). Cancel-safe: a dropped future holds nothing locally; a try the
    /// store granted while the future was dropped in flight is never renewed, so it expires
    /// within the backend's lease TTL.
    pub async fn admit(
        &self,
        endpoint: &ProviderModelKey,
        demand: SharedDemand,
        max_wait: Option<Duration>,
    ) -> Result<SharedLease, SharedWaitExceeded> {
        let started = tokio::time::Instant::now();
        let deadline = max_wait.map(|w| started + w);
        let exceeded = || SharedWaitExceeded {
            waited: started.elapsed(),
        };
        let lane = self.lane(endpoint);
        // The baton is a FIFO queue of this process's waiters, not a data lock: holding it
        // across the store round trip is the point (one try in flight per endpoint).
        let permit = match deadline {
            Some(d) => match tokio::time::timeout_at(d, lane.baton.acquire()).await {
                Ok(p) => p,
                Err(_) => return Err(exceeded()),
            },
            None => lane.baton.acquire().await,
        };
        let Ok(_permit) = permit else {
            return Err(exceeded());
        };
        loop {
            let answer = self.backend.try_admit(endpoint, demand).await;
            self.note_mode();
            let hint = match answer {
                SharedTry::Admitted(token) => {
                    return Ok(SharedLease {
                        backend: self.backend.clone(),
                        lane: lane.clone(),
                        endpoint: endpoint.clone(),
                        token: Some(token),
                    })
                }
                SharedTry::Booked(token, wait) => {
                    let lease = SharedLease {
                        backend: self.backend.clone(),
                        lane: lane.clone(),
                        endpoint: endpoint.clone(),
                        token: Some(token),
                    };
                    // The next waiter may book the slot after this one meanwhile.
                    drop(_permit);
                    // Dropped while sleeping, the lease's guard abandons it.
                    tokio::time::sleep(wait).await;
                    return Ok(lease);
                }
                SharedTry::Wait(hint) => hint,
            };
            // No hint (cap full): a short jittered backoff. A hint (a budget slot, a cooldown's
            // end) is exact: at most 1 ms of jitter, or pacing would lose the slot.
            let step = if hint.is_zero() {
                DEFAULT_WAIT.mul_f64(1.0 + 0.5 * self.jitter_unit())
            } else {
                hint.min(MAX_WAIT_STEP)
                    + Duration::from_micros((1_000.0 * self.jitter_unit()) as u64)
            };
            let mut wake = tokio::time::Instant::now() + step;
            if let Some(d) = deadline {
                if tokio::time::Instant::now() >= d {
                    return Err(exceeded());
                }
                wake = wake.min(d);
            }
            tokio::select! {
                _ = lane.released.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Emits an event when the backend's mode changed since the last look (no lock is held
    /// while the event is emitted).
    fn note_mode(&self) {
        let now = self.backend.mode();
        let previous = {
            let mut seen = self.mode.lock();
            if *seen == now {
                return;
            }
            std::mem::replace(&mut *seen, now)
        };
        let kind = if now == SharedLimitsMode::Shared {
            RequestEventKind::SharedLimitsRecovered
        } else {
            RequestEventKind::SharedLimitsDegraded
        };
        let reason = (now != SharedLimitsMode::Shared)
            .then(|| self.backend.last_error())
            .flatten();
        self.events.emit_with(kind, |at| {
            let change = SharedLimitsModeChanged {
                previous,
                current: now,
                reason: reason.map(String::into_boxed_str),
            };
            let payload = if now == SharedLimitsMode::Shared {
                RequestEventPayload::SharedLimitsRecovered(change)
            } else {
                RequestEventPayload::SharedLimitsDegraded(change)
            };
            RequestAdmissionEvent::with_payload(payload, at)
        });
    }

    /// A uniform draw in [0, 1) (splitmix64 over a counter: no wall-clock randomness).
    fn jitter_unit(&self) -> f64 {
        let mut z = self
            .jitter
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A held shared lease: released exactly once, by [`release`](Self::release) or on drop.
#[derive(Debug)]
pub struct SharedLease {
    backend: Arc<dyn SharedLimits>,
    lane: Arc<Lane>,
    endpoint: ProviderModelKey,
    token: Option<SharedLeaseToken>,
}

impl SharedLease {
    /// The backend's token.
    pub fn token(&self) -> Option<SharedLeaseToken> {
        self.token
    }

    /// Releases the lease with what its attempt taught, then wakes this process's next waiter.
    pub async fn release(mut self, release: SharedRelease) {
        if let Some(token) = self.token.take() {
            // Dropped mid-way, the backend has already stopped renewing it: it expires.
            self.backend.release(&self.endpoint, token, release).await;
            self.lane.released.notify_one();
        }
    }
}

impl Drop for SharedLease {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            self.backend.abandon(&self.endpoint, token);
            self.lane.released.notify_one();
        }
    }
}
