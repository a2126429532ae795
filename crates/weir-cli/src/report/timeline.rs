//! `TimelineCollector`: an `EventSink` of both streams that keeps bounded time series and counters.
//!
//! It turns events into what the report draws and the summary counts, without keeping events:
//! records completed (from `row_group_checkpointed`), row groups in flight, per request resource
//! in-flight / adaptive limit / effective max (from the pressure snapshots on request events) and
//! 429 markers, task and request outcome counts, and the layer attribution of task time. Series
//! are [`BucketedSeries`] (≤ `max_points` each); per-task state lives only while a task is live.
//!
//! What it reads (typed payloads, see `weir_contracts::payload`):
//! * `row_group_checkpointed`: `surviving_rows`, `dropped_rows`, `row_group`;
//! * `row_group_admitted`: `row_group`, `in_flight` (the runtime's figure);
//! * the row group of a task: `captured_correlation.row_group`;
//! * request events: `pressure_snapshot` (`in_flight_count`, `current_limit`, `effective_max`,
//!   `cooldown_remaining_seconds`), else a lease counter;
//! * `model_request_completed`: `reason_or_outcome` = a `RequestReleaseOutcomeKind` name;
//! * `task_lease_released`: `outcome` (`success` counts a completed task in coarse mode).

use super::layer_timeline::{LayerTimeline, LAYERS};
use super::series::{Aggregate, BucketedSeries};
use crate::summary::{LayerAttribution, RequestCounts, ResourceLayerSeconds, TaskCounts};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use weir_contracts::{
    RequestAdmissionEvent, RequestEventKind as R, SchedulerAdmissionEvent, SchedulerEventKind as S,
    SchedulerEventPayload as SP, TaskTerminalOutcome,
};
use weir_runtime::scheduler::RunProgress;
use weir_telemetry::EventSink;

/// Default bound on points per series.
pub const DEFAULT_MAX_POINTS: usize = 2000;

/// Time series of one request resource (provider/model/domain).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSeries {
    /// Provider name.
    pub provider: String,
    /// Model endpoint id.
    pub model_id: String,
    /// Request domain (`chat`, `embedding`, ...).
    pub domain: String,
    /// Static cap of the endpoint, when known (filled from the workflow, not from events).
    pub static_cap: Option<u32>,
    /// Requests in flight over time (bucket maxima).
    pub in_flight: Vec<(f64, f64)>,
    /// Adaptive limit over time (bucket maxima, so sawtooth peaks survive downsampling).
    pub limit: Vec<(f64, f64)>,
    /// Effective max (min of static cap and clamp) over time.
    pub effective_max: Vec<(f64, f64)>,
    /// 429s over time, as (t, count in bucket).
    pub rate_limited: Vec<(f64, f64)>,
    /// Provider calls started.
    pub attempts: u64,
    /// Calls that succeeded.
    pub succeeded: u64,
    /// 429s in total.
    pub rate_limited_total: u64,
    /// Most requests in flight at once.
    pub max_in_flight: u32,
    /// Last adaptive limit seen.
    pub final_limit: Option<u32>,
    /// Latency of successful provider calls (started → completed), when there were any.
    #[serde(default)]
    pub latency_ms: Option<LatencyPercentiles>,
}

/// Latency percentiles of a resource's successful calls, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPercentiles {
    /// Successful calls measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest call.
    pub max: f64,
    /// Mean (the lower bound's static-cap term: calls × mean / cap).
    #[serde(default)]
    pub mean: f64,
}

impl ModelSeries {
    /// `provider/model_id/domain`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.provider, self.model_id, self.domain)
    }
}

/// Every time series of a run (the `series` part of `ReportData`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeSeries {
    /// Latest event time seen, in seconds since the run's clock origin.
    pub duration_seconds: f64,
    /// Cumulative records completed over time.
    pub records_completed: Vec<(f64, f64)>,
    /// Row groups in flight over time (bucket maxima).
    pub row_groups_in_flight: Vec<(f64, f64)>,
    /// One entry per request resource, sorted by label.
    pub models: Vec<ModelSeries>,
    /// Average tasks in each layer over time: `(bucket start, [tasks per layer])`, layers in
    /// `LayerAttribution::entries` order.
    #[serde(default)]
    pub layers_over_time: Vec<(f64, [f64; LAYERS])>,
}

