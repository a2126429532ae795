//! `ModelRequestExecutor`: one request lease per outbound attempt, classified release, retries.
//!
//! The executor is the only place where model-call code meets request admission. Each attempt:
//! build a `RequestAdmissionItem` (with the caller's captured correlation and a fresh attempt id)
//! → `acquire` (the controller emits the wait and lease events) → `model_request_started` →
//! provider call (bounded by the request timeout) → `model_request_completed` → `release(lease,
//! outcome)`. If the caller's future is dropped while an attempt holds a lease, the lease's drop
//! guard releases it as `local_cancelled`; an attempt counter guard records the cancellation.
//! Retries live here, around whole attempts, so every outbound attempt is visible to admission.

use crate::model_facade::{ModelCallError, ModelCallErrorKind};
use crate::provider::{
    ModelProvider, ProviderError, ProviderErrorKind, ProviderRequest, ProviderResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use weir_contracts::{
    Fnv64, ProviderModelKey, RequestAdmissionEvent, RequestAttemptId, RequestEventContext,
    RequestEventKind, RequestGroupSpec, RequestReleaseOutcome, RequestReleaseOutcomeKind,
    RequestResourceKey,
};
use weir_request_admission::{AdaptiveRequestAdmissionController, RequestAdmissionItem};
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
    }
}

type Counters = Arc<Mutex<BTreeMap<ProviderModelKey, AttemptCounts>>>;

/// Maps concrete model calls to admitted, classified, exactly-once-released attempts.
pub struct ModelRequestExecutor {
    controller: Arc<AdaptiveRequestAdmissionController>,
    events: RequestEventStream,
    config: ExecutorConfig,
    counts: Counters,
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
    /// one sequence orders the whole request timeline.
    pub fn new(
        controller: Arc<AdaptiveRequestAdmissionController>,
        events: RequestEventStream,
        config: ExecutorConfig,
    ) -> Self {
        Self {
            controller,
            events,
            config,
            counts: Arc::default(),
        }
    }

    /// The request-admission controller.
    pub fn controller(&self) -> &Arc<AdaptiveRequestAdmissionController> {
        &self.controller
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
    pub async fn execute(
        &self,
        alias: &str,
        provider: &dyn ModelProvider,
        resource: &RequestResourceKey,
        request: ProviderRequest,
    ) -> Result<ProviderResponse, ModelCallError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self
                .execute_attempt(alias, provider, resource, request.clone())
                .await
            {
                Ok(response) => return Ok(response),
                Err(AttemptFailure::Admission(e)) => return Err(e),
                Err(AttemptFailure::Provider(e)) => {
                    if !e.retryable() || attempt >= self.config.max_attempts {
                        return Err(model_call_error(alias, &e));
                    }
                    let delay = self.backoff(attempt, &e, resource);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One admitted attempt: acquire → call → release with the classified outcome.
    pub async fn execute_attempt(
        &self,
        alias: &str,
        provider: &dyn ModelProvider,
        resource: &RequestResourceKey,
        mut request: ProviderRequest,
    ) -> Result<ProviderResponse, AttemptFailure> {
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
        let key = resource.provider_model();
        let lease = match self.controller.acquire(item).await {
            Ok(lease) => lease,
            Err(e) => {
                self.bump(&key, |c| c.admission_errors += 1);
                let reason = e
                    .reason()
                    .map(|r| r.as_str())
                    .unwrap_or("blocking_on_runtime_thread");
                return Err(AttemptFailure::Admission(ModelCallError::new(
                    alias,
                    ModelCallErrorKind::Admission {
                        reason: reason.to_owned(),
                    },
                    e.to_string(),
                )));
            }
        };
        let mut guard = AttemptGuard {
            counts: self.counts.clone(),
            key: key.clone(),
            armed: true,
        };
        self.bump(&key, |c| c.attempts += 1);
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
        result.map_err(AttemptFailure::Provider)
    }

    fn backoff(&self, attempt: u32, e: &ProviderError, resource: &RequestResourceKey) -> Duration {
        if e.kind == ProviderErrorKind::RateLimited || e.kind == ProviderErrorKind::Overloaded {
            // Request admission already holds the resource in cooldown until Retry-After (capped
            // by its `max_retry_after_seconds`): the next acquire waits there, so sleeping here
            // would only idle the endpoint — or hang on an absurd header.
            return Duration::ZERO;
        }
        let exp = attempt.saturating_sub(1).min(20);
        let raw = self.config.base_backoff.saturating_mul(1u32 << exp);
        let capped = raw.min(self.config.max_backoff);
        let mut h = Fnv64::new();
        h.write(resource.to_string().as_bytes());
        h.write(&attempt.to_le_bytes());
        h.write(&RequestAttemptId::next().0.to_le_bytes());
        let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
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
            let mut e = RequestAdmissionEvent::new(kind, now);
            e.captured_correlation = context.captured_correlation.as_deref().cloned();
            e.task_execution_id = context.task_execution_id;
            e.request_attempt_id = context.request_attempt_id;
            e.request_lease_id = Some(lease_id);
            e.request_resource_key = Some(resource.clone());
            e.request_group_key = Some(resource.clone());
            if let Some(o) = outcome {
                e.reason_or_outcome = Some(o.kind.as_str().to_owned());
                if let Some(status) = o.provider_status {
                    e.diagnostics
                        .insert("provider_status".into(), status.into());
                }
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
