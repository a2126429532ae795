//! The OpenAI wire format: request bodies for chat and embeddings, typed parsing of the answers,
//! their `usage`, and a body-free summary of an error answer ([`ErrorBody`]: the informative
//! `error.code` / `error.type` when it is a short identifier, the "try again in" delay, which
//! limit was hit; never the message itself, which may echo prompts or keys).

use super::redact::looks_like_secret;
use crate::inference::ChatOptions;
use serde_json::{json, Map, Value};
use std::time::Duration;
use weir_contracts::{RateLimitSignal, TokenUsage};

/// The JSON body of a chat completion request: an optional system message, one user message,
/// the inference parameters exactly as given (`extra_body` keys at the top level) and the
/// structured `response_format`, when asked for.
pub fn chat_body(model: &str, input: &str, options: &ChatOptions) -> Vec<u8> {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = &options.system_prompt {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": input}));
    let mut body = Map::new();
    body.insert("model".into(), Value::from(model));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(format) = &options.response_format {
        body.insert("response_format".into(), format.body_value());
    }
    for (k, v) in options.inference.body_entries() {
        body.entry(k).or_insert(v);
    }
    Value::Object(body).to_string().into_bytes()
}

/// The JSON body of an embeddings request for one input.
pub fn embedding_body(model: &str, input: &str) -> Vec<u8> {
    json!({"model": model, "input": input})
        .to_string()
        .into_bytes()
}

/// Why a 2xx body could not be used; names the part, never its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The body is not JSON (or is cut off).
    NotJson,
    /// `choices[0].message.content` is missing or not a string.
    MissingContent,
    /// `data[0].embedding` is missing or not an array of numbers.
    MissingEmbedding,
}

impl WireError {
    /// The part that was wrong, for the sanitized error message.
    pub fn what(self) -> &'static str {
        match self {
            Self::NotJson => "body is not valid JSON",
            Self::MissingContent => "choices[0].message.content is missing or not a string",
            Self::MissingEmbedding => "data[0].embedding is missing or not an array of numbers",
        }
    }
}

/// The assistant text of a chat completion answer.
pub fn parse_chat(body: &[u8]) -> Result<String, WireError> {
    parse_chat_answer(body).map(|(text, _)| text)
}

/// The assistant text of a chat completion answer and its `usage`, when reported.
pub fn parse_chat_answer(body: &[u8]) -> Result<(String, Option<TokenUsage>), WireError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| WireError::NotJson)?;
    let text = v
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(WireError::MissingContent)?;
    Ok((text, parse_usage(&v)))
}

/// The vector of an embeddings answer.
pub fn parse_embedding(body: &[u8]) -> Result<Vec<f32>, WireError> {
    parse_embedding_answer(body).map(|(vector, _)| vector)
}

/// The vector of an embeddings answer and its `usage`, when reported.
pub fn parse_embedding_answer(body: &[u8]) -> Result<(Vec<f32>, Option<TokenUsage>), WireError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| WireError::NotJson)?;
    let items = v
        .pointer("/data/0/embedding")
        .and_then(Value::as_array)
        .ok_or(WireError::MissingEmbedding)?;
    let vector = items
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect::<Option<Vec<f32>>>()
        .ok_or(WireError::MissingEmbedding)?;
    Ok((vector, parse_usage(&v)))
}

/// The `usage` object of an answer: OpenAI's `prompt_tokens`/`completion_tokens` or
/// Anthropic-style `input_tokens`/`output_tokens`; an embeddings answer's `prompt_tokens` (or
/// only `total_tokens`) counts as input. `None` when no count is present.
pub fn parse_usage(answer: &Value) -> Option<TokenUsage> {
    let usage = answer.get("usage")?;
    let count = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| usage.get(*n).and_then(Value::as_u64))
    };
    let input = count(&["prompt_tokens", "input_tokens"]);
    let output = count(&["completion_tokens", "output_tokens"]);
    let total = count(&["total_tokens"]);
    match (input, output, total) {
        (None, None, None) => None,
        (None, None, Some(t)) => Some(TokenUsage {
            input_tokens: t,
            output_tokens: 0,
        }),
        (i, o, _) => Some(TokenUsage {
            input_tokens: i.unwrap_or(0),
            output_tokens: o.unwrap_or(0),
        }),
    }
}

/// What an error body says, in machine terms only (the body and its message are never kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// The informative error type or code (see [`error_code`]).
    pub error_type: Option<String>,
    /// Every type/code field that is a safe identifier (for quota and signal checks).
    pub identifiers: Vec<String>,
    /// "Please try again in 1.2s" (OpenAI's message text), as a duration.
    pub retry_in: Option<Duration>,
    /// Which limit the body says was hit (see [`ErrorBody::parse`]).
    pub signal: Option<RateLimitSignal>,
    /// The message says the model does not exist / was not found.
    pub model_not_found: bool,
}

