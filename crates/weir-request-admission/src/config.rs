//! Request-admission configuration: the engine-internal `RequestAdmissionConfig`, the public
//! `RequestAdmissionTuningConfig`, the named adaptive policies and their validation errors.

use crate::limit::latency::LatencySaturationConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use weir_contracts::{ProviderModelKey, RequestAdmissionConfigSnapshot, RequestResourceKey};

/// A configuration value failed validation; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAdmissionConfigError {
    /// The offending field, e.g. `"multiplicative_decrease_factor"`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RequestAdmissionConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RequestAdmissionConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for RequestAdmissionConfigError {}

type ConfigResult = Result<(), RequestAdmissionConfigError>;

fn check_factor(field: &str, v: f64) -> ConfigResult {
    if v.is_finite() && v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(RequestAdmissionConfigError::new(
            field,
            format!("must be in (0, 1), got {v}"),
        ))
    }
}

/// Upper bound of every seconds-valued setting (~31 years): larger values cannot become a
/// `Duration` without overflow, and no real cooldown or hold is that long.
const MAX_SECONDS: f64 = 1e9;

fn check_positive(field: &str, v: f64) -> ConfigResult {
    if v.is_finite() && v > 0.0 && v <= MAX_SECONDS {
        Ok(())
    } else {
        Err(RequestAdmissionConfigError::new(
            field,
            format!("must be a finite number in (0, {MAX_SECONDS:e}], got {v}"),
        ))
    }
}

fn check_non_negative(field: &str, v: f64) -> ConfigResult {
    if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
        Ok(())
    } else {
        Err(RequestAdmissionConfigError::new(
            field,
            format!("must be a finite number in [0, {MAX_SECONDS:e}], got {v}"),
        ))
    }
}

fn check_at_least_one(field: &str, v: u32) -> ConfigResult {
    if v >= 1 {
        Ok(())
    } else {
        Err(RequestAdmissionConfigError::new(field, "must be >= 1"))
    }
}

/// Tunables of the default goodput policy (see [`RequestAdmissionPolicy::Goodput`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoodputPolicyConfig {
    /// Shortest time the limit stays on its plateau after a rate limit before probing above it.
    pub probe_hold_min_seconds: f64,
    /// The hold is at least this many times the cooldown that the rate limit imposed.
    pub probe_hold_cooldown_multiple: f64,
    /// Longest hold; a failed probe doubles the hold up to this.
    pub probe_hold_max_seconds: f64,
    /// Slow start: a domain whose initial limit is not configured opens at this limit (when
    /// lower than its effective max) and grows by one per success, doubling per round trip,
    /// until its first concurrency rate limit or the effective max (≥ 1; default 8).
    pub slow_start_initial_limit: u32,
}

impl Default for GoodputPolicyConfig {
    fn default() -> Self {
        Self {
            probe_hold_min_seconds: 10.0,
            probe_hold_cooldown_multiple: 20.0,
            probe_hold_max_seconds: 600.0,
            slow_start_initial_limit: 8,
        }
    }
}

impl GoodputPolicyConfig {
    /// Validates every field (finite, positive, max ≥ min).
    pub fn validate(&self) -> ConfigResult {
        check_positive("policy.probe_hold_min_seconds", self.probe_hold_min_seconds)?;
        check_non_negative(
            "policy.probe_hold_cooldown_multiple",
            self.probe_hold_cooldown_multiple,
        )?;
        check_positive("policy.probe_hold_max_seconds", self.probe_hold_max_seconds)?;
        check_at_least_one(
            "policy.slow_start_initial_limit",
            self.slow_start_initial_limit,
        )?;
        if self.probe_hold_max_seconds < self.probe_hold_min_seconds {
            return Err(RequestAdmissionConfigError::new(
                "policy.probe_hold_max_seconds",
                "must be >= probe_hold_min_seconds",
            ));
        }
        Ok(())
    }
}

/// The named adaptive-limit policy a controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum RequestAdmissionPolicy {
    /// The seed plan's AIMD, exactly: ×factor once per cascade, +step per N successes outside
    /// cooldown, a full cooldown per rate limit.
    PlanAimd,
    /// weir's default: on a rate limit fall to the concurrency that was still succeeding, hold a
    /// plateau just under the loss level, probe above it after a hold that doubles per failed
    /// probe, grow once per round trip. Same contract as the plan (cap, Retry-After, a decrease
    /// on every cascade).
    Goodput(GoodputPolicyConfig),
}

