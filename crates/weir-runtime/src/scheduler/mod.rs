//! `AsyncTaskScheduler`, the control owner: readiness → fair queue → task admission → workers.
//!
//! The scheduler owns runtime control flow only. It asks the [`CompletionTracker`] for ready work,
//! enqueues it into the `FairTaskQueue`, selects with the task-admission eligibility predicate,
//! leases through the `TaskAdmissionController`, commits, and only then runs the task (inline for
//! local work, as a spawned worker otherwise). Every lease is released on every terminal path:
//! success, retryable and non-retryable failure, panic, cancellation, stop and abort. Request
//! admission is never touched here — model calls go through the [`ModelFacade`] the generators
//! use — except for a read-only [`PressureAdvisory`] that can prefer unpressured peers.

pub mod backoff;
pub mod circuit;
mod columns;
pub mod config;
mod events;
pub mod fail_fast;
pub mod failure_window;
pub mod failures;
pub mod feed;
mod progress;
pub mod records;
pub mod report;
mod retries;
pub mod row_groups;
mod run_loop;

pub use config::{
    CircuitBreakerConfig, EarlyShutdownConfig, RowGroupMode, SchedulerConfig, TaskRetryConfig,
};
pub use fail_fast::{is_configuration_failure, is_unreachable_endpoint};
pub use feed::RowGroupFeed;
pub use progress::RunProgress;
pub use records::{InMemoryRecordSink, JsonlRecordSink, RecordSink};
pub use report::{RunFailure, SchedulerError, SchedulerReport, StopReason};

use crate::completion::CompletionTracker;
use crate::model_facade::ModelFacade;
use crate::resolver::{ResolverConfig, TaskSchedulingResolver};
use crate::workflow::Workflow;
use std::sync::Arc;
use tokio::sync::watch;
use weir_capacity::ObservedMaximaTracker;
use weir_contracts::SchedulingMetadata;
use weir_task_admission::{TaskAdmissionConfig, TaskAdmissionController};
use weir_telemetry::SchedulerEventStream;

/// Read-only request-pressure input: is the resource behind this metadata cooling down?
///
/// The scheduler only uses it to prefer an unpressured eligible peer for one selection; it never
/// acquires, emulates or mutates request admission.
pub trait PressureAdvisory: Send + Sync {
    /// True when work with this metadata would currently wait on request admission.
    fn is_pressured(&self, metadata: &SchedulingMetadata) -> bool;
}

/// Stops a running scheduler: admission stops at once, running workers get the configured grace.
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    /// Asks the run to stop (idempotent).
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }
}

/// The result of a run: counters and final snapshots, plus the observed per-layer maxima.
#[derive(Debug, Clone)]
pub struct SchedulerOutcome {
    /// Counters and final state.
    pub report: SchedulerReport,
    /// Per-layer maxima observed during the run (for the capacity plan).
    pub observed: ObservedMaximaTracker,
}

/// The scheduler of one run. Build it, take a [`StopHandle`] if you need one, then [`run`](Self::run).
pub struct AsyncTaskScheduler {
    workflow: Arc<Workflow>,
    config: SchedulerConfig,
    task_admission: TaskAdmissionConfig,
    models: Arc<dyn ModelFacade>,
    events: SchedulerEventStream,
    advisory: Option<Arc<dyn PressureAdvisory>>,
    run_id: Arc<str>,
    first_row_group: u64,
    inline_local: bool,
    stop_tx: Arc<watch::Sender<bool>>,
    progress: Arc<RunProgress>,
    feed: Option<RowGroupFeed>,
}

impl AsyncTaskScheduler {
    /// A scheduler for `workflow` whose generators call models through `models`.
    pub fn new(workflow: Arc<Workflow>, models: Arc<dyn ModelFacade>) -> Self {
        let config = SchedulerConfig {
            max_concurrent_row_groups: workflow.max_concurrent_row_groups,
            ..SchedulerConfig::default()
        };
        let task_admission =
            TaskAdmissionConfig::with_submission_capacity(config.submission_capacity);
        let (stop_tx, _) = watch::channel(false);
        Self {
            run_id: Arc::from(format!(
                "{}-{:08x}",
                workflow.name,
                weir_contracts::TaskExecutionId::next().0
            )),
            workflow,
            config,
            task_admission,
            models,
            events: SchedulerEventStream::disabled(),
            advisory: None,
            first_row_group: 0,
            inline_local: true,
            stop_tx: Arc::new(stop_tx),
            progress: Arc::default(),
            feed: None,
        }
    }

