//! Capacity values with their source, static provider/model caps and the request config snapshot.

use crate::json::{finite_f64, opt_finite_f64, pairs};
use crate::outcome::str_enum;
use crate::request::RequestResourceKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

str_enum!(
    /// Where a capacity value came from (the plan's 9 sources).
    CapacitySource {
        /// A documented default constant.
        Default => "default",
        /// The run configuration.
        RunConfig => "run_config",
        /// The dataset builder / workflow shape.
        DatasetBuilder => "dataset_builder",
        /// Model metadata (e.g. `max_parallel_requests`).
        ModelMetadata => "model_metadata",
        /// Engine-internal configuration.
        EngineInternalConfig => "engine_internal_config",
        /// A transport/provider adapter's configuration.
        AdapterConfig => "adapter_config",
        /// The process environment.
        Environment => "environment",
        /// A controller's runtime snapshot.
        RuntimeSnapshot => "runtime_snapshot",
        /// A benchmark harness override.
        BenchmarkOverride => "benchmark_override",
    }
);

/// A capacity value with its source; `value` is `None` exactly when `missing_reason` says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityValue<T> {
    /// The value, when known.
    pub value: Option<T>,
    /// Where it came from.
    pub source: CapacitySource,
    /// The source that was tried first, when this value is a fallback.
    pub fallback_from: Option<String>,
    /// Why the value is missing.
    pub missing_reason: Option<String>,
}

impl<T> CapacityValue<T> {
    /// A known value.
    pub fn known(value: T, source: CapacitySource) -> Self {
        Self {
            value: Some(value),
            source,
            fallback_from: None,
            missing_reason: None,
        }
    }

    /// A missing value with the reason it is missing.
    pub fn missing(source: CapacitySource, missing_reason: impl Into<String>) -> Self {
        Self {
            value: None,
            source,
            fallback_from: None,
            missing_reason: Some(missing_reason.into()),
        }
    }

    /// Marks this value as a fallback from `from`.
    pub fn with_fallback_from(mut self, from: impl Into<String>) -> Self {
        self.fallback_from = Some(from.into());
        self
    }
}

/// How aliases of one endpoint merge into its static cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapMergeRule {
    /// The minimum over aliases of the same endpoint.
    MinSameEndpoint,
}

/// The static cap of one provider/model endpoint, with every alias that contributed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderModelStaticCap {
    /// Effective static cap (min over aliases, at least 1).
    pub cap: u32,
    /// Contributing aliases, sorted.
    pub aliases: Vec<String>,
    /// Raw `max_parallel_requests` per alias (`None` when an alias declared none).
    pub raw_caps: BTreeMap<String, Option<u32>>,
    /// Merge rule.
    pub merge_rule: CapMergeRule,
}

impl ProviderModelStaticCap {
    /// Merges `(alias, raw cap)` pairs by the min-same-endpoint rule; `None` if no alias has a cap.
    pub fn merge(raw: impl IntoIterator<Item = (String, Option<u32>)>) -> Option<Self> {
        let raw_caps: BTreeMap<String, Option<u32>> = raw.into_iter().collect();
        let cap = raw_caps.values().flatten().copied().min()?.max(1);
        Some(Self {
            cap,
            aliases: raw_caps.keys().cloned().collect(),
            raw_caps,
            merge_rule: CapMergeRule::MinSameEndpoint,
        })
    }
}

/// Serializable snapshot of the request-admission configuration used by a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestAdmissionConfigSnapshot {
    /// Resources with explicit per-resource settings, sorted.
    pub resources: Vec<RequestResourceKey>,
    /// Per-resource initial limits.
    #[serde(with = "pairs")]
    pub initial_limits: BTreeMap<RequestResourceKey, u32>,
    /// Per-resource limit clamps.
    #[serde(with = "pairs")]
    pub max_limit_clamps: BTreeMap<RequestResourceKey, Option<u32>>,
    /// Cooldown used when a rate limit carries no Retry-After.
    #[serde(with = "finite_f64")]
    pub cooldown_seconds: f64,
    /// Multiplicative decrease factor in (0, 1).
    #[serde(with = "finite_f64")]
    pub multiplicative_decrease_factor: f64,
    /// Additive increase step.
    pub additive_increase_step: u32,
    /// Successes per increase.
    pub successes_until_increase: u32,
    /// Startup ramp length (0 = off).
    #[serde(with = "finite_f64")]
    pub startup_ramp_seconds: f64,
    /// Default queue-wait timeout (`None` = wait until admitted, shutdown or cancelled).
    #[serde(with = "opt_finite_f64")]
    pub default_queue_wait_timeout_seconds: Option<f64>,
    /// Name of the adaptive policy in use.
    pub policy: String,
}

impl fmt::Display for CapMergeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("min_same_endpoint")
    }
}
