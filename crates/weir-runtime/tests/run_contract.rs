//! The run contract of issue 14 under paused time with scripted providers: configuration
//! failures stop the run at once, rate limits never drop a row, a 5xx storm spends one budget
//! per cell, early shutdown sees model outcomes only, a provider that never recovers opens its
//! circuit, and the failure report carries column, model, cause, first message and status.

use std::sync::Arc;
use std::time::Duration;
use weir_contracts::{SchedulerEventKind, SchedulerEventPayload};
use weir_runtime::engine::{Engine, EngineConfig, RunResult};
use weir_runtime::generators::{Category, Expression, LlmText, UniformInt};
use weir_runtime::provider::{ModelProvider, ProviderError, ScriptedProvider, ScriptedStep};
use weir_runtime::scheduler::{InMemoryRecordSink, StopReason};
use weir_runtime::workflow::{ColumnSpec, ModelAlias, Workflow};
use weir_telemetry::InMemoryAdmissionEventSink;

/// `records` rows in row groups of `buffer`: a category, `locals` extra local columns, then
/// one LLM column `draft` on alias `writer` (cap 4).
fn workflow(records: u64, buffer: u64, locals: usize) -> Workflow {
    let wf = Workflow::new("contract", records, 11)
        .with_buffer_size(buffer)
        .with_max_concurrent_row_groups(2)
        .with_model(ModelAlias::new("writer", "scripted", "m1", 4));
    let m = wf.model_registry();
    let mut wf = wf.with_column(ColumnSpec::new(
        "topic",
        Arc::new(Category::new(["a", "b"]).expect("valid")),
    ));
    for i in 0..locals {
        wf = wf.with_column(ColumnSpec::new(
            format!("n{i}"),
            Arc::new(UniformInt::new(0, 9).expect("valid")),
        ));
        wf = wf.with_column(ColumnSpec::new(
            format!("e{i}"),
            Arc::new(Expression::new(&format!("{{{{ topic }}}}-{{{{ n{i} }}}}")).expect("valid")),
        ));
    }
    wf.with_column(ColumnSpec::new(
        "draft",
        Arc::new(LlmText::new(&m, "writer", "Write about {{ topic }}").expect("valid")),
    ))
}

struct Outcome {
    result: RunResult,
    rows: usize,
    calls: u64,
    events: Arc<InMemoryAdmissionEventSink>,
}

async fn run(wf: Workflow, provider: Arc<ScriptedProvider>, config: EngineConfig) -> Outcome {
    let events = Arc::new(InMemoryAdmissionEventSink::new());
    let as_dyn: Arc<dyn ModelProvider> = provider.clone();
    let mut sink = InMemoryRecordSink::new();
    let result = Engine::new(Arc::new(wf), [("scripted".to_owned(), as_dyn)])
        .with_config(config)
        .with_scheduler_sink(events.clone())
        .prepare()
        .expect("prepare")
        .run(&mut sink)
        .await
        .expect("run");
    let out = Outcome {
        rows: sink.rows().len(),
        calls: provider.stats("m1").calls,
        result,
        events,
    };
    check_consistent(&out);
    out
}

/// Leases all back; dropped rows agree with causes, failures and the drop events.
fn check_consistent(o: &Outcome) {
    let r = &o.result.report;
    assert_eq!(r.final_task_snapshot.active_lease_count, 0);
    assert_eq!(o.result.request_leftovers(), (0, 0, 0));
    assert_eq!(r.records_written, o.rows as u64);
    assert_eq!(r.rows_dropped, r.drop_causes.values().sum::<u64>());
    assert_eq!(
        r.rows_dropped,
        r.failures.iter().map(|f| f.rows_dropped).sum::<u64>(),
        "failures: {:?}",
        r.failures
    );
    let dropped_by_events: u64 = o
        .events
        .scheduler_events()
        .iter()
        .filter_map(|e| match &e.payload {
            SchedulerEventPayload::NonRetryableDropped(d) => Some(d.rows_dropped),
            _ => None,
        })
        .sum();
    assert_eq!(r.rows_dropped, dropped_by_events, "report vs drop events");
    let failed_events = o
        .events
        .scheduler_events()
        .iter()
        .filter(|e| e.event_kind() == SchedulerEventKind::NonRetryableDropped)
        .count() as u64;
    assert_eq!(r.tasks_failed, failed_events);
    assert_eq!(
        r.failures.iter().map(|f| f.count).sum::<u64>(),
        failed_events
    );
    if r.stopped.is_none() {
        // A finished run wrote every group; their checkpoint events carry the same drops.
        let dropped_at_checkpoints: u64 = o
            .events
            .scheduler_events()
            .iter()
            .filter_map(|e| match &e.payload {
                SchedulerEventPayload::RowGroupCheckpointed(c) => Some(c.dropped_rows),
                _ => None,
            })
            .sum();
        assert_eq!(r.rows_dropped, dropped_at_checkpoints, "checkpoint events");
    }
}

