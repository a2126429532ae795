//! The lower bound of an HTTP run (the built `weir` binary against weir-testkit's loopback
//! server): learned from `x-ratelimit-*` headers, taken from a configured `rate_limits`, or
//! reported as unknown (with the reason) when neither exists — in `summary.json` and the report.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use weir_testkit::{LoopbackConfig, LoopbackServer, Overflow, RetryAfter};

const KEY: &str = "sk-lower-bound-test";

/// Runs `records` rows of one `llm_text` column against `config` and returns (summary.json,
/// report.html).
fn run(
    tag: &str,
    config: LoopbackConfig,
    rate_limits: Option<Value>,
    records: u64,
) -> (Value, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(LoopbackServer::start(config.api_key(KEY)))
        .expect("bind 127.0.0.1");
    // A wide static cap: its term (calls × mean latency / cap) stays far below the budget's
    // even when a loaded machine inflates the measured latency tenfold.
    let mut model = json!({"alias": "writer", "provider": "remote", "model_id": "m1",
                           "max_parallel_requests": 64});
    if let Some(r) = rate_limits {
        model["rate_limits"] = r;
    }
    let spec = json!({
        "name": format!("bound-{tag}"), "records": records, "seed": 5, "buffer_size": 10,
        "providers": [{"name": "remote", "kind": "openai", "base_url": server.base_url(),
                       "api_key_env": "WEIR_LOWER_BOUND_KEY", "timeout_s": 10, "pool_size": 16}],
        "models": [model],
        "columns": [
            {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"]}},
            {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "Write about {{ topic }}"}
        ]
    });
    let dir: PathBuf =
        std::env::temp_dir().join(format!("weir-lower-bound-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("spec.json");
    let out_dir = dir.join("out");
    std::fs::write(&file, spec.to_string()).expect("write spec");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", file.to_str().expect("utf8"), "--quiet", "--out"])
        .arg(&out_dir)
        .env("WEIR_LOWER_BOUND_KEY", KEY)
        .output()
        .expect("spawn weir");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("summary.json")).expect("summary.json"),
    )
    .expect("JSON");
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("report.html");
    let _ = std::fs::remove_dir_all(&dir);
    (summary, html)
}

/// The bound holds (a run never beats its own lower bound) and equals `lower_bound.seconds`.
fn check_known(summary: &Value) -> &Value {
    let seconds = summary["lower_bound_seconds"]
        .as_f64()
        .expect("a known bound");
    assert_eq!(summary["lower_bound"]["seconds"].as_f64(), Some(seconds));
    let wall = summary["wall_seconds"].as_f64().expect("wall");
    assert!(
        seconds > 0.0 && seconds <= wall,
        "bound {seconds} vs wall {wall}"
    );
    &summary["lower_bound"]["binding"]
}

#[test]
fn request_bucket_with_headers_gives_a_learned_bound() {
    // 20 requests/s with a burst of 5, reported as `x-ratelimit-limit-requests: 1200`.
    let config = LoopbackConfig::new()
        .capacity(32)
        .latency(Duration::from_millis(5))
        .request_bucket(20.0, 5)
        .rate_limit_headers(true)
        .overflow(Overflow::RateLimit(Some(RetryAfter::Millis(50))));
    let (summary, html) = run("learned", config, None, 40);
    let binding = check_known(&summary);
    assert_eq!(binding["limit"], "requests_per_minute", "{summary:#}");
    assert_eq!(binding["source"], "learned");
    assert_eq!(binding["limit_value"].as_f64(), Some(1200.0));
    assert_eq!(binding["units"].as_u64(), Some(40));
    assert!(html.contains("learned from the provider&#39;s x-ratelimit-* headers"));
}

#[test]
fn configured_rate_limits_give_a_configured_bound() {
    let config = LoopbackConfig::new()
        .capacity(32)
        .latency(Duration::from_millis(5));
    let (summary, html) = run(
        "configured",
        config,
        Some(json!({"requests_per_minute": 1200})),
        30,
    );
    let binding = check_known(&summary);
    assert_eq!(binding["limit"], "requests_per_minute", "{summary:#}");
    assert_eq!(binding["source"], "configured");
    assert_eq!(binding["limit_value"].as_f64(), Some(1200.0));
    // Burst of one unit (the default): 29 calls paced at 20/s.
    let seconds = summary["lower_bound_seconds"].as_f64().unwrap_or(0.0);
    assert!((seconds - 29.0 / 20.0).abs() < 1e-9, "{seconds}");
    assert!(html.contains("configured in rate_limits"));
}

#[test]
fn no_known_limit_says_unknown_and_why() {
    let config = LoopbackConfig::new()
        .capacity(32)
        .latency(Duration::from_millis(5));
    let (summary, html) = run("unknown", config, None, 20);
    assert_eq!(summary["lower_bound_seconds"], Value::Null, "{summary:#}");
    let bound = &summary["lower_bound"];
    assert_eq!(bound["binding"], Value::Null);
    let why = bound["explanation"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("Unknown: no request or token limit is known for remote/m1"),
        "{why}"
    );
    assert!(why.contains("static cap of 64 alone would allow"), "{why}");
    assert_eq!(bound["endpoints"][0]["calls"].as_u64(), Some(20));
    assert!(html.contains("<b>unknown</b>"));
    assert!(html.contains("Lower bound: Unknown: no request or token limit"));
}
