//! `CorrelatedRuntimeView`: joins the scheduler and request streams by id into per-execution timelines.
//!
//! Built after the fact from the two event vectors (e.g. from an
//! [`crate::InMemoryAdmissionEventSink`]). Joins are by id, not by time:
//!
//! * a scheduler event belongs to the execution in its `task_execution_id`, else in its captured
//!   correlation, else to the execution that carried the same `task_lease_id`;
//! * a request event belongs to the execution in its `task_execution_id`, else in its captured
//!   correlation, else to the execution another event of the same `request_attempt_id` named;
//! * scheduler events that name only a task (`dependency_ready`, `ready_enqueued`, `selected`
//!   and an id-less `task_lease_acquired`) happen before a worker execution exists: they go to that
//!   task's first execution whose first scheduler event follows them in the scheduler sequence
//!   (so a retried task's second selection goes to its second execution); id-less
//!   `worker_spawned`, `task_completed`, `task_lease_released` go to the latest execution of the
//!   task that started before them.
//!
//! Per execution, the pre-execution fields keep the LAST such event before the execution (the one
//! that led to it, e.g. the selection after a stale one); every other field keeps the FIRST.

use crate::memory::InMemoryAdmissionEventSink;
use serde::Serialize;
use std::collections::HashMap;
use weir_contracts::{
    LeaseId, RequestAdmissionEvent, RequestAttemptId, RequestEventKind, RequestResourceKey,
    RuntimeCorrelation, SchedulerAdmissionEvent, SchedulerEventKind, SchedulerResourceKey,
    TaskExecutionId, TaskId,
};

/// The 13 benchmark-required timeline field names, in plan order.
pub const TIMELINE_FIELDS: [&str; 13] = [
    "dependency_ready_at",
    "ready_enqueued_at",
    "selected_at",
    "task_lease_acquired_at",
    "worker_spawned_at",
    "request_wait_started_at",
    "request_wait_completed_at",
    "request_lease_acquired_at",
    "model_request_started_at",
    "model_request_completed_at",
    "request_lease_released_at",
    "task_completed_at",
    "task_lease_released_at",
];

/// One event of either stream, borrowed from the view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimelineEvent<'a> {
    /// A scheduler event.
    Scheduler(&'a SchedulerAdmissionEvent),
    /// A request event.
    Request(&'a RequestAdmissionEvent),
}

impl TimelineEvent<'_> {
    /// `"scheduler"` or `"request"`.
    pub fn stream(&self) -> &'static str {
        match self {
            Self::Scheduler(_) => "scheduler",
            Self::Request(_) => "request",
        }
    }

    /// The event kind's snake_case name.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Scheduler(e) => e.event_kind().as_str(),
            Self::Request(e) => e.event_kind().as_str(),
        }
    }

    /// Monotonic capture time.
    pub fn captured_at(&self) -> f64 {
        match self {
            Self::Scheduler(e) => e.captured_at_monotonic,
            Self::Request(e) => e.captured_at_monotonic,
        }
    }

    /// Per-stream sequence.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Scheduler(e) => e.sequence,
            Self::Request(e) => e.sequence,
        }
    }

    /// The execution id the event names directly or through its captured correlation.
    pub fn task_execution_id(&self) -> Option<TaskExecutionId> {
        match self {
            Self::Scheduler(e) => direct_exec(e.task_execution_id, &e.captured_correlation),
            Self::Request(e) => direct_exec(e.task_execution_id, &e.captured_correlation),
        }
    }

    fn stream_rank(&self) -> u8 {
        match self {
            Self::Scheduler(_) => 0,
            Self::Request(_) => 1,
        }
    }

    /// The benchmark artifact's `timeline[]` row for this event.
    pub fn to_row(&self) -> TimelineRow {
        match self {
            Self::Scheduler(e) => TimelineRow {
                event_kind: e.event_kind().as_str(),
                captured_at_monotonic: e.captured_at_monotonic,
                stream: "scheduler",
                sequence: e.sequence,
                captured_correlation: e.captured_correlation.clone(),
                task_id: e.task_id.clone(),
                task_execution_id: e.task_execution_id,
                task_lease_id: e.task_lease_id,
                request_attempt_id: None,
                request_lease_id: None,
                scheduler_resource_key: e.scheduler_resource_key.clone(),
                request_resource_key: None,
                reason_or_outcome: e.reason_or_result.clone(),
            },
            Self::Request(e) => TimelineRow {
                event_kind: e.event_kind().as_str(),
                captured_at_monotonic: e.captured_at_monotonic,
                stream: "request",
                sequence: e.sequence,
                captured_correlation: e.captured_correlation.clone(),
                task_id: None,
                task_execution_id: e.task_execution_id,
                task_lease_id: None,
                request_attempt_id: e.request_attempt_id,
                request_lease_id: e.request_lease_id,
                scheduler_resource_key: None,
                request_resource_key: e.request_resource_key.clone(),
                reason_or_outcome: e.reason_or_outcome.clone(),
            },
        }
    }
}

