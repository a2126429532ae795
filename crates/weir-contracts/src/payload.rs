//! Typed event payloads: one variant per event kind, each a struct with named typed fields.
//!
//! A payload is the source of truth for an event's kind and its data. On the wire it is the
//! event's `event_kind` string plus its `diagnostics` object (the variant's fields), so the JSONL
//! form is the plan's: `{"event_kind": "row_group_admitted", …, "diagnostics": {"row_group": 3,
//! "rows": 100, "in_flight": 2}}`. Producers build a variant; consumers match on it, so a field
//! nobody emits cannot be read by accident (issue 16).
//!
//! Optional fields are left out of the object when `None`. Unknown keys are ignored when read back.

use crate::events::{RequestEventKind, SchedulerEventKind};
use crate::json::{finite_f64, opt_finite_f64};
use crate::outcome::{
    str_enum, RateLimitSignal, RequestAdmissionDenyReason, TaskAdmissionDenyReason,
};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Defines a payload enum over an event-kind enum: one tuple variant per kind (same names), with
/// `kind()`, `default_for(kind)` and the wire helpers. The match arms make the compiler check that
/// every kind has exactly one variant.
macro_rules! event_payload {
    ($(#[$doc:meta])* $name:ident for $kind:ident {
        $($(#[$vdoc:meta])* $variant:ident($ty:ty)),+ $(,)?
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $($(#[$vdoc])* $variant($ty)),+
        }

        impl $name {
            /// The event kind of this payload.
            pub fn kind(&self) -> $kind {
                match self {
                    $($name::$variant(_) => $kind::$variant),+
                }
            }

            /// The payload of `kind` with every field at its default (zero, `None`, empty).
            pub fn default_for(kind: $kind) -> Self {
                match kind {
                    $($kind::$variant => $name::$variant(<$ty>::default())),+
                }
            }

            /// Writes the variant's fields (the wire form's `diagnostics` object).
            pub(crate) fn serialize_body<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $($name::$variant(v) => v.serialize(s)),+
                }
            }

            /// Reads the `diagnostics` object of an event of `kind`.
            pub(crate) fn from_body(kind: $kind, body: Value) -> Result<Self, serde_json::Error> {
                // An event written without diagnostics reads as an empty object.
                let body = if body.is_null() { Value::Object(Default::default()) } else { body };
                match kind {
                    $($kind::$variant => serde_json::from_value::<$ty>(body).map($name::$variant)),+
                }
            }
        }
    };
}

/// The body of a kind that carries no data (written as `{}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoDiagnostics {}

fn is_false(b: &bool) -> bool {
    !*b
}

str_enum!(
    /// How a task execution ended, in the plan's terminal-path vocabulary (task-admission.md,
    /// "Lease Lifecycle"); carried by `task_lease_released` as `outcome`.
    TaskTerminalOutcome {
        /// The task produced its output.
        Success => "success",
        /// A retryable failure (the task is deferred for retry, or dropped once its budget is spent).
        RetryableFailure => "retryable_failure",
        /// A non-retryable failure (including a worker panic).
        NonRetryableFailure => "non_retryable_failure",
        /// The execution was cancelled (aborted by a stop, or its row was dropped meanwhile).
        Cancellation => "cancellation",
        /// The worker could not be spawned.
        WorkerSpawnFailure => "worker_spawn_failure",
    }
);

str_enum!(
    /// Why an adaptive limit changed, when it was not the policy's ordinary step.
    LimitChangeCause {
        /// The startup ramp raised the limit.
        StartupRamp => "startup_ramp",
        /// The latency-saturation signal lowered the limit.
        LatencySaturation => "latency_saturation",
    }
);

str_enum!(
    /// How request admission read a rate limit (see `plans/request-admission.md`).
    RateLimitClassification {
        /// Too many in flight: a decrease (and maybe a cooldown).
        Concurrency => "concurrency",
        /// A request or token window is exhausted: a budget wait.
        Window => "window",
        /// Admitted well below recently succeeding concurrency: noise.
        Isolated => "isolated",
        /// Too little evidence to mean concurrency: left to per-request backoff.
        Unconfirmed => "unconfirmed",
    }
);

// ---- scheduler payloads ----

/// `scheduler_job_started`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerJobStarted {
    /// Records the run is to produce.
    pub records: u64,
    /// Row groups of the whole dataset.
    pub row_groups: u64,
    /// The first row group this run admits (non-zero when resuming).
    pub first_row_group: u64,
}

/// `scheduler_job_completed` (its `reason_or_result` says how the run ended).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerJobCompleted {
    /// Records written by this run.
    pub records_written: u64,
    /// Rows dropped by this run.
    pub rows_dropped: u64,
}

/// `scheduler_health_snapshot` (the task-admission snapshot is the event's `snapshot`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerHealthSnapshot {
    /// Tasks in the fair queue.
    pub queued: u64,
    /// Workers running.
    pub running_workers: u64,
    /// Tasks waiting for their retry backoff.
    pub deferred_tasks: u64,
}

