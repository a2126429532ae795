//! Event vocabulary and DTOs of the two admission streams (scheduler and request).
//!
//! An event's kind is its payload's variant ([`crate::payload`]); the wire form is the plan's
//! flat object, `event_kind` first and the payload's fields as `diagnostics` last.

use crate::correlation::RuntimeCorrelation;
use crate::ids::{LeaseId, RequestAttemptId, TaskExecutionId, TaskId};
use crate::json::finite_f64;
use crate::outcome::str_enum;
use crate::payload::{RequestEventPayload, SchedulerEventPayload};
use crate::request::RequestResourceKey;
use crate::snapshots::{RequestPressureSnapshot, TaskAdmissionSnapshot};
use crate::task::SchedulerResourceKey;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
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
    /// The 19 request event kinds, in the plan's order, then weir's additions (issue 17: the
    /// shared-limits backend's mode changes).
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
        /// The shared-limits backend lost its store and fell back (local share or pause).
        SharedLimitsDegraded => "shared_limits_degraded",
        /// The shared-limits backend reached its store again and admits under shared limits.
        SharedLimitsRecovered => "shared_limits_recovered",
    }
);

/// One scheduler admission event, with correlation captured when it was built.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerAdmissionEvent {
    /// Monotonic seconds since the run's clock origin.
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
    /// Task-admission snapshot (`scheduler_health_snapshot`); boxed, as it is rare and large.
    pub snapshot: Option<Box<TaskAdmissionSnapshot>>,
    /// The kind and its typed data (the wire form's `event_kind` and `diagnostics`).
    pub payload: SchedulerEventPayload,
}

impl SchedulerAdmissionEvent {
    /// An event carrying `payload` at `captured_at_monotonic`, every optional field empty.
    ///
    /// The sequence is assigned by the emitting stream.
    pub fn with_payload(payload: SchedulerEventPayload, captured_at_monotonic: f64) -> Self {
        Self {
            captured_at_monotonic,
            sequence: 0,
            captured_correlation: None,
            task_id: None,
            task_execution_id: None,
            task_lease_id: None,
            scheduler_resource_key: None,
            reason_or_result: None,
            snapshot: None,
            payload,
        }
    }

    /// An event of `kind` whose payload fields are all at their defaults (for kinds without
    /// data, and for tests); producers of data-carrying kinds use [`Self::with_payload`].
    pub fn new(kind: SchedulerEventKind, captured_at_monotonic: f64) -> Self {
        Self::with_payload(
            SchedulerEventPayload::default_for(kind),
            captured_at_monotonic,
        )
    }

    /// The event's kind (its payload's variant).
    pub fn event_kind(&self) -> SchedulerEventKind {
        self.payload.kind()
    }
}

/// One request admission event, with correlation captured when it was built.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAdmissionEvent {
    /// Monotonic seconds since the run's clock origin.
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
    /// Pressure snapshot of the resource, when the event carries one.
    pub pressure_snapshot: Option<RequestPressureSnapshot>,
    /// The kind and its typed data (the wire form's `event_kind` and `diagnostics`).
    pub payload: RequestEventPayload,
}

impl RequestAdmissionEvent {
    /// An event carrying `payload` at `captured_at_monotonic`, every optional field empty.
    ///
    /// The sequence is assigned by the emitting stream.
    pub fn with_payload(payload: RequestEventPayload, captured_at_monotonic: f64) -> Self {
        Self {
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
            payload,
        }
    }

    /// An event of `kind` whose payload fields are all at their defaults (for kinds without
    /// data, and for tests); producers of data-carrying kinds use [`Self::with_payload`].
    pub fn new(kind: RequestEventKind, captured_at_monotonic: f64) -> Self {
        Self::with_payload(
            RequestEventPayload::default_for(kind),
            captured_at_monotonic,
        )
    }

    /// The event's kind (its payload's variant).
    pub fn event_kind(&self) -> RequestEventKind {
        self.payload.kind()
    }
}

// ---- wire form ----
//
// Serialized through borrowed mirror structs so the key order is the plan's (`event_kind`
// first, `diagnostics` last) and nothing is copied; read back through owned mirrors whose
// `diagnostics` object is decoded by the variant `event_kind` names.

/// A payload written as its variant's fields only.
struct Body<'a, P>(&'a P);

impl Serialize for Body<'_, SchedulerEventPayload> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_body(s)
    }
}

impl Serialize for Body<'_, RequestEventPayload> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_body(s)
    }
}

#[derive(Serialize)]
struct SchedulerWireRef<'a> {
    event_kind: SchedulerEventKind,
    #[serde(with = "finite_f64")]
    captured_at_monotonic: f64,
    sequence: u64,
    captured_correlation: &'a Option<RuntimeCorrelation>,
    task_id: &'a Option<TaskId>,
    task_execution_id: &'a Option<TaskExecutionId>,
    task_lease_id: &'a Option<LeaseId>,
    scheduler_resource_key: &'a Option<SchedulerResourceKey>,
    reason_or_result: &'a Option<String>,
    snapshot: &'a Option<Box<TaskAdmissionSnapshot>>,
    diagnostics: Body<'a, SchedulerEventPayload>,
}

