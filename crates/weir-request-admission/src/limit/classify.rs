//! How a rate limit is read (see `plans/request-admission.md`, "429 classification").

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
    /// The durable name used in `request_rate_limited` diagnostics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrency { .. } => "concurrency",
            Self::Window => "window",
            Self::Isolated => "isolated",
            Self::Unconfirmed => "unconfirmed",
        }
    }
}
