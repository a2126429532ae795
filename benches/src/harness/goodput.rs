//! The `goodput` scenario: a matrix of endpoint behaviours served by `weir-testkit`'s loopback
//! server over HTTP on 127.0.0.1, each driven by the Engine with the OpenAI-compatible provider
//! (one `llm_text` call per record, `max_parallel_requests` 128).
//!
//! Per cell it reports wall over the cell's floor (a physical bound, or the median wall of a
//! reference cell: the twin without injected 429s, or the oracle static setting), the 429 share of
//! attempts, max in flight, and the final and time-weighted mean adaptive limit; medians over the
//! iterations. Formulas are in `plans/benchmarks.md` ("goodput").

use super::gates::{gate, Gate};
use super::stats::percentile;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use weir_contracts::{RequestAdmissionEvent, RequestEventKind, RequestEventPayload};
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::generators::{Category, LlmText};
use weir_runtime::provider::{ModelProvider, OpenAiCompatibleProvider, OpenAiProviderConfig};
use weir_runtime::scheduler::InMemoryRecordSink;
use weir_runtime::workflow::{ColumnSpec, ModelAlias, Workflow};
use weir_telemetry::EventSink;
use weir_testkit::{
    FixedWindow, LoopbackConfig, LoopbackServer, LoopbackStats, Overflow, RetryAfter,
};

/// Target: wall ≤ this × floor.
pub const WALL_OVER_FLOOR_MAX: f64 = 1.10;
/// Target for the sporadic-429 cell: wall ≤ this × its twin.
pub const SPORADIC_OVER_TWIN_MAX: f64 = 1.15;
/// Target: 429s ≤ this share of attempts.
pub const RATE_LIMITED_SHARE_MAX: f64 = 0.02;

/// Sizes of one matrix build: calls, latency and the time scale every duration is multiplied by.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scale {
    /// Calls (records) per cell.
    pub calls: u64,
    /// Base latency.
    pub latency_ms: f64,
    /// Duration multiplier relative to the full matrix (1.0 full).
    pub time: f64,
    /// Call multiplier relative to the full matrix (1.0 full).
    pub calls_factor: f64,
    /// `max_parallel_requests` of the model alias.
    pub max_parallel: u32,
}

impl Scale {
    /// The full matrix (3,000 calls, 100 ms) or the smoke one (300 calls, 5 ms, durations × 0.05).
    pub fn new(smoke: bool, calls_override: Option<u64>) -> Self {
        let (calls, time) = if smoke { (300, 0.05) } else { (3_000, 1.0) };
        let calls = calls_override.unwrap_or(calls);
        Self {
            calls,
            latency_ms: 100.0 * time,
            time,
            calls_factor: calls as f64 / 3_000.0,
            max_parallel: 128,
        }
    }

    fn secs(&self, full_seconds: f64) -> Duration {
        Duration::from_secs_f64(full_seconds * self.time)
    }

    /// A full-matrix rate (per second) kept at the same floor share: × calls / time.
    fn rate(&self, full_rate: f64) -> f64 {
        full_rate * self.calls_factor / self.time
    }

    /// The integer-second Retry-After of the full matrix; scaled runs send `retry-after-ms`.
    fn retry_after(&self, seconds: u64, http_date: bool) -> RetryAfter {
        if self.time >= 1.0 {
            if http_date {
                RetryAfter::HttpDate(seconds)
            } else {
                RetryAfter::Seconds(seconds)
            }
        } else {
            RetryAfter::Millis((seconds as f64 * 1000.0 * self.time).ceil() as u64)
        }
    }
}

/// How a cell's floor is computed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Floor {
    /// Fluid concurrency bound: served calls × mean realized service time / C(t), with C(t) the
    /// hidden capacity schedule (N·L/C for a constant capacity).
    Concurrency,
    /// Request bucket: `(N − burst) / rate + L`.
    RequestRate,
    /// Fixed window: `k · window + max(L, (N − k·limit) · L / C)` with `k = ⌊(N − 1) / limit⌋`
    /// full windows waited for and `C` the cell's `max_parallel` (the last window's calls are
    /// served at most `C` at a time).
    Window,
    /// Token bucket: `(charged tokens − burst) / (tokens per second) + L`.
    TokenRate,
    /// The median wall of another cell (twin without injected 429s, or oracle static setting).
    Reference {
        /// The reference cell id.
        cell: &'static str,
        /// The target ratio against it.
        max_ratio: f64,
    },
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Stable id.
    pub id: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// The loopback server's behaviour.
    pub server: LoopbackConfig,
    /// `max_parallel_requests` of the alias (128, or the oracle's static setting).
    pub max_parallel: u32,
    /// Floor rule.
    pub floor: Floor,
    /// A reference run only (its own gates are not targets).
    pub reference_only: bool,
}

