//! `SchedulerConfig`: the engine-internal settings of one scheduler run, validated with typed errors.

use std::fmt;
use std::time::Duration;

/// How many row groups may be in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowGroupMode {
    /// A fixed hard cap (`max_concurrent_row_groups`): the normal mode.
    Fixed,
    /// Additive-only: start at `initial` and raise the soft target by one whenever a row group is
    /// admitted with no local pressure, up to the hard cap. Never decreases (so it is not AIMD).
    Adaptive {
        /// Starting target (≥ 1, ≤ the hard cap).
        initial: u32,
    },
}

/// Early shutdown on a sliding-window failure rate of model-call task outcomes.
///
/// Only tasks of model-backed columns count (their success or terminal failure): local
/// samplers and expressions always succeed and would dilute the window, so a run whose every
/// model call fails could otherwise never trip it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyShutdownConfig {
    /// Number of most recent model-task outcomes in the window.
    pub window: usize,
    /// Outcomes needed in the window before the rate is judged (small, so small runs stop too).
    pub min_outcomes: usize,
    /// Failure share in (0, 1] at or above which the run stops early.
    pub max_failure_rate: f64,
}

impl Default for EarlyShutdownConfig {
    fn default() -> Self {
        Self {
            window: 200,
            min_outcomes: 10,
            max_failure_rate: 0.5,
        }
    }
}

/// Retry of transient task failures with backoff: one retry budget per cell.
///
/// A cell may spend `1 + max_retries` outbound requests on transient, non-rate-limit failures
/// (5xx, timeouts, connection errors). Attempts the model facade already made in place (the
/// executor's `max_attempts`, reported in `ModelCallError::attempts`) count against it, so
/// the scheduler re-runs a cell only while budget is left — never executor × scheduler tries.
/// Rate limits and request-admission waits spend nothing: such tasks wait and are retried
/// (salvage), bounded by the [`CircuitBreakerConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRetryConfig {
    /// Budget of a cell beyond its first request (0 = never retry a transient failure).
    pub max_retries: u32,
    /// Backoff before the first retry.
    pub base_delay: Duration,
    /// Upper bound of one backoff.
    pub max_delay: Duration,
    /// Jitter as a share of the delay, in [0, 1].
    pub jitter: f64,
}

impl Default for TaskRetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            jitter: 0.2,
        }
    }
}

/// Circuit breaker per model alias: ends a run whose provider keeps failing instead of
/// salvaging forever.
///
/// The circuit of a model opens when it has not answered a single call for `open_after` and at
/// least `min_failures` task executions against it failed in a row (rate limits, admission
/// waits and transient failures alike). Any success closes it again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitBreakerConfig {
    /// How long a model may go without one success before its circuit may open.
    pub open_after: Duration,
    /// Consecutive failed executions needed as well (so one slow wait cannot open it).
    pub min_failures: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            open_after: Duration::from_secs(180),
            min_failures: 8,
        }
    }
}

/// Settings of one `AsyncTaskScheduler` run.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Hard cap on row groups in flight (admitted and not yet checkpointed).
    pub max_concurrent_row_groups: u32,
    /// Fixed or additive-adaptive row-group admission.
    pub row_group_mode: RowGroupMode,
    /// Task-stage `submission` capacity: running workers at most.
    pub submission_capacity: u32,
    /// Retry of retryable task failures.
    pub retry: TaskRetryConfig,
    /// Early shutdown (None = disabled).
    pub early_shutdown: Option<EarlyShutdownConfig>,
    /// Circuit breaker per model alias (None = salvage rate limits forever, as the reference).
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Stop the run at the first configuration failure (bad key, unknown model, wrong URL, ...).
    pub fail_fast: bool,
    /// After a cancel request, how long in-flight workers may run before they are aborted.
    pub cancel_grace: Duration,
    /// Emit a `scheduler_health_snapshot` at this interval (None = never).
    pub health_snapshot_interval: Option<Duration>,
    /// Prefer unpressured peers over candidates whose model is cooling down (read-only advisory).
    pub request_pressure_advisory: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_row_groups: 3,
            row_group_mode: RowGroupMode::Fixed,
            submission_capacity: 1024,
            retry: TaskRetryConfig::default(),
            early_shutdown: Some(EarlyShutdownConfig::default()),
            circuit_breaker: Some(CircuitBreakerConfig::default()),
            fail_fast: true,
            cancel_grace: Duration::from_secs(5),
            health_snapshot_interval: None,
            request_pressure_advisory: true,
        }
    }
}

