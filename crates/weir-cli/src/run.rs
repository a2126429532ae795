//! `weir run`: options, outcome, and the boundary the engine plugs into ([`run_workflow`]).
//!
//! Order of a run (so invalid input never creates the output directory):
//! 1. `spec.build()` inside the run's tokio runtime → `BuiltWorkflow` (error: exit 2);
//! 2. lock `--out` ([`OutDirLock`], exit 2 naming the holder) and decide fresh / resume /
//!    already complete ([`crate::outdir::decide`], exit 2 on a mismatch or a damaged checkpoint);
//! 3. [`RunOutputs::open`] (the directory, `dataset.jsonl`, `events.jsonl`);
//! 4. run the engine with `outputs.scheduler_sinks()` / `outputs.request_sinks()` on its two
//!    event streams, handing each checkpointed row group to the outputs, racing SIGINT and
//!    SIGTERM (both stop the run gracefully; exit 130 / 143);
//! 5. [`summary_from`] + the engine's final numbers + the failure groups, the capacity plan,
//!    `outputs.collector().series()` → [`ReportData`] → `outputs.finish(data)`;
//! 6. the exit status from [`RunStatus`]: 0 every record written, 4 finished with dropped rows,
//!    3 stopped early or failed — always after writing outputs.

use crate::error::CliError;
use crate::failures::{self, FailureGroup};
use crate::outdir::{self, Decision, OutDirLock, RunIdentity};
use crate::output::{summary_from, DatasetFormat, EventsMode, OpenSpec, RowGroupShape, RunOutputs};
use crate::progress::{self, ProgressMode, ProgressSources};
use crate::report::{CollectorDetail, ReportData};
use crate::spec::{BuiltWorkflow, WorkflowSpec};
use crate::summary::{CarriedTotals, Summary};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use weir_contracts::identity_hash;
use weir_runtime::engine::{Engine, EngineError, RunResult};
use weir_runtime::generators::Record;
use weir_runtime::provider::ModelProvider;
use weir_runtime::scheduler::{RecordSink, RunProgress, StopReason};

/// Options of `weir run` (after `--records` / `--seed` were applied to the spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Output directory (default `./weir-out/<name>`).
    pub out_dir: PathBuf,
    /// No progress output on stderr.
    pub quiet: bool,
    /// Which events go to `events.jsonl`.
    pub events: EventsMode,
    /// Discard the directory's earlier outputs instead of resuming or refusing (`--fresh`).
    pub fresh: bool,
    /// The dataset's format (`--format`).
    pub format: DatasetFormat,
    /// Shared request limits with other weir processes (`--shared-limits redis://…`, or the
    /// `--coordinator` URL unless `--local-limits`).
    pub shared_limits: Option<crate::shared_limits::SharedLimitsOptions>,
}

/// How a run ended; decides the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// Every requested record was written (exit 0).
    Completed,
    /// The run finished but dropped rows (exit 4).
    CompletedWithDrops,
    /// The directory already holds this run's finished dataset; nothing was done (exit 0, or
    /// 4 when that finished run had dropped rows).
    AlreadyComplete,
    /// The run stopped by itself before the end (exit 3); the reason.
    StoppedEarly(String),
    /// The engine failed (exit 3); the error.
    Failed(String),
    /// SIGINT (exit 130).
    Interrupted,
    /// SIGTERM (exit 143).
    Terminated,
}

impl RunStatus {
    /// The process exit status of a run that ended so, having written `written` of
    /// `requested` records (0, 3, 4, 130, 143): the run contract `weir run` and `weir preview`
    /// share.
    pub fn exit_code(&self, written: u64, requested: u64) -> i32 {
        use crate::error::{EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_TERMINATED};
        match self {
            Self::Completed => 0,
            Self::AlreadyComplete => {
                if written < requested {
                    EXIT_INCOMPLETE
                } else {
                    0
                }
            }
            Self::CompletedWithDrops => EXIT_INCOMPLETE,
            Self::StoppedEarly(_) | Self::Failed(_) => EXIT_RUN_FAILED,
            Self::Interrupted => EXIT_INTERRUPTED,
            Self::Terminated => EXIT_TERMINATED,
        }
    }

