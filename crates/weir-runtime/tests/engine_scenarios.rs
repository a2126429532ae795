//! End-to-end scenarios of the benchmark plan under paused time, plus faults, stop and resume.
//!
//! Every run is checked for the same invariants: all leases, waiters and in-flight counts are
//! zero at the end, no worker is spawned before its task lease, and every requested record is
//! either written or counted as dropped with a cause.

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use weir_contracts::{RequestEventKind, SchedulerEventKind};
use weir_runtime::engine::{Engine, EngineConfig, RunResult};
use weir_runtime::generators::{
    Category, Custom, CustomCalls, Expression, GenerationError, LlmJudge, LlmText, Record,
    UniformInt,
};
use weir_runtime::provider::{LatencyDist, ModelProvider, SimulatedModelConfig, SimulatedProvider};
use weir_runtime::scheduler::{InMemoryRecordSink, SchedulerConfig, StopReason};
use weir_runtime::workflow::{ColumnSpec, ModelAlias, Workflow};
use weir_telemetry::{CorrelatedRuntimeView, InMemoryAdmissionEventSink};

struct Outcome {
    result: RunResult,
    rows: Vec<(u64, Record)>,
    events: Arc<InMemoryAdmissionEventSink>,
}

fn sim(
    name: &str,
    seed: u64,
    models: Vec<SimulatedModelConfig>,
) -> (String, Arc<dyn ModelProvider>) {
    let p = SimulatedProvider::new(name, seed, models).expect("valid provider");
    (name.to_owned(), Arc::new(p))
}

fn fixed(id: &str, capacity: u32, ms: f64) -> SimulatedModelConfig {
    SimulatedModelConfig::new(id, capacity, LatencyDist::Fixed { value: ms })
}

async fn run_with(
    wf: Workflow,
    providers: Vec<(String, Arc<dyn ModelProvider>)>,
    config: EngineConfig,
) -> Outcome {
    let events = Arc::new(InMemoryAdmissionEventSink::new());
    let mut sink = InMemoryRecordSink::new();
    let result = Engine::new(Arc::new(wf), providers)
        .with_config(config)
        .with_scheduler_sink(events.clone())
        .with_request_sink(events.clone())
        .prepare()
        .expect("prepare")
        .run(&mut sink)
        .await
        .expect("run");
    let out = Outcome {
        result,
        rows: sink.rows(),
        events,
    };
    check_invariants(&out);
    out
}

fn check_invariants(o: &Outcome) {
    let r = &o.result;
    assert_eq!(
        r.report.final_task_snapshot.active_lease_count, 0,
        "task leases left"
    );
    assert!(r.report.final_task_snapshot.leased_resources.is_empty());
    assert_eq!(
        r.request_leftovers(),
        (0, 0, 0),
        "request leases/waiters/in-flight left"
    );
    assert_eq!(r.hidden_scheduler_resource_waiters, 0);
    assert!(
        r.request_release_diagnostics.values().all(|v| *v == 0),
        "bad releases"
    );
    let view = CorrelatedRuntimeView::from_sink(&o.events);
    assert_eq!(view.hidden_scheduler_resource_waiters(), 0);
    assert_eq!(view.request_lease_count(), view.outbound_attempts());
    // Nothing lost or duplicated: written rows are unique and, with drops, cover every row once.
    let mut seen: Vec<u64> = o.rows.iter().map(|(g, _)| *g).collect();
    seen.dedup();
    assert_eq!(seen.len(), o.rows.len(), "duplicate rows");
    assert!(o.rows.windows(2).all(|w| w[0].0 < w[1].0), "row order");
    assert_eq!(r.report.records_written, o.rows.len() as u64);
    assert_eq!(
        r.report.rows_dropped,
        r.report.drop_causes.values().sum::<u64>(),
        "every dropped row has a cause"
    );
}

fn count(o: &Outcome, kind: SchedulerEventKind) -> usize {
    o.events
        .scheduler_events()
        .iter()
        .filter(|e| e.event_kind() == kind)
        .count()
}

fn request_count(o: &Outcome, kind: RequestEventKind) -> usize {
    o.events
        .request_events()
        .iter()
        .filter(|e| e.event_kind() == kind)
        .count()
}

