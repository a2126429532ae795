//! The HTTP adapter's hardening and header reading against small loopback responders written
//! here (127.0.0.1 only; every server bounded in connections, bytes and time): rate-limit
//! headers and `usage` on a 2xx, Retry-After forms the testkit server does not send (past
//! HTTP-dates, `llm_provider-retry-after`, "try again in"), 429 signals, LiteLLM's error type,
//! no redirect following, the response-size cap, and TLS (certificate errors, `ca_file`,
//! `SSL_CERT_FILE`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use weir_contracts::{RateLimitSignal, RequestDomain, RequestReleaseOutcomeKind, TokenUsage};
use weir_runtime::provider::{
    ModelProvider, OpenAiCompatibleProvider, OpenAiProviderConfig, ProviderError,
    ProviderErrorKind, ProviderRequest,
};

/// At most this many connections per responder, each answered within [`CONN_TIMEOUT`].
const MAX_CONNECTIONS: usize = 16;
const CONN_TIMEOUT: Duration = Duration::from_secs(20);
/// An endless body stops here at the latest (the client is expected to stop far earlier).
const ENDLESS_LIMIT: u64 = 256 << 20;

/// A test CA and a leaf for 127.0.0.1/localhost it signed (ECDSA P-256, valid 2020–2126;
/// generated once with `openssl ca`, test-only material).
const CA_PEM: &str = concat!(
    "-----BEGIN CERTIFICATE-----\n",
    "MIIBYjCCAQegAwIBAgIBATAKBggqhkjOPQQDAjAXMRUwEwYDVQQDDAx3ZWlyIHRl\n",
    "c3QgQ0EwIBcNMjAwMTAxMDAwMDAwWhgPMjEyNjAxMDEwMDAwMDBaMBcxFTATBgNV\n",
    "BAMMDHdlaXIgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJYR02dL\n",
    "bJOP/eTws1Xi2NDX7MDOh3lAohZLPDhZJR7Cz6c7NsBulXgMzput6qyjN5HMjsn6\n",
    "/DMj0f3xVZ+sRrSjQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEG\n",
    "MB0GA1UdDgQWBBQHuhTzWGEnsB+Cl7aMsVOrxRSObzAKBggqhkjOPQQDAgNJADBG\n",
    "AiEAvvGNdaGKm247FobHBeeMozOruMI2asw8Ngg2n8ZCslQCIQD1VgPcQFSeA6JH\n",
    "/jRQ8GeIeBxPRMZb7iZuJsIGUIVtsg==\n",
    "-----END CERTIFICATE-----\n",
);
const LEAF_PEM: &str = concat!(
    "-----BEGIN CERTIFICATE-----\n",
    "MIIBrDCCAVKgAwIBAgIBAjAKBggqhkjOPQQDAjAXMRUwEwYDVQQDDAx3ZWlyIHRl\n",
    "c3QgQ0EwIBcNMjAwMTAxMDAwMDAwWhgPMjEyNjAxMDEwMDAwMDBaMBQxEjAQBgNV\n",
    "BAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEzCLjIyd+Sb\n",
    "2uMFjvQnQcn/oCnwi55rlSOCZbE91EuRlX0ck9Jc98Sbr62HP39w0Rr78HKQD/CV\n",
    "ZVYRRxhaBnGjgY8wgYwwCQYDVR0TBAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0l\n",
    "BAwwCgYIKwYBBQUHAwEwGgYDVR0RBBMwEYcEfwAAAYIJbG9jYWxob3N0MB8GA1Ud\n",
    "IwQYMBaAFAe6FPNYYSewH4KXtoyxU6vFFI5vMB0GA1UdDgQWBBT8Y5lMPudtzCzp\n",
    "fSPX4ZV9ZRJUgjAKBggqhkjOPQQDAgNIADBFAiBbqJzKNH2yy2a42fcgtmmN2O8U\n",
    "qo517888kj52TG85sQIhAK0wnUUs7VdMkgW0t07NFhjpC/RXOaerRVTNm4Vn91Lf\n",
    "-----END CERTIFICATE-----\n",
);
const LEAF_KEY_PEM: &str = concat!(
    "-----BEGIN PRIVATE KEY-----\n",
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgK6r4dgillE/xM2FJ\n",
    "YArmbpb4z3YBMGta8zP7iTCzEGmhRANCAARMwi4yMnfkm9rjBY70J0HJ/6Ap8Iue\n",
    "a5UjgmWxPdRLkZV9HJPSXPfEm6+thz9/cNEa+/BykA/wlWVWEUcYWgZx\n",
    "-----END PRIVATE KEY-----\n",
);

