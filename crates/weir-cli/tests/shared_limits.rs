//! `weir run --shared-limits`: three real `weir` processes (the built binary) against one
//! loopback endpoint of hidden capacity, sharing limits through a throwaway `redis-server`;
//! and an unreachable store at start is exit 3 naming the URL. No wall-clock bounds.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use weir_testkit::{LoopbackConfig, LoopbackServer, Overflow, RedisServer, RetryAfter};

const KEY: &str = "sk-shared-limits-test";

fn write_spec(dir: &Path, tag: &str, base_url: &str, records: u64) -> PathBuf {
    let spec = json!({
        "name": format!("shared-{tag}"), "records": records, "seed": 7, "buffer_size": 20,
        "providers": [{"name": "remote", "kind": "openai", "base_url": base_url,
                       "api_key_env": "WEIR_SHARED_LIMITS_KEY", "timeout_s": 10, "pool_size": 32}],
        "models": [{"alias": "writer", "provider": "remote", "model_id": "m1",
                    "max_parallel_requests": 32}],
        "columns": [
            {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"]}},
            {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "Write about {{ topic }}"}
        ]
    });
    let file = dir.join(format!("{tag}.json"));
    std::fs::write(&file, spec.to_string()).expect("write spec");
    file
}

fn weir(spec: &Path, out: &Path, redis_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.args([
        "run",
        spec.to_str().expect("utf8"),
        "--quiet",
        "--fresh",
        "--out",
    ])
    .arg(out)
    .args(["--shared-limits", redis_url])
    .env("WEIR_SHARED_LIMITS_KEY", KEY);
    c
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-shared-limits-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn three_processes_stay_near_the_hidden_capacity_and_all_finish() {
    let Some(redis) = RedisServer::start_or_skip("three_processes_share_limits") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // Hidden capacity 6: each process alone would open at 8 (its slow start) and grow.
    let server = rt
        .block_on(LoopbackServer::start(
            LoopbackConfig::new()
                .api_key(KEY)
                .capacity(6)
                .latency(Duration::from_millis(20))
                .overflow(Overflow::RateLimit(Some(RetryAfter::Millis(200)))),
        ))
        .expect("bind 127.0.0.1");
    let dir = scratch("three");
    let children: Vec<_> = (0..3)
        .map(|i| {
            let spec = write_spec(&dir, &format!("w{i}"), &server.base_url(), 60);
            let mut c = weir(&spec, &dir.join(format!("out{i}")), &redis.url());
            // The third says what it would do without the store (never needed here).
            if i == 2 {
                c.args(["--shared-fallback", "pause"]);
            }
            c.spawn().expect("spawn weir")
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(
            out.status.code(),
            Some(0),
            "worker {i} stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let st = server.stats();
    assert_eq!(st.ok, 180, "{st:?}");
    // The shared cap starts at 8 for all three together, then learns 6 from the 429s: the
    // server never sees the 24+ that three blind slow starts would open with.
    assert!(
        st.max_in_flight <= 6 + 3,
        "max in flight {} over capacity 6: {st:?}",
        st.max_in_flight
    );
    for i in 0..3 {
        let summary: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("out{i}")).join("summary.json"))
                .expect("summary.json"),
        )
        .expect("JSON");
        let shared = &summary["shared_limits"];
        assert_eq!(shared["backend"], "redis", "{summary:#}");
        assert_eq!(shared["mode"], "shared");
        assert!(shared["admissions"].as_u64() >= Some(60), "{shared:#}");
        assert_eq!(shared["endpoints"][0]["held"], 0);
        let fallback = if i == 2 { "paused" } else { "local_share" };
        assert_eq!(shared["fallback"], fallback, "{shared:#}");
        let html = std::fs::read_to_string(dir.join(format!("out{i}")).join("report.html"))
            .expect("report.html");
        assert!(
            html.contains("<h2>Shared limits</h2>"),
            "no shared-limits section"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_store_at_start_is_exit_3_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let url = format!("redis://127.0.0.1:{port}");
    let dir = scratch("unreachable");
    let spec = write_spec(&dir, "u", "http://127.0.0.1:9", 2);
    let out = weir(&spec, &dir.join("out"), &url)
        .output()
        .expect("spawn weir");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&url), "{stderr}");
    assert!(!dir.join("out").join("summary.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
