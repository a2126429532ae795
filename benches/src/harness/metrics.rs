//! Derived metrics of one engine iteration, computed from the captured events (joined by
//! `CorrelatedRuntimeView`) and the engine's `RunResult`, plus the facts the gates check.
//!
//! Formulas (all times in seconds on the run's monotonic clock unless the name ends in `_ms`):
//! * `ready_queue_wait = selected − ready_enqueued`, `task_admission_wait = task_lease_acquired −
//!   selected`, `ready_to_lease_gap = task_lease_acquired − ready_enqueued`, per execution
//!   (the view's 13-field timelines); reported as p50 / p95 / max in ms.
//! * `ready_idle_gap`: replaying the scheduler stream in sequence order with `queued` (+1
//!   `ready_enqueued`, −1 `task_lease_acquired`) and `active` (+1 `task_lease_acquired`, −1
//!   `task_lease_released`), an idle interval starts when `queued > 0 ∧ active < submission
//!   capacity` and ends at the next `task_lease_acquired` (or when the condition ends). An
//!   `admission_blocked` / `group_capped` event (the scheduler looked and found nothing
//!   admissible: a policy or resource decision, not a dispatch delay) suspends the interval
//!   until the next enqueue/acquire/release; that time is reported as `policy_blocked_ms_total`.
//! * `active_capacity_integral = ∫ active / submission capacity dt` over the run, and
//!   `active_capacity_mean` = that / wall. Per endpoint, `request_utilization.<endpoint> =
//!   ∫ in-flight model requests dt / (parallel × wall)`.
//! * `root_over_admission_debt`: after the first downstream `dependency_ready`, every root
//!   `task_lease_acquired` that leaves the root group holding more than its strict share
//!   `ceil(C / G)` (C = submission capacity, G = groups with queued or active work, at least 2 —
//!   the policy's "one imagined equal peer") counts 1; `root_over_admission_peak_excess` is the
//!   largest `active_root − share` at such an acquisition.
//! * `time_to_first_record` / `time_to_50pct_records` from `row_group_checkpointed`;
//!   `row_completion_p95` over rows of the latest `task_completed` of the row's tasks.

use super::bound::{lower_bound, LowerBound};
use super::metric_values::{DistMs, MetricValues};
use super::run::EngineRun;
use super::stats::percentile;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use weir_contracts::{
    Fnv64, ProviderModelKey, RequestAdmissionEvent, RequestEventKind, SchedulerAdmissionEvent,
    SchedulerEventKind, SchedulerEventPayload, TaskId,
};
use weir_runtime::workflow::Strategy;
use weir_telemetry::CorrelatedRuntimeView;

/// Heavy-root facts for the gates.
#[derive(Debug, Clone, Serialize)]
pub struct HeavyRootFacts {
    /// First downstream `dependency_ready` (s).
    pub first_downstream_ready: Option<f64>,
    /// First downstream `task_lease_acquired` (s).
    pub first_downstream_dispatch: Option<f64>,
    /// Last root `task_completed` (s).
    pub root_last_completed: Option<f64>,
    /// Root acquisitions above the strict share after the first downstream-ready.
    pub debt_count: u64,
    /// Largest excess above the strict share at such an acquisition.
    pub peak_excess: i64,
}

/// What the gates need besides the metric values.
#[derive(Debug, Clone, Serialize)]
pub struct RunFacts {
    /// Leak findings (empty when clean).
    pub leaks: Vec<String>,
    /// Hidden waiters per the view.
    pub hidden_waiters_view: u64,
    /// Hidden waiters (workers running before their task lease; 0 by construction).
    pub hidden_waiters_engine: u64,
    /// `request_lease_acquired` events.
    pub request_leases: u64,
    /// `model_request_started` events.
    pub outbound_attempts: u64,
    /// The executor's attempt counter.
    pub executor_attempts: u64,
    /// Non-monotone timelines (first few described).
    pub monotone_violations: Vec<String>,
    /// Count of non-monotone timelines.
    pub monotone_violation_count: u64,
    /// Completed model executions missing one of the 13 timeline fields.
    pub incomplete_timelines: u64,
    /// First few incomplete timelines (missing field names).
    pub incomplete_examples: Vec<String>,
    /// Heavy-root facts, when the scenario names a root and a downstream column.
    pub heavy_root: Option<HeavyRootFacts>,
    /// `(cooling column end, free column end)` in seconds.
    pub cooldown_ends: Option<(f64, f64)>,
    /// Records written.
    pub records_written: u64,
    /// Rows dropped.
    pub rows_dropped: u64,
    /// Records requested.
    pub records_requested: u64,
    /// Stop reason, if the run stopped early.
    pub stopped: Option<String>,
}

