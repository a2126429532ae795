//! `OpenAiCompatibleProvider`: one HTTP attempt against an OpenAI-compatible endpoint
//! (`POST {base_url}/chat/completions`, `POST {base_url}/embeddings`), classified into a
//! [`ProviderError`] kind. The client never retries on its own (every attempt goes through
//! `ModelRequestExecutor`), holds a connection pool of the configured size, applies a
//! per-request timeout, and keeps the API key out of every message, event and `Debug` output.

pub mod retry_after;
pub mod wire;

use super::{ModelProvider, ProviderError, ProviderErrorKind, ProviderRequest, ProviderResponse};
use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use std::fmt;
use std::time::{Duration, SystemTime};
use weir_contracts::RequestDomain;

pub use retry_after::{parse_reset_duration, parse_retry_after_value, retry_after_from_headers};

/// Default per-request timeout (seconds) when the spec gives none.
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 60.0;
/// Default connection pool size when the spec gives none.
pub const DEFAULT_POOL_SIZE: u32 = 256;
/// Longest error body read to judge quota exhaustion (the body itself is never kept).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// An API key: redacted in `Debug`/`Display`, sent only as a sensitive bearer header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Settings of one OpenAI-compatible provider.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiProviderConfig {
    /// Canonical provider name (the `provider_name` of its request resources).
    pub name: String,
    /// Base URL, e.g. `https://api.openai.com/v1` (a trailing `/` is ignored).
    pub base_url: String,
    /// Bearer token (`None`: no `Authorization` header, for local servers).
    pub api_key: Option<ApiKey>,
    /// Per-request timeout (connect + headers + body).
    pub timeout: Duration,
    /// Idle connections kept per host; reported as the endpoint's transport pool.
    pub pool_size: u32,
}

impl OpenAiProviderConfig {
    /// A config with the default timeout and pool size and no key.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_SECONDS),
            pool_size: DEFAULT_POOL_SIZE,
        }
    }

    /// Sets the bearer token.
    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Reads the bearer token from the environment variable `var` (its value is never shown).
    pub fn with_api_key_env(mut self, var: &str) -> Result<Self, OpenAiConfigError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => {
                self.api_key = Some(ApiKey::new(v.trim()));
                Ok(self)
            }
            Ok(_) => Err(OpenAiConfigError::new(
                "api_key_env",
                format!("environment variable {var:?} is empty"),
            )),
            Err(_) => Err(OpenAiConfigError::new(
                "api_key_env",
                format!("environment variable {var:?} is not set (or not unicode)"),
            )),
        }
    }

    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connection pool size.
    pub fn with_pool_size(mut self, pool_size: u32) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), OpenAiConfigError> {
        if self.name.trim().is_empty() {
            return Err(OpenAiConfigError::new("name", "must be non-empty"));
        }
        let url = self.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(OpenAiConfigError::new(
                "base_url",
                "must start with http:// or https://",
            ));
        }
        if reqwest::Url::parse(url).is_err() {
            return Err(OpenAiConfigError::new("base_url", "is not a valid URL"));
        }
        if self.timeout.is_zero() {
            return Err(OpenAiConfigError::new("timeout_s", "must be > 0"));
        }
        if self.pool_size == 0 {
            return Err(OpenAiConfigError::new("pool_size", "must be at least 1"));
        }
        if let Some(key) = &self.api_key {
            if HeaderValue::from_str(&format!("Bearer {}", key.0)).is_err() {
                return Err(OpenAiConfigError::new(
                    "api_key_env",
                    "the key contains characters not allowed in an HTTP header",
                ));
            }
        }
        Ok(())
    }
}

/// An invalid provider setting; `field` names it (spec field names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiConfigError {
    /// Offending field.
    pub field: &'static str,
    /// What is wrong (never a secret).
    pub message: String,
}

impl OpenAiConfigError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for OpenAiConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for OpenAiConfigError {}

/// A `ModelProvider` speaking the OpenAI HTTP API (chat completions and embeddings).
pub struct OpenAiCompatibleProvider {
    name: String,
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    auth: Option<HeaderValue>,
    timeout: Duration,
    pool_size: u32,
    client: reqwest::Client,
}

