//! `OpenAiCompatibleProvider` against the loopback server over real sockets (127.0.0.1 only):
//! success paths, every classification, Retry-After forms, secrets, no client-side retries.

use std::time::Duration;
use weir_contracts::{RequestDomain, RequestReleaseOutcomeKind};
use weir_runtime::provider::{
    ApiKey, ModelProvider, OpenAiCompatibleProvider, OpenAiProviderConfig, ProviderError,
    ProviderErrorKind, ProviderRequest,
};
use weir_testkit::{Fault, LoopbackConfig, LoopbackServer, Overflow, RetryAfter};

const KEY: &str = "sk-loopback-secret-0123456789";

async fn server(config: LoopbackConfig) -> LoopbackServer {
    LoopbackServer::start(config.api_key(KEY))
        .await
        .expect("bind 127.0.0.1")
}

fn provider(server: &LoopbackServer, timeout: Duration) -> OpenAiCompatibleProvider {
    OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", server.base_url())
            .with_api_key(ApiKey::new(KEY))
            .with_timeout(timeout)
            .with_pool_size(8),
    )
    .expect("valid config")
}

fn chat(input: &str) -> ProviderRequest {
    ProviderRequest::new("m1", RequestDomain::Chat, input)
}

async fn fail_with(fault: Fault) -> ProviderError {
    let s = server(LoopbackConfig::new().latency(Duration::from_millis(1))).await;
    s.push_faults([fault]);
    let p = provider(&s, Duration::from_secs(2));
    let err = p.call(chat("x")).await.expect_err("fault");
    assert!(!err.message.contains(KEY));
    assert_eq!(
        s.stats().requests,
        1,
        "the client must not retry on its own"
    );
    err
}