/// Metrics, bound and facts of one iteration.
#[derive(Debug, Clone, Serialize)]
pub struct IterationMetrics {
    /// The derived metrics (see the module docs); the artifact writes them as a flat map.
    pub values: MetricValues,
    /// The lower bound.
    pub lower_bound: LowerBound,
    /// Gate inputs.
    pub facts: RunFacts,
    /// Output hashes.
    pub output_hashes: BTreeMap<String, String>,
}

/// Options of the metric computation.
pub struct MetricOptions<'a> {
    /// Submission capacity of the run.
    pub submission_capacity: u32,
    /// `(root, downstream)` columns.
    pub heavy_root: Option<&'a (String, String)>,
    /// `(cooling, free)` columns.
    pub cooldown: Option<&'a (String, String)>,
}

fn column_of(e: &SchedulerAdmissionEvent) -> Option<&str> {
    e.captured_correlation
        .as_ref()
        .and_then(|c| c.task_column.as_deref())
}

fn group_of(e: &SchedulerAdmissionEvent) -> Option<&str> {
    e.captured_correlation.as_ref().and_then(|c| {
        c.scheduling_group_identity_hash
            .as_deref()
            .or(c.task_column.as_deref())
    })
}

fn ms(x: f64) -> f64 {
    x * 1000.0
}

/// p50 / p95 / max in ms of samples in seconds (`None` when there are none).
fn dist(samples_s: &[f64]) -> Option<DistMs> {
    if samples_s.is_empty() {
        return None;
    }
    let v: Vec<f64> = samples_s.iter().map(|x| ms(*x)).collect();
    Some(DistMs {
        p50: percentile(&v, 0.5),
        p95: percentile(&v, 0.95),
        max: v.iter().copied().fold(f64::MIN, f64::max),
    })
}

/// Records written so far, as a `row_group_checkpointed` event says (else `None`).
fn records_written_at(e: &SchedulerAdmissionEvent) -> Option<u64> {
    match &e.payload {
        SchedulerEventPayload::RowGroupCheckpointed(c) => Some(c.records_written),
        _ => None,
    }
}

/// Hashes of the written records: all records, and each column, FNV-1a 64 over
/// `global index NUL canonical JSON` (BTreeMap keys are sorted, so the JSON is canonical).
pub fn output_hashes(rows: &[(u64, weir_runtime::generators::Record)]) -> BTreeMap<String, String> {
    let mut all = Fnv64::new();
    let mut per: BTreeMap<String, Fnv64> = BTreeMap::new();
    for (i, record) in rows {
        let idx = i.to_string();
        all.write(idx.as_bytes());
        all.write(&[0]);
        all.write(serde_json::to_string(record).unwrap_or_default().as_bytes());
        all.write(&[0]);
        for (k, v) in record {
            let h = per.entry(k.clone()).or_default();
            h.write(idx.as_bytes());
            h.write(&[0]);
            h.write(v.to_string().as_bytes());
            h.write(&[0]);
        }
    }
    let mut out = BTreeMap::new();
    out.insert("records".to_owned(), format!("{:016x}", all.finish()));
    out.insert("record_count".to_owned(), rows.len().to_string());
    for (k, h) in per {
        out.insert(format!("column.{k}"), format!("{:016x}", h.finish()));
    }
    out
}