impl RequestAdmissionPolicy {
    /// The policy's durable name (`plan_aimd` or `goodput`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::PlanAimd => "plan_aimd",
            Self::Goodput(_) => "goodput",
        }
    }
}

impl Default for RequestAdmissionPolicy {
    fn default() -> Self {
        Self::Goodput(GoodputPolicyConfig::default())
    }
}

/// Engine-internal request-admission configuration (also the benchmark injection surface).
///
/// Times are seconds (`f64`) as in the plan's vocabulary; [`RequestAdmissionConfig::validate`]
/// rejects non-finite or out-of-range values with an error naming the field.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAdmissionConfig {
    /// Starting adaptive limit per resource (clamped to `[1, effective_max]`; default effective max).
    pub initial_limits: BTreeMap<RequestResourceKey, u32>,
    /// Per-resource ceiling below the static cap.
    pub max_limit_clamps: BTreeMap<RequestResourceKey, u32>,
    /// Cooldown applied when a rate limit carries no positive Retry-After (> 0).
    pub cooldown_seconds: f64,
    /// Upper bound on a provider's Retry-After (> 0); longer values are capped to it.
    pub max_retry_after_seconds: f64,
    /// Multiplicative decrease factor in (0, 1).
    pub multiplicative_decrease_factor: f64,
    /// Slots added per increase (≥ 1).
    pub additive_increase_step: u32,
    /// Qualifying successes per increase for the plan's AIMD (≥ 1).
    pub successes_until_increase: u32,
    /// Startup ramp length (≥ 0; 0 = off).
    pub startup_ramp_seconds: f64,
    /// Queue-wait timeout for items without their own (`None` = wait until admitted, shut down
    /// or cancelled; `Some(0)` = try once).
    pub default_queue_wait_timeout_seconds: Option<f64>,
    /// The adaptive policy.
    pub policy: RequestAdmissionPolicy,
    /// Latency-based saturation signal per endpoint (absent = off, the default): for servers
    /// that queue instead of rejecting. Applies to every domain of the endpoint.
    pub latency_saturation: BTreeMap<ProviderModelKey, LatencySaturationConfig>,
}

impl Default for RequestAdmissionConfig {
    fn default() -> Self {
        Self {
            initial_limits: BTreeMap::new(),
            max_limit_clamps: BTreeMap::new(),
            cooldown_seconds: 2.0,
            max_retry_after_seconds: 60.0,
            multiplicative_decrease_factor: 0.75,
            additive_increase_step: 1,
            successes_until_increase: 25,
            startup_ramp_seconds: 0.0,
            default_queue_wait_timeout_seconds: None,
            policy: RequestAdmissionPolicy::default(),
            latency_saturation: BTreeMap::new(),
        }
    }
}

impl RequestAdmissionConfig {
    /// The engine config for a public tuning DTO (the five supported fields; the rest default).
    pub fn from_tuning(
        tuning: &RequestAdmissionTuningConfig,
    ) -> Result<Self, RequestAdmissionConfigError> {
        tuning.validate()?;
        let config = Self {
            multiplicative_decrease_factor: tuning.multiplicative_decrease_factor,
            additive_increase_step: tuning.additive_increase_step,
            successes_until_increase: tuning.successes_until_increase,
            cooldown_seconds: tuning.cooldown_seconds,
            startup_ramp_seconds: tuning.startup_ramp_seconds,
            ..Self::default()
        };
        config.validate()?;
        Ok(config)
    }

