//! `LoopbackServer`: an OpenAI-compatible HTTP/1.1 endpoint on 127.0.0.1 (ephemeral port) with
//! hidden capacity (optionally stepping over time), fixed or lognormal latency, rate limiters
//! (request bucket, fixed window, tokens per minute, sporadic 429s) with `x-ratelimit-*` headers,
//! overload, queueing and scripted faults.
//!
//! It adds no latency of its own: every reply is built whole (headers and body in one buffer,
//! hyper's flattened write strategy) and sockets have `TCP_NODELAY`.

use crate::body::{Chunk, ScriptedBody};
use crate::config::{Fault, LoopbackConfig, Overflow, RetryAfter};
use crate::limits::{ceil_millis, format_reset, Budget, Limiter, Refusal, Verdict};
use crate::slots::{Permit, Slots};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Largest request body the server reads.
const MAX_REQUEST_BYTES: usize = 8 << 20;

/// Counters of everything the server saw (a consistent-enough copy; each field is exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LoopbackStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// HTTP requests received.
    pub requests: u64,
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered 429 because capacity was full.
    pub rate_limited: u64,
    /// Requests answered 429 by the sporadic draw (no Retry-After).
    pub sporadic_rate_limited: u64,
    /// Requests answered 429 because the fixed window was used up (no Retry-After).
    pub window_rate_limited: u64,
    /// Requests answered 429 because the request bucket was empty.
    pub bucket_rate_limited: u64,
    /// Requests answered 429 because the token bucket held too few tokens.
    pub token_rate_limited: u64,
    /// Tokens charged to the token budget by admitted requests (prompt estimate + max_tokens).
    pub tokens_charged: u64,
    /// Sum of the service times drawn for served requests, in microseconds.
    pub service_micros: u64,
    /// Requests answered 503 because capacity was full.
    pub overloaded: u64,
    /// Requests that waited in the queue (queue mode).
    pub queued: u64,
    /// Requests rejected for a missing or wrong bearer token.
    pub unauthorized: u64,
    /// Scripted faults applied.
    pub faults: u64,
    /// Requests being served right now (holding a capacity slot).
    pub active: u64,
    /// Most requests served at once.
    pub max_active: u64,
    /// Requests inside the server right now (queued, served or being refused).
    pub in_flight: u64,
    /// Most requests inside the server at once.
    pub max_in_flight: u64,
}