fn scripted(fallback: ScriptedStep) -> Arc<ScriptedProvider> {
    let p = Arc::new(ScriptedProvider::new("scripted"));
    p.set_fallback(fallback);
    p
}

fn unauthorized() -> ProviderError {
    let mut e = ProviderError::client(401, "authentication failed");
    e.url_path = Some("/v1/chat/completions".into());
    e.provider_error_type = Some("invalid_api_key".into());
    e
}

#[tokio::test(start_paused = true)]
async fn a_401_on_every_call_stops_with_a_configuration_error_after_a_handful_of_calls() {
    let records = 200;
    let o = run(
        workflow(records, 50, 1),
        scripted(ScriptedStep::err(unauthorized()).after(Duration::from_millis(30))),
        EngineConfig::default(),
    )
    .await;
    let r = &o.result.report;
    match &r.stopped {
        Some(StopReason::ConfigurationError { message }) => {
            assert!(message.contains("401"), "{message}");
            assert!(message.contains("writer"), "{message}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    // The model's cap is 4: the 4 calls in flight when the first 401 came back, plus at most
    // the 4 waiters request admission granted as those released (before the scheduler could
    // abort them) — not records × 16 as before.
    assert!(o.calls >= 1 && o.calls <= 2 * 4, "{} calls", o.calls);
    assert_eq!(o.rows, 0);
    assert_eq!(
        r.rows_dropped, 0,
        "a stopped run drops nothing: it can resume"
    );
    let f = &r.failures[0];
    assert_eq!(f.column, "draft");
    assert_eq!(f.model.as_deref(), Some("writer"));
    assert_eq!(f.cause, "configuration:provider_error");
    // Calls that were still running when the run stopped were aborted, not counted as failed.
    assert!(
        f.count >= 1 && f.count <= o.calls,
        "{} of {}",
        f.count,
        o.calls
    );
    assert_eq!(f.http_status, Some(401));
    assert_eq!(f.url_path.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(f.provider_error_type.as_deref(), Some("invalid_api_key"));
    assert!(f.first_message.contains("authentication failed"));
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_stops_with_a_configuration_error_within_seconds() {
    let o = run(
        workflow(200, 50, 0),
        scripted(ScriptedStep::err(ProviderError::connection())),
        EngineConfig::default(),
    )
    .await;
    let r = &o.result.report;
    assert!(
        matches!(r.stopped, Some(StopReason::ConfigurationError { .. })),
        "{:?}",
        r.stopped
    );
    // The executor retries a refused connection in place (4 attempts, ~1.4 s of backoff)
    // and every started cell (2 row groups × 50) is inside that loop when the first one comes
    // back: at most each started cell's budget, never a re-run, and the rows after the
    // first two row groups are never tried.
    let started_cells = 2 * 50;
    assert!(o.calls <= started_cells * 4, "{} calls", o.calls);
    assert!(o.calls < 200 * 4, "{} calls", o.calls);
    assert!(r.wall_seconds < 10.0, "stopped after {}s", r.wall_seconds);
    assert_eq!(r.failures[0].cause, "configuration:connection_error");
    assert_eq!(r.failures[0].http_status, None);
}

#[tokio::test(start_paused = true)]
async fn a_429_storm_then_recovery_drops_no_row() {
    let p = Arc::new(ScriptedProvider::new("scripted"));
    // 300 rate limits (each cell sees many more than 4 × 4 of them), then the provider heals.
    p.extend(
        "m1",
        (0..300).map(|_| {
            ScriptedStep::err(ProviderError::rate_limited(Some(Duration::from_millis(
                500,
            ))))
            .after(Duration::from_millis(10))
        }),
    );
    p.set_fallback(ScriptedStep::text("fine").after(Duration::from_millis(20)));
    let records = 12;
    let o = run(workflow(records, 6, 1), p, EngineConfig::default()).await;
    let r = &o.result.report;
    assert_eq!(r.stopped, None);
    assert_eq!(o.rows as u64, records, "drops: {:?}", r.drop_causes);
    assert_eq!(r.rows_dropped, 0);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    // The storm is ridden out by the executor's per-request waits (rate limits never use up
    // a cell's attempts) or, past `max_rate_limit_wait`, by the scheduler's salvage.
    assert!(
        o.result.requests.rate_limited >= 300,
        "{:?}",
        o.result.requests
    );
    assert!(o.calls > 300);
}

#[tokio::test(start_paused = true)]
async fn a_500_storm_makes_at_most_the_per_cell_budget_of_requests() {
    let records = 20;
    let mut config = EngineConfig::default();
    config.scheduler.early_shutdown = None;
    let o = run(
        workflow(records, 10, 1),
        scripted(ScriptedStep::err(ProviderError::server_error(500))),
        config,
    )
    .await;
    let r = &o.result.report;
    assert_eq!(r.stopped, None);
    // One budget per cell: the executor's 4 attempts, and no scheduler re-run on top (was 16).
    assert_eq!(o.calls, records * 4);
    assert_eq!(r.rows_dropped, records);
    assert_eq!(r.failures.len(), 1);
    let f = &r.failures[0];
    assert_eq!(f.column, "draft");
    assert_eq!(f.model.as_deref(), Some("writer"));
    assert_eq!(f.cause, "retries_exhausted:server_error");
    assert_eq!((f.count, f.rows_dropped), (records, records));
    assert_eq!(f.http_status, Some(500));
    assert!(f.first_message.contains("500"), "{}", f.first_message);
}

#[tokio::test(start_paused = true)]
async fn early_shutdown_trips_on_a_small_run_whose_model_calls_all_fail_despite_local_columns() {
    // 20 records × 13 local columns: 260 local successes that used to dilute the window.
    let records = 20;
    let o = run(
        workflow(records, 20, 6),
        scripted(
            ScriptedStep::err(ProviderError::client(400, "bad request"))
                .after(Duration::from_millis(50)),
        ),
        EngineConfig::default(),
    )
    .await;
    let r = &o.result.report;
    match &r.stopped {
        Some(StopReason::EarlyShutdown {
            failure_rate,
            failed,
            outcomes,
            cause,
        }) => {
            assert!(*failure_rate >= 0.5);
            assert!(*outcomes >= 10 && *failed >= 5);
            assert_eq!(cause, "non_retryable:provider_error");
        }
        other => panic!("expected early shutdown, got {other:?}"),
    }
    assert!(o.calls < records, "{} calls", o.calls);
    // Rows dropped before the stop are counted although no row group was written.
    assert_eq!(r.row_groups_written, 0);
    assert!(r.rows_dropped >= 10, "{}", r.rows_dropped);
    assert_eq!(r.failures[0].http_status, Some(400));
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_keeps_answering_503_opens_its_circuit() {
    let o = run(
        workflow(8, 4, 0),
        scripted(ScriptedStep::err(ProviderError::overloaded(Some(
            Duration::from_secs(5),
        )))),
        EngineConfig::default(),
    )
    .await;
    let r = &o.result.report;
    assert_eq!(
        r.stopped,
        Some(StopReason::CircuitOpen {
            model: "writer".into()
        })
    );
    assert!(r.wall_seconds >= 180.0, "opened after {}s", r.wall_seconds);
    assert!(r.wall_seconds < 600.0, "opened after {}s", r.wall_seconds);
    assert_eq!(r.rows_dropped, 0, "nothing was dropped for a rate limit");
    let f = r
        .failures
        .iter()
        .find(|f| f.cause.starts_with("circuit_open:"))
        .expect("the breaker's failure is reported");
    assert_eq!(f.model.as_deref(), Some("writer"));
    assert_eq!(f.http_status, Some(503));
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_keeps_answering_429_opens_its_circuit() {
    let o = run(
        workflow(8, 4, 0),
        scripted(ScriptedStep::err(ProviderError::rate_limited(Some(
            Duration::from_secs(1),
        )))),
        EngineConfig::default(),
    )
    .await;
    let r = &o.result.report;
    assert_eq!(
        r.stopped,
        Some(StopReason::CircuitOpen {
            model: "writer".into()
        })
    );
    assert_eq!(r.rows_dropped, 0);
    assert_eq!(r.failures[0].cause, "circuit_open:rate_limited");
    assert_eq!(r.failures[0].http_status, Some(429));
}