fn chain_workflow(records: u64, buffer: u64, row_groups: u32) -> Workflow {
    let wf = Workflow::new("chain", records, 42)
        .with_buffer_size(buffer)
        .with_max_concurrent_row_groups(row_groups)
        .with_model(ModelAlias::new("writer", "sim", "m1", 8));
    let m = wf.model_registry();
    wf.with_column(ColumnSpec::new(
        "topic",
        Arc::new(Category::new(["a", "b", "c"]).expect("ok")),
    ))
    .with_column(ColumnSpec::new(
        "draft",
        Arc::new(LlmText::new(&m, "writer", "Write {{ topic }}").expect("ok")),
    ))
    .with_column(ColumnSpec::new(
        "edit",
        Arc::new(LlmText::new(&m, "writer", "Edit {{ draft }}").expect("ok")),
    ))
    .with_column(ColumnSpec::new(
        "title",
        Arc::new(Expression::new("{{ topic }}/{{ edit }}").expect("ok")),
    ))
}

#[tokio::test(start_paused = true)]
async fn narrow_serial_chain_is_deterministic_across_concurrency_settings() {
    let providers = || vec![sim("sim", 1, vec![fixed("m1", 8, 20.0)])];
    let a = run_with(
        chain_workflow(120, 20, 1),
        providers(),
        EngineConfig::default(),
    )
    .await;
    let mut small = EngineConfig::default();
    small.scheduler.submission_capacity = 3;
    let b = run_with(chain_workflow(120, 40, 4), providers(), small).await;
    assert_eq!(a.rows.len(), 120);
    assert_eq!(
        a.rows, b.rows,
        "same seed, different concurrency, identical records"
    );
    assert_eq!(a.result.requests.succeeded, 240);
    assert_eq!(
        request_count(&a, RequestEventKind::RequestLeaseAcquired),
        240
    );
}

#[tokio::test(start_paused = true)]
async fn wide_independent_roots_all_complete() {
    let wf = Workflow::new("wide", 200, 3)
        .with_buffer_size(50)
        .with_model(ModelAlias::new("w", "sim", "m1", 32));
    let m = wf.model_registry();
    let mut wf = wf;
    for i in 0..4 {
        wf = wf.with_column(ColumnSpec::new(
            format!("c{i}"),
            Arc::new(LlmText::new(&m, "w", &format!("root {i}")).expect("ok")),
        ));
    }
    let o = run_with(
        wf,
        vec![sim("sim", 2, vec![fixed("m1", 32, 50.0)])],
        EngineConfig::default(),
    )
    .await;
    assert_eq!(o.rows.len(), 200);
    assert_eq!(o.result.requests.succeeded, 800);
    assert!(o.result.endpoints[0].max_in_flight <= 32);
}

#[tokio::test(start_paused = true)]
async fn dual_model_generate_then_judge() {
    let wf = Workflow::new("judge", 100, 5)
        .with_buffer_size(25)
        .with_model(ModelAlias::new("writer", "sim", "writer-m", 16))
        .with_model(ModelAlias::new("judge", "sim", "judge-7", 8));
    let m = wf.model_registry();
    let wf = wf
        .with_column(ColumnSpec::new(
            "topic",
            Arc::new(Category::new(["x", "y"]).expect("ok")),
        ))
        .with_column(ColumnSpec::new(
            "draft",
            Arc::new(LlmText::new(&m, "writer", "About {{ topic }}").expect("ok")),
        ))
        .with_column(ColumnSpec::new(
            "score",
            Arc::new(LlmJudge::new(&m, "judge", "Rate {{ draft }}").expect("ok")),
        ));
    let o = run_with(
        wf,
        vec![sim(
            "sim",
            3,
            vec![fixed("writer-m", 16, 40.0), fixed("judge-7", 8, 20.0)],
        )],
        EngineConfig::default(),
    )
    .await;
    assert_eq!(
        o.rows.len(),
        100,
        "drops: {:?}",
        o.result.report.drop_causes
    );
    assert!(o
        .rows
        .iter()
        .all(|(_, r)| r["score"].as_u64().is_some_and(|s| (1..=10).contains(&s))));
    let per: Vec<u64> = o
        .result
        .endpoints
        .iter()
        .map(|e| e.attempts.succeeded)
        .collect();
    assert_eq!(per, [100, 100]);
}

