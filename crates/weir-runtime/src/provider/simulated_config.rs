//! Per-model configuration of the simulated provider: the CLI's JSON shape and its validation.

use super::latency::LatencyDist;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A simulated-provider config value failed validation; `field` names it (JSON-path-like).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedConfigError {
    /// The offending field, e.g. `"capacity"`, `"latency_ms.sigma"`, `"capacity_schedule[1].at_s"`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl SimulatedConfigError {
    /// An error naming `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix.` in front of the field (for lists of models).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

impl fmt::Display for SimulatedConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SimulatedConfigError {}

/// From `at_s` seconds after the provider started, the hidden capacity is `capacity`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityStep {
    /// Seconds since the provider was built (≥ 0, strictly increasing along the schedule).
    pub at_s: f64,
    /// Hidden concurrency capacity from then on (≥ 1).
    pub capacity: u32,
}

/// A request token bucket: `burst` calls at once, refilled at `per_second`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBucketConfig {
    /// Refill rate in calls per second (> 0).
    pub per_second: f64,
    /// Bucket size (≥ 1).
    pub burst: u32,
}

/// A fixed window: `limit` calls per `window_s` seconds, windows tiling time from the first call.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedWindowConfig {
    /// Calls per window (≥ 1).
    pub limit: u32,
    /// Window length in seconds (> 0).
    pub window_s: f64,
}

/// A tokens-per-minute bucket; a call costs ⌈prompt chars / 4⌉ + `max_tokens`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBucketConfig {
    /// Refill rate in tokens per minute (≥ 1).
    pub tokens_per_minute: u64,
    /// Bucket size in tokens (≥ 1).
    pub burst: u64,
}

/// Completion tokens a simulated call requests (and is charged for) unless configured.
pub const DEFAULT_SIMULATED_MAX_TOKENS: u32 = 16;

fn default_max_tokens() -> u32 {
    DEFAULT_SIMULATED_MAX_TOKENS
}

/// One simulated model endpoint.
///
/// JSON (a contract for the CLI; unknown fields are rejected, omitted optional fields default):
/// `{"model_id": "m1", "capacity": 32, "latency_ms": {"dist": "fixed", "value": 100},
///   "retry_after_s": 1.0, "rpm": null, "error_rate": 0.0, "timeout_rate": 0.0,
///   "capacity_schedule": [{"at_s": 30.0, "capacity": 16}],
///   "request_bucket": {"per_second": 200, "burst": 20},
///   "fixed_window": {"limit": 1000, "window_s": 6},
///   "token_bucket": {"tokens_per_minute": 360000, "burst": 400},
///   "max_tokens": 16, "output_tokens": null, "sporadic_429_rate": 0.0,
///   "rate_limit_headers": false, "queueing": false}`
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedModelConfig {
    /// Canonical model endpoint id the provider answers for.
    pub model_id: String,
    /// Hidden concurrency capacity C: a call arriving while ≥ C are in flight gets a fast 429.
    pub capacity: u32,
    /// Latency of a served call, in ms.
    pub latency_ms: LatencyDist,
    /// Retry-After sent with capacity 429s (seconds, > 0); `None` sends no Retry-After.
    #[serde(default)]
    pub retry_after_s: Option<f64>,
    /// Requests-per-minute limit over a sliding 60 s window; `None` means unlimited.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Probability in [0, 1] that a served call fails with a 500.
    #[serde(default)]
    pub error_rate: f64,
    /// Probability in [0, 1] that a served call times out (error_rate + timeout_rate ≤ 1).
    #[serde(default)]
    pub timeout_rate: f64,
    /// Capacity changes over time, sorted by `at_s`.
    #[serde(default)]
    pub capacity_schedule: Vec<CapacityStep>,
    /// A request token bucket; past it a 429 with Retry-After = time until one call is back and
    /// `rate_limit_signal = RequestWindow`.
    #[serde(default)]
    pub request_bucket: Option<RequestBucketConfig>,
    /// A fixed request window (LiteLLM-style); past it a 429 with no Retry-After and
    /// `rate_limit_signal = RequestWindow`.
    #[serde(default)]
    pub fixed_window: Option<FixedWindowConfig>,
    /// A tokens-per-minute bucket; past it a 429 with Retry-After = time until the call's tokens
    /// are back and `rate_limit_signal = TokenWindow`.
    #[serde(default)]
    pub token_bucket: Option<TokenBucketConfig>,
    /// Completion tokens each call requests: charged to the token bucket with the prompt
    /// estimate (the provider request carries no `max_tokens`).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Completion tokens a served chat call reports in `usage` (`None`: `max_tokens`).
    #[serde(default)]
    pub output_tokens: Option<u32>,
    /// Probability in [0, 1] that a call gets a 429 with no Retry-After, unrelated to load.
    #[serde(default)]
    pub sporadic_429_rate: f64,
    /// Report the request and token budgets on every answer (`rate_limits`, the OpenAI headers'
    /// content), 429s included.
    #[serde(default)]
    pub rate_limit_headers: bool,
    /// vLLM-like: a call arriving at capacity waits (FIFO) instead of getting a 429.
    #[serde(default)]
    pub queueing: bool,
}

