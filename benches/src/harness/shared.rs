//! The `shared` scenario (issue 17, opt-in: `--scenario shared`, not part of `all`, since it
//! needs `redis-server`): 1, 2, 3 and 4 workers splitting 3,000 calls against one loopback
//! endpoint, admitting under limits shared through one Redis (weir-testkit's throwaway
//! server), plus the same workers *without* shared limits (fighting blind) for comparison.
//!
//! Each worker is its own `Engine` on its own multi-threaded tokio runtime on its own OS
//! thread, with its own request controller, budgets and Redis connection: nothing is shared
//! but the store (real separate `weir` processes are exercised by weir-cli's
//! `tests/shared_limits.rs`). Cells: hidden capacity 24 at 100 ms (429 + Retry-After past it),
//! and a request bucket of 200/s (burst 10, `x-ratelimit-*` headers, capacity 64).
//!
//! Reported per run: aggregate wall (start to the last worker's end) over the single-worker
//! floor (the median wall of one worker alone, without shared limits, on the same endpoint), 429 share of attempts,
//! each worker's wall and share of the aggregate throughput, and Redis round trips per request
//! (admission + release; renewals separately).

use super::gates::{gate, Gate};
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_redis::{RedisSharedLimits, RedisSharedLimitsConfig};
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::generators::{Category, LlmText};
use weir_runtime::provider::{ModelProvider, OpenAiCompatibleProvider, OpenAiProviderConfig};
use weir_runtime::scheduler::InMemoryRecordSink;
use weir_runtime::workflow::{ColumnSpec, ModelAlias, Workflow};
use weir_testkit::{LoopbackConfig, LoopbackServer, Overflow, RedisServer, RetryAfter};

/// Target (capacity cell, 3 workers): aggregate wall ≤ this × the single-worker floor.
pub const WALL_OVER_FLOOR_MAX: f64 = 1.15;
/// Target (capacity cell, 3 workers): 429s ≤ this share of attempts.
pub const RATE_LIMITED_SHARE_MAX: f64 = 0.03;

/// One endpoint behaviour.
#[derive(Debug, Clone)]
struct Cell {
    id: &'static str,
    server: LoopbackConfig,
    /// The physical floor: calls / throughput the endpoint allows.
    physical_floor: f64,
}

fn cells(calls: u64, latency: Duration) -> Vec<Cell> {
    let l = latency.as_secs_f64();
    vec![
        Cell {
            id: "capacity24",
            server: LoopbackConfig::new()
                .latency(latency)
                .capacity(24)
                .overflow(Overflow::RateLimit(Some(RetryAfter::Seconds(1)))),
            physical_floor: calls as f64 * l / 24.0,
        },
        Cell {
            id: "bucket200",
            server: LoopbackConfig::new()
                .latency(latency)
                .capacity(64)
                .request_bucket(200.0, 10)
                .rate_limit_headers(true)
                .overflow(Overflow::RateLimit(Some(RetryAfter::Seconds(1)))),
            physical_floor: (calls.saturating_sub(10)) as f64 / 200.0 + l,
        },
    ]
}

/// One worker's end.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRun {
    /// Calls it was given.
    pub calls: u64,
    /// Records it wrote.
    pub records_written: u64,
    /// Its wall seconds (from the common start).
    pub wall_seconds: f64,
    /// Its attempts and 429s as its executor counted them.
    pub attempts: u64,
    /// 429s it saw.
    pub rate_limited: u64,
    /// Redis round trips of admissions and releases.
    pub round_trips: u64,
    /// Renewal round trips.
    pub renewal_round_trips: u64,
    /// Shared admissions.
    pub admissions: u64,
    /// The shared cap at the end (None: the static cap).
    pub learned_cap: Option<u32>,
}

/// One run of one cell with `workers` workers.
#[derive(Debug, Clone, Serialize)]
pub struct SharedRun {
    /// Cell id.
    pub cell: &'static str,
    /// Workers.
    pub workers: usize,
    /// Shared limits on (false: each worker alone, fighting blind).
    pub shared: bool,
    /// Start to the last worker's end.
    pub wall_seconds: f64,
    /// Server-side 429 share of attempts.
    pub rate_limited_share: f64,
    /// Server attempts.
    pub attempts: u64,
    /// Most requests inside the server at once.
    pub server_max_in_flight: u64,
    /// Redis round trips (admission + release) per request, all workers.
    pub round_trips_per_request: f64,
    /// Renewal round trips per request.
    pub renewal_round_trips_per_request: f64,
    /// Each worker.
    pub per_worker: Vec<WorkerRun>,
}

fn engine_config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.scheduler.retry.max_retries = 1_000;
    config.scheduler.early_shutdown = None;
    config.scheduler.cancel_grace = Duration::from_millis(200);
    config
}

fn workflow(id: &str, calls: u64, seed: u64) -> Result<Workflow, String> {
    let wf = Workflow::new(format!("shared-{id}"), calls, seed)
        .with_buffer_size(calls.clamp(1, 1_000))
        .with_max_concurrent_row_groups(3)
        .with_model(ModelAlias::new("writer", "loop", "m1", 128));
    let models = wf.model_registry();
    Ok(wf
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
        )))
}

