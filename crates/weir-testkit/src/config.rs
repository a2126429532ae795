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
    /// A normal 200 chat answer whose assistant content is this text (e.g. a structured
    /// reply, or an invalid one).
    Content(String),
}

/// A request token bucket: `burst` requests at once, refilled at `per_second`.
///
/// Past it: 429 with `x-ratelimit-reset-requests` and `retry-after-ms` (the time until one
/// request is back), body `type: "requests"` (the OpenAI form).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestBucket {
    /// Refill rate in requests per second (> 0).
    pub per_second: f64,
    /// Bucket size (≥ 1).
    pub burst: u32,
}

/// A fixed window: `limit` requests per `window`, windows tiling time from the first request.
///
/// Past it: 429 with no Retry-After at all and a LiteLLM-style body (`throttling_error`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedWindow {
    /// Requests per window (≥ 1).
    pub limit: u32,
    /// Window length (> 0).
    pub window: Duration,
}

/// A tokens-per-minute bucket: a request costs its prompt estimate (⌈chars / 4⌉ over the
/// messages) plus its `max_tokens` (or [`LoopbackConfig::default_max_tokens`]).
///
/// Past it: 429 with `x-ratelimit-reset-tokens` and `retry-after-ms`, body `type: "tokens"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    /// Refill rate in tokens per minute (≥ 1).
    pub tokens_per_minute: u64,
    /// Bucket size in tokens (≥ 1).
    pub burst: u64,
}

/// 429s drawn at random with `probability` per request, unrelated to load, with no Retry-After.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sporadic429 {
    /// Probability in [0, 1] that a request gets a 429.
    pub probability: f64,
    /// Seed of the draws.
    pub seed: u64,
}

/// From `at` after the server started, the hidden capacity is `capacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityStep {
    /// Time since [`crate::LoopbackServer::start`].
    pub at: Duration,
    /// Requests served at once from then on (≥ 1).
    pub capacity: u32,
}

/// Settings of a [`crate::LoopbackServer`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoopbackConfig {
    /// Requests served at once (`None` = unlimited).
    pub capacity: Option<u32>,
    /// Service time of one request (the median when `latency_sigma > 0`).
    pub latency: Duration,
    /// Lognormal shape of the service time: `latency · exp(σ·Z)`; 0 = fixed latency.
    pub latency_sigma: f64,
    /// Seed of the latency draws.
    pub latency_seed: u64,
    /// Behaviour past capacity.
    pub overflow: Overflow,
    /// Bearer token the server requires (`None` = no check).
    pub api_key: Option<String>,
    /// Capacity changes over time (sorted by `at`; needs `capacity`).
    pub capacity_schedule: Vec<CapacityStep>,
    /// A request token bucket.
    pub request_bucket: Option<RequestBucket>,
    /// A fixed request window (LiteLLM-style).
    pub fixed_window: Option<FixedWindow>,
    /// A tokens-per-minute bucket.
    pub token_bucket: Option<TokenBucket>,
    /// Sporadic 429s.
    pub sporadic_429: Option<Sporadic429>,
    /// Send `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` on every response (2xx
    /// included) for the configured budgets (request bucket, else fixed window; token bucket).
    pub rate_limit_headers: bool,
    /// Tokens charged for the completion when a request names no `max_tokens`.
    pub default_max_tokens: u64,
    /// Keep every request (path, headers, JSON body) for [`crate::LoopbackServer::requests`].
    pub record_requests: bool,
    /// The assistant content of every chat answer not scripted otherwise (`None`: the
    /// default `loopback:<model>:<hash>` text).
    pub chat_content: Option<String>,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        Self {
            capacity: None,
            latency: Duration::from_millis(10),
            latency_sigma: 0.0,
            latency_seed: 0,
            overflow: Overflow::RateLimit(Some(RetryAfter::Seconds(1))),
            api_key: None,
            capacity_schedule: Vec::new(),
            request_bucket: None,
            fixed_window: None,
            token_bucket: None,
            sporadic_429: None,
            rate_limit_headers: false,
            default_max_tokens: 16,
            record_requests: false,
            chat_content: None,
        }
    }
}

impl LoopbackConfig {
    /// Unlimited capacity, 10 ms latency, 429 + `Retry-After: 1` past capacity, no auth.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records every request (see [`crate::LoopbackServer::requests`]).
    pub fn record_requests(mut self) -> Self {
        self.record_requests = true;
        self
    }