    /// Validates every field; the error names the first offending one.
    pub fn validate(&self) -> ConfigResult {
        for (key, v) in &self.initial_limits {
            check_at_least_one(&format!("initial_limits[{key}]"), *v)?;
        }
        for (key, v) in &self.max_limit_clamps {
            check_at_least_one(&format!("max_limit_clamps[{key}]"), *v)?;
        }
        check_positive("cooldown_seconds", self.cooldown_seconds)?;
        check_positive("max_retry_after_seconds", self.max_retry_after_seconds)?;
        check_factor(
            "multiplicative_decrease_factor",
            self.multiplicative_decrease_factor,
        )?;
        check_at_least_one("additive_increase_step", self.additive_increase_step)?;
        check_at_least_one("successes_until_increase", self.successes_until_increase)?;
        check_non_negative("startup_ramp_seconds", self.startup_ramp_seconds)?;
        if let Some(t) = self.default_queue_wait_timeout_seconds {
            check_non_negative("default_queue_wait_timeout_seconds", t)?;
        }
        if let RequestAdmissionPolicy::Goodput(g) = &self.policy {
            g.validate()?;
        }
        for (key, l) in &self.latency_saturation {
            l.validate(&format!("latency_saturation[{key}]"))?;
        }
        Ok(())
    }

    /// The serializable snapshot recorded in capacity plans.
    pub fn snapshot(&self) -> RequestAdmissionConfigSnapshot {
        let mut resources: Vec<RequestResourceKey> = self
            .initial_limits
            .keys()
            .chain(self.max_limit_clamps.keys())
            .cloned()
            .collect();
        resources.sort();
        resources.dedup();
        RequestAdmissionConfigSnapshot {
            resources,
            initial_limits: self.initial_limits.clone(),
            max_limit_clamps: self
                .max_limit_clamps
                .iter()
                .map(|(k, v)| (k.clone(), Some(*v)))
                .collect(),
            cooldown_seconds: self.cooldown_seconds,
            multiplicative_decrease_factor: self.multiplicative_decrease_factor,
            additive_increase_step: self.additive_increase_step,
            successes_until_increase: self.successes_until_increase,
            startup_ramp_seconds: self.startup_ramp_seconds,
            default_queue_wait_timeout_seconds: self.default_queue_wait_timeout_seconds,
            policy: self.policy.name().to_string(),
        }
    }

    pub(crate) fn cooldown(&self) -> Duration {
        Duration::from_secs_f64(self.cooldown_seconds)
    }

    pub(crate) fn startup_ramp(&self) -> Duration {
        Duration::from_secs_f64(self.startup_ramp_seconds)
    }

    pub(crate) fn default_queue_wait_timeout(&self) -> Option<Duration> {
        self.default_queue_wait_timeout_seconds
            .map(Duration::from_secs_f64)
    }

    /// The cooldown a rate limit imposes: a positive finite Retry-After capped by
    /// `max_retry_after_seconds`, otherwise `cooldown_seconds`.
    pub(crate) fn cooldown_for(&self, retry_after_seconds: Option<f64>) -> Duration {
        match retry_after_seconds {
            Some(ra) if ra.is_finite() && ra > 0.0 => {
                Duration::from_secs_f64(ra.min(self.max_retry_after_seconds))
            }
            _ => self.cooldown(),
        }
    }
}

/// The public `RunConfig.request_admission` DTO: the five supported AIMD tuning fields only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestAdmissionTuningConfig {
    /// Multiplicative decrease factor, 0 < x < 1 (default 0.75).
    pub multiplicative_decrease_factor: f64,
    /// Additive increase step, ≥ 1 (default 1).
    pub additive_increase_step: u32,
    /// Successes before an increase, ≥ 1 (default 25).
    pub successes_until_increase: u32,
    /// Fallback cooldown when a rate limit has no Retry-After, > 0 (default 2.0 s).
    pub cooldown_seconds: f64,
    /// Startup ramp, ≥ 0 (default 0 = off).
    pub startup_ramp_seconds: f64,
}

impl Default for RequestAdmissionTuningConfig {
    fn default() -> Self {
        Self {
            multiplicative_decrease_factor: 0.75,
            additive_increase_step: 1,
            successes_until_increase: 25,
            cooldown_seconds: 2.0,
            startup_ramp_seconds: 0.0,
        }
    }
}

