//! End-to-end tests of the `weir` binary: malformed specs (exit 2, JSON path, no output
//! directory), every example validates, `weir examples`, and `weir report` re-rendering.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn weir(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("spawn weir")
}

fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weir-cli-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn base() -> Value {
    json!({
        "name": "demo", "records": 20, "seed": 42,
        "buffer_size": 10, "max_concurrent_row_groups": 3,
        "providers": [
            {"name": "sim", "kind": "simulated", "models": [
                {"model_id": "m1", "capacity": 32, "latency_ms": {"dist": "fixed", "value": 100},
                 "retry_after_s": 1.0, "rpm": null, "error_rate": 0.0, "timeout_rate": 0.0,
                 "capacity_schedule": [{"at_s": 30.0, "capacity": 16}]}]}
        ],
        "models": [{"alias": "writer", "provider": "sim", "model_id": "m1", "max_parallel_requests": 128}],
        "columns": [
            {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"]}},
            {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "Write about {{ topic }}"},
            {"name": "extra", "kind": "custom", "model": "writer", "calls": {"min": 0, "max": 3}, "depends_on": ["draft"]},
            {"name": "score", "kind": "llm_judge", "model": "writer", "prompt": "Rate {{ draft }}"},
            {"name": "title", "kind": "expression", "template": "{{ topic }}: {{ score }}"}
        ],
        "request_admission": {"multiplicative_decrease_factor": 0.75, "additive_increase_step": 1,
            "successes_until_increase": 25, "cooldown_seconds": 2.0, "startup_ramp_seconds": 0.0}
    })
}

/// A named spec mutation and the stderr fragment it must produce (JSON path + what is wrong).
type Case = (&'static str, Box<dyn Fn(&mut Value)>, &'static str);

fn malformed() -> Vec<Case> {
    vec![
        (
            "unknown top-level field",
            Box::new(|v| v["colums"] = json!([])),
            "colums: unknown field",
        ),
        (
            "unknown column field",
            Box::new(|v| v["columns"][1]["modle"] = json!("x")),
            "columns[1].modle: unknown field",
        ),
        (
            "wrong type",
            Box::new(|v| v["records"] = json!("ten")),
            "records: invalid type: string",
        ),
        (
            "records 0",
            Box::new(|v| v["records"] = json!(0)),
            "records: must be at least 1",
        ),
        (
            "no columns",
            Box::new(|v| v["columns"] = json!([])),
            "columns: a workflow needs at least one column",
        ),
        (
            "missing columns",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("columns");
            }),
            "columns: required field is missing",
        ),
        (
            "unknown alias",
            Box::new(|v| v["columns"][1]["model"] = json!("writr")),
            r#"columns[1].model: unknown model alias "writr""#,
        ),
        (
            "unknown column ref",
            Box::new(|v| v["columns"][1]["prompt"] = json!("About {{ topc }}")),
            r#"columns[1].prompt: unknown column "topc""#,
        ),
        (
            "unknown depends_on",
            Box::new(|v| v["columns"][2]["depends_on"] = json!(["nope"])),
            r#"columns[2].depends_on[0]: unknown column "nope""#,
        ),
        (
            "cycle",
            Box::new(|v| {
                v["columns"][0] =
                    json!({"name": "topic", "kind": "expression", "template": "{{ title }}"})
            }),
            "columns[0]: dependency cycle: topic -> title -> topic",
        ),
        (
            "duplicate column",
            Box::new(|v| v["columns"][4]["name"] = json!("draft")),
            r#"columns[4].name: duplicate column name "draft""#,
        ),
        (
            "max_parallel_requests 0",
            Box::new(|v| v["models"][0]["max_parallel_requests"] = json!(0)),
            "models[0].max_parallel_requests: must be at least 1",
        ),
        (
            "bad latency dist",
            Box::new(|v| {
                v["providers"][0]["models"][0]["latency_ms"] = json!({"dist": "gauss", "value": 1})
            }),
            "providers[0].models[0].latency_ms.dist: unknown variant `gauss`",
        ),
        (
            "bad latency param",
            Box::new(|v| {
                v["providers"][0]["models"][0]["latency_ms"] =
                    json!({"dist": "uniform", "min": 50, "max": 10})
            }),
            "providers[0].models[0].latency_ms.",
        ),
        (
            "custom min > max",
            Box::new(|v| v["columns"][2]["calls"] = json!({"min": 4, "max": 1})),
            "columns[2].calls.min: min (4) must not exceed max (1)",
        ),
        (
            "sampler low > high",
            Box::new(|v| {
                v["columns"][0]["sampler"] = json!({"type": "uniform_int", "low": 9, "high": 1})
            }),
            "columns[0].sampler.low: low (9) must not exceed high (1)",
        ),
        (
            "empty category",
            Box::new(|v| v["columns"][0]["sampler"]["values"] = json!([])),
            "columns[0].sampler.values: must list at least one value",
        ),
        (
            "weights mismatch",
            Box::new(|v| v["columns"][0]["sampler"]["weights"] = json!([1.0])),
            "columns[0].sampler.weights: expected 2 weights",
        ),
        (
            "weights all zero",
            Box::new(|v| v["columns"][0]["sampler"]["weights"] = json!([0, 0])),
            "columns[0].sampler.weights: must not all be zero",
        ),
        (
            "negative weight",
            Box::new(|v| v["columns"][0]["sampler"]["weights"] = json!([1, -1])),
            "columns[0].sampler.weights[1]: must be finite and ≥ 0",
        ),
        (
            "llm column without model",
            Box::new(|v| {
                v["columns"][3].as_object_mut().unwrap().remove("model");
            }),
            r#"columns[3].model: required for columns of kind "llm_judge""#,
        ),
        (
            "unknown provider",
            Box::new(|v| v["models"][0]["provider"] = json!("nope")),
            r#"models[0].provider: unknown provider "nope""#,
        ),
        (
            "undeclared model id",
            Box::new(|v| v["models"][0]["model_id"] = json!("m9")),
            r#"models[0].model_id: provider "sim" declares no model "m9""#,
        ),
        (
            "duplicate alias",
            Box::new(|v| {
                let m = v["models"][0].clone();
                v["models"].as_array_mut().unwrap().push(m);
            }),
            r#"models[1].alias: duplicate model alias "writer""#,
        ),
        (
            "duplicate provider",
            Box::new(|v| {
                let p = v["providers"][0].clone();
                v["providers"].as_array_mut().unwrap().push(p);
            }),
            r#"providers[1].name: duplicate provider name "sim""#,
        ),
        (
            "bad decrease factor",
            Box::new(|v| v["request_admission"]["multiplicative_decrease_factor"] = json!(1.5)),
            "request_admission.multiplicative_decrease_factor: must be strictly between 0 and 1",
        ),
        (
            "zero cooldown",
            Box::new(|v| v["request_admission"]["cooldown_seconds"] = json!(0.0)),
            "request_admission.cooldown_seconds: must be",
        ),
        (
            "buffer_size 0",
            Box::new(|v| v["buffer_size"] = json!(0)),
            "buffer_size: must be at least 1",
        ),
        (
            "bad strategy",
            Box::new(|v| v["columns"][1]["strategy"] = json!("full_column")),
            r#"columns[1].strategy: kind "llm_text" supports only the "cell" strategy"#,
        ),
        (
            "field of another kind",
            Box::new(|v| v["columns"][0]["prompt"] = json!("x")),
            r#"columns[0].prompt: not used by columns of kind "sampler""#,
        ),
        (
            "bad capacity",
            Box::new(|v| v["providers"][0]["models"][0]["capacity"] = json!(0)),
            "providers[0].models[0].capacity: must be ≥ 1",
        ),
    ]
}

