//! `weir run`: options, outcome, and the boundary the engine plugs into ([`run_workflow`]).
//!
//! Order of a run (so invalid input never creates the output directory):
//! 1. `spec.build()` inside the run's tokio runtime → `BuiltWorkflow` (error: exit 2);
//! 2. [`RunOutputs::create`] (the directory, `dataset.jsonl`, `events.jsonl`);
//! 3. run the engine with `outputs.scheduler_sinks()` / `outputs.request_sinks()` on its two
//!    event streams, handing each checkpointed row group to `outputs.write_row_group`, racing
//!    `tokio::signal::ctrl_c()` (→ [`CliError::interrupted`], exit 130);
//! 4. [`summary_from`] + the engine's final numbers, the capacity plan, `outputs.collector().series()`
//!    → [`ReportData`] → `outputs.finish(data)`;
//! 5. exit 3 ([`CliError::run_failed`]) if the run failed or stopped early — after writing outputs.

use crate::error::CliError;
use crate::output::{summary_from, Checkpoint, EventsMode, RunOutputs};
use crate::progress::{self, ProgressMode, ProgressSources};
use crate::progress_cells::CellCounter;
use crate::report::ReportData;
use crate::spec::{BuiltWorkflow, WorkflowSpec};
use crate::summary::{CarriedTotals, Summary};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weir_contracts::identity_hash;
use weir_runtime::engine::{Engine, EngineConfig, EngineError, RunResult};
use weir_runtime::generators::Record;
use weir_runtime::provider::ModelProvider;
use weir_runtime::scheduler::{RecordSink, StopReason};

/// Options of `weir run` (after `--records` / `--seed` were applied to the spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Output directory (default `./weir-out/<name>`).
    pub out_dir: PathBuf,
    /// No progress output on stderr.
    pub quiet: bool,
    /// Which events go to `events.jsonl`.
    pub events: EventsMode,
}

/// What a finished run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The output directory.
    pub out_dir: PathBuf,
    /// The run's summary (as written to `summary.json`).
    pub summary: Summary,
    /// True when the run stopped before every record was attempted (exit 3).
    pub stopped_early: bool,
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
            .write_row_group(row_group, records.iter().map(|(_, r)| r.clone()).collect())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// A stable fingerprint of the spec a dataset was produced from (resume only continues the
/// dataset of the very same spec, after overrides).
pub fn spec_fingerprint(spec: &WorkflowSpec) -> String {
    let text = serde_json::to_string(spec).unwrap_or_default();
    identity_hash(&[text.as_str()])
}

/// The row group to resume from: a checkpoint of the same spec that is not complete.
fn resume_point(opts: &RunOptions, fingerprint: &str) -> Option<Checkpoint> {
    let cp = Checkpoint::load(&opts.out_dir)?;
    let dataset_ok = std::fs::metadata(opts.out_dir.join(crate::output::DATASET_FILE))
        .is_ok_and(|m| m.len() >= cp.dataset_bytes);
    (cp.fingerprint == fingerprint && !cp.complete && dataset_ok).then_some(cp)
}

/// Engine settings from the spec's public request-admission tuning.
fn engine_config(built: &BuiltWorkflow) -> Result<EngineConfig, CliError> {
    let t = &built.request_admission;
    let config = EngineConfig::default().with_request_tuning(
        t.multiplicative_decrease_factor,
        t.additive_increase_step,
        t.successes_until_increase,
        t.cooldown_seconds,
        t.startup_ramp_seconds,
    );
    match t.policy {
        Some(p) => config
            .with_request_policy(p.name())
            .map_err(engine_input_error),
        None => Ok(config),
    }
}

fn engine_input_error(e: EngineError) -> CliError {
    match e {
        EngineError::InvalidConfig { field, message } => {
            CliError::invalid_input(format!("{field}: {message}"))
        }
        other => CliError::run_failed(other.to_string()),
    }
}

