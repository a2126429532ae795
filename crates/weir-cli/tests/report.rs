//! The report pipeline without the engine: hand-built events → `TimelineCollector` → series and
//! counts → `ReportData` → `report.html`; plus `RunOutputs` files and the `Summary` key contract.
//!
//! Set `WEIR_REPORT_SAMPLE=/path/file.html` to also write the sample report there.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_capacity::{AsyncCapacityPlanBuilder, ModelDeclaration, ObservedMaximaTracker};
use weir_cli::output::{summary_from, EventsMode, RunOutputs};
use weir_cli::report::{render_html, ReportData, TimelineCollector};
use weir_cli::spec::WorkflowSpec;
use weir_cli::summary::Summary;
use weir_contracts::payload::{RowGroupAdmitted, RowGroupCheckpointed};
use weir_contracts::{
    CapacitySource, RequestAdmissionEvent, RequestDomain, RequestEventKind as R,
    RequestPressureSnapshot, RequestResourceKey, RuntimeCorrelation, SchedulerAdmissionEvent,
    SchedulerEventKind as S, SchedulerEventPayload as SP, TaskExecutionId, TaskId,
};
use weir_telemetry::EventSink;

fn sched(kind: S, t: f64) -> SchedulerAdmissionEvent {
    SchedulerAdmissionEvent::new(kind, t)
}

fn admitted(t: f64, row_group: u64, in_flight: u64) -> SchedulerAdmissionEvent {
    SchedulerAdmissionEvent::with_payload(
        SP::RowGroupAdmitted(RowGroupAdmitted {
            row_group,
            rows: 25,
            in_flight,
        }),
        t,
    )
}

fn checkpointed(
    t: f64,
    row_group: u64,
    surviving_rows: u64,
    dropped_rows: u64,
) -> SchedulerAdmissionEvent {
    SchedulerAdmissionEvent::with_payload(
        SP::RowGroupCheckpointed(RowGroupCheckpointed {
            row_group,
            surviving_rows,
            dropped_rows,
            records_written: 0,
        }),
        t,
    )
}

fn pressure(
    key: &RequestResourceKey,
    in_flight: u32,
    limit: u32,
    cooldown: f64,
) -> RequestPressureSnapshot {
    RequestPressureSnapshot {
        captured_at: 0.0,
        sequence: 0,
        resource: key.clone(),
        effective_max: 128,
        current_limit: limit,
        in_flight_count: in_flight,
        active_lease_count: in_flight,
        waiters: 0,
        blocked_until_monotonic: None,
        cooldown_remaining_seconds: cooldown,
        rate_limit_ceiling: 0,
        consecutive_rate_limits: 0,
        last_outcome: None,
        leak_diagnostics: BTreeMap::new(),
    }
}

fn task_event(kind: S, t: f64, task: &str, exec: u64, rg: u64) -> SchedulerAdmissionEvent {
    let mut e = sched(kind, t);
    e.task_id = Some(TaskId::new(task));
    e.task_execution_id = Some(TaskExecutionId(exec));
    let mut c = RuntimeCorrelation::for_run("run");
    c.row_group = Some(rg);
    e.captured_correlation = Some(c);
    e
}

fn req(
    kind: R,
    t: f64,
    key: &RequestResourceKey,
    exec: u64,
    snap: Option<(u32, u32, f64)>,
) -> RequestAdmissionEvent {
    let mut e = RequestAdmissionEvent::new(kind, t);
    e.request_resource_key = Some(key.clone());
    e.task_execution_id = Some(TaskExecutionId(exec));
    if let Some((in_flight, limit, cooldown)) = snap {
        e.pressure_snapshot = Some(pressure(key, in_flight, limit, cooldown));
    }
    e
}

