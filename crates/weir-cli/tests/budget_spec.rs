//! `rate_limits` on a model entry: parsed with deny_unknown_fields, bounds checked with JSON
//! paths by both `weir validate` and `weir run` (exit 2), built into the runtime's aliases, and
//! merged by the tightest rule for aliases of one endpoint.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use weir_cli::spec::WorkflowSpec;
use weir_contracts::ProviderModelKey;
use weir_runtime::engine::Engine;

fn base() -> Value {
    json!({
        "name": "budget", "records": 4, "seed": 1,
        "providers": [{"name": "sim", "kind": "simulated", "models": [
            {"model_id": "m1", "capacity": 8, "latency_ms": {"dist": "fixed", "value": 10}}]}],
        "models": [
            {"alias": "fast", "provider": "sim", "model_id": "m1",
             "rate_limits": {"requests_per_minute": 600, "tokens_per_minute": 90000}},
            {"alias": "cheap", "provider": "sim", "model_id": "m1",
             "rate_limits": {"requests_per_minute": 120, "output_tokens_per_minute": 5000}}
        ],
        "columns": [
            {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a"]}},
            {"name": "draft", "kind": "llm_text", "model": "fast", "prompt": "Write {{ topic }}"},
            {"name": "note", "kind": "llm_text", "model": "cheap", "prompt": "Note {{ topic }}"}
        ]
    })
}

fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weir-budget-spec-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bad_rate_limits_exit_2_with_their_json_path_in_validate_and_run() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"requests_per_minute": 0}),
            "models[1].rate_limits.requests_per_minute: must be an integer in 1..=1000000000",
        ),
        (
            json!({"tokens_per_minute": 1_000_000_001u64}),
            "models[1].rate_limits.tokens_per_minute: must be an integer in 1..=1000000000",
        ),
        (
            json!({"input_tokens_per_minute": -5}),
            "models[1].rate_limits.input_tokens_per_minute: invalid value",
        ),
        (
            json!({"output_tokens_per_minute": 1.5}),
            "models[1].rate_limits.output_tokens_per_minute: invalid type",
        ),
        (
            json!({"rpm": 10}),
            "models[1].rate_limits.rpm: unknown field",
        ),
    ];
    let dir = scratch();
    let mut failures = Vec::new();
    for (i, (limits, expected)) in cases.into_iter().enumerate() {
        let mut spec = base();
        spec["models"][1]["rate_limits"] = limits;
        let file = dir.join(format!("case{i}.json"));
        std::fs::write(&file, spec.to_string()).unwrap();
        let out = dir.join(format!("out{i}"));
        for args in [
            vec!["validate", file.to_str().unwrap()],
            vec![
                "run",
                file.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        ] {
            let o = Command::new(env!("CARGO_BIN_EXE_weir"))
                .args(&args)
                .current_dir(&dir)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            if o.status.code() != Some(2) || !stderr.contains(expected) {
                failures.push(format!(
                    "{} case {i}: exit {:?}: {stderr}\n  expected {expected}",
                    args[0],
                    o.status.code()
                ));
            }
        }
        assert!(!out.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let mut spec = base();
    spec["models"][0]["rate_limits"] =
        json!({"requests_per_minute": 0, "output_tokens_per_minute": 0});
    let errors = WorkflowSpec::parse_and_validate(&spec.to_string()).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "models[0].rate_limits.requests_per_minute",
            "models[0].rate_limits.output_tokens_per_minute"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limits_reach_the_engine_and_aliases_of_one_endpoint_take_the_tightest() {
    let (spec, _) = WorkflowSpec::parse_and_validate(&base().to_string()).unwrap();
    let built = spec.build().unwrap();
    assert_eq!(built.models[0].rate_limits.requests_per_minute, Some(600));
    assert_eq!(
        built.models[1].rate_limits.output_tokens_per_minute,
        Some(5000)
    );
    let providers = built.engine_providers();
    let run = Engine::new(std::sync::Arc::new(built.workflow), providers)
        .prepare()
        .unwrap();
    let configured = run
        .executor()
        .budgets()
        .configured(&ProviderModelKey::new("sim", "m1").unwrap());
    assert_eq!(
        (
            configured.requests_per_minute,
            configured.tokens_per_minute,
            configured.input_tokens_per_minute,
            configured.output_tokens_per_minute
        ),
        (Some(120), Some(90_000), None, Some(5_000))
    );
    // The spec round-trips with the field (and without it when absent).
    let text = serde_json::to_string(&spec).unwrap();
    assert!(text.contains("\"rate_limits\""));
}