/// One row of the benchmark artifact's merged `timeline[]` (field names as in the artifact schema).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineRow {
    /// Event kind.
    pub event_kind: &'static str,
    /// Monotonic capture time.
    pub captured_at_monotonic: f64,
    /// `"scheduler"` or `"request"`.
    pub stream: &'static str,
    /// Per-stream sequence.
    pub sequence: u64,
    /// Captured correlation.
    pub captured_correlation: Option<RuntimeCorrelation>,
    /// Task id (scheduler events).
    pub task_id: Option<TaskId>,
    /// Task execution id.
    pub task_execution_id: Option<TaskExecutionId>,
    /// Task lease id (scheduler events).
    pub task_lease_id: Option<LeaseId>,
    /// Request attempt id (request events).
    pub request_attempt_id: Option<RequestAttemptId>,
    /// Request lease id (request events).
    pub request_lease_id: Option<LeaseId>,
    /// Scheduler resource (scheduler events).
    pub scheduler_resource_key: Option<SchedulerResourceKey>,
    /// Request resource (request events).
    pub request_resource_key: Option<RequestResourceKey>,
    /// Reason or outcome.
    pub reason_or_outcome: Option<String>,
}

/// Request-side timeline of one concrete attempt (first event of each kind).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestAttemptTimeline {
    /// The attempt.
    pub request_attempt_id: RequestAttemptId,
    /// The execution that made it, when known.
    pub task_execution_id: Option<TaskExecutionId>,
    /// `request_wait_started`.
    pub request_wait_started_at: Option<f64>,
    /// `request_wait_completed`.
    pub request_wait_completed_at: Option<f64>,
    /// `request_lease_acquired`.
    pub request_lease_acquired_at: Option<f64>,
    /// `model_request_started`.
    pub model_request_started_at: Option<f64>,
    /// `model_request_completed`.
    pub model_request_completed_at: Option<f64>,
    /// `request_lease_released`.
    pub request_lease_released_at: Option<f64>,
}

impl RequestAttemptTimeline {
    fn new(
        request_attempt_id: RequestAttemptId,
        task_execution_id: Option<TaskExecutionId>,
    ) -> Self {
        Self {
            request_attempt_id,
            task_execution_id,
            request_wait_started_at: None,
            request_wait_completed_at: None,
            request_lease_acquired_at: None,
            model_request_started_at: None,
            model_request_completed_at: None,
            request_lease_released_at: None,
        }
    }

