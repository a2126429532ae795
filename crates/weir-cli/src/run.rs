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
use crate::output::EventsMode;
use crate::spec::{BuiltWorkflow, WorkflowSpec};
use crate::summary::Summary;
#[allow(unused_imports)] // referenced by the docs above; used once the engine is wired
use crate::{
    output::{summary_from, RunOutputs},
    report::ReportData,
};
use std::path::PathBuf;

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

/// Runs a validated spec to completion and writes its outputs.
///
/// The engine is not wired yet: this validates and builds the workflow, then stops with exit 3
/// before creating anything on disk. The lead replaces the marked part with the engine call.
pub fn run_workflow(spec: WorkflowSpec, opts: RunOptions) -> Result<RunOutcome, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::run_failed(format!("cannot start the async runtime: {e}")))?;
    let built = build_in(&runtime, &spec)?;
    // ---- engine goes here (steps 2–5 in the module docs) ----
    let _ = (&built, &opts);
    Err(CliError::run_failed(format!(
        "workflow {:?} is valid ({} records, {} columns), but `weir run` cannot execute it yet: engine not wired yet",
        spec.name,
        spec.records,
        spec.columns.len()
    )))
}
