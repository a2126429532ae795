//! `weir preview`: a few records of a workflow, in memory, before paying for a full run.
//!
//! The same engine, sinks and exit contract as `weir run` ([`crate::run`]), with an in-memory
//! record sink and the report's collector as the only event sink: no output directory, no
//! events file, no checkpoint. The records are the first N a `weir run --records N` with the
//! same seed writes.

use crate::error::CliError;
use crate::failures::FailureGroup;
use crate::output::{OrderedRecord, RowGroupShape};
use crate::report::{CollectorDetail, TimelineCollector, DEFAULT_MAX_POINTS};
use crate::run::{self, RunStatus};
use crate::spec::WorkflowSpec;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use weir_runtime::generators::Record;
use weir_runtime::scheduler::{InMemoryRecordSink, RecordSink};

/// Records a preview runs when `-n` is not given.
pub const DEFAULT_PREVIEW_RECORDS: u64 = 5;

/// One model endpoint's figures in a preview.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewModel {
    /// The aliases using the endpoint (`writer`, or `writer, editor`).
    pub aliases: Vec<String>,
    /// Provider name.
    pub provider: String,
    /// Model id.
    pub model_id: String,
    /// Calls made (every attempt, rate-limited ones included).
    pub calls: u64,
    /// Calls answered with a rate limit (429).
    pub rate_limited: u64,
    /// Latency of the successful calls in ms (p50, max), when any succeeded.
    pub latency_ms: Option<(f64, f64)>,
}

impl PreviewModel {
    /// `writer (sim/writer1): 10 calls, 0 429s, latency p50 31 ms, max 48 ms`.
    pub fn line(&self) -> String {
        let latency = match self.latency_ms {
            Some((p50, max)) => format!("latency p50 {p50:.0} ms, max {max:.0} ms"),
            None => "no successful call".to_string(),
        };
        format!(
            "{} ({}/{}): {} calls, {} 429s, {latency}",
            self.aliases.join(", "),
            self.provider,
            self.model_id,
            self.calls,
            self.rate_limited
        )
    }
}

/// What a preview produced.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewOutcome {
    /// The surviving records, in row order.
    pub records: Vec<Record>,
    /// Key order of the printed records (the declared columns).
    pub columns: Vec<String>,
    /// Records requested.
    pub requested: u64,
    /// Rows dropped by failed cells or validators.
    pub rows_dropped: u64,
    /// One entry per model endpoint.
    pub models: Vec<PreviewModel>,
    /// Failure groups (column × model × cause).
    pub failures: Vec<FailureGroup>,
    /// How it ended (decides the exit status, as for `weir run`).
    pub status: RunStatus,
}

impl PreviewOutcome {
    /// The process exit status: the run contract's (0, 3, 4, 130, 143).
    pub fn exit_code(&self) -> i32 {
        self.status
            .exit_code(self.records.len() as u64, self.requested)
    }

    /// The records as a pretty JSON array, keys in declared column order (what `weir preview`
    /// prints on stdout).
    pub fn records_json(&self) -> Result<String, CliError> {
        let rows: Vec<OrderedRecord<'_>> = self
            .records
            .iter()
            .map(|record| OrderedRecord {
                record,
                columns: &self.columns,
            })
            .collect();
        serde_json::to_string_pretty(&rows)
            .map_err(|e| CliError::run_failed(format!("cannot print the records: {e}")))
    }
}

/// Runs `records` records of a validated spec in memory (a fresh multi-threaded runtime).
pub fn preview_workflow(spec: WorkflowSpec, records: u64) -> Result<PreviewOutcome, CliError> {
    preview_workflow_on(&run::new_runtime()?, spec, records)
}