/// Every cell for `scale`, references after the cells that need them are irrelevant: the runner
/// runs all cells first, then computes reference floors.
pub fn cells(scale: &Scale) -> Vec<Cell> {
    let base = || LoopbackConfig::new().latency(Duration::from_secs_f64(scale.latency_ms / 1000.0));
    let cap32 = |ra: RetryAfter| base().capacity(32).overflow(Overflow::RateLimit(Some(ra)));
    let n = |full: f64| ((full * scale.calls_factor).round() as u64).max(1);
    vec![
        Cell {
            id: "cap32_retry_after_seconds",
            description: "hidden concurrency 32, 429 + Retry-After: 1 (delta-seconds)",
            server: cap32(scale.retry_after(1, false)),
            max_parallel: scale.max_parallel,
            floor: Floor::Concurrency,
            reference_only: false,
        },
        Cell {
            id: "cap32_retry_after_http_date",
            description: "hidden concurrency 32, 429 + Retry-After as an HTTP-date (now + 1 s, 1 s resolution)",
            server: cap32(scale.retry_after(1, true)),
            max_parallel: scale.max_parallel,
            floor: Floor::Concurrency,
            reference_only: false,
        },
        Cell {
            id: "cap32_lognormal_latency",
            description: "hidden concurrency 32, lognormal latency (median 100 ms, σ 0.5), Retry-After: 1",
            server: cap32(scale.retry_after(1, false)).lognormal_latency(0.5, 17),
            max_parallel: scale.max_parallel,
            floor: Floor::Concurrency,
            reference_only: false,
        },
        Cell {
            id: "capacity_step_32_to_16",
            description: "hidden concurrency 32, stepping down to 16 after 4 s, Retry-After: 1",
            server: cap32(scale.retry_after(1, false)).capacity_at(scale.secs(4.0), 16),
            max_parallel: scale.max_parallel,
            floor: Floor::Concurrency,
            reference_only: false,
        },
        Cell {
            id: "request_bucket_200ps",
            description: "request token bucket 200/s (burst 20), x-ratelimit-* headers on every response, no concurrency limit",
            server: base()
                .request_bucket(scale.rate(200.0), n(20.0) as u32)
                .rate_limit_headers(true),
            max_parallel: scale.max_parallel,
            floor: Floor::RequestRate,
            reference_only: false,
        },
        Cell {
            id: "fixed_window_1000_per_6s",
            description: "fixed window 1,000 requests per 6 s, 429 without Retry-After (LiteLLM proxy shape)",
            server: base().fixed_window(n(1_000.0) as u32, scale.secs(6.0)),
            max_parallel: scale.max_parallel,
            floor: Floor::Window,
            reference_only: false,
        },
        Cell {
            id: "token_bucket_360k_tpm",
            description: "tokens-per-minute bucket 360,000 (burst 400; a call is ~20 tokens: prompt estimate + max_tokens), headers on every response",
            server: base()
                .token_bucket(
                    (scale.rate(360_000.0 / 60.0) * 60.0).round() as u64,
                    n(400.0).max(40),
                )
                .rate_limit_headers(true),
            max_parallel: scale.max_parallel,
            floor: Floor::TokenRate,
            reference_only: false,
        },
        Cell {
            id: "sporadic_429_5pct",
            description: "hidden concurrency 32 (Retry-After: 1) plus 5 % sporadic 429s without Retry-After, unrelated to load",
            server: cap32(scale.retry_after(1, false)).sporadic_429(0.05, 23),
            max_parallel: scale.max_parallel,
            floor: Floor::Reference {
                cell: "sporadic_twin",
                max_ratio: SPORADIC_OVER_TWIN_MAX,
            },
            reference_only: false,
        },
        Cell {
            id: "sporadic_twin",
            description: "the sporadic cell without injected 429s (its floor)",
            server: cap32(scale.retry_after(1, false)),
            max_parallel: scale.max_parallel,
            floor: Floor::Concurrency,
            reference_only: false,
        },
        Cell {
            id: "queueing_cap32",
            description: "vLLM-like queueing server: 32 served at once, the rest wait FIFO; never a 429",
            server: base().capacity(32).overflow(Overflow::Queue),
            max_parallel: scale.max_parallel,
            floor: Floor::Reference {
                cell: "queueing_oracle",
                max_ratio: WALL_OVER_FLOOR_MAX,
            },
            reference_only: false,
        },
        Cell {
            id: "queueing_oracle",
            description: "the queueing server with the oracle static setting max_parallel_requests = 32",
            server: base().capacity(32).overflow(Overflow::Queue),
            max_parallel: 32,
            floor: Floor::Concurrency,
            reference_only: true,
        },
    ]
}