/// Runs one worker to its end on its own runtime (call from its own thread).
fn run_worker(
    base_url: String,
    redis_url: Option<String>,
    scope: String,
    calls: u64,
    seed: u64,
    start: Instant,
) -> Result<WorkerRun, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(async move {
        let provider = OpenAiCompatibleProvider::new(
            OpenAiProviderConfig::new("loop", base_url)
                .with_timeout(Duration::from_secs(60))
                .with_pool_size(128),
        )
        .map_err(|e| e.to_string())?;
        let provider: Arc<dyn ModelProvider> = Arc::new(provider);
        let mut engine = Engine::new(
            Arc::new(workflow(&scope, calls, seed)?),
            [("loop".to_owned(), provider)],
        )
        .with_config(engine_config());
        if let Some(url) = &redis_url {
            let config = RedisSharedLimitsConfig {
                scope: scope.clone(),
                ..RedisSharedLimitsConfig::default()
            };
            let backend = RedisSharedLimits::connect(url, config)
                .await
                .map_err(|e| e.to_string())?;
            engine = engine.with_shared_limits(backend);
        }
        let prepared = engine.prepare().map_err(|e| format!("prepare: {e}"))?;
        let mut sink = InMemoryRecordSink::new();
        let result = prepared
            .run(&mut sink)
            .await
            .map_err(|e| format!("run: {e}"))?;
        let wall_seconds = start.elapsed().as_secs_f64();
        let shared = result.shared_limits.clone().unwrap_or_default();
        Ok(WorkerRun {
            calls,
            records_written: result.report.records_written,
            wall_seconds,
            attempts: result.requests.attempts,
            rate_limited: result.requests.rate_limited,
            round_trips: shared.round_trips,
            renewal_round_trips: shared.renewal_round_trips,
            admissions: shared.admissions,
            learned_cap: shared.endpoints.first().and_then(|e| e.learned_cap),
        })
    })
}

fn run_once(
    cell: &Cell,
    workers: usize,
    shared: bool,
    calls: u64,
    seed: u64,
    redis: &RedisServer,
    round: usize,
) -> Result<SharedRun, String> {
    let (_server_rt, server) = start_loopback(&cell.server)?;
    let scope = format!("{}-{workers}-{shared}-{round}", cell.id);
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let share = calls / workers as u64 + u64::from((w as u64) < calls % workers as u64);
            let base = server.base_url();
            let url = shared.then(|| redis.url());
            let scope = scope.clone();
            std::thread::spawn(move || run_worker(base, url, scope, share, seed + w as u64, start))
        })
        .collect();
    let mut per_worker = Vec::new();
    for h in handles {
        per_worker.push(h.join().map_err(|_| "a worker panicked".to_owned())??);
    }
    let wall_seconds = start.elapsed().as_secs_f64();
    let st = server.stats();
    server.shutdown();
    let admissions: u64 = per_worker.iter().map(|w| w.admissions).sum();
    let per = |x: u64| {
        if admissions == 0 {
            0.0
        } else {
            x as f64 / admissions as f64
        }
    };
    Ok(SharedRun {
        cell: cell.id,
        workers,
        shared,
        wall_seconds,
        rate_limited_share: if st.requests == 0 {
            0.0
        } else {
            st.all_rate_limited() as f64 / st.requests as f64
        },
        attempts: st.requests,
        server_max_in_flight: st.max_in_flight,
        round_trips_per_request: per(per_worker.iter().map(|w| w.round_trips).sum()),
        renewal_round_trips_per_request: per(per_worker
            .iter()
            .map(|w| w.renewal_round_trips)
            .sum()),
        per_worker,
    })
}

/// The median of `xs` (NaN when empty).
pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// A loopback endpoint on its own one-thread runtime (kept alive by the returned runtime).
pub(crate) fn start_loopback(
    config: &LoopbackConfig,
) -> Result<(tokio::runtime::Runtime, LoopbackServer), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let server = runtime
        .block_on(LoopbackServer::start(config.clone()))
        .map_err(|e| format!("loopback server: {e}"))?;
    Ok((runtime, server))
}