/// The counters a collector derived from events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectedCounts {
    /// Records reported by `row_group_checkpointed`.
    pub records_completed: u64,
    /// Rows dropped, reported by `row_group_checkpointed`.
    pub rows_dropped: u64,
    /// Task outcomes.
    pub tasks: TaskCounts,
    /// Request outcomes.
    pub requests: RequestCounts,
    /// Layer attribution (task-seconds).
    pub layers: LayerAttribution,
    /// Request-layer task-seconds per resource label (`provider/model/domain`).
    pub layers_by_resource: BTreeMap<String, ResourceLayerSeconds>,
    /// Most row groups in flight at once.
    pub max_row_groups_in_flight: u32,
    /// Failed cells by (column, cause label), from `non_retryable_dropped` events.
    pub failed_cells: BTreeMap<(String, String), u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    ReadyQueue,
    TaskAdmission,
    RequestAdmission,
    Cooldown,
    Provider,
    Worker,
    RetryBackoff,
}

impl Layer {
    /// Position in `LayerAttribution::entries` (0 is dependency wait).
    fn index(self) -> usize {
        match self {
            Layer::ReadyQueue => 1,
            Layer::TaskAdmission => 2,
            Layer::RequestAdmission => 3,
            Layer::Cooldown => 4,
            Layer::Provider => 5,
            Layer::Worker => 6,
            Layer::RetryBackoff => 7,
        }
    }
}

#[derive(Debug)]
struct LiveTask {
    layer: Layer,
    since: f64,
    executions: Vec<u64>,
    /// The request resource of the task's current request layer.
    resource: Option<String>,
}

#[derive(Debug)]
struct ResourceState {
    series: ModelSeries,
    in_flight_now: i64,
    in_flight: BucketedSeries,
    limit: BucketedSeries,
    effective_max: BucketedSeries,
    rate_limited: BucketedSeries,
    /// Successful call latencies in microseconds (1 µs .. 1 h, 3 significant digits).
    latency_us: Option<Histogram<u64>>,
    /// Start time of each call in flight, by request attempt id.
    started: HashMap<u64, f64>,
}

#[derive(Debug)]
struct State {
    max_points: usize,
    last_t: f64,
    counts: CollectedCounts,
    records: BucketedSeries,
    row_groups_now: i64,
    row_groups: BucketedSeries,
    row_group_admitted_at: HashMap<u64, f64>,
    resources: BTreeMap<(String, String, String), ResourceState>,
    layer_timeline: LayerTimeline,
    live: HashMap<String, LiveTask>,
    execution_task: HashMap<u64, String>,
}

/// How much of the scheduler stream the collector follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CollectorDetail {
    /// Every task transition (layer attribution of task time).
    #[default]
    Full,
    /// Row groups, task outcomes and every request event, but no per-task transitions: the
    /// runtime then builds no per-task event at all, which is most of the CLI's per-record cost
    /// on workflows without model columns (where there is no admission layer to attribute).
    Coarse,
}

/// Builds the report's time series and the summary's counters from both event streams.
#[derive(Debug)]
pub struct TimelineCollector {
    state: Mutex<State>,
    detail: CollectorDetail,
    /// `task_completed` events, counted without the state lock (the most frequent event).
    completed: std::sync::atomic::AtomicU64,
    /// At coarse detail, the run's own live counters give the completed tasks (see
    /// [`use_progress`](Self::use_progress)): no per-task event is built for the report.
    progress: std::sync::OnceLock<Arc<RunProgress>>,
}