#[test]
fn malformed_specs_exit_2_name_the_path_and_create_nothing() {
    let dir = scratch("malformed");
    let mut failures = Vec::new();
    for (i, (name, mutate, expected)) in malformed().into_iter().enumerate() {
        let mut spec = base();
        mutate(&mut spec);
        let file = dir.join(format!("case{i}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
        let out_dir = dir.join(format!("out{i}"));
        for args in [
            vec!["validate", file.to_str().unwrap()],
            vec![
                "run",
                file.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
            ],
        ] {
            let out = weir(&args, &dir);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(2) || !stderr.contains(expected) {
                failures.push(format!(
                    "{name} ({}): exit {:?}, stderr: {stderr}\n  expected: {expected}",
                    args[0],
                    out.status.code()
                ));
            }
        }
        assert!(!out_dir.exists(), "{name}: output directory was created");
        assert!(
            !dir.join("weir-out").exists(),
            "{name}: default output directory was created"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn syntax_errors_and_missing_files_exit_2() {
    let dir = scratch("syntax");
    let file = dir.join("bad.json");
    std::fs::write(&file, r#"{"name": "x", "records": 1,, }"#).unwrap();
    let out = weir(&["validate", file.to_str().unwrap()], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 column"));
    let out = weir(&["run", "does-not-exist.json"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
    assert!(!dir.join("weir-out").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn overrides_are_validated() {
    let dir = scratch("override");
    let file = dir.join("ok.json");
    std::fs::write(&file, base().to_string()).unwrap();
    let out = weir(&["run", file.to_str().unwrap(), "--records", "0"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("records: must be at least 1"));
    assert!(!dir.join("weir-out").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn openai_provider_validates_offline_and_needs_its_key_to_run() {
    let dir = scratch("openai");
    let mut spec = base();
    spec["providers"].as_array_mut().unwrap().push(json!({
        "name": "remote", "kind": "openai", "base_url": "https://api.example.com/v1",
        "api_key_env": "EXAMPLE_KEY", "timeout_s": 30.0, "pool_size": 16
    }));
    let file = dir.join("openai.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let out = weir(&["validate", file.to_str().unwrap()], &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without its API key variable the run is refused before anything is created.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", file.to_str().unwrap()])
        .current_dir(&dir)
        .env_remove("EXAMPLE_KEY")
        .output()
        .expect("spawn weir");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("providers[1].api_key_env"));
    assert!(!dir.join("weir-out").exists());
    // An openai provider with a simulated-only field is an error at that field.
    spec["providers"][1]["models"] = json!([]);
    std::fs::write(&file, spec.to_string()).unwrap();
    let out = weir(&["validate", file.to_str().unwrap()], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("providers[1].models: not used by providers of kind \"openai\""));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_example_validates_from_file_and_by_name() {
    let dir = scratch("examples");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let out = weir(&["validate", path.to_str().unwrap()], &dir);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            names.push(path.file_stem().unwrap().to_string_lossy().to_string());
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "cross-provider-cooldown",
            "dual-model-judge",
            "heavy-root",
            "quickstart",
            "rate-limited",
            "structured"
        ]
    );
    for name in &names {
        let out = weir(&["validate", name], &dir);
        assert_eq!(out.status.code(), Some(0), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn examples_lists_all_six_and_prints_one() {
    let dir = scratch("list");
    let out = weir(&["examples"], &dir);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in [
        "quickstart",
        "heavy-root",
        "dual-model-judge",
        "rate-limited",
        "cross-provider-cooldown",
        "structured",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in {stdout}"));
        assert!(line.len() > name.len() + 10, "{name} has no description");
    }
    let out = weir(&["examples", "rate-limited"], &dir);
    assert_eq!(out.status.code(), Some(0));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["name"], "rate-limited");
    let out = weir(&["examples", "nope"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch("usage");
    let out = weir(&["run"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let out = weir(&["run", "x.json", "--events", "some"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_rerenders_from_report_data_and_rejects_a_missing_one() {
    let dir = scratch("report");
    let out = weir(&["report", dir.to_str().unwrap()], &dir);
    assert_eq!(out.status.code(), Some(2));
    let data = json!({
        "workflow": "re<render>", "description": null, "status": "completed",
        "summary": serde_json::to_value(weir_cli::summary::Summary::new(5)).unwrap(),
        "capacity_plan": null,
        "series": {"duration_seconds": 1.0, "records_completed": [[0.5, 5.0]], "row_groups_in_flight": [[0.1, 1.0]], "models": []}
    });
    std::fs::write(dir.join("report-data.json"), data.to_string()).unwrap();
    let out = weir(&["report", dir.to_str().unwrap()], &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("re&lt;render&gt;"));
    let _ = std::fs::remove_dir_all(&dir);
}
