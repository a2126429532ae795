//! `weir validate` and `weir run` with an `openai` provider against the loopback server
//! (127.0.0.1, real sockets, bounded in time): validation needs no network, the key comes from
//! the named environment variable and never reaches any output file, and a run loses no record
//! and leaves no lease behind.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use weir_testkit::{LoopbackConfig, LoopbackServer, Overflow, RetryAfter};

const KEY_VAR: &str = "WEIR_HTTP_TEST_KEY";
const KEY: &str = "sk-cli-loopback-secret-42";

fn weir(args: &[&str], cwd: &Path, key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args).current_dir(cwd).env_remove(KEY_VAR);
    if let Some(k) = key {
        cmd.env(KEY_VAR, k);
    }
    cmd.output().expect("spawn weir")
}

fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weir-http-cli-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn spec(base_url: &str, records: u64) -> Value {
    json!({
        "name": "http-demo", "records": records, "seed": 7,
        "buffer_size": 50, "max_concurrent_row_groups": 3,
        "providers": [{
            "name": "remote", "kind": "openai", "base_url": base_url,
            "api_key_env": KEY_VAR, "timeout_s": 10, "pool_size": 32
        }],
        "models": [
            {"alias": "writer", "provider": "remote", "model_id": "m1", "max_parallel_requests": 32},
            {"alias": "embedder", "provider": "remote", "model_id": "e1", "max_parallel_requests": 8}
        ],
        "columns": [
            {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"]}},
            {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "Write about {{ topic }}"},
            {"name": "vec", "kind": "embedding", "model": "embedder", "input": "{{ draft }}"}
        ]
    })
}

#[test]
fn validate_checks_an_openai_provider_without_network_or_key() {
    let dir = scratch("validate");
    let file = dir.join("spec.json");
    // Port 9 on 127.0.0.1: nothing listens; validation must not try.
    std::fs::write(&file, spec("http://127.0.0.1:9/v1", 10).to_string()).expect("write");
    let out = weir(&["validate", file.to_str().expect("utf8")], &dir, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(KEY_VAR),
        "notice names the unset variable: {stdout}"
    );
    // A bad field is an error at its JSON path.
    let mut bad = spec("ftp://127.0.0.1:9", 10);
    bad["providers"][0]["pool_size"] = json!(0);
    std::fs::write(&file, bad.to_string()).expect("write");
    let out = weir(&["validate", file.to_str().expect("utf8")], &dir, None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("providers[0].base_url"), "{stderr}");
    assert!(stderr.contains("providers[0].pool_size"), "{stderr}");
    // `weir run` without the key fails at the field, before any output or request.
    std::fs::write(&file, spec("http://127.0.0.1:9/v1", 10).to_string()).expect("write");
    let out = weir(
        &[
            "run",
            file.to_str().expect("utf8"),
            "--out",
            dir.join("out").to_str().expect("utf8"),
        ],
        &dir,
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("providers[0].api_key_env"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weir_run_against_the_loopback_server_is_clean_and_keeps_the_key_secret() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(LoopbackServer::start(
            LoopbackConfig::new()
                .capacity(8)
                .latency(Duration::from_millis(20))
                .overflow(Overflow::RateLimit(Some(RetryAfter::Millis(100))))
                .api_key(KEY),
        ))
        .expect("bind 127.0.0.1");
    let dir = scratch("run");
    let file = dir.join("spec.json");
    let out_dir = dir.join("out");
    std::fs::write(&file, spec(&server.base_url(), 120).to_string()).expect("write");
    let out = weir(
        &[
            "run",
            file.to_str().expect("utf8"),
            "--out",
            out_dir.to_str().expect("utf8"),
            "--quiet",
        ],
        &dir,
        Some(KEY),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("summary.json")).expect("summary.json"),
    )
    .expect("summary is JSON");
    assert_eq!(summary["records_requested"], json!(120));
    assert_eq!(summary["records_written"], json!(120), "{summary}");
    assert_eq!(summary["final_request_snapshot"]["active_leases"], json!(0));
    assert_eq!(summary["final_task_snapshot"]["active_leases"], json!(0));
    let stats = server.stats();
    assert_eq!(stats.unauthorized, 0);
    assert_eq!(stats.ok, 240, "{stats:?}");
    assert!(stats.max_active <= 8);
    // The key never reaches any file the run wrote, nor the console.
    for entry in std::fs::read_dir(&out_dir).expect("out dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(KEY), "{} leaks the API key", path.display());
        }
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(KEY));
    let _ = std::fs::remove_dir_all(&dir);
}