#[tokio::test(start_paused = true)]
async fn heavy_root_downstream_dispatches_while_root_still_runs() {
    let wf = Workflow::new("heavy", 200, 9)
        .with_buffer_size(200)
        .with_max_concurrent_row_groups(1)
        .with_model(ModelAlias::new("slow", "sim", "slow-m", 32))
        .with_model(ModelAlias::new("fast", "sim", "fast-m", 32));
    let m = wf.model_registry();
    let wf = wf
        .with_column(ColumnSpec::new(
            "root",
            Arc::new(LlmText::new(&m, "slow", "seed").expect("ok")),
        ))
        .with_column(ColumnSpec::new(
            "down",
            Arc::new(LlmText::new(&m, "fast", "use {{ root }}").expect("ok")),
        ));
    let o = run_with(
        wf,
        vec![sim(
            "sim",
            4,
            vec![fixed("slow-m", 32, 500.0), fixed("fast-m", 32, 10.0)],
        )],
        EngineConfig::default(),
    )
    .await;
    let ev = o.events.scheduler_events();
    let column_of = |e: &weir_contracts::SchedulerAdmissionEvent| {
        e.captured_correlation
            .as_ref()
            .and_then(|c| c.task_column.clone())
    };
    let first_down_lease = ev
        .iter()
        .filter(|e| {
            e.event_kind() == SchedulerEventKind::TaskLeaseAcquired
                && column_of(e).as_deref() == Some("down")
        })
        .map(|e| e.captured_at_monotonic)
        .fold(f64::INFINITY, f64::min);
    let last_root_done = ev
        .iter()
        .filter(|e| {
            e.event_kind() == SchedulerEventKind::TaskCompleted
                && column_of(e).as_deref() == Some("root")
        })
        .map(|e| e.captured_at_monotonic)
        .fold(0.0, f64::max);
    assert!(
        first_down_lease < last_root_done,
        "downstream first lease {first_down_lease:.3}s must precede the root's end {last_root_done:.3}s"
    );
    assert_eq!(o.rows.len(), 200);
}

#[tokio::test(start_paused = true)]
async fn dynamic_request_count_leases_equal_outbound_attempts() {
    let wf = Workflow::new("dynamic", 150, 13)
        .with_buffer_size(50)
        .with_model(ModelAlias::new("w", "sim", "m1", 16));
    let m = wf.model_registry();
    let wf = wf
        .with_column(ColumnSpec::new(
            "n",
            Arc::new(UniformInt::new(0, 9).expect("ok")),
        ))
        .with_column(ColumnSpec::new(
            "extra",
            Arc::new(CustomCalls::new(&m, "w", "more {{ n }}", 0, 3).expect("ok")),
        ));
    let o = run_with(
        wf,
        vec![sim("sim", 5, vec![fixed("m1", 16, 30.0)])],
        EngineConfig::default(),
    )
    .await;
    let leases = request_count(&o, RequestEventKind::RequestLeaseAcquired);
    let started = request_count(&o, RequestEventKind::ModelRequestStarted);
    assert_eq!(leases, started);
    assert_eq!(leases as u64, o.result.requests.attempts);
    assert!(
        leases > 0 && leases < 150 * 3,
        "a data-dependent number of calls: {leases}"
    );
    assert_eq!(o.rows.len(), 150);
}

