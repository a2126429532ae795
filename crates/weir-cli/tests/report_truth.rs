//! The report tells the truth about endpoints and row groups: two aliases of one endpoint are
//! one row whose calls sum to what the server counted, and the row-groups-in-flight chart never
//! exceeds the configured cap (it reads the runtime's own figure).

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use weir_testkit::{LoopbackConfig, LoopbackServer, Overflow, RetryAfter};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-report-truth-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn shared_endpoint_is_one_row_and_row_groups_stay_under_their_cap() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(LoopbackServer::start(
            LoopbackConfig::new()
                .capacity(6)
                .latency(Duration::from_millis(5))
                .overflow(Overflow::RateLimit(Some(RetryAfter::Millis(50))))
                .api_key("sk-truth-test"),
        ))
        .expect("bind 127.0.0.1");
    let spec = json!({
        "name": "truth", "records": 120, "seed": 3,
        "buffer_size": 10, "max_concurrent_row_groups": 3,
        "providers": [{"name": "remote", "kind": "openai", "base_url": server.base_url(),
                       "api_key_env": "WEIR_REPORT_TRUTH_KEY",
                       "timeout_s": 10, "pool_size": 16}],
        "models": [
            {"alias": "writer", "provider": "remote", "model_id": "m1", "max_parallel_requests": 8},
            {"alias": "editor", "provider": "remote", "model_id": "m1", "max_parallel_requests": 8}
        ],
        "columns": [
            {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"]}},
            {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "Write about {{ topic }}"},
            {"name": "edit", "kind": "llm_text", "model": "editor", "prompt": "Edit {{ draft }}"}
        ]
    });
    let dir = scratch("run");
    let file = dir.join("spec.json");
    let out_dir = dir.join("out");
    std::fs::write(&file, spec.to_string()).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", file.to_str().expect("utf8"), "--out"])
        .arg(&out_dir)
        .arg("--quiet")
        .env("WEIR_REPORT_TRUTH_KEY", "sk-truth-test")
        .output()
        .expect("spawn weir");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out_dir.join(name)).expect(name))
            .expect("JSON")
    };
    let summary = read("summary.json");
    let rows = summary["per_model"].as_array().expect("per_model");
    assert_eq!(rows.len(), 1, "one endpoint, one row: {rows:?}");
    assert_eq!(rows[0]["aliases"], json!(["writer", "editor"]));
    let calls: u64 = rows
        .iter()
        .map(|r| r["attempts"].as_u64().unwrap_or(0))
        .sum();
    let stats = server.stats();
    assert_eq!(calls, stats.requests, "report calls vs server {stats:?}");
    assert_eq!(stats.ok, 240);

    let data = read("report-data.json");
    let points = data["series"]["row_groups_in_flight"]
        .as_array()
        .expect("row group series");
    assert!(!points.is_empty());
    let max = points
        .iter()
        .filter_map(|p| p[1].as_f64())
        .fold(0.0f64, f64::max);
    assert!(max <= 3.0, "row groups in flight {max} > cap 3");
    assert!(max >= 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}
