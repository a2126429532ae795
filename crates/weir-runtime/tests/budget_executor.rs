//! The executor with budgets and rate limits (paused time, scripted providers): rate-limited
//! attempts do not use `max_attempts`, back off per request, are bounded by
//! `max_rate_limit_wait`, and reservations settle or refund exactly once.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{
    ProviderModelKey, RateLimitObservation, RateLimitSignal, RequestDomain, RequestResourceKey,
    TokenUsage, WindowObservation,
};
use weir_request_admission::{
    AdaptiveRequestAdmissionController, BudgetConfig, BudgetKind, BudgetLedger, BudgetLimits,
    RequestAdmissionConfig,
};
use weir_runtime::executor::{ExecutorConfig, ModelRequestExecutor};
use weir_runtime::inference::{ChatOptions, InferenceParams};
use weir_runtime::model_facade::ModelCallErrorKind;
use weir_runtime::provider::{
    ProviderError, ProviderRequest, ProviderResponse, ScriptedProvider, ScriptedStep,
};
use weir_telemetry::EventStream;

fn resource() -> RequestResourceKey {
    RequestResourceKey::new("p", "m", RequestDomain::Chat).unwrap()
}

fn key() -> ProviderModelKey {
    ProviderModelKey::new("p", "m").unwrap()
}

fn executor(config: ExecutorConfig, limits: BudgetLimits) -> ModelRequestExecutor {
    let controller = Arc::new(
        AdaptiveRequestAdmissionController::new(RequestAdmissionConfig::default()).unwrap(),
    );
    controller.register("p", "m", "a", 8).unwrap();
    let ledger = BudgetLedger::new(BudgetConfig::default()).unwrap();
    ledger.register(&key(), limits).unwrap();
    ModelRequestExecutor::new(controller, EventStream::disabled(), config)
        .with_budgets(Arc::new(ledger))
}

fn request() -> ProviderRequest {
    ProviderRequest::new("m", RequestDomain::Chat, "x".repeat(400))
}

