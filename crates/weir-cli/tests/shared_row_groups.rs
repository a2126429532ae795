//! Shared row groups (`weir run --coordinator`) against a real `redis-server` and the built
//! binary: several workers on one `--out` assemble a dataset byte-identical to a single-process
//! run; a worker killed with -9 mid-run loses and duplicates nothing; Redis restarted empty
//! mid-run still ends with every worker exiting 0 and the same dataset; an unreachable Redis is
//! exit 3 naming the URL; a job whose workers all died resumes. Every wait is on observable
//! state (a part file, a Redis key, a process exit) under a generous deadline, never a timing
//! assertion.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_testkit::RedisServer;

/// Bound on every wait (failure only).
const DEADLINE: Duration = Duration::from_secs(120);

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-shared-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// 12 row groups of 10 rows; two model columns on a simulated endpoint with a fixed 40 ms
/// latency and 2 requests at a time, one row group at a time per worker: slow enough that a
/// worker is still holding claims when a test acts on it.
fn slow_spec(dir: &Path) -> PathBuf {
    let spec = json!({
        "name": "shared", "records": 120, "seed": 7, "buffer_size": 10,
        "max_concurrent_row_groups": 1,
        "providers": [{"name": "sim", "kind": "simulated", "models": [
            {"model_id": "m", "capacity": 8, "latency_ms": {"dist": "fixed", "value": 40}}]}],
        "models": [{"alias": "w", "provider": "sim", "model_id": "m", "max_parallel_requests": 2}],
        "columns": [
            {"name": "topic", "kind": "sampler",
             "sampler": {"type": "category", "values": ["a", "b", "c"]}},
            {"name": "n", "kind": "sampler", "sampler": {"type": "uniform_int", "low": 1, "high": 9}},
            {"name": "draft", "kind": "llm_text", "model": "w", "prompt": "Write {{ n }} about {{ topic }}"},
            {"name": "short", "kind": "llm_text", "model": "w", "prompt": "Shorten: {{ draft }}"}
        ]
    });
    let p = dir.join("shared.json");
    std::fs::write(&p, spec.to_string()).expect("write spec");
    p
}