/// [`preview_workflow`] on a given runtime (tests drive it on a paused clock).
pub fn preview_workflow_on(
    runtime: &tokio::runtime::Runtime,
    spec: WorkflowSpec,
    records: u64,
) -> Result<PreviewOutcome, CliError> {
    let spec = spec.with_overrides(Some(records), None);
    spec.validate()
        .map_err(|errors| CliError::invalid_input(format!("invalid preview: {errors}")))?;
    let built = run::build_in(runtime, &spec)?;
    let column_models = run::column_models(&spec);
    let detail = if spec.columns.iter().any(|c| c.kind.uses_model()) {
        CollectorDetail::Full
    } else {
        CollectorDetail::Coarse
    };
    let collector = Arc::new(TimelineCollector::with_detail(DEFAULT_MAX_POINTS, detail));
    let engine = run::new_engine(&spec, &built, 0)?
        .with_scheduler_sink(collector.clone())
        .with_request_sink(collector.clone());
    let prepared = engine.prepare().map_err(run::engine_input_error)?;
    let stop = prepared.stop_handle();
    let signal = Arc::new(AtomicU8::new(run::SIGNAL_NONE));
    let sink = InMemoryRecordSink::new();
    let result = runtime.block_on(async {
        let signals = tokio::spawn(run::watch_signals(stop, signal.clone()));
        let mut rows = sink.clone();
        let result = prepared.run(&mut rows as &mut dyn RecordSink).await;
        signals.abort();
        result
    });
    let shape = RowGroupShape {
        records: built.workflow.records,
        buffer_size: built.workflow.buffer_size,
    };
    let groups = sink.row_groups();
    let mut rows = sink.rows();
    rows.sort_by_key(|(i, _)| *i);
    let complete = groups.len() as u64 >= built.workflow.row_group_count();
    let written_rows: u64 = groups.iter().map(|g| shape.size(*g)).sum();
    let rows_dropped = written_rows.saturating_sub(rows.len() as u64);
    let status = RunStatus::of_session(
        signal.load(Ordering::SeqCst),
        &result,
        complete,
        rows_dropped,
    );
    let columns = run::output_columns(&spec);
    let mut summary = crate::output::summary_from(&built, &collector);
    if let Ok(r) = &result {
        run::fill_summary(&mut summary, r);
    }
    let series = collector.series();
    let models = summary
        .per_model
        .iter()
        .map(|m| {
            let latency = series
                .models
                .iter()
                .filter(|s| s.provider == m.provider && s.model_id == m.model_id)
                .filter_map(|s| s.latency_ms.as_ref())
                .max_by_key(|l| l.count)
                .map(|l| (l.p50, l.max));
            PreviewModel {
                aliases: m.aliases.clone(),
                provider: m.provider.clone(),
                model_id: m.model_id.clone(),
                calls: m.attempts,
                rate_limited: m.rate_limited,
                latency_ms: latency,
            }
        })
        .collect();
    Ok(PreviewOutcome {
        records: rows.into_iter().map(|(_, r)| r).collect(),
        columns,
        requested: built.workflow.records,
        rows_dropped,
        models,
        failures: run::session_failures(&result, &collector, &column_models),
        status,
    })
}

/// The closing message on stderr for a preview that did not end cleanly.
pub fn message(outcome: &PreviewOutcome) -> Option<String> {
    let got = format!(
        "{} of {} preview records",
        outcome.records.len(),
        outcome.requested
    );
    match &outcome.status {
        RunStatus::Completed | RunStatus::AlreadyComplete => None,
        RunStatus::CompletedWithDrops => Some(format!(
            "the preview dropped {} row(s): {got} (see the failures above)",
            outcome.rows_dropped
        )),
        RunStatus::StoppedEarly(why) => Some(format!("the preview stopped early ({why}): {got}")),
        RunStatus::Failed(why) => Some(format!("the preview failed: {why}: {got}")),
        RunStatus::Interrupted => Some(format!("interrupted (SIGINT): {got}")),
        RunStatus::Terminated => Some(format!("terminated (SIGTERM): {got}")),
    }
}