    /// How a session ended: the signal that stopped it first, then the engine's stop reason,
    /// then whether every row group was written (`complete`) and any row dropped.
    pub(crate) fn of_session(
        signal: u8,
        result: &Result<RunResult, EngineError>,
        complete: bool,
        rows_dropped: u64,
    ) -> Self {
        match result {
            _ if signal == SIGNAL_TERM => Self::Terminated,
            _ if signal == SIGNAL_INT => Self::Interrupted,
            Err(e) => Self::Failed(e.to_string()),
            Ok(r) => match r.report.stopped.as_ref() {
                Some(StopReason::Cancelled) => Self::Interrupted,
                Some(reason) => Self::StoppedEarly(
                    failures::stop_reason_text(reason).unwrap_or_else(|| "stopped".to_string()),
                ),
                None if !complete => {
                    Self::StoppedEarly("the engine ended before every row group".to_string())
                }
                None if rows_dropped > 0 => Self::CompletedWithDrops,
                None => Self::Completed,
            },
        }
    }

    /// The status word in `report-data.json` and the report's header.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Completed | Self::AlreadyComplete => "completed",
            Self::CompletedWithDrops => "completed_with_dropped_rows",
            Self::StoppedEarly(_) => "stopped_early",
            Self::Failed(_) => "failed",
            Self::Interrupted => "interrupted",
            Self::Terminated => "terminated",
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The output directory.
    pub out_dir: PathBuf,
    /// The run's summary (as written to `summary.json`).
    pub summary: Summary,
    /// How it ended.
    pub status: RunStatus,
}

impl RunOutcome {
    /// The process exit status (0, 3, 4, 130, 143).
    pub fn exit_code(&self) -> i32 {
        self.status
            .exit_code(self.summary.records_written, self.summary.records_requested)
    }

    /// The closing message on stderr (`None` for a clean run).
    pub fn message(&self) -> Option<String> {
        let s = &self.summary;
        let dir = self.out_dir.display();
        let written = format!(
            "{} of {} records written to {dir}",
            s.records_written, s.records_requested
        );
        match &self.status {
            RunStatus::Completed => None,
            RunStatus::AlreadyComplete => Some(format!(
                "{dir} already holds this run's finished dataset ({} of {} records; {} rows \
                 dropped); nothing to do. Pass --fresh to generate it again",
                s.records_written, s.records_requested, s.rows_dropped
            )),
            RunStatus::CompletedWithDrops => Some(format!(
                "the run finished but dropped {} row(s): {written} (see the failures above)",
                s.rows_dropped
            )),
            RunStatus::StoppedEarly(why) => Some(format!(
                "the run stopped early ({why}): {written}; fix the cause and run the same \
                 command again to resume"
            )),
            RunStatus::Failed(why) => Some(format!(
                "the run failed: {why}; partial outputs are in {dir}"
            )),
            RunStatus::Interrupted | RunStatus::Terminated => Some(format!(
                "{}: {written}; run the same command again to resume",
                if self.status == RunStatus::Interrupted {
                    "interrupted (SIGINT)"
                } else {
                    "terminated (SIGTERM)"
                }
            )),
        }
    }
}

/// Builds the spec's runtime objects in a fresh tokio runtime (the simulated providers' clocks
/// start here). Invalid input maps to exit 2.
pub fn build_in(
    runtime: &tokio::runtime::Runtime,
    spec: &WorkflowSpec,
) -> Result<BuiltWorkflow, CliError> {
    runtime
        .block_on(async { spec.build() })
        .map_err(|e| CliError::invalid_input(e.to_string()))
}

/// Hands each checkpointed row group to the output directory (and its checkpoint file).
struct OutputsRecordSink<'a> {
    outputs: &'a RunOutputs,
}