/// The single-process dataset of the same spec and seed.
fn single_process_dataset(dir: &Path, spec: &Path) -> Vec<u8> {
    let out = dir.join("single");
    let o = weir()
        .args(["run", s(spec), "--out", s(&out), "--quiet"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn weir");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::read(out.join("dataset.jsonl")).expect("dataset")
}

fn worker(spec: &Path, out: &Path, url: &str, name: &str) -> Child {
    worker_with(spec, out, url, name, &[])
}

/// A quiet worker with `extra` arguments after the usual ones.
fn worker_with(spec: &Path, out: &Path, url: &str, name: &str, extra: &[&str]) -> Child {
    weir()
        .args(["run", s(spec), "--out", s(out), "--quiet"])
        .args(["--coordinator", url, "--worker", name, "--lease", "2"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker")
}

fn finish(child: Child) -> Output {
    // `wait_with_output` has no timeout; the deadline is enforced by polling `try_wait` first.
    let mut child = child;
    let start = Instant::now();
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => break,
            None if start.elapsed() > DEADLINE => {
                let _ = child.kill();
                break;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    child.wait_with_output().expect("output")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn parts_in(out: &Path) -> usize {
    std::fs::read_dir(out.join("parts"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rg-"))
                .count()
        })
        .unwrap_or(0)
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The workers holding a claim now (the job's `owners` hash, found by its key pattern).
fn owners(url: &str) -> Vec<String> {
    let Ok(client) = redis::Client::open(url) else {
        return Vec::new();
    };
    let Ok(mut conn) = client.get_connection() else {
        return Vec::new();
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("weir:rg:*:owners")
        .query(&mut conn)
        .unwrap_or_default();
    keys.iter()
        .flat_map(|k| {
            redis::cmd("HVALS")
                .arg(k)
                .query::<Vec<String>>(&mut conn)
                .unwrap_or_default()
        })
        .collect()
}

fn summary(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn three_workers_on_one_out_assemble_the_single_process_dataset() {
    let Some(redis) = RedisServer::start_or_skip("three_workers_on_one_out") else {
        return;
    };
    let dir = scratch("three");
    let spec = slow_spec(&dir);
    let expected = single_process_dataset(&dir, &spec);
    let out = dir.join("out");
    let workers: Vec<Child> = ["a", "b", "c"]
        .iter()
        .map(|n| worker(&spec, &out, &redis.url(), n))
        .collect();
    for w in workers {
        let o = finish(w);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read(out.join("dataset.jsonl")).expect("dataset"),
        expected
    );
    let sum = summary(&out);
    assert_eq!(sum["records_written"], 120);
    let workers = sum["workers"].as_object().expect("workers");
    assert_eq!(workers.len(), 3, "{sum}");
    let completed: u64 = workers
        .values()
        .map(|w| w["row_groups_completed"].as_u64().expect("count"))
        .sum();
    assert_eq!(completed, 12, "{sum}");
    // `--coordinator` shares the request limits on the same Redis (each worker's session).
    for name in ["a", "b", "c"] {
        let path = out.join("workers").join(name).join("summary.json");
        let session: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("session summary"))
                .expect("JSON");
        let shared = &session["shared_limits"];
        assert_eq!(shared["mode"], "shared", "{name}: {session}");
        assert!(shared["admissions"].as_u64() > Some(0), "{name}: {shared}");
    }
    // The finished job is a finished run for a single-process `weir run` too.
    let o = weir()
        .args(["run", s(&spec), "--out", s(&out), "--quiet"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("already holds"), "{}", stderr(&o));
    // The directory removed while Redis still knows the finished job: a new directory does
    // not inherit "done" for parts it does not have; the job runs again there.
    // (This time with --local-limits: the worker's limits are its own, none shared.)
    std::fs::remove_dir_all(&out).expect("remove out");
    let o = finish(worker_with(
        &spec,
        &out,
        &redis.url(),
        "a",
        &["--local-limits"],
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let session = std::fs::read_to_string(out.join("workers/a/summary.json")).expect("summary");
    assert!(!session.contains("\"shared_limits\""), "{session}");
    assert_eq!(
        std::fs::read(out.join("dataset.jsonl")).expect("dataset"),
        expected
    );
}

#[test]
fn csv_datasets_assemble_with_one_header() {
    let Some(redis) = RedisServer::start_or_skip("csv_datasets_assemble_with_one_header") else {
        return;
    };
    let dir = scratch("csv");
    let spec = slow_spec(&dir);
    let single = dir.join("single-csv");
    let o = weir()
        .args([
            "run",
            s(&spec),
            "--out",
            s(&single),
            "--quiet",
            "--format",
            "csv",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.join("out");
    let workers: Vec<Child> = ["a", "b"]
        .iter()
        .map(|n| worker_with(&spec, &out, &redis.url(), n, &["--format", "csv"]))
        .collect();
    for w in workers {
        let o = finish(w);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read(out.join("dataset.csv")).expect("dataset"),
        std::fs::read(single.join("dataset.csv")).expect("dataset")
    );
}

#[test]
fn a_worker_killed_with_9_mid_run_loses_and_duplicates_nothing() {
    let Some(redis) = RedisServer::start_or_skip("a_worker_killed_with_9") else {
        return;
    };
    let dir = scratch("kill9");
    let spec = slow_spec(&dir);
    let expected = single_process_dataset(&dir, &spec);
    let out = dir.join("out");
    let url = redis.url();
    let mut victim = worker(&spec, &out, &url, "victim");
    let a = worker(&spec, &out, &url, "a");
    let b = worker(&spec, &out, &url, "b");
    // Mid-run: some part is written and the victim holds a claim.
    wait_until("a part and a claim held by the victim", || {
        parts_in(&out) >= 1 && owners(&url).iter().any(|o| o == "victim")
    });
    victim.kill().expect("kill -9");
    let _ = victim.wait();
    for w in [a, b] {
        let o = finish(w);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read(out.join("dataset.jsonl")).expect("dataset"),
        expected
    );
    let sum = summary(&out);
    let taken_over: u64 = sum["workers"]
        .as_object()
        .expect("workers")
        .values()
        .map(|w| w["row_groups_taken_over"].as_u64().expect("count"))
        .sum();
    assert!(
        taken_over >= 1,
        "nobody took the victim's claim over: {sum}"
    );
}

/// A worker that is not quiet, its stderr collected as it comes (to wait on what it says).
struct Talking {
    child: Child,
    said: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn talking_worker(spec: &Path, out: &Path, url: &str, name: &str) -> Talking {
    let mut child = weir()
        .args(["run", s(spec), "--out", s(out)])
        .args(["--coordinator", url, "--worker", name, "--lease", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let said = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr");
    let sink = said.clone();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    Talking {
        child,
        said,
        reader,
    }
}

fn said(workers: &[Talking], text: &str) -> bool {
    workers
        .iter()
        .any(|w| w.said.lock().map(|s| s.contains(text)).unwrap_or(false))
}

#[test]
fn redis_restarted_empty_mid_run_still_completes_every_worker() {
    let Some(mut redis) = RedisServer::start_or_skip("redis_restarted_empty_mid_run") else {
        return;
    };
    let dir = scratch("restart");
    let spec = slow_spec(&dir);
    let expected = single_process_dataset(&dir, &spec);
    let out = dir.join("out");
    let url = redis.url();
    let workers: Vec<Talking> = ["a", "b", "c"]
        .iter()
        .map(|n| talking_worker(&spec, &out, &url, n))
        .collect();
    wait_until("the first part", || parts_in(&out) >= 1);
    redis.stop();
    // Down: the workers say so (they stop claiming, keep generating what they hold, retry).
    wait_until("a worker reporting the outage", || {
        said(
            &workers,
            "not claiming new row groups, still generating the ones held",
        )
    });
    redis.restart().expect("restart (empty)");
    let mut stderrs = Vec::new();
    for w in workers {
        let mut child = w.child;
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(start.elapsed() < DEADLINE, "a worker never finished");
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = w.reader.join();
        let text = w.said.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(status.code(), Some(0), "{text}");
        stderrs.push(text);
    }
    assert!(
        stderrs.iter().any(|t| t.contains("is back after")),
        "nobody said Redis came back: {stderrs:#?}"
    );
    assert_eq!(
        std::fs::read(out.join("dataset.jsonl")).expect("dataset"),
        expected
    );
    let outages: u64 = summary(&out)["workers"]
        .as_object()
        .expect("workers")
        .values()
        .map(|w| w["coordinator_outages"].as_u64().expect("count"))
        .sum();
    assert!(outages >= 1, "the outage is in summary.json");
}

#[test]
fn unreachable_redis_at_start_is_exit_3_naming_the_url() {
    let dir = scratch("unreachable");
    let spec = slow_spec(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let o = finish(worker(&spec, &dir.join("out"), &url, "a"));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains(&url), "{}", stderr(&o));
}

#[test]
fn a_job_whose_workers_all_died_resumes_to_the_same_dataset() {
    let Some(redis) = RedisServer::start_or_skip("a_job_whose_workers_all_died") else {
        return;
    };
    let dir = scratch("resume");
    let spec = slow_spec(&dir);
    let expected = single_process_dataset(&dir, &spec);
    let out = dir.join("out");
    let url = redis.url();
    let mut a = worker(&spec, &out, &url, "a");
    let mut b = worker(&spec, &out, &url, "b");
    wait_until("two parts", || parts_in(&out) >= 2);
    for w in [&mut a, &mut b] {
        w.kill().expect("kill -9");
        let _ = w.wait();
    }
    // Another job on the same directory is refused with the difference named.
    let o = weir()
        .args(["run", s(&spec), "--out", s(&out), "--quiet", "--seed", "8"])
        .args(["--coordinator", &url, "--worker", "other"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("seed (parts 7, this worker 8)"),
        "{}",
        stderr(&o)
    );
    // The same command resumes: the dead workers' leases run out and are taken over.
    let o = finish(worker(&spec, &out, &url, "a"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(out.join("dataset.jsonl")).expect("dataset"),
        expected
    );
}