impl SimulatedModelConfig {
    /// A model with capacity C and the given latency; no rpm limit, no faults, no schedule.
    pub fn new(model_id: impl Into<String>, capacity: u32, latency_ms: LatencyDist) -> Self {
        Self {
            model_id: model_id.into(),
            capacity,
            latency_ms,
            retry_after_s: None,
            rpm: None,
            error_rate: 0.0,
            timeout_rate: 0.0,
            capacity_schedule: Vec::new(),
            request_bucket: None,
            fixed_window: None,
            token_bucket: None,
            max_tokens: DEFAULT_SIMULATED_MAX_TOKENS,
            output_tokens: None,
            sporadic_429_rate: 0.0,
            rate_limit_headers: false,
            queueing: false,
        }
    }

    /// Sets a request token bucket.
    pub fn with_request_bucket(mut self, per_second: f64, burst: u32) -> Self {
        self.request_bucket = Some(RequestBucketConfig { per_second, burst });
        self
    }

    /// Sets a fixed window of `limit` calls per `window_s` seconds.
    pub fn with_fixed_window(mut self, limit: u32, window_s: f64) -> Self {
        self.fixed_window = Some(FixedWindowConfig { limit, window_s });
        self
    }

    /// Sets a tokens-per-minute bucket.
    pub fn with_token_bucket(mut self, tokens_per_minute: u64, burst: u64) -> Self {
        self.token_bucket = Some(TokenBucketConfig {
            tokens_per_minute,
            burst,
        });
        self
    }

    /// Sets the sporadic 429 probability.
    pub fn with_sporadic_429_rate(mut self, rate: f64) -> Self {
        self.sporadic_429_rate = rate;
        self
    }

    /// Reports budgets on every answer.
    pub fn with_rate_limit_headers(mut self) -> Self {
        self.rate_limit_headers = true;
        self
    }

    /// Queues past capacity instead of answering 429.
    pub fn with_queueing(mut self) -> Self {
        self.queueing = true;
        self
    }

