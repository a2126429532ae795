//! The run contract against the built binary: exit statuses (0, 2, 3, 4, 130, 143), the failure
//! report, the `--out` lock, resume rules (`--fresh`, finished runs, damaged checkpoints), and
//! counters that survive `kill -9`. Waits are bounded by counts of polls, never by timing.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-contract-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn run(args: &[&str]) -> Output {
    weir()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn weir")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_file(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("JSON")
}

fn write_spec(dir: &Path, name: &str, spec: &Value) -> PathBuf {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, spec.to_string()).expect("write spec");
    p
}

/// A local-only workflow: a category sampler (with `null` among its values when `nulls`) and a
/// validator that drops the rows whose value is null.
fn local_spec(records: u64, nulls: bool) -> Value {
    let values = if nulls {
        json!([null, "a"])
    } else {
        json!(["a", "b"])
    };
    json!({
        "name": "local", "records": records, "buffer_size": 10,
        "columns": [
            {"name": "t", "kind": "sampler", "sampler": {"type": "category", "values": values}},
            {"name": "v", "kind": "validator", "columns": ["t"]}
        ]
    })
}

/// A simulated provider that fails every call with a 500.
fn failing_spec(records: u64, buffer: u64) -> Value {
    json!({
        "name": "failing", "records": records, "buffer_size": buffer,
        "providers": [{"name": "sim", "kind": "simulated", "models": [
            {"model_id": "m", "capacity": 8, "latency_ms": {"dist": "fixed", "value": 1}, "error_rate": 1.0}]}],
        "models": [{"alias": "writer", "provider": "sim", "model_id": "m"}],
        "columns": [
            {"name": "t", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"]}},
            {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "x {{ t }}"}
        ]
    })
}

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.json")
}