impl LoopbackStats {
    /// Every 429 the server sent (capacity, limiters and sporadic; scripted faults excluded).
    pub fn all_rate_limited(&self) -> u64 {
        self.rate_limited
            + self.sporadic_rate_limited
            + self.window_rate_limited
            + self.bucket_rate_limited
            + self.token_rate_limited
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    ok: AtomicU64,
    rate_limited: AtomicU64,
    sporadic_rate_limited: AtomicU64,
    window_rate_limited: AtomicU64,
    bucket_rate_limited: AtomicU64,
    token_rate_limited: AtomicU64,
    tokens_charged: AtomicU64,
    service_micros: AtomicU64,
    overloaded: AtomicU64,
    queued: AtomicU64,
    unauthorized: AtomicU64,
    faults: AtomicU64,
    active: AtomicU64,
    max_active: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
struct State {
    config: LoopbackConfig,
    slots: Option<Arc<Slots>>,
    /// `None` when no limiter is configured (no lock on the hot path).
    limiter: Option<Mutex<Limiter>>,
    /// Latency draws (lognormal only).
    rng: Mutex<ChaCha8Rng>,
    started: tokio::time::Instant,
    script: Mutex<VecDeque<Fault>>,
    recorded: Mutex<Vec<RecordedRequest>>,
    counters: Counters,
}

/// One request as the server read it (with `record_requests`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The URL path (`/v1/chat/completions`).
    pub path: String,
    /// Every header, name lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Keeps a gauge (and its maximum) right however the request ends (including a dropped
/// connection).
struct GaugeGuard<'a>(&'a AtomicU64);

impl<'a> GaugeGuard<'a> {
    fn enter(gauge: &'a AtomicU64, max: &AtomicU64) -> Self {
        let now = gauge.fetch_add(1, Ordering::AcqRel) + 1;
        max.fetch_max(now, Ordering::AcqRel);
        Self(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running loopback server; dropping it stops the listener and every connection.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl LoopbackServer {
    /// Binds 127.0.0.1 on an ephemeral port and starts serving on the current tokio runtime.
    ///
    /// The capacity schedule and the limiters' clocks start here. Invalid settings give an
    /// `InvalidInput` error naming the field.
    pub async fn start(config: LoopbackConfig) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let slots = config.capacity.map(|_| Slots::new(&config));
        let limiter = Limiter::new(
            config.sporadic_429.as_ref(),
            config.fixed_window.as_ref(),
            config.request_bucket.as_ref(),
            config.token_bucket.as_ref(),
        );
        let state = Arc::new(State {
            limiter: (!limiter.is_empty()).then(|| Mutex::new(limiter)),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.latency_seed)),
            started: tokio::time::Instant::now(),
            config,
            slots,
            script: Mutex::new(VecDeque::new()),
            recorded: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let accept_state = state.clone();
        let accept = tokio::spawn(async move {
            // Connection tasks live in this set: aborting the accept task drops (aborts) them all.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        bump(&accept_state.counters.connections);
                        let st = accept_state.clone();
                        connections.spawn(async move {
                            let svc = service_fn(move |req| handle(st.clone(), req));
                            // writev(false): hyper flattens head and body into one buffer,
                            // so a reply leaves in one write.
                            let _ = http1::Builder::new()
                                .writev(false)
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// The bound address (127.0.0.1 and the ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients use: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues scripted faults for the next requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(faults);
    }

    /// The requests read so far, in arrival order (empty unless `record_requests`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A copy of the counters.
    pub fn stats(&self) -> LoopbackStats {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        LoopbackStats {
            connections: get(&c.connections),
            requests: get(&c.requests),
            ok: get(&c.ok),
            rate_limited: get(&c.rate_limited),
            sporadic_rate_limited: get(&c.sporadic_rate_limited),
            window_rate_limited: get(&c.window_rate_limited),
            bucket_rate_limited: get(&c.bucket_rate_limited),
            token_rate_limited: get(&c.token_rate_limited),
            tokens_charged: get(&c.tokens_charged),
            service_micros: get(&c.service_micros),
            overloaded: get(&c.overloaded),
            queued: get(&c.queued),
            unauthorized: get(&c.unauthorized),
            faults: get(&c.faults),
            active: get(&c.active),
            max_active: get(&c.max_active),
            in_flight: get(&c.in_flight),
            max_in_flight: get(&c.max_in_flight),
        }
    }

    /// Stops accepting and aborts every open connection.
    pub fn shutdown(&self) {
        self.accept.abort();
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

type Reply = Result<Response<ScriptedBody>, io::Error>;

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Reply {
    bump(&st.counters.requests);
    let _in_flight = GaugeGuard::enter(&st.counters.in_flight, &st.counters.max_in_flight);
    let path = req.uri().path().to_owned();
    let kind = if path.ends_with("/chat/completions") {
        Endpoint::Chat
    } else if path.ends_with("/embeddings") {
        Endpoint::Embeddings
    } else {
        return Ok(error_reply(404, "unknown path", None));
    };
    if req.method() != Method::POST {
        return Ok(error_reply(405, "method not allowed", None));
    }
    if let Some(key) = &st.config.api_key {
        let expected = format!("Bearer {key}");
        let sent = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if sent != Some(expected.as_str()) {
            bump(&st.counters.unauthorized);
            // Echo what was sent, as real servers partly do: clients must never log bodies.
            let msg = format!("Incorrect API key provided: {}", sent.unwrap_or("<none>"));
            return Ok(error_reply(401, &msg, None));
        }
    }
    let headers: Vec<(String, String)> = if st.config.record_requests {
        req.headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error_reply(400, "unreadable request body", None)),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return Ok(error_reply(400, "request body is not JSON", None));
    };
    if st.config.record_requests {
        st.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(RecordedRequest {
                path: path.clone(),
                headers,
                body: request.clone(),
            });
    }
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let input = match kind {
        Endpoint::Chat => request
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.last())
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str),
        Endpoint::Embeddings => request.get("input").and_then(Value::as_str),
    };
    let (Some(input), false) = (input, model.is_empty()) else {
        return Ok(error_reply(422, "missing model or input", None));
    };
    let prompt_tokens = prompt_token_estimate(&request, kind);
    let max_tokens = match kind {
        Endpoint::Chat => request
            .get("max_completion_tokens")
            .or_else(|| request.get("max_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(st.config.default_max_tokens),
        Endpoint::Embeddings => 0,
    };
    let fault = st
        .script
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front();
    if fault.is_some() {
        bump(&st.counters.faults);
    }
    let mut extra_delay = Duration::ZERO;
    match &fault {
        Some(Fault::Status {
            status,
            retry_after,
            body,
        }) => {
            let mut r = Response::new(ScriptedBody::full(body.clone()));
            *r.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            set_retry_after(&mut r, retry_after.as_ref());
            return Ok(r);
        }
        Some(Fault::DropConnection) => {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "scripted dropped connection",
            ));
        }
        Some(Fault::Delay(d)) => extra_delay = *d,
        _ => {}
    }
    // Rate limiters: one decision under one lock; a refusal charges nothing.
    let charge = prompt_tokens + max_tokens;
    let verdict = st.limiter.as_ref().map(|l| {
        l.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(st.started.elapsed(), charge)
    });
    let headers = if st.config.rate_limit_headers {
        verdict.as_ref()
    } else {
        None
    };
    if let Some(refusal) = verdict.as_ref().and_then(|v| v.refusal) {
        let (counter, mut r) = refusal_reply(&st.counters, refusal);
        bump(counter);
        set_budget_headers(&mut r, headers);
        return Ok(r);
    }
    if verdict.as_ref().is_some_and(|v| v.tokens.is_some()) {
        st.counters
            .tokens_charged
            .fetch_add(charge, Ordering::Relaxed);
    }
    // Hidden capacity: hold a slot for the whole service time.
    let _permit: Option<Permit> = match &st.slots {
        None => None,
        Some(slots) => match slots.try_acquire() {
            Some(p) => Some(p),
            None => match &st.config.overflow {
                Overflow::RateLimit(ra) => {
                    bump(&st.counters.rate_limited);
                    let mut r = error_reply(429, "rate limit reached", ra.as_ref());
                    set_budget_headers(&mut r, headers);
                    return Ok(r);
                }
                Overflow::Overload(ra) => {
                    bump(&st.counters.overloaded);
                    let mut r = error_reply(503, "server overloaded", ra.as_ref());
                    set_budget_headers(&mut r, headers);
                    return Ok(r);
                }
                Overflow::Queue => {
                    bump(&st.counters.queued);
                    match slots.acquire_queued().await {
                        Some(p) => Some(p),
                        None => return Ok(error_reply(503, "server closed", None)),
                    }
                }
            },
        },
    };
    let _active = GaugeGuard::enter(&st.counters.active, &st.counters.max_active);
    let service = service_time(&st);
    st.counters.service_micros.fetch_add(
        u64::try_from(service.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    tokio::time::sleep(service + extra_delay).await;
    let completion_tokens = max_tokens.min(COMPLETION_TOKENS);
    let payload = match kind {
        Endpoint::Chat => {
            let mut reply = chat_reply(&model, input, prompt_tokens, completion_tokens);
            let content = match &fault {
                Some(Fault::Content(text)) => Some(text.clone()),
                _ => st.config.chat_content.clone(),
            };
            if let Some(text) = content {
                reply["choices"][0]["message"]["content"] = Value::String(text);
            }
            reply
        }
        Endpoint::Embeddings => embedding_reply(&model, input, prompt_tokens),
    };
    let bytes = Bytes::from(payload.to_string());
    let mut response = match fault {
        Some(Fault::MalformedBody) => ok_reply(ScriptedBody::full("{\"choices\": [ not json")),
        Some(Fault::WrongShape) => ok_reply(ScriptedBody::full("{\"object\": \"unexpected\"}")),
        Some(Fault::TruncatedBody) => {
            let half = bytes.slice(..bytes.len() / 2);
            let mut r = ok_reply(ScriptedBody::chunks([
                Chunk::Data(Duration::ZERO, half),
                Chunk::Fail,
            ]));
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            r
        }
        Some(Fault::SlowBody(delay)) => {
            let mut r = ok_reply(ScriptedBody::chunks([Chunk::Data(delay, bytes.clone())]));
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            r
        }
        _ => ok_reply(ScriptedBody::full(bytes)),
    };
    set_budget_headers(&mut response, headers);
    bump(&st.counters.ok);
    Ok(response)
}

/// Completion tokens a served chat request reports in `usage` (capped by its `max_tokens`).
const COMPLETION_TOKENS: u64 = 8;

/// ⌈chars / 4⌉ over every message's text (chat) or the input (embeddings): the usual estimate.
fn prompt_token_estimate(request: &Value, kind: Endpoint) -> u64 {
    let chars: usize = match kind {
        Endpoint::Chat => request
            .get("messages")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| m.get("content").and_then(Value::as_str))
                    .map(|c| c.chars().count())
                    .sum()
            })
            .unwrap_or(0),
        Endpoint::Embeddings => request
            .get("input")
            .and_then(Value::as_str)
            .map_or(0, |s| s.chars().count()),
    };
    (chars as u64).div_ceil(4)
}

/// The service time of one served request: fixed, or lognormal around the configured median.
fn service_time(st: &State) -> Duration {
    let sigma = st.config.latency_sigma;
    if sigma <= 0.0 {
        return st.config.latency;
    }
    let z: f64 = StandardNormal.sample(&mut *st.rng.lock().unwrap_or_else(PoisonError::into_inner));
    Duration::try_from_secs_f64(st.config.latency.as_secs_f64() * (sigma * z).exp())
        .unwrap_or(st.config.latency)
}

/// The 429 of a limiter refusal and the counter it bumps.
fn refusal_reply(c: &Counters, refusal: Refusal) -> (&AtomicU64, Response<ScriptedBody>) {
    match refusal {
        Refusal::Sporadic => (
            &c.sporadic_rate_limited,
            error_reply(429, "rate limit reached, please retry", None),
        ),
        Refusal::Window { .. } => {
            // LiteLLM's proxy shape: no Retry-After, `throttling_error`, code "429".
            let body = json!({"error": {
                "message": "Rate limit reached: max requests per window exceeded",
                "type": "throttling_error", "param": null, "code": "429"}});
            (&c.window_rate_limited, status_reply(429, body.to_string()))
        }
        Refusal::RequestBucket { retry_after } | Refusal::TokenBucket { retry_after } => {
            let (counter, budget) = match refusal {
                Refusal::RequestBucket { .. } => (&c.bucket_rate_limited, "requests"),
                _ => (&c.token_rate_limited, "tokens"),
            };
            let body = json!({"error": {
                "message": format!(
                    "Rate limit reached for {budget} per minute. Please try again in {}.",
                    format_reset(retry_after)
                ),
                "type": budget, "param": null, "code": "rate_limit_exceeded"}});
            let mut r = status_reply(429, body.to_string());
            r.headers_mut().insert(
                "retry-after-ms",
                HeaderValue::from(ceil_millis(retry_after)),
            );
            (counter, r)
        }
    }
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` from a verdict, when headers are on.
fn set_budget_headers(r: &mut Response<ScriptedBody>, verdict: Option<&Verdict>) {
    let Some(v) = verdict else { return };
    let mut put = |suffix: &str, b: Option<Budget>| {
        let Some(b) = b else { return };
        let h = r.headers_mut();
        let pairs = [
            ("limit", b.limit.to_string()),
            ("remaining", b.remaining.to_string()),
            ("reset", format_reset(b.reset_after)),
        ];
        for (what, value) in pairs {
            if let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::try_from(format!("x-ratelimit-{what}-{suffix}")),
                HeaderValue::from_str(&value),
            ) {
                h.insert(name, value);
            }
        }
    };
    put("requests", v.requests);
    put("tokens", v.tokens);
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Chat,
    Embeddings,
}

fn ok_reply(body: ScriptedBody) -> Response<ScriptedBody> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_reply(
    status: u16,
    message: &str,
    retry_after: Option<&RetryAfter>,
) -> Response<ScriptedBody> {
    let body = json!({"error": {"message": message, "type": "loopback_error", "code": status}});
    let mut r = status_reply(status, body.to_string());
    set_retry_after(&mut r, retry_after);
    r
}

fn status_reply(status: u16, body: String) -> Response<ScriptedBody> {
    let mut r = ok_reply(ScriptedBody::full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r
}

fn set_retry_after(r: &mut Response<ScriptedBody>, retry_after: Option<&RetryAfter>) {
    let (name, value) = match retry_after {
        None => return,
        Some(RetryAfter::Seconds(s)) => (RETRY_AFTER.as_str(), s.to_string()),
        Some(RetryAfter::HttpDate(s)) => (
            RETRY_AFTER.as_str(),
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(*s)),
        ),
        Some(RetryAfter::Millis(ms)) => ("retry-after-ms", ms.to_string()),
        Some(RetryAfter::ResetRequests(d)) => {
            let v = if d.subsec_millis() == 0 {
                format!("{}s", d.as_secs())
            } else {
                format!("{}ms", d.as_millis())
            };
            ("x-ratelimit-reset-requests", v)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(name, v);
    }
}

/// Deterministic 64-bit FNV-1a of `s` (answers depend only on the input).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn chat_reply(model: &str, input: &str, prompt_tokens: u64, completion_tokens: u64) -> Value {
    let h = fnv(input);
    json!({
        "id": format!("chatcmpl-{h:016x}"),
        "object": "chat.completion",
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("loopback:{model}:{h:016x}")},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}
    })
}

fn embedding_reply(model: &str, input: &str, prompt_tokens: u64) -> Value {
    let h = fnv(input);
    let vector: Vec<f64> = (0..8)
        .map(|i| f64::from(((h >> (i * 8)) & 0xff) as u8) / 255.0)
        .collect();
    json!({
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    })
}