/// One measured run of a cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellRun {
    /// Wall seconds from `prepare` to the end of `run` (or the stop).
    pub wall_seconds: f64,
    /// Records written.
    pub records_written: u64,
    /// Rows dropped.
    pub rows_dropped: u64,
    /// True when every record was written before the deadline.
    pub finished: bool,
    /// The deadline after which the run was stopped.
    pub deadline_seconds: f64,
    /// HTTP requests the server received (attempts).
    pub attempts: u64,
    /// 429s the server sent.
    pub rate_limited: u64,
    /// `rate_limited / attempts`.
    pub rate_limited_share: f64,
    /// 429s the server drew at random (the sporadic cell's injected ones; no scheduler can
    /// avoid them), as a share of attempts. The 429 target applies to the rest.
    pub injected_share: f64,
    /// Most requests inside the server at once (queued included).
    pub server_max_in_flight: u64,
    /// Most requests the controller had in flight at once.
    pub engine_max_in_flight: u32,
    /// Adaptive chat limit at the end.
    pub final_limit: Option<u32>,
    /// Time-weighted mean of the adaptive chat limit over the run.
    pub mean_limit: Option<f64>,
    /// Limit decreases seen.
    pub limit_decreases: u64,
    /// The cell's floor for this run (physical floors only; references are set later).
    pub floor_seconds: Option<f64>,
    /// `wall / floor` (physical floors only).
    pub wall_over_floor: Option<f64>,
    /// Request leases, waiters and in-flight calls left at the end.
    pub leftovers: (u64, u64, u64),
    /// The server's counters.
    pub server: LoopbackStats,
    /// The request/token budgets at the end (configured, learned, burst, waits, gate): what
    /// the ledger believed about the endpoint's limits.
    pub budgets: Value,
}

fn engine_config() -> EngineConfig {
    let mut config = EngineConfig::default();
    // Rows must not drop on 429 storms: the matrix measures time, not loss.
    config.scheduler.retry.max_retries = 1_000;
    config.scheduler.early_shutdown = None;
    config.scheduler.cancel_grace = Duration::from_millis(200);
    config
}

/// The planned floor (from the configuration), used for the deadline.
fn planned_floor(cell: &Cell, scale: &Scale) -> f64 {
    let l = scale.latency_ms / 1000.0;
    let n = scale.calls as f64;
    let s = &cell.server;
    let mut floor = n * l / f64::from(cell.max_parallel.max(1));
    if s.capacity.is_some() {
        let mean = l * (s.latency_sigma.powi(2) / 2.0).exp();
        floor = floor.max(concurrency_floor(scale.calls, mean, s));
    }
    if let Some(b) = &s.request_bucket {
        floor = floor.max((n - f64::from(b.burst)).max(0.0) / b.per_second + l);
    }
    if let Some(w) = &s.fixed_window {
        floor = floor.max(window_floor(scale.calls, l, cell.max_parallel, w));
    }
    if let Some(t) = &s.token_bucket {
        // ~20 tokens a call (prompt estimate + 16 max_tokens).
        floor = floor
            .max(((n * 20.0) - t.burst as f64).max(0.0) / (t.tokens_per_minute as f64 / 60.0) + l);
    }
    floor
}

/// Fixed-window bound: the calls past `k` full windows start after `k` windows, and at most
/// `max_parallel` of them are in flight at once (fluid: `rem · L / C`, at least one `L`).
fn window_floor(calls: u64, l: f64, max_parallel: u32, w: &FixedWindow) -> f64 {
    let limit = u64::from(w.limit.max(1));
    let k = (calls.max(1) - 1) / limit;
    let rem = (calls - k * limit) as f64;
    k as f64 * w.window.as_secs_f64() + (rem * l / f64::from(max_parallel.max(1))).max(l)
}

/// Fluid bound for `calls` calls of mean service `mean` on the server's capacity schedule.
pub fn concurrency_floor(calls: u64, mean: f64, s: &LoopbackConfig) -> f64 {
    let Some(base) = s.capacity else {
        return 0.0;
    };
    if mean <= 0.0 {
        return 0.0;
    }
    let mut left = calls as f64;
    let mut t = 0.0;
    let mut cap = f64::from(base);
    for step in &s.capacity_schedule {
        let until = step.at.as_secs_f64();
        let served = (until - t).max(0.0) * cap / mean;
        if served >= left {
            return t + left * mean / cap;
        }
        left -= served;
        t = until.max(t);
        cap = f64::from(step.capacity.max(1));
    }
    t + left * mean / cap
}

