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

/// How a shared-limits backend admits right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedLimitsMode {
    /// Under the shared store's cap, cooldown and budgets (the normal state).
    #[default]
    Shared,
    /// The store is unreachable: each endpoint admits up to a configured local share of the
    /// last known shared cap; held leases are kept.
    LocalShare,
    /// The store is unreachable: no new shared work is admitted until it returns; held leases
    /// are kept.
    Paused,
}

impl SharedLimitsMode {
    /// The durable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::LocalShare => "local_share",
            Self::Paused => "paused",
        }
    }
}

/// One endpoint as a shared-limits backend last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedEndpointSnapshot {
    /// The endpoint.
    pub endpoint: ProviderModelKey,
    /// Static cap this worker registered for it.
    pub static_cap: u32,
    /// The shared cap learned from concurrency 429s (None: none learned, the static cap holds).
    pub learned_cap: Option<u32>,
    /// Most leases in the shared set at once, as this worker saw it at admission.
    pub max_shared_in_flight: u32,
    /// Shared leases this worker holds now.
    pub held: u32,
    /// Tightest request budget per minute in the store (configured or header-observed).
    pub requests_per_minute: Option<u64>,
    /// Tightest token budget per minute in the store.
    pub tokens_per_minute: Option<u64>,
}

/// Counters and state of a shared-limits backend (the run's summary shows it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedLimitsSnapshot {
    /// The backend's name (`redis`).
    pub backend: String,
    /// The key scope (every worker of one job uses the same).
    pub scope: String,
    /// This worker's id in the store.
    pub worker: String,
    /// Current mode.
    pub mode: SharedLimitsMode,
    /// What the backend does when the store is lost: `local_share` or `paused`.
    pub fallback: SharedLimitsMode,
    /// The local share of the cap used in `local_share` fallback.
    #[serde(with = "finite_f64")]
    pub fallback_share: f64,
    /// Shared leases granted (including fallback grants).
    pub admissions: u64,
    /// Admissions granted locally while the store was lost.
    pub fallback_admissions: u64,
    /// Tries the store refused (cap full, cooldown, budget): each one waited and tried again.
    pub refusals: u64,
    /// Shared leases released (by the executor, or by a drop guard).
    pub releases: u64,
    /// Leases that could not be released in the store (lost, or dropped): left to expire.
    pub left_to_expire: u64,
    /// Round trips to the store on admission and release (one each on the common path).
    pub round_trips: u64,
    /// Round trips of the lease-renewal task (not per request).
    pub renewal_round_trips: u64,
    /// `round_trips / admissions` (0 with no admission).
    #[serde(with = "finite_f64")]
    pub round_trips_per_request: f64,
    /// Times the store was lost.
    pub degraded: u64,
    /// Times the store came back.
    pub recoveries: u64,
    /// Leases re-added by renewal after the store came back empty.
    pub leases_restored: u64,
    /// Per endpoint.
    pub endpoints: Vec<SharedEndpointSnapshot>,
}