impl RecordSink for OutputsRecordSink<'_> {
    fn write_row_group(
        &mut self,
        row_group: u64,
        records: &[(u64, Record)],
    ) -> std::io::Result<()> {
        self.outputs
            .write_row_group_ref(row_group, records)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// A stable fingerprint of the spec a dataset was produced from, leaving out `seed` and
/// `records` (compared on their own, so a mismatch can be named).
pub fn spec_fingerprint(spec: &WorkflowSpec) -> String {
    let mut normalized = spec.clone();
    normalized.seed = 0;
    normalized.records = 0;
    let text = serde_json::to_string(&normalized).unwrap_or_default();
    match spec.seed() {
        // The seed file's bytes are part of what the dataset came from: resuming after the
        // file changed would mix two files' rows (specs without one keep their fingerprint).
        Ok(Some(ds)) => {
            let content = format!("seed_dataset:{:016x}", ds.content_hash());
            identity_hash(&[text.as_str(), content.as_str()])
        }
        _ => identity_hash(&[text.as_str()]),
    }
}

/// The identity a checkpoint must match for a resume.
pub fn run_identity(spec: &WorkflowSpec, format: DatasetFormat) -> RunIdentity {
    RunIdentity {
        fingerprint: spec_fingerprint(spec),
        seed: spec.seed,
        records: spec.records,
        format,
    }
}

/// The dataset's key order: the seed file's columns (in its order), then the declared
/// columns, so every writer (JSONL keys, CSV header) follows.
pub fn output_columns(spec: &WorkflowSpec) -> Vec<String> {
    let mut columns = spec.seed_columns();
    columns.extend(spec.columns.iter().map(|c| c.name.clone()));
    columns
}

pub(crate) fn engine_input_error(e: EngineError) -> CliError {
    match e {
        EngineError::InvalidConfig { field, message } => {
            CliError::invalid_input(format!("{field}: {message}"))
        }
        other => CliError::run_failed(other.to_string()),
    }
}

/// Which signal stopped the run (0: none).
pub(crate) const SIGNAL_NONE: u8 = 0;
pub(crate) const SIGNAL_INT: u8 = 1;
pub(crate) const SIGNAL_TERM: u8 = 2;

/// Waits for SIGINT or SIGTERM, records which, and asks the run to stop (once).
pub(crate) async fn watch_signals(stop: weir_runtime::scheduler::StopHandle, which: Arc<AtomicU8>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let got = tokio::select! {
            _ = int.recv() => SIGNAL_INT,
            _ = term.recv() => SIGNAL_TERM,
        };
        which.store(got, Ordering::SeqCst);
        stop.stop();
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_ok() {
            which.store(SIGNAL_INT, Ordering::SeqCst);
            stop.stop();
        }
    }
}

/// Runs a validated spec to completion (or a stop) and writes its outputs, on a fresh
/// multi-threaded tokio runtime.
///
/// SIGINT and SIGTERM stop admission at once and give running work a grace period; completed
/// row groups are written and checkpointed, every lease is released, and the status maps to
/// exit 130 / 143. The same command then resumes after the last checkpointed row group.
pub fn run_workflow(spec: WorkflowSpec, opts: RunOptions) -> Result<RunOutcome, CliError> {
    run_workflow_on(&new_runtime()?, spec, opts)
}

/// A fresh multi-threaded tokio runtime for one run or preview.
pub(crate) fn new_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::run_failed(format!("cannot start the async runtime: {e}")))
}