#[tokio::test(start_paused = true)]
async fn rate_limited_attempts_do_not_use_up_max_attempts() {
    let ex = executor(
        ExecutorConfig {
            max_attempts: 2,
            ..ExecutorConfig::default()
        },
        BudgetLimits::none(),
    );
    let p = ScriptedProvider::new("p");
    for _ in 0..6 {
        p.push(
            "m",
            ScriptedStep::err(ProviderError::rate_limited(Some(Duration::from_secs(1)))),
        );
    }
    p.push("m", ScriptedStep::text("ok"));
    let start = Instant::now();
    let r = ex.execute("a", &p, &resource(), request()).await.unwrap();
    assert_eq!(r.text.as_deref(), Some("ok"));
    let c = ex.attempt_counts()[&key()];
    assert_eq!((c.attempts, c.rate_limited, c.succeeded), (7, 6, 1));
    // Six Retry-After waits of 1 s, each with at most 25 % jitter on top.
    let e = start.elapsed();
    assert!(
        e >= Duration::from_secs(6) && e <= Duration::from_millis(7_500),
        "{e:?}"
    );
    let snap = ex.budgets().snapshot(&key(), Instant::now()).unwrap();
    assert_eq!(
        (snap.reservations, snap.settled, snap.outstanding),
        (7, 7, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_under_a_permanent_rate_limit_ends_typed_after_max_rate_limit_wait() {
    let ex = executor(
        ExecutorConfig {
            max_rate_limit_wait: Duration::from_secs(10),
            ..ExecutorConfig::default()
        },
        BudgetLimits::none(),
    );
    let p = ScriptedProvider::new("p");
    p.set_fallback(ScriptedStep::err(ProviderError::rate_limited(Some(
        Duration::from_secs(1),
    ))));
    let start = Instant::now();
    let e = ex
        .execute("a", &p, &resource(), request())
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, ModelCallErrorKind::RateLimited { .. }),
        "{e:?}"
    );
    assert!(e.message.contains("max_rate_limit_wait"), "{}", e.message);
    assert!(start.elapsed() <= Duration::from_secs(10));
    let c = ex.attempt_counts()[&key()];
    assert_eq!(c.rate_limit_wait_exhausted, 1);
    assert!(c.rate_limited >= 8, "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn a_429_without_retry_after_backs_off_exponentially_with_full_jitter() {
    let ex = executor(ExecutorConfig::default(), BudgetLimits::none());
    let p = ScriptedProvider::new("p");
    for _ in 0..4 {
        p.push("m", ScriptedStep::err(ProviderError::rate_limited(None)));
    }
    p.push("m", ScriptedStep::text("ok"));
    let start = Instant::now();
    ex.execute("a", &p, &resource(), request()).await.unwrap();
    // Ceilings 0.2 + 0.4 + 0.8 + 1.6 s; admission's own 2 s cooldown per 429 may add to it.
    let e = start.elapsed();
    assert!(
        e <= Duration::from_secs(3) + Duration::from_secs(8),
        "{e:?}"
    );
    assert_eq!(ex.attempt_counts()[&key()].rate_limited, 4);
}

fn window_429(retry_after: Duration) -> ProviderError {
    let mut e = ProviderError::rate_limited(Some(retry_after));
    e.rate_limit_signal = Some(RateLimitSignal::RequestWindow);
    e
}

#[tokio::test(start_paused = true)]
async fn a_window_429_blocks_the_budget_and_the_retry_waits_there() {
    let ex = executor(ExecutorConfig::default(), BudgetLimits::none());
    let p = ScriptedProvider::new("p");
    p.push("m", ScriptedStep::err(window_429(Duration::from_secs(2))));
    p.push("m", ScriptedStep::text("ok"));
    let start = Instant::now();
    ex.execute("a", &p, &resource(), request()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(2));
    let snap = ex.budgets().snapshot(&key(), Instant::now()).unwrap();
    let w = snap.window(BudgetKind::Requests).unwrap();
    assert_eq!(
        w.waits, 1,
        "the retry waited on the blocked window, not a sleep"
    );
    assert_eq!(snap.outstanding, 0);
}

#[tokio::test(start_paused = true)]
async fn usage_settles_the_token_reservation_and_headers_teach_the_limit() {
    let ex = executor(
        ExecutorConfig::default(),
        BudgetLimits::none().with_tokens_per_minute(60_000),
    );
    let p = ScriptedProvider::new("p");
    let mut ok = ProviderResponse::text("ok");
    ok.usage = Some(TokenUsage {
        input_tokens: 100,
        output_tokens: 6,
    });
    ok.rate_limits = Some(RateLimitObservation {
        requests: WindowObservation {
            limit: Some(120),
            remaining: Some(100),
            reset_after: Some(Duration::from_millis(500)),
        },
        ..RateLimitObservation::default()
    });
    p.push("m", ScriptedStep::ok(ok));
    ex.execute("a", &p, &resource(), request()).await.unwrap();
    let snap = ex.budgets().snapshot(&key(), Instant::now()).unwrap();
    let tokens = snap.window(BudgetKind::Tokens).unwrap();
    // Reserved 100 (400 chars / 4) + 256 (default output), used 106.
    assert_eq!(tokens.refunded_units, 250);
    let req = snap.window(BudgetKind::Requests).unwrap();
    assert_eq!(req.learned_per_minute, Some(120));
    assert_eq!(req.effective_per_minute, Some(120));
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_while_waiting_on_the_budget_leaves_nothing_behind() {
    let ex = Arc::new(executor(
        ExecutorConfig::default(),
        BudgetLimits::none().with_requests_per_minute(1),
    ));
    let p = Arc::new(ScriptedProvider::new("p"));
    p.set_fallback(ScriptedStep::text("ok"));
    ex.execute("a", p.as_ref(), &resource(), request())
        .await
        .unwrap();
    let (ex2, p2) = (ex.clone(), p.clone());
    let waiting =
        tokio::spawn(async move { ex2.execute("a", p2.as_ref(), &resource(), request()).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    waiting.abort();
    let _ = waiting.await;
    let snap = ex.budgets().snapshot(&key(), Instant::now()).unwrap();
    assert_eq!((snap.refunded, snap.outstanding), (1, 0));
    let pressure = ex.controller().pressure();
    let s = pressure.snapshot(&resource()).unwrap();
    assert_eq!((s.in_flight_count, s.waiters), (0, 0));
    assert_eq!(p.stats("m").calls, 1);
}

#[tokio::test(start_paused = true)]
async fn a_configured_max_tokens_is_the_output_part_of_the_token_estimate() {
    let limits = BudgetLimits {
        tokens_per_minute: Some(1_000_000),
        ..BudgetLimits::none()
    };
    for (max_tokens, system) in [(37u32, None), (500, Some("s".repeat(40)))] {
        let ex = executor(ExecutorConfig::default(), limits);
        let p = ScriptedProvider::new("p");
        // No usage in the answer: the reservation keeps its estimate.
        p.push("m", ScriptedStep::err(ProviderError::client(400, "bad")));
        let inference: InferenceParams =
            serde_json::from_value(serde_json::json!({"max_tokens": max_tokens})).unwrap();
        let system_tokens = system.as_ref().map_or(0, |s| s.len() as u64 / 4);
        let req = request().with_options(ChatOptions {
            inference,
            system_prompt: system,
            ..ChatOptions::default()
        });
        let _ = ex.execute("a", &p, &resource(), req).await;
        let snap = ex.budgets().snapshot(&key(), Instant::now()).unwrap();
        let tokens = snap.window(BudgetKind::Tokens).unwrap();
        // 400 prompt characters ≈ 100 tokens (plus the system prompt's), plus max_tokens.
        assert_eq!(
            tokens.reserved_units + tokens.admitted_units,
            100 + system_tokens + u64::from(max_tokens),
            "{tokens:?}"
        );
    }
}
