//! `OpenAiCompatibleProvider`: one HTTP attempt against an OpenAI-compatible endpoint
//! (`POST {base_url}/chat/completions`, `POST {base_url}/embeddings`), classified into a
//! [`ProviderError`] kind. The client never retries on its own (every attempt goes through
//! `ModelRequestExecutor`), never follows a redirect, reads at most `max_response_bytes` of a
//! body, trusts the system's certificate store (plus the bundled roots and an optional
//! `ca_file`), holds a connection pool of the configured size, applies a per-request timeout,
//! and keeps the API key out of every message, event and `Debug` output.
//!
//! Every response (2xx and errors) has its rate-limit headers read into
//! `rate_limits`; every error carries the URL path, the provider's informative error type and,
//! on a 429, which limit the provider said was hit (`rate_limit_signal`).

pub mod rate_limits;
pub mod redact;
pub mod retry_after;
pub mod wire;

use super::{ModelProvider, ProviderError, ProviderErrorKind, ProviderRequest, ProviderResponse};
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use weir_contracts::{RateLimitObservation, RateLimitSignal, RequestDomain};
use wire::ErrorBody;

pub use rate_limits::rate_limits_from_headers;
pub use retry_after::{
    parse_reset_duration, parse_retry_after_value, retry_after_from_headers, retry_after_of,
};

/// Default per-request timeout (seconds) when the spec gives none.
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 60.0;
/// Default connection pool size when the spec gives none.
pub const DEFAULT_POOL_SIZE: u32 = 256;
/// Default cap on a 2xx body (32 MiB: far above any chat or embedding answer, far below what
/// hurts; an endless body once reached 11.9 GB of RSS without one).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;
/// Smallest accepted `max_response_bytes` (1 KiB).
pub const MIN_MAX_RESPONSE_BYTES: u64 = 1024;
/// Largest accepted `max_response_bytes` (1 GiB).
pub const MAX_MAX_RESPONSE_BYTES: u64 = 1024 * 1024 * 1024;
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
    /// Largest 2xx body read; past it the call fails with `ResponseTooLarge`.
    pub max_response_bytes: u64,
    /// Extra trusted certificate authorities (a PEM file), beside the system store.
    pub ca_file: Option<PathBuf>,
    /// Extra request headers sent on every call (name, value), e.g. an organisation id.
    pub extra_headers: Vec<(String, String)>,
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
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            ca_file: None,
            extra_headers: Vec::new(),
        }
    }

    /// Adds a header sent on every call.
    pub fn with_extra_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_headers.push((name.into(), value.into()));
        self
    }

    /// Sets the bearer token.
    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Reads the bearer token from the environment variable `var` (its value is never shown;
    /// nor is `var` itself when it looks like a key rather than a variable name).
    pub fn with_api_key_env(mut self, var: &str) -> Result<Self, OpenAiConfigError> {
        let label = redact::env_var_label(var);
        let lookup = if var.is_empty() || var.contains(['=', '\0']) {
            Err(std::env::VarError::NotPresent)
        } else {
            std::env::var(var)
        };
        match lookup {
            Ok(v) if !v.trim().is_empty() => {
                self.api_key = Some(ApiKey::new(v.trim()));
                Ok(self)
            }
            Ok(_) => Err(OpenAiConfigError::new(
                "api_key_env",
                format!("environment variable {label} is empty"),
            )),
            Err(_) => Err(OpenAiConfigError::new(
                "api_key_env",
                format!("environment variable {label} is not set (or not unicode)"),
            )),
        }
    }

    /// Sets the largest 2xx body read (bytes).
    pub fn with_max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Trusts the certificate authorities of a PEM file, beside the system store.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
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
        if !(MIN_MAX_RESPONSE_BYTES..=MAX_MAX_RESPONSE_BYTES).contains(&self.max_response_bytes) {
            return Err(OpenAiConfigError::new(
                "max_response_bytes",
                format!(
                    "must be in [{MIN_MAX_RESPONSE_BYTES}, {MAX_MAX_RESPONSE_BYTES}] (got {})",
                    self.max_response_bytes
                ),
            ));
        }
        for (name, value) in &self.extra_headers {
            extra_header(name, value)?;
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

/// Headers weir sets itself: an `extra_headers` entry may not replace them.
pub const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

/// One `extra_headers` entry as a typed header; the error names `extra_headers` and the
/// header name (never the value, which may be a secret).
pub fn extra_header(
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), OpenAiConfigError> {
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        OpenAiConfigError::new(
            "extra_headers",
            format!(
                "{:?} is not a valid HTTP header name",
                name.chars().take(64).collect::<String>()
            ),
        )
    })?;
    if RESERVED_HEADERS.contains(&header.as_str()) {
        return Err(OpenAiConfigError::new(
            "extra_headers",
            format!(
                "{:?} is set by weir itself and may not be overridden",
                header.as_str()
            ),
        ));
    }
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        OpenAiConfigError::new(
            "extra_headers",
            format!(
                "the value of {:?} contains characters not allowed in an HTTP header",
                header.as_str()
            ),
        )
    })?;
    // Extra headers often carry credentials (organisation keys): keep them out of debug output.
    v.set_sensitive(true);
    Ok((header, v))
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

