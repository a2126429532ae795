//! weir's shared limits on Redis: several weir processes calling one endpoint admit under one
//! concurrency lease set, one learned cap, one cooldown-until and one set of request/token
//! budgets, kept in Redis (issue 17).
//!
//! [`RedisSharedLimits`] implements `weir_request_admission::SharedLimits`: per endpoint a
//! sorted set of leases with expiry (renewed by the live worker; a dead worker's leases
//! expire), a cap learned from concurrency 429s (the in-flight count the provider was serving,
//! held, then probed upward on successes), a shared cooldown-until from Retry-After, and GCRA
//! request/token budgets (configured, or the tightest header-observed limit). Each admission
//! and each release is one Lua script, one round trip; expiry uses the server's clock. When
//! Redis is lost the backend falls back ([`SharedFallback`]: a local share of the cap, or a
//! pause), keeps the leases it holds and recovers when Redis returns, even empty.
//!
//! It needs a running Redis, so the example is not run by the doc tests:
//!
//! ```toml
//! [dependencies]
//! weir-redis = { path = "…/crates/weir-redis" }
//! weir-request-admission = { path = "…/crates/weir-request-admission" }
//! weir-contracts = { path = "…/crates/weir-contracts" }
//! tokio = { version = "1", features = ["rt", "time", "macros"] }
//! ```
//!
//! ```no_run
//! use std::sync::Arc;
//! use weir_contracts::ProviderModelKey;
//! use weir_redis::{RedisSharedLimits, RedisSharedLimitsConfig};
//! use weir_request_admission::{SharedDemand, SharedLimits, SharedRelease, SharedTry};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let config = RedisSharedLimitsConfig { scope: "my-job".into(), ..Default::default() };
//! let shared = RedisSharedLimits::connect("redis://127.0.0.1:6379", config).await?;
//! let endpoint = ProviderModelKey::new("openai", "gpt-x")?;
//! let demand = SharedDemand { static_cap: 32, ..Default::default() };
//! if let SharedTry::Admitted(lease) = shared.try_admit(&endpoint, demand).await {
//!     // ... call the provider ...
//!     shared.release(&endpoint, lease, SharedRelease::default()).await;
//! }
//! println!("{:.2} round trips per request", shared.snapshot().round_trips_per_request);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod keys;
mod scripts;

pub use backend::{
    RedisSharedLimits, RedisSharedLimitsConfig, RedisSharedLimitsError, SharedFallback,
};
pub use keys::EndpointKeys;