    fn record(&mut self, kind: RequestEventKind, at: f64) {
        let slot = match kind {
            RequestEventKind::RequestWaitStarted => &mut self.request_wait_started_at,
            RequestEventKind::RequestWaitCompleted => &mut self.request_wait_completed_at,
            RequestEventKind::RequestLeaseAcquired => &mut self.request_lease_acquired_at,
            RequestEventKind::ModelRequestStarted => &mut self.model_request_started_at,
            RequestEventKind::ModelRequestCompleted => &mut self.model_request_completed_at,
            RequestEventKind::RequestLeaseReleased => &mut self.request_lease_released_at,
            _ => return,
        };
        slot.get_or_insert(at);
    }
}

/// The plan's 13 monotonic timeline fields for one task execution, plus its request attempts.
///
/// Request fields are the first event of each kind across the execution's attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskExecutionTimeline {
    /// The execution.
    pub task_execution_id: TaskExecutionId,
    /// Its task, when a scheduler event named it.
    pub task_id: Option<TaskId>,
    /// `dependency_ready` (last before the execution).
    pub dependency_ready_at: Option<f64>,
    /// `ready_enqueued` (last before the execution).
    pub ready_enqueued_at: Option<f64>,
    /// `selected` (last before the execution).
    pub selected_at: Option<f64>,
    /// `task_lease_acquired`.
    pub task_lease_acquired_at: Option<f64>,
    /// `worker_spawned`.
    pub worker_spawned_at: Option<f64>,
    /// First `request_wait_started`.
    pub request_wait_started_at: Option<f64>,
    /// First `request_wait_completed`.
    pub request_wait_completed_at: Option<f64>,
    /// First `request_lease_acquired`.
    pub request_lease_acquired_at: Option<f64>,
    /// First `model_request_started`.
    pub model_request_started_at: Option<f64>,
    /// First `model_request_completed`.
    pub model_request_completed_at: Option<f64>,
    /// First `request_lease_released`.
    pub request_lease_released_at: Option<f64>,
    /// `task_completed`.
    pub task_completed_at: Option<f64>,
    /// `task_lease_released`.
    pub task_lease_released_at: Option<f64>,
    /// Per-attempt request timelines, in order of each attempt's first event.
    pub attempts: Vec<RequestAttemptTimeline>,
    /// Scheduler sequence of the first `task_lease_acquired`.
    #[serde(skip)]
    lease_sequence: Option<u64>,
    /// Scheduler sequence of the first `worker_spawned`.
    #[serde(skip)]
    spawn_sequence: Option<u64>,
}

impl TaskExecutionTimeline {
    fn new(task_execution_id: TaskExecutionId) -> Self {
        Self {
            task_execution_id,
            task_id: None,
            dependency_ready_at: None,
            ready_enqueued_at: None,
            selected_at: None,
            task_lease_acquired_at: None,
            worker_spawned_at: None,
            request_wait_started_at: None,
            request_wait_completed_at: None,
            request_lease_acquired_at: None,
            model_request_started_at: None,
            model_request_completed_at: None,
            request_lease_released_at: None,
            task_completed_at: None,
            task_lease_released_at: None,
            attempts: Vec::new(),
            lease_sequence: None,
            spawn_sequence: None,
        }
    }

    /// The 13 fields as `(name, value)` in plan order.
    pub fn fields(&self) -> [(&'static str, Option<f64>); 13] {
        let v = [
            self.dependency_ready_at,
            self.ready_enqueued_at,
            self.selected_at,
            self.task_lease_acquired_at,
            self.worker_spawned_at,
            self.request_wait_started_at,
            self.request_wait_completed_at,
            self.request_lease_acquired_at,
            self.model_request_started_at,
            self.model_request_completed_at,
            self.request_lease_released_at,
            self.task_completed_at,
            self.task_lease_released_at,
        ];
        let mut out = [("", None); 13];
        for (i, (name, value)) in TIMELINE_FIELDS.iter().zip(v).enumerate() {
            out[i] = (*name, value);
        }
        out
    }

    /// Names of the fields that are still empty.
    pub fn missing_fields(&self) -> Vec<&'static str> {
        self.fields()
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect()
    }

