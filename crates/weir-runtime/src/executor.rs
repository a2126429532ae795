//! `ModelRequestExecutor`: one request lease per outbound attempt, classified release, retries.
//!
//! The executor is the only place where model-call code meets request admission. Each attempt:
//! build a `RequestAdmissionItem` (with the caller's captured correlation and a fresh attempt id)
//! → `acquire` (the controller emits the wait and lease events) → `model_request_started` →
//! provider call (bounded by the request timeout) → `model_request_completed` → `release(lease,
//! outcome)`. If the caller's future is dropped while an attempt holds a lease, the lease's drop
//! guard releases it as `local_cancelled`; an attempt counter guard records the cancellation.
//! Retries live here, around whole attempts, so every outbound attempt is visible to admission.
//!
//! Budgets sit in front of the concurrency lease: an attempt first reserves one request and its
//! estimated tokens on the endpoint's [`BudgetLedger`] scope and sleeps to the slot the budget
//! gives it, then acquires the lease; after the call it settles the reservation with the
//! response's `usage` and feeds its `rate_limits` (successes and errors alike) back.
//!
//! With a shared-limits backend ([`with_shared_limits`](ModelRequestExecutor::with_shared_limits),
//! issue 17) one more gate follows the local lease: the attempt waits on the [`SharedGate`]
//! (shared cap, cooldown and budgets of every worker of the job) while holding its local lease,
//! and releases the shared lease right after the local one, exactly once (a dropped future's
//! shared lease is abandoned by its drop guard). Without one, nothing of it runs.
//!
//! Rate-limited attempts (429, 503 overload) do not use up `max_attempts`: a 429 means "wait".
//! Each is retried after a per-request backoff — the Retry-After (capped by
//! `max_retry_after`), or exponential backoff with full jitter, or, for a window 429 whose reset
//! is known, the budget wait (the window is blocked until then). They are bounded by
//! `max_rate_limit_wait`, the total time one call may spend waiting because of rate limits;
//! past it the call ends with [`ModelCallErrorKind::RateLimited`] — the only way a rate limit
//! reaches the caller, so the scheduler can keep the task for salvage instead of dropping it.

use crate::model_facade::{ModelCallError, ModelCallErrorKind};
use crate::provider::{
    ModelProvider, ProviderError, ProviderErrorKind, ProviderRequest, ProviderResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use weir_contracts::{
    Fnv64, ProviderModelKey, RateLimitSignal, RequestAdmissionEvent, RequestAttemptId,
    RequestDomain, RequestEventContext, RequestEventKind, RequestGroupSpec, RequestReleaseOutcome,
    RequestReleaseOutcomeKind, RequestResourceKey,
};
use weir_request_admission::{
    AdaptiveRequestAdmissionController, BudgetKind, BudgetLedger, RequestAdmissionItem,
    SharedDemand, SharedGate, SharedOutcome, SharedRelease,
};
use weir_telemetry::{RequestEventStream, RuntimeCorrelationProvider};

/// Retry and timeout settings of the executor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecutorConfig {
    /// Outbound attempts per call, at least 1 (1 = no retry inside the executor).
    pub max_attempts: u32,
    /// Backoff before the second attempt of a non-rate-limit failure.
    pub base_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// Jitter share in [0, 1].
    pub jitter: f64,
    /// Per-attempt provider timeout (None = the provider's own).
    pub request_timeout: Option<Duration>,
    /// Request-admission queue-wait timeout per attempt (None = the controller default).
    pub queue_wait_timeout: Option<Duration>,
    /// Longest Retry-After a rate-limited attempt honours (longer headers are capped).
    pub max_retry_after: Duration,
    /// Total time one call may spend waiting because of rate limits (backoffs after 429/503
    /// answers plus the budget waits of the retries that follow them). Rate-limited attempts do
    /// not count against `max_attempts`; this bounds them instead.
    pub max_rate_limit_wait: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            jitter: 0.25,
            request_timeout: Some(Duration::from_secs(120)),
            queue_wait_timeout: None,
            max_retry_after: Duration::from_secs(60),
            // Long enough to ride out a provider's window reset (a minute); past it the scheduler
            // keeps the task for salvage (no row is dropped for a rate limit) and its circuit
            // breaker judges a provider that never recovers.
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

impl ExecutorConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_attempts == 0 {
            return Err(("max_attempts", "must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(("jitter", "must be in [0, 1]".into()));
        }
        if self.base_backoff > self.max_backoff {
            return Err(("base_backoff", "must not exceed max_backoff".into()));
        }
        if self.request_timeout == Some(Duration::ZERO) {
            return Err(("request_timeout", "must be positive when set".into()));
        }
        if self.max_retry_after.is_zero() {
            return Err(("max_retry_after", "must be positive".into()));
        }
        if self.max_rate_limit_wait.is_zero() {
            return Err(("max_rate_limit_wait", "must be positive".into()));
        }
        Ok(())
    }
}

/// Attempt counters of one provider/model endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptCounts {
    /// Outbound attempts (provider calls started).
    pub attempts: u64,
    /// Attempts that succeeded.
    pub succeeded: u64,
    /// Attempts rate limited (429, or 503 saturation).
    pub rate_limited: u64,
    /// Attempts that failed otherwise (5xx, connection, 4xx, malformed, unexpected).
    pub failed: u64,
    /// Attempts that timed out after they started.
    pub timeouts: u64,
    /// Attempts cancelled while holding a lease.
    pub cancelled: u64,
    /// Calls that ended with a request-admission error before any provider call.
    pub admission_errors: u64,
    /// Calls that ended because they waited `max_rate_limit_wait` on rate limits.
    #[serde(default)]
    pub rate_limit_wait_exhausted: u64,
}