/// Computes everything for one iteration.
pub fn compute(run: &EngineRun, opts: &MetricOptions<'_>) -> IterationMetrics {
    let mut values = MetricValues::default();
    let view = &run.view;
    let result = &run.result;
    let sched = view.scheduler_events();
    let req = view.request_events();
    let end_time = sched
        .iter()
        .map(|e| e.captured_at_monotonic)
        .chain(req.iter().map(|e| e.captured_at_monotonic))
        .fold(0.0, f64::max);
    let wall = run.wall_seconds;
    values.wall_seconds = wall;

    let checks = execution_timelines(view, &mut values);

    request_overheads(view, &mut values);

    let Replay {
        first_down_ready,
        debt_count,
        peak_excess,
    } = scheduler_replay(run, opts, end_time, &mut values);

    let lb = lower_bound(run);
    request_utilization(req, &lb, end_time, &mut values);

    // ---- lower bound ----
    values.lower_bound_seconds = lb.bound_seconds;
    values.planned_lower_bound_seconds = lb.planned_bound_seconds;
    values.critical_path_seconds = lb.critical_path_seconds;
    values.wall_over_bound = (lb.bound_seconds > 0.0).then(|| wall / lb.bound_seconds);
    values.wall_over_planned_bound =
        (lb.planned_bound_seconds > 0.0).then(|| wall / lb.planned_bound_seconds);

    // ---- heavy root ----
    let heavy_root = opts.heavy_root.map(|(root, down)| {
        let first = |kind: SchedulerEventKind, col: &str| {
            sched
                .iter()
                .filter(|e| e.event_kind() == kind && column_of(e) == Some(col))
                .map(|e| e.captured_at_monotonic)
                .reduce(f64::min)
        };
        let root_last_completed = sched
            .iter()
            .filter(|e| {
                e.event_kind() == SchedulerEventKind::TaskCompleted
                    && column_of(e) == Some(root.as_str())
            })
            .map(|e| e.captured_at_monotonic)
            .reduce(f64::max);
        HeavyRootFacts {
            first_downstream_ready: first_down_ready,
            first_downstream_dispatch: first(SchedulerEventKind::TaskLeaseAcquired, down),
            root_last_completed,
            debt_count,
            peak_excess: if peak_excess == i64::MIN {
                0
            } else {
                peak_excess
            },
        }
    });
    if let Some(h) = &heavy_root {
        values.first_downstream_ready_seconds = h.first_downstream_ready;
        values.first_downstream_dispatch_seconds = h.first_downstream_dispatch;
        if let (Some(t), Some(r)) = (h.first_downstream_dispatch, h.first_downstream_ready) {
            values.initial_idle_gap_ms = Some(ms(t - r));
        }
        values.root_last_completed_seconds = h.root_last_completed;
        values.root_over_admission_debt = Some(h.debt_count as f64);
        values.root_over_admission_peak_excess = Some(h.peak_excess as f64);
        // Downstream ready → lease gaps only.
        let down = &opts.heavy_root.map(|(_, d)| d.clone()).unwrap_or_default();
        let down_ids: std::collections::HashSet<&TaskId> = sched
            .iter()
            .filter(|e| column_of(e) == Some(down.as_str()))
            .filter_map(|e| e.task_id.as_ref())
            .collect();
        let gaps: Vec<f64> = view
            .executions()
            .iter()
            .filter(|x| x.task_id.as_ref().is_some_and(|t| down_ids.contains(t)))
            .filter_map(|x| Some(x.task_lease_acquired_at? - x.ready_enqueued_at?))
            .collect();
        values.downstream_ready_to_dispatch = dist(&gaps);
    }
    let cooldown_ends = opts.cooldown.map(|(cooling, free)| {
        let last = |col: &str| {
            sched
                .iter()
                .filter(|e| {
                    e.event_kind() == SchedulerEventKind::TaskCompleted && column_of(e) == Some(col)
                })
                .map(|e| e.captured_at_monotonic)
                .fold(0.0, f64::max)
        };
        (last(cooling), last(free))
    });
    if let Some((a, b)) = cooldown_ends {
        values.cooling_column_end_seconds = Some(a);
        values.free_column_end_seconds = Some(b);
    }

    // ---- records ----
    let total = result.report.records_written;
    let (first_record, half) = record_times(sched, total);
    values.time_to_first_record_seconds = first_record;
    values.time_to_50pct_records_seconds = half;
    let row_done = row_completion_times(run);
    values.row_completion_p95_seconds = (!row_done.is_empty()).then(|| percentile(&row_done, 0.95));
    values.records_written = total;
    values.rows_dropped = result.report.rows_dropped;

    // ---- counts and costs ----
    let leases = view.request_lease_count() as u64;
    let outbound = view.outbound_attempts() as u64;
    values.request_lease_count = leases;
    values.outbound_attempts = outbound;
    values.hidden_scheduler_resource_waiters = view.hidden_scheduler_resource_waiters() as u64;
    values.events_scheduler = sched.len() as u64;
    values.events_request = req.len() as u64;
    values.task_executions = view.executions().len() as u64;
    if let Some(cpu) = run.cpu_seconds {
        values.cpu_seconds = Some(cpu);
        let events = (sched.len() + req.len()).max(1) as f64;
        values.cpu_us_per_event = Some(cpu * 1e6 / events);
    }
    values.peak_rss_mib = run.peak_rss_mib;

    IterationMetrics {
        values,
        lower_bound: lb,
        facts: RunFacts {
            leaks: leaks(run),
            hidden_waiters_view: view.hidden_scheduler_resource_waiters() as u64,
            hidden_waiters_engine: result.hidden_scheduler_resource_waiters,
            request_leases: leases,
            outbound_attempts: outbound,
            executor_attempts: result.requests.attempts,
            monotone_violations: checks.violations,
            monotone_violation_count: checks.violation_count,
            incomplete_timelines: checks.incomplete,
            incomplete_examples: checks.incomplete_examples,
            heavy_root,
            cooldown_ends,
            records_written: total,
            rows_dropped: result.report.rows_dropped,
            records_requested: run.built.workflow.records,
            stopped: result.report.stopped.as_ref().map(|s| format!("{s:?}")),
        },
        output_hashes: output_hashes(&run.rows),
    }
}

