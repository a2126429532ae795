//! `RunLoop`: the scheduler's single dispatch owner — readiness, queue, task admission, workers.
//!
//! One async task owns every piece of scheduler state (tracker, queue, admission controller,
//! row-group buffers), so the plan's dispatch critical section `select_next → try_acquire →
//! commit` needs no lock at all: nothing else can touch the queue between the three calls.
//! Workers report back through a `JoinSet`; the loop sleeps only in one `select!` over worker
//! completion, the next timer (retry due, `available_after`, health tick, stop grace) and the
//! cancel signal, and it re-runs its whole pass after every wake — so an enqueue, a release, a
//! policy change, an expired `available_after` or a stop request can never be lost.

mod dispatch;
mod outcomes;
mod phase;
mod pipeline;
mod salvage;
mod wake;
mod workers;

use outcomes::Verdicts;
use phase::{CancelWatch, Phase};
use pipeline::Pipeline;
use workers::catch_panics;

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
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{Id as WorkerId, JoinError, JoinSet};
use tokio::time::Instant;
use weir_capacity::ObservedMaximaTracker;
use weir_contracts::payload::{
    AdmissionBlocked, NonRetryableDropped, RetryDeferred, RowGroupAdmissionBlocked,
    RowGroupAdmissionTargetChanged, RowGroupAdmitted, RowGroupCheckpointed,
    SchedulerHealthSnapshot, SchedulerJobCompleted, SchedulerJobStarted, TaskLeaseReleased,
    WorkerSpawned,
};
use weir_contracts::{
    RequestAdmissionDenyReason, SchedulerEventKind, SchedulerEventPayload as P,
    TaskAdmissionDenyReason, TaskExecutionId, TaskGroupKey, TaskId, TaskTerminalOutcome,
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

/// The scheduler's state for one run, owned by one task. Its parts keep their own state:
/// [`Pipeline`] (row groups), [`Verdicts`] (failures, breaker, early shutdown), the retry book,
/// the workers, and the [`Phase`].
pub(crate) struct RunLoop {
    workflow: Arc<Workflow>,
    columns: Vec<ColumnInfo>,
    column_index: HashMap<Arc<str>, usize>,
    config: SchedulerConfig,
    models: Arc<dyn ModelFacade>,
    events: SchedulerEvents,
    advisory: Option<Arc<dyn PressureAdvisory>>,
    clock: MonotonicClock,
    tracker: CompletionTracker,
    queue: FairTaskQueue<Task>,
    admission: TaskAdmissionController,
    pipeline: Pipeline,
    verdicts: Verdicts,
    retries: RetryBook,
    workers: JoinSet<Result<WorkerOutput, GenerationError>>,
    running: HashMap<WorkerId, Running>,
    phase: Phase,
    next_health: Option<Instant>,
    started: Instant,
    /// Per-layer maxima observed during the run.
    pub(super) observed: ObservedMaximaTracker,
    /// Counters and final state (read by the scheduler once the run ends).
    pub(super) report: SchedulerReport,
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
        let report = SchedulerReport {
            first_row_group,
            ..SchedulerReport::default()
        };
        let now = Instant::now();
        Self {
            pipeline: Pipeline::new(&workflow, &config, first_row_group),
            verdicts: Verdicts::new(&config),
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
            observed: ObservedMaximaTracker::new(),
            report,
            workers: JoinSet::new(),
            running: HashMap::new(),
            retries: RetryBook::default(),
            phase: Phase::Running,
            started: now,
        }
    }

    /// Feed mode: admit the row groups `feed` hands over instead of walking them in order.
    pub(crate) fn use_feed(&mut self, feed: super::feed::RowGroupFeed) {
        self.pipeline.feed = Some(feed);
    }

    /// Runs to completion, a stop, or an error. Every lease is released on every path.
    pub(crate) async fn run(
        &mut self,
        sink: &mut dyn RecordSink,
        cancel: watch::Receiver<bool>,
    ) -> Result<(), SchedulerError> {
        let mut cancel = CancelWatch::new(cancel);
        self.events
            .run(SchedulerEventKind::SchedulerJobStarted, |e| {
                e.payload = P::SchedulerJobStarted(SchedulerJobStarted {
                    records: self.workflow.records,
                    row_groups: self.pipeline.total_row_groups,
                    first_row_group: self.pipeline.next_row_group,
                });
            });
        let outcome = self.drive(sink, &mut cancel).await;
        // Whatever happened, no worker may outlive the run with a lease.
        self.abort_all().await;
        self.report.failures = std::mem::take(&mut self.verdicts.failures).into_groups();
        self.report.queued_at_end = self.queue.len() as u64;
        self.queue.discard_where(|_| true);
        let flushed = sink.flush();
        self.report.wall_seconds = self.started.elapsed().as_secs_f64();
        self.report.final_task_snapshot = self.admission.snapshot();
        self.report.max_row_groups_in_flight = self.pipeline.row_groups.max_in_flight();
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
                e.payload = P::SchedulerJobCompleted(SchedulerJobCompleted {
                    records_written: self.report.records_written,
                    rows_dropped: self.report.rows_dropped,
                });
            });
        self.events.stream.flush();
        outcome?;
        flushed.map_err(|e| SchedulerError::RecordSink {
            message: e.to_string(),
        })
    }

    /// The loop: one pass of every part, then sleep until something can change.
    async fn drive(
        &mut self,
        sink: &mut dyn RecordSink,
        cancel: &mut CancelWatch,
    ) -> Result<(), SchedulerError> {
        loop {
            if self.phase.is_running() && cancel.requested() {
                self.begin_stop(StopReason::Cancelled);
            }
            let mut progress = false;
            if self.phase.is_running() {
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
            let idle = self.idle();
            self.report_idle(&idle);
            let wake_at = idle.wake_at()?;
            let listen = self.phase.is_running() && cancel.open();
            tokio::select! {
                joined = self.workers.join_next_with_id(), if !self.workers.is_empty() => {
                    if let Some(joined) = joined {
                        self.on_joined(joined)?;
                    }
                }
                _ = sleep_until_opt(wake_at), if wake_at.is_some() => {
                    self.on_timer();
                }
                () = cancel.changed(), if listen => {}
                () = wait_feed(&mut self.pipeline.feed), if self.phase.is_running() && self.pipeline.wants_feed() => {}
            }
        }
    }

    /// Done: every row group written, or stopping with no worker left.
    fn finished(&self) -> bool {
        if self.phase.is_running() {
            self.pipeline.all_written()
        } else {
            self.workers.is_empty()
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
        self.report.stopped = Some(reason.clone());
        self.phase = if grace.is_zero() {
            self.workers.abort_all();
            Phase::Draining { reason }
        } else {
            Phase::Stopping {
                reason,
                grace_deadline: Instant::now() + grace,
            }
        };
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
            .observe_row_groups(self.pipeline.row_groups.in_flight());
        self.observed.observe_task(&self.admission.snapshot());
        let mut queued: BTreeMap<TaskGroupKey, u32> = BTreeMap::new();
        for g in self.queue.view().groups() {
            queued.insert(g.key().clone(), g.queued());
        }
        self.observed.observe_queue(&queued);
    }
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

/// Waits for the feed's next row group (or its end); pending without a feed.
async fn wait_feed(feed: &mut Option<super::feed::RowGroupFeed>) {
    match feed {
        Some(f) => f.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