/// Reads a `ca_file`: a PEM file with at least one certificate. The error names `ca_file`
/// and the path (never the file's content). `weir validate` calls this too, so validation and
/// run agree.
pub fn load_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, OpenAiConfigError> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| {
        OpenAiConfigError::new("ca_file", format!("cannot read {shown:?}: {}", e.kind()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
        OpenAiConfigError::new(
            "ca_file",
            format!("{shown:?} is not a PEM certificate file"),
        )
    })?;
    if certs.is_empty() {
        return Err(OpenAiConfigError::new(
            "ca_file",
            format!("{shown:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(certs)
}

/// A `ModelProvider` speaking the OpenAI HTTP API (chat completions and embeddings).
pub struct OpenAiCompatibleProvider {
    name: String,
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    auth: Option<HeaderValue>,
    timeout: Duration,
    pool_size: u32,
    max_response_bytes: u64,
    extra_headers: Vec<(HeaderName, HeaderValue)>,
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
            .field("max_response_bytes", &self.max_response_bytes)
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
        let extra_headers = config
            .extra_headers
            .iter()
            .map(|(n, v)| extra_header(n, v))
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = reqwest::Client::builder()
            // Every attempt is admitted and classified by the executor: no hidden retries
            // (reqwest 0.12 otherwise retries protocol NACKs by default).
            .retry(reqwest::retry::never())
            // A redirect would re-post the body (perhaps to another origin) inside one attempt,
            // invisibly to admission: a 3xx comes back as a `Redirect` error instead.
            .redirect(reqwest::redirect::Policy::none())
            // The system's store (rustls-native-certs: SSL_CERT_FILE / SSL_CERT_DIR honoured)
            // and the bundled Mozilla roots (so a container without ca-certificates still works).
            .tls_built_in_root_certs(true)
            .pool_max_idle_per_host(config.pool_size as usize)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            .tcp_nodelay(true)
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            for cert in load_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|_| match &config.ca_file {
            Some(path) => OpenAiConfigError::new(
                "ca_file",
                format!(
                    "{:?} holds a certificate the TLS library rejects",
                    path.display()
                ),
            ),
            None => OpenAiConfigError::new(
                "base_url",
                "could not build the HTTP client: the system certificate store holds no usable \
                 certificate (check SSL_CERT_FILE / SSL_CERT_DIR)",
            ),
        })?;
        Ok(Self {
            name: config.name,
            chat_url: url("chat/completions")?,
            embeddings_url: url("embeddings")?,
            auth,
            timeout: config.timeout,
            pool_size: config.pool_size,
            max_response_bytes: config.max_response_bytes,
            extra_headers,
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

    /// The largest 2xx body read.
    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
    }

    async fn attempt(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let (url, body) = match request.domain {
            RequestDomain::Chat => (
                &self.chat_url,
                wire::chat_body(&request.model_id, &request.input, &request.options),
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
        let url_path = redact::safe_path(url.path());
        self.send(url, body, &request)
            .await
            .map_err(|e| e.with_url_path(url_path))
    }

    async fn send(
        &self,
        url: &reqwest::Url,
        body: Vec<u8>,
        request: &ProviderRequest,
    ) -> Result<ProviderResponse, ProviderError> {
        let timeout = request
            .timeout
            .map_or(self.timeout, |t| t.min(self.timeout));
        let mut builder = self
            .client
            .post(url.clone())
            .timeout(timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        for (name, value) in &self.extra_headers {
            builder = builder.header(name.clone(), value.clone());
        }
        if let Some(auth) = &self.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let response = builder.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let now = SystemTime::now();
        let rate_limits = rate_limits_from_headers(response.headers(), now);
        if response.status().is_redirection() {
            return Err(
                redirect_error(status, response.headers(), url).with_rate_limits(rate_limits)
            );
        }
        if !response.status().is_success() {
            let headers = response.headers().clone();
            let body = read_capped(response, MAX_ERROR_BODY_BYTES).await;
            return Err(classify_response(status, &headers, &body, now));
        }
        let bytes = self
            .read_body(response, status)
            .await
            .map_err(|e| e.with_rate_limits(rate_limits))?;
        let answer = match request.domain {
            RequestDomain::Embedding => {
                wire::parse_embedding_answer(&bytes).map(|(v, usage)| ProviderResponse {
                    status,
                    usage,
                    ..ProviderResponse::embedding(v)
                })
            }
            _ => wire::parse_chat_answer(&bytes).map(|(t, usage)| ProviderResponse {
                status,
                usage,
                ..ProviderResponse::text(t)
            }),
        };
        answer
            .map(|r| ProviderResponse { rate_limits, ..r })
            .map_err(|w| {
                ProviderError::malformed(Some(status), w.what()).with_rate_limits(rate_limits)
            })
    }

    /// Reads a 2xx body, at most `max_response_bytes` of it (a larger `Content-Length` fails
    /// before reading; a body that grows past the cap fails at the chunk that crosses it, and
    /// the buffer never reserves more than the cap, so memory stays bounded by the cap plus
    /// one chunk).
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        status: u16,
    ) -> Result<Vec<u8>, ProviderError> {
        let cap = self.max_response_bytes;
        let too_large = || {
            ProviderError::new(
                ProviderErrorKind::ResponseTooLarge,
                Some(status),
                None,
                format!(
                    "the response body exceeds max_response_bytes ({cap} bytes); reading stopped"
                ),
            )
        };
        let declared = response.content_length();
        if declared.is_some_and(|n| n > cap) {
            return Err(too_large());
        }
        let cap_usize = usize::try_from(cap).unwrap_or(usize::MAX);
        let initial = declared.unwrap_or(0).min(cap).min(1 << 20);
        let mut out = Vec::with_capacity(usize::try_from(initial).unwrap_or(0));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let needed = out.len() + chunk.len();
                    if needed as u64 > cap {
                        return Err(too_large());
                    }
                    if needed > out.capacity() {
                        // Grow by doubling, but never past the cap (plain doubling could
                        // reserve up to twice the cap).
                        let target = (out.capacity() * 2).max(needed).min(cap_usize);
                        out.reserve_exact(target - out.len());
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(out),
                Err(e) => return Err(body_error(&e, status)),
            }
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

/// Classifies a non-2xx answer. `body` is only inspected for machine-readable parts (error
/// type/code, quota exhaustion, the "try again in" delay, which limit was hit); it is never
/// stored.
///
/// | status | kind | release outcome |
/// |---|---|---|
/// | 429 | `RateLimited` (Retry-After kept, `rate_limit_signal` from the body) | `rate_limited` |
/// | 429 with `insufficient_quota` | `Client` | `provider_failure`, not retried, configuration |
/// | 503, 529 | `Overloaded` (Retry-After kept, if any) | `rate_limited` (saturation) |
/// | 408, 504 | `Timeout` | `provider_timeout` |
/// | other 5xx | `ServerError` | `provider_failure`, retryable |
/// | 401, 403, 404; 4xx saying model not found | `Client` | `provider_failure`, not retried, configuration |
/// | other 4xx | `Client` | `provider_failure`, not retried |
/// | 3xx | `Redirect` (never followed) | `provider_failure`, not retried, configuration |
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> ProviderError {
    classify_parts(status, retry_after, &ErrorBody::parse(body))
}

/// Classifies a non-2xx answer with its headers: everything [`classify_status`] does, plus the
/// Retry-After in every form ([`retry_after_of`]), the response's rate-limit windows, and a
/// 429's `rate_limit_signal` from the headers when the body named none:
///
/// | 429 says | signal |
/// |---|---|
/// | body: too many concurrent requests / overloaded | `Concurrency` |
/// | body: `type: "requests"`, "requests per min (RPM)", "requests per day" | `RequestWindow` |
/// | body: `type: "tokens"`, "tokens per min (TPM)", "tokens per day" | `TokenWindow` |
/// | headers: `x-ratelimit-remaining-requests: 0` (or Anthropic's) | `RequestWindow` |
/// | headers: remaining tokens (total, input or output) `0` | `TokenWindow` |
/// | nothing of the above | `None` |
pub fn classify_response(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> ProviderError {
    let parsed = ErrorBody::parse(body);
    let rate_limits = rate_limits_from_headers(headers, now);
    let retry_after = retry_after_of(headers, now, &parsed, rate_limits.as_ref());
    let mut error = classify_parts(status, retry_after, &parsed);
    if error.kind == ProviderErrorKind::RateLimited && error.rate_limit_signal.is_none() {
        error.rate_limit_signal = rate_limits.as_ref().and_then(header_signal);
    }
    error.with_rate_limits(rate_limits)
}

fn classify_parts(status: u16, retry_after: Option<Duration>, body: &ErrorBody) -> ProviderError {
    let quota = status == 429 && body.quota_exhausted();
    let error = match status {
        // Anthropic's (and some gateways') "overloaded": the same saturation as a 503.
        529 => ProviderError {
            status: Some(529),
            message: "provider is overloaded (529)".to_owned(),
            ..ProviderError::overloaded(retry_after)
        },
        504 => ProviderError::new(
            ProviderErrorKind::Timeout,
            Some(504),
            None,
            "provider gateway timed out (504)",
        ),
        400..=499 if status != 408 && status != 429 || quota => {
            let base = ProviderError::from_http_status(status, None, quota);
            match body.error_type.as_deref().filter(|_| !quota) {
                Some(code) => ProviderError {
                    message: format!("{} [{code}]", base.message),
                    ..base
                },
                None => base,
            }
        }
        _ => ProviderError::from_http_status(status, retry_after, false),
    };
    let signal = (error.kind == ProviderErrorKind::RateLimited)
        .then_some(body.signal)
        .flatten();
    error
        .with_provider_error_type(body.error_type.clone())
        .with_rate_limit_signal(signal)
}

/// A 429's signal from the headers alone: an exhausted request window, else token window.
fn header_signal(o: &RateLimitObservation) -> Option<RateLimitSignal> {
    if o.requests.remaining == Some(0) {
        Some(RateLimitSignal::RequestWindow)
    } else if [o.tokens, o.input_tokens, o.output_tokens]
        .iter()
        .any(|w| w.remaining == Some(0))
    {
        Some(RateLimitSignal::TokenWindow)
    } else {
        None
    }
}

/// A 3xx answer: never followed; the message names where it pointed (scheme, host, path only).
fn redirect_error(status: u16, headers: &HeaderMap, url: &reqwest::Url) -> ProviderError {
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| redact::safe_location(l, url));
    let message = match location {
        Some(l) => format!(
            "provider answered with a redirect ({status}) to {l}; weir does not follow redirects (set base_url to the final address)"
        ),
        None => format!(
            "provider answered with a redirect ({status}) without a Location; weir does not follow redirects"
        ),
    };
    ProviderError::new(ProviderErrorKind::Redirect, Some(status), None, message)
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

/// A send failure: timeout; TLS failure; an endpoint that cannot be reached (refused, DNS); or
/// a connection that broke before the answer.
fn transport_error(e: &reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        return ProviderError::timeout();
    }
    match connect_failure_kind(e) {
        Some(ProviderErrorKind::Tls) => ProviderError::new(
            ProviderErrorKind::Tls,
            None,
            None,
            format!("TLS handshake with the provider failed: {}", tls_reason(e)),
        ),
        Some(ProviderErrorKind::Unreachable) => ProviderError::new(
            ProviderErrorKind::Unreachable,
            None,
            None,
            if has_in_chain(e, is_dns_failure) {
                "could not resolve the provider's host name (check base_url)"
            } else {
                "the provider refused the connection (nothing listens at base_url?)"
            },
        ),
        _ if e.is_connect() => ProviderError::connection(),
        _ => ProviderError::new(
            ProviderErrorKind::Connection,
            None,
            None,
            "the connection to the provider broke before a response arrived",
        ),
    }
}

/// What a transport error chain says about the connection: `Tls` when rustls failed,
/// `Unreachable` for a refused connection or a failed name lookup, else `None`.
pub fn connect_failure_kind(e: &(dyn StdError + 'static)) -> Option<ProviderErrorKind> {
    if has_in_chain(e, |x| rustls_error(x).is_some()) {
        Some(ProviderErrorKind::Tls)
    } else if has_in_chain(e, |x| {
        is_dns_failure(x)
            || x.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    }) {
        Some(ProviderErrorKind::Unreachable)
    } else {
        None
    }
}

/// Walks `source()` and the inner error of every `io::Error` (whose `source()` skips it).
fn has_in_chain(
    e: &(dyn StdError + 'static),
    mut pred: impl FnMut(&(dyn StdError + 'static)) -> bool,
) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = Some(e);
    let mut depth = 0;
    while let Some(cur) = next {
        if pred(cur) {
            return true;
        }
        depth += 1;
        if depth > 32 {
            return false;
        }
        next = match cur
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => cur.source(),
        };
    }
    false
}

fn rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    e.downcast_ref::<rustls::Error>()
}

/// hyper-util's connector reports a failed lookup as "dns error"; getaddrinfo's text follows.
fn is_dns_failure(e: &(dyn StdError + 'static)) -> bool {
    let text = e.to_string();
    text.starts_with("dns error") || text.contains("failed to lookup address")
}

/// A fixed description of the TLS failure (rustls' own text names the certificate problem and
/// never a secret); falls back to a generic phrase.
fn tls_reason(e: &reqwest::Error) -> String {
    let mut found = None;
    has_in_chain(e, |x| {
        if let Some(r) = rustls_error(x) {
            found = Some(match r {
                rustls::Error::InvalidCertificate(c) => format!("invalid peer certificate ({c:?})"),
                rustls::Error::AlertReceived(a) => format!("the server sent alert {a:?}"),
                other => format!("{other:?}"),
            });
            true
        } else {
            false
        }
    });
    let reason = found.unwrap_or_else(|| "certificate or protocol error".to_owned());
    format!("{reason} (trust a private CA with the provider's ca_file, or SSL_CERT_FILE)")
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
        let e = classify_status(
            529,
            ra,
            br#"{"type":"error","error":{"type":"overloaded_error"}}"#,
        );
        assert_eq!(
            (e.kind, e.status, e.retry_after),
            (ProviderErrorKind::Overloaded, Some(529), ra)
        );
        assert_eq!(e.provider_error_type.as_deref(), Some("overloaded_error"));
        assert_eq!(e.release_outcome().provider_status, Some(529));
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

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn rate_limit_signal_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let none = HeaderMap::new();
        let sig =
            |h: &HeaderMap, body: &[u8]| classify_response(429, h, body, now).rate_limit_signal;
        let rpm = br#"{"error":{"message":"Rate limit reached for m on requests per min (RPM): Limit 3","code":"rate_limit_exceeded"}}"#;
        let tpm = br#"{"error":{"message":"Rate limit reached for m on tokens per min (TPM): Limit 3","code":"rate_limit_exceeded"}}"#;
        let conc =
            br#"{"error":{"message":"Too many concurrent requests","type":"rate_limit_error"}}"#;
        assert_eq!(sig(&none, rpm), Some(RateLimitSignal::RequestWindow));
        assert_eq!(sig(&none, tpm), Some(RateLimitSignal::TokenWindow));
        assert_eq!(sig(&none, conc), Some(RateLimitSignal::Concurrency));
        let req0 = headers(&[("x-ratelimit-remaining-requests", "0")]);
        let tok0 = headers(&[
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-remaining-requests", "7"),
        ]);
        let anth = headers(&[("anthropic-ratelimit-output-tokens-remaining", "0")]);
        assert_eq!(sig(&req0, b""), Some(RateLimitSignal::RequestWindow));
        assert_eq!(sig(&tok0, b""), Some(RateLimitSignal::TokenWindow));
        assert_eq!(sig(&anth, b""), Some(RateLimitSignal::TokenWindow));
        // The body is more specific than a header snapshot.
        assert_eq!(sig(&req0, tpm), Some(RateLimitSignal::TokenWindow));
        assert_eq!(sig(&none, b""), None);
        assert_eq!(
            sig(&headers(&[("x-ratelimit-remaining-requests", "5")]), b""),
            None
        );
        // Only 429s carry a signal (a 503 is concurrency by definition, in release_outcome).
        assert_eq!(
            classify_response(500, &req0, rpm, now).rate_limit_signal,
            None
        );
        let e = classify_response(429, &req0, b"", now);
        assert_eq!(e.rate_limits.expect("windows").requests.remaining, Some(0));
        assert_eq!(
            e.release_outcome().rate_limit_signal,
            Some(RateLimitSignal::RequestWindow)
        );
    }

    #[test]
    fn configuration_errors_fail_fast_and_are_never_retryable() {
        let now = SystemTime::UNIX_EPOCH;
        let none = HeaderMap::new();
        for (status, body, expected) in [
            (401, &b""[..], true),
            (403, b"", true),
            (404, b"", true),
            (
                400,
                br#"{"error":{"message":"Invalid model name passed in model=x","code":"400"}}"#,
                true,
            ),
            (400, br#"{"error":{"code":"model_not_found"}}"#, true),
            (429, br#"{"error":{"code":"insufficient_quota"}}"#, true),
            (
                400,
                br#"{"error":{"code":"context_length_exceeded"}}"#,
                false,
            ),
            (422, b"", false),
            (429, b"", false),
            (500, b"", false),
            (503, b"", false),
        ] {
            let e = classify_response(status, &none, body, now);
            assert_eq!(e.is_configuration(), expected, "{status} {e:?}");
            if expected {
                assert!(!e.retryable(), "{status}");
            }
        }
        for kind in [
            ProviderErrorKind::Unreachable,
            ProviderErrorKind::Tls,
            ProviderErrorKind::Redirect,
        ] {
            let e = ProviderError::new(kind, None, None, "x");
            assert!(e.is_configuration() && !e.retryable(), "{kind}");
        }
        let e = ProviderError::new(ProviderErrorKind::ResponseTooLarge, Some(200), None, "x");
        assert!(!e.is_configuration() && !e.retryable());
        for kind in ProviderErrorKind::ALL {
            if kind.retryable() {
                assert!(!ProviderError::new(kind, Some(500), None, "x").is_configuration());
            }
        }
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<dyn StdError + Send + Sync>>);
    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn connect_failures_are_recognised_through_the_error_chain() {
        let refused = Layer(
            "client error (Connect)",
            Some(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        );
        assert_eq!(
            connect_failure_kind(&refused),
            Some(ProviderErrorKind::Unreachable)
        );
        let dns = Layer(
            "client error (Connect)",
            Some(Box::new(Layer(
                "dns error",
                Some(Box::new(std::io::Error::other(
                    "failed to lookup address information",
                ))),
            ))),
        );
        assert_eq!(
            connect_failure_kind(&dns),
            Some(ProviderErrorKind::Unreachable)
        );
        // tokio-rustls wraps rustls' error in an io::Error, whose source() skips it.
        let tls = Layer(
            "client error (Connect)",
            Some(Box::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ))),
        );
        assert_eq!(connect_failure_kind(&tls), Some(ProviderErrorKind::Tls));
        let reset = Layer(
            "client error (SendRequest)",
            Some(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))),
        );
        assert_eq!(connect_failure_kind(&reset), None);
    }

    #[test]
    fn new_settings_are_validated_by_field_and_keys_are_never_echoed() {
        let base = || OpenAiProviderConfig::new("p", "http://127.0.0.1:1/v1");
        assert_eq!(
            base()
                .with_max_response_bytes(10)
                .validate()
                .unwrap_err()
                .field,
            "max_response_bytes"
        );
        assert!(base()
            .with_max_response_bytes(MIN_MAX_RESPONSE_BYTES)
            .validate()
            .is_ok());
        let err =
            OpenAiCompatibleProvider::new(base().with_ca_file("/surely/not/here.pem")).unwrap_err();
        assert_eq!(err.field, "ca_file");
        assert!(
            err.message.contains("/surely/not/here.pem"),
            "{}",
            err.message
        );
        let not_pem = std::env::temp_dir().join(format!("weir-not-pem-{}.txt", std::process::id()));
        std::fs::write(&not_pem, "hello").expect("write");
        let err = OpenAiCompatibleProvider::new(base().with_ca_file(&not_pem)).unwrap_err();
        assert_eq!(err.field, "ca_file");
        let _ = std::fs::remove_file(&not_pem);
        // A key pasted into api_key_env is not echoed.
        for pasted in ["sk-live-0123456789abcdefXYZ", "not a name", "A=B"] {
            let err = base().with_api_key_env(pasted).unwrap_err();
            assert_eq!(err.field, "api_key_env");
            assert!(!err.to_string().contains(pasted), "{err}");
        }
    }
}