/// What a responder sends for one request.
enum Reply {
    /// These bytes, then close.
    Bytes(Vec<u8>),
    /// This head, then body bytes until the client stops reading (or [`ENDLESS_LIMIT`]).
    Endless(Vec<u8>),
}

/// A one-file HTTP/1.1 responder: counts connections and requests, answers each request with
/// `reply(request_index)`, `Connection: close` always.
struct Responder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Total body bytes an endless reply wrote, sent once its writing stopped.
    endless_written: mpsc::UnboundedReceiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Responder {
    async fn start(
        tls: Option<tokio_rustls::TlsAcceptor>,
        reply: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (tx, endless_written) = mpsc::unbounded_channel();
        let reply = Arc::new(reply);
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                c.fetch_add(1, Ordering::SeqCst);
                let (reply, requests, tx, tls) =
                    (reply.clone(), r.clone(), tx.clone(), tls.clone());
                tokio::spawn(tokio::time::timeout(CONN_TIMEOUT, async move {
                    match tls {
                        None => serve(tcp, &*reply, &requests, &tx).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(stream, &*reply, &requests, &tx).await;
                            }
                        }
                    }
                }));
            }
        });
        Self {
            addr,
            connections,
            requests,
            endless_written,
            task,
        }
    }

    fn base_url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/v1", self.addr.port())
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (head + `content-length` body) and answers it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    reply: &(dyn Fn(usize) -> Reply + Send + Sync),
    requests: &AtomicUsize,
    endless: &mpsc::UnboundedSender<u64>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let index = requests.fetch_add(1, Ordering::SeqCst);
    match reply(index) {
        Reply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Endless(head) => {
            let mut written = 0u64;
            if stream.write_all(&head).await.is_ok() {
                let block = vec![b'a'; 64 * 1024];
                while written < ENDLESS_LIMIT {
                    if stream.write_all(&block).await.is_err() {
                        break;
                    }
                    written += block.len() as u64;
                }
            }
            let _ = endless.send(written);
        }
    }
}

/// An HTTP/1.1 response with the given status line, headers and body (`Content-Length` and
/// `Connection: close` added).
fn http(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

const CHAT_OK: &str = r#"{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#;

fn provider(base_url: String) -> OpenAiCompatibleProvider {
    OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", base_url).with_timeout(Duration::from_secs(10)),
    )
    .expect("valid config")
}

fn chat() -> ProviderRequest {
    ProviderRequest::new("m1", RequestDomain::Chat, "hello")
}

