//! SimulatedProvider behaviour under paused tokio time: latency, hidden capacity, rpm, schedule,
//! fault injection, deterministic output and cancellation.

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};
use weir_contracts::{Fnv64, RequestDomain};
use weir_runtime::inference::{ChatOptions, InferenceParams, ResponseFormat};
use weir_runtime::provider::simulated::{
    simulated_embedding, simulated_text, EMBEDDING_DIM, RATE_LIMIT_LATENCY,
};
use weir_runtime::provider::{
    LatencyDist, ModelProvider, ProviderErrorKind, ProviderRequest, ProviderResponse,
    SimulatedModelConfig, SimulatedProvider,
};

fn chat(model: &str, input: &str) -> ProviderRequest {
    ProviderRequest::new(model, RequestDomain::Chat, input)
}

fn fixed(model: &str, capacity: u32, ms: f64) -> SimulatedModelConfig {
    SimulatedModelConfig::new(model, capacity, LatencyDist::fixed_ms(ms))
}

/// Spawns `n` concurrent calls and lets them all arrive (they are in flight afterwards).
async fn spawn_calls(
    provider: &Arc<SimulatedProvider>,
    model: &str,
    n: usize,
) -> JoinSet<Result<ProviderResponse, weir_runtime::provider::ProviderError>> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let p = provider.clone();
        let req = chat(model, &format!("prompt {i}"));
        set.spawn(async move { p.call(req).await });
    }
    // Let every spawned task reach the provider; no timer is due in between.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    set
}