/// Error types that say nothing beyond the HTTP status: a model-not-found message overrides them.
const GENERIC_TYPES: &[&str] = &[
    "invalid_request_error",
    "invalid_request",
    "bad_request",
    "BadRequestError",
    "not_found",
    "NotFoundError",
    "not_found_error",
];

impl ErrorBody {
    /// Reads an error body (JSON, or plain text when it is not JSON).
    ///
    /// The type is `error.code`, else `error.type`, else `error.status`, else top-level `code`
    /// / `type`, skipping values that are not informative: numbers or digit strings (LiteLLM's
    /// `code: "429"` only repeats the status), `None`/`null`/`error`, and anything that is not a
    /// short identifier or looks like a key. The message text (`error.message`, a string
    /// `error`, top-level `message`/`detail`; the raw text for a non-JSON body) is searched for
    /// "try again in …", the limit that was hit and "model … not found / does not exist".
    ///
    /// | body says | signal |
    /// |---|---|
    /// | `concurren…` or `overloaded` (type, code or message) | `Concurrency` |
    /// | `type: "requests"`, or "requests per min", "(RPM)", "requests per day", "(RPD)", "call/request rate limit" (Azure) | `RequestWindow` |
    /// | `type: "tokens"`, or "tokens per min", "(TPM)", "tokens per day", "(TPD)", "token rate limit" (Azure) | `TokenWindow` |
    pub fn parse(body: &[u8]) -> Self {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let mut identifiers = Vec::new();
        let mut message = String::new();
        if let Some(v) = &json {
            for p in [
                "/error/code",
                "/error/type",
                "/error/status",
                "/code",
                "/type",
            ] {
                if let Some(id) = v
                    .pointer(p)
                    .and_then(Value::as_str)
                    .filter(|s| is_identifier(s))
                {
                    identifiers.push(id.to_owned());
                }
            }
            for p in ["/error/message", "/error", "/message", "/detail"] {
                if let Some(m) = v.pointer(p).and_then(Value::as_str) {
                    message = m.to_lowercase();
                    break;
                }
            }
        } else {
            message = String::from_utf8_lossy(body).to_lowercase();
        }
        let mut error_type = identifiers.iter().find(|s| is_informative(s)).cloned();
        let model_not_found = message.contains("model")
            && [
                "not found",
                "does not exist",
                "not exist",
                "unknown model",
                "invalid model",
                "no such model",
            ]
            .iter()
            .any(|p| message.contains(p));
        if model_not_found
            && error_type
                .as_deref()
                .is_none_or(|t| GENERIC_TYPES.contains(&t))
        {
            error_type = Some("model_not_found".to_owned());
        }
        let ids_lower: Vec<String> = identifiers.iter().map(|s| s.to_lowercase()).collect();
        let has_id = |want: &str| ids_lower.iter().any(|s| s == want);
        let signal = if ids_lower
            .iter()
            .any(|s| s.contains("concurren") || s.contains("overloaded"))
            || message.contains("concurren")
            || message.contains("overloaded")
        {
            Some(RateLimitSignal::Concurrency)
        } else if has_id("requests") {
            Some(RateLimitSignal::RequestWindow)
        } else if has_id("tokens") {
            Some(RateLimitSignal::TokenWindow)
        } else if [
            "requests per min",
            "(rpm)",
            "requests per day",
            "(rpd)",
            "call rate limit",
            "request rate limit",
            // LiteLLM's proxy: "max requests per window exceeded", "rpm limit: 300".
            "requests per window",
            "rpm limit",
        ]
        .iter()
        .any(|p| message.contains(p))
        {
            Some(RateLimitSignal::RequestWindow)
        } else if [
            "tokens per min",
            "(tpm)",
            "tokens per day",
            "(tpd)",
            "token rate limit",
            "tpm limit",
        ]
        .iter()
        .any(|p| message.contains(p))
        {
            Some(RateLimitSignal::TokenWindow)
        } else {
            None
        };
        Self {
            error_type,
            identifiers,
            retry_in: try_again_in(&message),
            signal,
            model_not_found,
        }
    }

    /// True when the body reports exhausted quota or credits (waiting will not help).
    pub fn quota_exhausted(&self) -> bool {
        self.identifiers.iter().any(|s| {
            matches!(
                s.as_str(),
                "insufficient_quota" | "billing_hard_limit_reached"
            )
        })
    }
}

/// The informative error type or code of an error body (see [`ErrorBody::parse`]): a short
/// identifier that cannot carry a prompt, a key or free text.
pub fn error_code(body: &[u8]) -> Option<String> {
    ErrorBody::parse(body).error_type
}

/// True when the error body reports exhausted quota or credits (waiting will not help).
pub fn quota_exhausted(body: &[u8]) -> bool {
    ErrorBody::parse(body).quota_exhausted()
}

