//! Event vocabulary and DTOs of the two admission streams (scheduler and request).

use crate::correlation::RuntimeCorrelation;
use crate::ids::{LeaseId, RequestAttemptId, TaskExecutionId, TaskId};
use crate::json::finite_f64;
use crate::outcome::str_enum;
use crate::request::RequestResourceKey;
use crate::task::SchedulerResourceKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

str_enum!(
    /// The 27 scheduler event kinds, in the plan's order.
    SchedulerEventKind {
        /// A scheduler run started.
        SchedulerJobStarted => "scheduler_job_started",
        /// A scheduler run ended.
        SchedulerJobCompleted => "scheduler_job_completed",
        /// Periodic scheduler state snapshot.
        SchedulerHealthSnapshot => "scheduler_health_snapshot",
        /// A task's dependencies completed.
        DependencyReady => "dependency_ready",
        /// A ready task entered the fair queue.
        ReadyEnqueued => "ready_enqueued",
        /// A row group was admitted.
        RowGroupAdmitted => "row_group_admitted",
        /// Row-group admission is blocked.
        RowGroupAdmissionBlocked => "row_group_admission_blocked",
        /// The adaptive row-group target changed.
        RowGroupAdmissionTargetChanged => "row_group_admission_target_changed",
        /// A completed row group was written.
        RowGroupCheckpointed => "row_group_checkpointed",
        /// The fair queue selected a candidate.
        Selected => "selected",
        /// Nothing is queued.
        QueueEmpty => "queue_empty",
        /// Work is queued but no candidate is admissible.
        AdmissionBlocked => "admission_blocked",
        /// A group is at its admitted cap under peer pressure.
        GroupCapped => "group_capped",
        /// A request-pressured candidate was skipped for an unpressured peer.
        RequestPressureAdvisorySkipped => "request_pressure_advisory_skipped",
        /// A task lease was acquired.
        TaskLeaseAcquired => "task_lease_acquired",
        /// Task admission denied a selected candidate.
        AdmissionDenied => "admission_denied",
        /// A worker was spawned for a leased task.
        WorkerSpawned => "worker_spawned",
        /// Spawning a worker failed.
        WorkerSpawnFailed => "worker_spawn_failed",
        /// A queue selection went stale before commit.
        StaleSelection => "stale_selection",
        /// A retryable failure was deferred for retry.
        RetryDeferred => "retry_deferred",
        /// A non-retryable failure dropped its row(s).
        NonRetryableDropped => "non_retryable_dropped",
        /// A task was cancelled.
        Cancelled => "cancelled",
        /// Deferred work was redispatched in a salvage round.
        SalvageRedispatched => "salvage_redispatched",
        /// The queue drained.
        QueueDrained => "queue_drained",
        /// A task completed.
        TaskCompleted => "task_completed",
        /// A task lease was released.
        TaskLeaseReleased => "task_lease_released",
        /// A duplicate/stale/unknown release was diagnosed.
        ReleaseDiagnostic => "release_diagnostic",
    }
);

str_enum!(
    /// The 19 request event kinds, in the plan's order.
    RequestEventKind {
        /// A provider/model alias was registered.
        RequestResourceRegistered => "request_resource_registered",
        /// The effective static cap changed.
        RequestEffectiveCapChanged => "request_effective_cap_changed",
        /// A waiter queue formed for a resource.
        RequestQueueFormed => "request_queue_formed",
        /// A request attempt started waiting for admission.
        RequestWaitStarted => "request_wait_started",
        /// A request attempt's wait ended with a lease.
        RequestWaitCompleted => "request_wait_completed",
        /// A request attempt's wait timed out.
        RequestWaitTimeout => "request_wait_timeout",
        /// A request attempt's wait was cancelled.
        RequestWaitCancelled => "request_wait_cancelled",
        /// An acquire was denied.
        RequestAcquireDenied => "request_acquire_denied",
        /// A request lease was acquired.
        RequestLeaseAcquired => "request_lease_acquired",
        /// The provider call started.
        ModelRequestStarted => "model_request_started",
        /// The provider call finished.
        ModelRequestCompleted => "model_request_completed",
        /// A resource's waiter queue drained.
        RequestQueueDrained => "request_queue_drained",
        /// The provider rate-limited an attempt.
        RequestRateLimited => "request_rate_limited",
        /// The adaptive limit decreased.
        RequestLimitDecreased => "request_limit_decreased",
        /// The adaptive limit increased.
        RequestLimitIncreased => "request_limit_increased",
        /// The limit rose above the last rate-limit ceiling.
        RequestSoftCeilingRecovered => "request_soft_ceiling_recovered",
        /// The limit is back at the effective max with no cooldown.
        RequestFullyRecovered => "request_fully_recovered",
        /// A request lease was released.
        RequestLeaseReleased => "request_lease_released",
        /// A duplicate/stale/unknown request release was diagnosed.
        RequestReleaseDiagnostic => "request_release_diagnostic",
    }
);