/// The physical floor of a finished run, from the server's realized counters.
fn realized_floor(cell: &Cell, scale: &Scale, st: &LoopbackStats) -> Option<f64> {
    let l = scale.latency_ms / 1000.0;
    let n = scale.calls as f64;
    let s = &cell.server;
    match cell.floor {
        Floor::Concurrency => {
            let mean = if st.ok > 0 {
                st.service_micros as f64 / 1e6 / st.ok as f64
            } else {
                l
            };
            Some(
                concurrency_floor(scale.calls, mean, s)
                    .max(n * mean / f64::from(cell.max_parallel.max(1))),
            )
        }
        Floor::RequestRate => s
            .request_bucket
            .map(|b| (n - f64::from(b.burst)).max(0.0) / b.per_second + l),
        Floor::Window => s
            .fixed_window
            .as_ref()
            .map(|w| window_floor(scale.calls, l, cell.max_parallel, w)),
        Floor::TokenRate => s.token_bucket.map(|t| {
            (st.tokens_charged as f64 - t.burst as f64).max(0.0)
                / (t.tokens_per_minute as f64 / 60.0)
                + l
        }),
        Floor::Reference { .. } => None,
    }
}

/// Runs one cell once on a fresh multi-threaded runtime (server and engine share it).
pub fn run_cell_once(cell: &Cell, scale: &Scale, seed: u64) -> Result<CellRun, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(run_cell(cell, scale, seed))
}

async fn run_cell(cell: &Cell, scale: &Scale, seed: u64) -> Result<CellRun, String> {
    let server = LoopbackServer::start(cell.server.clone())
        .await
        .map_err(|e| format!("{}: loopback server: {e}", cell.id))?;
    let wf = Workflow::new(format!("goodput-{}", cell.id), scale.calls, seed)
        .with_buffer_size(scale.calls.min(1_000))
        .with_max_concurrent_row_groups(3)
        .with_model(ModelAlias::new("writer", "loop", "m1", cell.max_parallel));
    let models = wf.model_registry();
    let wf = wf
        .with_column(ColumnSpec::new(
            "topic",
            Arc::new(Category::new(["a", "b", "c"]).map_err(|e| e.to_string())?),
        ))
        .with_column(ColumnSpec::new(
            "draft",
            Arc::new(
                LlmText::new(&models, "writer", "Write about {{ topic }}")
                    .map_err(|e| e.to_string())?,
            ),
        ));
    let provider = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", server.base_url())
            .with_timeout(Duration::from_secs(60))
            .with_pool_size(cell.max_parallel.max(1)),
    )
    .map_err(|e| e.to_string())?;
    let provider: Arc<dyn ModelProvider> = Arc::new(provider);
    let events = Arc::new(LimitSink::default());
    let deadline = 2.0 * planned_floor(cell, scale) + 2.0 * scale.time.max(0.25);
    let mut sink = InMemoryRecordSink::new();
    let start = Instant::now();
    let prepared = Engine::new(Arc::new(wf), [("loop".to_owned(), provider)])
        .with_config(engine_config())
        .with_run_id(format!("goodput-{}", cell.id))
        .with_request_sink(events.clone())
        .prepare()
        .map_err(|e| format!("prepare: {e}"))?;
    let stop = prepared.stop_handle();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(deadline)).await;
        stop.stop();
    });
    let result = prepared
        .run(&mut sink)
        .await
        .map_err(|e| format!("run: {e}"))?;
    let wall_seconds = start.elapsed().as_secs_f64();
    stopper.abort();
    let st = server.stats();
    let endpoint = result
        .endpoints
        .iter()
        .find(|e| e.endpoint.to_string().contains("m1"));
    let final_limit = endpoint.and_then(|e| e.final_limits.get("chat").copied());
    let (mean_limit, limit_decreases) = mean_limit(&events, wall_seconds, final_limit);
    let records_written = result.report.records_written;
    let finished = records_written == scale.calls;
    let attempts = st.requests;
    let rate_limited = st.all_rate_limited();
    let floor_seconds = realized_floor(cell, scale, &st);
    Ok(CellRun {
        wall_seconds,
        records_written,
        rows_dropped: result.report.rows_dropped,
        finished,
        deadline_seconds: deadline,
        attempts,
        rate_limited,
        rate_limited_share: share_of(rate_limited, attempts),
        injected_share: share_of(st.sporadic_rate_limited, attempts),
        server_max_in_flight: st.max_in_flight,
        engine_max_in_flight: endpoint.map_or(0, |e| e.max_in_flight),
        final_limit,
        mean_limit,
        limit_decreases,
        floor_seconds,
        wall_over_floor: floor_seconds.filter(|f| *f > 0.0).map(|f| wall_seconds / f),
        leftovers: result.request_leftovers(),
        server: st,
        budgets: serde_json::to_value(&result.budget_snapshots).unwrap_or(Value::Null),
    })
}