/// A scheduler setting is invalid; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SchedulerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SchedulerConfigError {}

fn err(field: &'static str, message: impl Into<String>) -> SchedulerConfigError {
    SchedulerConfigError {
        field,
        message: message.into(),
    }
}

impl SchedulerConfig {
    /// Checks every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), SchedulerConfigError> {
        if self.max_concurrent_row_groups == 0 {
            return Err(err("max_concurrent_row_groups", "must be at least 1"));
        }
        if let RowGroupMode::Adaptive { initial } = self.row_group_mode {
            if initial == 0 || initial > self.max_concurrent_row_groups {
                return Err(err(
                    "row_group_mode.initial",
                    format!(
                        "must be in [1, max_concurrent_row_groups = {}], got {initial}",
                        self.max_concurrent_row_groups
                    ),
                ));
            }
        }
        if self.submission_capacity == 0 {
            return Err(err("submission_capacity", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.retry.jitter) {
            return Err(err("retry.jitter", "must be in [0, 1]"));
        }
        if self.retry.base_delay > self.retry.max_delay {
            return Err(err("retry.base_delay", "must not exceed retry.max_delay"));
        }
        if let Some(es) = &self.early_shutdown {
            if es.window == 0 {
                return Err(err("early_shutdown.window", "must be at least 1"));
            }
            if es.min_outcomes == 0 || es.min_outcomes > es.window {
                return Err(err(
                    "early_shutdown.min_outcomes",
                    "must be in [1, early_shutdown.window]",
                ));
            }
            if !(es.max_failure_rate > 0.0 && es.max_failure_rate <= 1.0) {
                return Err(err("early_shutdown.max_failure_rate", "must be in (0, 1]"));
            }
        }
        if let Some(cb) = &self.circuit_breaker {
            if cb.open_after.is_zero() {
                return Err(err("circuit_breaker.open_after", "must be positive"));
            }
            if cb.min_failures == 0 {
                return Err(err("circuit_breaker.min_failures", "must be at least 1"));
            }
        }
        if self.health_snapshot_interval == Some(Duration::ZERO) {
            return Err(err("health_snapshot_interval", "must be positive when set"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_each_bad_field_is_named() {
        assert_eq!(SchedulerConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut SchedulerConfig)| {
            let mut c = SchedulerConfig::default();
            f(&mut c);
            c.validate().unwrap_err().field
        };
        assert_eq!(
            bad(|c| c.max_concurrent_row_groups = 0),
            "max_concurrent_row_groups"
        );
        assert_eq!(
            bad(|c| c.row_group_mode = RowGroupMode::Adaptive { initial: 9 }),
            "row_group_mode.initial"
        );
        assert_eq!(bad(|c| c.submission_capacity = 0), "submission_capacity");
        assert_eq!(bad(|c| c.retry.jitter = 1.5), "retry.jitter");
        assert_eq!(
            bad(|c| c.retry.base_delay = Duration::from_secs(99)),
            "retry.base_delay"
        );
        assert_eq!(
            bad(|c| c.early_shutdown = Some(EarlyShutdownConfig {
                window: 0,
                ..Default::default()
            })),
            "early_shutdown.window"
        );
        assert_eq!(
            bad(|c| c.early_shutdown = Some(EarlyShutdownConfig {
                max_failure_rate: 0.0,
                ..Default::default()
            })),
            "early_shutdown.max_failure_rate"
        );
        assert_eq!(
            bad(|c| c.circuit_breaker = Some(CircuitBreakerConfig {
                min_failures: 0,
                ..Default::default()
            })),
            "circuit_breaker.min_failures"
        );
        assert_eq!(
            bad(|c| c.health_snapshot_interval = Some(Duration::ZERO)),
            "health_snapshot_interval"
        );
    }
}