/// Runs a validated spec to completion (or a stop) and writes its outputs.
///
/// Ctrl-C stops admission at once and gives running work a grace period; completed row groups
/// are written and checkpointed, every lease is released, and the error maps to exit 130. The
/// same command then resumes after the last checkpointed row group.
pub fn run_workflow(spec: WorkflowSpec, opts: RunOptions) -> Result<RunOutcome, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::run_failed(format!("cannot start the async runtime: {e}")))?;
    let built = build_in(&runtime, &spec)?;
    let config = engine_config(&built)?;
    let fingerprint = spec_fingerprint(&spec);
    let resume = resume_point(&opts, &fingerprint);
    let providers: Vec<(String, Arc<dyn ModelProvider>)> = built.engine_providers();
    let first_row_group = resume.as_ref().map_or(0, |cp| cp.row_groups_written);
    // Validate the engine settings before the output directory exists: bad input leaves nothing.
    config.request_admission.validate().map_err(|e| {
        CliError::invalid_input(format!("request_admission.{}: {}", e.field, e.message))
    })?;
    let outputs = RunOutputs::open(&opts.out_dir, opts.events, fingerprint, resume.as_ref())?;
    let mut engine = Engine::new(Arc::new(built.workflow.clone()), providers)
        .with_config(config)
        .starting_at_row_group(first_row_group)
        .with_run_id(format!("{}-{}", spec.name, std::process::id()));
    for s in outputs.scheduler_sinks() {
        engine = engine.with_scheduler_sink(s);
    }
    let cells = Arc::new(CellCounter::default());
    if !opts.quiet {
        engine = engine.with_scheduler_sink(cells.clone());
    }
    for s in outputs.request_sinks() {
        engine = engine.with_request_sink(s);
    }
    let prepared = engine.prepare().map_err(engine_input_error)?;
    let stop = prepared.stop_handle();
    let interrupted = Arc::new(AtomicBool::new(false));
    let mode = ProgressMode::detect(opts.quiet);
    if let (Some(cp), false) = (&resume, opts.quiet) {
        eprintln!(
            "resuming {:?} after {} row group(s) ({} records already written)",
            spec.name, cp.row_groups_written, cp.records_written
        );
    }
    let result: Result<RunResult, EngineError> = runtime.block_on(async {
        let interrupted_flag = interrupted.clone();
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted_flag.store(true, Ordering::SeqCst);
                stop.stop();
            }
        });
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let records_total = built.workflow.records;
        let records_at_start = resume.as_ref().map_or(0, |cp| cp.records_written);
        let session_records = records_total.saturating_sub(records_at_start);
        let cells_done = cells.clone();
        let progress_sources = ProgressSources {
            records_written: Box::new(progress_counter(&outputs)),
            records_total,
            records_at_start,
            cells_done: Box::new(move || cells_done.cells_done()),
            cells_total: session_records.saturating_mul(built.workflow.columns.len() as u64),
            models: progress::model_lines(&prepared),
        };
        let progress = tokio::spawn(progress::show(mode, progress_sources, done_rx));
        let mut sink = OutputsRecordSink { outputs: &outputs };
        let result = prepared.run(&mut sink).await;
        let _ = done_tx.send(());
        let _ = progress.await;
        ctrl_c.abort();
        result
    });
    let interrupted = interrupted.load(Ordering::SeqCst);
    let mut failure: Option<String> = None;
    let (status, result) = match result {
        Ok(r) => {
            let status = match (&r.report.stopped, interrupted) {
                (_, true) => "interrupted",
                (Some(StopReason::Cancelled), false) => "interrupted",
                (
                    Some(
                        StopReason::EarlyShutdown { .. }
                        | StopReason::ConfigurationError { .. }
                        | StopReason::CircuitOpen { .. },
                    ),
                    _,
                ) => "stopped_early",
                (None, _) => "completed",
            };
            (status, Some(r))
        }
        Err(e) => {
            failure = Some(e.to_string());
            ("failed", None)
        }
    };
    let mut summary: Summary = summary_from(&built, outputs.collector());
    if let Some(r) = &result {
        fill_summary(&mut summary, r);
    }
    // A resumed run's summary covers every session that wrote this dataset.
    outputs.carried().apply_to(&mut summary);
    let complete = outputs.row_groups_written() >= built.workflow.row_group_count();
    if complete {
        outputs.mark_complete()?;
    } else {
        outputs.carry_forward(CarriedTotals::from_summary(&summary))?;
    }
    let data = ReportData {
        workflow: spec.name.clone(),
        description: spec.description.clone(),
        status: status.to_owned(),
        summary,
        capacity_plan: result.as_ref().map(|r| r.capacity_plan.clone()),
        series: outputs.collector().series(),
    };
    let out_dir = outputs.dir().to_path_buf();
    let data = outputs.finish(data)?;
    match (status, result) {
        ("interrupted", _) => Err(CliError::interrupted(format!(
            "interrupted: {} of {} records written to {}; run the same command again to resume",
            data.summary.records_written,
            data.summary.records_requested,
            out_dir.display()
        ))),
        (_, None) => Err(CliError::run_failed(format!(
            "the run failed: {}; partial outputs are in {}",
            failure.as_deref().unwrap_or("unknown error"),
            out_dir.display()
        ))),
        (status, Some(_)) => Ok(RunOutcome {
            out_dir,
            stopped_early: status != "completed" || !complete,
            summary: data.summary,
        }),
    }
}

fn progress_counter(outputs: &RunOutputs) -> impl Fn() -> u64 + Send + Sync + 'static {
    let counter = outputs.written_counter();
    move || counter.load(Ordering::Relaxed)
}

/// Fills the figures only the engine knows.
fn fill_summary(summary: &mut Summary, r: &RunResult) {
    summary.wall_seconds = r.report.wall_seconds;
    summary.final_task_snapshot.active_leases = r.report.final_task_snapshot.active_lease_count;
    summary.final_task_snapshot.queued = r.report.queued_at_end;
    let (leases, waiters, in_flight) = r.request_leftovers();
    summary.final_request_snapshot.active_leases = leases;
    summary.final_request_snapshot.waiters = waiters;
    summary.final_request_snapshot.in_flight = in_flight;
    summary.hidden_scheduler_resource_waiters = r.hidden_scheduler_resource_waiters;
    summary.tasks.completed = r.report.tasks_completed;
    summary.tasks.failed = r.report.tasks_failed;
    summary.tasks.retried = r.report.tasks_retried;
    summary.rows_dropped = r.report.rows_dropped;
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