#[derive(Deserialize)]
struct SchedulerWire {
    event_kind: SchedulerEventKind,
    #[serde(with = "finite_f64")]
    captured_at_monotonic: f64,
    sequence: u64,
    captured_correlation: Option<RuntimeCorrelation>,
    task_id: Option<TaskId>,
    task_execution_id: Option<TaskExecutionId>,
    task_lease_id: Option<LeaseId>,
    scheduler_resource_key: Option<SchedulerResourceKey>,
    reason_or_result: Option<String>,
    snapshot: Option<Box<TaskAdmissionSnapshot>>,
    #[serde(default)]
    diagnostics: Value,
}

impl Serialize for SchedulerAdmissionEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SchedulerWireRef {
            event_kind: self.event_kind(),
            captured_at_monotonic: self.captured_at_monotonic,
            sequence: self.sequence,
            captured_correlation: &self.captured_correlation,
            task_id: &self.task_id,
            task_execution_id: &self.task_execution_id,
            task_lease_id: &self.task_lease_id,
            scheduler_resource_key: &self.scheduler_resource_key,
            reason_or_result: &self.reason_or_result,
            snapshot: &self.snapshot,
            diagnostics: Body(&self.payload),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SchedulerAdmissionEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = SchedulerWire::deserialize(d)?;
        let payload = SchedulerEventPayload::from_body(w.event_kind, w.diagnostics)
            .map_err(|e| D::Error::custom(format!("{} diagnostics: {e}", w.event_kind)))?;
        Ok(Self {
            captured_at_monotonic: w.captured_at_monotonic,
            sequence: w.sequence,
            captured_correlation: w.captured_correlation,
            task_id: w.task_id,
            task_execution_id: w.task_execution_id,
            task_lease_id: w.task_lease_id,
            scheduler_resource_key: w.scheduler_resource_key,
            reason_or_result: w.reason_or_result,
            snapshot: w.snapshot,
            payload,
        })
    }
}

#[derive(Serialize)]
struct RequestWireRef<'a> {
    event_kind: RequestEventKind,
    #[serde(with = "finite_f64")]
    captured_at_monotonic: f64,
    sequence: u64,
    captured_correlation: &'a Option<RuntimeCorrelation>,
    task_execution_id: &'a Option<TaskExecutionId>,
    request_attempt_id: &'a Option<RequestAttemptId>,
    request_lease_id: &'a Option<LeaseId>,
    request_resource_key: &'a Option<RequestResourceKey>,
    request_group_key: &'a Option<RequestResourceKey>,
    reason_or_outcome: &'a Option<String>,
    pressure_snapshot: &'a Option<RequestPressureSnapshot>,
    diagnostics: Body<'a, RequestEventPayload>,
}

#[derive(Deserialize)]
struct RequestWire {
    event_kind: RequestEventKind,
    #[serde(with = "finite_f64")]
    captured_at_monotonic: f64,
    sequence: u64,
    captured_correlation: Option<RuntimeCorrelation>,
    task_execution_id: Option<TaskExecutionId>,
    request_attempt_id: Option<RequestAttemptId>,
    request_lease_id: Option<LeaseId>,
    request_resource_key: Option<RequestResourceKey>,
    request_group_key: Option<RequestResourceKey>,
    reason_or_outcome: Option<String>,
    pressure_snapshot: Option<RequestPressureSnapshot>,
    #[serde(default)]
    diagnostics: Value,
}

impl Serialize for RequestAdmissionEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RequestWireRef {
            event_kind: self.event_kind(),
            captured_at_monotonic: self.captured_at_monotonic,
            sequence: self.sequence,
            captured_correlation: &self.captured_correlation,
            task_execution_id: &self.task_execution_id,
            request_attempt_id: &self.request_attempt_id,
            request_lease_id: &self.request_lease_id,
            request_resource_key: &self.request_resource_key,
            request_group_key: &self.request_group_key,
            reason_or_outcome: &self.reason_or_outcome,
            pressure_snapshot: &self.pressure_snapshot,
            diagnostics: Body(&self.payload),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RequestAdmissionEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = RequestWire::deserialize(d)?;
        let payload = RequestEventPayload::from_body(w.event_kind, w.diagnostics)
            .map_err(|e| D::Error::custom(format!("{} diagnostics: {e}", w.event_kind)))?;
        Ok(Self {
            captured_at_monotonic: w.captured_at_monotonic,
            sequence: w.sequence,
            captured_correlation: w.captured_correlation,
            task_execution_id: w.task_execution_id,
            request_attempt_id: w.request_attempt_id,
            request_lease_id: w.request_lease_id,
            request_resource_key: w.request_resource_key,
            request_group_key: w.request_group_key,
            reason_or_outcome: w.reason_or_outcome,
            pressure_snapshot: w.pressure_snapshot,
            payload,
        })
    }
}
