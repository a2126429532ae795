//! The `coordinated` scenario (issue 17, opt-in: `--scenario coordinated`; needs
//! `redis-server` and the release `weir` binary next to `weir-bench`, which
//! `cargo xtask bench --scenario coordinated` builds): the Done-when run itself.
//! Real `weir run --coordinator` processes split one job's row groups through one Redis and
//! share its request limits, against one loopback endpoint of hidden capacity 24 (100 ms,
//! 429 + `Retry-After: 1` past it), 3,000 calls.
//!
//! Rows per round, interleaved: one plain `weir run` alone (the floor: one process given the
//! same capacity), then 1 and 3 coordinated workers on one `--out`. Reported: aggregate wall
//! (first spawn to the last exit) over the floor, the server's 429 share, each worker's share
//! of the row groups (`summary.json` `workers`), Redis round trips per request (shared-limits
//! admission + release, from each worker's session summary), and whether the assembled
//! dataset is byte-identical to the floor run's.

use super::gates::{gate, Gate};
use super::shared::{median, start_loopback};
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir_testkit::{LoopbackConfig, Overflow, RedisServer, RetryAfter};

/// Target (3 workers): aggregate wall ≤ this × the one-process floor.
pub const WALL_OVER_FLOOR_MAX: f64 = 1.15;
/// Target (3 workers): 429s ≤ this share of attempts.
pub const RATE_LIMITED_SHARE_MAX: f64 = 0.03;
/// Target (3 workers): every worker completes at least this share of the row groups.
pub const WORKER_SHARE_MIN: f64 = 0.20;

const KEY_ENV: &str = "WEIR_BENCH_COORDINATED_KEY";
/// A hung process is killed after this long (the run is then an error, not a number).
const DEADLINE: Duration = Duration::from_secs(600);

/// One run: a plain process (`workers == 0`) or `workers` coordinated ones.
#[derive(Debug, Clone, Serialize)]
pub struct CoordinatedRun {
    /// 0 = one plain `weir run` (the floor); otherwise coordinated workers.
    pub workers: usize,
    /// First spawn to the last exit.
    pub wall_seconds: f64,
    /// Server-side 429 share of attempts.
    pub rate_limited_share: f64,
    /// Server attempts.
    pub attempts: u64,
    /// Most requests inside the server at once.
    pub server_max_in_flight: u64,
    /// Each worker's share of the row groups it completed.
    pub row_group_shares: Vec<f64>,
    /// Shared-limits round trips (admission + release) per shared admission, all workers.
    pub round_trips_per_request: f64,
    /// The dataset equals the floor run's byte for byte (the floor itself: true).
    pub same_dataset: bool,
}

fn spec(base_url: &str, calls: u64, buffer: u64) -> Value {
    json!({
        "name": "coordinated", "records": calls, "seed": 42, "buffer_size": buffer,
        "max_concurrent_row_groups": 4,
        "providers": [{"name": "loop", "kind": "openai", "base_url": base_url,
                       "api_key_env": KEY_ENV, "timeout_s": 60, "pool_size": 128}],
        "models": [{"alias": "writer", "provider": "loop", "model_id": "m1",
                    "max_parallel_requests": 128}],
        "columns": [
            {"name": "topic", "kind": "sampler",
             "sampler": {"type": "category", "values": ["a", "b", "c"]}},
            {"name": "draft", "kind": "llm_text", "model": "writer",
             "prompt": "Write about {{ topic }}"}
        ]
    })
}

/// The release `weir` binary beside this one.
fn weir_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("weir");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "coordinated: {} is missing; build it with `cargo build --release -p weir-cli` \
             (`cargo xtask bench --scenario coordinated` does)",
            bin.display()
        ))
    }
}

fn spawn(
    weir: &Path,
    spec: &Path,
    out: &Path,
    coordinator: Option<(&str, String)>,
) -> Result<Child, String> {
    let mut c = Command::new(weir);
    c.arg("run").arg(spec).arg("--out").arg(out).arg("--quiet");
    if let Some((url, name)) = coordinator {
        c.args(["--coordinator", url, "--worker", &name]);
    }
    c.env(KEY_ENV, "sk-bench")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("coordinated: cannot start {}: {e}", weir.display()))
}

