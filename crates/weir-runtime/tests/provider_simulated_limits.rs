//! SimulatedProvider endpoint behaviours under paused tokio time: request bucket, fixed window,
//! tokens-per-minute bucket, sporadic 429s, rate-limit observations, `usage`, and the vLLM-like
//! queueing mode (with a capacity schedule and cancellation).

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{advance, Instant};
use weir_contracts::{RateLimitSignal, RequestDomain, TokenUsage, WindowObservation};
use weir_runtime::provider::{
    LatencyDist, ModelProvider, ProviderError, ProviderErrorKind, ProviderRequest,
    ProviderResponse, SimulatedModelConfig, SimulatedProvider,
};

fn chat(input: &str) -> ProviderRequest {
    ProviderRequest::new("m1", RequestDomain::Chat, input)
}

fn fixed(capacity: u32, ms: f64) -> SimulatedModelConfig {
    SimulatedModelConfig::new("m1", capacity, LatencyDist::fixed_ms(ms))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Outcome = Result<ProviderResponse, ProviderError>;

/// `n` concurrent calls, all arrived before any timer fires; each reports its finish time.
async fn concurrent(provider: &Arc<SimulatedProvider>, n: usize) -> JoinSet<(Outcome, Duration)> {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..n {
        let p = provider.clone();
        set.spawn(async move {
            let r = p.call(chat(&format!("prompt {i}"))).await;
            (r, start.elapsed())
        });
    }
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    set
}

async fn collect(mut set: JoinSet<(Outcome, Duration)>) -> Vec<(Outcome, Duration)> {
    let mut out = Vec::new();
    while let Some(j) = set.join_next().await {
        out.push(j.expect("call task"));
    }
    out.sort_by_key(|(_, t)| *t);
    out
}

#[tokio::test(start_paused = true)]
async fn request_bucket_admits_its_burst_then_one_call_per_refill() {
    let p = Arc::new(
        SimulatedProvider::single(fixed(100, 50.0).with_request_bucket(10.0, 3), 1).unwrap(),
    );
    let results = collect(concurrent(&p, 5).await).await;
    let errors: Vec<&ProviderError> = results
        .iter()
        .filter_map(|(r, _)| r.as_ref().err())
        .collect();
    assert_eq!(errors.len(), 2);
    for e in errors {
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(ms(100)), "one call back after 1/rate");
        assert_eq!(e.rate_limit_signal, Some(RateLimitSignal::RequestWindow));
    }
    // 50 ms have passed: half a call refilled, not enough.
    assert!(p.call(chat("x")).await.is_err());
    advance(ms(50)).await;
    assert!(p.call(chat("x")).await.is_ok());
    let st = p.stats("m1").unwrap();
    assert_eq!(
        (st.succeeded, st.rate_limited, st.bucket_rate_limited),
        (4, 3, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn fixed_window_refuses_without_retry_after_until_it_rolls() {
    let p = SimulatedProvider::single(fixed(100, 10.0).with_fixed_window(2, 6.0), 1).unwrap();
    let start = Instant::now();
    assert!(p.call(chat("a")).await.is_ok());
    assert!(p.call(chat("b")).await.is_ok());
    let err = p.call(chat("c")).await.unwrap_err();
    assert_eq!(err.retry_after, None, "LiteLLM-style: no Retry-After");
    assert_eq!(err.rate_limit_signal, Some(RateLimitSignal::RequestWindow));
    tokio::time::sleep_until(start + Duration::from_secs(6)).await;
    assert!(p.call(chat("d")).await.is_ok(), "the next window");
    let st = p.stats("m1").unwrap();
    assert_eq!((st.succeeded, st.window_rate_limited), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn token_bucket_charges_prompt_estimate_plus_max_tokens() {
    // 600 tokens/min = 10/s, burst 50. A 40-char prompt is 10 tokens + 16 max_tokens = 26.
    let p = SimulatedProvider::single(fixed(100, 10.0).with_token_bucket(600, 50), 1).unwrap();
    let prompt = "x".repeat(40);
    let start = Instant::now();
    let ok = p.call(chat(&prompt)).await.unwrap();
    assert_eq!(
        ok.usage,
        Some(TokenUsage {
            input_tokens: 10,
            output_tokens: 16
        })
    );
    let err = p.call(chat(&prompt)).await.unwrap_err();
    assert_eq!(err.rate_limit_signal, Some(RateLimitSignal::TokenWindow));
    // 24 left (+0.11 refilled over the 11 ms so far); 26 needed at 10 tokens/s.
    let wait = err.retry_after.expect("retry after");
    assert!(wait > ms(180) && wait <= ms(200), "{wait:?}");
    tokio::time::sleep_until(start + ms(11) + wait).await;
    assert!(p.call(chat(&prompt)).await.is_ok());
    let st = p.stats("m1").unwrap();
    assert_eq!((st.token_rate_limited, st.tokens_charged), (1, 52));
}

#[tokio::test(start_paused = true)]
async fn sporadic_429s_are_seeded_and_unrelated_to_load() {
    let run = |seed| async move {
        let p =
            SimulatedProvider::single(fixed(1_000, 1.0).with_sporadic_429_rate(0.2), seed).unwrap();
        let mut refused = Vec::new();
        for i in 0..500 {
            if let Err(e) = p.call(chat(&format!("p{i}"))).await {
                assert_eq!((e.retry_after, e.rate_limit_signal), (None, None));
                refused.push(i);
            }
        }
        assert_eq!(
            p.stats("m1").unwrap().sporadic_rate_limited,
            refused.len() as u64
        );
        refused
    };
    let a = run(5).await;
    assert_eq!(a, run(5).await);
    assert!((70..=130).contains(&a.len()), "{} of 500 at 20 %", a.len());
    assert_ne!(a, run(6).await);
}

#[tokio::test(start_paused = true)]
async fn budgets_are_reported_on_every_answer_when_headers_are_on() {
    let config = fixed(100, 10.0)
        .with_request_bucket(2.0, 4)
        .with_token_bucket(6_000, 1_000)
        .with_rate_limit_headers();
    let p = SimulatedProvider::single(config, 1).unwrap();
    let ok = p.call(chat("12345678")).await.unwrap();
    let rl = ok.rate_limits.expect("reported");
    assert_eq!(
        rl.requests,
        WindowObservation {
            limit: Some(120),
            remaining: Some(3),
            reset_after: Some(ms(500)),
        }
    );
    // 2 + 16 = 18 tokens charged of 1,000.
    assert_eq!(rl.tokens.limit, Some(6_000));
    assert_eq!(rl.tokens.remaining, Some(982));
    for _ in 0..3 {
        p.call(chat("y")).await.unwrap();
    }
    let err = p.call(chat("y")).await.unwrap_err();
    let rl = err.rate_limits.expect("reported on a 429 too");
    assert_eq!(rl.requests.remaining, Some(0));
    // Headers off: nothing reported.
    let quiet = SimulatedProvider::single(fixed(1, 10.0), 1).unwrap();
    let r = quiet.call(chat("z")).await.unwrap();
    assert_eq!(r.rate_limits, None);
    assert_eq!(r.usage.map(|u| u.input_tokens), Some(1));
}

#[tokio::test(start_paused = true)]
async fn queueing_never_refuses_and_latency_grows_past_capacity() {
    let p = Arc::new(SimulatedProvider::single(fixed(2, 100.0).with_queueing(), 1).unwrap());
    let results = collect(concurrent(&p, 6).await).await;
    let finish: Vec<Duration> = results
        .iter()
        .map(|(r, t)| {
            assert!(r.is_ok(), "{r:?}");
            *t
        })
        .collect();
    assert_eq!(
        finish,
        [ms(100), ms(100), ms(200), ms(200), ms(300), ms(300)]
    );
    let st = p.stats("m1").unwrap();
    assert_eq!(
        (st.rate_limited, st.queued, st.max_in_flight, st.in_flight),
        (0, 4, 2, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn queueing_follows_the_capacity_schedule() {
    // Capacity 1 until 150 ms, then 3: the queue drains faster after the step-up.
    let config = fixed(1, 100.0).with_capacity_at(0.15, 3).with_queueing();
    let p = Arc::new(SimulatedProvider::single(config, 1).unwrap());
    let results = collect(concurrent(&p, 5).await).await;
    let finish: Vec<Duration> = results.iter().map(|(_, t)| *t).collect();
    // 1 at 100 ms; at its release (100 ms) capacity is still 1 → 1 more until 200 ms; at
    // 200 ms capacity is 3 → the last 3 run together until 300 ms.
    assert_eq!(finish, [ms(100), ms(200), ms(300), ms(300), ms(300)]);
    assert_eq!(p.stats("m1").unwrap().max_in_flight, 3);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_queued_call_gives_its_place_up() {
    let p = Arc::new(SimulatedProvider::single(fixed(1, 100.0).with_queueing(), 1).unwrap());
    let first = {
        let p = p.clone();
        tokio::spawn(async move { p.call(chat("a")).await })
    };
    tokio::task::yield_now().await;
    let leaver = {
        let p = p.clone();
        tokio::spawn(async move { p.call(chat("b")).await })
    };
    tokio::task::yield_now().await;
    let third = {
        let p = p.clone();
        tokio::spawn(async move { (p.call(chat("c")).await, Instant::now()) })
    };
    tokio::task::yield_now().await;
    leaver.abort();
    let _ = leaver.await;
    let start = Instant::now();
    assert!(first.await.unwrap().is_ok());
    let (r, at) = third.await.unwrap();
    assert!(r.is_ok());
    assert_eq!(at - start, ms(200), "the third moved up behind the first");
    let st = p.stats("m1").unwrap();
    assert_eq!((st.succeeded, st.cancelled, st.in_flight), (2, 1, 0));
}

#[test]
fn new_settings_parse_from_json_and_name_bad_fields() {
    let ok = SimulatedModelConfig::from_json(
        r#"{"model_id": "m1", "capacity": 32, "latency_ms": {"dist": "fixed", "value": 100},
            "request_bucket": {"per_second": 200, "burst": 20},
            "fixed_window": {"limit": 1000, "window_s": 6},
            "token_bucket": {"tokens_per_minute": 360000, "burst": 400},
            "max_tokens": 32, "output_tokens": 8, "sporadic_429_rate": 0.05,
            "rate_limit_headers": true, "queueing": true}"#,
    )
    .unwrap();
    assert_eq!(ok.max_tokens, 32);
    assert!(ok.queueing && ok.rate_limit_headers);
    let base = r#""model_id": "m1", "capacity": 1, "latency_ms": {"dist": "fixed", "value": 1}"#;
    for (extra, field) in [
        (
            r#""request_bucket": {"per_second": 0, "burst": 1}"#,
            "request_bucket.per_second",
        ),
        (
            r#""request_bucket": {"per_second": 1, "burst": 0}"#,
            "request_bucket.burst",
        ),
        (
            r#""fixed_window": {"limit": 0, "window_s": 1}"#,
            "fixed_window.limit",
        ),
        (
            r#""fixed_window": {"limit": 1, "window_s": -1}"#,
            "fixed_window.window_s",
        ),
        (
            r#""token_bucket": {"tokens_per_minute": 0, "burst": 1}"#,
            "token_bucket.tokens_per_minute",
        ),
        (
            r#""token_bucket": {"tokens_per_minute": 1, "burst": 0}"#,
            "token_bucket.burst",
        ),
        (r#""sporadic_429_rate": 1.5"#, "sporadic_429_rate"),
        (
            r#""fixed_window": {"limit": 1, "window_s": 1, "x": 1}"#,
            "<json>",
        ),
    ] {
        let err = SimulatedModelConfig::from_json(&format!("{{{base}, {extra}}}")).unwrap_err();
        assert_eq!(err.field, field, "{extra}");
    }
}

#[test]
fn lower_bound_includes_bucket_and_window() {
    let b = fixed(1_000, 100.0).with_request_bucket(200.0, 20);
    assert!((b.lower_bound_seconds(3_000, Some(128)) - 15.0).abs() < 1e-9);
    let w = fixed(1_000, 100.0).with_fixed_window(1_000, 6.0);
    assert!((w.lower_bound_seconds(3_000, Some(128)) - 12.1).abs() < 1e-9);
}