/// Monotonicity and completeness of the view's timelines (gate inputs).
struct TimelineChecks {
    violations: Vec<String>,
    violation_count: u64,
    incomplete: u64,
    incomplete_examples: Vec<String>,
}

/// Per-execution waits (the view's timelines) into `values`; checks every timeline.
fn execution_timelines(view: &CorrelatedRuntimeView, values: &mut MetricValues) -> TimelineChecks {
    let (mut rq, mut adm, mut r2l) = (Vec::new(), Vec::new(), Vec::new());
    let mut incomplete = 0u64;
    let mut incomplete_examples = Vec::new();
    let mut violations = Vec::new();
    let mut violation_count = 0u64;
    for x in view.executions() {
        if let (Some(a), Some(b)) = (x.ready_enqueued_at, x.selected_at) {
            rq.push(b - a);
        }
        if let (Some(a), Some(b)) = (x.selected_at, x.task_lease_acquired_at) {
            adm.push(b - a);
        }
        if let (Some(a), Some(b)) = (x.ready_enqueued_at, x.task_lease_acquired_at) {
            r2l.push(b - a);
        }
        let chain = [
            ("dependency_ready", x.dependency_ready_at),
            ("ready_enqueued", x.ready_enqueued_at),
            ("selected", x.selected_at),
            ("task_lease_acquired", x.task_lease_acquired_at),
            ("worker_spawned", x.worker_spawned_at),
            ("task_completed", x.task_completed_at),
            ("task_lease_released", x.task_lease_released_at),
        ];
        if let Some(bad) = first_inversion(&chain) {
            violation_count += 1;
            if violations.len() < 5 {
                violations.push(format!("execution {}: {bad}", x.task_execution_id));
            }
        }
        for a in &x.attempts {
            let chain = [
                ("request_wait_started", a.request_wait_started_at),
                ("request_wait_completed", a.request_wait_completed_at),
                ("request_lease_acquired", a.request_lease_acquired_at),
                ("model_request_started", a.model_request_started_at),
                ("model_request_completed", a.model_request_completed_at),
                ("request_lease_released", a.request_lease_released_at),
            ];
            if let Some(bad) = first_inversion(&chain) {
                violation_count += 1;
                if violations.len() < 5 {
                    violations.push(format!("attempt {}: {bad}", a.request_attempt_id));
                }
            }
        }
        let completed_model_call = x.task_completed_at.is_some()
            && x.attempts
                .iter()
                .any(|a| a.model_request_completed_at.is_some());
        if completed_model_call {
            let missing = x.missing_fields();
            if !missing.is_empty() {
                incomplete += 1;
                if incomplete_examples.len() < 3 {
                    incomplete_examples.push(format!(
                        "execution {}: missing {}",
                        x.task_execution_id,
                        missing.join(", ")
                    ));
                }
            }
        }
    }
    values.ready_queue_wait = dist(&rq);
    values.task_admission_wait = dist(&adm);
    values.ready_to_lease_gap = dist(&r2l);
    TimelineChecks {
        violations,
        violation_count,
        incomplete,
        incomplete_examples,
    }
}

