//! `ModelFacade`: the boundary generator code uses to make concrete model calls, and its typed errors.
//!
//! Generators never see providers, request admission or leases: they call `chat` / `embed` by model
//! alias and get a reply or a classified [`ModelCallError`]. The engine implements this trait on
//! top of `ModelRequestExecutor` (each call attempt is admitted separately), so a task may make
//! zero, one or many calls.

use crate::inference::ChatRequest;
use crate::provider::ProviderError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use weir_contracts::RequestAdmissionDenyReason;

/// A chat reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelReply {
    /// The completion text.
    pub text: String,
}

impl ModelReply {
    /// A reply with `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }
}

/// How a model call failed; decides whether the task may be retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelCallErrorKind {
    /// The provider rate-limited the call (HTTP 429 or equivalent).
    RateLimited {
        /// Provider-supplied pause, in seconds.
        retry_after_seconds: Option<f64>,
    },
    /// The outbound provider attempt timed out after it started.
    ProviderTimeout,
    /// The provider failed (5xx, connection error, 4xx, ...).
    ProviderFailure {
        /// HTTP-like status when there is one (`None` for connection errors).
        status: Option<u16>,
        /// Whether trying again may succeed (5xx and connection errors are retryable).
        retryable: bool,
    },
    /// Request admission refused or timed out before any provider call started.
    Admission {
        /// The admission denial reason (e.g. `queue_timeout`, `shutdown`).
        reason: String,
    },
    /// The call was cancelled locally.
    Cancelled,
    /// The alias is not in the model registry.
    UnknownAlias,
    /// The provider answered with something that is not a valid reply.
    MalformedResponse,
}

impl ModelCallErrorKind {
    /// Snake_case name of the classification.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::ProviderTimeout => "provider_timeout",
            Self::ProviderFailure { .. } => "provider_failure",
            Self::Admission { .. } => "admission",
            Self::Cancelled => "cancelled",
            Self::UnknownAlias => "unknown_alias",
            Self::MalformedResponse => "malformed_response",
        }
    }

    /// The typed request-admission denial reason of an `Admission` error (`None` otherwise,
    /// or when the reason is not one the controller defines).
    pub fn admission_reason(&self) -> Option<RequestAdmissionDenyReason> {
        match self {
            Self::Admission { reason } => RequestAdmissionDenyReason::ALL
                .iter()
                .copied()
                .find(|r| r.as_str() == reason),
            _ => None,
        }
    }

    /// True for failures that mean "wait, then try again" rather than "this call is broken":
    /// a provider rate limit (429, or a saturated server's 503) and a request-admission wait
    /// that ended without a lease (queue timeout, cooldown, capacity). These never use up a
    /// cell's retry budget; the scheduler keeps such tasks for salvage.
    pub fn is_wait(&self) -> bool {
        match self {
            Self::RateLimited { .. } => true,
            Self::Admission { .. } => !matches!(
                self.admission_reason(),
                Some(RequestAdmissionDenyReason::Shutdown)
                    | Some(RequestAdmissionDenyReason::HardPolicyDenial)
            ),
            _ => false,
        }
    }

    /// True for provider-side transient failures: rate limit, timeout, retryable provider failure.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::ProviderTimeout
                | Self::ProviderFailure {
                    retryable: true,
                    ..
                }
        )
    }
}

/// The provider-side report fields of a failed call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDetail {
    /// The URL path the failing attempt went to (no host, query or credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,
    /// The provider's informative error type or code (e.g. `invalid_api_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_error_type: Option<String>,
}

/// A failed model call: the alias, the classification and a sanitized message (no prompt text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCallError {
    /// The model alias the generator called.
    pub alias: String,
    /// The classification.
    pub kind: ModelCallErrorKind,
    /// Sanitized detail (never prompts, completions or secrets).
    pub message: String,
    /// The HTTP status of the provider answer behind this error, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Where the failing attempt went and what the provider called the error (boxed: most
    /// errors have none, and a small error keeps every `Result` of the facade small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Box<ProviderDetail>>,
    /// The provider's verdict that retrying cannot help because the run is misconfigured
    /// (bad key, unknown model, wrong URL, TLS, refused connection); see
    /// `scheduler::is_configuration_failure`, which also reads the status.
    #[serde(default)]
    pub configuration: bool,
    /// Outbound attempts this call made that count against the cell's retry budget (rate
    /// limits excluded); 0 when the facade does not say (then the call counts as one).
    #[serde(default)]
    pub attempts: u32,
}