#[tokio::test(start_paused = true)]
async fn cross_provider_cooldown_does_not_stall_the_other_provider() {
    let wf = Workflow::new("cross", 200, 17)
        .with_buffer_size(200)
        .with_max_concurrent_row_groups(1)
        .with_model(ModelAlias::new("a", "prov-a", "ma", 32))
        .with_model(ModelAlias::new("b", "prov-b", "mb", 16));
    let m = wf.model_registry();
    let wf = wf
        .with_column(ColumnSpec::new(
            "ca",
            Arc::new(LlmText::new(&m, "a", "a").expect("ok")),
        ))
        .with_column(ColumnSpec::new(
            "cb",
            Arc::new(LlmText::new(&m, "b", "b").expect("ok")),
        ));
    let o = run_with(
        wf,
        vec![
            sim(
                "prov-a",
                6,
                vec![fixed("ma", 2, 100.0).with_retry_after_s(2.0)],
            ),
            sim("prov-b", 7, vec![fixed("mb", 16, 50.0)]),
        ],
        EngineConfig::default(),
    )
    .await;
    let ev = o.events.scheduler_events();
    let done_at = |col: &str| {
        ev.iter()
            .filter(|e| {
                e.event_kind() == SchedulerEventKind::TaskCompleted
                    && e.captured_correlation
                        .as_ref()
                        .and_then(|c| c.task_column.as_deref())
                        == Some(col)
            })
            .map(|e| e.captured_at_monotonic)
            .fold(0.0, f64::max)
    };
    let (a_end, b_end) = (done_at("ca"), done_at("cb"));
    // B alone needs 200 × 50 ms / 16 = 0.625 s; A needs at least 200 × 100 ms / 2 = 10 s.
    assert!(
        b_end < 2.0,
        "provider B finished at {b_end:.2}s while A was cooling down"
    );
    assert!(a_end > 9.0, "provider A is the slow one ({a_end:.2}s)");
    assert!(o
        .result
        .endpoints
        .iter()
        .any(|e| e.attempts.rate_limited > 0));
    assert_eq!(o.rows.len(), 200);
}

#[tokio::test(start_paused = true)]
async fn faults_429_storm_5xx_and_timeouts_leak_nothing() {
    let wf = chain_workflow(150, 30, 3);
    let mut config = EngineConfig::default();
    config.scheduler.early_shutdown = None;
    let o = run_with(
        wf,
        vec![sim(
            "sim",
            8,
            vec![fixed("m1", 2, 20.0)
                .with_retry_after_s(0.2)
                .with_faults(0.2, 0.1)],
        )],
        config,
    )
    .await;
    let r = &o.result;
    assert!(r.requests.rate_limited > 0 && r.requests.failed > 0 && r.requests.timeouts > 0);
    assert_eq!(r.report.records_written + r.report.rows_dropped, 150);
    assert!(
        count(&o, SchedulerEventKind::TaskLeaseAcquired)
            == count(&o, SchedulerEventKind::TaskLeaseReleased)
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_generator_drops_only_its_rows() {
    let wf = Workflow::new("panic", 60, 19).with_buffer_size(20);
    let wf = wf
        .with_column(ColumnSpec::new(
            "n",
            Arc::new(UniformInt::new(0, 100).expect("ok")),
        ))
        .with_column(ColumnSpec::new(
            "boom",
            Arc::new(Custom::new(["n"], |ctx| async move {
                if ctx.row_index % 10 == 3 {
                    panic!("generator bug on purpose");
                }
                Ok::<Value, GenerationError>(Value::from(ctx.row_index))
            })),
        ));
    let mut config = EngineConfig::default();
    config.scheduler.early_shutdown = None;
    let o = run_with(wf, Vec::new(), config).await;
    assert_eq!(o.result.report.worker_panics, 6);
    assert_eq!(o.result.report.rows_dropped, 6);
    assert_eq!(
        o.result
            .report
            .drop_causes
            .get("non_retryable:worker_panic"),
        Some(&6)
    );
    assert_eq!(o.rows.len(), 54);
}

#[tokio::test(start_paused = true)]
async fn stop_mid_run_then_resume_gives_the_uninterrupted_dataset() {
    let providers = || vec![sim("sim", 21, vec![fixed("m1", 8, 100.0)])];
    let full = run_with(
        chain_workflow(200, 20, 2),
        providers(),
        EngineConfig::default(),
    )
    .await;

    // First attempt: stopped after 2 s.
    let config = EngineConfig {
        scheduler: SchedulerConfig {
            cancel_grace: Duration::from_millis(50),
            ..SchedulerConfig::default()
        },
        ..EngineConfig::default()
    };
    let prepared = Engine::new(Arc::new(chain_workflow(200, 20, 2)), providers())
        .with_config(config)
        .prepare()
        .expect("prepare");
    let stop = prepared.stop_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.stop();
    });
    let mut first = InMemoryRecordSink::new();
    let r1 = prepared.run(&mut first).await.expect("stopped run");
    assert_eq!(r1.report.stopped, Some(StopReason::Cancelled));
    assert_eq!(r1.request_leftovers(), (0, 0, 0));
    assert_eq!(r1.report.final_task_snapshot.active_lease_count, 0);
    let written = r1.report.row_groups_written;
    assert!(
        written > 0 && written < 10,
        "stopped part-way: {written} row groups"
    );

    // Resume from the first unwritten row group.
    let mut second = InMemoryRecordSink::new();
    Engine::new(Arc::new(chain_workflow(200, 20, 2)), providers())
        .starting_at_row_group(written)
        .prepare()
        .expect("prepare")
        .run(&mut second)
        .await
        .expect("resumed run");
    let mut rows = first.rows();
    rows.extend(second.rows());
    assert_eq!(rows, full.rows, "interrupted + resumed == uninterrupted");
}

