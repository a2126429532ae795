//! The `AsyncCapacityPlan` DTOs: configured values, runtime snapshot and observed maxima of one run.
//!
//! These are pure data. Nothing here admits work or touches a controller; the plan is built by
//! [`crate::CapacityInputs::build`] from read-only inputs and serialised for reports and traces.

use crate::wire::{opt_blocked_until, opt_pairs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_contracts::json::pairs;
use weir_contracts::{
    CapacityValue, ProviderModelKey, ProviderModelStaticCap, RequestAdmissionConfigSnapshot,
    RequestResourceKey, SchedulerResourceKey,
};

/// The run-level explanation of capacity: what was configured, what the controllers reported, what peaked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncCapacityPlan {
    /// Values computed before or at run start, each with its source.
    pub configured: AsyncCapacityConfigured,
    /// Point-in-time controller snapshots (`None` where no snapshot was supplied).
    pub runtime_snapshot: AsyncCapacityRuntimeSnapshot,
    /// Per-layer maxima collected during execution or benchmark replay.
    pub observed_maxima: AsyncCapacityObservedMaxima,
}

/// Row-group admission mode: the dataset builder's fixed cap, or the internal additive-only target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowGroupMode {
    /// `row_group_concurrency` is the hard in-flight cap and the target (the default).
    #[default]
    Fixed,
    /// A soft target that only grows, up to the hard cap (internal; not AIMD).
    Adaptive,
}

impl RowGroupMode {
    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Adaptive => "adaptive",
        }
    }
}

/// Row-group admission as the run used it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowGroupAdmission {
    /// Hard cap on row groups in flight.
    pub row_group_concurrency: CapacityValue<u32>,
    /// Row groups in flight when the plan was built, if known.
    pub observed_in_flight: Option<u32>,
    /// Fixed or adaptive.
    pub mode: RowGroupMode,
    /// Current in-flight target (fixed mode: the hard cap).
    pub target_in_flight: Option<u32>,
    /// Highest adaptive target observed (fixed mode: the hard cap).
    pub observed_max_target: Option<u32>,
    /// Adaptive row guard: most rows admitted at once, if any.
    pub max_admitted_rows: Option<u64>,
    /// How often each reason blocked row-group growth.
    pub blocked_reasons: BTreeMap<String, u64>,
}

/// Values computed before or at run start; every one says where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncCapacityConfigured {
    /// Record-window size (rows per row group). Not a request-concurrency knob.
    pub buffer_size: CapacityValue<u32>,
    /// Row-group admission.
    pub row_group_admission: RowGroupAdmission,
    /// Units of the `submission` scheduler resource: bounds scheduler-spawned work.
    pub submission_capacity: CapacityValue<u32>,
    /// Task-stage limits per scheduler resource (including `submission`).
    pub task_resource_limits: CapacityValue<BTreeMap<SchedulerResourceKey, u32>>,
    /// Provider/model/domain request resources, sorted.
    pub request_resources: CapacityValue<Vec<RequestResourceKey>>,
    /// Aggregate static cap per provider/model endpoint, with contributing aliases and raw caps.
    pub provider_model_static_caps:
        CapacityValue<PairMap<ProviderModelKey, ProviderModelStaticCap>>,
    /// Initial adaptive limit per request domain, clamped under the static cap.
    pub request_domain_initial_limits: CapacityValue<PairMap<RequestResourceKey, u32>>,
    /// The request-admission tuning in use.
    pub request_admission_config: CapacityValue<RequestAdmissionConfigSnapshot>,
    /// Transport/session pool size per endpoint (transport sizing, not request concurrency).
    pub transport_pool_limits: CapacityValue<PairMap<ProviderModelKey, u32>>,
}

/// Point-in-time request-admission state; each map is `None` when no snapshot was supplied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AsyncCapacityRuntimeSnapshot {
    /// Current adaptive limit per request domain.
    #[serde(with = "opt_pairs")]
    pub request_domain_current_limits: Option<BTreeMap<RequestResourceKey, u32>>,
    /// Effective max (min of static cap and clamp) per request domain.
    #[serde(with = "opt_pairs")]
    pub request_domain_effective_max: Option<BTreeMap<RequestResourceKey, u32>>,
    /// End of the current cooldown per request domain (`None` when not cooling down).
    #[serde(with = "opt_blocked_until")]
    pub request_domain_blocked_until: Option<BTreeMap<RequestResourceKey, Option<f64>>>,
    /// In flight across all domains per endpoint.
    #[serde(with = "opt_pairs")]
    pub provider_model_aggregate_in_flight: Option<BTreeMap<ProviderModelKey, u32>>,
}

/// Per-layer maxima observed during the run (each falls back to the current snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncCapacityObservedMaxima {
    /// Most row groups in flight at once.
    pub row_groups_in_flight: u32,
    /// Most queued tasks per task group, keyed by `TaskGroupKey::label()`.
    pub queued_tasks_by_group: BTreeMap<String, u32>,
    /// Most leased units per scheduler resource.
    pub task_leases_by_resource: BTreeMap<SchedulerResourceKey, u32>,
    /// Most queued request waiters per request domain.
    #[serde(with = "pairs")]
    pub request_waiters_by_resource: BTreeMap<RequestResourceKey, u32>,
    /// Most in-flight requests per request domain.
    #[serde(with = "pairs")]
    pub request_in_flight_by_resource: BTreeMap<RequestResourceKey, u32>,
    /// Most in-flight requests across domains per endpoint.
    #[serde(with = "pairs")]
    pub provider_model_aggregate_in_flight: BTreeMap<ProviderModelKey, u32>,
    /// Highest adaptive limit per request domain.
    #[serde(with = "pairs")]
    pub request_domain_current_limits: BTreeMap<RequestResourceKey, u32>,
    /// Most transport connections in use per endpoint, when the adapter reports it.
    #[serde(with = "opt_pairs")]
    pub transport_pool_utilization: Option<BTreeMap<ProviderModelKey, u32>>,
}

/// A structured-key map that serialises as `[[key, value], ...]`, for use inside a `CapacityValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairMap<K: Ord, V>(pub BTreeMap<K, V>);

impl<K: Ord, V> Default for PairMap<K, V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<K: Ord, V> std::ops::Deref for PairMap<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<K: Ord, V> From<BTreeMap<K, V>> for PairMap<K, V> {
    fn from(map: BTreeMap<K, V>) -> Self {
        Self(map)
    }
}

impl<K: Ord + Serialize, V: Serialize> Serialize for PairMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        pairs::serialize(&self.0, serializer)
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for PairMap<K, V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        pairs::deserialize(deserializer).map(Self)
    }
}
