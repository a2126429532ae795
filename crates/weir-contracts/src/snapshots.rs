//! Read-only snapshot DTOs of both ledgers, shared by telemetry, capacity plans and benchmarks.

use crate::json::{finite_f64, opt_finite_f64, pairs};
use crate::outcome::{ReleaseReason, RequestReleaseOutcomeKind};
use crate::request::{ProviderModelKey, RequestDomain, RequestResourceKey};
use crate::task::{SchedulerResourceKey, TaskGroupKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Serializable, consistent snapshot of the task-admission ledger (the wire form of `TaskAdmissionView`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAdmissionSnapshot {
    /// Limit per scheduler resource.
    pub resource_limits: BTreeMap<SchedulerResourceKey, u32>,
    /// Free units per scheduler resource (every limited resource appears).
    pub resources_available: BTreeMap<SchedulerResourceKey, u32>,
    /// Leased units per resource (non-zero entries only).
    pub leased_resources: BTreeMap<SchedulerResourceKey, u32>,
    /// Leased units per group and resource.
    #[serde(with = "pairs")]
    pub leased_resources_by_group: BTreeMap<TaskGroupKey, BTreeMap<SchedulerResourceKey, u32>>,
    /// Active leases per group (non-zero entries only).
    #[serde(with = "pairs")]
    pub running_counts_by_group: BTreeMap<TaskGroupKey, u32>,
    /// Bounded-borrow debt per (group, resource) (non-zero entries only).
    #[serde(with = "pairs")]
    pub policy_debt_by_group_resource: BTreeMap<(TaskGroupKey, SchedulerResourceKey), u32>,
    /// Active task leases.
    pub active_lease_count: u64,
    /// Rejected releases by reason (duplicate, stale, wrong generation, unknown).
    pub release_diagnostics: BTreeMap<ReleaseReason, u64>,
}

/// Immutable pressure snapshot of one request resource (provider/model/domain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPressureSnapshot {
    /// Monotonic capture time (seconds).
    #[serde(with = "finite_f64")]
    pub captured_at: f64,
    /// Controller-wide monotonic sequence at capture.
    pub sequence: u64,
    /// The resource.
    pub resource: RequestResourceKey,
    /// min(static cap, clamp).
    pub effective_max: u32,
    /// Current adaptive limit.
    pub current_limit: u32,
    /// Admitted and not yet released.
    pub in_flight_count: u32,
    /// Active leases.
    pub active_lease_count: u32,
    /// Queued waiters.
    pub waiters: u32,
    /// End of the current cooldown, if cooling down.
    #[serde(with = "opt_finite_f64")]
    pub blocked_until_monotonic: Option<f64>,
    /// Seconds of cooldown left (0 when none).
    #[serde(with = "finite_f64")]
    pub cooldown_remaining_seconds: f64,
    /// Limit at which the last rate limit happened (0 = never rate limited).
    pub rate_limit_ceiling: u32,
    /// Rate limits in a row without a success between them.
    pub consecutive_rate_limits: u32,
    /// Last release outcome.
    pub last_outcome: Option<RequestReleaseOutcomeKind>,
    /// Rejected releases by reason.
    pub leak_diagnostics: BTreeMap<ReleaseReason, u64>,
}

/// Immutable pressure snapshot of one provider/model aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderModelPressureSnapshot {
    /// Monotonic capture time (seconds).
    #[serde(with = "finite_f64")]
    pub captured_at: f64,
    /// Controller-wide monotonic sequence at capture.
    pub sequence: u64,
    /// The endpoint.
    pub provider_model: ProviderModelKey,
    /// Effective static cap (min over aliases).
    pub static_cap: u32,
    /// In flight across all domains.
    pub aggregate_in_flight: u32,
    /// Most requests ever in flight at once across all domains (exact, kept by the controller).
    #[serde(default)]
    pub max_aggregate_in_flight: u32,
    /// Active leases across all domains.
    pub aggregate_active_lease_count: u32,
    /// Queued waiters across all domains.
    pub aggregate_waiters: u32,
    /// Aliases contributing to the cap, sorted.
    pub aliases: Vec<String>,
    /// Raw cap per alias.
    pub raw_caps: BTreeMap<String, u32>,
    /// Current limit per known domain.
    pub domains: BTreeMap<RequestDomain, u32>,
}