#[tokio::test(start_paused = true)]
async fn a_sibling_still_running_when_its_row_is_dropped_does_not_break_the_run() {
    // Row group 0: `a` fails at once (drops the row) while `b` is still running for 1 s; the
    // group is written (empty) before `b` returns. Its late result must be discarded quietly.
    let wf = Workflow::new("late-sibling", 2, 23).with_buffer_size(1);
    let wf = wf
        .with_column(ColumnSpec::new(
            "a",
            Arc::new(Custom::new(Vec::<String>::new(), |ctx| async move {
                if ctx.row_group == 0 {
                    Err(GenerationError::bad_output("no good"))
                } else {
                    Ok(Value::from("a"))
                }
            })),
        ))
        .with_column(ColumnSpec::new(
            "b",
            Arc::new(Custom::new(Vec::<String>::new(), |ctx| async move {
                let wait = if ctx.row_group == 0 { 1_000 } else { 3_000 };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                Ok::<Value, GenerationError>(Value::from("b"))
            })),
        ));
    let mut config = EngineConfig::default();
    config.scheduler.early_shutdown = None;
    let o = run_with(wf, Vec::new(), config).await;
    assert_eq!(o.rows.len(), 1);
    assert_eq!(o.result.report.rows_dropped, 1);
    assert_eq!(
        o.result.report.tasks_cancelled, 1,
        "the late sibling's result is discarded"
    );
}

#[tokio::test(start_paused = true)]
async fn fed_row_groups_in_any_order_and_split_across_runs_give_the_same_rows() {
    // Shared row groups (issue 17): a run in feed mode generates exactly the groups it is
    // handed, writes each as it completes, and ends when the feed closes. Two "workers" taking
    // the odd and even groups in reverse order produce, group for group, the rows of one run.
    let providers = || vec![sim("sim", 21, vec![fixed("m1", 8, 100.0)])];
    let full = run_with(
        chain_workflow(200, 20, 2),
        providers(),
        EngineConfig::default(),
    )
    .await;
    let mut by_group: std::collections::BTreeMap<u64, Vec<(u64, Record)>> = Default::default();
    for part in [[9u64, 7, 5, 3, 1], [8, 6, 4, 2, 0]] {
        let (tx, feed) = weir_runtime::scheduler::RowGroupFeed::channel(1);
        let feeder = tokio::spawn(async move {
            for rg in part {
                tx.send(rg).await.expect("the run takes every group");
            }
            // Dropping the sender ends the run once what it holds is written.
        });
        let mut sink = InMemoryRecordSink::new();
        let result = Engine::new(Arc::new(chain_workflow(200, 20, 2)), providers())
            .with_row_group_feed(feed)
            .prepare()
            .expect("prepare")
            .run(&mut sink)
            .await
            .expect("fed run");
        feeder.await.expect("feeder");
        assert_eq!(result.report.row_groups_written, 5);
        assert_eq!(result.request_leftovers(), (0, 0, 0));
        let mut groups = sink.row_groups();
        groups.sort_unstable();
        let mut expected = part.to_vec();
        expected.sort_unstable();
        assert_eq!(groups, expected);
        for (row, record) in sink.rows() {
            by_group.entry(row / 20).or_default().push((row, record));
        }
    }
    let rows: Vec<(u64, Record)> = by_group.into_values().flatten().collect();
    assert_eq!(rows, full.rows, "fed in pieces == one run");
}
