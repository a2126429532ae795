//! `RunLoop`: the scheduler's single dispatch owner — readiness, queue, task admission, workers.
//!
//! One async task owns every piece of scheduler state (tracker, queue, admission controller,
//! row-group buffers), so the plan's dispatch critical section `select_next → try_acquire →
//! commit` needs no lock at all: nothing else can touch the queue between the three calls.
//! Workers report back through a `JoinSet`; the loop sleeps only in one `select!` over worker
//! completion, the next timer (retry due, `available_after`, health tick, stop grace) and the
//! cancel signal, and it re-runs its whole pass after every wake — so an enqueue, a release, a
//! policy change, an expired `available_after` or a stop request can never be lost.

use super::circuit::CircuitBreaker;
use super::columns::ColumnInfo;
use super::config::SchedulerConfig;
use super::events::{SchedulerEvents, TaskEventFields};
use super::fail_fast::{is_configuration_failure, is_unreachable_endpoint};
use super::failure_window::FailureWindow;
use super::failures::{model_source, FailureLog};
use super::records::{RecordSink, RowGroupBuffer};
use super::report::{SchedulerError, SchedulerReport, StopReason};
use super::retries::{RetryBook, RetryDecision};
use super::row_groups::{RowGroupAdmission, RowGroupBlock};
use super::PressureAdvisory;
use crate::completion::{CompletionTracker, DropCause, Task};
use crate::generators::{
    BatchContext, BatchRow, CellContext, GenerationError, GenerationErrorClass, Record,
};
use crate::model_facade::ModelFacade;
use crate::workflow::Workflow;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{Id as WorkerId, JoinError, JoinSet};
use tokio::time::Instant;
use weir_capacity::ObservedMaximaTracker;
use weir_contracts::{
    RequestAdmissionDenyReason, SchedulerEventKind, TaskAdmissionDenyReason, TaskExecutionId,
    TaskGroupKey, TaskId,
};
use weir_task_admission::{
    FairTaskQueue, SchedulableTask, TaskAdmissionController, TaskAdmissionDecision,
    TaskAdmissionLease,
};
use weir_telemetry::{MonotonicClock, RuntimeCorrelationProvider};

/// What a worker hands back.
enum WorkerOutput {
    Cell(Value),
    Batch(Vec<BatchRow>),
}

/// A leased task that is executing.
struct Running {
    task: Task,
    task_id: TaskId,
    column: usize,
    lease: TaskAdmissionLease,
    execution: TaskExecutionId,
}

/// How an execution ended.
enum Ending {
    Output(WorkerOutput),
    Failed(GenerationError),
    Panicked,
    Aborted,
}

/// How a finished execution counts for early shutdown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Terminal {
    /// Not a terminal outcome (deferred, cancelled, moot).
    None,
    /// Completed.
    Succeeded,
    /// Failed for good.
    Failed,
}

pub(crate) struct RunLoop {
    pub workflow: Arc<Workflow>,
    pub columns: Vec<ColumnInfo>,
    pub column_index: HashMap<Arc<str>, usize>,
    pub config: SchedulerConfig,
    pub models: Arc<dyn ModelFacade>,
    pub events: SchedulerEvents,
    pub advisory: Option<Arc<dyn PressureAdvisory>>,
    pub clock: MonotonicClock,
    pub tracker: CompletionTracker,
    pub queue: FairTaskQueue<Task>,
    pub admission: TaskAdmissionController,
    pub row_groups: RowGroupAdmission,
    pub next_row_group: u64,
    pub total_row_groups: u64,
    pub next_to_write: u64,
    pub buffers: BTreeMap<u64, RowGroupBuffer>,
    pub ready_to_write: BTreeMap<u64, Vec<(u64, Record)>>,
    /// Dropped-row counts of completed groups not yet written (for their checkpoint event).
    dropped_in_unwritten: BTreeMap<u64, u64>,
    pub failure_window: Option<FailureWindow>,
    pub observed: ObservedMaximaTracker,
    pub report: SchedulerReport,
    workers: JoinSet<Result<WorkerOutput, GenerationError>>,
    running: HashMap<WorkerId, Running>,
    retries: RetryBook,
    failures: FailureLog,
    breaker: Option<CircuitBreaker>,
    /// Model aliases that answered at least one call in this run.
    answered: HashSet<String>,
    /// The cause label of the latest terminal failure (for the early-shutdown reason).
    last_failure_cause: Option<String>,
    stopping: Option<StopReason>,
    stop_deadline: Option<Instant>,
    row_group_block_reported: bool,
    next_health: Option<Instant>,
    started: Instant,
}