/// One failing call against a responder that always sends `reply`; exactly one request.
async fn fail_once(reply: Vec<u8>) -> ProviderError {
    let s = Responder::start(None, move |_| Reply::Bytes(reply.clone())).await;
    let err = provider(s.base_url("http"))
        .call(chat())
        .await
        .expect_err("an error");
    assert_eq!(s.requests(), 1, "the client never retries on its own");
    assert_eq!(err.url_path.as_deref(), Some("/v1/chat/completions"));
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_and_usage_on_a_2xx_reach_the_response() {
    let s = Responder::start(None, |_| {
        Reply::Bytes(http(
            "200 OK",
            &[
                ("content-type", "application/json"),
                ("x-ratelimit-limit-requests", "200"),
                ("x-ratelimit-remaining-requests", "199"),
                ("x-ratelimit-reset-requests", "300ms"),
                ("x-ratelimit-limit-tokens", "40000"),
                ("x-ratelimit-remaining-tokens", "39982"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ],
            CHAT_OK,
        ))
    })
    .await;
    let r = provider(s.base_url("http"))
        .call(chat())
        .await
        .expect("200");
    assert_eq!(r.text.as_deref(), Some("hi"));
    assert_eq!(
        r.usage,
        Some(TokenUsage {
            input_tokens: 11,
            output_tokens: 7
        })
    );
    let o = r.rate_limits.expect("windows on a 2xx");
    assert_eq!(
        (o.requests.limit, o.requests.remaining),
        (Some(200), Some(199))
    );
    assert_eq!(o.requests.reset_after, Some(Duration::from_millis(300)));
    assert_eq!(o.tokens.remaining, Some(39_982));
    assert_eq!(o.tokens.reset_after, Some(Duration::from_secs(360)));
    // Anthropic's form on a 2xx, resets relative to the Date header.
    let date = SystemTime::now();
    let reset = date + Duration::from_secs(30);
    let s = Responder::start(None, move |_| {
        let date = httpdate::fmt_http_date(date);
        let reset = rfc3339(reset);
        Reply::Bytes(http(
            "200 OK",
            &[
                ("date", &date),
                ("anthropic-ratelimit-input-tokens-limit", "50000"),
                ("anthropic-ratelimit-input-tokens-remaining", "49000"),
                ("anthropic-ratelimit-input-tokens-reset", &reset),
            ],
            CHAT_OK,
        ))
    })
    .await;
    let r = provider(s.base_url("http"))
        .call(chat())
        .await
        .expect("200");
    let w = r.rate_limits.expect("anthropic windows").input_tokens;
    assert_eq!((w.limit, w.remaining), (Some(50_000), Some(49_000)));
    let reset_after = w.reset_after.expect("reset").as_secs_f64();
    // Date has one-second resolution: the reset reads 30–31 s after it.
    assert!((30.0..=31.0).contains(&reset_after), "{reset_after}");
}

/// `t` as an RFC 3339 UTC time with whole seconds.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_http_date_means_retry_now_with_a_short_delay() {
    for past in [
        httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(5)),
        httpdate::fmt_http_date(SystemTime::now()),
    ] {
        let err = fail_once(http("429 Too Many Requests", &[("retry-after", &past)], "")).await;
        assert_eq!(err.kind, ProviderErrorKind::RateLimited);
        let ra = err
            .retry_after
            .expect("a past date is 'retry now', not None");
        assert!(
            (Duration::from_millis(50)..=Duration::from_millis(250)).contains(&ra),
            "{ra:?}"
        );
        let outcome = err.release_outcome();
        assert_eq!(outcome.kind, RequestReleaseOutcomeKind::RateLimited);
        assert!(outcome.retry_after_seconds.is_some_and(|s| s <= 0.25));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litellm_429_keeps_its_type_and_its_forwarded_retry_after() {
    let body = r#"{"error":{"message":"LiteLLM Rate Limit Handler for rate limit type = key. Crossed TPM / RPM / Max Parallel Request Limit.","type":"throttling_error","param":"None","code":"429"}}"#;
    let err = fail_once(http(
        "429 Too Many Requests",
        &[("llm_provider-retry-after", "3")],
        body,
    ))
    .await;
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
    assert_eq!(err.provider_error_type.as_deref(), Some("throttling_error"));
    assert!(!err.message.contains("LiteLLM Rate Limit Handler"));
    // A 4xx with only a numeric code still says something: the type.
    let err = fail_once(http(
        "400 Bad Request",
        &[],
        r#"{"error":{"message":"bad","type":"context_window_exceeded","code":"400"}}"#,
    ))
    .await;
    assert_eq!(
        err.provider_error_type.as_deref(),
        Some("context_window_exceeded")
    );
    assert!(
        err.message.contains("[context_window_exceeded]"),
        "{}",
        err.message
    );
    assert!(!err.is_configuration());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_again_in_body_text_is_honoured_and_says_which_window() {
    let rpm = r#"{"error":{"message":"Rate limit reached for m1 in organization org-1 on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1.2s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let err = fail_once(http(
        "429 Too Many Requests",
        &[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "20s"),
        ],
        rpm,
    ))
    .await;
    assert_eq!(err.retry_after, Some(Duration::from_millis(1200)));
    assert_eq!(err.rate_limit_signal, Some(RateLimitSignal::RequestWindow));
    assert_eq!(
        err.provider_error_type.as_deref(),
        Some("rate_limit_exceeded")
    );
    assert_eq!(
        err.rate_limits
            .expect("windows on a 429")
            .requests
            .remaining,
        Some(0)
    );
    assert_eq!(
        err.release_outcome().rate_limit_signal,
        Some(RateLimitSignal::RequestWindow)
    );
    let tpm = r#"{"error":{"message":"Rate limit reached on tokens per min (TPM): Limit 100, Used 90, Requested 20. Please try again in 20ms.","code":"rate_limit_exceeded"}}"#;
    let err = fail_once(http("429 Too Many Requests", &[], tpm)).await;
    assert_eq!(err.retry_after, Some(Duration::from_millis(20)));
    assert_eq!(err.rate_limit_signal, Some(RateLimitSignal::TokenWindow));
    // Headers alone: remaining tokens 0 → token window, its reset is the wait.
    let err = fail_once(http(
        "429 Too Many Requests",
        &[
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
            ("x-ratelimit-remaining-requests", "10"),
            ("x-ratelimit-reset-requests", "1s"),
        ],
        "",
    ))
    .await;
    assert_eq!(err.rate_limit_signal, Some(RateLimitSignal::TokenWindow));
    assert_eq!(err.retry_after, Some(Duration::from_secs(360)));
    let err = fail_once(http(
        "429 Too Many Requests",
        &[],
        r#"{"error":{"message":"Too many concurrent requests","type":"rate_limit_error"}}"#,
    ))
    .await;
    assert_eq!(err.rate_limit_signal, Some(RateLimitSignal::Concurrency));
    let err = fail_once(http("429 Too Many Requests", &[], "")).await;
    assert_eq!((err.rate_limit_signal, err.retry_after), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_typed_error_and_is_never_followed() {
    for (status, location, shown) in [
        (
            "307 Temporary Redirect",
            "/v2/chat/completions".to_owned(),
            "/v2/chat/completions",
        ),
        (
            "301 Moved Permanently",
            "https://user:pw@elsewhere.example/v1/chat/completions?key=sk-abcdefgh12345678"
                .to_owned(),
            "https://elsewhere.example/v1/chat/completions",
        ),
    ] {
        let location2 = location.clone();
        // The target would answer 200: a followed redirect would show as a second request.
        let s = Responder::start(None, move |i| {
            Reply::Bytes(if i == 0 {
                http(status, &[("location", &location2)], "")
            } else {
                http("200 OK", &[], CHAT_OK)
            })
        })
        .await;
        let err = provider(s.base_url("http"))
            .call(chat())
            .await
            .expect_err("3xx");
        assert_eq!(s.requests(), 1, "{status}: not followed, not retried");
        assert_eq!(err.kind, ProviderErrorKind::Redirect);
        assert!(!err.retryable());
        assert!(err.is_configuration());
        assert!(err.message.contains(shown), "{}", err.message);
        assert!(!err.message.contains("pw@"), "{}", err.message);
        assert!(!err.message.contains("sk-abcdefgh"), "{}", err.message);
        assert_eq!(
            err.release_outcome().kind,
            RequestReleaseOutcomeKind::ProviderFailure
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_2xx_body_stops_at_the_cap_with_a_typed_error() {
    const CAP: u64 = 1 << 20;
    let mut s = Responder::start(None, |_| {
        Reply::Endless(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"choices\":[{\"message\":{\"content\":\""
                .to_vec(),
        )
    })
    .await;
    let p = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", s.base_url("http"))
            .with_timeout(Duration::from_secs(20))
            .with_max_response_bytes(CAP),
    )
    .expect("valid");
    let err = p.call(chat()).await.expect_err("too large");
    assert_eq!(
        (err.kind, err.status),
        (ProviderErrorKind::ResponseTooLarge, Some(200))
    );
    assert!(!err.retryable());
    assert!(!err.is_configuration());
    assert!(
        err.message.contains("max_response_bytes"),
        "{}",
        err.message
    );
    drop(p);
    // The client stopped reading near the cap: the server's writes failed soon after (what it
    // wrote beyond the cap sat in socket buffers, a few MiB at most), far below its own limit.
    let written = s.endless_written.recv().await.expect("writer finished");
    println!(
        "endless body: cap {CAP} bytes, server wrote {written} bytes before the client hung up"
    );
    assert!(written < 64 << 20, "server wrote {written} bytes");
    assert_eq!(s.requests(), 1);

    // A declared length past the cap fails before any of the body is read.
    let s = Responder::start(None, |_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\nconnection: close\r\n\r\n{".to_vec(),
        )
    })
    .await;
    let p = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", s.base_url("http")).with_max_response_bytes(CAP),
    )
    .expect("valid");
    let err = p.call(chat()).await.expect_err("declared too large");
    assert_eq!(err.kind, ProviderErrorKind::ResponseTooLarge);
    // Within the cap, the default, a normal answer is untouched.
    let s = Responder::start(None, |_| Reply::Bytes(http("200 OK", &[], CHAT_OK))).await;
    assert!(provider(s.base_url("http")).call(chat()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_not_found_and_auth_failures_are_configuration_errors() {
    let err = fail_once(http(
        "404 Not Found",
        &[],
        r#"{"error":{"message":"The model `m1` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
    ))
    .await;
    assert_eq!(err.provider_error_type.as_deref(), Some("model_not_found"));
    assert!(err.is_configuration() && !err.retryable());
    let err = fail_once(http(
        "400 Bad Request",
        &[],
        r#"{"error":{"message":"Invalid model name passed in model=m1","type":"None","code":"400"}}"#,
    ))
    .await;
    assert_eq!(err.provider_error_type.as_deref(), Some("model_not_found"));
    assert!(err.is_configuration());
    let err = fail_once(http(
        "401 Unauthorized",
        &[],
        r#"{"error":{"message":"Incorrect API key provided: sk-abc...","code":"invalid_api_key"}}"#,
    ))
    .await;
    assert!(err.is_configuration());
    assert!(!err.message.contains("sk-abc"), "{}", err.message);
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(LEAF_PEM.as_bytes()).expect("leaf pem")];
    let key = PrivateKeyDer::from_pem_slice(LEAF_KEY_PEM.as_bytes()).expect("key pem");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server cert");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// The test CA as a file under the test target's scratch directory.
fn ca_file() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("weir-http-test-ca-{}.pem", std::process::id()));
    std::fs::write(&path, CA_PEM).expect("write ca file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_error_is_a_non_retryable_configuration_error() {
    let s = Responder::start(Some(tls_acceptor()), |_| {
        Reply::Bytes(http("200 OK", &[], CHAT_OK))
    })
    .await;
    let err = provider(s.base_url("https"))
        .call(chat())
        .await
        .expect_err("untrusted CA");
    assert_eq!(err.kind, ProviderErrorKind::Tls, "{}", err.message);
    assert!(!err.retryable());
    assert!(err.is_configuration());
    assert!(err.message.contains("ca_file"), "{}", err.message);
    assert_eq!(s.connections(), 1, "a certificate error is not retried");
    assert_eq!(s.requests(), 0);
    assert_eq!(
        err.release_outcome().kind,
        RequestReleaseOutcomeKind::ProviderFailure
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_trusts_a_private_certificate_authority() {
    let s = Responder::start(Some(tls_acceptor()), |_| {
        Reply::Bytes(http("200 OK", &[], CHAT_OK))
    })
    .await;
    let path = ca_file();
    let p = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", s.base_url("https"))
            .with_timeout(Duration::from_secs(10))
            .with_ca_file(&path),
    )
    .expect("valid ca_file");
    let r = p.call(chat()).await.expect("trusted through ca_file");
    assert_eq!(r.text.as_deref(), Some("hi"));
    assert_eq!(s.requests(), 1);
    let _ = std::fs::remove_file(&path);
    // A bad path is a config error naming the field.
    let err = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", s.base_url("https")).with_ca_file("/nonexistent/ca.pem"),
    )
    .expect_err("bad path");
    assert_eq!(err.field, "ca_file");
}

/// Re-runs this test binary with `SSL_CERT_FILE` pointing at the test CA (the environment is
/// process-wide, so the check runs in a child process of its own).
#[test]
fn ssl_cert_file_is_honoured() {
    let path = ca_file();
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "ssl_cert_file_child", "--ignored", "--nocapture"])
        .env("SSL_CERT_FILE", &path)
        .env("WEIR_SSL_CERT_FILE_CHILD", "1")
        .output()
        .expect("spawn child");
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// The child half of [`ssl_cert_file_is_honoured`] (does nothing unless started by it).
#[test]
#[ignore = "run by ssl_cert_file_is_honoured in a child process"]
fn ssl_cert_file_child() {
    if std::env::var_os("WEIR_SSL_CERT_FILE_CHILD").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = Responder::start(Some(tls_acceptor()), |_| {
            Reply::Bytes(http("200 OK", &[], CHAT_OK))
        })
        .await;
        let r = provider(s.base_url("https"))
            .call(chat())
            .await
            .expect("trusted via SSL_CERT_FILE");
        assert_eq!(r.text.as_deref(), Some("hi"));
    });
}