impl RequestAdmissionTuningConfig {
    /// Validates the five fields; the error names the offending one.
    pub fn validate(&self) -> ConfigResult {
        check_factor(
            "multiplicative_decrease_factor",
            self.multiplicative_decrease_factor,
        )?;
        check_at_least_one("additive_increase_step", self.additive_increase_step)?;
        check_at_least_one("successes_until_increase", self.successes_until_increase)?;
        check_positive("cooldown_seconds", self.cooldown_seconds)?;
        check_non_negative("startup_ramp_seconds", self.startup_ramp_seconds)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_contracts::RequestDomain;

    #[test]
    fn tuning_defaults_and_validation_name_the_field() {
        let t = RequestAdmissionTuningConfig::default();
        assert_eq!(t.multiplicative_decrease_factor, 0.75);
        assert_eq!(t.additive_increase_step, 1);
        assert_eq!(t.successes_until_increase, 25);
        assert_eq!(t.cooldown_seconds, 2.0);
        assert_eq!(t.startup_ramp_seconds, 0.0);
        t.validate().unwrap();
        for (bad, field) in [
            (
                RequestAdmissionTuningConfig {
                    multiplicative_decrease_factor: 1.0,
                    ..t
                },
                "multiplicative_decrease_factor",
            ),
            (
                RequestAdmissionTuningConfig {
                    multiplicative_decrease_factor: f64::NAN,
                    ..t
                },
                "multiplicative_decrease_factor",
            ),
            (
                RequestAdmissionTuningConfig {
                    additive_increase_step: 0,
                    ..t
                },
                "additive_increase_step",
            ),
            (
                RequestAdmissionTuningConfig {
                    successes_until_increase: 0,
                    ..t
                },
                "successes_until_increase",
            ),
            (
                RequestAdmissionTuningConfig {
                    cooldown_seconds: 0.0,
                    ..t
                },
                "cooldown_seconds",
            ),
            (
                RequestAdmissionTuningConfig {
                    startup_ramp_seconds: -1.0,
                    ..t
                },
                "startup_ramp_seconds",
            ),
        ] {
            assert_eq!(bad.validate().unwrap_err().field, field);
            assert_eq!(
                RequestAdmissionConfig::from_tuning(&bad).unwrap_err().field,
                field
            );
        }
    }

    #[test]
    fn tuning_serde_rejects_unknown_fields_and_fills_defaults() {
        let t: RequestAdmissionTuningConfig =
            serde_json::from_str(r#"{"cooldown_seconds": 1.5}"#).unwrap();
        assert_eq!(t.cooldown_seconds, 1.5);
        assert_eq!(t.successes_until_increase, 25);
        let err =
            serde_json::from_str::<RequestAdmissionTuningConfig>(r#"{"ceiling_overshoot": 0.1}"#)
                .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn engine_config_validation_names_the_field() {
        let key = RequestResourceKey::new("p", "m", RequestDomain::Chat).unwrap();
        let mut c = RequestAdmissionConfig::default();
        c.validate().unwrap();
        c.initial_limits.insert(key.clone(), 0);
        assert_eq!(c.validate().unwrap_err().field, "initial_limits[p/m/chat]");
        let c = RequestAdmissionConfig {
            max_retry_after_seconds: f64::INFINITY,
            ..RequestAdmissionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "max_retry_after_seconds");
        let c = RequestAdmissionConfig {
            default_queue_wait_timeout_seconds: Some(-0.5),
            ..RequestAdmissionConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().field,
            "default_queue_wait_timeout_seconds"
        );
        let c = RequestAdmissionConfig {
            policy: RequestAdmissionPolicy::Goodput(GoodputPolicyConfig {
                probe_hold_max_seconds: 1.0,
                ..GoodputPolicyConfig::default()
            }),
            ..RequestAdmissionConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().field,
            "policy.probe_hold_max_seconds"
        );
    }

    #[test]
    fn retry_after_is_capped_and_non_positive_falls_back() {
        let c = RequestAdmissionConfig {
            max_retry_after_seconds: 30.0,
            cooldown_seconds: 2.0,
            ..RequestAdmissionConfig::default()
        };
        assert_eq!(c.cooldown_for(Some(3600.0)), Duration::from_secs(30));
        assert_eq!(c.cooldown_for(Some(0.5)), Duration::from_millis(500));
        assert_eq!(c.cooldown_for(Some(0.0)), Duration::from_secs(2));
        assert_eq!(c.cooldown_for(Some(-1.0)), Duration::from_secs(2));
        assert_eq!(c.cooldown_for(None), Duration::from_secs(2));
        assert_eq!(c.snapshot().policy, "goodput");
    }
}