impl ModelCallError {
    /// Builds an error.
    pub fn new(
        alias: impl Into<String>,
        kind: ModelCallErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            alias: alias.into(),
            kind,
            message: message.into(),
            status: None,
            provider: None,
            configuration: false,
            attempts: 0,
        }
    }

    /// Copies the report fields of the provider failure behind this error: HTTP status, URL
    /// path and the provider's error type (all already sanitized by the provider).
    pub fn with_provider_error(mut self, e: &ProviderError) -> Self {
        self.status = e.status;
        // The provider layer's own verdict: retrying cannot fix a bad key, URL, model or TLS
        // setup (see `ProviderError::is_configuration`).
        self.configuration |= e.is_configuration();
        self.provider = (e.url_path.is_some() || e.provider_error_type.is_some()).then(|| {
            Box::new(ProviderDetail {
                url_path: e.url_path.clone(),
                provider_error_type: e.provider_error_type.clone(),
            })
        });
        self
    }

    /// The same error with its URL path and provider error type.
    pub fn with_provider_detail(mut self, detail: ProviderDetail) -> Self {
        self.provider = Some(Box::new(detail));
        self
    }

    /// The URL path of the failing attempt, when known.
    pub fn url_path(&self) -> Option<&str> {
        self.provider.as_ref().and_then(|d| d.url_path.as_deref())
    }

    /// The provider's error type or code, when it sent one.
    pub fn provider_error_type(&self) -> Option<&str> {
        self.provider
            .as_ref()
            .and_then(|d| d.provider_error_type.as_deref())
    }

    /// The same error, recording that `attempts` outbound attempts were spent on it.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The same error, marked as a configuration failure (retrying cannot fix it).
    pub fn with_configuration(mut self, configuration: bool) -> Self {
        self.configuration = configuration;
        self
    }

    /// The HTTP status: the recorded one, else the one in a `ProviderFailure` kind.
    pub fn http_status(&self) -> Option<u16> {
        self.status.or(match &self.kind {
            ModelCallErrorKind::ProviderFailure { status, .. } => *status,
            _ => None,
        })
    }

    /// See [`ModelCallErrorKind::is_wait`].
    pub fn is_wait(&self) -> bool {
        self.kind.is_wait()
    }

    /// Shorthand for a rate-limited error.
    pub fn rate_limited(alias: impl Into<String>, retry_after_seconds: Option<f64>) -> Self {
        Self::new(
            alias,
            ModelCallErrorKind::RateLimited {
                retry_after_seconds,
            },
            "rate limited",
        )
    }

    /// Shorthand for an unknown alias.
    pub fn unknown_alias(alias: impl Into<String>) -> Self {
        let alias = alias.into();
        let message = format!("model alias {alias:?} is not registered");
        Self::new(alias, ModelCallErrorKind::UnknownAlias, message)
    }

    /// See [`ModelCallErrorKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Display for ModelCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "model call via {:?} failed ({}): {}",
            self.alias,
            self.kind.as_str(),
            self.message
        )
    }
}

impl std::error::Error for ModelCallError {}

/// The generator-facing model-call boundary. Implementations own admission, retries and providers.
#[async_trait]
pub trait ModelFacade: Send + Sync {
    /// One chat call to the endpoint behind `alias` with a system prompt, inference parameters
    /// and a response format (see [`ChatRequest`]).
    async fn chat_request(
        &self,
        alias: &str,
        request: &ChatRequest,
    ) -> Result<ModelReply, ModelCallError>;

    /// One plain chat call (the prompt only): [`chat_request`](Self::chat_request) with no options.
    async fn chat(&self, alias: &str, prompt: &str) -> Result<ModelReply, ModelCallError> {
        self.chat_request(alias, &ChatRequest::new(prompt)).await
    }
    /// One embedding call to the endpoint behind `alias`.
    async fn embed(&self, alias: &str, input: &str) -> Result<Vec<f32>, ModelCallError>;
}

/// A facade with no models: every call fails with `unknown_alias` (for local-only workflows).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoModelFacade;

#[async_trait]
impl ModelFacade for NoModelFacade {
    async fn chat_request(
        &self,
        alias: &str,
        _request: &ChatRequest,
    ) -> Result<ModelReply, ModelCallError> {
        Err(ModelCallError::unknown_alias(alias))
    }

    async fn embed(&self, alias: &str, _input: &str) -> Result<Vec<f32>, ModelCallError> {
        Err(ModelCallError::unknown_alias(alias))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(ModelCallErrorKind::RateLimited {
            retry_after_seconds: None
        }
        .is_retryable());
        assert!(ModelCallErrorKind::ProviderTimeout.is_retryable());
        assert!(ModelCallErrorKind::ProviderFailure {
            status: Some(503),
            retryable: true
        }
        .is_retryable());
        assert!(!ModelCallErrorKind::ProviderFailure {
            status: Some(400),
            retryable: false
        }
        .is_retryable());
        assert!(!ModelCallErrorKind::Admission {
            reason: "queue_timeout".into()
        }
        .is_retryable());
        assert!(!ModelCallErrorKind::MalformedResponse.is_retryable());
    }

    #[tokio::test]
    async fn no_model_facade_refuses() {
        let err = NoModelFacade.chat("m", "p").await.unwrap_err();
        assert_eq!(err.kind, ModelCallErrorKind::UnknownAlias);
    }
}
