//! `ProviderError`: the typed, sanitized failure of one provider call and its release classification.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::time::Duration;
use weir_contracts::{
    RateLimitObservation, RateLimitSignal, RequestReleaseOutcome, RequestReleaseOutcomeKind,
};

/// What kind of failure a provider call ended with.
///
/// | kind | retryable | configuration | typical cause |
/// |---|---|---|---|
/// | `RateLimited` | yes | no | 429 |
/// | `Timeout` | yes | no | 408, 504, client timeout |
/// | `ServerError` | yes | no | 5xx other than 503/504 |
/// | `Connection` | yes | no | connection dropped before or during the answer |
/// | `Client` | no | 401/403/404, model-not-found or quota codes, no status | other 4xx |
/// | `Malformed` | no | no | a 2xx body that is not the expected JSON |
/// | `Overloaded` | yes | no | 503 (the HTTP adapter: 529 too) |
/// | `Unreachable` | no | yes | connection refused, host name did not resolve |
/// | `Tls` | no | yes | TLS handshake or certificate verification failed |
/// | `Redirect` | no | yes | a 3xx answer (never followed) |
/// | `ResponseTooLarge` | no | no | a 2xx body past `max_response_bytes` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderErrorKind {
    /// HTTP 429 (or equivalent): the provider is rate limiting us.
    RateLimited,
    /// The outbound attempt started and timed out (transport or HTTP 408).
    Timeout,
    /// A 5xx other than 503: the provider failed.
    ServerError,
    /// The connection broke before or while the answer arrived (a later attempt may work).
    Connection,
    /// A 4xx other than 408/429 (400/401/403/404/413/422, quota exhausted): never retried.
    Client,
    /// The provider answered with something we could not understand.
    Malformed,
    /// HTTP 503 (or 529) from a saturated server: treated as rate-limit pressure.
    Overloaded,
    /// The endpoint could not be reached at all: connection refused or the host name did not
    /// resolve (a wrong `base_url` or a server that is down). Never retried.
    Unreachable,
    /// The TLS handshake failed (an untrusted or invalid certificate, a protocol mismatch).
    /// Never retried: the next attempt meets the same certificate.
    Tls,
    /// The endpoint answered with a redirect (3xx). weir never follows one (it would re-post
    /// the body, possibly to another origin, invisibly to admission); never retried.
    Redirect,
    /// A 2xx body was larger than the provider's `max_response_bytes`; reading stopped there.
    ResponseTooLarge,
}

impl ProviderErrorKind {
    /// Every kind.
    pub const ALL: [ProviderErrorKind; 11] = [
        Self::RateLimited,
        Self::Timeout,
        Self::ServerError,
        Self::Connection,
        Self::Client,
        Self::Malformed,
        Self::Overloaded,
        Self::Unreachable,
        Self::Tls,
        Self::Redirect,
        Self::ResponseTooLarge,
    ];

    /// The snake_case name (used in diagnostics).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::ServerError => "server_error",
            Self::Connection => "connection",
            Self::Client => "client",
            Self::Malformed => "malformed",
            Self::Overloaded => "overloaded",
            Self::Unreachable => "unreachable",
            Self::Tls => "tls",
            Self::Redirect => "redirect",
            Self::ResponseTooLarge => "response_too_large",
        }
    }

    /// True when a later attempt of the same request may succeed (the failure is transient).
    ///
    /// This is a property of the failure, not a retry policy: the executor decides whether a
    /// transient failure is retried in place or handed back to the scheduler (e.g. 429).
    pub const fn retryable(self) -> bool {
        match self {
            Self::RateLimited
            | Self::Timeout
            | Self::ServerError
            | Self::Connection
            | Self::Overloaded => true,
            Self::Client
            | Self::Malformed
            | Self::Unreachable
            | Self::Tls
            | Self::Redirect
            | Self::ResponseTooLarge => false,
        }
    }

    /// True for the kinds that are provider pressure (they drive AIMD decrease and cooldown).
    pub const fn is_pressure(self) -> bool {
        matches!(self, Self::RateLimited | Self::Overloaded)
    }

    /// True for the kinds that are always a configuration error (see
    /// [`ProviderError::is_configuration`], which also judges `Client` errors by status/type).
    pub const fn is_configuration(self) -> bool {
        matches!(self, Self::Unreachable | Self::Tls | Self::Redirect)
    }
}