async fn outcomes(
    mut set: JoinSet<Result<ProviderResponse, weir_runtime::provider::ProviderError>>,
) -> (usize, usize) {
    let (mut ok, mut limited) = (0, 0);
    while let Some(joined) = set.join_next().await {
        match joined.expect("call task panicked") {
            Ok(_) => ok += 1,
            Err(e) if e.kind == ProviderErrorKind::RateLimited => limited += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    (ok, limited)
}

#[tokio::test(start_paused = true)]
async fn fixed_latency_is_exact() {
    let provider = SimulatedProvider::single(fixed("m1", 4, 100.0), 1).unwrap();
    let start = Instant::now();
    let response = provider.call(chat("m1", "hi")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(response.status, 200);
    let stats = provider.stats("m1").unwrap();
    assert_eq!((stats.calls, stats.succeeded, stats.in_flight), (1, 1, 0));
    assert_eq!(stats.max_in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn call_beyond_hidden_capacity_gets_fast_429_with_retry_after() {
    let config = fixed("m1", 4, 1000.0).with_retry_after_s(2.5);
    let provider = Arc::new(SimulatedProvider::single(config, 1).unwrap());
    let start = Instant::now();
    let set = spawn_calls(&provider, "m1", 4).await;
    assert_eq!(provider.stats("m1").unwrap().in_flight, 4);

    let before = Instant::now();
    let err = provider.call(chat("m1", "fifth")).await.unwrap_err();
    assert_eq!(before.elapsed(), RATE_LIMIT_LATENCY, "429 must be fast");
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert_eq!(err.status, Some(429));
    assert_eq!(err.retry_after, Some(Duration::from_millis(2500)));

    assert_eq!(outcomes(set).await, (4, 0));
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
    let stats = provider.stats("m1").unwrap();
    assert_eq!(stats.calls, 5);
    assert_eq!(stats.succeeded, 4);
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.max_in_flight, 4);
    assert_eq!(stats.in_flight, 0);

    // Capacity is free again.
    provider.call(chat("m1", "later")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn capacity_429_without_retry_after_sends_none() {
    let provider = Arc::new(SimulatedProvider::single(fixed("m1", 1, 500.0), 1).unwrap());
    let mut set = spawn_calls(&provider, "m1", 2).await;
    let mut rejected = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined.expect("call task panicked") {
            rejected.push((e.kind, e.retry_after));
        }
    }
    assert_eq!(rejected, vec![(ProviderErrorKind::RateLimited, None)]);
}

#[tokio::test(start_paused = true)]
async fn rpm_limit_rejects_excess_until_the_window_frees_a_slot() {
    let config = fixed("m1", 100, 10.0).with_rpm(3);
    let provider = SimulatedProvider::single(config, 1).unwrap();
    let start = Instant::now();
    for i in 0..3 {
        provider.call(chat("m1", &format!("{i}"))).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_millis(30));

    let err = provider.call(chat("m1", "fourth")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    // The first call entered the window at t=0, so the next slot opens at t=60 s.
    let retry_after = err.retry_after.expect("rpm 429 carries Retry-After");
    assert_eq!(retry_after, Duration::from_millis(60_000 - 30));

    // Just before the slot opens: still limited. At the slot: served.
    sleep_until(start + Duration::from_millis(59_990)).await;
    assert!(provider.call(chat("m1", "early")).await.is_err());
    sleep_until(start + Duration::from_secs(60)).await;
    provider.call(chat("m1", "on time")).await.unwrap();

    let stats = provider.stats("m1").unwrap();
    assert_eq!(
        (stats.calls, stats.succeeded, stats.rate_limited),
        (6, 4, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn capacity_schedule_switches_at_its_time() {
    let config = fixed("m1", 4, 1000.0).with_capacity_at(30.0, 2);
    let provider = Arc::new(SimulatedProvider::single(config, 1).unwrap());
    let start = provider.started_at();

    assert_eq!(provider.capacity_now("m1"), Some(4));
    let (ok, limited) = outcomes(spawn_calls(&provider, "m1", 5).await).await;
    assert_eq!((ok, limited), (4, 1));

    sleep_until(start + Duration::from_millis(29_999)).await;
    assert_eq!(provider.capacity_now("m1"), Some(4));
    // Three calls arriving just before the switch are all served (they were admitted under C=4).
    let set = spawn_calls(&provider, "m1", 3).await;
    sleep_until(start + Duration::from_secs(30)).await;
    assert_eq!(provider.capacity_now("m1"), Some(2));
    // Three in flight, capacity now 2: any new arrival is rejected.
    let err = provider.call(chat("m1", "over")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert_eq!(outcomes(set).await, (3, 0));

    // With nothing in flight, only two of three concurrent arrivals fit.
    let (ok, limited) = outcomes(spawn_calls(&provider, "m1", 3).await).await;
    assert_eq!((ok, limited), (2, 1));
    assert_eq!(provider.stats("m1").unwrap().max_in_flight, 4);
}

async fn run_faults(seed: u64, calls: usize) -> (u64, u64, u64) {
    let config = fixed("m1", 1000, 10.0).with_faults(0.1, 0.05);
    let provider = SimulatedProvider::single(config, seed).unwrap();
    for i in 0..calls {
        let result = provider.call(chat("m1", &format!("{i}"))).await;
        if let Err(e) = result {
            match e.kind {
                ProviderErrorKind::ServerError => assert_eq!(e.status, Some(500)),
                ProviderErrorKind::Timeout => assert_eq!(e.status, None),
                other => panic!("unexpected kind {other:?}"),
            }
        }
    }
    let s = provider.stats("m1").unwrap();
    assert_eq!(s.succeeded + s.server_errors + s.timeouts, calls as u64);
    (s.succeeded, s.server_errors, s.timeouts)
}

#[tokio::test(start_paused = true)]
async fn fault_injection_rates_are_about_right_and_deterministic_per_seed() {
    let (ok, errors, timeouts) = run_faults(42, 2000).await;
    assert!((140..=260).contains(&errors), "server errors {errors}");
    assert!((60..=140).contains(&timeouts), "timeouts {timeouts}");
    assert_eq!(ok + errors + timeouts, 2000);
    // Same seed, same counts.
    assert_eq!(run_faults(42, 2000).await, (ok, errors, timeouts));
}

#[tokio::test(start_paused = true)]
async fn injected_timeout_waits_the_shorter_of_request_timeout_and_five_mean_latencies() {
    let config = fixed("m1", 10, 100.0).with_faults(0.0, 1.0);
    let provider = SimulatedProvider::single(config, 3).unwrap();

    let start = Instant::now();
    let err = provider.call(chat("m1", "a")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Timeout);
    assert_eq!(start.elapsed(), Duration::from_millis(500));

    let start = Instant::now();
    let req = chat("m1", "b").with_timeout(Duration::from_millis(200));
    provider.call(req).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(provider.stats("m1").unwrap().timeouts, 2);
}

#[tokio::test(start_paused = true)]
async fn latency_beyond_the_request_timeout_times_out_at_the_timeout() {
    let provider = SimulatedProvider::single(fixed("m1", 10, 100.0), 3).unwrap();
    let start = Instant::now();
    let req = chat("m1", "slow").with_timeout(Duration::from_millis(40));
    let err = provider.call(req).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Timeout);
    assert_eq!(start.elapsed(), Duration::from_millis(40));
    // A timeout at least as long as the latency does not fire.
    let req = chat("m1", "ok").with_timeout(Duration::from_millis(100));
    provider.call(req).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn output_is_a_pure_function_of_model_and_input() {
    let a = SimulatedProvider::single(fixed("m1", 4, 5.0), 1).unwrap();
    let b = SimulatedProvider::single(fixed("m1", 4, 5.0), 999).unwrap();
    let ta = a
        .call(chat("m1", "same prompt"))
        .await
        .unwrap()
        .text
        .unwrap();
    let tb = b
        .call(chat("m1", "same prompt"))
        .await
        .unwrap()
        .text
        .unwrap();
    assert_eq!(ta, tb);
    assert_eq!(ta, simulated_text("m1", "same prompt"));

    let mut h = Fnv64::new();
    h.write(b"same prompt");
    let hash = h.finish();
    let prefix = format!("{}/10 sim:m1:{hash:016x} ", 1 + (hash >> 60) % 10);
    assert!(ta.starts_with(&prefix), "{ta}");
    assert_eq!(ta[prefix.len()..].split(' ').count(), 4);

    let other = a
        .call(chat("m1", "other prompt"))
        .await
        .unwrap()
        .text
        .unwrap();
    assert_ne!(ta, other);

    let req = ProviderRequest::new("m1", RequestDomain::Embedding, "embed me");
    let e1 = a.call(req.clone()).await.unwrap();
    let e2 = b.call(req).await.unwrap();
    assert_eq!(e1.text, None);
    let v = e1.embedding.unwrap();
    assert_eq!(Some(v.clone()), e2.embedding);
    assert_eq!(v.len(), EMBEDDING_DIM);
    assert_eq!(v, simulated_embedding("embed me"));
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    assert_ne!(v, simulated_embedding("embed you"));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_future_frees_its_in_flight_slot() {
    let provider = Arc::new(SimulatedProvider::single(fixed("m1", 1, 1000.0), 1).unwrap());

    // Dropped in place by a timeout wrapper.
    let timed =
        tokio::time::timeout(Duration::from_millis(50), provider.call(chat("m1", "a"))).await;
    assert!(timed.is_err());
    let stats = provider.stats("m1").unwrap();
    assert_eq!((stats.in_flight, stats.cancelled), (0, 1));

    // Aborted as a spawned task.
    let p = provider.clone();
    let handle = tokio::spawn(async move { p.call(chat("m1", "b")).await });
    sleep(Duration::from_millis(10)).await;
    assert_eq!(provider.stats("m1").unwrap().in_flight, 1);
    handle.abort();
    assert!(handle.await.unwrap_err().is_cancelled());
    let stats = provider.stats("m1").unwrap();
    assert_eq!((stats.in_flight, stats.cancelled), (0, 2));

    // The single slot is usable again.
    provider.call(chat("m1", "c")).await.unwrap();
    assert_eq!(provider.stats("m1").unwrap().succeeded, 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_model_is_a_client_404() {
    let provider = SimulatedProvider::single(fixed("m1", 1, 1.0), 1).unwrap();
    let err = provider.call(chat("nope", "x")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Client);
    assert_eq!(err.status, Some(404));
    assert!(!err.retryable());
    assert!(provider.stats("nope").is_none());
}

#[tokio::test(start_paused = true)]
async fn models_are_independent_and_object_safe() {
    let provider: Arc<dyn ModelProvider> = Arc::new(
        SimulatedProvider::new("sim", 5, vec![fixed("a", 1, 100.0), fixed("b", 1, 300.0)]).unwrap(),
    );
    assert_eq!(provider.name(), "sim");
    let start = Instant::now();
    let (a, b) = tokio::join!(provider.call(chat("a", "x")), provider.call(chat("b", "x")));
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

async fn measured_mean_ms(dist: LatencyDist, calls: u32) -> f64 {
    let config = SimulatedModelConfig::new("m1", 10, dist);
    let provider = SimulatedProvider::single(config, 11).unwrap();
    let start = Instant::now();
    for i in 0..calls {
        provider.call(chat("m1", &format!("{i}"))).await.unwrap();
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(calls)
}

#[tokio::test(start_paused = true)]
async fn sampled_latencies_match_the_configured_mean() {
    for dist in [
        LatencyDist::Uniform {
            min: 50.0,
            max: 150.0,
        },
        LatencyDist::Lognormal {
            median: 100.0,
            sigma: 0.5,
        },
        LatencyDist::Beta {
            alpha: 2.0,
            beta: 5.0,
            scale: 700.0,
        },
    ] {
        let expected = dist.mean_ms();
        let measured = measured_mean_ms(dist.clone(), 2000).await;
        // Timer resolution rounds each sleep up to the next millisecond (≤ +1 ms per call).
        assert!(
            (measured - expected).abs() / expected < 0.06,
            "{dist:?}: measured {measured}, expected {expected}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn max_tokens_bounds_the_reply_and_its_usage() {
    let provider = SimulatedProvider::single(fixed("m", 4, 5.0), 1).unwrap();
    let with = |max_tokens: u32| {
        let inference: InferenceParams =
            serde_json::from_value(serde_json::json!({"max_tokens": max_tokens})).unwrap();
        chat("m", "hello").with_options(ChatOptions {
            inference,
            ..ChatOptions::default()
        })
    };
    for n in [1u32, 3, 40] {
        let r = provider.call(with(n)).await.unwrap();
        let text = r.text.unwrap();
        assert_eq!(text.split(' ').count(), n as usize, "{text}");
        assert_eq!(r.usage.unwrap().output_tokens, u64::from(n));
    }
    // Without max_tokens: the configured default (16) as usage, the usual six-word text.
    let r = provider.call(chat("m", "hello")).await.unwrap();
    assert_eq!(r.usage.unwrap().output_tokens, 16);
    assert_eq!(r.text.unwrap(), simulated_text("m", "hello"));
    // An explicit output_tokens is the model's natural length, capped by max_tokens.
    let mut natural = fixed("m", 4, 5.0);
    natural.output_tokens = Some(5);
    let short = SimulatedProvider::single(natural, 1).unwrap();
    assert_eq!(
        short
            .call(with(3))
            .await
            .unwrap()
            .usage
            .unwrap()
            .output_tokens,
        3
    );
    assert_eq!(
        short
            .call(with(50))
            .await
            .unwrap()
            .usage
            .unwrap()
            .output_tokens,
        5
    );
}

#[tokio::test(start_paused = true)]
async fn structured_requests_get_schema_conforming_json() {
    let provider = SimulatedProvider::single(fixed("m", 4, 5.0), 1).unwrap();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
        },
        "required": ["name", "rating", "tags"],
        "additionalProperties": false
    });
    let validator = check_by_hand;
    for i in 0..20 {
        let req = chat("m", &format!("p{i}")).with_options(ChatOptions {
            response_format: Some(ResponseFormat::json_schema("x", schema.clone())),
            ..ChatOptions::default()
        });
        let text = provider.call(req.clone()).await.unwrap().text.unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        validator(&v);
        assert_eq!(provider.call(req).await.unwrap().text.unwrap(), text);
    }
}

/// The schema above, checked by hand (the test does not use the validator it would test).
fn check_by_hand(v: &serde_json::Value) {
    assert!(v["name"].is_string(), "{v}");
    let r = v["rating"].as_i64().unwrap();
    assert!((1..=5).contains(&r), "{v}");
    assert!(v["tags"].as_array().unwrap().len() <= 2, "{v}");
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
}