impl fmt::Debug for OpenAiCompatibleProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatibleProvider")
            .field("name", &self.name)
            .field("chat_url", &self.chat_url.as_str())
            .field("has_api_key", &self.auth.is_some())
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl OpenAiCompatibleProvider {
    /// Builds the client (no network access happens here).
    pub fn new(config: OpenAiProviderConfig) -> Result<Self, OpenAiConfigError> {
        config.validate()?;
        let base = config.base_url.trim().trim_end_matches('/');
        let url = |suffix: &str| {
            reqwest::Url::parse(&format!("{base}/{suffix}"))
                .map_err(|_| OpenAiConfigError::new("base_url", "is not a valid URL"))
        };
        let auth = match &config.api_key {
            None => None,
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", key.0)).map_err(|_| {
                    OpenAiConfigError::new("api_key_env", "the key is not a valid header value")
                })?;
                // Keeps the header out of hyper/reqwest debug output.
                v.set_sensitive(true);
                Some(v)
            }
        };
        let client = reqwest::Client::builder()
            // Every attempt is admitted and classified by the executor: no hidden retries
            // (reqwest 0.12 otherwise retries protocol NACKs by default).
            .retry(reqwest::retry::never())
            .pool_max_idle_per_host(config.pool_size as usize)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            .tcp_nodelay(true)
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| OpenAiConfigError::new("base_url", "could not build the HTTP client"))?;
        Ok(Self {
            name: config.name,
            chat_url: url("chat/completions")?,
            embeddings_url: url("embeddings")?,
            auth,
            timeout: config.timeout,
            pool_size: config.pool_size,
            client,
        })
    }

    /// The configured connection pool size (the endpoint's transport pool).
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn attempt(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let (url, body) = match request.domain {
            RequestDomain::Chat => (
                &self.chat_url,
                wire::chat_body(&request.model_id, &request.input),
            ),
            RequestDomain::Embedding => (
                &self.embeddings_url,
                wire::embedding_body(&request.model_id, &request.input),
            ),
            other => {
                return Err(ProviderError::new(
                    ProviderErrorKind::Client,
                    None,
                    None,
                    format!(
                        "the openai provider does not serve the {} domain",
                        other.as_str()
                    ),
                ))
            }
        };
        let timeout = request
            .timeout
            .map_or(self.timeout, |t| t.min(self.timeout));
        let mut builder = self
            .client
            .post(url.clone())
            .timeout(timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some(auth) = &self.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let response = builder.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let retry_after = retry_after_from_headers(response.headers(), SystemTime::now());
            let body = if status == 429 || (400..500).contains(&status) {
                read_capped(response, MAX_ERROR_BODY_BYTES).await
            } else {
                Vec::new()
            };
            return Err(classify_status(status, retry_after, &body));
        }
        let bytes = response.bytes().await.map_err(|e| body_error(&e, status))?;
        match request.domain {
            RequestDomain::Embedding => wire::parse_embedding(&bytes)
                .map(|v| ProviderResponse {
                    status,
                    ..ProviderResponse::embedding(v)
                })
                .map_err(|w| ProviderError::malformed(Some(status), w.what())),
            _ => wire::parse_chat(&bytes)
                .map(|t| ProviderResponse {
                    status,
                    ..ProviderResponse::text(t)
                })
                .map_err(|w| ProviderError::malformed(Some(status), w.what())),
        }
    }
}

#[async_trait]
impl ModelProvider for OpenAiCompatibleProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn transport_pool_size(&self) -> Option<u32> {
        Some(self.pool_size)
    }

    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        self.attempt(request).await
    }
}

/// Classifies a non-2xx answer. `body` is only inspected for a short error code (quota
/// exhaustion, the sanitized reason of a 4xx); it is never stored.
///
/// | status | kind | release outcome |
/// |---|---|---|
/// | 429 | `RateLimited` (Retry-After kept) | `rate_limited` |
/// | 429 with `insufficient_quota` | `Client` | `provider_failure`, not retried |
/// | 503 | `Overloaded` (Retry-After kept, if any) | `rate_limited` (saturation) |
/// | 408, 504 | `Timeout` | `provider_timeout` |
/// | other 5xx | `ServerError` | `provider_failure`, retryable |
/// | other 4xx | `Client` | `provider_failure`, not retried |
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> ProviderError {
    let quota = status == 429 && wire::quota_exhausted(body);
    match status {
        504 => ProviderError::new(
            ProviderErrorKind::Timeout,
            Some(504),
            None,
            "provider gateway timed out (504)",
        ),
        400..=499 if status != 408 && status != 429 || quota => {
            let base = ProviderError::from_http_status(status, None, quota);
            match wire::error_code(body).filter(|_| !quota) {
                Some(code) => ProviderError {
                    message: format!("{} [{code}]", base.message),
                    ..base
                },
                None => base,
            }
        }
        _ => ProviderError::from_http_status(status, retry_after, false),
    }
}