/// Polls (bounded count) until the checkpoint reports at least `groups` row groups.
fn wait_for_checkpoint(child: &mut Child, out: &Path, groups: u64) {
    for _ in 0..6000 {
        let n = std::fs::read_to_string(out.join("checkpoint.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["row_groups_written"].as_u64())
            .unwrap_or(0);
        if n >= groups {
            return;
        }
        assert!(
            child.try_wait().expect("poll").is_none(),
            "run ended before {groups} row group(s) were checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no checkpoint of {groups} row group(s) after 6000 polls");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

fn spawn_quickstart(out: &Path, records: &str) -> Child {
    weir()
        .args([
            "run",
            s(&quickstart()),
            "--records",
            records,
            "--out",
            s(out),
            "--quiet",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn dropped_rows_exit_4_with_a_failure_report_even_when_quiet() {
    let dir = scratch("drops");
    let spec = write_spec(&dir, "spec", &local_spec(20, true));
    let out = dir.join("out");
    let o = run(&["run", s(&spec), "--out", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("failures (column × model × cause):"), "{err}");
    assert!(err.contains("validation_failed"), "{err}");
    assert!(err.contains("dropped"), "{err}");
    let sum = json_file(&out.join("summary.json"));
    let written = sum["records_written"].as_u64().unwrap_or(0);
    let dropped = sum["rows_dropped"].as_u64().unwrap_or(0);
    assert!(dropped > 0, "{sum:#}");
    assert_eq!(written + dropped, 20, "{sum:#}");
    assert_eq!(sum["rows_unfinished"], 0);
    let failures = sum["failures"].as_array().expect("failures");
    let counted: u64 = failures.iter().filter_map(|f| f["count"].as_u64()).sum();
    assert_eq!(counted, dropped, "{sum:#}");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(html.contains("<h2>Failures</h2>") && html.contains("validation_failed"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_provider_failing_every_call_is_not_exit_0_and_counts_match_the_events() {
    let dir = scratch("failing");
    // Small: finishes with every row dropped (exit 4, was 0 with "wrote 0 of 20").
    let spec = write_spec(&dir, "small", &failing_spec(20, 10));
    let out = dir.join("small-out");
    let o = run(&[
        "run",
        s(&spec),
        "--out",
        s(&out),
        "--quiet",
        "--events",
        "full",
    ]);
    let code = o.status.code();
    assert!(
        code == Some(4) || code == Some(3),
        "{code:?} {}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(err.contains("draft × writer × "), "{err}");
    let sum = json_file(&out.join("summary.json"));
    assert_eq!(sum["records_written"], 0);
    // Every failed cell is in the summary, as the events say (was rows_dropped 0 beside
    // hundreds of non_retryable_dropped events).
    let events = std::fs::read_to_string(out.join("events.jsonl")).expect("events");
    let dropped_events = events
        .lines()
        .filter(|l| l.contains("\"non_retryable_dropped\""))
        .count() as u64;
    assert!(dropped_events > 0);
    assert_eq!(sum["tasks"]["failed"].as_u64(), Some(dropped_events));
    let counted: u64 = sum["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(|f| f["count"].as_u64())
        .sum();
    assert_eq!(counted, dropped_events, "{sum:#}");
    assert_eq!(
        sum["rows_dropped"].as_u64().unwrap_or(0) + sum["rows_unfinished"].as_u64().unwrap_or(0),
        20,
        "{sum:#}"
    );

    // Larger: the failure window stops the run early: exit 3 naming why.
    let spec = write_spec(&dir, "large", &failing_spec(400, 100));
    let out = dir.join("large-out");
    let o = run(&["run", s(&spec), "--out", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("the run stopped early ("), "{err}");
    assert!(!err.contains("the run stopped early\n"), "{err}");
    let sum = json_file(&out.join("summary.json"));
    assert!(sum["stop_reason"].is_string(), "{sum:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_refuses_another_seed_record_count_or_spec_and_fresh_starts_over() {
    let dir = scratch("resume");
    let spec = write_spec(&dir, "spec", &local_spec(30, false));
    let out = dir.join("out");
    let o = run(&["run", s(&spec), "--out", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dataset = std::fs::read(out.join("dataset.jsonl")).expect("dataset");

    // A finished run is not re-run: exit 0, the dataset untouched.
    let before = std::fs::metadata(out.join("dataset.jsonl"))
        .and_then(|m| m.modified())
        .expect("mtime");
    let o = run(&["run", s(&spec), "--out", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("already holds this run's finished dataset"));
    let after = std::fs::metadata(out.join("dataset.jsonl"))
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(before, after);
    assert_eq!(
        std::fs::read(out.join("dataset.jsonl")).expect("dataset"),
        dataset
    );

    let o = run(&["run", s(&spec), "--out", s(&out), "--seed", "7"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("seed (checkpoint 0, this run 7)"),
        "{}",
        stderr(&o)
    );
    let o = run(&["run", s(&spec), "--out", s(&out), "--records", "40"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("records (checkpoint 30, this run 40)"),
        "{}",
        stderr(&o)
    );
    let mut other = local_spec(30, false);
    other["columns"][0]["sampler"]["values"] = json!(["a", "c"]);
    let other = write_spec(&dir, "other", &other);
    let o = run(&["run", s(&other), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("workflow spec (fingerprint"),
        "{}",
        stderr(&o)
    );
    // Every refusal left the dataset alone.
    assert_eq!(
        std::fs::read(out.join("dataset.jsonl")).expect("dataset"),
        dataset
    );

    // --fresh discards and starts over with the new settings.
    let o = run(&[
        "run",
        s(&spec),
        "--out",
        s(&out),
        "--records",
        "40",
        "--fresh",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sum = json_file(&out.join("summary.json"));
    assert_eq!(sum["records_written"], 40);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_checkpoints_and_orphan_datasets_are_errors_naming_the_file() {
    let dir = scratch("damaged");
    let spec = write_spec(&dir, "spec", &local_spec(30, false));
    let out = dir.join("out");
    let o = run(&["run", s(&spec), "--out", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cp = out.join("checkpoint.json");
    let good = std::fs::read_to_string(&cp).expect("checkpoint");
    for damaged in [
        "",
        "   \n",
        &good[..good.len() / 2],
        "{\"not\": \"a checkpoint\"}",
    ] {
        std::fs::write(&cp, damaged).expect("write");
        let o = run(&["run", s(&spec), "--out", s(&out), "--quiet"]);
        assert_eq!(o.status.code(), Some(2), "{damaged:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("checkpoint.json is damaged"), "{err}");
        assert!(err.contains("--fresh"), "{err}");
        assert!(out.join("dataset.jsonl").metadata().expect("kept").len() > 0);
    }
    // A dataset without any checkpoint is not silently truncated either.
    std::fs::remove_file(&cp).expect("rm");
    let o = run(&["run", s(&spec), "--out", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no checkpoint.json"), "{}", stderr(&o));
    // A dataset shorter than its checkpoint says.
    std::fs::write(&cp, &good).expect("restore");
    std::fs::write(out.join("dataset.jsonl"), b"{}\n").expect("truncate");
    let o = run(&["run", s(&spec), "--out", s(&out), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is shorter"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_run_on_a_locked_directory_is_refused_and_sigterm_stops_like_sigint() {
    let dir = scratch("lock");
    let out = dir.join("out");
    let mut first = spawn_quickstart(&out, "20000");
    wait_for_checkpoint(&mut first, &out, 1);
    let o = run(&[
        "run",
        s(&quickstart()),
        "--records",
        "20000",
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let pid = first.id().to_string();
    assert!(
        stderr(&o).contains(&format!("in use by process {pid}")),
        "{}",
        stderr(&o)
    );
    // Even --fresh does not take a locked directory.
    let o = run(&[
        "run",
        s(&quickstart()),
        "--out",
        s(&out),
        "--fresh",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    signal(&first, "-TERM");
    let done = first.wait_with_output().expect("wait");
    assert_eq!(done.status.code(), Some(143), "{}", stderr(&done));
    assert!(
        stderr(&done).contains("terminated (SIGTERM)"),
        "{}",
        stderr(&done)
    );
    // Summary, report and checkpoint were written, no lease leaked.
    let sum = json_file(&out.join("summary.json"));
    assert_eq!(sum["final_task_snapshot"]["active_leases"], 0);
    assert_eq!(sum["final_request_snapshot"]["active_leases"], 0);
    assert_eq!(sum["stop_reason"], "terminated (SIGTERM)");
    assert!(out.join("report.html").is_file());
    let cp = json_file(&out.join("checkpoint.json"));
    assert_eq!(cp["complete"], false);
    assert_eq!(cp["records_written"], sum["records_written"]);
    // The dataset has whole lines only, each once.
    let text = std::fs::read_to_string(out.join("dataset.jsonl")).expect("dataset");
    assert!(text.is_empty() || text.ends_with('\n'));
    assert_eq!(
        text.lines().count() as u64,
        cp["records_written"].as_u64().unwrap_or(0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigint_exits_130_and_counters_survive_kill_9_and_resume() {
    let dir = scratch("kill9");
    let out = dir.join("out");
    let records = "3000";
    let mut child = spawn_quickstart(&out, records);
    wait_for_checkpoint(&mut child, &out, 2);
    child.kill().expect("kill -9");
    let _ = child.wait();
    let cp = json_file(&out.join("checkpoint.json"));
    let carried_attempts = cp["carried"]["requests"]["attempts"].as_u64().unwrap_or(0);
    // Quickstart makes 3 calls per record: the checkpoint carries at least the calls of the
    // records it claims (it used to carry nothing until a clean exit).
    assert!(
        carried_attempts >= 3 * cp["records_written"].as_u64().unwrap_or(0),
        "{cp:#}"
    );

    let mut child = spawn_quickstart(&out, records);
    wait_for_checkpoint(
        &mut child,
        &out,
        cp["row_groups_written"].as_u64().unwrap_or(0) + 1,
    );
    signal(&child, "-INT");
    let done = child.wait_with_output().expect("wait");
    assert_eq!(done.status.code(), Some(130), "{}", stderr(&done));
    assert!(
        stderr(&done).contains("interrupted (SIGINT)"),
        "{}",
        stderr(&done)
    );

    let o = run(&[
        "run",
        s(&quickstart()),
        "--records",
        records,
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sum = json_file(&out.join("summary.json"));
    assert_eq!(sum["records_written"], 3000);
    // Every call of the dataset is counted across the three sessions (kill -9 included).
    assert!(
        sum["requests"]["attempts"].as_u64().unwrap_or(0) >= 9000,
        "{sum:#}"
    );
    assert!(
        sum["requests"]["succeeded"].as_u64().unwrap_or(0) >= 9000,
        "{sum:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_events_stay_small_and_full_is_one_flag_away() {
    let dir = scratch("events");
    let out = dir.join("notable");
    let o = run(&[
        "run",
        s(&quickstart()),
        "--records",
        "500",
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let own: u64 = std::fs::read_dir(&out)
        .expect("out")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "dataset.jsonl")
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(
        own / 500 < 2048,
        "{own} bytes of own outputs for 500 records"
    );
    let full = dir.join("full");
    let o = run(&[
        "run",
        s(&quickstart()),
        "--records",
        "500",
        "--out",
        s(&full),
        "--quiet",
        "--events",
        "full",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let notable = std::fs::metadata(out.join("events.jsonl"))
        .expect("events")
        .len();
    let all = std::fs::metadata(full.join("events.jsonl"))
        .expect("events")
        .len();
    assert!(all > 10 * notable.max(1), "full {all} vs notable {notable}");
    // The report shows the same numbers either way (its collector sees every event).
    let a = json_file(&out.join("summary.json"));
    let b = json_file(&full.join("summary.json"));
    assert_eq!(a["requests"]["attempts"], b["requests"]["attempts"]);
    assert_eq!(a["tasks"], b["tasks"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The specs `weir validate` accepted and `weir run` crashed on (or hung, or refused with
/// another message): both commands now refuse them with exit 2 and the same path.
#[test]
fn specs_that_crashed_the_run_are_refused_by_validate_and_run_alike() {
    let dir = scratch("bounds");
    let base = |f: &dyn Fn(&mut Value)| {
        let mut v = json!({
            "name": "b", "records": 5,
            "providers": [{"name": "sim", "kind": "simulated", "models": [
                {"model_id": "m", "capacity": 4, "latency_ms": {"dist": "fixed", "value": 1}}]}],
            "models": [{"alias": "w", "provider": "sim", "model_id": "m"}],
            "columns": [
                {"name": "t", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"], "weights": [1, 1]}},
                {"name": "u", "kind": "sampler", "sampler": {"type": "uniform_float", "low": 0, "high": 1}},
                {"name": "c", "kind": "custom", "model": "w", "calls": {"min": 1, "max": 2}}
            ]
        });
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "weights 1e308",
            base(&|v| v["columns"][0]["sampler"]["weights"] = json!([1e308, 1e308])),
            "columns[0].sampler.weights",
        ),
        (
            "calls.max u32::MAX",
            base(&|v| v["columns"][2]["calls"]["max"] = json!(4_294_967_295u64)),
            "columns[2].calls.max",
        ),
        (
            "buffer_size u64::MAX",
            base(&|v| v["buffer_size"] = json!(u64::MAX)),
            "buffer_size",
        ),
        (
            "uniform_float ±1e308",
            base(&|v| {
                v["columns"][1]["sampler"]["low"] = json!(-1e308);
                v["columns"][1]["sampler"]["high"] = json!(1e308);
            }),
            "columns[1].sampler.high",
        ),
        (
            "latency max f64::MAX",
            base(&|v| {
                v["providers"][0]["models"][0]["latency_ms"] =
                    json!({"dist": "uniform", "min": 0, "max": f64::MAX})
            }),
            "providers[0].models[0].latency_ms.max",
        ),
        (
            "latency 1e308 ms",
            base(&|v| v["providers"][0]["models"][0]["latency_ms"]["value"] = json!(1e308)),
            "providers[0].models[0].latency_ms.value",
        ),
        (
            "cooldown 2e9 s",
            base(&|v| v["request_admission"] = json!({"cooldown_seconds": 2e9})),
            "request_admission.cooldown_seconds",
        ),
        (
            "startup ramp 2e9 s",
            base(&|v| v["request_admission"] = json!({"startup_ramp_seconds": 2e9})),
            "request_admission.startup_ramp_seconds",
        ),
        (
            "records u64::MAX",
            base(&|v| v["records"] = json!(u64::MAX)),
            "records",
        ),
        (
            "row groups u32::MAX",
            base(&|v| v["max_concurrent_row_groups"] = json!(4_294_967_295u64)),
            "max_concurrent_row_groups",
        ),
    ];
    for (what, spec, path) in cases {
        let file = write_spec(&dir, "case", &spec);
        let v = run(&["validate", s(&file)]);
        let out = dir.join("out");
        let r = run(&["run", s(&file), "--out", s(&out), "--quiet"]);
        assert_eq!(v.status.code(), Some(2), "{what}: validate {}", stderr(&v));
        assert_eq!(r.status.code(), Some(2), "{what}: run {}", stderr(&r));
        assert!(
            stderr(&v).contains(&format!("{path}: ")),
            "{what}: {}",
            stderr(&v)
        );
        assert_eq!(stderr(&v), stderr(&r), "{what}: validate and run disagree");
        assert!(!out.exists(), "{what}: run created its output directory");
    }
    // A URL the provider cannot parse: the same refusal from both commands.
    let mut spec = base(&|_| {});
    spec["providers"] = json!([{"name": "api", "kind": "openai", "base_url": "http://[::1", "api_key_env": "WEIR_FUZZ_KEY"}]);
    spec["models"] = json!([{"alias": "w", "provider": "api", "model_id": "m"}]);
    let file = write_spec(&dir, "url", &spec);
    let v = weir()
        .args(["validate", s(&file)])
        .env("WEIR_FUZZ_KEY", "k")
        .output()
        .expect("spawn");
    let r = weir()
        .args(["run", s(&file), "--out", s(&dir.join("o"))])
        .env("WEIR_FUZZ_KEY", "k")
        .output()
        .expect("spawn");
    assert_eq!(
        (v.status.code(), r.status.code()),
        (Some(2), Some(2)),
        "{}",
        stderr(&v)
    );
    assert!(
        stderr(&v).contains("providers[0].base_url"),
        "{}",
        stderr(&v)
    );
    assert_eq!(stderr(&v), stderr(&r));
    let _ = std::fs::remove_dir_all(&dir);
}