/// Keeps only the adaptive-limit changes `(at, previous, current)`: the one request stream
/// the matrix reads (accepting every kind would add per-call work to the measured runs).
#[derive(Debug, Default)]
pub struct LimitSink {
    changes: Mutex<Vec<(f64, f64, f64)>>,
}

impl EventSink<RequestAdmissionEvent> for LimitSink {
    fn accepts(&self, kind: RequestEventKind) -> bool {
        matches!(
            kind,
            RequestEventKind::RequestLimitDecreased | RequestEventKind::RequestLimitIncreased
        )
    }

    fn emit(&self, e: &RequestAdmissionEvent) {
        if !self.accepts(e.event_kind()) {
            return;
        }
        if let RequestEventPayload::RequestLimitDecreased(c)
        | RequestEventPayload::RequestLimitIncreased(c) = &e.payload
        {
            self.changes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((
                    e.captured_at_monotonic,
                    f64::from(c.previous),
                    f64::from(c.current),
                ));
        }
    }
}

/// Time-weighted mean of the adaptive limit over `[0, wall]` from the limit events (each carries
/// `previous` and `current`); the limit before the first event is that event's `previous`.
/// Also returns the number of decreases.
fn mean_limit(events: &LimitSink, wall: f64, final_limit: Option<u32>) -> (Option<f64>, u64) {
    let mut changes = events
        .changes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    changes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let decreases = changes.iter().filter(|c| c.2 < c.1).count() as u64;
    let Some(first) = changes.first() else {
        return (final_limit.map(f64::from), 0);
    };
    if wall <= 0.0 {
        return (Some(first.2), decreases);
    }
    let mut level = first.1;
    let mut t = 0.0;
    let mut area = 0.0;
    for &(at, _, current) in &changes {
        let at = at.clamp(t, wall);
        area += level * (at - t);
        t = at;
        level = current;
    }
    area += level * (wall - t);
    (Some(area / wall), decreases)
}

fn median(xs: impl IntoIterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = xs.into_iter().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| percentile(&v, 0.5))
}

/// One cell's medians over its iterations.
#[derive(Debug, Clone, Serialize)]
pub struct CellSummary {
    /// Cell id.
    pub id: &'static str,
    /// Description.
    pub description: &'static str,
    /// How the floor is computed.
    pub floor_rule: String,
    /// Median wall seconds.
    pub wall_seconds: f64,
    /// Median floor seconds (a reference cell's median wall for reference floors).
    pub floor_seconds: Option<f64>,
    /// Median of per-iteration `wall / floor` (reference floors: median wall / reference median).
    pub wall_over_floor: Option<f64>,
    /// The target ratio.
    pub max_ratio: f64,
    /// Median 429 share of attempts.
    pub rate_limited_share: f64,
    /// Median share of attempts the server refused at random (see [`CellRun::injected_share`]).
    pub injected_share: f64,
    /// Median of the server's max in flight.
    pub server_max_in_flight: f64,
    /// Median of the controller's max in flight.
    pub engine_max_in_flight: f64,
    /// Median final limit.
    pub final_limit: Option<f64>,
    /// Median time-weighted mean limit.
    pub mean_limit: Option<f64>,
    /// Iterations that wrote every record before the deadline.
    pub finished: usize,
    /// Iterations.
    pub iterations: usize,
    /// The targets hold (ratio and 429 share, every iteration finished).
    pub meets_target: bool,
    /// A reference run only (no target of its own).
    pub reference_only: bool,
}

fn floor_rule(f: &Floor) -> String {
    match f {
        Floor::Concurrency => {
            "physical: N × mean realized latency / C(t) (fluid, capacity schedule)".into()
        }
        Floor::RequestRate => "physical: (N − burst) / rate + L".into(),
        Floor::Window => {
            "physical: k × window + max(L, (N − k·limit) × L / C), k = ⌊(N − 1) / limit⌋".into()
        }
        Floor::TokenRate => "physical: (charged tokens − burst) / tokens per second + L".into(),
        Floor::Reference { cell, .. } => format!("reference: median wall of `{cell}`"),
    }
}

