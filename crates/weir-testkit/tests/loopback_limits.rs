//! The loopback server's endpoint behaviours over real sockets on 127.0.0.1: each test sends a
//! bounded number of requests and asserts counts, statuses and headers, never timings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_testkit::{LoopbackConfig, LoopbackServer, Overflow};

/// One reply: status, lower-cased headers, body, and how many reads it took to arrive whole.
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
    first_read_complete: bool,
}

async fn post(addr: SocketAddr, body: &str) -> Reply {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: loopback\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut first = vec![0u8; 64 * 1024];
    let n = conn.read(&mut first).await.expect("read");
    first.truncate(n);
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.expect("read rest");
    let first_text = String::from_utf8_lossy(&first).into_owned();
    let text = format!("{first_text}{}", String::from_utf8_lossy(&rest));
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let first_read_complete = first_text
        .split_once("\r\n\r\n")
        .is_some_and(|(_, b)| b.len() == length);
    Reply {
        status,
        headers,
        body: body.to_owned(),
        first_read_complete,
    }
}

fn chat(content: &str, max_tokens: Option<u64>) -> String {
    let mut v =
        serde_json::json!({"model": "m1", "messages": [{"role": "user", "content": content}]});
    if let Some(m) = max_tokens {
        v["max_tokens"] = m.into();
    }
    v.to_string()
}

async fn server(config: LoopbackConfig) -> LoopbackServer {
    LoopbackServer::start(config.latency(Duration::from_millis(1)))
        .await
        .expect("bind 127.0.0.1")
}

#[tokio::test]
async fn every_reply_arrives_in_one_write_with_usage() {
    let s = server(LoopbackConfig::new()).await;
    for _ in 0..5 {
        let r = post(s.addr(), &chat("twelve chars", Some(4))).await;
        assert_eq!(r.status, 200);
        assert!(r.first_read_complete, "head and body in one segment");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(v["usage"]["prompt_tokens"], 3, "⌈12 / 4⌉");
        assert_eq!(v["usage"]["completion_tokens"], 4, "capped by max_tokens");
        assert_eq!(v["usage"]["total_tokens"], 7);
    }
    let r = post(s.addr(), "not json").await;
    assert_eq!(r.status, 400);
    assert!(r.first_read_complete);
}