    /// Sets the Retry-After of capacity 429s.
    pub fn with_retry_after_s(mut self, seconds: f64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// Sets a requests-per-minute limit.
    pub fn with_rpm(mut self, rpm: u32) -> Self {
        self.rpm = Some(rpm);
        self
    }

    /// Sets the injected 5xx and timeout rates.
    pub fn with_faults(mut self, error_rate: f64, timeout_rate: f64) -> Self {
        self.error_rate = error_rate;
        self.timeout_rate = timeout_rate;
        self
    }

    /// Appends a capacity step.
    pub fn with_capacity_at(mut self, at_s: f64, capacity: u32) -> Self {
        self.capacity_schedule.push(CapacityStep { at_s, capacity });
        self
    }

    /// Parses and validates one model config from JSON.
    pub fn from_json(text: &str) -> Result<Self, SimulatedConfigError> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| SimulatedConfigError::new("<json>", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a JSON array of model configs (ids must be unique).
    pub fn list_from_json(text: &str) -> Result<Vec<Self>, SimulatedConfigError> {
        let configs: Vec<Self> = serde_json::from_str(text)
            .map_err(|e| SimulatedConfigError::new("<json>", e.to_string()))?;
        validate_all(&configs)?;
        Ok(configs)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SimulatedConfigError> {
        if self.model_id.trim().is_empty() {
            return Err(SimulatedConfigError::new("model_id", "must be non-empty"));
        }
        if self.capacity == 0 {
            return Err(SimulatedConfigError::new("capacity", "must be ≥ 1"));
        }
        self.latency_ms.validate("latency_ms")?;
        if let Some(s) = self.retry_after_s {
            if !(s.is_finite() && s > 0.0) || Duration::try_from_secs_f64(s).is_err() {
                return Err(SimulatedConfigError::new(
                    "retry_after_s",
                    format!("must be a finite number of seconds > 0 or null (got {s})"),
                ));
            }
        }
        if self.rpm == Some(0) {
            return Err(SimulatedConfigError::new("rpm", "must be ≥ 1 or null"));
        }
        check_rate("error_rate", self.error_rate)?;
        check_rate("timeout_rate", self.timeout_rate)?;
        if self.error_rate + self.timeout_rate > 1.0 {
            return Err(SimulatedConfigError::new(
                "timeout_rate",
                "error_rate + timeout_rate must be ≤ 1",
            ));
        }
        if let Some(b) = &self.request_bucket {
            if !(b.per_second.is_finite() && b.per_second > 0.0) {
                return Err(SimulatedConfigError::new(
                    "request_bucket.per_second",
                    format!("must be a finite number > 0 (got {})", b.per_second),
                ));
            }
            if b.burst == 0 {
                return Err(SimulatedConfigError::new(
                    "request_bucket.burst",
                    "must be ≥ 1",
                ));
            }
        }
        if let Some(w) = &self.fixed_window {
            if w.limit == 0 {
                return Err(SimulatedConfigError::new(
                    "fixed_window.limit",
                    "must be ≥ 1",
                ));
            }
            if !(w.window_s.is_finite() && w.window_s > 0.0)
                || Duration::try_from_secs_f64(w.window_s).is_err()
            {
                return Err(SimulatedConfigError::new(
                    "fixed_window.window_s",
                    format!(
                        "must be a finite number of seconds > 0 (got {})",
                        w.window_s
                    ),
                ));
            }
        }
        if let Some(t) = &self.token_bucket {
            if t.tokens_per_minute == 0 {
                return Err(SimulatedConfigError::new(
                    "token_bucket.tokens_per_minute",
                    "must be ≥ 1",
                ));
            }
            if t.burst == 0 {
                return Err(SimulatedConfigError::new(
                    "token_bucket.burst",
                    "must be ≥ 1",
                ));
            }
        }
        check_rate("sporadic_429_rate", self.sporadic_429_rate)?;
        let mut previous: Option<f64> = None;
        for (i, step) in self.capacity_schedule.iter().enumerate() {
            if !(step.at_s.is_finite() && step.at_s >= 0.0) {
                return Err(SimulatedConfigError::new(
                    format!("capacity_schedule[{i}].at_s"),
                    format!("must be a finite number ≥ 0 (got {})", step.at_s),
                ));
            }
            if let Some(prev) = previous {
                if step.at_s <= prev {
                    return Err(SimulatedConfigError::new(
                        format!("capacity_schedule[{i}].at_s"),
                        format!("schedule must be sorted by at_s, strictly increasing ({} after {prev})", step.at_s),
                    ));
                }
            }
            if step.capacity == 0 {
                return Err(SimulatedConfigError::new(
                    format!("capacity_schedule[{i}].capacity"),
                    "must be ≥ 1",
                ));
            }
            previous = Some(step.at_s);
        }
        Ok(())
    }

    /// Hidden capacity `elapsed` after the provider started.
    pub fn capacity_at(&self, elapsed: Duration) -> u32 {
        let secs = elapsed.as_secs_f64();
        self.capacity_schedule
            .iter()
            .take_while(|step| step.at_s <= secs)
            .last()
            .map_or(self.capacity, |step| step.capacity)
    }

    /// Mean latency of a served call, in seconds (see [`LatencyDist::mean_ms`]).
    pub fn mean_latency_seconds(&self) -> f64 {
        self.latency_ms.mean_ms() / 1000.0
    }

    /// A lower bound on the seconds needed to serve `calls` calls, with at most `cap` in flight.
    ///
    /// Concurrency bound: `calls × mean latency / min(capacity, cap)`, where capacity is the
    /// largest the schedule ever allows (so the bound stays a lower bound). With an rpm limit
    /// the rate bound `⌊(calls − 1) / rpm⌋ × 60 s + mean latency` also applies, with a request
    /// bucket `(calls − burst) / rate + mean`, with a fixed window
    /// `⌊(calls − 1) / limit⌋ × window + mean`; the largest wins (token buckets depend on the
    /// prompts, so they are left out).
    pub fn lower_bound_seconds(&self, calls: u64, cap: Option<u32>) -> f64 {
        if calls == 0 {
            return 0.0;
        }
        let peak = self
            .capacity_schedule
            .iter()
            .map(|s| s.capacity)
            .fold(self.capacity, u32::max);
        let parallel = cap.map_or(peak, |c| c.min(peak)).max(1);
        let mean = self.mean_latency_seconds();
        let concurrency_bound = calls as f64 * mean / f64::from(parallel);
        let rate_bound = self.rpm.map_or(0.0, |rpm| {
            ((calls - 1) / u64::from(rpm)) as f64 * 60.0 + mean
        });
        let bucket_bound = self.request_bucket.map_or(0.0, |b| {
            (calls as f64 - f64::from(b.burst)).max(0.0) / b.per_second + mean
        });
        let window_bound = self.fixed_window.map_or(0.0, |w| {
            ((calls - 1) / u64::from(w.limit)) as f64 * w.window_s + mean
        });
        concurrency_bound
            .max(rate_bound)
            .max(bucket_bound)
            .max(window_bound)
    }
}

/// Validates a list of model configs: each one, and unique `model_id`s. Fields are prefixed
/// `models[i].`.
pub fn validate_all(configs: &[SimulatedModelConfig]) -> Result<(), SimulatedConfigError> {
    for (i, config) in configs.iter().enumerate() {
        config
            .validate()
            .map_err(|e| e.within(&format!("models[{i}]")))?;
        if configs[..i].iter().any(|c| c.model_id == config.model_id) {
            return Err(SimulatedConfigError::new(
                format!("models[{i}].model_id"),
                format!("duplicate model_id {:?}", config.model_id),
            ));
        }
    }
    Ok(())
}

fn check_rate(field: &str, rate: f64) -> Result<(), SimulatedConfigError> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(SimulatedConfigError::new(
            field,
            format!("must be within [0, 1] (got {rate})"),
        ))
    }
}