/// [`run_workflow`] on a given runtime (tests drive it on a paused-clock runtime).
pub fn run_workflow_on(
    runtime: &tokio::runtime::Runtime,
    spec: WorkflowSpec,
    opts: RunOptions,
) -> Result<RunOutcome, CliError> {
    let built = build_in(runtime, &spec)?;
    // Checked before the directory is touched (the engine itself is made after the lock).
    spec.engine_config()
        .map_err(|e| CliError::invalid_input(e.to_string()))?;
    let identity = run_identity(&spec, opts.format);
    // An unreachable store fails the run before anything is written (exit 3).
    let shared = (opts.shared_limits.as_ref())
        .map(|o| crate::shared_limits::connect(runtime, o))
        .transpose()?;
    let lock = OutDirLock::acquire(&opts.out_dir)?;
    let resume = match outdir::decide(&opts.out_dir, &identity, opts.fresh)? {
        Decision::Fresh => None,
        Decision::Resume(cp) => Some(cp),
        Decision::AlreadyComplete(cp) => {
            let mut summary = Summary::new(cp.records);
            summary.records_written = cp.records_written;
            summary.rows_dropped = cp.rows_dropped;
            cp.carried.apply_to(&mut summary);
            return Ok(RunOutcome {
                out_dir: opts.out_dir,
                summary,
                status: RunStatus::AlreadyComplete,
            });
        }
    };
    let first_row_group = resume.as_ref().map_or(0, |cp| cp.row_groups_written);
    let records_at_start = resume.as_ref().map_or(0, |cp| cp.records_written);
    let column_models = column_models(&spec);
    if let (Some(cp), false) = (&resume, opts.quiet) {
        eprintln!(
            "resuming {:?} after {} row group(s) ({} records already written)",
            spec.name, cp.row_groups_written, cp.records_written
        );
    }
    let outputs = RunOutputs::open(
        &opts.out_dir,
        OpenSpec {
            events: opts.events,
            identity,
            shape: Some(RowGroupShape {
                records: built.workflow.records,
                buffer_size: built.workflow.buffer_size,
            }),
            column_models: column_models.clone(),
            resume,
            lock: Some(lock),
            detail: collector_detail(&spec),
            format: opts.format,
            columns: output_columns(&spec),
        },
    )?;
    let engine = new_engine(&spec, &built, first_row_group)?;
    let (engine, cells) = wire_engine(engine, &outputs, shared);
    let prepared = engine.prepare().map_err(engine_input_error)?;
    let stop = prepared.stop_handle();
    let signal = Arc::new(AtomicU8::new(SIGNAL_NONE));
    let mode = ProgressMode::detect(opts.quiet);
    let result: Result<RunResult, EngineError> = runtime.block_on(async {
        let signals = tokio::spawn(watch_signals(stop, signal.clone()));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let records_total = built.workflow.records;
        let session_records = records_total.saturating_sub(records_at_start);
        let cells_done = cells.clone();
        let progress_sources = ProgressSources {
            records_written: Box::new(progress_counter(&outputs)),
            records_total,
            records_at_start,
            cells_done: Box::new(move || cells_done.cells_completed()),
            cells_total: session_records.saturating_mul(built.workflow.columns.len() as u64),
            models: progress::model_lines(&prepared),
        };
        let progress = tokio::spawn(progress::show(mode, progress_sources, done_rx));
        let mut sink = OutputsRecordSink { outputs: &outputs };
        let result = prepared.run(&mut sink).await;
        let _ = done_tx.send(());
        let _ = progress.await;
        signals.abort();
        result
    });
    let signal = signal.load(Ordering::SeqCst);
    let complete = outputs.row_groups_written() >= built.workflow.row_group_count();
    let mut summary: Summary = summary_from(&built, outputs.collector());
    let status = RunStatus::of_session(signal, &result, complete, outputs.rows_dropped());
    summary.failures = session_failures(&result, outputs.collector(), &column_models);
    if let Ok(r) = &result {
        fill_summary(&mut summary, r);
    }
    let series = outputs.collector().series();
    let known_limits = result
        .as_ref()
        .map(RunResult::known_limits)
        .unwrap_or_default();
    summary.set_lower_bound(crate::lower_bound::lower_bound(
        &built,
        &series,
        &known_limits,
    ));
    summary.attribute_budget_waits(&crate::lower_bound::budget_waits(&series, &known_limits));
    summary.stop_reason = match &status {
        RunStatus::StoppedEarly(why) | RunStatus::Failed(why) => Some(why.clone()),
        RunStatus::Interrupted => Some("interrupted (SIGINT)".to_string()),
        RunStatus::Terminated => Some("terminated (SIGTERM)".to_string()),
        _ => None,
    };
    // A resumed run's summary covers every session that wrote this dataset.
    outputs.carried().apply_to(&mut summary);
    outputs.final_checkpoint(CarriedTotals::from_summary(&summary), complete)?;
    let data = ReportData {
        workflow: spec.name.clone(),
        description: spec.description.clone(),
        status: status.label().to_owned(),
        summary,
        capacity_plan: result.as_ref().ok().map(|r| r.capacity_plan.clone()),
        series,
    };
    let out_dir = outputs.dir().to_path_buf();
    let data = outputs.finish(data)?;
    Ok(RunOutcome {
        out_dir,
        summary: data.summary,
        status,
    })
}

