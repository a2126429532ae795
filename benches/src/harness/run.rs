//! One engine iteration: build the scenario's workflow and simulated providers, run the Engine in
//! real time with in-memory event and record sinks, and hand back everything metrics need.

use super::scenarios::EngineScenario;
use super::sysinfo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_cli::spec::BuiltWorkflow;
use weir_runtime::engine::{Engine, EngineConfig, RunResult};
use weir_runtime::generators::Record;
use weir_runtime::provider::ModelProvider;
use weir_runtime::scheduler::InMemoryRecordSink;
use weir_task_admission::{BoundedBorrowTaskAdmissionPolicyConfig, TaskAdmissionConfig};
use weir_telemetry::{CorrelatedRuntimeView, InMemoryAdmissionEventSink};

/// Everything one engine iteration produced.
pub struct EngineRun {
    /// Wall seconds from `prepare` to the end of `run`.
    pub wall_seconds: f64,
    /// The engine's result.
    pub result: RunResult,
    /// Written records, in order.
    pub rows: Vec<(u64, Record)>,
    /// Joined event view.
    pub view: CorrelatedRuntimeView,
    /// The built workflow (endpoints and latencies for the lower bound).
    pub built: BuiltWorkflowFacts,
    /// Process CPU seconds spent in the run.
    pub cpu_seconds: Option<f64>,
    /// Peak RSS of the process after the run (MiB).
    pub peak_rss_mib: Option<f64>,
    /// The stop was requested at this many seconds (cancellation scenarios).
    pub stopped_at_seconds: Option<f64>,
    /// The spec's column definitions (kinds and call counts for the critical path).
    pub spec_columns: Vec<weir_cli::spec::ColumnDef>,
}

/// What the lower bound and row metrics need from the built workflow.
pub struct BuiltWorkflowFacts {
    /// The built workflow (kept alive for `row_group_size`, columns and bounds).
    pub built: BuiltWorkflow,
    /// Workflow (shared with the engine).
    pub workflow: Arc<weir_runtime::workflow::Workflow>,
}

/// The engine settings of a scenario.
pub fn engine_config(s: &EngineScenario) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.scheduler.submission_capacity = s.submission_capacity;
    config.scheduler.retry.max_retries = s.max_retries;
    // Early shutdown would make fault scenarios depend on timing; the harness wants the full run.
    config.scheduler.early_shutdown = None;
    config.scheduler.cancel_grace = Duration::from_millis(200);
    if let Some(ceiling) = s.borrow_ceiling {
        let borrow = BoundedBorrowTaskAdmissionPolicyConfig {
            default_borrow_ceiling: Some(ceiling),
            ..BoundedBorrowTaskAdmissionPolicyConfig::default()
        };
        config.task_admission = Some(
            TaskAdmissionConfig::with_submission_capacity(s.submission_capacity)
                .with_bounded_borrow(borrow),
        );
    }
    config
}

/// Runs the scenario once on a fresh multi-threaded tokio runtime.
pub fn run_engine_once(s: &EngineScenario) -> Result<EngineRun, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(run_engine(s))
}

async fn run_engine(s: &EngineScenario) -> Result<EngineRun, String> {
    // Built inside the runtime: simulated capacity schedules start at construction.
    let built = s.spec.build().map_err(|e| format!("workflow: {e}"))?;
    let workflow = Arc::new(built.workflow.clone());
    let providers: Vec<(String, Arc<dyn ModelProvider>)> = built
        .providers
        .iter()
        .map(|(name, p)| (name.clone(), p.clone() as Arc<dyn ModelProvider>))
        .collect();
    let events = Arc::new(InMemoryAdmissionEventSink::new());
    let mut sink = InMemoryRecordSink::new();
    let cpu0 = sysinfo::process_cpu_seconds();
    let start = Instant::now();
    let prepared = Engine::new(workflow.clone(), providers)
        .with_config(engine_config(s))
        .with_run_id(format!("bench-{}", s.spec.name))
        .with_scheduler_sink(events.clone())
        .with_request_sink(events.clone())
        .prepare()
        .map_err(|e| format!("prepare: {e}"))?;
    let mut stopper = None;
    if let Some(after) = s.stop_after_seconds {
        let stop = prepared.stop_handle();
        stopper = Some(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(after)).await;
            stop.stop();
        }));
    }
    let result = prepared
        .run(&mut sink)
        .await
        .map_err(|e| format!("run: {e}"))?;
    let wall_seconds = start.elapsed().as_secs_f64();
    let stopped_at_seconds = match stopper {
        Some(h) if h.is_finished() => s.stop_after_seconds,
        Some(h) => {
            h.abort();
            None
        }
        None => None,
    };
    let cpu_seconds = match (cpu0, sysinfo::process_cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(EngineRun {
        wall_seconds,
        result,
        rows: sink.rows(),
        view: CorrelatedRuntimeView::from_sink(&events),
        built: BuiltWorkflowFacts { built, workflow },
        cpu_seconds,
        peak_rss_mib: sysinfo::peak_rss_mib(),
        stopped_at_seconds,
        spec_columns: s.spec.columns.clone(),
    })
}