/// A fake 12-second run: 4 row groups of 25 rows, two models (one rate-limited with an AIMD
/// sawtooth), and a few fully traced tasks for layer attribution.
fn feed(collector: &TimelineCollector) -> (RequestResourceKey, RequestResourceKey) {
    let a = RequestResourceKey::new("sim", "writer1", RequestDomain::Chat).unwrap();
    let b = RequestResourceKey::new("sim", "judge<8>", RequestDomain::Chat).unwrap();
    let mut row_group_events = Vec::new();
    for rg in 0..4u64 {
        let t0 = rg as f64 * 2.5;
        // In flight after this admission: admitted so far minus those already written.
        let written = (0..rg).filter(|k| *k as f64 * 2.5 + 4.0 <= t0).count() as u64;
        row_group_events.push(admitted(t0, rg, rg + 1 - written));
        row_group_events.push(checkpointed(t0 + 4.0, rg, 24, 1));
    }
    row_group_events.sort_by(|x, y| x.captured_at_monotonic.total_cmp(&y.captured_at_monotonic));
    for e in &row_group_events {
        collector.emit(e);
    }
    // AIMD sawtooth on `a`: the limit climbs, a 429 cuts it by 0.75.
    let mut limit = 16.0f64;
    let mut t = 0.0;
    let mut exec = 1000;
    while t < 12.0 {
        let in_flight = (limit as u32).min(20);
        collector.emit(&req(
            R::RequestLeaseAcquired,
            t,
            &a,
            exec,
            Some((in_flight, limit as u32, 0.0)),
        ));
        collector.emit(&req(R::ModelRequestStarted, t, &a, exec, None));
        if limit >= 20.0 {
            collector.emit(&req(
                R::RequestRateLimited,
                t + 0.01,
                &a,
                exec,
                Some((in_flight, limit as u32, 1.0)),
            ));
            collector.emit(
                &req(R::ModelRequestCompleted, t + 0.01, &a, exec, None)
                    .with_outcome("rate_limited"),
            );
            limit = (limit * 0.75).floor();
            collector.emit(&req(
                R::RequestLimitDecreased,
                t + 0.01,
                &a,
                exec,
                Some((in_flight - 1, limit as u32, 1.0)),
            ));
        } else {
            collector.emit(
                &req(R::ModelRequestCompleted, t + 0.05, &a, exec, None).with_outcome("success"),
            );
            limit += 0.25;
        }
        collector.emit(&req(
            R::RequestLeaseReleased,
            t + 0.05,
            &a,
            exec,
            Some((in_flight.saturating_sub(1), limit as u32, 0.0)),
        ));
        t += 0.02;
        exec += 1;
    }
    // Model b without snapshots: the lease counter drives in-flight.
    for i in 0..40u64 {
        let t = 1.0 + i as f64 * 0.2;
        collector.emit(&req(R::RequestLeaseAcquired, t, &b, 5000 + i, None));
        collector.emit(&req(R::ModelRequestStarted, t, &b, 5000 + i, None));
        collector.emit(
            &req(R::ModelRequestCompleted, t + 0.3, &b, 5000 + i, None).with_outcome("success"),
        );
        collector.emit(&req(R::RequestLeaseReleased, t + 0.3, &b, 5000 + i, None));
    }
    // One fully traced task: 1 s dependency wait, 0.5 s ready queue, 0.25 s task admission,
    // 0.25 s other, 1 s cooldown, 2 s provider, 0.5 s other.
    let k = &a;
    collector.emit(&admitted(0.0, 9, 1));
    for (kind, t) in [
        (S::DependencyReady, 1.0),
        (S::Selected, 1.5),
        (S::TaskLeaseAcquired, 1.75),
    ] {
        collector.emit(&task_event(kind, t, "task-x", 7, 9));
    }
    collector.emit(&task_event(S::WorkerSpawned, 1.8, "task-x", 7, 9));
    collector.emit(&req(R::RequestWaitStarted, 2.0, k, 7, Some((1, 1, 0.8))));
    collector.emit(&req(R::RequestLeaseAcquired, 3.0, k, 7, Some((1, 1, 0.0))));
    collector.emit(&req(R::ModelRequestStarted, 3.0, k, 7, None));
    collector.emit(&req(R::ModelRequestCompleted, 5.0, k, 7, None).with_outcome("success"));
    collector.emit(&task_event(S::TaskCompleted, 5.5, "task-x", 7, 9));
    (a, b)
}

trait WithOutcome {
    fn with_outcome(self, o: &str) -> Self;
}
impl WithOutcome for RequestAdmissionEvent {
    fn with_outcome(mut self, o: &str) -> Self {
        self.reason_or_outcome = Some(o.to_string());
        self
    }
}

fn plan() -> weir_capacity::AsyncCapacityPlan {
    let mut tracker = ObservedMaximaTracker::new();
    tracker.observe_row_groups(3);
    AsyncCapacityPlanBuilder::new()
        .buffer_size(25, CapacitySource::RunConfig)
        .model(ModelDeclaration::new("writer", "sim", "writer1", Some(128)))
        .model(ModelDeclaration::new(
            "judge<b>",
            "sim",
            "judge<8>",
            Some(16),
        ))
        .observed(tracker)
        .build()
        .unwrap()
}