fn finish(mut child: Child, start: Instant) -> Result<(), String> {
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(_) => break,
            None if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                break;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let o = child.wait_with_output().map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "coordinated: a weir process exited {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    weir: &Path,
    dir: &Path,
    redis: &mut RedisServer,
    config: &LoopbackConfig,
    calls: u64,
    buffer: u64,
    workers: usize,
    floor_dataset: Option<&[u8]>,
) -> Result<(CoordinatedRun, Vec<u8>), String> {
    // A job's claims live in Redis: each run starts on an empty one.
    redis.restart().map_err(|e| format!("coordinated: {e}"))?;
    let (_server_rt, server) = start_loopback(config)?;
    let spec_path = dir.join("spec.json");
    let text = spec(&server.base_url(), calls, buffer).to_string();
    std::fs::write(&spec_path, text).map_err(|e| e.to_string())?;
    let out = dir.join(format!("out-{workers}"));
    let _ = std::fs::remove_dir_all(&out);
    let url = redis.url();
    let start = Instant::now();
    let children: Vec<Child> = if workers == 0 {
        vec![spawn(weir, &spec_path, &out, None)?]
    } else {
        (0..workers)
            .map(|w| spawn(weir, &spec_path, &out, Some((&url, format!("w{w}")))))
            .collect::<Result<_, _>>()?
    };
    for c in children {
        finish(c, start)?;
    }
    let wall_seconds = start.elapsed().as_secs_f64();
    let st = server.stats();
    server.shutdown();
    let dataset = std::fs::read(out.join("dataset.jsonl")).map_err(|e| e.to_string())?;
    let summary = read_json(&out.join("summary.json"))?;
    let mut row_group_shares = Vec::new();
    let (mut trips, mut admissions) = (0u64, 0u64);
    if workers > 0 {
        let per = summary["workers"].as_object().cloned().unwrap_or_default();
        let total: u64 = per
            .values()
            .map(|w| w["row_groups_completed"].as_u64().unwrap_or(0))
            .sum();
        for (name, w) in &per {
            let done = w["row_groups_completed"].as_u64().unwrap_or(0);
            row_group_shares.push(done as f64 / total.max(1) as f64);
            let session = read_json(&out.join("workers").join(name).join("summary.json"))?;
            let shared = &session["shared_limits"];
            trips += shared["round_trips"].as_u64().unwrap_or(0);
            admissions += shared["admissions"].as_u64().unwrap_or(0);
        }
    }
    let run = CoordinatedRun {
        workers,
        wall_seconds,
        rate_limited_share: st.all_rate_limited() as f64 / st.requests.max(1) as f64,
        attempts: st.requests,
        server_max_in_flight: st.max_in_flight,
        row_group_shares,
        round_trips_per_request: trips as f64 / admissions.max(1) as f64,
        same_dataset: floor_dataset.is_none_or(|f| f == dataset.as_slice()),
    };
    Ok((run, dataset))
}

fn label(workers: usize) -> String {
    match workers {
        0 => "1 plain process (floor)".to_owned(),
        n => format!("{n} coordinated worker(s)"),
    }
}