fn status(status: u16, retry_after: Option<RetryAfter>) -> Fault {
    Fault::Status {
        status,
        retry_after,
        body: format!(r#"{{"error":{{"message":"raw body echoing {KEY} and the prompt"}}}}"#),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_embeddings_succeed_with_the_bearer_key_over_pooled_connections() {
    let s = server(LoopbackConfig::new().latency(Duration::from_millis(1))).await;
    let p = provider(&s, Duration::from_secs(2));
    assert_eq!(p.transport_pool_size(), Some(8));
    for i in 0..5 {
        let r = p.call(chat(&format!("hello {i}"))).await.expect("chat");
        assert!(r.text.expect("text").starts_with("loopback:m1:"));
        assert_eq!(r.status, 200);
        // hyper hands a finished connection back to its pool from the connection's own task; a
        // request that finds no idle connection yet races a fresh connect against the pool
        // (hyperium/hyper#4134). A short pause lets the handback happen first on a loaded box.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = p
        .call(ProviderRequest::new(
            "e1",
            RequestDomain::Embedding,
            "vec me",
        ))
        .await
        .expect("embedding");
    assert_eq!(r.embedding.expect("vector").len(), 8);
    let stats = s.stats();
    assert_eq!((stats.ok, stats.unauthorized), (6, 0));
    // Pooling means fewer connections than calls (one, unless the handback race above still
    // lost on a heavily loaded machine); without a pool every call would open its own.
    assert!(
        stats.connections < 6,
        "sequential calls reuse pooled connections: {} connections for 6 calls",
        stats.connections
    );
    let err = p
        .call(ProviderRequest::new("m1", RequestDomain::Image, "x"))
        .await
        .expect_err("image is not served");
    assert_eq!(err.kind, ProviderErrorKind::Client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_a_sanitized_non_retryable_client_error() {
    let s = server(LoopbackConfig::new()).await;
    let p = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", s.base_url()).with_api_key(ApiKey::new("sk-wrong-key")),
    )
    .expect("valid");
    let err = p.call(chat("x")).await.expect_err("401");
    assert_eq!(
        (err.kind, err.status),
        (ProviderErrorKind::Client, Some(401))
    );
    assert!(!err.retryable());
    // The server echoed the key it got in its body: none of it reaches the message.
    assert!(!err.message.contains("sk-wrong-key"), "{}", err.message);
    assert!(!err.message.contains("Incorrect"), "{}", err.message);
    assert_eq!(
        err.release_outcome().kind,
        RequestReleaseOutcomeKind::ProviderFailure
    );
    assert_eq!(s.stats().unauthorized, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_carry_retry_after_in_every_form() {
    let cases = [
        (RetryAfter::Seconds(3), 3.0, 3.0),
        (RetryAfter::HttpDate(5), 3.9, 5.0),
        (RetryAfter::Millis(250), 0.25, 0.25),
        (RetryAfter::ResetRequests(Duration::from_secs(2)), 2.0, 2.0),
    ];
    for (form, lo, hi) in cases {
        let err = fail_with(status(429, Some(form.clone()))).await;
        assert_eq!(err.kind, ProviderErrorKind::RateLimited, "{form:?}");
        let ra = err.retry_after.expect("retry after").as_secs_f64();
        assert!((lo..=hi).contains(&ra), "{form:?}: {ra}");
        let outcome = err.release_outcome();
        assert_eq!(outcome.kind, RequestReleaseOutcomeKind::RateLimited);
        assert_eq!(outcome.provider_status, Some(429));
    }
    let err = fail_with(status(429, None)).await;
    assert_eq!(
        (err.kind, err.retry_after),
        (ProviderErrorKind::RateLimited, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_503_is_saturation_with_or_without_retry_after() {
    let err = fail_with(status(503, None)).await;
    assert_eq!(
        (err.kind, err.retry_after),
        (ProviderErrorKind::Overloaded, None)
    );
    let err = fail_with(status(503, Some(RetryAfter::Seconds(4)))).await;
    assert_eq!(err.retry_after, Some(Duration::from_secs(4)));
    let outcome = err.release_outcome();
    assert_eq!(outcome.kind, RequestReleaseOutcomeKind::RateLimited);
    assert_eq!(outcome.provider_status, Some(503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_classify_as_the_issue_says() {
    for (code, kind, retryable, outcome) in [
        (
            408,
            ProviderErrorKind::Timeout,
            true,
            RequestReleaseOutcomeKind::ProviderTimeout,
        ),
        (
            504,
            ProviderErrorKind::Timeout,
            true,
            RequestReleaseOutcomeKind::ProviderTimeout,
        ),
        (
            500,
            ProviderErrorKind::ServerError,
            true,
            RequestReleaseOutcomeKind::ProviderFailure,
        ),
        (
            502,
            ProviderErrorKind::ServerError,
            true,
            RequestReleaseOutcomeKind::ProviderFailure,
        ),
        (
            400,
            ProviderErrorKind::Client,
            false,
            RequestReleaseOutcomeKind::ProviderFailure,
        ),
        (
            403,
            ProviderErrorKind::Client,
            false,
            RequestReleaseOutcomeKind::ProviderFailure,
        ),
        (
            404,
            ProviderErrorKind::Client,
            false,
            RequestReleaseOutcomeKind::ProviderFailure,
        ),
        (
            422,
            ProviderErrorKind::Client,
            false,
            RequestReleaseOutcomeKind::ProviderFailure,
        ),
    ] {
        let err = fail_with(status(code, None)).await;
        assert_eq!(err.kind, kind, "{code}");
        assert_eq!(err.status, Some(code));
        assert_eq!(err.retryable(), retryable, "{code}");
        assert_eq!(err.release_outcome().kind, outcome, "{code}");
        assert!(!err.message.contains("raw body"), "{}", err.message);
        assert!(!err.message.contains("prompt"), "{}", err.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_bodies_and_connections_are_typed_errors() {
    let err = fail_with(Fault::MalformedBody).await;
    assert_eq!(
        (err.kind, err.status),
        (ProviderErrorKind::Malformed, Some(200))
    );
    let err = fail_with(Fault::WrongShape).await;
    assert_eq!(err.kind, ProviderErrorKind::Malformed);
    assert!(err.message.contains("choices[0].message.content"));
    let err = fail_with(Fault::TruncatedBody).await;
    assert_eq!(err.kind, ProviderErrorKind::Connection, "{}", err.message);
    assert!(err.retryable());
    let err = fail_with(Fault::DropConnection).await;
    assert_eq!(err.kind, ProviderErrorKind::Connection, "{}", err.message);
    assert_eq!(
        err.release_outcome().kind,
        RequestReleaseOutcomeKind::ProviderFailure
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_timeouts_cover_slow_headers_and_slow_bodies() {
    for fault in [
        Fault::Delay(Duration::from_secs(5)),
        Fault::SlowBody(Duration::from_secs(5)),
    ] {
        let s = server(LoopbackConfig::new().latency(Duration::from_millis(1))).await;
        s.push_faults([fault.clone()]);
        let p = provider(&s, Duration::from_millis(200));
        let err = p.call(chat("x")).await.expect_err("timeout");
        assert_eq!(
            err.kind,
            ProviderErrorKind::Timeout,
            "{fault:?}: {}",
            err.message
        );
        // No wall-clock bound (a loaded machine may be slow to fire the timer): the server
        // answers only after 5 s, so an error here is the 200 ms client timeout at work.
        assert_eq!(
            err.release_outcome().kind,
            RequestReleaseOutcomeKind::ProviderTimeout
        );
        // A per-request timeout shorter than the provider's wins.
        s.push_faults([Fault::Delay(Duration::from_secs(5))]);
        let p = provider(&s, Duration::from_secs(30));
        let err = p
            .call(chat("y").with_timeout(Duration::from_millis(100)))
            .await
            .expect_err("timeout");
        // The provider's own timeout (30 s) outlasts the server's 5 s delay: only the 100 ms
        // per-request timeout can have produced this error.
        assert_eq!(err.kind, ProviderErrorKind::Timeout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_a_non_retryable_configuration_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let p = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", format!("http://127.0.0.1:{port}/v1"))
            .with_timeout(Duration::from_secs(2)),
    )
    .expect("valid");
    let err = p.call(chat("x")).await.expect_err("refused");
    assert_eq!(err.kind, ProviderErrorKind::Unreachable, "{}", err.message);
    // Nothing listens at base_url: every call would fail the same way, so fail fast.
    assert!(!err.retryable());
    assert!(err.is_configuration());
    assert_eq!(err.url_path.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(
        err.release_outcome().kind,
        RequestReleaseOutcomeKind::ProviderFailure
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_capacity_rejects_or_queues_past_the_limit() {
    // The four calls must all reach the server while the first two are still being served: a
    // 600 ms latency leaves a loaded machine room to open the other connections (at 100 ms a
    // slow connect let a first call finish early and the last one through).
    let s = server(
        LoopbackConfig::new()
            .capacity(2)
            .latency(Duration::from_millis(600))
            .overflow(Overflow::RateLimit(Some(RetryAfter::Seconds(1)))),
    )
    .await;
    let p = provider(&s, Duration::from_secs(10));
    let calls = (0..4).map(|i| p.call(chat(&format!("c{i}"))));
    let results = futures_join_all(calls).await;
    let limited = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(limited, 2);
    assert_eq!(s.stats().max_active, 2);

    let s = server(
        LoopbackConfig::new()
            .capacity(2)
            .latency(Duration::from_millis(600))
            .overflow(Overflow::Queue),
    )
    .await;
    let p = provider(&s, Duration::from_secs(10));
    let started = std::time::Instant::now();
    let results = futures_join_all((0..4).map(|i| p.call(chat(&format!("q{i}"))))).await;
    assert!(results.iter().all(Result::is_ok));
    // A lower bound only (load can only add time): two rounds of 600 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "queued, not rejected"
    );
    assert_eq!(s.stats().queued, 2);
}

/// Joins futures without an extra dependency (spawns nothing: polls them on this task).
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}
