//! ScriptedProvider: per-model queues, delays, fallback, exhaustion, hang + cancellation.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::RequestDomain;
use weir_runtime::provider::{
    ModelProvider, ProviderError, ProviderErrorKind, ProviderRequest, ProviderResponse,
    ScriptedProvider, ScriptedStep,
};

fn chat(model: &str, input: &str) -> ProviderRequest {
    ProviderRequest::new(model, RequestDomain::Chat, input)
}

#[tokio::test(start_paused = true)]
async fn steps_are_served_per_model_in_order_with_their_delays() {
    let p = ScriptedProvider::new("scripted");
    p.push(
        "m1",
        ScriptedStep::text("first").after(Duration::from_millis(30)),
    )
    .push(
        "m1",
        ScriptedStep::err(ProviderError::rate_limited(Some(Duration::from_secs(1)))),
    )
    .push(
        "m2",
        ScriptedStep::ok(ProviderResponse::embedding(vec![1.0])),
    );
    assert_eq!(p.name(), "scripted");
    assert_eq!(p.remaining("m1"), 2);

    let start = Instant::now();
    let r = p.call(chat("m1", "a")).await.unwrap();
    assert_eq!(r.text.as_deref(), Some("first"));
    assert_eq!(start.elapsed(), Duration::from_millis(30));

    let e = p.call(chat("m1", "b")).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::RateLimited);
    let r = p.call(chat("m2", "c")).await.unwrap();
    assert_eq!(r.embedding, Some(vec![1.0]));

    // Exhausted: a typed error, not a panic.
    let e = p.call(chat("m1", "d")).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Malformed);

    let inputs: Vec<String> = p.requests().into_iter().map(|r| r.input).collect();
    assert_eq!(inputs, ["a", "b", "c", "d"]);
    assert_eq!(p.stats("m1").calls, 3);
    assert_eq!(p.stats("m1").in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_once_the_queue_is_empty() {
    let p = ScriptedProvider::new("scripted");
    p.push("m", ScriptedStep::err(ProviderError::server_error(502)))
        .set_fallback(ScriptedStep::text("again").after(Duration::from_millis(5)));
    assert!(p.call(chat("m", "1")).await.is_err());
    for _ in 0..3 {
        assert_eq!(
            p.call(chat("m", "x")).await.unwrap().text.as_deref(),
            Some("again")
        );
    }
    assert_eq!(p.call(chat("other", "y")).await.unwrap().status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_call_dropped_by_its_caller_is_counted_cancelled() {
    let p: Arc<ScriptedProvider> = Arc::new(ScriptedProvider::new("scripted"));
    p.extend(
        "m",
        [
            ScriptedStep::hang(),
            ScriptedStep::text("slow").after(Duration::from_secs(10)),
        ],
    );
    let as_dyn: Arc<dyn ModelProvider> = p.clone();
    let (hung, slow) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(60), as_dyn.call(chat("m", "h"))),
        as_dyn.call(chat("m", "s")),
    );
    assert!(hung.is_err(), "hang never finishes");
    assert_eq!(slow.unwrap().text.as_deref(), Some("slow"));
    let stats = p.stats("m");
    assert_eq!(stats.calls, 2);
    assert_eq!(stats.max_in_flight, 2);
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.cancelled, 1);
}
