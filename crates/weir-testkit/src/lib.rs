//! Test support for weir: [`LoopbackServer`], an OpenAI-compatible HTTP endpoint on 127.0.0.1.
//!
//! It serves `POST …/chat/completions` and `POST …/embeddings` on an ephemeral port with a hidden
//! capacity (requests served at once, optionally stepping over time), a fixed or lognormal
//! latency, optional rate limiters (request token bucket, fixed window, tokens-per-minute bucket,
//! sporadic 429s) with OpenAI-form `x-ratelimit-*` headers on every response, a `usage` object
//! on every answer, and a configurable answer past capacity:
//! 429 with `Retry-After` (delta-seconds, HTTP-date, `retry-after-ms` or
//! `x-ratelimit-reset-requests`), 503 overload, or queueing instead of rejecting. Scripted
//! [`Fault`]s (any status with any body, malformed / truncated / slow bodies, dropped
//! connections, extra delay) apply to the next requests in order. Only dev-dependencies of
//! `weir-runtime` and `weir-cli`, and the `weir-benches` harness (the goodput matrix), may use
//! this crate.
//!
//! ```
//! use std::time::Duration;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use weir_testkit::{LoopbackConfig, LoopbackServer};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let server = LoopbackServer::start(
//!     LoopbackConfig::new().capacity(2).latency(Duration::from_millis(5)),
//! )
//! .await?;
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//!
//! let body = r#"{"model":"m1","messages":[{"role":"user","content":"hi"}]}"#;
//! let mut conn = tokio::net::TcpStream::connect(server.addr()).await?;
//! conn.write_all(
//!     format!(
//!         "POST /v1/chat/completions HTTP/1.1\r\nhost: loopback\r\ncontent-type: application/json\r\n\
//!          content-length: {}\r\nconnection: close\r\n\r\n{body}",
//!         body.len()
//!     )
//!     .as_bytes(),
//! )
//! .await?;
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200"));
//! assert!(answer.contains("loopback:m1:"));
//! assert_eq!(server.stats().ok, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod body;
mod config;
mod limits;
mod redis_server;
mod server;
mod slots;

pub use config::{
    CapacityStep, Fault, FixedWindow, LoopbackConfig, Overflow, RequestBucket, RetryAfter,
    Sporadic429, TokenBucket,
};
pub use redis_server::{RedisServer, RedisServerError};
pub use server::{LoopbackServer, LoopbackStats, RecordedRequest};