impl AttemptCounts {
    fn record(&mut self, kind: RequestReleaseOutcomeKind) {
        match kind {
            RequestReleaseOutcomeKind::Success => self.succeeded += 1,
            RequestReleaseOutcomeKind::RateLimited => self.rate_limited += 1,
            RequestReleaseOutcomeKind::ProviderTimeout => self.timeouts += 1,
            RequestReleaseOutcomeKind::LocalCancelled => self.cancelled += 1,
            RequestReleaseOutcomeKind::ProviderFailure
            | RequestReleaseOutcomeKind::LocalTimeout
            | RequestReleaseOutcomeKind::UnexpectedException => self.failed += 1,
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &AttemptCounts) {
        self.attempts += other.attempts;
        self.succeeded += other.succeeded;
        self.rate_limited += other.rate_limited;
        self.failed += other.failed;
        self.timeouts += other.timeouts;
        self.cancelled += other.cancelled;
        self.admission_errors += other.admission_errors;
        self.rate_limit_wait_exhausted += other.rate_limit_wait_exhausted;
    }
}

type Counters = Arc<Mutex<BTreeMap<ProviderModelKey, AttemptCounts>>>;

/// Maps concrete model calls to admitted, classified, exactly-once-released attempts.
pub struct ModelRequestExecutor {
    controller: Arc<AdaptiveRequestAdmissionController>,
    budgets: Arc<BudgetLedger>,
    events: RequestEventStream,
    config: ExecutorConfig,
    counts: Counters,
    shared: Option<SharedLimitsWiring>,
}

/// The shared-limits gate and what each endpoint asks of it (its static cap and configured
/// budgets; the token estimate is added per attempt).
struct SharedLimitsWiring {
    gate: Arc<SharedGate>,
    endpoints: HashMap<ProviderModelKey, SharedDemand>,
}

impl std::fmt::Debug for ModelRequestExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRequestExecutor")
            .field("config", &self.config)
            .finish()
    }
}

/// Counts an attempt as cancelled unless it reached a classified end.
struct AttemptGuard {
    counts: Counters,
    key: ProviderModelKey,
    armed: bool,
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if self.armed {
            let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(self.key.clone()).or_default().cancelled += 1;
        }
    }
}