/// Provider error types/codes that say the configuration is wrong (model, key, deployment,
/// account), whatever the HTTP status: waiting or retrying cannot help.
pub const CONFIGURATION_ERROR_TYPES: &[&str] = &[
    "model_not_found",
    "invalid_model",
    "unknown_model",
    "model_not_available",
    "not_found_error",
    "NotFoundError",
    "DeploymentNotFound",
    "deployment_not_found",
    "invalid_api_key",
    "authentication_error",
    "AuthenticationError",
    "permission_error",
    "permission_denied",
    "PermissionDeniedError",
    "insufficient_quota",
    "billing_hard_limit_reached",
];

impl fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call: kind, optional HTTP status and Retry-After, and a sanitized message.
///
/// `message` is safe for logs and telemetry: it never holds a response body, a prompt or a
/// secret. The constructors below build fixed messages; adapters that set their own must keep
/// that rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderError {
    /// Classified kind.
    pub kind: ProviderErrorKind,
    /// HTTP status when there was one.
    pub status: Option<u16>,
    /// Provider-supplied Retry-After (rate limited / overloaded only, in practice).
    pub retry_after: Option<Duration>,
    /// Sanitized, human-readable description.
    pub message: String,
    /// What the provider said about a rate limit's cause (headers or body), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_signal: Option<RateLimitSignal>,
    /// The budget windows the error response reported (rate-limit headers), when it sent any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimitObservation>,
    /// The provider's informative error type or code (e.g. `invalid_api_key`,
    /// `model_not_found`), sanitized; never a message body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_error_type: Option<String>,
    /// The URL path the attempt was sent to (no host, query or credentials), for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,
}