fn sample_data() -> ReportData {
    let collector = TimelineCollector::default();
    feed(&collector);
    let counts = collector.counts();
    let mut summary = Summary::new(100);
    summary.records_written = counts.records_completed;
    summary.rows_dropped = counts.rows_dropped;
    summary.wall_seconds = 12.3;
    summary.tasks = counts.tasks;
    summary.requests = counts.requests;
    summary.layer_attribution = counts.layers;
    summary.lower_bound_seconds = Some(9.1);
    summary.per_model = vec![
        weir_cli::summary::ModelSummary {
            alias: "writer".into(),
            aliases: vec!["writer".into()],
            provider: "sim".into(),
            model_id: "writer1".into(),
            attempts: 600,
            rate_limited: 12,
            max_in_flight: 20,
            final_limit: Some(17),
            static_cap: 128,
        },
        weir_cli::summary::ModelSummary {
            alias: "judge<b>".into(),
            aliases: vec!["judge<b>".into()],
            provider: "sim".into(),
            model_id: "judge<8>".into(),
            attempts: 40,
            rate_limited: 0,
            max_in_flight: 2,
            final_limit: None,
            static_cap: 16,
        },
    ];
    ReportData {
        workflow: "sample <script>alert(1)</script>".into(),
        description: Some("A fake run with \"quotes\" & <tags>".into()),
        status: "completed".into(),
        summary,
        capacity_plan: Some(plan()),
        series: collector.series(),
    }
}

#[test]
fn collector_builds_series_and_counts_from_events() {
    let collector = TimelineCollector::default();
    let (a, _) = feed(&collector);
    let counts = collector.counts();
    assert_eq!(counts.records_completed, 96);
    assert_eq!(counts.rows_dropped, 4);
    assert_eq!(counts.tasks.completed, 1);
    assert!(counts.requests.rate_limited > 0);
    assert_eq!(
        counts.requests.attempts,
        counts.requests.succeeded + counts.requests.rate_limited
    );
    assert_eq!(counts.max_row_groups_in_flight, 2);
    let l = counts.layers;
    assert!((l.dependency_wait - 1.0).abs() < 1e-9, "{l:?}");
    assert!((l.ready_queue_wait - 0.5).abs() < 1e-9, "{l:?}");
    assert!((l.task_admission_wait - 0.25).abs() < 1e-9, "{l:?}");
    assert!((l.cooldown - 1.0).abs() < 1e-9, "{l:?}");
    assert!((l.provider_execution - 2.0).abs() < 1e-9, "{l:?}");
    assert!((l.worker_code - 0.75).abs() < 1e-9, "{l:?}");
    assert_eq!(l.retry_backoff, 0.0);
    // The request layers are charged to the resource that caused them.
    let by = &counts.layers_by_resource["sim/writer1/chat"];
    assert!((by.cooldown - 1.0).abs() < 1e-9, "{by:?}");
    assert!((by.provider_execution - 2.0).abs() < 1e-9, "{by:?}");
    assert_eq!(l.request_admission_wait, 0.0);
    assert_eq!(collector.live_tasks(), 0, "finished tasks are forgotten");
    // Over time, the layers add up to the same task-seconds as the totals.
    let series = collector.series();
    let width = series
        .layers_over_time
        .get(1)
        .map_or(0.01, |p| p.0 - series.layers_over_time[0].0);
    let over_time: f64 = series
        .layers_over_time
        .iter()
        .map(|(_, v)| v.iter().sum::<f64>() * width)
        .sum();
    assert!(
        (over_time - l.total()).abs() < 1e-6,
        "{over_time} vs {}",
        l.total()
    );

    let series = collector.series();
    let last = series.records_completed.last().unwrap();
    assert_eq!(last.1, 96.0);
    assert!(series
        .records_completed
        .windows(2)
        .all(|w| w[0].1 <= w[1].1));
    assert_eq!(series.models.len(), 2);
    let sa = series
        .models
        .iter()
        .find(|m| m.model_id == *a.model_id)
        .unwrap();
    assert_eq!(sa.max_in_flight, 20);
    assert!(!sa.rate_limited.is_empty());
    assert!(sa.limit.iter().any(|p| p.1 < 20.0) && sa.limit.iter().any(|p| p.1 >= 20.0));
    let sb = series
        .models
        .iter()
        .find(|m| m.model_id.as_ref() as &str == "judge<8>")
        .unwrap();
    assert_eq!(
        sb.max_in_flight, 1,
        "lease counter: b's calls never overlap"
    );
    assert_eq!(sb.attempts, 40);
    assert!((series.duration_seconds - 12.0).abs() < 0.1);
}