impl ModelRequestExecutor {
    /// An executor over `controller`; `events` should be the controller's own request stream so
    /// one sequence orders the whole request timeline. Budgets start empty (nothing configured;
    /// limits are still learned from headers): see [`with_budgets`](Self::with_budgets).
    pub fn new(
        controller: Arc<AdaptiveRequestAdmissionController>,
        events: RequestEventStream,
        config: ExecutorConfig,
    ) -> Self {
        Self {
            controller,
            budgets: Arc::new(BudgetLedger::default()),
            events,
            config,
            counts: Arc::default(),
            shared: None,
        }
    }

    /// The same executor admitting every attempt also under `gate` (shared limits of several
    /// workers); `endpoints` gives each endpoint's static cap and configured budgets.
    pub fn with_shared_limits(
        mut self,
        gate: Arc<SharedGate>,
        endpoints: HashMap<ProviderModelKey, SharedDemand>,
    ) -> Self {
        self.shared = Some(SharedLimitsWiring { gate, endpoints });
        self
    }

    /// The shared-limits gate, when one is configured.
    pub fn shared_limits(&self) -> Option<&Arc<SharedGate>> {
        self.shared.as_ref().map(|s| &s.gate)
    }

    /// The same executor reserving on `budgets` (the engine's ledger, with the spec's limits).
    pub fn with_budgets(mut self, budgets: Arc<BudgetLedger>) -> Self {
        self.budgets = budgets;
        self
    }

    /// The request-admission controller.
    pub fn controller(&self) -> &Arc<AdaptiveRequestAdmissionController> {
        &self.controller
    }

    /// The budget ledger (read its `snapshots()` for the report).
    pub fn budgets(&self) -> &Arc<BudgetLedger> {
        &self.budgets
    }