/// `row_group_admitted`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupAdmitted {
    /// The row group.
    pub row_group: u64,
    /// Rows in it.
    pub rows: u64,
    /// Row groups in flight after this admission (the runtime's own figure).
    pub in_flight: u64,
}

/// `row_group_admission_blocked` (its `reason_or_result` says why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupAdmissionBlocked {
    /// Row groups in flight (a cap or target block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u64>,
    /// The current admission target (a cap or target block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
    /// Completed row groups waiting for an earlier one to be written (a `write_backlog` block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_unwritten: Option<u64>,
}

/// `row_group_admission_target_changed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupAdmissionTargetChanged {
    /// The new target.
    pub target: u64,
}

/// `row_group_checkpointed`: a row group was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupCheckpointed {
    /// The row group.
    pub row_group: u64,
    /// Rows written from it.
    pub surviving_rows: u64,
    /// Rows of it that were dropped.
    pub dropped_rows: u64,
    /// Records written so far by this run (cumulative).
    pub records_written: u64,
}

/// `admission_blocked` and `group_capped`: queued work, none admissible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionBlocked {
    /// Tasks queued.
    pub queued: u64,
    /// Queued tasks per denial reason.
    pub blocked_tasks_by_reason: BTreeMap<TaskAdmissionDenyReason, u64>,
}

/// `worker_spawned`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSpawned {
    /// Run inline on the scheduler task (local work) rather than as a spawned worker.
    pub inline: bool,
}

/// `retry_deferred` (its `reason_or_result` is the error type).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryDeferred {
    /// Backoff before the task is ready again.
    #[serde(with = "finite_f64")]
    pub delay_seconds: f64,
    /// A salvaged wait (rate limit or admission wait; spends no retry budget).
    #[serde(default, skip_serializing_if = "is_false")]
    pub salvage: bool,
    /// Salvaged waits of this cell so far (1-based), when salvaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u32>,
    /// Budgeted re-run number (1-based), when budgeted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    /// Requests the cell has spent on transient failures, when budgeted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_spent: Option<u32>,
}

/// `non_retryable_dropped` (its `reason_or_result` is the failure label).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonRetryableDropped {
    /// Rows newly dropped by this failure.
    pub rows_dropped: u64,
    /// The provider's HTTP status, when the failure came from a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
    /// Failures in a row of the model whose circuit opened (a `circuit_open` stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
}

/// `task_lease_released` (its `reason_or_result` is the release result: `released`, or why not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLeaseReleased {
    /// How the execution ended (`None` only in hand-built events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<TaskTerminalOutcome>,
}

event_payload!(
    /// The data of one scheduler event; its variant is the event's kind.
    SchedulerEventPayload for SchedulerEventKind {
        /// A scheduler run started.
        SchedulerJobStarted(SchedulerJobStarted),
        /// A scheduler run ended.
        SchedulerJobCompleted(SchedulerJobCompleted),
        /// Periodic scheduler state snapshot.
        SchedulerHealthSnapshot(SchedulerHealthSnapshot),
        /// A task's dependencies completed.
        DependencyReady(NoDiagnostics),
        /// A ready task entered the fair queue.
        ReadyEnqueued(NoDiagnostics),
        /// A row group was admitted.
        RowGroupAdmitted(RowGroupAdmitted),
        /// Row-group admission is blocked.
        RowGroupAdmissionBlocked(RowGroupAdmissionBlocked),
        /// The adaptive row-group target changed.
        RowGroupAdmissionTargetChanged(RowGroupAdmissionTargetChanged),
        /// A completed row group was written.
        RowGroupCheckpointed(RowGroupCheckpointed),
        /// The fair queue selected a candidate.
        Selected(NoDiagnostics),
        /// Nothing is queued.
        QueueEmpty(NoDiagnostics),
        /// Work is queued but no candidate is admissible.
        AdmissionBlocked(AdmissionBlocked),
        /// A group is at its admitted cap under peer pressure.
        GroupCapped(AdmissionBlocked),
        /// A request-pressured candidate was skipped for an unpressured peer.
        RequestPressureAdvisorySkipped(NoDiagnostics),
        /// A task lease was acquired.
        TaskLeaseAcquired(NoDiagnostics),
        /// Task admission denied a selected candidate.
        AdmissionDenied(NoDiagnostics),
        /// A worker was spawned for a leased task.
        WorkerSpawned(WorkerSpawned),
        /// Spawning a worker failed.
        WorkerSpawnFailed(NoDiagnostics),
        /// A queue selection went stale before commit.
        StaleSelection(NoDiagnostics),
        /// A retryable failure was deferred for retry.
        RetryDeferred(RetryDeferred),
        /// A non-retryable failure dropped its row(s).
        NonRetryableDropped(NonRetryableDropped),
        /// A task was cancelled.
        Cancelled(NoDiagnostics),
        /// Deferred work was redispatched in a salvage round.
        SalvageRedispatched(NoDiagnostics),
        /// The queue drained.
        QueueDrained(NoDiagnostics),
        /// A task completed.
        TaskCompleted(NoDiagnostics),
        /// A task lease was released.
        TaskLeaseReleased(TaskLeaseReleased),
        /// A duplicate/stale/unknown release was diagnosed.
        ReleaseDiagnostic(NoDiagnostics),
    }
);