/// Runs the scenario; writes `coordinated.md` into `out` and returns the artifact and gates.
pub fn run(
    smoke: bool,
    calls: Option<u64>,
    iterations: usize,
    out: &Path,
) -> Result<(Value, Vec<Gate>), String> {
    let weir = weir_binary()?;
    let mut redis = RedisServer::start().map_err(|e| format!("coordinated: {e}"))?;
    let (calls, latency) = if smoke {
        (calls.unwrap_or(300), Duration::from_millis(5))
    } else {
        (calls.unwrap_or(3_000), Duration::from_millis(100))
    };
    // 60 row groups of 50 at 3,000 calls: enough for a fair split to show.
    let buffer = (calls / 60).max(1);
    let config = LoopbackConfig::new()
        .latency(latency)
        .capacity(24)
        .overflow(Overflow::RateLimit(Some(RetryAfter::Seconds(1))));
    let dir = out.join("coordinated-work");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let plan = [0usize, 1, 3];
    let mut runs: Vec<CoordinatedRun> = Vec::new();
    for round in 0..iterations.max(1) {
        let mut floor: Option<Vec<u8>> = None;
        for &workers in &plan {
            let (r, dataset) = run_once(
                &weir,
                &dir,
                &mut redis,
                &config,
                calls,
                buffer,
                workers,
                floor.as_deref(),
            )?;
            eprintln!(
                "weir-bench: coordinated {} round {}: wall {:.3} s, 429 {:.2} %, max in flight {}, row-group shares {:?}, {:.2} round trips/request, same dataset {}",
                label(workers),
                round + 1,
                r.wall_seconds,
                r.rate_limited_share * 100.0,
                r.server_max_in_flight,
                r.row_group_shares,
                r.round_trips_per_request,
                r.same_dataset
            );
            if workers == 0 {
                floor = Some(dataset);
            }
            runs.push(r);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let of =
        |w: usize| -> Vec<&CoordinatedRun> { runs.iter().filter(|r| r.workers == w).collect() };
    let floor = median(of(0).iter().map(|r| r.wall_seconds).collect());
    let mut table = String::from(
        "| run | wall s (median) | min–max | wall / floor | 429 share (median) | server max in flight | row-group shares (each round) | round trips / request | dataset = floor's |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut summaries = Vec::new();
    let mut gates = Vec::new();
    for &workers in &plan {
        let rs = of(workers);
        let walls: Vec<f64> = rs.iter().map(|r| r.wall_seconds).collect();
        let wall = median(walls.clone());
        let lo = walls.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = walls.iter().copied().fold(0.0, f64::max);
        let share = median(rs.iter().map(|r| r.rate_limited_share).collect());
        let trips = median(rs.iter().map(|r| r.round_trips_per_request).collect());
        let max_in_flight = rs.iter().map(|r| r.server_max_in_flight).max().unwrap_or(0);
        let min_share = rs
            .iter()
            .flat_map(|r| r.row_group_shares.iter().copied())
            .fold(f64::INFINITY, f64::min);
        let same = rs.iter().all(|r| r.same_dataset);
        let shares: Vec<String> = rs
            .iter()
            .map(|r| {
                r.row_group_shares
                    .iter()
                    .map(|s| format!("{:.0} %", s * 100.0))
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        let over = wall / floor;
        let _ = writeln!(
            table,
            "| {} | {:.2} | {:.2}–{:.2} | {:.3}× | {:.2} % | {} | {} | {} | {} |",
            label(workers),
            wall,
            lo,
            hi,
            over,
            share * 100.0,
            max_in_flight,
            if shares.iter().all(String::is_empty) {
                "—".to_owned()
            } else {
                shares.join(", ")
            },
            if workers == 0 {
                "—".to_owned()
            } else {
                format!("{trips:.2}")
            },
            if same { "yes" } else { "NO" },
        );
        summaries.push(json!({
            "workers": workers, "wall_seconds": wall, "wall_min": lo, "wall_max": hi,
            "wall_over_floor": over, "rate_limited_share": share,
            "server_max_in_flight": max_in_flight, "round_trips_per_request": trips,
            "min_row_group_share": if min_share.is_finite() { min_share } else { 0.0 },
            "same_dataset": same,
        }));
        if workers == 3 {
            gates.push(gate(
                "coordinated",
                "three_workers_wall_over_floor",
                over <= WALL_OVER_FLOOR_MAX,
                !smoke,
                format!("{over:.3}× (target ≤ {WALL_OVER_FLOOR_MAX}×)"),
            ));
            gates.push(gate(
                "coordinated",
                "three_workers_rate_limited_share",
                share <= RATE_LIMITED_SHARE_MAX,
                !smoke,
                format!(
                    "{:.2} % (target ≤ {:.0} %)",
                    share * 100.0,
                    RATE_LIMITED_SHARE_MAX * 100.0
                ),
            ));
            gates.push(gate(
                "coordinated",
                "three_workers_none_starved",
                min_share >= WORKER_SHARE_MIN,
                !smoke,
                format!(
                    "smallest share {:.1} % (target ≥ {:.0} %)",
                    min_share * 100.0,
                    WORKER_SHARE_MIN * 100.0
                ),
            ));
            gates.push(gate(
                "coordinated",
                "three_workers_same_dataset",
                same,
                true,
                format!("byte-identical to the plain run: {same}"),
            ));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let text = format!(
        "# coordinated workers ({calls} calls, {} ms latency, hidden capacity 24, {} row groups of {buffer}, {} round(s))\n\n{table}",
        latency.as_millis(),
        calls.div_ceil(buffer),
        iterations.max(1)
    );
    std::fs::write(out.join("coordinated.md"), &text).map_err(|e| e.to_string())?;
    println!("{text}");
    let artifact = json!({
        "inputs": {"calls": calls, "latency_ms": latency.as_millis() as u64, "buffer_size": buffer,
                   "iterations": iterations.max(1), "smoke": smoke},
        "runs": runs,
        "summaries": summaries,
    });
    Ok((artifact, gates))
}