impl ProviderError {
    /// An error of `kind` with explicit fields.
    pub fn new(
        kind: ProviderErrorKind,
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            status,
            retry_after,
            message: message.into(),
            rate_limit_signal: None,
            rate_limits: None,
            provider_error_type: None,
            url_path: None,
        }
    }

    /// HTTP 429, with the provider's Retry-After when it sent one.
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        Self::new(
            ProviderErrorKind::RateLimited,
            Some(429),
            retry_after,
            "provider rate limited the request (429)",
        )
    }

    /// HTTP 503 from a saturated (queueing) server.
    pub fn overloaded(retry_after: Option<Duration>) -> Self {
        Self::new(
            ProviderErrorKind::Overloaded,
            Some(503),
            retry_after,
            "provider is overloaded (503)",
        )
    }

    /// The outbound attempt timed out (no HTTP status).
    pub fn timeout() -> Self {
        Self::new(
            ProviderErrorKind::Timeout,
            None,
            None,
            "provider call timed out",
        )
    }

    /// A 5xx server error.
    pub fn server_error(status: u16) -> Self {
        Self::new(
            ProviderErrorKind::ServerError,
            Some(status),
            None,
            format!("provider server error ({status})"),
        )
    }

    /// The connection failed before a response arrived.
    pub fn connection() -> Self {
        Self::new(
            ProviderErrorKind::Connection,
            None,
            None,
            "could not connect to the provider",
        )
    }

    /// A non-retryable client error (4xx other than 408/429).
    pub fn client(status: u16, reason: &str) -> Self {
        Self::new(
            ProviderErrorKind::Client,
            Some(status),
            None,
            format!("provider rejected the request ({status}): {reason}"),
        )
    }

    /// The response could not be understood; `what` names the part (never its content).
    pub fn malformed(status: Option<u16>, what: &str) -> Self {
        Self::new(
            ProviderErrorKind::Malformed,
            status,
            None,
            format!("malformed provider response: {what}"),
        )
    }

    /// Classifies a non-2xx HTTP status (3xx: `Redirect`, never followed).
    ///
    /// `quota_exhausted` is the adapter's verdict on the body ("insufficient_quota", "out of
    /// credits", ...): quota exhaustion is a client error even on a 429, because waiting does
    /// not help and it must not drive AIMD. The body itself is never stored.
    pub fn from_http_status(
        status: u16,
        retry_after: Option<Duration>,
        quota_exhausted: bool,
    ) -> Self {
        if quota_exhausted {
            return Self::client(status, "quota exhausted");
        }
        match status {
            429 => Self::rate_limited(retry_after),
            503 => Self::overloaded(retry_after),
            408 => Self {
                status: Some(408),
                ..Self::timeout()
            },
            500..=599 => Self::server_error(status),
            400..=499 => Self::client(status, client_reason(status)),
            300..=399 => Self::new(
                ProviderErrorKind::Redirect,
                Some(status),
                None,
                format!(
                    "provider answered with a redirect ({status}); weir does not follow redirects"
                ),
            ),
            _ => Self::malformed(Some(status), "unexpected HTTP status"),
        }
    }

    /// True when a later attempt may succeed (see [`ProviderErrorKind::retryable`]).
    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }

    /// True when the failure says the run's configuration is wrong, so every later call to this
    /// endpoint will fail the same way: the scheduler may stop the run at once (fail fast)
    /// instead of spending retries. Never true for a retryable error.
    ///
    /// | failure | configuration |
    /// |---|---|
    /// | `Unreachable` (connection refused, DNS), `Tls`, `Redirect` | always |
    /// | `Client` 401, 403, 404 | always |
    /// | `Client` whose `provider_error_type` is in [`CONFIGURATION_ERROR_TYPES`] (model not found, bad key, quota/billing) | yes |
    /// | `Client` without a status (the adapter refused before sending, e.g. an unserved domain) | yes |
    /// | other `Client` (400, 413, 422 …), `Malformed`, `ResponseTooLarge` | no (this row's input may be at fault) |
    /// | every retryable kind | no |
    pub fn is_configuration(&self) -> bool {
        if self.kind.is_configuration() {
            return true;
        }
        if self.kind != ProviderErrorKind::Client {
            return false;
        }
        matches!(self.status, None | Some(401 | 403 | 404))
            || self
                .provider_error_type
                .as_deref()
                .is_some_and(|t| CONFIGURATION_ERROR_TYPES.contains(&t))
    }

    /// The same error with the URL path it was sent to (path only: no host, query, secrets).
    pub fn with_url_path(mut self, path: impl Into<String>) -> Self {
        self.url_path = Some(path.into());
        self
    }

    /// The same error with the budget windows its response reported (`None` when empty).
    pub fn with_rate_limits(mut self, rate_limits: Option<RateLimitObservation>) -> Self {
        self.rate_limits = rate_limits.filter(|r| !r.is_empty());
        self
    }

    /// The same error with the provider's sanitized error type or code.
    pub fn with_provider_error_type(mut self, error_type: Option<String>) -> Self {
        self.provider_error_type = error_type;
        self
    }

    /// The same error with what the provider said about a rate limit's cause.
    pub fn with_rate_limit_signal(mut self, signal: Option<RateLimitSignal>) -> Self {
        self.rate_limit_signal = signal;
        self
    }

    /// The outcome the executor releases the request lease with.
    ///
    /// | kind | outcome |
    /// |---|---|
    /// | RateLimited | `rate_limited`, retry_after_seconds, status 429 |
    /// | Overloaded | `rate_limited`, retry_after_seconds, status 503 |
    /// | Timeout | `provider_timeout`, status if any |
    /// | ServerError, Connection, Client, Malformed, Unreachable, Tls, Redirect, ResponseTooLarge | `provider_failure`, status if any |
    ///
    /// Every outcome carries the diagnostic `provider_error_kind`.
    pub fn release_outcome(&self) -> RequestReleaseOutcome {
        let mut outcome = match self.kind {
            ProviderErrorKind::RateLimited | ProviderErrorKind::Overloaded => {
                RequestReleaseOutcome::rate_limited(self.retry_after.map(|d| d.as_secs_f64()))
            }
            ProviderErrorKind::Timeout => {
                RequestReleaseOutcome::of(RequestReleaseOutcomeKind::ProviderTimeout)
            }
            ProviderErrorKind::ServerError
            | ProviderErrorKind::Connection
            | ProviderErrorKind::Client
            | ProviderErrorKind::Malformed
            | ProviderErrorKind::Unreachable
            | ProviderErrorKind::Tls
            | ProviderErrorKind::Redirect
            | ProviderErrorKind::ResponseTooLarge => {
                RequestReleaseOutcome::of(RequestReleaseOutcomeKind::ProviderFailure)
            }
        };
        if self.status.is_some() {
            outcome.provider_status = self.status;
        }
        if outcome.kind == RequestReleaseOutcomeKind::RateLimited {
            outcome.rate_limit_signal = self.rate_limit_signal.or(
                // A saturated (queueing) server's 503 is concurrency pressure by definition.
                (self.kind == ProviderErrorKind::Overloaded)
                    .then_some(RateLimitSignal::Concurrency),
            );
        }
        outcome.diagnostics.insert(
            "provider_error_kind".to_owned(),
            Value::from(self.kind.as_str()),
        );
        outcome
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProviderError {}

/// A fixed, body-free reason for a 4xx status.
fn client_reason(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        401 => "authentication failed",
        403 => "permission denied",
        404 => "not found",
        413 => "request too large",
        422 => "unprocessable entity",
        _ => "client error",
    }
}

/// Parses an HTTP `Retry-After` value given as delta-seconds (integer or decimal).
///
/// Zero, negative, non-finite and HTTP-date values give `None`, so the controller falls back
/// to its own cooldown (the reference did the same for ≤ 0; HTTP-dates need a wall clock,
/// which the adapter owns).
pub fn parse_retry_after_seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}