/// Reads at most `cap` bytes of an error body (a failed read gives what arrived, or nothing).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk[..chunk.len().min(cap - out.len())]),
            _ => break,
        }
    }
    out
}

/// A send failure: timeout, or a connection that could not be made / broke before the answer.
fn transport_error(e: &reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::timeout()
    } else if e.is_connect() {
        ProviderError::connection()
    } else {
        ProviderError::new(
            ProviderErrorKind::Connection,
            None,
            None,
            "the connection to the provider broke before a response arrived",
        )
    }
}

/// A failure while reading a 2xx body: timeout, or the body was cut off (the connection broke).
fn body_error(e: &reqwest::Error, status: u16) -> ProviderError {
    if e.is_timeout() {
        ProviderError {
            status: Some(status),
            ..ProviderError::timeout()
        }
    } else {
        ProviderError::new(
            ProviderErrorKind::Connection,
            Some(status),
            None,
            "the response body was cut off (connection broke mid-body)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let secret_body = br#"{"error":{"message":"Incorrect API key provided: sk-live-123","code":"invalid_api_key"}}"#;
        let e = classify_status(401, None, secret_body);
        assert_eq!(e.kind, ProviderErrorKind::Client);
        assert_eq!(e.status, Some(401));
        assert!(!e.message.contains("sk-live"), "{}", e.message);
        assert!(e.message.contains("invalid_api_key"));
        for s in [400, 403, 404, 422] {
            let e = classify_status(s, None, b"raw body text");
            assert_eq!(e.kind, ProviderErrorKind::Client);
            assert!(!e.retryable());
            assert!(!e.message.contains("raw body"));
        }
        let ra = Some(Duration::from_secs(2));
        assert_eq!(
            classify_status(429, ra, b"").kind,
            ProviderErrorKind::RateLimited
        );
        assert_eq!(classify_status(429, ra, b"").retry_after, ra);
        let quota = classify_status(429, ra, br#"{"error":{"code":"insufficient_quota"}}"#);
        assert_eq!(quota.kind, ProviderErrorKind::Client);
        assert_eq!(
            classify_status(503, None, b"").kind,
            ProviderErrorKind::Overloaded
        );
        assert_eq!(classify_status(503, ra, b"").retry_after, ra);
        assert_eq!(
            classify_status(408, None, b"").kind,
            ProviderErrorKind::Timeout
        );
        assert_eq!(
            classify_status(504, None, b"").kind,
            ProviderErrorKind::Timeout
        );
        for s in [500, 502] {
            let e = classify_status(s, None, b"");
            assert_eq!(e.kind, ProviderErrorKind::ServerError);
            assert!(e.retryable());
        }
    }

    #[test]
    fn config_validation_names_fields_and_debug_hides_the_key() {
        let c = OpenAiProviderConfig::new("p", "ftp://x");
        assert_eq!(c.validate().unwrap_err().field, "base_url");
        let c = OpenAiProviderConfig::new("p", "http://127.0.0.1:1/v1").with_pool_size(0);
        assert_eq!(c.validate().unwrap_err().field, "pool_size");
        let c =
            OpenAiProviderConfig::new("p", "http://127.0.0.1:1/v1").with_timeout(Duration::ZERO);
        assert_eq!(c.validate().unwrap_err().field, "timeout_s");
        let c = OpenAiProviderConfig::new("p", "http://127.0.0.1:1/v1")
            .with_api_key(ApiKey::new("sk-very-secret"));
        assert!(!format!("{c:?}").contains("sk-very-secret"));
        let p = OpenAiCompatibleProvider::new(c).unwrap();
        assert!(!format!("{p:?}").contains("sk-very-secret"));
        assert_eq!(p.transport_pool_size(), Some(DEFAULT_POOL_SIZE));
        let err = OpenAiProviderConfig::new("p", "http://x")
            .with_api_key_env("WEIR_TEST_SURELY_UNSET_VAR")
            .unwrap_err();
        assert_eq!(err.field, "api_key_env");
    }
}