/// The session's failure groups: the runtime's own, else the collector's events, else the
/// drop causes (see `failures::session_groups`).
pub(crate) fn session_failures(
    result: &Result<RunResult, EngineError>,
    collector: &crate::report::TimelineCollector,
    column_models: &BTreeMap<String, String>,
) -> Vec<FailureGroup> {
    let empty = BTreeMap::new();
    let (runtime_failures, drop_causes) = match result {
        Ok(r) => (r.report.failures.as_slice(), &r.report.drop_causes),
        Err(_) => (&[][..], &empty),
    };
    failures::session_groups(
        runtime_failures,
        &collector.counts().failed_cells,
        drop_causes,
        |c| column_models.get(c).cloned(),
    )
}

/// Column → model alias of the columns that call a model.
pub(crate) fn column_models(spec: &WorkflowSpec) -> BTreeMap<String, String> {
    spec.columns
        .iter()
        .filter_map(|c| Some((c.name.clone(), c.model.clone()?)))
        .collect()
}

/// The engine of a built workflow with the spec's settings, from row group `first_row_group`.
pub(crate) fn new_engine(
    spec: &WorkflowSpec,
    built: &BuiltWorkflow,
    first_row_group: u64,
) -> Result<Engine, CliError> {
    // The engine settings were checked by validation; bad input leaves no directory behind.
    let config = spec
        .engine_config()
        .map_err(|e| CliError::invalid_input(e.to_string()))?;
    let providers: Vec<(String, Arc<dyn ModelProvider>)> = built.engine_providers();
    Ok(Engine::new(Arc::new(built.workflow.clone()), providers)
        .with_config(config)
        .starting_at_row_group(first_row_group)
        .with_run_id(format!("{}-{}", spec.name, std::process::id())))
}

/// Per-task transitions are followed (layer attribution) when the workflow calls a model;
/// a workflow of local columns only has no admission layer to attribute, and following its
/// tasks would cost more than the work itself. `WEIR_COLLECTOR=full|coarse` overrides.
pub(crate) fn collector_detail(spec: &WorkflowSpec) -> CollectorDetail {
    match std::env::var("WEIR_COLLECTOR").as_deref() {
        Ok("full") => CollectorDetail::Full,
        Ok("coarse") => CollectorDetail::Coarse,
        _ if spec.columns.iter().any(|c| c.kind.uses_model()) => CollectorDetail::Full,
        _ => CollectorDetail::Coarse,
    }
}

fn progress_counter(outputs: &RunOutputs) -> impl Fn() -> u64 + Send + Sync + 'static {
    let counter = outputs.written_counter();
    move || counter.load(Ordering::Relaxed)
}

/// The failure groups of a finished run (for the stderr report).
pub fn failure_groups(outcome: &RunOutcome) -> &[FailureGroup] {
    &outcome.summary.failures
}

/// Connects an engine to a run's outputs (event sinks, the collector's live counters) and to
/// the shared-limits backend, when there is one; returns it with its live counters.
pub(crate) fn wire_engine(
    mut engine: Engine,
    outputs: &RunOutputs,
    shared: Option<Arc<weir_redis::RedisSharedLimits>>,
) -> (Engine, Arc<RunProgress>) {
    if let Some(shared) = shared {
        engine = engine.with_shared_limits(shared);
    }
    for s in outputs.scheduler_sinks() {
        engine = engine.with_scheduler_sink(s);
    }
    // The run's own live counters: the progress line and the coarse collector read them, so
    // no sink needs a per-task event.
    let cells = engine.progress();
    outputs.collector().use_progress(cells.clone());
    for s in outputs.request_sinks() {
        engine = engine.with_request_sink(s);
    }
    (engine, cells)
}