/// Summaries of every cell (reference floors resolved against the reference cells' medians).
pub fn summarize(cells: &[Cell], runs: &[Vec<CellRun>]) -> Vec<CellSummary> {
    let walls: Vec<f64> = runs
        .iter()
        .map(|r| median(r.iter().map(|x| x.wall_seconds)).unwrap_or(f64::NAN))
        .collect();
    cells
        .iter()
        .zip(runs)
        .enumerate()
        .map(|(i, (cell, rs))| {
            let (floor_seconds, wall_over_floor, max_ratio) = match &cell.floor {
                Floor::Reference { cell: r, max_ratio } => {
                    let reference = cells
                        .iter()
                        .position(|c| c.id == *r)
                        .map(|j| walls[j])
                        .filter(|w| w.is_finite() && *w > 0.0);
                    (reference, reference.map(|f| walls[i] / f), *max_ratio)
                }
                _ => (
                    median(rs.iter().filter_map(|x| x.floor_seconds)),
                    median(rs.iter().filter_map(|x| x.wall_over_floor)),
                    WALL_OVER_FLOOR_MAX,
                ),
            };
            let share = median(rs.iter().map(|x| x.rate_limited_share)).unwrap_or(0.0);
            let injected = median(rs.iter().map(|x| x.injected_share)).unwrap_or(0.0);
            let finished = rs.iter().filter(|x| x.finished).count();
            let meets_target = finished == rs.len()
                && wall_over_floor.is_some_and(|r| r <= max_ratio)
                && share - injected <= RATE_LIMITED_SHARE_MAX;
            CellSummary {
                id: cell.id,
                description: cell.description,
                floor_rule: floor_rule(&cell.floor),
                wall_seconds: walls[i],
                floor_seconds,
                wall_over_floor,
                max_ratio,
                rate_limited_share: share,
                injected_share: injected,
                server_max_in_flight: median(rs.iter().map(|x| x.server_max_in_flight as f64))
                    .unwrap_or(0.0),
                engine_max_in_flight: median(rs.iter().map(|x| f64::from(x.engine_max_in_flight)))
                    .unwrap_or(0.0),
                final_limit: median(rs.iter().filter_map(|x| x.final_limit.map(f64::from))),
                mean_limit: median(rs.iter().filter_map(|x| x.mean_limit)),
                finished,
                iterations: rs.len(),
                meets_target,
                reference_only: cell.reference_only,
            }
        })
        .collect()
}