impl RunLoop {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        workflow: Arc<Workflow>,
        columns: Vec<ColumnInfo>,
        config: SchedulerConfig,
        models: Arc<dyn ModelFacade>,
        events: SchedulerEvents,
        advisory: Option<Arc<dyn PressureAdvisory>>,
        tracker: CompletionTracker,
        admission: TaskAdmissionController,
        first_row_group: u64,
    ) -> Self {
        let column_index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let clock = events.stream.clock();
        let total_row_groups = workflow.row_group_count();
        let row_groups =
            RowGroupAdmission::new(config.max_concurrent_row_groups, config.row_group_mode);
        let failure_window = config.early_shutdown.map(FailureWindow::new);
        let report = SchedulerReport {
            first_row_group,
            ..SchedulerReport::default()
        };
        let now = Instant::now();
        let config_breaker = config.circuit_breaker.map(CircuitBreaker::new);
        Self {
            workflow,
            columns,
            column_index,
            next_health: config.health_snapshot_interval.map(|d| now + d),
            config,
            models,
            events,
            advisory,
            clock,
            tracker,
            queue: FairTaskQueue::new(),
            admission,
            row_groups,
            next_row_group: first_row_group,
            total_row_groups,
            next_to_write: first_row_group,
            buffers: BTreeMap::new(),
            ready_to_write: BTreeMap::new(),
            dropped_in_unwritten: BTreeMap::new(),
            failure_window,
            observed: ObservedMaximaTracker::new(),
            report,
            workers: JoinSet::new(),
            running: HashMap::new(),
            retries: RetryBook::default(),
            failures: FailureLog::default(),
            breaker: config_breaker,
            answered: HashSet::new(),
            last_failure_cause: None,
            stopping: None,
            stop_deadline: None,
            row_group_block_reported: false,
            started: now,
        }
    }

    /// Runs to completion, a stop, or an error. Every lease is released on every path.
    pub(crate) async fn run(
        &mut self,
        sink: &mut dyn RecordSink,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<(), SchedulerError> {
        self.events
            .run(SchedulerEventKind::SchedulerJobStarted, |e| {
                e.diagnostics
                    .insert("records".into(), json!(self.workflow.records));
                e.diagnostics
                    .insert("row_groups".into(), json!(self.total_row_groups));
                e.diagnostics
                    .insert("first_row_group".into(), json!(self.next_row_group));
            });
        let outcome = self.drive(sink, &mut cancel).await;
        // Whatever happened, no worker may outlive the run with a lease.
        self.abort_all().await;
        self.report.failures = std::mem::take(&mut self.failures).into_groups();
        self.report.queued_at_end = self.queue.len() as u64;
        self.queue.discard_where(|_| true);
        let flushed = sink.flush();
        self.report.wall_seconds = self.started.elapsed().as_secs_f64();
        self.report.final_task_snapshot = self.admission.snapshot();
        self.report.max_row_groups_in_flight = self.row_groups.max_in_flight();
        self.observed.observe_task(&self.report.final_task_snapshot);
        self.events
            .run(SchedulerEventKind::SchedulerJobCompleted, |e| {
                e.reason_or_result = Some(match (&outcome, &self.report.stopped) {
                    (Err(_), _) => "error".into(),
                    (Ok(()), Some(StopReason::Cancelled)) => "cancelled".into(),
                    (Ok(()), Some(StopReason::EarlyShutdown { .. })) => "early_shutdown".into(),
                    (Ok(()), Some(StopReason::ConfigurationError { .. })) => {
                        "configuration_error".into()
                    }
                    (Ok(()), Some(StopReason::CircuitOpen { .. })) => "circuit_open".into(),
                    (Ok(()), None) => "completed".into(),
                });
                e.diagnostics
                    .insert("records_written".into(), json!(self.report.records_written));
                e.diagnostics
                    .insert("rows_dropped".into(), json!(self.report.rows_dropped));
            });
        self.events.stream.flush();
        outcome?;
        flushed.map_err(|e| SchedulerError::RecordSink {
            message: e.to_string(),
        })
    }

    async fn drive(
        &mut self,
        sink: &mut dyn RecordSink,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), SchedulerError> {
        let mut cancel_closed = false;
        loop {
            if self.stopping.is_none() && *cancel.borrow() {
                self.begin_stop(StopReason::Cancelled);
            }
            let mut progress = false;
            if self.stopping.is_none() {
                progress |= self.admit_row_groups()?;
                progress |= self.enqueue_frontier();
                progress |= self.dispatch().await? > 0;
            }
            while let Some(joined) = self.workers.try_join_next_with_id() {
                self.on_joined(joined)?;
                progress = true;
            }
            progress |= self.fire_due_retries()?;
            progress |= self.checkpoint(sink)?;
            if self.finished() {
                return Ok(());
            }
            if progress {
                continue;
            }
            self.observe();
            let wake_at = self.next_wake()?;
            tokio::select! {
                joined = self.workers.join_next_with_id(), if !self.workers.is_empty() => {
                    if let Some(joined) = joined {
                        self.on_joined(joined)?;
                    }
                }
                _ = sleep_until_opt(wake_at), if wake_at.is_some() => {
                    self.on_timer();
                }
                changed = cancel.changed(), if self.stopping.is_none() && !cancel_closed => {
                    // A closed channel means nobody can ask us to stop any more: stop polling it
                    // (never park the loop itself).
                    cancel_closed = changed.is_err();
                }
            }
        }
    }

    fn finished(&self) -> bool {
        if self.stopping.is_some() {
            return self.workers.is_empty();
        }
        self.next_to_write >= self.total_row_groups
    }

    // ---- row groups and readiness ----------------------------------------------------------

    fn admit_row_groups(&mut self) -> Result<bool, SchedulerError> {
        let mut admitted = false;
        while self.next_row_group < self.total_row_groups {
            // Completed groups wait for earlier ones before they are written; cap that backlog
            // so memory stays bounded even when the oldest group is slow.
            if self.ready_to_write.len() >= self.write_backlog_limit() {
                if !self.row_group_block_reported {
                    self.row_group_block_reported = true;
                    self.observed.observe_row_group_blocked("write_backlog");
                    let backlog = self.ready_to_write.len();
                    self.events
                        .run(SchedulerEventKind::RowGroupAdmissionBlocked, |e| {
                            e.reason_or_result = Some("write_backlog".into());
                            e.diagnostics
                                .insert("completed_unwritten".into(), json!(backlog));
                        });
                }
                break;
            }
            let pressure = !self.queue.is_empty();
            match self.row_groups.try_admit(pressure) {
                Ok(target_changed) => {
                    let rg = self.next_row_group;
                    let rows = self.workflow.row_group_size(rg);
                    self.tracker
                        .admit_row_group(rg, rows)
                        .map_err(|e| internal(format!("admit row group {rg}: {e}")))?;
                    self.buffers
                        .insert(rg, RowGroupBuffer::new(self.workflow.row_offset(rg), rows));
                    self.next_row_group += 1;
                    self.row_group_block_reported = false;
                    admitted = true;
                    if let Some(target) = target_changed {
                        self.observed.observe_row_group_target(target);
                        self.events
                            .run(SchedulerEventKind::RowGroupAdmissionTargetChanged, |e| {
                                e.diagnostics.insert("target".into(), json!(target));
                            });
                    }
                    let in_flight = self.row_groups.in_flight();
                    self.events.run(SchedulerEventKind::RowGroupAdmitted, |e| {
                        e.diagnostics.insert("row_group".into(), json!(rg));
                        e.diagnostics.insert("rows".into(), json!(rows));
                        e.diagnostics.insert("in_flight".into(), json!(in_flight));
                    });
                }
                Err(block) => {
                    if !self.row_group_block_reported {
                        self.row_group_block_reported = true;
                        self.observed.observe_row_group_blocked(block.as_str());
                        self.report_row_group_block(block);
                    }
                    break;
                }
            }
        }
        Ok(admitted)
    }

    /// Completed-but-unwritten row groups allowed before admission pauses.
    fn write_backlog_limit(&self) -> usize {
        2 * self.row_groups.hard_cap().max(1) as usize
    }

    fn report_row_group_block(&self, block: RowGroupBlock) {
        let (in_flight, target) = (self.row_groups.in_flight(), self.row_groups.target());
        self.events
            .run(SchedulerEventKind::RowGroupAdmissionBlocked, |e| {
                e.reason_or_result = Some(block.as_str().into());
                e.diagnostics.insert("in_flight".into(), json!(in_flight));
                e.diagnostics.insert("target".into(), json!(target));
            });
    }

    fn enqueue_frontier(&mut self) -> bool {
        if self.tracker.pending_len() == 0 {
            return false;
        }
        let frontier = self.tracker.ready_frontier();
        let mut items = Vec::with_capacity(frontier.len());
        for ready in frontier {
            let Some(&ci) = self.column_index.get(&ready.task.column) else {
                continue;
            };
            let col = &self.columns[ci];
            self.events.task(
                SchedulerEventKind::DependencyReady,
                col,
                &ready.task,
                &ready.id,
                TaskEventFields::default(),
            );
            items.push(SchedulableTask::new(
                ready.id,
                ready.task,
                col.group.clone(),
                col.request.clone(),
            ));
        }
        let accepted = self.queue.enqueue(items);
        self.tracker.mark_enqueued(accepted.iter());
        if self.events.wants(SchedulerEventKind::ReadyEnqueued) {
            for id in &accepted {
                if let Some(item) = self.queue.get(id) {
                    if let Some(&ci) = self.column_index.get(&item.payload.column) {
                        self.events.task(
                            SchedulerEventKind::ReadyEnqueued,
                            &self.columns[ci],
                            &item.payload,
                            id,
                            TaskEventFields::default(),
                        );
                    }
                }
            }
        }
        self.report.max_queued_tasks = self.report.max_queued_tasks.max(self.queue.len() as u64);
        !accepted.is_empty()
    }

    // ---- dispatch: select_next → try_acquire → commit → execute ---------------------------

    /// Dispatches until nothing queued is admissible; returns how many tasks were started.
    async fn dispatch(&mut self) -> Result<usize, SchedulerError> {
        let pressured = self.pressured_columns();
        let mut started = 0;
        let mut pass_clock: Option<f64> = None;
        loop {
            if self.queue.is_empty() || self.stopping.is_some() {
                break;
            }
            let mut skipped_for_pressure = false;
            let selection = {
                let admission = &self.admission;
                let column_index = &self.column_index;
                let first = self.queue.select_next(|item, view| {
                    if !admission.is_eligible(item, view) {
                        return false;
                    }
                    let pressed = column_index
                        .get(&item.payload.column)
                        .is_some_and(|&ci| pressured.get(ci).copied().unwrap_or(false));
                    if pressed {
                        skipped_for_pressure = true;
                    }
                    !pressed
                });
                match first {
                    Some(s) => Some(s),
                    // Advisory only: if every admissible candidate is pressured, take one anyway.
                    None if skipped_for_pressure => {
                        skipped_for_pressure = false;
                        self.queue
                            .select_next(|item, view| admission.is_eligible(item, view))
                    }
                    None => None,
                }
            };
            let Some(selection) = selection else {
                break;
            };
            let task_id = selection.item.task_id.clone();
            let task = selection.item.payload.clone();
            let ci = self.column_of(&task)?;
            if skipped_for_pressure {
                self.events.task(
                    SchedulerEventKind::RequestPressureAdvisorySkipped,
                    &self.columns[ci],
                    &task,
                    &task_id,
                    TaskEventFields::default(),
                );
            }
            self.events.task(
                SchedulerEventKind::Selected,
                &self.columns[ci],
                &task,
                &task_id,
                TaskEventFields::default(),
            );
            let token = selection.token();
            // One clock read per pass (not per task): the lease timestamp is diagnostic only,
            // and the read is a third of an admission cycle.
            let acquired_at = *pass_clock.get_or_insert_with(|| self.clock.now());
            let decision =
                self.admission
                    .try_acquire_at(selection.item, &selection.queue_view, acquired_at);
            let lease = match decision {
                TaskAdmissionDecision::Lease(lease) => lease,
                TaskAdmissionDecision::Denied(denied) => {
                    // is_eligible said yes a moment ago on the same state; a denial here means
                    // the policy changed its mind. Report it and stop this pass (no spin).
                    self.events.task(
                        SchedulerEventKind::AdmissionDenied,
                        &self.columns[ci],
                        &task,
                        &task_id,
                        TaskEventFields {
                            reason: Some(denied.reason.as_str()),
                            ..Default::default()
                        },
                    );
                    break;
                }
            };
            let Some(committed) = self.queue.commit(token) else {
                let result = self.admission.release(&lease);
                self.events.task(
                    SchedulerEventKind::StaleSelection,
                    &self.columns[ci],
                    &task,
                    &task_id,
                    TaskEventFields {
                        lease: Some(lease.lease_id()),
                        reason: Some(result.reason.as_str()),
                        ..Default::default()
                    },
                );
                continue;
            };
            let active = self.admission.view().active_lease_count();
            self.report.max_active_task_leases = self.report.max_active_task_leases.max(active);
            if self.queue.is_empty() {
                self.events.run(SchedulerEventKind::QueueDrained, |_| {});
            }
            self.start(committed, lease, ci).await?;
            started += 1;
        }
        Ok(started)
    }

    fn pressured_columns(&self) -> Vec<bool> {
        match (&self.advisory, self.config.request_pressure_advisory) {
            (Some(advisory), true) => self
                .columns
                .iter()
                .map(|c| advisory.is_pressured(&c.metadata))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn column_of(&self, task: &Task) -> Result<usize, SchedulerError> {
        self.column_index
            .get(&task.column)
            .copied()
            .ok_or_else(|| internal(format!("task of unknown column {:?}", task.column)))
    }

    /// Executes a leased task: inline for local work, otherwise as a spawned worker.
    async fn start(
        &mut self,
        item: SchedulableTask<Task>,
        lease: TaskAdmissionLease,
        ci: usize,
    ) -> Result<(), SchedulerError> {
        let execution = TaskExecutionId::next();
        let SchedulableTask {
            task_id,
            payload: task,
            ..
        } = item;
        let col = &self.columns[ci];
        self.events.task(
            SchedulerEventKind::TaskLeaseAcquired,
            col,
            &task,
            &task_id,
            TaskEventFields {
                execution: Some(execution),
                lease: Some(lease.lease_id()),
                ..Default::default()
            },
        );
        let running = Running {
            task,
            task_id,
            column: ci,
            lease,
            execution,
        };
        if col.inline {
            self.emit_spawned(&running, true);
            let ending = match catch_panics(self.run_inline(&running)).await {
                Ok(Ok(out)) => Ending::Output(out),
                Ok(Err(e)) => Ending::Failed(e),
                Err(()) => Ending::Panicked,
            };
            self.finish(running, ending)
        } else {
            let fut = match self.worker_future(&running) {
                Ok(fut) => fut,
                Err(e) => {
                    self.admission.release(&running.lease);
                    self.execution_event(
                        SchedulerEventKind::WorkerSpawnFailed,
                        &running,
                        Some("inputs_unavailable"),
                        None,
                    );
                    return Err(e);
                }
            };
            let handle = self.workers.spawn(fut);
            self.emit_spawned(&running, false);
            self.running.insert(handle.id(), running);
            Ok(())
        }
    }

    /// Emits an event about execution `r`: its task, execution id and lease id.
    fn execution_event(
        &self,
        kind: SchedulerEventKind,
        r: &Running,
        reason: Option<&str>,
        diagnostics: Option<BTreeMap<String, Value>>,
    ) {
        self.events.task(
            kind,
            &self.columns[r.column],
            &r.task,
            &r.task_id,
            TaskEventFields {
                execution: Some(r.execution),
                lease: Some(r.lease.lease_id()),
                reason,
                diagnostics,
            },
        );
    }

    fn emit_spawned(&self, r: &Running, inline: bool) {
        self.execution_event(
            SchedulerEventKind::WorkerSpawned,
            r,
            None,
            Some(BTreeMap::from([("inline".to_owned(), json!(inline))])),
        );
    }

    async fn run_inline(&self, r: &Running) -> Result<WorkerOutput, GenerationError> {
        let col = &self.columns[r.column];
        let rg = r.task.row_group;
        let buffer = self
            .buffers
            .get(&rg)
            .ok_or_else(|| GenerationError::validation(format!("row group {rg} is not live")))?;
        match r.task.row_index {
            Some(row) => {
                let record = buffer.rows.get(row as usize).ok_or_else(|| {
                    GenerationError::validation(format!("row {row} out of range"))
                })?;
                let ctx = CellContext::new(
                    &col.name,
                    record,
                    rg,
                    row,
                    buffer.offset + row,
                    self.workflow.seed,
                    &self.models,
                );
                col.generator
                    .generate_cell(&ctx)
                    .await
                    .map(WorkerOutput::Cell)
            }
            None => {
                let mut rows = self.batch_rows(rg, &col.name);
                let mut ctx = BatchContext {
                    column: &col.name,
                    row_group: rg,
                    seed: crate::generators::batch_seed(self.workflow.seed, &col.name, rg),
                    rows: &mut rows,
                    models: &self.models,
                };
                col.generator.generate_full_column(&mut ctx).await?;
                Ok(WorkerOutput::Batch(rows))
            }
        }
    }

    /// The live rows of a row group, copied for a full-column task.
    fn batch_rows(&self, rg: u64, column: &str) -> Vec<BatchRow> {
        let Some(buffer) = self.buffers.get(&rg) else {
            return Vec::new();
        };
        buffer
            .rows
            .iter()
            .enumerate()
            .filter(|(i, _)| self.tracker.is_dropped(rg, *i as u64) == Some(false))
            .map(|(i, record)| BatchRow {
                row_index: i as u64,
                seed: crate::generators::cell_seed(
                    self.workflow.seed,
                    column,
                    buffer.offset + i as u64,
                ),
                record: record.clone(),
                drop_reason: None,
            })
            .collect()
    }

    /// The spawned worker: owns copies of its inputs and runs under the task's correlation.
    fn worker_future(
        &self,
        r: &Running,
    ) -> Result<
        impl std::future::Future<Output = Result<WorkerOutput, GenerationError>> + Send + 'static,
        SchedulerError,
    > {
        let col = &self.columns[r.column];
        let rg = r.task.row_group;
        let buffer = self
            .buffers
            .get(&rg)
            .ok_or_else(|| internal(format!("row group {rg} is not live")))?;
        let generator = col.generator.clone();
        let column = col.name.clone();
        let models = self.models.clone();
        let seed = self.workflow.seed;
        let correlation = Arc::new(self.events.correlation(col, &r.task, Some(r.execution)));
        let offset = buffer.offset;
        let input = match r.task.row_index {
            Some(row) => {
                let record =
                    buffer.rows.get(row as usize).cloned().ok_or_else(|| {
                        internal(format!("row {row} of row group {rg} out of range"))
                    })?;
                WorkerInput::Cell { row, record }
            }
            None => WorkerInput::Batch(self.batch_rows(rg, &col.name)),
        };
        Ok(RuntimeCorrelationProvider::scope(correlation, async move {
            match input {
                WorkerInput::Cell { row, record } => {
                    let ctx =
                        CellContext::new(&column, &record, rg, row, offset + row, seed, &models);
                    generator.generate_cell(&ctx).await.map(WorkerOutput::Cell)
                }
                WorkerInput::Batch(mut rows) => {
                    let mut ctx = BatchContext {
                        column: &column,
                        row_group: rg,
                        seed: crate::generators::batch_seed(seed, &column, rg),
                        rows: &mut rows,
                        models: &models,
                    };
                    generator.generate_full_column(&mut ctx).await?;
                    Ok(WorkerOutput::Batch(rows))
                }
            }
        }))
    }

    // ---- terminal paths ---------------------------------------------------------------------

    fn on_joined(
        &mut self,
        joined: Result<(WorkerId, Result<WorkerOutput, GenerationError>), JoinError>,
    ) -> Result<(), SchedulerError> {
        let (id, ending) = match joined {
            Ok((id, Ok(out))) => (id, Ending::Output(out)),
            Ok((id, Err(e))) => (id, Ending::Failed(e)),
            Err(e) if e.is_panic() => (e.id(), Ending::Panicked),
            Err(e) => (e.id(), Ending::Aborted),
        };
        let running = self
            .running
            .remove(&id)
            .ok_or_else(|| internal("a worker finished that the loop does not know".into()))?;
        self.finish(running, ending)
    }

    /// The one terminal path of every execution: release the lease first, then record the outcome.
    fn finish(&mut self, r: Running, ending: Ending) -> Result<(), SchedulerError> {
        let released = self.admission.release(&r.lease);
        let result_label = match &ending {
            Ending::Output(_) => "completed",
            Ending::Failed(e) if e.is_retryable() => "retryable_failure",
            Ending::Failed(_) => "failed",
            Ending::Panicked => "panicked",
            Ending::Aborted => "cancelled",
        };
        if !released.released {
            self.execution_event(
                SchedulerEventKind::ReleaseDiagnostic,
                &r,
                Some(released.reason.as_str()),
                None,
            );
        }
        // A task whose row group was already written (every row it could add to was dropped
        // while it ran) has nothing left to record: its result is moot.
        let group_live = self.buffers.contains_key(&r.task.row_group);
        let outcome: Result<Terminal, SchedulerError> = if !group_live {
            self.retries.forget(&r.task_id);
            self.report.tasks_cancelled += 1;
            self.execution_event(SchedulerEventKind::Cancelled, &r, Some("row_dropped"), None);
            Ok(Terminal::None)
        } else {
            match ending {
                Ending::Output(out) => self.complete(&r, out).map(|()| Terminal::Succeeded),
                Ending::Failed(e) => self.on_failure(&r, &e),
                Ending::Panicked => {
                    self.report.worker_panics += 1;
                    let model = self.columns[r.column].single_model().map(str::to_owned);
                    self.fail(&r, "worker_panic", "worker_panic", None, model.as_deref())
                        .map(|()| Terminal::Failed)
                }
                Ending::Aborted => {
                    self.cancelled(&r);
                    Ok(Terminal::None)
                }
            }
        };
        // The lease event is emitted whatever happened above, so the log never shows a lease
        // that was released without its `task_lease_released`.
        self.execution_event(
            SchedulerEventKind::TaskLeaseReleased,
            &r,
            Some(if released.released {
                result_label
            } else {
                released.reason.as_str()
            }),
            None,
        );
        let terminal = outcome?;
        // Only model-call outcomes feed early shutdown: local samplers always succeed and
        // would hide a run whose every model call fails.
        if terminal != Terminal::None && self.columns[r.column].model_backed {
            if let Some(window) = &mut self.failure_window {
                if window.record(terminal == Terminal::Failed) && self.stopping.is_none() {
                    let reason = StopReason::EarlyShutdown {
                        failure_rate: window.failure_rate(),
                        failed: window.failures() as u64,
                        outcomes: window.outcomes() as u64,
                        cause: self.last_failure_cause.clone().unwrap_or_default(),
                    };
                    self.begin_stop(reason);
                }
            }
        }
        Ok(())
    }

    /// A failed execution: stop on a configuration failure, salvage a wait, retry within the
    /// cell's budget, or drop the row(s).
    fn on_failure(&mut self, r: &Running, e: &GenerationError) -> Result<Terminal, SchedulerError> {
        let fallback_model = self.columns[r.column].single_model().map(str::to_owned);
        if let Some(source) = model_source(e) {
            let answered = self.answered.contains(&source.alias);
            if self.config.fail_fast
                && (is_configuration_failure(source) || is_unreachable_endpoint(source, answered))
            {
                let cause = format!("configuration:{}", e.error_type());
                self.record_failure_event(r, &cause, e, 0, fallback_model.as_deref());
                if self.stopping.is_none() {
                    let message = format!(
                        "column {:?}, model {:?}: {}",
                        r.task.column, source.alias, source.message
                    );
                    self.begin_stop(StopReason::ConfigurationError { message });
                }
                return Ok(Terminal::Failed);
            }
        }
        match e.class() {
            GenerationErrorClass::NonRetryable => {
                let label = format!("non_retryable:{}", e.error_type());
                self.fail(
                    r,
                    &label,
                    e.error_type(),
                    Some(e),
                    fallback_model.as_deref(),
                )
                .map(|()| Terminal::Failed)
            }
            GenerationErrorClass::Cancelled if self.stopping.is_some() => {
                self.cancelled(r);
                Ok(Terminal::None)
            }
            GenerationErrorClass::Admission
                if model_source(e).and_then(|s| s.kind.admission_reason())
                    == Some(RequestAdmissionDenyReason::Shutdown) =>
            {
                if self.stopping.is_some() {
                    self.cancelled(r);
                    Ok(Terminal::None)
                } else {
                    self.fail(
                        r,
                        "admission_shutdown",
                        "request_admission",
                        Some(e),
                        fallback_model.as_deref(),
                    )
                    .map(|()| Terminal::Failed)
                }
            }
            // Rate limits and admission waits (salvaged), transient provider failures and
            // stray cancellations (budgeted).
            _ => self.retry_or_fail(r, e, fallback_model.as_deref()),
        }
    }

    fn complete(&mut self, r: &Running, out: WorkerOutput) -> Result<(), SchedulerError> {
        let col = &self.columns[r.column];
        let rg = r.task.row_group;
        let mut validation_drops: Vec<String> = Vec::new();
        match out {
            WorkerOutput::Cell(value) => {
                if let (Some(row), Some(buffer)) = (r.task.row_index, self.buffers.get_mut(&rg)) {
                    if let Some(record) = buffer.rows.get_mut(row as usize) {
                        record.insert(col.name.to_string(), value);
                    }
                }
            }
            WorkerOutput::Batch(rows) => {
                for row in rows {
                    if let Some(reason) = row.drop_reason {
                        let cause = DropCause::ValidationFailed {
                            column: col.name.to_string(),
                            reason: reason.clone(),
                        };
                        let newly = self
                            .tracker
                            .drop_row(rg, row.row_index, cause)
                            .map_err(|e| internal(format!("drop row: {e}")))?;
                        if newly {
                            validation_drops.push(reason);
                        }
                        continue;
                    }
                    let value = row.record.get(col.name.as_ref()).cloned();
                    if let (Some(value), Some(buffer)) = (value, self.buffers.get_mut(&rg)) {
                        if let Some(record) = buffer.rows.get_mut(row.row_index as usize) {
                            record.insert(col.name.to_string(), value);
                        }
                    }
                }
            }
        }
        for reason in validation_drops {
            self.count_drops("validation_failed", 1);
            self.failures
                .record_message(&r.task.column, None, "validation_failed", &reason, 1);
        }
        self.tracker
            .mark_complete(&r.task)
            .map_err(|e| internal(format!("mark complete: {e}")))?;
        self.retries.forget(&r.task_id);
        self.report.tasks_completed += 1;
        let now = Instant::now();
        for alias in &self.columns[r.column].models {
            if let Some(breaker) = &mut self.breaker {
                breaker.record_success(alias, now);
            }
            if !self.answered.contains(alias) {
                self.answered.insert(alias.clone());
            }
        }
        self.execution_event(SchedulerEventKind::TaskCompleted, r, None, None);
        Ok(())
    }

    /// Adds `rows` dropped rows under `label`, when they are dropped (not when written), so
    /// a stopped run's report agrees with its `non_retryable_dropped` events.
    fn count_drops(&mut self, label: &str, rows: u64) {
        if rows == 0 {
            return;
        }
        self.report.rows_dropped += rows;
        *self.report.drop_causes.entry(label.to_owned()).or_default() += rows;
    }

    /// A failure for good: drops the task's row (or row group), counts and records it.
    fn fail(
        &mut self,
        r: &Running,
        label: &str,
        error_type: &str,
        error: Option<&GenerationError>,
        fallback_model: Option<&str>,
    ) -> Result<(), SchedulerError> {
        let cause = DropCause::NonRetryableFailure {
            column: r.task.column.to_string(),
            error_type: error_type.to_owned(),
        };
        let newly = self
            .tracker
            .mark_failed(&r.task, cause.clone())
            .map_err(|e| internal(format!("mark failed: {e}")))?;
        self.count_drops(&drop_label(&cause), newly);
        self.retries.forget(&r.task_id);
        match error {
            Some(e) => self.record_failure_event(r, label, e, newly, fallback_model),
            None => {
                self.report.tasks_failed += 1;
                self.last_failure_cause = Some(label.to_owned());
                self.failures
                    .record_message(&r.task.column, fallback_model, label, label, newly);
                self.execution_event(
                    SchedulerEventKind::NonRetryableDropped,
                    r,
                    Some(label),
                    Some(BTreeMap::from([("rows_dropped".to_owned(), json!(newly))])),
                );
            }
        }
        Ok(())
    }

    /// Counts a failed execution, adds it to the failure report and emits its event.
    fn record_failure_event(
        &mut self,
        r: &Running,
        label: &str,
        e: &GenerationError,
        rows_dropped: u64,
        fallback_model: Option<&str>,
    ) {
        self.report.tasks_failed += 1;
        self.last_failure_cause = Some(label.to_owned());
        self.failures
            .record(&r.task.column, fallback_model, label, e, rows_dropped);
        let mut diagnostics = BTreeMap::from([("rows_dropped".to_owned(), json!(rows_dropped))]);
        if let Some(status) = model_source(e).and_then(|s| s.http_status()) {
            diagnostics.insert("provider_status".to_owned(), json!(status));
        }
        self.execution_event(
            SchedulerEventKind::NonRetryableDropped,
            r,
            Some(label),
            Some(diagnostics),
        );
    }

    fn cancelled(&mut self, r: &Running) {
        self.report.tasks_cancelled += 1;
        self.execution_event(SchedulerEventKind::Cancelled, r, None, None);
    }

    /// Salvages a wait, retries a transient failure within the cell's budget, or drops the
    /// row(s) once the budget is spent. A model that keeps failing opens its circuit.
    fn retry_or_fail(
        &mut self,
        r: &Running,
        e: &GenerationError,
        fallback_model: Option<&str>,
    ) -> Result<Terminal, SchedulerError> {
        if let Some(alias) = model_source(e).map(|s| s.alias.clone()) {
            let now = Instant::now();
            let open = self
                .breaker
                .as_mut()
                .is_some_and(|b| b.record_failure(&alias, now));
            if open && self.stopping.is_none() {
                let streak = self
                    .breaker
                    .as_ref()
                    .map_or(0, |b| b.consecutive_failures(&alias));
                let cause = format!("circuit_open:{}", e.error_type());
                self.failures
                    .record(&r.task.column, fallback_model, &cause, e, 0);
                self.last_failure_cause = Some(cause);
                self.execution_event(
                    SchedulerEventKind::NonRetryableDropped,
                    r,
                    Some("circuit_open"),
                    Some(BTreeMap::from([
                        ("rows_dropped".to_owned(), json!(0)),
                        ("consecutive_failures".to_owned(), json!(streak)),
                    ])),
                );
                self.report.tasks_failed += 1;
                self.begin_stop(StopReason::CircuitOpen { model: alias });
                return Ok(Terminal::None);
            }
        }
        let decision = self.retries.decide(&r.task_id, e, &self.config.retry);
        let (delay, diagnostics) = match decision {
            RetryDecision::Exhausted { .. } => {
                let label = format!("retries_exhausted:{}", e.error_type());
                self.fail(r, &label, e.error_type(), Some(e), fallback_model)?;
                return Ok(Terminal::Failed);
            }
            RetryDecision::Salvage { delay, wait } => (
                delay,
                BTreeMap::from([
                    ("salvage".to_owned(), json!(true)),
                    ("wait".to_owned(), json!(wait)),
                ]),
            ),
            RetryDecision::Retry {
                delay,
                retry,
                spent,
            } => (
                delay,
                BTreeMap::from([
                    ("retry".to_owned(), json!(retry)),
                    ("requests_spent".to_owned(), json!(spent)),
                ]),
            ),
        };
        if self.stopping.is_some() {
            // Nothing is re-run once the run is stopping; the row stays unwritten, not dropped.
            self.cancelled(r);
            return Ok(Terminal::None);
        }
        self.retries
            .schedule(r.task.clone(), Instant::now() + delay);
        self.report.tasks_retried += 1;
        let mut diagnostics = diagnostics;
        diagnostics.insert("delay_seconds".to_owned(), json!(delay.as_secs_f64()));
        self.execution_event(
            SchedulerEventKind::RetryDeferred,
            r,
            Some(e.error_type()),
            Some(diagnostics),
        );
        Ok(Terminal::None)
    }

    /// Puts retries whose backoff has passed back on the frontier (the salvage path).
    fn fire_due_retries(&mut self) -> Result<bool, SchedulerError> {
        if self.stopping.is_some() {
            self.retries.clear_due();
            return Ok(false);
        }
        let now = Instant::now();
        let mut fired = false;
        while let Some(task) = self.retries.pop_due(now) {
            if !self.buffers.contains_key(&task.row_group) {
                // Its row group was written meanwhile (the row was dropped): nothing to retry.
                self.retries.forget(&task.id());
                continue;
            }
            let requeued = self
                .tracker
                .requeue(&task)
                .map_err(|e| internal(format!("requeue: {e}")))?;
            if requeued {
                fired = true;
                let ci = self.column_of(&task)?;
                let id = task.id();
                self.events.task(
                    SchedulerEventKind::SalvageRedispatched,
                    &self.columns[ci],
                    &task,
                    &id,
                    TaskEventFields::default(),
                );
            }
        }
        Ok(fired)
    }

    // ---- checkpoints --------------------------------------------------------------------

    /// Takes complete row groups and writes them in row-group order.
    fn checkpoint(&mut self, sink: &mut dyn RecordSink) -> Result<bool, SchedulerError> {
        let live: Vec<u64> = self.buffers.keys().copied().collect();
        let mut took = false;
        for rg in live {
            if !self.tracker.row_group_complete(rg) {
                continue;
            }
            let Some(done) = self
                .tracker
                .take_completed_row_group(rg)
                .map_err(|e| internal(format!("take row group: {e}")))?
            else {
                continue;
            };
            let Some(buffer) = self.buffers.remove(&rg) else {
                continue;
            };
            // Dropped rows were counted when they were dropped (see `count_drops`).
            let dropped_rows = done.dropped.len() as u64;
            self.dropped_in_unwritten.insert(rg, dropped_rows);
            let records: Vec<(u64, Record)> = buffer
                .rows
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !done.dropped.contains_key(&(*i as u64)))
                .map(|(i, record)| (buffer.offset + i as u64, record))
                .collect();
            self.ready_to_write.insert(rg, records);
            // Its slot frees now, not when it is written: a slow older group must not idle
            // the endpoints (the write backlog above bounds the memory this allows).
            self.row_groups.release();
            took = true;
        }
        let mut wrote = took;
        while let Some(records) = self.ready_to_write.remove(&self.next_to_write) {
            let rg = self.next_to_write;
            sink.write_row_group(rg, &records)
                .map_err(|e| SchedulerError::RecordSink {
                    message: e.to_string(),
                })?;
            self.report.records_written += records.len() as u64;
            self.report.row_groups_written += 1;
            self.next_to_write += 1;
            wrote = true;
            let n = records.len();
            let total = self.report.records_written;
            let dropped = self.dropped_in_unwritten.remove(&rg).unwrap_or(0);
            self.events
                .run(SchedulerEventKind::RowGroupCheckpointed, |e| {
                    e.diagnostics.insert("row_group".into(), json!(rg));
                    e.diagnostics.insert("records".into(), json!(n));
                    e.diagnostics.insert("surviving_rows".into(), json!(n));
                    e.diagnostics.insert("dropped_rows".into(), json!(dropped));
                    e.diagnostics.insert("records_written".into(), json!(total));
                });
        }
        Ok(wrote)
    }

    // ---- waiting, stopping -----------------------------------------------------------------

    /// When to wake if no worker finishes first; errors on a deadlock instead of sleeping forever.
    fn next_wake(&mut self) -> Result<Option<Instant>, SchedulerError> {
        let mut wake: Option<Instant> = self.retries.next_due();
        let mut earlier = |t: Instant| {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        };
        if let Some(t) = self.next_health {
            earlier(t);
        }
        if let Some(t) = self.stop_deadline {
            earlier(t);
        }
        if self.stopping.is_none() && !self.queue.is_empty() {
            let summary = self.admission.explain_blocked(&self.queue.view());
            let group_capped = summary.dominant_reason() == Some(TaskAdmissionDenyReason::GroupCap);
            let kind = if group_capped {
                SchedulerEventKind::GroupCapped
            } else {
                SchedulerEventKind::AdmissionBlocked
            };
            self.events.run(kind, |e| {
                e.reason_or_result = summary.dominant_reason().map(|r| r.as_str().to_owned());
                e.diagnostics
                    .insert("queued".into(), json!(summary.queued_count));
                e.diagnostics.insert(
                    "blocked_tasks_by_reason".into(),
                    json!(summary
                        .blocked_tasks_by_reason
                        .iter()
                        .map(|(k, v)| (k.as_str(), *v))
                        .collect::<BTreeMap<_, _>>()),
                );
            });
            if let Some(after) = summary.available_after {
                earlier(self.clock.origin() + Duration::from_secs_f64(after.max(0.0)));
            }
            if self.workers.is_empty() && wake.is_none() {
                let explanation = summary
                    .blocked_tasks_by_reason
                    .iter()
                    .map(|(k, v)| format!("{}: {v}", k.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(SchedulerError::Deadlock {
                    queued: summary.queued_count,
                    explanation,
                });
            }
        } else if self.stopping.is_none() && self.queue.is_empty() {
            self.events.run(SchedulerEventKind::QueueEmpty, |_| {});
            if self.workers.is_empty() && wake.is_none() {
                return Err(internal(format!(
                    "nothing queued, running or due, yet {} row group(s) are unwritten",
                    self.total_row_groups - self.next_to_write
                )));
            }
        }
        Ok(wake)
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.stop_deadline.is_some_and(|d| d <= now) {
            self.stop_deadline = None;
            // Grace is over: abort what is still running; the aborts come back as cancellations.
            self.workers.abort_all();
        }
        if let (Some(at), Some(every)) = (self.next_health, self.config.health_snapshot_interval) {
            if at <= now {
                self.next_health = Some(now + every);
                let snapshot = self.admission.snapshot();
                let queued = self.queue.len();
                let running = self.running.len();
                let deferred = self.retries.pending();
                self.events
                    .run(SchedulerEventKind::SchedulerHealthSnapshot, |e| {
                        e.snapshot = Some(weir_contracts::json::to_value(&snapshot));
                        e.diagnostics.insert("queued".into(), json!(queued));
                        e.diagnostics
                            .insert("running_workers".into(), json!(running));
                        e.diagnostics
                            .insert("deferred_tasks".into(), json!(deferred));
                    });
            }
        }
    }

    fn begin_stop(&mut self, reason: StopReason) {
        // A caller's stop lets running work finish for the grace period; a stop the run
        // decided itself (configuration error, open circuit, early shutdown) aborts at once:
        // the running calls go to the same failing endpoint, and letting the workers that
        // wait on request admission through would spend the budget the stop is there to save.
        let grace = match reason {
            StopReason::Cancelled => self.config.cancel_grace,
            _ => Duration::ZERO,
        };
        self.report.stopped = Some(reason);
        self.stopping = self.report.stopped.clone();
        if grace.is_zero() {
            self.stop_deadline = None;
            self.workers.abort_all();
        } else {
            self.stop_deadline = Some(Instant::now() + grace);
        }
        self.retries.clear_due();
        // Queued tasks hold no lease: discarding them leaks nothing.
        self.queue.discard_where(|_| true);
    }

    /// Aborts every worker and accounts for each (lease released, cancellation recorded).
    async fn abort_all(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        self.workers.abort_all();
        while let Some(joined) = self.workers.join_next_with_id().await {
            if let Err(e) = self.on_joined(joined) {
                tracing::warn!(error = %e, "scheduler cleanup");
            }
        }
    }

    fn observe(&mut self) {
        self.observed
            .observe_row_groups(self.row_groups.in_flight());
        self.observed.observe_task(&self.admission.snapshot());
        let mut queued: BTreeMap<TaskGroupKey, u32> = BTreeMap::new();
        for g in self.queue.view().groups() {
            queued.insert(g.key().clone(), g.queued());
        }
        self.observed.observe_queue(&queued);
    }
}

enum WorkerInput {
    Cell { row: u64, record: Record },
    Batch(Vec<BatchRow>),
}

fn drop_label(cause: &DropCause) -> String {
    match cause {
        DropCause::NonRetryableFailure { error_type, .. } => format!("non_retryable:{error_type}"),
        DropCause::ValidationFailed { .. } => "validation_failed".into(),
        DropCause::Other { .. } => "other".into(),
    }
}

fn internal(message: String) -> SchedulerError {
    SchedulerError::Internal { message }
}

/// Runs `fut`, turning a panic while polling it into `Err(())` (inline work must not take the
/// dispatch loop down with it; spawned workers get the same from their `JoinSet`).
async fn catch_panics<F: std::future::Future>(fut: F) -> Result<F::Output, ()> {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    })
    .await
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