/// The duration after "try again in" (OpenAI) or "retry after" (Azure OpenAI) in a
/// (lower-cased) message: `1.2s`, `20ms`, `6m0s`,
/// `1h2m3.5s`, or a number followed by `seconds`/`second`/`sec`, `ms`/`milliseconds`,
/// `minutes`/`min`. The first parseable occurrence wins; zero counts (it means "now").
pub fn try_again_in(message: &str) -> Option<Duration> {
    // OpenAI: "Please try again in 1.2s"; Azure OpenAI: "Please retry after 6 seconds".
    ["try again in", "retry after"]
        .iter()
        .find_map(|needle| delay_after(message, needle))
}

fn delay_after(message: &str, needle: &str) -> Option<Duration> {
    let mut rest = message;
    while let Some(at) = rest.find(needle) {
        rest = &rest[at + needle.len()..];
        let mut words = rest.split_whitespace();
        let token = words
            .next()
            .map(|w| w.trim_end_matches(['.', ',', ';', ')', '!']))
            .unwrap_or("");
        if let Some(d) = super::rate_limits::parse_go_duration(token) {
            return Some(d);
        }
        if let Ok(n) = token.parse::<f64>() {
            let unit = words.next().unwrap_or("");
            let scale = if unit.starts_with("ms") || unit.starts_with("milli") {
                0.001
            } else if unit.starts_with("sec") || unit.starts_with('s') {
                1.0
            } else if unit.starts_with("min") {
                60.0
            } else {
                continue;
            };
            if let Ok(d) = Duration::try_from_secs_f64(n * scale) {
                return Some(d);
            }
        }
    }
    None
}

/// A short `[A-Za-z0-9_.-]` token that does not look like a key.
fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !looks_like_secret(s)
}