/// Gates: leaks always enforced; the targets enforced in full runs, reported in smoke.
pub fn gates(
    cells: &[Cell],
    runs: &[Vec<CellRun>],
    summaries: &[CellSummary],
    smoke: bool,
) -> Vec<Gate> {
    let mut out = Vec::new();
    let leaks: Vec<String> = cells
        .iter()
        .zip(runs)
        .flat_map(|(c, rs)| {
            rs.iter()
                .enumerate()
                .filter(|(_, r)| {
                    // A stopped run abandons calls the server is still sleeping on: only a finished
                    // run must leave the server empty.
                    r.leftovers != (0, 0, 0) || (r.finished && r.server.in_flight != 0)
                })
                .map(move |(i, r)| {
                    format!(
                        "{} iter {i}: leases/waiters/in-flight {:?}, server in flight {}",
                        c.id, r.leftovers, r.server.in_flight
                    )
                })
        })
        .collect();
    out.push(gate(
        "goodput",
        "zero_leaks",
        leaks.is_empty(),
        true,
        if leaks.is_empty() {
            "every cell ended with 0 request leases, waiters and in-flight calls".into()
        } else {
            leaks.join("; ")
        },
    ));
    for s in summaries.iter().filter(|s| !s.reference_only) {
        let ratio = s
            .wall_over_floor
            .map_or("n/a".into(), |r| format!("{r:.3}"));
        out.push(gate(
            "goodput",
            &format!("target.{}", s.id),
            s.meets_target,
            !smoke,
            format!(
                "wall/floor {ratio} (≤ {:.2}), 429 share {:.2} % ({:.2} % injected; the rest ≤ {:.0} %), finished {}/{}",
                s.max_ratio,
                s.rate_limited_share * 100.0,
                s.injected_share * 100.0,
                RATE_LIMITED_SHARE_MAX * 100.0,
                s.finished,
                s.iterations
            ),
        ));
    }
    out
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// Writes `goodput_cells.csv` and `goodput.md` (the table) into `out`.
pub fn write_tables(
    out: &Path,
    summaries: &[CellSummary],
    header: &Value,
    scale: &Scale,
    rounds: usize,
) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut csv = String::from(
        "cell,wall_seconds,floor_seconds,wall_over_floor,max_ratio,rate_limited_share,server_max_in_flight,engine_max_in_flight,final_limit,mean_limit,finished,iterations,meets_target,floor_rule\n",
    );
    for s in summaries {
        let _ = writeln!(
            csv,
            "{},{:.4},{},{},{},{:.5},{},{},{},{},{},{},{},\"{}\"",
            s.id,
            s.wall_seconds,
            opt(s.floor_seconds, 4),
            opt(s.wall_over_floor, 4),
            s.max_ratio,
            s.rate_limited_share,
            s.server_max_in_flight,
            s.engine_max_in_flight,
            opt(s.final_limit, 0),
            opt(s.mean_limit, 2),
            s.finished,
            s.iterations,
            s.meets_target,
            s.floor_rule
        );
    }
    std::fs::write(out.join("goodput_cells.csv"), csv).map_err(|e| e.to_string())?;
    let mut md = String::new();
    let _ = writeln!(md, "# goodput matrix\n");
    let _ = writeln!(
        md,
        "- commit: `{}`; generated {}\n- {} calls per cell, {} ms base latency, `max_parallel_requests` {}; {} round(s), medians\n- machine: {} CPUs ({}), load average at start {}; note: {}\n- mode: {}\n",
        header["candidate_sha"].as_str().unwrap_or("unknown"),
        header["generated_at"].as_str().unwrap_or("?"),
        scale.calls,
        scale.latency_ms,
        scale.max_parallel,
        rounds,
        header["machine"]["cpus"],
        header["machine"]["cpu_model"].as_str().unwrap_or("?"),
        header["machine"]["load_average"],
        header["machine"]["note"].as_str().unwrap_or("-"),
        if header["smoke"].as_bool() == Some(true) { "smoke (tiny; targets reported, not enforced)" } else { "full" },
    );
    md.push_str("| cell | wall s | floor s | wall / floor | target | 429 share | max in flight (server / engine) | final limit | mean limit | finished | meets target |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for s in summaries {
        let _ = writeln!(
            md,
            "| `{}` | {:.2} | {} | {} | ≤ {:.2} | {:.2} % | {} / {} | {} | {} | {}/{} | {} |",
            s.id,
            s.wall_seconds,
            opt(s.floor_seconds, 2),
            opt(s.wall_over_floor, 3),
            s.max_ratio,
            s.rate_limited_share * 100.0,
            s.server_max_in_flight,
            s.engine_max_in_flight,
            opt(s.final_limit, 0),
            opt(s.mean_limit, 1),
            s.finished,
            s.iterations,
            if s.reference_only {
                "reference"
            } else if s.meets_target {
                "yes"
            } else {
                "**no**"
            },
        );
    }
    md.push_str("\nFloors:\n\n");
    for s in summaries {
        let _ = writeln!(md, "- `{}`: {} — {}", s.id, s.floor_rule, s.description);
    }
    md.push_str(
        "\nA run that does not write every record by its deadline (2 × planned floor + slack) is stopped; its wall is the \
         deadline and it counts as not finished (the ratio is then a lower bound). 429 share = 429s the server sent / HTTP \
         requests it received; the target (≤ 2 %) excludes the 429s the server drew at random (the sporadic cell's injected \
         ones). Mean limit = time-weighted mean of the adaptive chat limit from `request_limit_*` events.\n",
    );
    std::fs::write(out.join("goodput.md"), md).map_err(|e| e.to_string())
}

/// `WEIR_GOODPUT_CELLS=id,id,…` keeps only those cells (a development aid for re-measuring a
/// few cells; the committed matrices run them all). Unset or empty: every cell.
fn selected_cells(all: Vec<Cell>) -> Vec<Cell> {
    let wanted = std::env::var("WEIR_GOODPUT_CELLS").unwrap_or_default();
    let ids: Vec<&str> = wanted
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return all;
    }
    all.into_iter().filter(|c| ids.contains(&c.id)).collect()
}