/// Runs the scenario: `iterations` rounds of every (cell, workers, shared) run; writes
/// `shared.md` into `out` and returns the artifact and the gates.
pub fn run(
    smoke: bool,
    calls: Option<u64>,
    iterations: usize,
    seed: u64,
    out: &Path,
) -> Result<(Value, Vec<Gate>), String> {
    let redis = RedisServer::start().map_err(|e| format!("shared: {e}"))?;
    let (calls, latency) = if smoke {
        (calls.unwrap_or(300), Duration::from_millis(5))
    } else {
        (calls.unwrap_or(3_000), Duration::from_millis(100))
    };
    // (1, blind) is one process alone: the floor the target is stated against.
    let plan: &[(usize, bool)] = &[
        (1, false),
        (1, true),
        (2, true),
        (3, true),
        (4, true),
        (3, false),
    ];
    let cells = cells(calls, latency);
    let mut runs: Vec<SharedRun> = Vec::new();
    for round in 0..iterations.max(1) {
        for cell in &cells {
            for &(workers, shared) in plan {
                let r = run_once(cell, workers, shared, calls, seed, &redis, round)?;
                eprintln!(
                    "weir-bench: shared {} workers {} {} round {}: wall {:.3} s, 429 {:.2} %, max in flight {}, {:.2} Redis round trips/request, worker walls {:?}",
                    cell.id,
                    workers,
                    if shared { "shared" } else { "blind" },
                    round + 1,
                    r.wall_seconds,
                    r.rate_limited_share * 100.0,
                    r.server_max_in_flight,
                    r.round_trips_per_request,
                    r.per_worker.iter().map(|w| (w.wall_seconds * 100.0).round() / 100.0).collect::<Vec<_>>()
                );
                runs.push(r);
            }
        }
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| cell | workers | limits | wall s (median) | wall / 1-worker floor | wall / physical floor | 429 share | server max in flight | per-worker walls s | per-worker share of work | Redis round trips / request (+ renewals) |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut summaries = Vec::new();
    let mut gates = Vec::new();
    for cell in &cells {
        let of = |w: usize, s: bool| -> Vec<&SharedRun> {
            runs.iter()
                .filter(|r| r.cell == cell.id && r.workers == w && r.shared == s)
                .collect()
        };
        let floor = median(of(1, false).iter().map(|r| r.wall_seconds).collect());
        for &(workers, shared) in plan {
            let rs = of(workers, shared);
            let wall = median(rs.iter().map(|r| r.wall_seconds).collect());
            let share = median(rs.iter().map(|r| r.rate_limited_share).collect());
            let trips = median(rs.iter().map(|r| r.round_trips_per_request).collect());
            let renew = median(
                rs.iter()
                    .map(|r| r.renewal_round_trips_per_request)
                    .collect(),
            );
            let max_in_flight = rs.iter().map(|r| r.server_max_in_flight).max().unwrap_or(0);
            // The median run's workers (by wall).
            let mid = rs
                .iter()
                .min_by(|a, b| {
                    (a.wall_seconds - wall)
                        .abs()
                        .total_cmp(&(b.wall_seconds - wall).abs())
                })
                .copied();
            let walls: Vec<String> = mid
                .map(|r| {
                    r.per_worker
                        .iter()
                        .map(|w| format!("{:.2}", w.wall_seconds))
                        .collect()
                })
                .unwrap_or_default();
            // A worker's share of the work: its calls per second over the sum of all workers'.
            let shares: Vec<String> = mid
                .map(|r| {
                    let rates: Vec<f64> = r
                        .per_worker
                        .iter()
                        .map(|w| w.records_written as f64 / w.wall_seconds.max(1e-9))
                        .collect();
                    let total: f64 = rates.iter().sum();
                    rates
                        .iter()
                        .map(|x| format!("{:.0} %", 100.0 * x / total.max(1e-9)))
                        .collect()
                })
                .unwrap_or_default();
            let over = wall / floor;
            let _ = writeln!(
                table,
                "| {} | {} | {} | {:.2} | {:.3}× | {:.3}× | {:.2} % | {} | {} | {} | {:.2} (+{:.3}) |",
                cell.id,
                workers,
                if shared { "shared" } else { "blind" },
                wall,
                over,
                wall / cell.physical_floor,
                share * 100.0,
                max_in_flight,
                walls.join(" / "),
                shares.join(" / "),
                trips,
                renew
            );
            summaries.push(json!({
                "cell": cell.id, "workers": workers, "shared": shared, "wall_seconds": wall,
                "wall_over_single_worker_floor": over, "wall_over_physical_floor": wall / cell.physical_floor,
                "rate_limited_share": share, "server_max_in_flight": max_in_flight,
                "round_trips_per_request": trips, "renewal_round_trips_per_request": renew,
            }));
            if cell.id == "capacity24" && workers == 3 && shared {
                gates.push(gate(
                    "shared",
                    "capacity24_3_workers_wall_over_floor",
                    over <= WALL_OVER_FLOOR_MAX,
                    !smoke,
                    format!("{over:.3}× (target ≤ {WALL_OVER_FLOOR_MAX}×)"),
                ));
                gates.push(gate(
                    "shared",
                    "capacity24_3_workers_rate_limited_share",
                    share <= RATE_LIMITED_SHARE_MAX,
                    !smoke,
                    format!(
                        "{:.2} % (target ≤ {:.0} %)",
                        share * 100.0,
                        RATE_LIMITED_SHARE_MAX * 100.0
                    ),
                ));
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let text = format!(
        "# shared limits ({} calls, {} ms latency, {} round(s))\n\n{table}",
        calls,
        latency.as_millis(),
        iterations.max(1)
    );
    std::fs::write(out.join("shared.md"), &text).map_err(|e| e.to_string())?;
    println!("{text}");
    let artifact = json!({
        "inputs": {"calls": calls, "latency_ms": latency.as_millis() as u64, "iterations": iterations.max(1), "seed": seed, "smoke": smoke},
        "runs": runs,
        "summaries": summaries,
    });
    Ok((artifact, gates))
}
