//! Loopback server settings: hidden capacity, latency, what happens past capacity, scripted faults.

use std::time::Duration;

/// How a rate-limit or overload answer states when to come back.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryAfter {
    /// `Retry-After: <n>` (delta-seconds).
    Seconds(u64),
    /// `Retry-After: <IMF-fixdate>`, `n` seconds from now (HTTP-dates have 1 s resolution).
    HttpDate(u64),
    /// `retry-after-ms: <n>` only (the OpenAI extension).
    Millis(u64),
    /// `x-ratelimit-reset-requests: <OpenAI duration, e.g. "1s" or "250ms">` only.
    ResetRequests(Duration),
}

/// What the server does with a request that arrives while its hidden capacity is full.
#[derive(Debug, Clone, PartialEq)]
pub enum Overflow {
    /// Answer 429 at once, with the given Retry-After form (or none).
    RateLimit(Option<RetryAfter>),
    /// Answer 503 at once, with the given Retry-After form (or none).
    Overload(Option<RetryAfter>),
    /// Queue it (FIFO) until a slot frees: the server never rejects, latency grows instead.
    Queue,
}

/// A scripted answer for the next request (consumed in order, before capacity is checked).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer `status` at once with `body` (and the Retry-After form, if any).
    Status {
        /// HTTP status.
        status: u16,
        /// Optional Retry-After form.
        retry_after: Option<RetryAfter>,
        /// Response body (may contain text a client must never echo).
        body: String,
    },
    /// A 200 whose body is not JSON.
    MalformedBody,
    /// A 200 with valid JSON of the wrong shape (no `choices` / `data`).
    WrongShape,
    /// A 200 whose body stops half-way (Content-Length promised more) and the connection breaks.
    TruncatedBody,
    /// Headers at once, the body only after `delay`.
    SlowBody(Duration),
    /// Close the connection without any response.
    DropConnection,
    /// Extra latency before an otherwise normal answer.
    Delay(Duration),
}

/// Settings of a [`crate::LoopbackServer`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoopbackConfig {
    /// Requests served at once (`None` = unlimited).
    pub capacity: Option<u32>,
    /// Service time of one request.
    pub latency: Duration,
    /// Behaviour past capacity.
    pub overflow: Overflow,
    /// Bearer token the server requires (`None` = no check).
    pub api_key: Option<String>,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        Self {
            capacity: None,
            latency: Duration::from_millis(10),
            overflow: Overflow::RateLimit(Some(RetryAfter::Seconds(1))),
            api_key: None,
        }
    }
}

impl LoopbackConfig {
    /// Unlimited capacity, 10 ms latency, 429 + `Retry-After: 1` past capacity, no auth.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hidden capacity (requests served at once).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Service time of one request.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Behaviour past capacity.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Requires `Authorization: Bearer <key>`; anything else gets a 401.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}