    /// Whether the worker was spawned before (or without) its task lease: a hidden scheduler waiter.
    pub fn is_hidden_scheduler_resource_waiter(&self) -> bool {
        match (self.spawn_sequence, self.lease_sequence) {
            (Some(spawn), Some(lease)) => spawn < lease,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn record_scheduler(&mut self, kind: SchedulerEventKind, at: f64, sequence: u64) {
        use SchedulerEventKind as K;
        match kind {
            // Pre-execution kinds: the last one before the execution is the one that led to it.
            K::DependencyReady => self.dependency_ready_at = Some(at),
            K::ReadyEnqueued => self.ready_enqueued_at = Some(at),
            K::Selected => self.selected_at = Some(at),
            K::TaskLeaseAcquired if self.lease_sequence.is_none() => {
                self.lease_sequence = Some(sequence);
                self.task_lease_acquired_at = Some(at);
            }
            K::WorkerSpawned if self.spawn_sequence.is_none() => {
                self.spawn_sequence = Some(sequence);
                self.worker_spawned_at = Some(at);
            }
            K::TaskCompleted => {
                self.task_completed_at.get_or_insert(at);
            }
            K::TaskLeaseReleased => {
                self.task_lease_released_at.get_or_insert(at);
            }
            _ => {}
        }
    }

    fn record_request(&mut self, kind: RequestEventKind, at: f64) {
        let slot = match kind {
            RequestEventKind::RequestWaitStarted => &mut self.request_wait_started_at,
            RequestEventKind::RequestWaitCompleted => &mut self.request_wait_completed_at,
            RequestEventKind::RequestLeaseAcquired => &mut self.request_lease_acquired_at,
            RequestEventKind::ModelRequestStarted => &mut self.model_request_started_at,
            RequestEventKind::ModelRequestCompleted => &mut self.model_request_completed_at,
            RequestEventKind::RequestLeaseReleased => &mut self.request_lease_released_at,
            _ => return,
        };
        slot.get_or_insert(at);
    }
}

fn direct_exec(
    own: Option<TaskExecutionId>,
    correlation: &Option<RuntimeCorrelation>,
) -> Option<TaskExecutionId> {
    own.or_else(|| correlation.as_ref().and_then(|c| c.task_execution_id))
}

/// Whether an id-less scheduler event of this kind precedes the execution it belongs to.
fn is_pre_execution(kind: SchedulerEventKind) -> bool {
    matches!(
        kind,
        SchedulerEventKind::DependencyReady
            | SchedulerEventKind::ReadyEnqueued
            | SchedulerEventKind::Selected
            | SchedulerEventKind::TaskLeaseAcquired
    )
}

/// Joined view over one run's scheduler and request events.
#[derive(Debug, Clone)]
pub struct CorrelatedRuntimeView {
    scheduler: Vec<SchedulerAdmissionEvent>,
    request: Vec<RequestAdmissionEvent>,
    executions: Vec<TaskExecutionTimeline>,
    index: HashMap<TaskExecutionId, usize>,
    unattributed_spawns_without_lease: usize,
}

impl CorrelatedRuntimeView {
    /// Joins the two streams' events (each is put in sequence order first).
    pub fn new(
        mut scheduler: Vec<SchedulerAdmissionEvent>,
        mut request: Vec<RequestAdmissionEvent>,
    ) -> Self {
        scheduler.sort_by_key(|e| e.sequence);
        request.sort_by_key(|e| e.sequence);
        let mut view = Self {
            scheduler,
            request,
            executions: Vec::new(),
            index: HashMap::new(),
            unattributed_spawns_without_lease: 0,
        };
        view.join_scheduler();
        view.join_request();
        view
    }

    /// Joins a snapshot of an in-memory sink's two streams.
    pub fn from_sink(sink: &InMemoryAdmissionEventSink) -> Self {
        Self::new(sink.scheduler_events(), sink.request_events())
    }

    fn execution_mut(&mut self, id: TaskExecutionId) -> &mut TaskExecutionTimeline {
        let executions = &mut self.executions;
        let i = *self.index.entry(id).or_insert_with(|| {
            executions.push(TaskExecutionTimeline::new(id));
            executions.len() - 1
        });
        &mut self.executions[i]
    }

    fn join_scheduler(&mut self) {
        // Lease id -> execution, learned from any event carrying both.
        let mut by_lease: HashMap<LeaseId, TaskExecutionId> = HashMap::new();
        for e in &self.scheduler {
            if let (Some(lease), Some(exec)) = (
                e.task_lease_id,
                direct_exec(e.task_execution_id, &e.captured_correlation),
            ) {
                by_lease.entry(lease).or_insert(exec);
            }
        }
        let resolved: Vec<Option<TaskExecutionId>> = self
            .scheduler
            .iter()
            .map(|e| {
                direct_exec(e.task_execution_id, &e.captured_correlation)
                    .or_else(|| e.task_lease_id.and_then(|l| by_lease.get(&l).copied()))
            })
            .collect();

        // Executions of each task, by the sequence of their first scheduler event.
        let mut starts: HashMap<TaskId, Vec<(u64, TaskExecutionId)>> = HashMap::new();
        let mut first_seq: HashMap<TaskExecutionId, u64> = HashMap::new();
        for (e, exec) in self.scheduler.iter().zip(&resolved) {
            if let Some(exec) = exec {
                first_seq.entry(*exec).or_insert(e.sequence);
            }
        }
        let scheduler = std::mem::take(&mut self.scheduler);
        for (e, exec) in scheduler.iter().zip(&resolved) {
            if let (Some(exec), Some(task)) = (exec, &e.task_id) {
                let timeline = self.execution_mut(*exec);
                if timeline.task_id.is_none() {
                    timeline.task_id = Some(task.clone());
                    let start = first_seq.get(exec).copied().unwrap_or(e.sequence);
                    starts.entry(task.clone()).or_default().push((start, *exec));
                }
            }
        }
        for list in starts.values_mut() {
            list.sort_unstable();
        }

        let mut unattributed_leases: HashMap<&TaskId, Vec<u64>> = HashMap::new();
        for (e, exec) in scheduler.iter().zip(&resolved) {
            let target = match (exec, &e.task_id) {
                (Some(exec), _) => Some(*exec),
                (None, Some(task)) => {
                    let list = starts.get(task).map(Vec::as_slice).unwrap_or(&[]);
                    if is_pre_execution(e.event_kind()) {
                        list.iter().find(|(s, _)| *s > e.sequence).map(|(_, x)| *x)
                    } else {
                        list.iter()
                            .rev()
                            .find(|(s, _)| *s < e.sequence)
                            .map(|(_, x)| *x)
                    }
                }
                (None, None) => None,
            };
            match target {
                Some(exec) => self.execution_mut(exec).record_scheduler(
                    e.event_kind(),
                    e.captured_at_monotonic,
                    e.sequence,
                ),
                None => {
                    // Task-level fallback for streams without execution ids (legacy shapes).
                    if let Some(task) = &e.task_id {
                        match e.event_kind() {
                            SchedulerEventKind::TaskLeaseAcquired => unattributed_leases
                                .entry(task)
                                .or_default()
                                .push(e.sequence),
                            SchedulerEventKind::WorkerSpawned => {
                                let leased_before = unattributed_leases
                                    .get(task)
                                    .is_some_and(|l| l.iter().any(|s| *s < e.sequence));
                                if !leased_before {
                                    self.unattributed_spawns_without_lease += 1;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        self.scheduler = scheduler;
    }

    fn join_request(&mut self) {
        let mut by_attempt: HashMap<RequestAttemptId, TaskExecutionId> = HashMap::new();
        for e in &self.request {
            if let (Some(attempt), Some(exec)) = (
                e.request_attempt_id,
                direct_exec(e.task_execution_id, &e.captured_correlation),
            ) {
                by_attempt.entry(attempt).or_insert(exec);
            }
        }
        let request = std::mem::take(&mut self.request);
        for e in &request {
            let exec = direct_exec(e.task_execution_id, &e.captured_correlation).or_else(|| {
                e.request_attempt_id
                    .and_then(|a| by_attempt.get(&a).copied())
            });
            let Some(exec) = exec else { continue };
            let timeline = self.execution_mut(exec);
            timeline.record_request(e.event_kind(), e.captured_at_monotonic);
            if let Some(attempt) = e.request_attempt_id {
                let pos = match timeline
                    .attempts
                    .iter()
                    .position(|a| a.request_attempt_id == attempt)
                {
                    Some(pos) => pos,
                    None => {
                        timeline
                            .attempts
                            .push(RequestAttemptTimeline::new(attempt, Some(exec)));
                        timeline.attempts.len() - 1
                    }
                };
                timeline.attempts[pos].record(e.event_kind(), e.captured_at_monotonic);
            }
        }
        self.request = request;
    }

    /// The scheduler events, in sequence order.
    pub fn scheduler_events(&self) -> &[SchedulerAdmissionEvent] {
        &self.scheduler
    }

    /// The request events, in sequence order.
    pub fn request_events(&self) -> &[RequestAdmissionEvent] {
        &self.request
    }

    /// Both streams merged, stably sorted by (capture time, scheduler before request, sequence).
    pub fn timeline(&self) -> Vec<TimelineEvent<'_>> {
        let mut merged: Vec<TimelineEvent<'_>> = self
            .scheduler
            .iter()
            .map(TimelineEvent::Scheduler)
            .chain(self.request.iter().map(TimelineEvent::Request))
            .collect();
        merged.sort_by(|a, b| {
            a.captured_at()
                .total_cmp(&b.captured_at())
                .then(a.stream_rank().cmp(&b.stream_rank()))
                .then(a.sequence().cmp(&b.sequence()))
        });
        merged
    }

    /// [`CorrelatedRuntimeView::timeline`] as benchmark-artifact rows.
    pub fn timeline_rows(&self) -> Vec<TimelineRow> {
        self.timeline().iter().map(TimelineEvent::to_row).collect()
    }

    /// Every execution's timeline, in order of first appearance (scheduler stream first).
    pub fn executions(&self) -> &[TaskExecutionTimeline] {
        &self.executions
    }

    /// One execution's timeline.
    pub fn execution(&self, id: TaskExecutionId) -> Option<&TaskExecutionTimeline> {
        self.index.get(&id).map(|i| &self.executions[*i])
    }

    /// The executions of one task, in order of appearance.
    pub fn executions_of_task(&self, task_id: &TaskId) -> Vec<&TaskExecutionTimeline> {
        self.executions
            .iter()
            .filter(|x| x.task_id.as_ref() == Some(task_id))
            .collect()
    }

    /// Executions (or, without execution ids, tasks) whose `worker_spawned` precedes its
    /// `task_lease_acquired` in the scheduler sequence, or that have no lease at all.
    pub fn hidden_scheduler_resource_waiters(&self) -> usize {
        self.executions
            .iter()
            .filter(|x| x.is_hidden_scheduler_resource_waiter())
            .count()
            + self.unattributed_spawns_without_lease
    }

    /// Number of `request_lease_acquired` events.
    pub fn request_lease_count(&self) -> usize {
        self.count_request(RequestEventKind::RequestLeaseAcquired)
    }

    /// Number of concrete outbound attempts (`model_request_started` events).
    pub fn outbound_attempts(&self) -> usize {
        self.count_request(RequestEventKind::ModelRequestStarted)
    }

    fn count_request(&self, kind: RequestEventKind) -> usize {
        self.request
            .iter()
            .filter(|e| e.event_kind() == kind)
            .count()
    }
}