    /// Attempt counters per endpoint so far.
    pub fn attempt_counts(&self) -> BTreeMap<ProviderModelKey, AttemptCounts> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `request` against `provider` on `resource`, retrying retryable failures with
    /// backoff (each retry is a new admitted attempt). `alias` only labels errors.
    ///
    /// Failures other than rate limits end the call after `max_attempts` attempts; rate-limited
    /// attempts are retried until the call has waited `max_rate_limit_wait` on them.
    pub async fn execute(
        &self,
        alias: &str,
        provider: &dyn ModelProvider,
        resource: &RequestResourceKey,
        request: ProviderRequest,
    ) -> Result<ProviderResponse, ModelCallError> {
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        // The wait is wall time since the call's first rate limit: backoff sleeps, budget
        // waits *and* the admission queue and cooldown behind them all count, so one call
        // cannot crawl for hours while each of its sleeps looks short.
        let mut first_rate_limit: Option<tokio::time::Instant> = None;
        let waited = |first: Option<tokio::time::Instant>| {
            first.map_or(Duration::ZERO, |t| {
                tokio::time::Instant::now().saturating_duration_since(t)
            })
        };
        let mut last_rate_limit: Option<ProviderError> = None;
        loop {
            let allowance = first_rate_limit.map(|_| {
                self.config
                    .max_rate_limit_wait
                    .saturating_sub(waited(first_rate_limit))
            });
            let (result, _budget_wait) = self
                .attempt(alias, provider, resource, request.clone(), allowance)
                .await;
            match result {
                Ok(response) => return Ok(response),
                Err(AttemptFailure::Admission(e)) => return Err(e),
                Err(AttemptFailure::RateLimitWait { last }) => {
                    // Name the provider's own last answer, not the synthetic placeholder.
                    let last = last_rate_limit.unwrap_or(last);
                    let w = waited(first_rate_limit);
                    return Err(self.wait_exhausted(alias, resource, &last, w, rate_limited));
                }
                Err(AttemptFailure::Provider(e)) if is_rate_limited(&e) => {
                    rate_limited += 1;
                    first_rate_limit.get_or_insert_with(tokio::time::Instant::now);
                    let delay = self.rate_limit_backoff(rate_limited, &e, resource);
                    let w = waited(first_rate_limit);
                    if w + delay > self.config.max_rate_limit_wait {
                        return Err(self.wait_exhausted(alias, resource, &e, w, rate_limited));
                    }
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    last_rate_limit = Some(e);
                }
                Err(AttemptFailure::Provider(e)) => {
                    failures += 1;
                    if !e.retryable() || failures >= self.config.max_attempts {
                        return Err(model_call_error(alias, &e));
                    }
                    let delay = self.backoff(failures, &e, resource);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One admitted attempt: budget reservation → acquire → call → release and settle.
    pub async fn execute_attempt(
        &self,
        alias: &str,
        provider: &dyn ModelProvider,
        resource: &RequestResourceKey,
        request: ProviderRequest,
    ) -> Result<ProviderResponse, AttemptFailure> {
        self.attempt(alias, provider, resource, request, None)
            .await
            .0
    }

    /// The typed end of a call that waited `max_rate_limit_wait` on rate limits.
    fn wait_exhausted(
        &self,
        alias: &str,
        resource: &RequestResourceKey,
        last: &ProviderError,
        waited: Duration,
        rate_limited: u32,
    ) -> ModelCallError {
        self.bump(&resource.provider_model(), |c| {
            c.rate_limit_wait_exhausted += 1;
        });
        let mut e = model_call_error(alias, last);
        e.message = format!(
            "still rate limited after {rate_limited} rate-limited attempts and {:.1}s of waiting \
             (max_rate_limit_wait {:.0}s): {}",
            waited.as_secs_f64(),
            self.config.max_rate_limit_wait.as_secs_f64(),
            last.message
        );
        e
    }

    /// One attempt and how long its budget reservation waited. With `allowance`, a budget
    /// wait longer than it ends the attempt (nothing sent, the reservation refunded).
    async fn attempt(
        &self,
        alias: &str,
        provider: &dyn ModelProvider,
        resource: &RequestResourceKey,
        mut request: ProviderRequest,
        allowance: Option<Duration>,
    ) -> (Result<ProviderResponse, AttemptFailure>, Duration) {
        let key = resource.provider_model();
        // Budgets first: waiting for a budget slot must not hold a concurrency lease.
        // An embedding writes no output tokens; a chat call's configured `max_tokens` is its
        // output estimate (unset: the ledger's learned estimate).
        let max_tokens = if request.domain == RequestDomain::Embedding {
            Some(0)
        } else {
            request.max_tokens().map(u64::from)
        };
        let mut reservation = self
            .budgets
            .reserve_for(&key, request.prompt_chars(), max_tokens);
        let budget_wait = reservation.wait();
        if let Some(a) = allowance {
            if budget_wait > a {
                reservation.cancel();
                let last = ProviderError::rate_limited(None);
                return (Err(AttemptFailure::RateLimitWait { last }), budget_wait);
            }
        }
        // Time held by a window probe (an exhausted window with no stated reset) is rate-limit
        // waiting: bounded by what is left of `max_rate_limit_wait`.
        let probe_wait = allowance.unwrap_or(self.config.max_rate_limit_wait);
        if !reservation.ready_within(Some(probe_wait)).await {
            reservation.cancel();
            let last = ProviderError::rate_limited(None);
            return (Err(AttemptFailure::RateLimitWait { last }), probe_wait);
        }
        let correlation = RuntimeCorrelationProvider::current();
        let attempt_id = RequestAttemptId::next();
        let context = RequestEventContext {
            task_execution_id: correlation.as_ref().and_then(|c| c.task_execution_id),
            captured_correlation: correlation,
            request_attempt_id: Some(attempt_id),
        };
        let mut item = RequestAdmissionItem::new(resource.clone())
            .with_group(RequestGroupSpec::for_resource(resource.clone()))
            .with_event_context(context.clone());
        if let Some(t) = self.config.queue_wait_timeout {
            item = item.with_queue_wait_timeout(t);
        }
        let lease = loop {
            let lease = match self.controller.acquire(item.clone()).await {
                Ok(lease) => lease,
                Err(e) => {
                    // Nothing was sent: the reservation's drop refunds it.
                    drop(reservation);
                    self.bump(&key, |c| c.admission_errors += 1);
                    let reason = e
                        .reason()
                        .map(|r| r.as_str())
                        .unwrap_or("blocking_on_runtime_thread");
                    let error = ModelCallError::new(
                        alias,
                        ModelCallErrorKind::Admission {
                            reason: reason.to_owned(),
                        },
                        e.to_string(),
                    );
                    return (Err(AttemptFailure::Admission(error)), budget_wait);
                }
            };
            // A window being probed for a reset nobody stated holds this request (it was queued
            // for a lease when the window ran out): waiting for the probe while holding a lease
            // could starve the probe of one. Give the lease back unused and wait without it.
            if !reservation.held_by_window_probe() {
                break lease;
            }
            self.controller
                .release(lease, RequestReleaseOutcome::local_cancelled());
            if !reservation.ready_within(Some(probe_wait)).await {
                reservation.cancel();
                let last = ProviderError::rate_limited(None);
                return (Err(AttemptFailure::RateLimitWait { last }), probe_wait);
            }
        };
        // The shared gate comes after the local lease and budgets: an extra gate, never instead.
        let shared_lease = match &self.shared {
            None => None,
            Some(shared) => {
                let demand = SharedDemand {
                    tokens: reservation.units(BudgetKind::Tokens),
                    ..shared.endpoints.get(&key).copied().unwrap_or_default()
                };
                match shared.gate.admit(&key, demand, Some(probe_wait)).await {
                    Ok(l) => Some(l),
                    Err(_) => {
                        self.controller
                            .release(lease, RequestReleaseOutcome::local_cancelled());
                        reservation.cancel();
                        let last = ProviderError::rate_limited(None);
                        return (Err(AttemptFailure::RateLimitWait { last }), probe_wait);
                    }
                }
            }
        };
        let mut guard = AttemptGuard {
            counts: self.counts.clone(),
            key: key.clone(),
            armed: true,
        };
        self.bump(&key, |c| c.attempts += 1);
        // A reservation made before the endpoint's budget was learned (or changed, or blocked)
        // re-books now; only then does it wait while holding the lease (rare: pacing changes).
        if reservation.revalidate() {
            reservation.ready().await;
        }
        // From here a dropped future keeps the reservation charged: the provider may count it.
        reservation.mark_used();
        let lease_id = lease.lease_id();
        self.emit(
            RequestEventKind::ModelRequestStarted,
            resource,
            &context,
            lease_id,
            None,
        );
        if let Some(t) = self.config.request_timeout {
            if request.timeout.is_none_or(|own| own > t) {
                request.timeout = Some(t);
            }
        }
        let limit = request.timeout;
        let result = match limit {
            Some(t) => match tokio::time::timeout(t, provider.call(request)).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::timeout()),
            },
            None => provider.call(request).await,
        };
        let outcome = match &result {
            Ok(r) => r.release_outcome(),
            Err(e) => e.release_outcome(),
        };
        self.emit(
            RequestEventKind::ModelRequestCompleted,
            resource,
            &context,
            lease_id,
            Some(&outcome),
        );
        guard.armed = false;
        self.bump(&key, |c| c.record(outcome.kind));
        self.controller.release(lease, outcome);
        if let Some(shared_lease) = shared_lease {
            shared_lease.release(shared_release(&result)).await;
        }
        match &result {
            Ok(r) => reservation.settle(r.usage, r.rate_limits.as_ref()),
            Err(e) => {
                // No usage on an error: the reservation stays charged as estimated; a token
                // window's 429 also says what the request needed.
                let block = self.window_block(e);
                match (e.rate_limit_signal, e.retry_after) {
                    (Some(RateLimitSignal::TokenWindow), Some(wait)) => {
                        reservation.settle_refused(e.rate_limits.as_ref(), wait)
                    }
                    (Some(signal), _) if block.is_none() && Self::is_window_429(e) => {
                        // A window 429 that states no reset: the budget probes the window.
                        let kind = match signal {
                            RateLimitSignal::TokenWindow => BudgetKind::Tokens,
                            _ => BudgetKind::Requests,
                        };
                        reservation.settle_window_refused(kind, e.rate_limits.as_ref());
                    }
                    _ => reservation.settle(None, e.rate_limits.as_ref()),
                }
                if let Some((kinds, block)) = block {
                    let now = tokio::time::Instant::now();
                    for kind in kinds {
                        self.budgets.block(&key, *kind, block, now);
                    }
                }
            }
        }
        (result.map_err(AttemptFailure::Provider), budget_wait)
    }

    /// A window 429 with a known reset: the windows to block and for how long (Retry-After,
    /// else the window's reset header, capped by `max_retry_after`).
    fn window_block(&self, e: &ProviderError) -> Option<(&'static [BudgetKind], Duration)> {
        if e.kind != ProviderErrorKind::RateLimited {
            return None;
        }
        const REQUESTS: &[BudgetKind] = &[BudgetKind::Requests];
        const TOKENS: &[BudgetKind] = &[
            BudgetKind::Tokens,
            BudgetKind::InputTokens,
            BudgetKind::OutputTokens,
        ];
        let (kinds, reset) = match e.rate_limit_signal? {
            RateLimitSignal::RequestWindow => {
                (REQUESTS, e.rate_limits.and_then(|o| o.requests.reset_after))
            }
            RateLimitSignal::TokenWindow => (
                TOKENS,
                e.rate_limits.and_then(|o| {
                    [o.tokens, o.input_tokens, o.output_tokens]
                        .iter()
                        .filter_map(|w| w.reset_after)
                        .max()
                }),
            ),
            RateLimitSignal::Concurrency => return None,
        };
        let block = e.retry_after.or(reset).filter(|d| !d.is_zero())?;
        Some((kinds, block.min(self.config.max_retry_after)))
    }

    /// A 429 that says a rate window (not concurrency) refused it.
    fn is_window_429(e: &ProviderError) -> bool {
        e.kind == ProviderErrorKind::RateLimited
            && matches!(
                e.rate_limit_signal,
                Some(RateLimitSignal::RequestWindow | RateLimitSignal::TokenWindow)
            )
    }

    /// Per-request wait after a rate-limited attempt: zero for a window 429 (its window is now
    /// blocked until a known reset, or probed for an unknown one: the retry's budget
    /// reservation waits instead); the Retry-After (capped, with up to `jitter` extra); else
    /// exponential backoff with full jitter.
    fn rate_limit_backoff(
        &self,
        rate_limited: u32,
        e: &ProviderError,
        resource: &RequestResourceKey,
    ) -> Duration {
        if Self::is_window_429(e) {
            return Duration::ZERO;
        }
        let unit = jitter_unit(resource, rate_limited);
        if let Some(ra) = e.retry_after {
            let capped = ra.min(self.config.max_retry_after);
            return capped.mul_f64(1.0 + self.config.jitter * unit);
        }
        let exp = rate_limited.saturating_sub(1).min(20);
        let ceiling = self
            .config
            .base_backoff
            .saturating_mul(1u32 << exp)
            .min(self.config.max_backoff);
        ceiling.mul_f64(unit)
    }

    fn backoff(&self, attempt: u32, e: &ProviderError, resource: &RequestResourceKey) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let raw = self.config.base_backoff.saturating_mul(1u32 << exp);
        let capped = raw.min(self.config.max_backoff);
        let unit = jitter_unit(resource, attempt);
        let delay = capped.mul_f64(1.0 + self.config.jitter * unit);
        // Honour a server's Retry-After on other failures too, within the backoff cap.
        match e.retry_after {
            Some(ra) if ra > delay => ra.min(self.config.max_backoff),
            _ => delay,
        }
    }

    fn bump(&self, key: &ProviderModelKey, f: impl FnOnce(&mut AttemptCounts)) {
        let mut map = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(key.clone()).or_default());
    }

