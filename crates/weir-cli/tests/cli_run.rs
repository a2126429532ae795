//! `weir run` end to end: every example completes cleanly; Ctrl-C then re-run equals one clean run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-cli-run-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(format!("{name}.json"))
}

fn run(args: &[&str]) -> Output {
    weir()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn weir")
}

fn summary(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary is JSON")
}

fn assert_clean(dir: &Path) {
    let s = summary(dir);
    assert_eq!(s["records_written"], s["records_requested"], "{s:#}");
    assert_eq!(s["final_task_snapshot"]["active_leases"], 0);
    assert_eq!(s["final_request_snapshot"]["active_leases"], 0);
    assert_eq!(s["final_request_snapshot"]["waiters"], 0);
    assert_eq!(s["final_request_snapshot"]["in_flight"], 0);
    assert_eq!(s["hidden_scheduler_resource_waiters"], 0);
    for m in s["per_model"].as_array().expect("per_model") {
        assert!(
            m["max_in_flight"].as_u64() <= m["static_cap"].as_u64(),
            "{m}"
        );
    }
    for f in [
        "dataset.jsonl",
        "events.jsonl",
        "capacity-plan.json",
        "report.html",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let lines = std::fs::read_to_string(dir.join("dataset.jsonl")).expect("dataset");
    assert_eq!(
        lines.lines().count() as u64,
        s["records_written"].as_u64().unwrap_or(0)
    );
}

fn run_example(name: &str) {
    let out = scratch(name);
    let o = run(&[
        "run",
        example(name).to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(
        o.status.success(),
        "{name}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert_clean(&out);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn quickstart_runs_cleanly() {
    run_example("quickstart");
}

#[test]
fn heavy_root_runs_cleanly() {
    run_example("heavy-root");
}

#[test]
fn dual_model_judge_runs_cleanly() {
    run_example("dual-model-judge");
}

#[test]
fn rate_limited_runs_cleanly() {
    run_example("rate-limited");
}

#[test]
fn cross_provider_cooldown_runs_cleanly() {
    run_example("cross-provider-cooldown");
}

#[test]
fn interrupt_then_rerun_equals_an_uninterrupted_run() {
    let spec = example("quickstart");
    let spec = spec.to_str().expect("utf8");
    let clean = scratch("clean");
    let o = run(&[
        "run",
        spec,
        "--records",
        "3000",
        "--out",
        clean.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let resumed = scratch("resumed");
    let mut child = weir()
        .args([
            "run",
            spec,
            "--records",
            "3000",
            "--out",
            resumed.to_str().expect("utf8"),
            "--quiet",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Interrupt once at least one row group is checkpointed (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written = std::fs::read_to_string(resumed.join("checkpoint.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["row_groups_written"].as_u64())
            .unwrap_or(0);
        if written >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        assert!(
            child.try_wait().expect("poll").is_none(),
            "run ended before the interrupt"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let first = child.wait_with_output().expect("wait");
    assert_eq!(
        first.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let partial = summary(&resumed);
    assert!(
        partial["records_written"].as_u64() < Some(3000),
        "{partial:#}"
    );
    assert_eq!(partial["final_task_snapshot"]["active_leases"], 0);
    assert_eq!(partial["final_request_snapshot"]["active_leases"], 0);

    let second = run(&[
        "run",
        spec,
        "--records",
        "3000",
        "--out",
        resumed.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // The final summary covers both sessions.
    let total = summary(&resumed);
    assert_eq!(
        total["records_written"].as_u64().unwrap_or(0)
            + total["rows_dropped"].as_u64().unwrap_or(0),
        3000
    );
    assert!(total["wall_seconds"].as_f64() > partial["wall_seconds"].as_f64());
    assert!(total["requests"]["attempts"].as_u64() > partial["requests"]["attempts"].as_u64());
    let a = std::fs::read(clean.join("dataset.jsonl")).expect("clean dataset");
    let b = std::fs::read(resumed.join("dataset.jsonl")).expect("resumed dataset");
    assert_eq!(a.len(), b.len());
    assert!(
        a == b,
        "interrupted + resumed dataset differs from the uninterrupted one"
    );
    let _ = std::fs::remove_dir_all(&clean);
    let _ = std::fs::remove_dir_all(&resumed);
}