/// One scheduler admission event, with correlation captured when it was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerAdmissionEvent {
    /// Kind.
    pub event_kind: SchedulerEventKind,
    /// Monotonic seconds since the run's clock origin.
    #[serde(with = "finite_f64")]
    pub captured_at_monotonic: f64,
    /// Per-stream sequence number, assigned in emission order.
    pub sequence: u64,
    /// Correlation captured at construction.
    pub captured_correlation: Option<RuntimeCorrelation>,
    /// Task id.
    pub task_id: Option<TaskId>,
    /// Worker execution id, once a worker exists.
    pub task_execution_id: Option<TaskExecutionId>,
    /// Task lease id, when available.
    pub task_lease_id: Option<LeaseId>,
    /// Scheduler resource, when applicable.
    pub scheduler_resource_key: Option<SchedulerResourceKey>,
    /// Denial reason or release result, when applicable.
    pub reason_or_result: Option<String>,
    /// Optional scheduler snapshot.
    pub snapshot: Option<Value>,
    /// Sanitized diagnostics.
    pub diagnostics: BTreeMap<String, Value>,
}

impl SchedulerAdmissionEvent {
    /// An event of `kind` at `captured_at_monotonic` with every optional field empty.
    ///
    /// The sequence is assigned by the emitting stream.
    pub fn new(event_kind: SchedulerEventKind, captured_at_monotonic: f64) -> Self {
        Self {
            event_kind,
            captured_at_monotonic,
            sequence: 0,
            captured_correlation: None,
            task_id: None,
            task_execution_id: None,
            task_lease_id: None,
            scheduler_resource_key: None,
            reason_or_result: None,
            snapshot: None,
            diagnostics: BTreeMap::new(),
        }
    }
}

/// One request admission event, with correlation captured when it was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestAdmissionEvent {
    /// Kind.
    pub event_kind: RequestEventKind,
    /// Monotonic seconds since the run's clock origin.
    #[serde(with = "finite_f64")]
    pub captured_at_monotonic: f64,
    /// Per-stream sequence number, assigned in emission order.
    pub sequence: u64,
    /// Correlation captured at construction.
    pub captured_correlation: Option<RuntimeCorrelation>,
    /// The task execution that made the attempt, when known.
    pub task_execution_id: Option<TaskExecutionId>,
    /// The concrete attempt, when the event belongs to one.
    pub request_attempt_id: Option<RequestAttemptId>,
    /// Request lease id, when available.
    pub request_lease_id: Option<LeaseId>,
    /// Canonical request resource, when resource-specific.
    pub request_resource_key: Option<RequestResourceKey>,
    /// Request group key (V1: the resource), when queue/admission-specific.
    pub request_group_key: Option<RequestResourceKey>,
    /// Denial reason or release outcome, when applicable.
    pub reason_or_outcome: Option<String>,
    /// Optional pressure snapshot.
    pub pressure_snapshot: Option<Value>,
    /// Sanitized diagnostics.
    pub diagnostics: BTreeMap<String, Value>,
}

impl RequestAdmissionEvent {
    /// An event of `kind` at `captured_at_monotonic` with every optional field empty.
    ///
    /// The sequence is assigned by the emitting stream.
    pub fn new(event_kind: RequestEventKind, captured_at_monotonic: f64) -> Self {
        Self {
            event_kind,
            captured_at_monotonic,
            sequence: 0,
            captured_correlation: None,
            task_execution_id: None,
            request_attempt_id: None,
            request_lease_id: None,
            request_resource_key: None,
            request_group_key: None,
            reason_or_outcome: None,
            pressure_snapshot: None,
            diagnostics: BTreeMap::new(),
        }
    }
}