    fn emit(
        &self,
        kind: RequestEventKind,
        resource: &RequestResourceKey,
        context: &RequestEventContext,
        lease_id: weir_contracts::LeaseId,
        outcome: Option<&RequestReleaseOutcome>,
    ) {
        self.events.emit_with(kind, |now| {
            use weir_contracts::RequestEventPayload as P;
            let mut payload = P::default_for(kind);
            if let (P::ModelRequestCompleted(c), Some(o)) = (&mut payload, outcome) {
                c.provider_status = o.provider_status;
            }
            let mut e = RequestAdmissionEvent::with_payload(payload, now);
            e.captured_correlation = context.captured_correlation.as_deref().cloned();
            e.task_execution_id = context.task_execution_id;
            e.request_attempt_id = context.request_attempt_id;
            e.request_lease_id = Some(lease_id);
            e.request_resource_key = Some(resource.clone());
            e.request_group_key = Some(resource.clone());
            if let Some(o) = outcome {
                e.reason_or_outcome = Some(o.kind.as_str().to_owned());
            }
            e
        });
    }
}

/// Why one attempt produced no response.
// A failure is built once per failed attempt and moved once; boxing it would cost an
// allocation on every failure to save a copy.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AttemptFailure {
    /// Request admission refused or timed out before the provider was called (typed; never
    /// disguised as a provider timeout).
    Admission(ModelCallError),
    /// The provider call failed after it started.
    Provider(ProviderError),
    /// After a rate limit, the budget would have made the retry wait past what is left of
    /// `max_rate_limit_wait`; nothing was sent.
    RateLimitWait {
        /// The rate limit the call is still under (for the error it ends with).
        last: ProviderError,
    },
}

