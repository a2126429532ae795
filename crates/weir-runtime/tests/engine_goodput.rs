//! End to end under paused time: hidden capacity 32, 100 ms, cap 128, Retry-After 0.5 s, 3,000 calls.

use std::sync::Arc;
use weir_request_admission::{RequestAdmissionConfig, RequestAdmissionPolicy};
use weir_runtime::engine::{Engine, EngineConfig, RunResult};
use weir_runtime::generators::{Category, LlmText};
use weir_runtime::provider::{LatencyDist, ModelProvider, SimulatedModelConfig, SimulatedProvider};
use weir_runtime::scheduler::InMemoryRecordSink;
use weir_runtime::workflow::{ColumnSpec, ModelAlias, Workflow};

const IDEAL: f64 = 3_000.0 * 0.1 / 32.0;

async fn run(policy: RequestAdmissionPolicy) -> (RunResult, f64) {
    let wf = Workflow::new("goodput", 3_000, 3)
        .with_buffer_size(1_000)
        .with_max_concurrent_row_groups(3)
        .with_model(ModelAlias::new("writer", "sim", "m1", 128));
    let models = wf.model_registry();
    let wf = wf
        .with_column(ColumnSpec::new(
            "topic",
            Arc::new(Category::new(["a", "b"]).expect("valid")),
        ))
        .with_column(ColumnSpec::new(
            "draft",
            Arc::new(LlmText::new(&models, "writer", "Write about {{ topic }}").expect("valid")),
        ));
    let provider = SimulatedProvider::new(
        "sim",
        11,
        vec![
            SimulatedModelConfig::new("m1", 32, LatencyDist::Fixed { value: 100.0 })
                .with_retry_after_s(0.5),
        ],
    )
    .expect("valid");
    let provider: Arc<dyn ModelProvider> = Arc::new(provider);
    let config = EngineConfig {
        request_admission: RequestAdmissionConfig {
            policy,
            ..RequestAdmissionConfig::default()
        },
        ..EngineConfig::default()
    };
    let started = tokio::time::Instant::now();
    let mut sink = InMemoryRecordSink::new();
    let result = Engine::new(Arc::new(wf), [("sim".to_owned(), provider)])
        .with_config(config)
        .prepare()
        .expect("prepare")
        .run(&mut sink)
        .await
        .expect("run");
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(sink.rows().len(), 3_000);
    (result, wall)
}

fn check_clean(r: &RunResult) {
    assert_eq!(r.report.records_written, 3_000);
    assert_eq!(r.report.final_task_snapshot.active_lease_count, 0);
    assert_eq!(r.request_leftovers(), (0, 0, 0));
    assert_eq!(r.hidden_scheduler_resource_waiters, 0);
    assert!(r.request_release_diagnostics.values().all(|v| *v == 0));
    assert!(r.endpoints[0].max_in_flight <= 128);
}

#[tokio::test(start_paused = true)]
async fn default_policy_is_near_ideal_and_rarely_rate_limited() {
    let (r, wall) = run(RequestAdmissionPolicy::default()).await;
    check_clean(&r);
    let share = r.requests.rate_limited as f64 / r.requests.attempts as f64;
    println!(
        "goodput: wall {wall:.2}s = {:.3}x ideal, {} attempts, {:.2}% rate limited",
        wall / IDEAL,
        r.requests.attempts,
        share * 100.0
    );
    assert!(wall <= 1.10 * IDEAL, "wall {wall:.2}s vs ideal {IDEAL:.2}s");
    assert!(share <= 0.05, "rate-limited share {share:.3}");
}

#[tokio::test(start_paused = true)]
async fn plan_aimd_completes_cleanly_for_comparison() {
    let (r, wall) = run(RequestAdmissionPolicy::PlanAimd).await;
    check_clean(&r);
    let share = r.requests.rate_limited as f64 / r.requests.attempts as f64;
    println!(
        "plan_aimd: wall {wall:.2}s = {:.3}x ideal, {} attempts, {:.2}% rate limited",
        wall / IDEAL,
        r.requests.attempts,
        share * 100.0
    );
}