impl Default for TimelineCollector {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_POINTS)
    }
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl TimelineCollector {
    /// A collector keeping at most `max_points` points per series.
    pub fn new(max_points: usize) -> Self {
        Self::with_detail(max_points, CollectorDetail::Full)
    }

    /// A collector following the scheduler stream at `detail`.
    pub fn with_detail(max_points: usize, detail: CollectorDetail) -> Self {
        Self {
            detail,
            completed: std::sync::atomic::AtomicU64::new(0),
            progress: std::sync::OnceLock::new(),
            state: Mutex::new(State {
                max_points,
                last_t: 0.0,
                counts: CollectedCounts::default(),
                records: BucketedSeries::new(Aggregate::Last, max_points),
                row_groups_now: 0,
                row_groups: BucketedSeries::new(Aggregate::Max, max_points),
                row_group_admitted_at: HashMap::new(),
                resources: BTreeMap::new(),
                layer_timeline: LayerTimeline::new(max_points.min(400)),
                live: HashMap::new(),
                execution_task: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The series so far.
    pub fn series(&self) -> TimeSeries {
        let s = self.lock();
        TimeSeries {
            duration_seconds: s.last_t,
            records_completed: s.records.points(),
            row_groups_in_flight: s.row_groups.points(),
            models: s
                .resources
                .values()
                .map(|r| ModelSeries {
                    in_flight: r.in_flight.points(),
                    limit: r.limit.points(),
                    effective_max: r.effective_max.points(),
                    rate_limited: r.rate_limited.points(),
                    latency_ms: r.latency_us.as_ref().filter(|h| !h.is_empty()).map(|h| {
                        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                        LatencyPercentiles {
                            count: h.len(),
                            p50: ms(0.5),
                            p90: ms(0.9),
                            p99: ms(0.99),
                            max: h.max() as f64 / 1000.0,
                            mean: h.mean() / 1000.0,
                        }
                    }),
                    ..r.series.clone()
                })
                .collect(),
            layers_over_time: s.layer_timeline.points(),
        }
    }

    /// Reads completed tasks from the run's live counters (`PreparedRun::progress`) instead
    /// of events; at coarse detail the collector then subscribes to no per-task event at all.
    /// Set once, before the run starts.
    pub fn use_progress(&self, progress: Arc<RunProgress>) {
        let _ = self.progress.set(progress);
    }

    /// The counters so far.
    pub fn counts(&self) -> CollectedCounts {
        let mut c = self.lock().counts.clone();
        c.tasks.completed += match (self.detail, self.progress.get()) {
            (CollectorDetail::Coarse, Some(p)) => p.tasks_completed(),
            _ => self.completed.load(std::sync::atomic::Ordering::Relaxed),
        };
        c
    }

    /// The detail it follows the scheduler stream at.
    pub fn detail(&self) -> CollectorDetail {
        self.detail
    }

    /// Tasks currently tracked for layer attribution (bounded by live tasks).
    pub fn live_tasks(&self) -> usize {
        self.lock().live.len()
    }
}

impl State {
    fn seen(&mut self, t: f64) {
        if t.is_finite() && t > self.last_t {
            self.last_t = t;
        }
    }

    fn add_layer(&mut self, layer: Layer, from: f64, to: f64, resource: Option<&str>) {
        let seconds = (to - from).max(0.0);
        self.layer_timeline.add(layer.index(), from, to);
        let l = &mut self.counts.layers;
        let slot = match layer {
            Layer::ReadyQueue => &mut l.ready_queue_wait,
            Layer::TaskAdmission => &mut l.task_admission_wait,
            Layer::RequestAdmission => &mut l.request_admission_wait,
            Layer::Cooldown => &mut l.cooldown,
            Layer::Provider => &mut l.provider_execution,
            Layer::Worker => &mut l.worker_code,
            Layer::RetryBackoff => &mut l.retry_backoff,
        };
        *slot += seconds;
        if let Some(label) = resource {
            let by = &mut self.counts.layers_by_resource;
            let slot = match layer {
                Layer::RequestAdmission => Some(
                    &mut by
                        .entry(label.to_owned())
                        .or_default()
                        .request_admission_wait,
                ),
                Layer::Cooldown => Some(&mut by.entry(label.to_owned()).or_default().cooldown),
                Layer::Provider => {
                    Some(&mut by.entry(label.to_owned()).or_default().provider_execution)
                }
                _ => None,
            };
            if let Some(slot) = slot {
                *slot += seconds;
            }
        }
    }

    /// Moves a live task into `layer` at `t` (creating it when `create`), charging the time spent
    /// in its previous layer.
    fn transition(&mut self, task: &str, layer: Layer, t: f64, create_rg: Option<Option<u64>>) {
        if let Some(live) = self.live.get_mut(task) {
            let (prev, since) = (live.layer, live.since);
            let resource = live.resource.take();
            live.layer = layer;
            live.since = t;
            self.add_layer(prev, since, t, resource.as_deref());
            return;
        }
        let Some(row_group) = create_rg else { return };
        if let Some(admitted) =
            row_group.and_then(|rg| self.row_group_admitted_at.get(&rg).copied())
        {
            self.counts.layers.dependency_wait += (t - admitted).max(0.0);
            self.layer_timeline.add(0, admitted, t);
        }
        self.live.insert(
            task.to_string(),
            LiveTask {
                layer,
                since: t,
                executions: Vec::new(),
                resource: None,
            },
        );
    }

    fn close(&mut self, task: &str, t: f64) {
        if let Some(live) = self.live.remove(task) {
            self.add_layer(live.layer, live.since, t, live.resource.as_deref());
            for e in live.executions {
                self.execution_task.remove(&e);
            }
        }
    }

    fn scheduler(&mut self, e: &SchedulerAdmissionEvent) {
        let t = e.captured_at_monotonic;
        self.seen(t);
        let row_group = e.captured_correlation.as_ref().and_then(|c| c.row_group);
        match &e.payload {
            SP::RowGroupAdmitted(a) => {
                // The runtime's own figure (row groups in flight after this admission); a
                // +1/−1 count would hold a finished group until it was *written*, which waits
                // for every earlier group, and so overstate the figure past the cap.
                self.row_groups_now = a.in_flight as i64;
                self.row_group_admitted_at
                    .insert(row_group.unwrap_or(a.row_group), t);
                self.push_row_groups(t);
            }
            SP::RowGroupCheckpointed(c) => {
                self.counts.records_completed += c.surviving_rows;
                self.counts.rows_dropped += c.dropped_rows;
                self.records.push(t, self.counts.records_completed as f64);
                self.row_groups_now = (self.row_groups_now - 1).max(0);
                self.row_group_admitted_at
                    .remove(&row_group.unwrap_or(c.row_group));
                self.push_row_groups(t);
            }
            SP::NonRetryableDropped(_) => {
                self.counts.tasks.failed += 1;
                let column = e
                    .captured_correlation
                    .as_ref()
                    .and_then(|c| c.task_column.clone())
                    .unwrap_or_else(|| "(unknown)".to_string());
                let cause = e
                    .reason_or_result
                    .clone()
                    .unwrap_or_else(|| "unknown".to_string());
                *self.counts.failed_cells.entry((column, cause)).or_default() += 1;
            }
            SP::RetryDeferred(_) => self.counts.tasks.retried += 1,
            _ => {}
        }
        let Some(task) = e.task_id.as_ref().map(|id| id.as_str().to_string()) else {
            return;
        };
        if let Some(exec) = e.task_execution_id.or_else(|| {
            e.captured_correlation
                .as_ref()
                .and_then(|c| c.task_execution_id)
        }) {
            if self.live.contains_key(&task) && !self.execution_task.contains_key(&exec.0) {
                self.execution_task.insert(exec.0, task.clone());
                if let Some(live) = self.live.get_mut(&task) {
                    live.executions.push(exec.0);
                }
            }
        }
        match e.event_kind() {
            S::DependencyReady | S::ReadyEnqueued => {
                self.transition(&task, Layer::ReadyQueue, t, Some(row_group))
            }
            S::Selected => self.transition(&task, Layer::TaskAdmission, t, None),
            S::AdmissionDenied | S::StaleSelection => {
                self.transition(&task, Layer::ReadyQueue, t, None)
            }
            S::TaskLeaseAcquired | S::WorkerSpawned => {
                self.transition(&task, Layer::Worker, t, None)
            }
            S::RetryDeferred => self.transition(&task, Layer::RetryBackoff, t, None),
            S::TaskCompleted | S::NonRetryableDropped | S::Cancelled | S::TaskLeaseReleased => {
                self.close(&task, t)
            }
            _ => {}
        }
    }

    fn push_row_groups(&mut self, t: f64) {
        self.row_groups.push(t, self.row_groups_now as f64);
        self.counts.max_row_groups_in_flight = self
            .counts
            .max_row_groups_in_flight
            .max(to_u32(self.row_groups_now.max(0) as u64));
    }

    fn request(&mut self, e: &RequestAdmissionEvent) {
        let t = e.captured_at_monotonic;
        self.seen(t);
        let snap = e.pressure_snapshot.as_ref();
        let key = e
            .request_resource_key
            .as_ref()
            .map(|k| {
                (
                    k.provider_name.to_string(),
                    k.model_id.to_string(),
                    k.domain.as_str().to_string(),
                )
            })
            .or_else(|| {
                let r = &snap?.resource;
                Some((
                    r.provider_name.to_string(),
                    r.model_id.to_string(),
                    r.domain.as_str().to_string(),
                ))
            });
        let label = key.as_ref().map(|(p, m, d)| format!("{p}/{m}/{d}"));
        if let Some(key) = key {
            self.resource_event(e, key, t);
        }
        match e.event_kind() {
            R::ModelRequestStarted => self.counts.requests.attempts += 1,
            R::RequestRateLimited => self.counts.requests.rate_limited += 1,
            R::ModelRequestCompleted => match e.reason_or_outcome.as_deref() {
                Some("success") => self.counts.requests.succeeded += 1,
                Some("rate_limited") => {} // counted by request_rate_limited
                Some("provider_timeout" | "local_timeout") => self.counts.requests.timeouts += 1,
                Some("local_cancelled") => self.counts.requests.cancelled += 1,
                _ => self.counts.requests.failed += 1,
            },
            _ => {}
        }
        let exec = e.task_execution_id.or_else(|| {
            e.captured_correlation
                .as_ref()
                .and_then(|c| c.task_execution_id)
        });
        let Some(task) = exec.and_then(|x| self.execution_task.get(&x.0).cloned()) else {
            return;
        };
        let cooling = snap.is_some_and(|s| s.cooldown_remaining_seconds > 0.0);
        let layer = match e.event_kind() {
            R::RequestWaitStarted if cooling => Layer::Cooldown,
            R::RequestWaitStarted => Layer::RequestAdmission,
            R::ModelRequestStarted => Layer::Provider,
            R::RequestWaitCompleted
            | R::RequestWaitTimeout
            | R::RequestWaitCancelled
            | R::RequestLeaseAcquired
            | R::ModelRequestCompleted
            | R::RequestLeaseReleased => Layer::Worker,
            _ => return,
        };
        self.transition(&task, layer, t, None);
        if matches!(
            layer,
            Layer::RequestAdmission | Layer::Cooldown | Layer::Provider
        ) {
            if let Some(live) = self.live.get_mut(&task) {
                live.resource = label;
            }
        }
    }

    fn resource_event(&mut self, e: &RequestAdmissionEvent, key: (String, String, String), t: f64) {
        let max_points = self.max_points;
        let r = self
            .resources
            .entry(key.clone())
            .or_insert_with(|| ResourceState {
                series: ModelSeries {
                    provider: key.0.clone(),
                    model_id: key.1.clone(),
                    domain: key.2.clone(),
                    ..ModelSeries::default()
                },
                in_flight_now: 0,
                in_flight: BucketedSeries::new(Aggregate::Max, max_points),
                limit: BucketedSeries::new(Aggregate::Max, max_points),
                effective_max: BucketedSeries::new(Aggregate::Last, max_points),
                rate_limited: BucketedSeries::new(Aggregate::Sum, max_points),
                latency_us: None,
                started: HashMap::new(),
            });
        let snap = e.pressure_snapshot.as_ref();
        let attempt = e.request_attempt_id.map(|a| a.0);
        match e.event_kind() {
            R::ModelRequestStarted => {
                r.series.attempts += 1;
                if let Some(a) = attempt {
                    r.started.insert(a, t);
                }
            }
            R::ModelRequestCompleted => {
                let started = attempt.and_then(|a| r.started.remove(&a));
                if e.reason_or_outcome.as_deref() == Some("success") {
                    r.series.succeeded += 1;
                    if let Some(start) = started {
                        record_latency(&mut r.latency_us, t - start);
                    }
                }
            }
            R::RequestRateLimited => {
                r.series.rate_limited_total += 1;
                r.rate_limited.push(t, 1.0);
            }
            _ => {}
        }
        let in_flight = snap
            .map(|s| i64::from(s.in_flight_count))
            .or(match e.event_kind() {
                R::RequestLeaseAcquired => Some(r.in_flight_now + 1),
                R::RequestLeaseReleased => Some((r.in_flight_now - 1).max(0)),
                _ => None,
            });
        if let Some(n) = in_flight {
            r.in_flight_now = n;
            r.in_flight.push(t, n as f64);
            r.series.max_in_flight = r.series.max_in_flight.max(to_u32(n.max(0) as u64));
        }
        if let Some(s) = snap {
            r.limit.push(t, f64::from(s.current_limit));
            r.series.final_limit = Some(s.current_limit);
            r.effective_max.push(t, f64::from(s.effective_max));
        }
    }
}

/// Adds one call's latency (seconds) to a resource's histogram, created on first use.
fn record_latency(h: &mut Option<Histogram<u64>>, seconds: f64) {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return;
    }
    if h.is_none() {
        // 1 µs .. 1 h at 3 significant digits: ~30 KB per resource, bounded.
        *h = Histogram::new_with_bounds(1, 3_600_000_000, 3).ok();
    }
    if let Some(h) = h {
        h.saturating_record(((seconds * 1e6).round() as u64).max(1));
    }
}

impl EventSink<SchedulerAdmissionEvent> for TimelineCollector {
    fn accepts(&self, kind: S) -> bool {
        if self.detail == CollectorDetail::Coarse {
            return matches!(
                kind,
                S::RowGroupAdmitted
                    | S::RowGroupCheckpointed
                    | S::RetryDeferred
                    | S::NonRetryableDropped
            ) || (kind == S::TaskLeaseReleased && self.progress.get().is_none());
        }
        matches!(
            kind,
            S::RowGroupAdmitted
                | S::RowGroupCheckpointed
                | S::DependencyReady
                | S::ReadyEnqueued
                | S::Selected
                | S::AdmissionDenied
                | S::StaleSelection
                | S::TaskLeaseAcquired
                | S::WorkerSpawned
                | S::RetryDeferred
                | S::NonRetryableDropped
                | S::Cancelled
                | S::TaskCompleted
                | S::TaskLeaseReleased
        )
    }

    fn emit(&self, event: &SchedulerAdmissionEvent) {
        if self.detail == CollectorDetail::Coarse {
            if let SP::TaskLeaseReleased(released) = &event.payload {
                if released.outcome == Some(TaskTerminalOutcome::Success) {
                    self.completed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                return;
            }
        } else if event.event_kind() == S::TaskCompleted {
            self.completed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.lock().scheduler(event);
    }
}

impl EventSink<RequestAdmissionEvent> for TimelineCollector {
    fn accepts(&self, kind: R) -> bool {
        matches!(
            kind,
            R::RequestWaitStarted
                | R::RequestWaitCompleted
                | R::RequestWaitTimeout
                | R::RequestWaitCancelled
                | R::RequestLeaseAcquired
                | R::ModelRequestStarted
                | R::ModelRequestCompleted
                | R::RequestRateLimited
                | R::RequestLimitDecreased
                | R::RequestLimitIncreased
                | R::RequestSoftCeilingRecovered
                | R::RequestFullyRecovered
                | R::RequestEffectiveCapChanged
                | R::RequestResourceRegistered
                | R::RequestLeaseReleased
        )
    }

    fn emit(&self, event: &RequestAdmissionEvent) {
        self.lock().request(event);
    }
}