#[test]
fn collector_memory_is_bounded_by_downsampling() {
    let collector = TimelineCollector::new(500);
    let key = RequestResourceKey::new("p", "m", RequestDomain::Chat).unwrap();
    for i in 0..200_000u64 {
        let t = i as f64 * 0.001;
        collector.emit(&req(
            R::RequestLeaseAcquired,
            t,
            &key,
            i,
            Some(((i % 50) as u32, 40, 0.0)),
        ));
        if i % 1000 == 0 {
            collector.emit(&req(R::RequestRateLimited, t, &key, i, None));
            collector.emit(&checkpointed(t, 0, 10, 0));
        }
    }
    let s = collector.series();
    let m = &s.models[0];
    assert!(m.in_flight.len() <= 500 && m.limit.len() <= 500 && m.rate_limited.len() <= 500);
    assert!(s.records_completed.len() <= 500);
    assert!(
        m.in_flight.iter().any(|p| p.1 == 49.0),
        "peaks survive downsampling"
    );
    let markers: f64 = m.rate_limited.iter().map(|p| p.1).sum();
    assert_eq!(markers, 200.0, "429 counts survive downsampling");
    assert_eq!(s.records_completed.last().unwrap().1, 2000.0);
}

#[test]
fn collector_filters_kinds_it_does_not_use() {
    let c = TimelineCollector::default();
    assert!(EventSink::<SchedulerAdmissionEvent>::accepts(
        &c,
        S::RowGroupCheckpointed
    ));
    assert!(!EventSink::<SchedulerAdmissionEvent>::accepts(
        &c,
        S::QueueEmpty
    ));
    assert!(EventSink::<RequestAdmissionEvent>::accepts(
        &c,
        R::RequestRateLimited
    ));
    assert!(!EventSink::<RequestAdmissionEvent>::accepts(
        &c,
        R::RequestQueueFormed
    ));
}

#[test]
fn renderer_draws_every_chart_and_escapes_names() {
    let data = sample_data();
    let html = render_html(&data);
    if let Ok(path) = std::env::var("WEIR_REPORT_SAMPLE") {
        std::fs::write(path, &html).unwrap();
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("<script"),
        "no scripts, and names are escaped"
    );
    assert!(html.contains("sample &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;quotes&quot; &amp; &lt;tags&gt;"));
    assert!(html.contains("judge&lt;b&gt;") && html.contains("sim/judge&lt;8&gt;/chat"));
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no network resources"
    );
    // One SVG per chart: records, row groups, 2 models, layer bar, layers over time.
    assert_eq!(html.matches("<svg").count(), 6);
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert!(html.contains("Records completed over time"));
    assert!(html.contains("Row groups in flight"));
    assert!(html.contains("sim/writer1/chat"));
    assert!(html.contains("<polyline"));
    assert!(html.contains("class=\"marker\""), "429 markers drawn");
    assert!(html.contains("static cap") && html.contains("adaptive limit"));
    assert!(html.contains("Layer attribution"));
    assert!(
        html.contains("Tasks in each layer over time"),
        "attribution over time is drawn"
    );
    for layer in [
        "dependency wait",
        "ready queue wait",
        "task admission wait",
        "request admission wait",
        "cooldown",
        "provider execution",
        "worker code",
        "retry backoff",
    ] {
        assert!(html.contains(layer), "legend has {layer}");
    }
    // Plan fields wrap only at their dots, never inside a name.
    assert!(html.contains(
        r#"<code class="brk"><span class="nw">configured.</span><wbr><span class="nw">buffer_size</span></code>"#
    ));
    assert!(html.contains("run_config") && html.contains("model_metadata"));
    // Tag balance of the SVG bodies (cheap well-formedness check).
    for tag in ["text", "title", "polyline"] {
        let open =
            html.matches(&format!("<{tag} ")).count() + html.matches(&format!("<{tag}>")).count();
        assert_eq!(
            open,
            html.matches(&format!("</{tag}>")).count(),
            "<{tag}> balanced"
        );
    }
    // ReportData round-trips through JSON (what `weir report DIR` reads).
    let back: ReportData = serde_json::from_str(&serde_json::to_string(&data).unwrap()).unwrap();
    assert_eq!(render_html(&back), html);
}