    /// Every chat answer carries `content` as its assistant text.
    pub fn chat_content(mut self, content: impl Into<String>) -> Self {
        self.chat_content = Some(content.into());
        self
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

    /// Lognormal service times with median [`Self::latency`] and shape `sigma`, seeded.
    pub fn lognormal_latency(mut self, sigma: f64, seed: u64) -> Self {
        self.latency_sigma = sigma;
        self.latency_seed = seed;
        self
    }

    /// From `at` after start, serve `capacity` at once (appended to the schedule).
    pub fn capacity_at(mut self, at: Duration, capacity: u32) -> Self {
        self.capacity_schedule.push(CapacityStep { at, capacity });
        self
    }

    /// A request token bucket of `burst`, refilled at `per_second`.
    pub fn request_bucket(mut self, per_second: f64, burst: u32) -> Self {
        self.request_bucket = Some(RequestBucket { per_second, burst });
        self
    }

    /// A fixed window of `limit` requests per `window`.
    pub fn fixed_window(mut self, limit: u32, window: Duration) -> Self {
        self.fixed_window = Some(FixedWindow { limit, window });
        self
    }

    /// A tokens-per-minute bucket of `burst` tokens.
    pub fn token_bucket(mut self, tokens_per_minute: u64, burst: u64) -> Self {
        self.token_bucket = Some(TokenBucket {
            tokens_per_minute,
            burst,
        });
        self
    }

    /// Sporadic 429s with `probability`, seeded.
    pub fn sporadic_429(mut self, probability: f64, seed: u64) -> Self {
        self.sporadic_429 = Some(Sporadic429 { probability, seed });
        self
    }

    /// `x-ratelimit-*` headers on every response.
    pub fn rate_limit_headers(mut self, on: bool) -> Self {
        self.rate_limit_headers = on;
        self
    }

    /// Hidden capacity at `elapsed` since start (`None` = unlimited).
    pub fn capacity_at_elapsed(&self, elapsed: Duration) -> Option<u32> {
        let base = self.capacity?;
        Some(
            self.capacity_schedule
                .iter()
                .take_while(|s| s.at <= elapsed)
                .last()
                .map_or(base, |s| s.capacity),
        )
    }

    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |field: &str, why: &str| Err(format!("{field}: {why}"));
        if self.capacity == Some(0) {
            return bad("capacity", "must be ≥ 1");
        }
        if !(self.latency_sigma.is_finite() && self.latency_sigma >= 0.0) {
            return bad("latency_sigma", "must be a finite number ≥ 0");
        }
        if !self.capacity_schedule.is_empty() && self.capacity.is_none() {
            return bad("capacity_schedule", "needs a base capacity");
        }
        for (i, w) in self.capacity_schedule.windows(2).enumerate() {
            if w[1].at <= w[0].at {
                return bad(
                    &format!("capacity_schedule[{}].at", i + 1),
                    "must be strictly increasing",
                );
            }
        }
        if let Some(i) = self.capacity_schedule.iter().position(|s| s.capacity == 0) {
            return bad(&format!("capacity_schedule[{i}].capacity"), "must be ≥ 1");
        }
        if let Some(b) = &self.request_bucket {
            if !(b.per_second.is_finite() && b.per_second > 0.0) {
                return bad("request_bucket.per_second", "must be a finite number > 0");
            }
            if b.burst == 0 {
                return bad("request_bucket.burst", "must be ≥ 1");
            }
        }
        if let Some(w) = &self.fixed_window {
            if w.limit == 0 {
                return bad("fixed_window.limit", "must be ≥ 1");
            }
            if w.window.is_zero() {
                return bad("fixed_window.window", "must be > 0");
            }
        }
        if let Some(t) = &self.token_bucket {
            if t.tokens_per_minute == 0 {
                return bad("token_bucket.tokens_per_minute", "must be ≥ 1");
            }
            if t.burst == 0 {
                return bad("token_bucket.burst", "must be ≥ 1");
            }
        }
        if let Some(s) = &self.sporadic_429 {
            if !(s.probability.is_finite() && (0.0..=1.0).contains(&s.probability)) {
                return bad("sporadic_429.probability", "must be within [0, 1]");
            }
        }
        Ok(())
    }
}