/// Request-side waits and overheads per attempt into `values`.
fn request_overheads(view: &CorrelatedRuntimeView, values: &mut MetricValues) {
    let (mut wait, mut acquire, mut release) = (Vec::new(), Vec::new(), Vec::new());
    for x in view.executions() {
        for a in &x.attempts {
            if let (Some(s), Some(c)) = (a.request_wait_started_at, a.request_wait_completed_at) {
                wait.push(c - s);
            }
            if let (Some(c), Some(l)) = (
                a.request_wait_completed_at.or(a.request_wait_started_at),
                a.request_lease_acquired_at,
            ) {
                acquire.push(l - c);
            }
            if let (Some(c), Some(r)) = (a.model_request_completed_at, a.request_lease_released_at)
            {
                release.push(r - c);
            }
        }
    }
    values.request_wait = dist(&wait);
    values.request_acquire_overhead = dist(&acquire);
    values.request_release_overhead = dist(&release);
}

/// What the scheduler replay finds besides metric values: the heavy-root debt.
struct Replay {
    first_down_ready: Option<f64>,
    debt_count: u64,
    peak_excess: i64,
}

/// Replays the scheduler stream in sequence order: idle gaps, policy-blocked time, the capacity
/// integral (into `values`) and the heavy-root debt.
fn scheduler_replay(
    run: &EngineRun,
    opts: &MetricOptions<'_>,
    end_time: f64,
    values: &mut MetricValues,
) -> Replay {
    let sched = run.view.scheduler_events();
    let cap = f64::from(opts.submission_capacity.max(1));
    let stop_at = run.stopped_at_seconds.unwrap_or(f64::INFINITY);
    let mut queued_by_group: HashMap<&str, i64> = HashMap::new();
    let mut active_by_group: HashMap<&str, i64> = HashMap::new();
    let mut active_by_column: HashMap<&str, i64> = HashMap::new();
    let (mut queued, mut active) = (0i64, 0i64);
    let mut blocked = false;
    let mut gap_start: Option<f64> = None;
    let mut gaps: Vec<f64> = Vec::new();
    let mut blocked_since: Option<f64> = None;
    let mut blocked_total = 0.0;
    let mut integral = 0.0;
    let mut last_t: Option<f64> = None;
    let first_down_ready = opts.heavy_root.and_then(|(_, down)| {
        sched
            .iter()
            .filter(|e| {
                e.event_kind() == SchedulerEventKind::DependencyReady
                    && column_of(e) == Some(down.as_str())
            })
            .map(|e| e.captured_at_monotonic)
            .reduce(f64::min)
    });
    let (mut debt_count, mut peak_excess) = (0u64, i64::MIN);
    for e in sched {
        let t = e.captured_at_monotonic;
        if let Some(prev) = last_t {
            integral += active.max(0) as f64 / cap * (t - prev).max(0.0);
        }
        last_t = Some(t);
        let g = group_of(e).unwrap_or("");
        match e.event_kind() {
            SchedulerEventKind::ReadyEnqueued => {
                queued += 1;
                *queued_by_group.entry(g).or_default() += 1;
                blocked = false;
            }
            SchedulerEventKind::TaskLeaseAcquired => {
                queued -= 1;
                active += 1;
                *queued_by_group.entry(g).or_default() -= 1;
                *active_by_group.entry(g).or_default() += 1;
                let col = column_of(e).unwrap_or("");
                *active_by_column.entry(col).or_default() += 1;
                blocked = false;
                if let (Some((root, _)), Some(t_dr)) = (opts.heavy_root, first_down_ready) {
                    if col == root && t >= t_dr {
                        let busy: std::collections::HashSet<&str> = queued_by_group
                            .iter()
                            .filter(|(_, q)| **q > 0)
                            .chain(active_by_group.iter().filter(|(_, a)| **a > 0))
                            .map(|(k, _)| *k)
                            .collect();
                        let demand = (busy.len() as i64).max(2);
                        let share = (i64::from(opts.submission_capacity) + demand - 1) / demand;
                        let excess = active_by_column.get(col).copied().unwrap_or(0) - share;
                        peak_excess = peak_excess.max(excess);
                        if excess > 0 {
                            debt_count += 1;
                        }
                    }
                }
                if let Some(s) = gap_start.take() {
                    gaps.push(t - s);
                }
            }
            SchedulerEventKind::TaskLeaseReleased => {
                active -= 1;
                *active_by_group.entry(g).or_default() -= 1;
                *active_by_column
                    .entry(column_of(e).unwrap_or(""))
                    .or_default() -= 1;
                blocked = false;
            }
            SchedulerEventKind::AdmissionBlocked | SchedulerEventKind::GroupCapped => {
                blocked = true;
            }
            _ => {}
        }
        if blocked && blocked_since.is_none() {
            blocked_since = Some(t);
        } else if !blocked {
            if let Some(s) = blocked_since.take() {
                blocked_total += t - s;
            }
        }
        let eligible = queued > 0 && (active as f64) < cap && !blocked && t < stop_at;
        match (eligible, gap_start) {
            (true, None) => gap_start = Some(t),
            (false, Some(s)) => {
                gaps.push(t - s);
                gap_start = None;
            }
            _ => {}
        }
    }
    values.ready_idle_gap_ms_max = ms(gaps.iter().copied().fold(0.0, f64::max));
    values.ready_idle_gap_ms_total = ms(gaps.iter().sum());
    values.policy_blocked_ms_total = ms(blocked_total);
    values.active_capacity_integral = integral;
    values.active_capacity_mean = (end_time > 0.0).then(|| integral / end_time);
    Replay {
        first_down_ready,
        debt_count,
        peak_excess,
    }
}

