//! `LoopbackServer`: an OpenAI-compatible HTTP/1.1 endpoint on 127.0.0.1 (ephemeral port) with
//! hidden capacity, latency, rate limiting, overload, queueing and scripted faults.

use crate::body::{Chunk, ScriptedBody};
use crate::config::{Fault, LoopbackConfig, Overflow, RetryAfter};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    ok: AtomicU64,
    rate_limited: AtomicU64,
    overloaded: AtomicU64,
    queued: AtomicU64,
    unauthorized: AtomicU64,
    faults: AtomicU64,
    active: AtomicU64,
    max_active: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
struct State {
    config: LoopbackConfig,
    slots: Option<Arc<Semaphore>>,
    script: Mutex<VecDeque<Fault>>,
    counters: Counters,
}

/// Keeps `active` right however the request ends (including a dropped connection).
struct ActiveGuard<'a>(&'a Counters);

impl<'a> ActiveGuard<'a> {
    fn enter(c: &'a Counters) -> Self {
        let now = c.active.fetch_add(1, Ordering::AcqRel) + 1;
        c.max_active.fetch_max(now, Ordering::AcqRel);
        Self(c)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
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
    pub async fn start(config: LoopbackConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let slots = config
            .capacity
            .map(|c| Arc::new(Semaphore::new(c as usize)));
        let state = Arc::new(State {
            config,
            slots,
            script: Mutex::new(VecDeque::new()),
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
                            let _ = http1::Builder::new()
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

    /// A copy of the counters.
    pub fn stats(&self) -> LoopbackStats {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        LoopbackStats {
            connections: get(&c.connections),
            requests: get(&c.requests),
            ok: get(&c.ok),
            rate_limited: get(&c.rate_limited),
            overloaded: get(&c.overloaded),
            queued: get(&c.queued),
            unauthorized: get(&c.unauthorized),
            faults: get(&c.faults),
            active: get(&c.active),
            max_active: get(&c.max_active),
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
    // Hidden capacity: hold a slot for the whole service time.
    let _permit = match &st.slots {
        None => None,
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => match &st.config.overflow {
                Overflow::RateLimit(ra) => {
                    bump(&st.counters.rate_limited);
                    return Ok(error_reply(429, "rate limit reached", ra.as_ref()));
                }
                Overflow::Overload(ra) => {
                    bump(&st.counters.overloaded);
                    return Ok(error_reply(503, "server overloaded", ra.as_ref()));
                }
                Overflow::Queue => {
                    bump(&st.counters.queued);
                    match slots.clone().acquire_owned().await {
                        Ok(p) => Some(p),
                        Err(_) => return Ok(error_reply(503, "server closed", None)),
                    }
                }
            },
        },
    };
    let _active = ActiveGuard::enter(&st.counters);
    tokio::time::sleep(st.config.latency + extra_delay).await;
    let payload = match kind {
        Endpoint::Chat => chat_reply(&model, input),
        Endpoint::Embeddings => embedding_reply(&model, input),
    };
    let bytes = Bytes::from(payload.to_string());
    let response = match fault {
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
    bump(&st.counters.ok);
    Ok(response)
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
    let mut r = ok_reply(ScriptedBody::full(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    set_retry_after(&mut r, retry_after);
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

fn chat_reply(model: &str, input: &str) -> Value {
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
        "usage": {"prompt_tokens": input.len() / 4, "completion_tokens": 8, "total_tokens": input.len() / 4 + 8}
    })
}

fn embedding_reply(model: &str, input: &str) -> Value {
    let h = fnv(input);
    let vector: Vec<f64> = (0..8)
        .map(|i| f64::from(((h >> (i * 8)) & 0xff) as u8) / 255.0)
        .collect();
    json!({
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "usage": {"prompt_tokens": input.len() / 4, "total_tokens": input.len() / 4}
    })
}