/// What a finished attempt tells the shared limits: its class, Retry-After and the per-minute
/// limits its headers stated.
fn shared_release(result: &Result<ProviderResponse, ProviderError>) -> SharedRelease {
    let (outcome, retry_after, observed) = match result {
        Ok(r) => (SharedOutcome::Success, None, r.rate_limits),
        Err(e) if ModelRequestExecutor::is_window_429(e) => {
            (SharedOutcome::WindowLimited, e.retry_after, e.rate_limits)
        }
        Err(e) if is_rate_limited(e) => (
            SharedOutcome::ConcurrencyLimited,
            e.retry_after,
            e.rate_limits,
        ),
        Err(e) => (SharedOutcome::Other, None, e.rate_limits),
    };
    SharedRelease {
        outcome,
        retry_after,
        observed_requests_per_minute: observed.and_then(|o| o.requests.limit),
        observed_tokens_per_minute: observed.and_then(|o| o.tokens.limit),
    }
}

/// True for attempts that mean "wait" rather than "failed": 429s and 503 overload.
fn is_rate_limited(e: &ProviderError) -> bool {
    matches!(
        e.kind,
        ProviderErrorKind::RateLimited | ProviderErrorKind::Overloaded
    )
}

/// A deterministic jitter draw in [0, 1): hashed from the endpoint, the attempt number and a
/// fresh attempt id (no wall-clock randomness, so seeded runs stay reproducible in shape).
fn jitter_unit(resource: &RequestResourceKey, attempt: u32) -> f64 {
    let mut h = Fnv64::new();
    h.write(resource.to_string().as_bytes());
    h.write(&attempt.to_le_bytes());
    h.write(&RequestAttemptId::next().0.to_le_bytes());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Classifies a provider failure for generator code.
pub fn model_call_error(alias: &str, e: &ProviderError) -> ModelCallError {
    let kind = match e.kind {
        ProviderErrorKind::RateLimited | ProviderErrorKind::Overloaded => {
            ModelCallErrorKind::RateLimited {
                retry_after_seconds: e.retry_after.map(|d| d.as_secs_f64()),
            }
        }
        ProviderErrorKind::Timeout => ModelCallErrorKind::ProviderTimeout,
        ProviderErrorKind::ServerError | ProviderErrorKind::Connection => {
            ModelCallErrorKind::ProviderFailure {
                status: e.status,
                retryable: true,
            }
        }
        ProviderErrorKind::Client
        | ProviderErrorKind::Unreachable
        | ProviderErrorKind::Tls
        | ProviderErrorKind::Redirect
        | ProviderErrorKind::ResponseTooLarge => ModelCallErrorKind::ProviderFailure {
            status: e.status,
            retryable: false,
        },
        ProviderErrorKind::Malformed => ModelCallErrorKind::MalformedResponse,
    };
    ModelCallError::new(alias, kind, e.message.clone()).with_provider_error(e)
}

/// Where a model alias routes: its provider and canonical endpoint.
#[derive(Clone)]
pub struct ModelRoute {
    /// The provider serving the endpoint.
    pub provider: Arc<dyn ModelProvider>,
    /// The canonical endpoint.
    pub endpoint: ProviderModelKey,
}