/// Per endpoint: time-integral of in-flight model requests over `parallel × span`.
fn request_utilization(
    req: &[RequestAdmissionEvent],
    lb: &LowerBound,
    end_time: f64,
    values: &mut MetricValues,
) {
    let mut inflight: HashMap<ProviderModelKey, (i64, f64, f64)> = HashMap::new();
    for e in req {
        let Some(key) = &e.request_resource_key else {
            continue;
        };
        let delta = match e.event_kind() {
            RequestEventKind::ModelRequestStarted => 1,
            RequestEventKind::ModelRequestCompleted => -1,
            _ => continue,
        };
        let slot =
            inflight
                .entry(key.provider_model())
                .or_insert((0, e.captured_at_monotonic, 0.0));
        slot.2 += slot.0.max(0) as f64 * (e.captured_at_monotonic - slot.1).max(0.0);
        slot.0 += delta;
        slot.1 = e.captured_at_monotonic;
    }
    for (key, (_, _, busy)) in &inflight {
        let name = format!("{}/{}", key.provider_name, key.model_id);
        if let Some(b) = lb.endpoints.get(&name) {
            if end_time > 0.0 {
                let u = busy / (f64::from(b.parallel) * end_time);
                values.request_utilization.insert(name, u);
            }
        }
    }
}

/// When the first record was written, and when half of `total` were.
fn record_times(sched: &[SchedulerAdmissionEvent], total: u64) -> (Option<f64>, Option<f64>) {
    let mut first_record = None;
    let mut half = None;
    for e in sched {
        let Some(written) = records_written_at(e) else {
            continue;
        };
        if written > 0 && first_record.is_none() {
            first_record = Some(e.captured_at_monotonic);
        }
        if total > 0 && written * 2 >= total && half.is_none() {
            half = Some(e.captured_at_monotonic);
        }
    }
    (first_record, half)
}

/// Task-stage state sampled at `points` evenly spaced times: `[t, active task leases, queued]`.
pub fn utilization_timeline(
    view: &weir_telemetry::CorrelatedRuntimeView,
    points: usize,
) -> Vec<[f64; 3]> {
    let events = view.scheduler_events();
    let end = events
        .iter()
        .map(|e| e.captured_at_monotonic)
        .fold(0.0, f64::max);
    if events.is_empty() || end <= 0.0 || points == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(points);
    let (mut active, mut queued) = (0i64, 0i64);
    let mut next = 0usize;
    for k in 1..=points {
        let t = end * k as f64 / points as f64;
        while next < events.len() && events[next].captured_at_monotonic <= t {
            match events[next].event_kind() {
                SchedulerEventKind::ReadyEnqueued => queued += 1,
                SchedulerEventKind::TaskLeaseAcquired => {
                    queued -= 1;
                    active += 1;
                }
                SchedulerEventKind::TaskLeaseReleased => active -= 1,
                _ => {}
            }
            next += 1;
        }
        out.push([t, active as f64, queued as f64]);
    }
    out
}