/// An identifier that says more than the HTTP status.
fn is_informative(s: &str) -> bool {
    !s.bytes().all(|b| b.is_ascii_digit())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "none" | "null" | "error" | "unknown" | "undefined"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers_and_names_the_bad_part() {
        let chat = br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#;
        assert_eq!(parse_chat(chat).unwrap(), "hi");
        assert_eq!(
            parse_chat(b"{\"choices\": [").unwrap_err(),
            WireError::NotJson
        );
        assert_eq!(parse_chat(b"{}").unwrap_err(), WireError::MissingContent);
        let emb = br#"{"data":[{"embedding":[0.5, 1]}]}"#;
        assert_eq!(parse_embedding(emb).unwrap(), vec![0.5, 1.0]);
        assert_eq!(
            parse_embedding(br#"{"data":[{"embedding":["x"]}]}"#).unwrap_err(),
            WireError::MissingEmbedding
        );
    }

    #[test]
    fn usage_in_both_forms() {
        let chat = br#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
        assert_eq!(
            parse_chat_answer(chat).unwrap().1,
            Some(TokenUsage {
                input_tokens: 12,
                output_tokens: 5
            })
        );
        let anthropic = br#"{"choices":[{"message":{"content":"hi"}}],"usage":{"input_tokens":3,"output_tokens":4}}"#;
        assert_eq!(
            parse_chat_answer(anthropic).unwrap().1,
            Some(TokenUsage {
                input_tokens: 3,
                output_tokens: 4
            })
        );
        let emb = br#"{"data":[{"embedding":[0.5]}],"usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        assert_eq!(
            parse_embedding_answer(emb).unwrap().1,
            Some(TokenUsage {
                input_tokens: 8,
                output_tokens: 0
            })
        );
        let only_total = br#"{"data":[{"embedding":[0.5]}],"usage":{"total_tokens":9}}"#;
        assert_eq!(
            parse_embedding_answer(only_total)
                .unwrap()
                .1
                .map(|u| u.total()),
            Some(9)
        );
        let none = br#"{"choices":[{"message":{"content":"hi"}}],"usage":{}}"#;
        assert_eq!(parse_chat_answer(none).unwrap().1, None);
        assert_eq!(
            parse_chat_answer(br#"{"choices":[{"message":{"content":"x"}}]}"#)
                .unwrap()
                .1,
            None
        );
    }

    #[test]
    fn try_again_in_every_form() {
        let cases = [
            ("please try again in 1.2s.", 1.2),
            ("please try again in 20ms. visit", 0.02),
            ("try again in 6m0s", 360.0),
            ("try again in 1h2m3.5s", 3723.5),
            ("try again in 12 seconds.", 12.0),
            ("try again in 1 minute", 60.0),
            ("try again in 500 milliseconds", 0.5),
            ("try again in 0s", 0.0),
            ("have exceeded token rate limit of your current tier. please retry after 6 seconds. please go", 6.0),
        ];
        for (text, secs) in cases {
            assert_eq!(
                try_again_in(text),
                Some(Duration::from_secs_f64(secs)),
                "{text}"
            );
        }
        for text in [
            "try again later",
            "retry in 1s",
            "",
            "try again in a moment",
        ] {
            assert_eq!(try_again_in(text), None, "{text}");
        }
    }

    #[test]
    fn error_bodies_say_which_limit_and_keep_the_informative_type() {
        let openai = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let b = ErrorBody::parse(openai);
        assert_eq!(b.error_type.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(b.signal, Some(RateLimitSignal::RequestWindow));
        assert_eq!(b.retry_in, Some(Duration::from_secs(20)));
        let tpm = br#"{"error":{"message":"Rate limit reached for gpt-4o on tokens per min (TPM): Limit 10000, Used 9000, Requested 2000. Please try again in 6m0s.","code":"rate_limit_exceeded"}}"#;
        let b = ErrorBody::parse(tpm);
        assert_eq!(b.signal, Some(RateLimitSignal::TokenWindow));
        assert_eq!(b.retry_in, Some(Duration::from_secs(360)));
        let litellm = br#"{"error":{"message":"Rate limit exceeded","type":"throttling_error","param":"None","code":"429"}}"#;
        let b = ErrorBody::parse(litellm);
        assert_eq!(b.error_type.as_deref(), Some("throttling_error"));
        assert_eq!(b.signal, None);
        // LiteLLM's window limits say which window they are.
        for (body, want) in [
            (&br#"{"error":{"message":"Rate limit reached: max requests per window exceeded","type":"throttling_error","code":"429"}}"#[..], RateLimitSignal::RequestWindow),
            (&br#"{"error":{"message":"Crossed limit. current rpm: 301, rpm limit: 300","type":"throttling_error","code":"429"}}"#[..], RateLimitSignal::RequestWindow),
            (&br#"{"error":{"message":"current tpm: 9000, tpm limit: 8000","type":"throttling_error","code":"429"}}"#[..], RateLimitSignal::TokenWindow),
        ] {
            assert_eq!(ErrorBody::parse(body).signal, Some(want));
        }
        let numeric = br#"{"error":{"code":429,"type":"None","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            ErrorBody::parse(numeric).error_type.as_deref(),
            Some("RESOURCE_EXHAUSTED")
        );
        let concurrency = br#"{"error":{"message":"Too many concurrent requests for this model","type":"rate_limit_error"}}"#;
        assert_eq!(
            ErrorBody::parse(concurrency).signal,
            Some(RateLimitSignal::Concurrency)
        );
        assert_eq!(
            ErrorBody::parse(b"Model is overloaded").signal,
            Some(RateLimitSignal::Concurrency)
        );
        let anthropic = br#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50,000 input tokens per minute."}}"#;
        let b = ErrorBody::parse(anthropic);
        assert_eq!(b.error_type.as_deref(), Some("rate_limit_error"));
        assert_eq!(b.signal, Some(RateLimitSignal::TokenWindow));
        let azure = br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-08-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 20 seconds."}}"#;
        let b = ErrorBody::parse(azure);
        assert_eq!(b.signal, Some(RateLimitSignal::TokenWindow));
        assert_eq!(b.retry_in, Some(Duration::from_secs(20)));
        assert_eq!(b.error_type, None, "a numeric code is not informative");
        let vllm = br#"{"object":"error","message":"The model `foo` does not exist.","type":"NotFoundError","param":null,"code":404}"#;
        let b = ErrorBody::parse(vllm);
        assert!(b.model_not_found);
        assert_eq!(b.error_type.as_deref(), Some("model_not_found"));
        let litellm_model = br#"{"error":{"message":"Invalid model name passed in model=gpt-9","type":"None","param":"None","code":"400"}}"#;
        assert_eq!(
            ErrorBody::parse(litellm_model).error_type.as_deref(),
            Some("model_not_found")
        );
        let ollama = br#"{"error":"model \"llama9\" not found, try pulling it first"}"#;
        assert_eq!(
            ErrorBody::parse(ollama).error_type.as_deref(),
            Some("model_not_found")
        );
        let key_as_code =
            br#"{"error":{"code":"sk-proj-AbCdEf0123456789","type":"invalid_request_error"}}"#;
        assert_eq!(
            ErrorBody::parse(key_as_code).error_type.as_deref(),
            Some("invalid_request_error")
        );
    }

    #[test]
    fn error_codes_are_identifiers_only() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-secret","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(error_code(body).as_deref(), Some("invalid_api_key"));
        let free_text = br#"{"error":{"code":"Your key sk-secret is bad","type":"Bad Thing"}}"#;
        assert_eq!(error_code(free_text), None);
        assert!(quota_exhausted(
            br#"{"error":{"code":"insufficient_quota"}}"#
        ));
        assert!(!quota_exhausted(b"not json"));
    }
}
