//! Model providers: the `ModelProvider` trait, its request/response/error types, and two providers.
//!
//! A provider makes one outbound call and classifies how it ended; it knows nothing about
//! admission, leases or retries (the executor owns those). [`SimulatedProvider`] is the
//! embedded default (hidden capacity, rpm, faults, latency on tokio's clock);
//! [`ScriptedProvider`] answers from a per-model script for tests.
//!
//! ```
//! use std::time::Duration;
//! use weir_contracts::{RequestDomain, RequestReleaseOutcomeKind};
//! use weir_runtime::provider::{
//!     LatencyDist, ModelProvider, ProviderErrorKind, ProviderRequest, SimulatedModelConfig,
//!     SimulatedProvider,
//! };
//!
//! let rt = tokio::runtime::Builder::new_current_thread()
//!     .enable_time()
//!     .start_paused(true)
//!     .build()?;
//! rt.block_on(async {
//!     let config = SimulatedModelConfig::new("m1", 1, LatencyDist::fixed_ms(100.0))
//!         .with_retry_after_s(2.0);
//!     let provider = SimulatedProvider::single(config, 7)?;
//!
//!     // Two concurrent calls against a hidden capacity of 1: the second gets a fast 429.
//!     let req = ProviderRequest::new("m1", RequestDomain::Chat, "hello");
//!     let (a, b) = tokio::join!(provider.call(req.clone()), provider.call(req));
//!     assert!(a?.text.unwrap_or_default().contains(" sim:m1:"));
//!     let err = b.unwrap_err();
//!     assert_eq!(err.kind, ProviderErrorKind::RateLimited);
//!     assert_eq!(err.retry_after, Some(Duration::from_secs(2)));
//!     let outcome = err.release_outcome();
//!     assert_eq!(outcome.kind, RequestReleaseOutcomeKind::RateLimited);
//!     assert_eq!(outcome.retry_after_seconds, Some(2.0));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod latency;
pub mod openai;
pub mod scripted;
pub mod simulated;
pub mod simulated_config;
mod simulated_limits;
pub mod simulated_structured;

pub use error::{parse_retry_after_seconds, ProviderError, ProviderErrorKind};
pub use latency::LatencyDist;
pub use openai::{ApiKey, OpenAiCompatibleProvider, OpenAiConfigError, OpenAiProviderConfig};
pub use scripted::{ScriptedModelStats, ScriptedOutcome, ScriptedProvider, ScriptedStep};
pub use simulated::{SimulatedModelStats, SimulatedProvider};
pub use simulated_config::{
    CapacityStep, FixedWindowConfig, RequestBucketConfig, SimulatedConfigError,
    SimulatedModelConfig, TokenBucketConfig,
};

use crate::inference::ChatOptions;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use weir_contracts::{RateLimitObservation, RequestDomain, RequestReleaseOutcome, TokenUsage};

/// One outbound call to a model endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    /// Canonical model endpoint id (never a user alias).
    pub model_id: String,
    /// Which kind of call this is.
    pub domain: RequestDomain,
    /// The prompt (chat) or embedding input. Never logged by providers.
    pub input: String,
    /// Transport timeout of this attempt, if any.
    pub timeout: Option<Duration>,
    /// Chat options: system prompt, inference parameters, response format (default: none).
    pub options: ChatOptions,
}

impl ProviderRequest {
    /// A request with no timeout.
    pub fn new(
        model_id: impl Into<String>,
        domain: RequestDomain,
        input: impl Into<String>,
    ) -> Self {
        Self {
            model_id: model_id.into(),
            domain,
            input: input.into(),
            timeout: None,
            options: ChatOptions::default(),
        }
    }

    /// The same request with chat options.
    pub fn with_options(mut self, options: ChatOptions) -> Self {
        self.options = options;
        self
    }

    /// Characters of prompt text the call sends: the input plus the system prompt (the input
    /// side of the token estimate).
    pub fn prompt_chars(&self) -> usize {
        self.input.chars().count()
            + self
                .options
                .system_prompt
                .as_deref()
                .map_or(0, |s| s.chars().count())
    }

    /// The reply length the request asks for (`inference.max_tokens`), if any.
    pub fn max_tokens(&self) -> Option<u32> {
        self.options.inference.max_tokens
    }

    /// The same request with a transport timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A successful provider answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderResponse {
    /// Generated text (chat-like domains).
    pub text: Option<String>,
    /// Embedding vector (embedding domain).
    pub embedding: Option<Vec<f32>>,
    /// HTTP status (2xx).
    pub status: u16,
    /// Tokens the call used, when the response reported them.
    pub usage: Option<TokenUsage>,
    /// The budget windows the response reported (rate-limit headers), when it sent any.
    pub rate_limits: Option<RateLimitObservation>,
}

impl ProviderResponse {
    /// A 200 text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            embedding: None,
            status: 200,
            usage: None,
            rate_limits: None,
        }
    }

    /// A 200 embedding answer.
    pub fn embedding(vector: Vec<f32>) -> Self {
        Self {
            text: None,
            embedding: Some(vector),
            status: 200,
            usage: None,
            rate_limits: None,
        }
    }

    /// The release outcome of a successful call: `success`.
    pub fn release_outcome(&self) -> RequestReleaseOutcome {
        RequestReleaseOutcome::success()
    }
}

/// A model endpoint client: one call in, one classified result out. Object-safe.
#[async_trait]
pub trait ModelProvider: Send + Sync {
    /// Canonical provider name (the `provider_name` of request resources).
    fn name(&self) -> &str;

    /// Makes one outbound attempt. Cancel-safe: dropping the future abandons the attempt.
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError>;

    /// Connections this provider's transport pool keeps per host (`None`: no transport pool,
    /// e.g. simulated). The capacity plan reports it as the endpoint's transport pool limit.
    fn transport_pool_size(&self) -> Option<u32> {
        None
    }
}

#[async_trait]
impl<P: ModelProvider + ?Sized> ModelProvider for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        (**self).call(request).await
    }

    fn transport_pool_size(&self) -> Option<u32> {
        (**self).transport_pool_size()
    }
}

/// The release outcome of a finished call: success, or the error's classification.
pub fn release_outcome_of(
    result: &Result<ProviderResponse, ProviderError>,
) -> RequestReleaseOutcome {
    match result {
        Ok(response) => response.release_outcome(),
        Err(error) => error.release_outcome(),
    }
}