/// `[t, records written so far]` at every row-group checkpoint.
pub fn completion_timeline(view: &weir_telemetry::CorrelatedRuntimeView) -> Vec<[f64; 2]> {
    view.scheduler_events()
        .iter()
        .filter_map(|e| Some([e.captured_at_monotonic, records_written_at(e)? as f64]))
        .collect()
}

/// The first adjacent pair (over present values) that goes backwards.
fn first_inversion(chain: &[(&str, Option<f64>)]) -> Option<String> {
    let mut prev: Option<(&str, f64)> = None;
    for (name, v) in chain {
        let Some(v) = v else { continue };
        if let Some((pn, pv)) = prev {
            if *v < pv {
                return Some(format!("{name} ({v:.6}) before {pn} ({pv:.6})"));
            }
        }
        prev = Some((name, *v));
    }
    None
}

/// Every leak the final snapshots show.
fn leaks(run: &EngineRun) -> Vec<String> {
    let r = &run.result;
    let t = &r.report.final_task_snapshot;
    let mut out = Vec::new();
    if t.active_lease_count != 0 {
        out.push(format!("{} task leases active", t.active_lease_count));
    }
    for (k, v) in &t.leased_resources {
        if *v != 0 {
            out.push(format!("task resource {k} still leased: {v}"));
        }
    }
    for (g, v) in &t.running_counts_by_group {
        if *v != 0 {
            out.push(format!("group {g:?} still running {v}"));
        }
    }
    for ((g, k), v) in &t.policy_debt_by_group_resource {
        if *v != 0 {
            out.push(format!("policy debt left for {g:?}/{k}: {v}"));
        }
    }
    for (reason, v) in &t.release_diagnostics {
        if *v != 0 {
            out.push(format!("task release diagnostic {reason:?}: {v}"));
        }
    }
    let (l, w, f) = r.request_leftovers();
    if (l, w, f) != (0, 0, 0) {
        out.push(format!(
            "request leftovers: {l} leases, {w} waiters, {f} in flight"
        ));
    }
    for (reason, v) in &r.request_release_diagnostics {
        if *v != 0 {
            out.push(format!("request release diagnostic {reason:?}: {v}"));
        }
    }
    out
}

/// Completion time of every row: the latest `task_completed` of its cell, batch or
/// from-scratch tasks.
fn row_completion_times(run: &EngineRun) -> Vec<f64> {
    let mut done: HashMap<&str, f64> = HashMap::new();
    for e in run.view.scheduler_events() {
        if e.event_kind() == SchedulerEventKind::TaskCompleted {
            if let Some(id) = &e.task_id {
                let slot = done.entry(id.as_str()).or_insert(0.0);
                *slot = slot.max(e.captured_at_monotonic);
            }
        }
    }
    let wf = &run.built.workflow;
    let first = run.result.report.first_row_group;
    let mut out = Vec::new();
    for rg in first..wf.row_group_count() {
        let group_ids: Vec<(usize, Vec<String>)> = wf
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.strategy == Strategy::FullColumn)
            .map(|(i, c)| {
                (
                    i,
                    ["batch", "from_scratch"]
                        .iter()
                        .map(|tt| TaskId::stable(&c.name, rg, None, tt).as_str().to_owned())
                        .collect(),
                )
            })
            .collect();
        let group_done = group_ids
            .iter()
            .flat_map(|(_, ids)| ids.iter().filter_map(|id| done.get(id.as_str()).copied()))
            .fold(None, |acc: Option<f64>, t| {
                Some(acc.map_or(t, |a| a.max(t)))
            });
        for i in 0..wf.row_group_size(rg) {
            let mut latest = group_done;
            for c in wf.columns.iter().filter(|c| c.strategy == Strategy::Cell) {
                let id = TaskId::stable(&c.name, rg, Some(i), "cell");
                if let Some(t) = done.get(id.as_str()) {
                    latest = Some(latest.map_or(*t, |a: f64| a.max(*t)));
                }
            }
            if let Some(t) = latest {
                out.push(t);
            }
        }
    }
    out
}