#[tokio::test]
async fn request_bucket_refuses_past_its_burst_with_headers_on_every_reply() {
    // 0.01 requests/s: nothing refills during the test, so the counts are exact.
    let s = server(
        LoopbackConfig::new()
            .request_bucket(0.01, 5)
            .rate_limit_headers(true),
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = post(s.addr(), &chat("hi", None)).await;
        assert_eq!(
            r.headers["x-ratelimit-limit-requests"], "1",
            "0.01/s = 0.6/min ≈ 1"
        );
        let remaining: u64 = r.headers["x-ratelimit-remaining-requests"]
            .parse()
            .expect("number");
        assert_eq!(remaining, 4u64.saturating_sub(i), "after request {i}");
        assert!(r.headers["x-ratelimit-reset-requests"].ends_with('s'));
        if r.status == 429 {
            assert!(r.headers.contains_key("retry-after-ms"));
            assert!(!r.headers.contains_key("retry-after"));
            assert!(r.body.contains("\"type\":\"requests\""));
            assert!(r.body.contains("Please try again in"));
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    let st = s.stats();
    assert_eq!((st.ok, st.bucket_rate_limited), (5, 3));
    assert_eq!(st.all_rate_limited(), 3);
}

#[tokio::test]
async fn fixed_window_answers_429_without_retry_after() {
    let s = server(LoopbackConfig::new().fixed_window(3, Duration::from_secs(3_600))).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = post(s.addr(), &chat("hi", None)).await;
        if r.status == 429 {
            assert!(!r.headers.contains_key("retry-after"));
            assert!(!r.headers.contains_key("retry-after-ms"));
            assert!(r.body.contains("throttling_error"));
        }
        assert!(
            !r.headers.contains_key("x-ratelimit-limit-requests"),
            "headers off"
        );
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(s.stats().window_rate_limited, 2);
}

#[tokio::test]
async fn token_bucket_charges_prompt_estimate_plus_max_tokens() {
    // Each request: ⌈8 / 4⌉ = 2 prompt tokens + 40 max_tokens = 42; burst 100 fits two.
    let s = server(
        LoopbackConfig::new()
            .token_bucket(1, 100)
            .rate_limit_headers(true),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = post(s.addr(), &chat("8 chars!", Some(40))).await;
        assert_eq!(r.headers["x-ratelimit-limit-tokens"], "1");
        if r.status == 429 {
            assert!(r.body.contains("\"type\":\"tokens\""));
            assert_eq!(r.headers["x-ratelimit-remaining-tokens"], "16");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    let st = s.stats();
    assert_eq!((st.token_rate_limited, st.tokens_charged), (2, 84));
}

#[tokio::test]
async fn sporadic_429s_are_seeded_and_carry_no_retry_after() {
    let count = |probability: f64, seed: u64| async move {
        let s = server(LoopbackConfig::new().sporadic_429(probability, seed)).await;
        let mut refused = 0;
        for _ in 0..30 {
            let r = post(s.addr(), &chat("hi", None)).await;
            if r.status == 429 {
                assert!(!r.headers.contains_key("retry-after"));
                refused += 1;
            }
        }
        assert_eq!(s.stats().sporadic_rate_limited, refused);
        refused
    };
    assert_eq!(count(0.0, 1).await, 0);
    assert_eq!(count(1.0, 1).await, 30);
    let a = count(0.3, 7).await;
    assert_eq!(a, count(0.3, 7).await, "same seed, same sequential draws");
    assert!((1..30).contains(&a));
}

#[tokio::test]
async fn queueing_server_never_refuses_and_serves_at_its_scheduled_capacity() {
    // The schedule steps 4 → 1 at t = 0: one request served at a time, the rest queue.
    let s = LoopbackServer::start(
        LoopbackConfig::new()
            .capacity(4)
            .capacity_at(Duration::ZERO, 1)
            .latency(Duration::from_millis(20))
            .overflow(Overflow::Queue),
    )
    .await
    .expect("bind");
    let addr = s.addr();
    let replies = futures_join(
        (0..6)
            .map(|_| tokio::spawn(async move { post(addr, &chat("hi", None)).await.status }))
            .collect(),
    )
    .await;
    assert_eq!(replies, vec![200; 6]);
    let st = s.stats();
    assert_eq!((st.ok, st.all_rate_limited(), st.overloaded), (6, 0, 0));
    assert_eq!(st.max_active, 1);
    assert_eq!((st.active, st.in_flight), (0, 0));
    assert_eq!(st.service_micros, 6 * 20_000);
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("joined"));
    }
    out
}

#[tokio::test]
async fn lognormal_latency_is_seeded() {
    let total = |seed: u64| async move {
        let s = LoopbackServer::start(
            LoopbackConfig::new()
                .latency(Duration::from_millis(2))
                .lognormal_latency(0.5, seed),
        )
        .await
        .expect("bind");
        for _ in 0..10 {
            assert_eq!(post(s.addr(), &chat("hi", None)).await.status, 200);
        }
        s.stats().service_micros
    };
    let a = total(3).await;
    assert_eq!(a, total(3).await);
    assert_ne!(a, 10 * 2_000, "drawn, not fixed");
}

#[tokio::test]
async fn invalid_settings_name_the_field() {
    let err = LoopbackServer::start(LoopbackConfig::new().request_bucket(0.0, 1))
        .await
        .expect_err("invalid");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("request_bucket.per_second"));
    let err = LoopbackServer::start(LoopbackConfig::new().capacity_at(Duration::ZERO, 2))
        .await
        .expect_err("invalid");
    assert!(err.to_string().contains("capacity_schedule"));
}