// ---- request payloads ----

/// `request_resource_registered`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestResourceRegistered {
    /// The model alias that registered it.
    pub alias: String,
    /// `provider/model` of the endpoint.
    pub provider_model: String,
    /// The alias's configured cap.
    pub max_parallel_requests: u32,
}

/// `request_effective_cap_changed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEffectiveCapChanged {
    /// Cap before.
    pub previous: u32,
    /// Cap now.
    pub current: u32,
}

/// `request_wait_completed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestWaitCompleted {
    /// Seconds waited (0 for an immediate admission).
    #[serde(with = "finite_f64")]
    pub wait_seconds: f64,
}

/// `request_acquire_denied`, `request_wait_timeout`, `request_wait_cancelled` (the event's
/// `reason_or_outcome` is the denial reason).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDenied {
    /// What blocked the last try, when the denial is a timeout of a one-shot try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_denial: Option<RequestAdmissionDenyReason>,
}

/// `model_request_completed` and `request_lease_released` (the event's `reason_or_outcome` is
/// the release outcome kind).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOutcome {
    /// The provider's HTTP status, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
}

/// `request_rate_limited`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRateLimited {
    /// Endpoint cooldown imposed, when any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_finite_f64"
    )]
    pub cooldown_seconds: Option<f64>,
    /// How request admission read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<RateLimitClassification>,
    /// What the provider said about its cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_signal: Option<RateLimitSignal>,
    /// The provider's Retry-After, when finite.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_finite_f64"
    )]
    pub retry_after_seconds: Option<f64>,
}

/// `request_limit_decreased` and `request_limit_increased`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitChanged {
    /// Limit before.
    pub previous: u32,
    /// Limit now.
    pub current: u32,
    /// The adaptive policy (`goodput`, `plan_aimd`), when the policy made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// A cause other than the policy's ordinary step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<LimitChangeCause>,
}

/// `request_soft_ceiling_recovered`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSoftCeilingRecovered {
    /// The ceiling the limit rose above.
    pub rate_limit_ceiling: u32,
}

event_payload!(
    /// The data of one request event; its variant is the event's kind.
    RequestEventPayload for RequestEventKind {
        /// A provider/model alias was registered.
        RequestResourceRegistered(RequestResourceRegistered),
        /// The effective static cap changed.
        RequestEffectiveCapChanged(RequestEffectiveCapChanged),
        /// A waiter queue formed for a resource.
        RequestQueueFormed(NoDiagnostics),
        /// A request attempt started waiting for admission.
        RequestWaitStarted(NoDiagnostics),
        /// A request attempt's wait ended with a lease.
        RequestWaitCompleted(RequestWaitCompleted),
        /// A request attempt's wait timed out.
        RequestWaitTimeout(RequestDenied),
        /// A request attempt's wait was cancelled.
        RequestWaitCancelled(RequestDenied),
        /// An acquire was denied.
        RequestAcquireDenied(RequestDenied),
        /// A request lease was acquired.
        RequestLeaseAcquired(NoDiagnostics),
        /// The provider call started.
        ModelRequestStarted(NoDiagnostics),
        /// The provider call finished.
        ModelRequestCompleted(RequestOutcome),
        /// A resource's waiter queue drained.
        RequestQueueDrained(NoDiagnostics),
        /// The provider rate-limited an attempt.
        RequestRateLimited(RequestRateLimited),
        /// The adaptive limit decreased.
        RequestLimitDecreased(LimitChanged),
        /// The adaptive limit increased.
        RequestLimitIncreased(LimitChanged),
        /// The limit rose above the last rate-limit ceiling.
        RequestSoftCeilingRecovered(RequestSoftCeilingRecovered),
        /// The limit is back at the effective max with no cooldown.
        RequestFullyRecovered(NoDiagnostics),
        /// A request lease was released.
        RequestLeaseReleased(RequestOutcome),
        /// A duplicate/stale/unknown request release was diagnosed.
        RequestReleaseDiagnostic(NoDiagnostics),
        /// The shared-limits backend lost its store and fell back (local share or pause).
        SharedLimitsDegraded(SharedLimitsModeChanged),
        /// The shared-limits backend reached its store again and admits under shared limits.
        SharedLimitsRecovered(SharedLimitsModeChanged),
    }
);

/// `shared_limits_degraded` and `shared_limits_recovered` (small: every request event is as
/// large as its largest payload).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLimitsModeChanged {
    /// The mode before (`shared`, `local_share`, `paused`).
    pub previous: crate::snapshots::SharedLimitsMode,
    /// The mode now.
    pub current: crate::snapshots::SharedLimitsMode,
    /// Why (the store's error when it degraded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Box<str>>,
}