/// Fills the figures only the engine knows.
pub(crate) fn fill_summary(summary: &mut Summary, r: &RunResult) {
    summary.wall_seconds = r.report.wall_seconds;
    summary.final_task_snapshot.active_leases = r.report.final_task_snapshot.active_lease_count;
    summary.final_task_snapshot.queued = r.report.queued_at_end;
    let (leases, waiters, in_flight) = r.request_leftovers();
    summary.final_request_snapshot.active_leases = leases;
    summary.final_request_snapshot.waiters = waiters;
    summary.final_request_snapshot.in_flight = in_flight;
    summary.hidden_scheduler_resource_waiters = r.hidden_scheduler_resource_waiters;
    summary.shared_limits = r.shared_limits.clone();
    summary.tasks.completed = r.report.tasks_completed;
    summary.tasks.failed = r.report.tasks_failed;
    summary.tasks.retried = r.report.tasks_retried;
    summary.requests.attempts = r.requests.attempts;
    summary.requests.succeeded = r.requests.succeeded;
    summary.requests.rate_limited = r.requests.rate_limited;
    summary.requests.failed = r.requests.failed;
    summary.requests.timeouts = r.requests.timeouts;
    summary.requests.cancelled = r.requests.cancelled;
    for row in &mut summary.per_model {
        if let Some(e) = r.endpoints.iter().find(|e| {
            e.endpoint.provider_name.as_ref() == row.provider
                && e.endpoint.model_id.as_ref() == row.model_id
        }) {
            row.attempts = e.attempts.attempts;
            row.rate_limited = e.attempts.rate_limited;
            row.max_in_flight = e.max_in_flight;
            row.final_limit = e.final_limits.values().copied().max();
            row.static_cap = e.static_cap;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: RunStatus, written: u64) -> RunOutcome {
        let mut summary = Summary::new(10);
        summary.records_written = written;
        summary.rows_dropped = 10 - written;
        RunOutcome {
            out_dir: PathBuf::from("out"),
            summary,
            status,
        }
    }

    #[test]
    fn exit_codes_tell_the_truth() {
        let stop = |r: StopReason| {
            RunStatus::StoppedEarly(failures::stop_reason_text(&r).unwrap_or_default())
        };
        let cases = [
            (RunStatus::Completed, 10, 0),
            (RunStatus::CompletedWithDrops, 7, 4),
            (RunStatus::AlreadyComplete, 10, 0),
            (RunStatus::AlreadyComplete, 7, 4),
            (
                stop(StopReason::EarlyShutdown {
                    failure_rate: 0.5,
                    failed: 5,
                    outcomes: 10,
                    cause: "non_retryable:client".into(),
                }),
                0,
                3,
            ),
            (
                stop(StopReason::ConfigurationError {
                    message: "HTTP 401: invalid key".into(),
                }),
                0,
                3,
            ),
            (
                stop(StopReason::CircuitOpen {
                    model: "writer".into(),
                }),
                0,
                3,
            ),
            (RunStatus::Failed("deadlock".into()), 0, 3),
            (RunStatus::Interrupted, 3, 130),
            (RunStatus::Terminated, 3, 143),
        ];
        for (status, written, code) in cases {
            let o = outcome(status.clone(), written);
            assert_eq!(o.exit_code(), code, "{status:?}");
            assert_eq!(
                o.message().is_none(),
                code == 0 && status == RunStatus::Completed
            );
        }
        let o = outcome(
            stop(StopReason::ConfigurationError {
                message: "HTTP 401: invalid key".into(),
            }),
            0,
        );
        let m = o.message().unwrap_or_default();
        assert!(
            m.contains("configuration error: HTTP 401: invalid key"),
            "{m}"
        );
        let o = outcome(
            stop(StopReason::CircuitOpen {
                model: "writer".into(),
            }),
            0,
        );
        assert!(o
            .message()
            .unwrap_or_default()
            .contains("\"writer\" kept failing"));
    }
}