#[test]
fn summary_keys_are_the_contract() {
    let v = serde_json::to_value(Summary::new(3)).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "records_requested",
        "records_written",
        "rows_dropped",
        "rows_unfinished",
        "stop_reason",
        "failures",
        "wall_seconds",
        "tasks",
        "requests",
        "final_task_snapshot",
        "final_request_snapshot",
        "hidden_scheduler_resource_waiters",
        "per_model",
        "lower_bound_seconds",
        "lower_bound",
        "layer_attribution",
        "layer_attribution_by_resource",
        "verdict",
    ];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    let obj = |k: &str| -> Vec<String> {
        let mut ks: Vec<String> = v[k].as_object().unwrap().keys().cloned().collect();
        ks.sort();
        ks
    };
    assert_eq!(obj("tasks"), ["completed", "failed", "retried"]);
    assert_eq!(
        obj("requests"),
        [
            "attempts",
            "cancelled",
            "failed",
            "rate_limited",
            "succeeded",
            "timeouts"
        ]
    );
    assert_eq!(obj("final_task_snapshot"), ["active_leases", "queued"]);
    assert_eq!(
        obj("final_request_snapshot"),
        ["active_leases", "in_flight", "waiters"]
    );
    assert_eq!(
        obj("layer_attribution"),
        [
            "budget_wait",
            "cooldown",
            "dependency_wait",
            "provider_execution",
            "ready_queue_wait",
            "request_admission_wait",
            "retry_backoff",
            "task_admission_wait",
            "worker_code"
        ]
    );
    assert_eq!(v["lower_bound_seconds"], Value::Null);
}

#[test]
fn run_outputs_write_every_file_in_row_order() {
    let dir = std::env::temp_dir().join(format!("weir-cli-outputs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec =
        WorkflowSpec::from_json(weir_cli::examples::find("quickstart").unwrap().text).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let built = rt.block_on(async { spec.build() }).unwrap();

    let outputs = RunOutputs::create(&dir, EventsMode::Full).unwrap();
    let scheduler: Vec<Arc<dyn EventSink<SchedulerAdmissionEvent>>> = outputs.scheduler_sinks();
    let request: Vec<Arc<dyn EventSink<RequestAdmissionEvent>>> = outputs.request_sinks();
    assert_eq!((scheduler.len(), request.len()), (2, 2));
    let key = RequestResourceKey::new("sim", "writer1", RequestDomain::Chat).unwrap();
    for s in &scheduler {
        s.emit(&checkpointed(0.5, 0, 2, 0));
    }
    for r in &request {
        r.emit(&req(R::ModelRequestStarted, 0.1, &key, 1, None));
        r.emit(&req(R::ModelRequestCompleted, 0.2, &key, 1, None).with_outcome("success"));
    }
    let row =
        |i: u64| -> BTreeMap<String, Value> { [("i".to_string(), json!(i))].into_iter().collect() };
    outputs.write_row_group(1, vec![row(2), row(3)]).unwrap();
    assert_eq!(outputs.records_written(), 0, "group 1 waits for group 0");
    outputs.write_row_group(0, vec![row(0), row(1)]).unwrap();
    assert_eq!(outputs.records_written(), 4);

    let mut summary = summary_from(&built, outputs.collector());
    assert_eq!(summary.requests.attempts, 1);
    assert_eq!(summary.per_model.len(), 2);
    assert_eq!(summary.per_model[0].attempts, 1);
    assert_eq!(summary.per_model[0].static_cap, 48);
    assert!(summary.lower_bound_seconds.unwrap() > 0.0);
    summary.wall_seconds = 1.0;
    let data = ReportData {
        workflow: spec.name.clone(),
        description: spec.description.clone(),
        status: "completed".into(),
        summary,
        capacity_plan: Some(plan()),
        series: outputs.collector().series(),
    };
    let data = outputs.finish(data).unwrap();
    assert_eq!(data.summary.records_written, 4);
    let dataset = std::fs::read_to_string(dir.join("dataset.jsonl")).unwrap();
    let order: Vec<u64> = dataset
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(order, [0, 1, 2, 3]);
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let streams: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["stream"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(streams, ["scheduler", "request", "request"]);
    for f in [
        "capacity-plan.json",
        "summary.json",
        "report-data.json",
        "report.html",
    ] {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["records_written"], 4);
    let _ = std::fs::remove_dir_all(&dir);
}