/// Runs the whole matrix (or the [`selected_cells`]): `iterations` rounds, each round every
/// cell once (interleaved, so slow machine phases spread over cells). Returns the artifact and
/// the gates.
pub fn run_matrix(
    smoke: bool,
    calls: Option<u64>,
    iterations: usize,
    seed: u64,
    out: &Path,
    header: &Value,
) -> Result<(Value, Vec<Gate>), String> {
    let scale = Scale::new(smoke, calls);
    let cells = selected_cells(cells(&scale));
    let mut runs: Vec<Vec<CellRun>> = vec![Vec::new(); cells.len()];
    for i in 0..iterations.max(1) {
        for (c, cell) in cells.iter().enumerate() {
            let r = run_cell_once(cell, &scale, seed)?;
            eprintln!(
                "weir-bench: goodput {} iteration {}/{}: wall {:.3} s, floor {}, 429 {:.2} %, max in flight {}, limit final {:?} mean {}, {}",
                cell.id,
                i + 1,
                iterations.max(1),
                r.wall_seconds,
                opt(r.floor_seconds, 3),
                r.rate_limited_share * 100.0,
                r.server_max_in_flight,
                r.final_limit,
                opt(r.mean_limit, 1),
                if r.finished { "finished" } else { "NOT finished" }
            );
            runs[c].push(r);
        }
    }
    let summaries = summarize(&cells, &runs);
    let g = gates(&cells, &runs, &summaries, smoke);
    write_tables(out, &summaries, header, &scale, iterations.max(1))?;
    let iterations_json: Vec<Value> = (0..iterations.max(1))
        .map(|i| {
            let mut metrics = serde_json::Map::new();
            let mut per_cell = serde_json::Map::new();
            for (c, cell) in cells.iter().enumerate() {
                let Some(r) = runs[c].get(i) else { continue };
                metrics.insert(format!("wall_seconds.{}", cell.id), json!(r.wall_seconds));
                metrics.insert(format!("rate_limited_share.{}", cell.id), json!(r.rate_limited_share));
                metrics.insert(format!("server_max_in_flight.{}", cell.id), json!(r.server_max_in_flight));
                if let Some(x) = r.wall_over_floor {
                    metrics.insert(format!("wall_over_floor.{}", cell.id), json!(x));
                }
                if let Some(x) = r.mean_limit {
                    metrics.insert(format!("mean_limit.{}", cell.id), json!(x));
                }
                if let Some(x) = r.final_limit {
                    metrics.insert(format!("final_limit.{}", cell.id), json!(x));
                }
                per_cell.insert(cell.id.into(), json!(r));
            }
            json!({"index": i, "wall_time_seconds": runs.iter().filter_map(|r| r.get(i)).map(|r| r.wall_seconds).sum::<f64>(), "metrics": metrics, "cells": per_cell})
        })
        .collect();
    let cell_inputs: Vec<Value> = cells
        .iter()
        .map(|c| {
            json!({
                "id": c.id, "description": c.description, "max_parallel_requests": c.max_parallel,
                "floor": c.floor, "floor_rule": floor_rule(&c.floor), "planned_floor_seconds": planned_floor(c, &scale),
                "server": format!("{:?}", c.server),
            })
        })
        .collect();
    let artifact = json!({
        "inputs": {"scale": scale, "cells": cell_inputs, "seed": seed, "iterations": iterations.max(1), "smoke": smoke,
                   "targets": {"wall_over_floor_max": WALL_OVER_FLOOR_MAX, "sporadic_over_twin_max": SPORADIC_OVER_TWIN_MAX,
                               "rate_limited_share_max": RATE_LIMITED_SHARE_MAX}},
        "iterations": iterations_json,
        "cells": summaries,
    });
    Ok((artifact, g))
}

/// `part / whole`, 0 when nothing was attempted.
fn share_of(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_floor_follows_the_schedule() {
        let s = LoopbackConfig::new().capacity(32);
        assert!((concurrency_floor(3_000, 0.1, &s) - 9.375).abs() < 1e-9);
        let step = s.capacity_at(Duration::from_secs(4), 16);
        // 1,280 calls in the first 4 s, 1,720 at 160/s afterwards.
        assert!((concurrency_floor(3_000, 0.1, &step) - 14.75).abs() < 1e-9);
        assert!((concurrency_floor(1_000, 0.1, &step) - 3.125).abs() < 1e-9);
    }

    #[test]
    fn mean_limit_weights_by_time() {
        let sink = LimitSink::default();
        let e = RequestAdmissionEvent::with_payload(
            RequestEventPayload::RequestLimitDecreased(weir_contracts::payload::LimitChanged {
                previous: 32,
                current: 16,
                ..Default::default()
            }),
            1.0,
        );
        sink.emit(&e);
        sink.emit(&RequestAdmissionEvent::new(
            RequestEventKind::RequestLeaseAcquired,
            2.0,
        ));
        // 32 for 1 s, 16 for 3 s.
        assert_eq!(mean_limit(&sink, 4.0, Some(16)), (Some(20.0), 1));
        let empty = LimitSink::default();
        assert_eq!(mean_limit(&empty, 4.0, Some(128)), (Some(128.0), 0));
    }

    #[test]
    fn both_sizes_build_valid_cells() {
        for smoke in [true, false] {
            let scale = Scale::new(smoke, None);
            let cells = cells(&scale);
            assert_eq!(cells.len(), 11);
            for c in &cells {
                c.server
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", c.id));
                assert!(planned_floor(c, &scale) > 0.0);
            }
        }
    }
}
