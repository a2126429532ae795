//! How a rate limit is read (see `plans/request-admission.md`, "429 classification").

use weir_contracts::payload::RateLimitClassification;

/// The reading of one rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateLimitClass {
    /// Too many in flight: a decrease, and an endpoint cooldown when `cooldown`.
    Concurrency { cooldown: bool },
    /// The provider said a request or token window is exhausted: a per-request (budget) wait.
    Window,
    /// Admitted well below the concurrency that was recently succeeding: noise.
    Isolated,
    /// No Retry-After, no signal and too few rate limits in the loss window to mean
    /// concurrency: the executor's per-request backoff handles it.
    Unconfirmed,
}

impl RateLimitClass {
    /// Its durable name in `request_rate_limited` events.
    pub fn classification(self) -> RateLimitClassification {
        match self {
            Self::Concurrency { .. } => RateLimitClassification::Concurrency,
            Self::Window => RateLimitClassification::Window,
            Self::Isolated => RateLimitClassification::Isolated,
            Self::Unconfirmed => RateLimitClassification::Unconfirmed,
        }
    }
}