    /// Scheduler settings (`submission_capacity` also sets the task-admission `submission` limit
    /// unless [`Self::with_task_admission`] is called afterwards).
    pub fn with_config(mut self, config: SchedulerConfig) -> Self {
        self.task_admission.submission_capacity = config.submission_capacity;
        self.config = config;
        self
    }

    /// Task-admission configuration (limits, bounded borrow).
    pub fn with_task_admission(mut self, config: TaskAdmissionConfig) -> Self {
        self.task_admission = config;
        self
    }

    /// Scheduler event stream.
    pub fn with_events(mut self, events: SchedulerEventStream) -> Self {
        self.events = events;
        self
    }

    /// Read-only request-pressure advisory.
    pub fn with_pressure_advisory(mut self, advisory: Arc<dyn PressureAdvisory>) -> Self {
        self.advisory = Some(advisory);
        self
    }

    /// Run id recorded in every correlation.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Arc::from(run_id.into());
        self
    }

    /// Resume: row groups before `row_group` are already written and are skipped.
    pub fn starting_at_row_group(mut self, row_group: u64) -> Self {
        self.first_row_group = row_group;
        self
    }

    /// Feed mode: run exactly the row groups `feed` hands over (each written as soon as it
    /// completes, in any order) until its sender is dropped; see [`RowGroupFeed`].
    pub fn with_row_group_feed(mut self, feed: RowGroupFeed) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Run local work inline on the dispatch loop (default) or as spawned workers.
    pub fn with_inline_local_tasks(mut self, inline: bool) -> Self {
        self.inline_local = inline;
        self
    }

    /// Updates `progress` (instead of counters of its own) as tasks complete.
    pub fn with_progress(mut self, progress: Arc<RunProgress>) -> Self {
        self.progress = progress;
        self
    }

    /// Live counters of this run's completed tasks and cells.
    pub fn progress(&self) -> Arc<RunProgress> {
        self.progress.clone()
    }

    /// A handle that stops this run gracefully.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            tx: self.stop_tx.clone(),
        }
    }

    /// Runs the workflow to the end (or a stop), writing completed row groups to `sink`.
    pub async fn run(
        mut self,
        sink: &mut dyn RecordSink,
    ) -> Result<SchedulerOutcome, SchedulerError> {
        let invalid = |field: &str, message: String| SchedulerError::InvalidConfig {
            field: field.to_owned(),
            message,
        };
        self.config
            .validate()
            .map_err(|e| invalid(e.field, e.message))?;
        let graph = self
            .workflow
            .validate()
            .map_err(|e| invalid("workflow", e.to_string()))?;
        if self.first_row_group > self.workflow.row_group_count() {
            return Err(invalid(
                "first_row_group",
                format!(
                    "{} is past the last row group ({})",
                    self.first_row_group,
                    self.workflow.row_group_count()
                ),
            ));
        }
        let resolver =
            TaskSchedulingResolver::for_workflow(&self.workflow, ResolverConfig::default())
                .map_err(|e| invalid("scheduling_metadata", e.to_string()))?;
        let columns =
            columns::resolve_columns(&self.workflow, &graph, &resolver, self.inline_local)
                .map_err(|m| SchedulerError::Internal { message: m })?;
        let admission = TaskAdmissionController::new(self.task_admission.clone())
            .map_err(|e| invalid(&format!("task_admission.{}", e.field), e.message))?
            .with_clock(self.events.clock());
        for c in &columns {
            admission
                .validate_request(&c.request)
                .map_err(|e| invalid(&format!("columns.{}.resources", c.name), e.to_string()))?;
        }
        let tracker = CompletionTracker::new(&graph);
        let cancel = self.stop_tx.subscribe();
        let mut run = run_loop::RunLoop::new(
            self.workflow.clone(),
            columns,
            self.config.clone(),
            self.models.clone(),
            events::SchedulerEvents {
                stream: self.events.clone(),
                run_id: self.run_id.clone(),
                progress: self.progress.clone(),
            },
            self.advisory.clone(),
            tracker,
            admission,
            self.first_row_group,
        );
        if let Some(feed) = self.feed.take() {
            run.use_feed(feed);
        }
        run.run(sink, cancel).await?;
        Ok(SchedulerOutcome {
            report: run.report,
            observed: run.observed,
        })
    }
}
