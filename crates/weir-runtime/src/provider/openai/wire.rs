//! The OpenAI wire format: request bodies for chat and embeddings, typed parsing of the answers,
//! and a body-free summary of an error answer (`error.type` / `error.code` when they are short
//! identifiers; never the message, which may echo prompts or keys).

use serde_json::{json, Value};

/// The JSON body of a chat completion request with one user message.
pub fn chat_body(model: &str, input: &str) -> Vec<u8> {
    json!({"model": model, "messages": [{"role": "user", "content": input}]})
        .to_string()
        .into_bytes()
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
    let v: Value = serde_json::from_slice(body).map_err(|_| WireError::NotJson)?;
    v.pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(WireError::MissingContent)
}

/// The vector of an embeddings answer.
pub fn parse_embedding(body: &[u8]) -> Result<Vec<f32>, WireError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| WireError::NotJson)?;
    let items = v
        .pointer("/data/0/embedding")
        .and_then(Value::as_array)
        .ok_or(WireError::MissingEmbedding)?;
    items
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect::<Option<Vec<f32>>>()
        .ok_or(WireError::MissingEmbedding)
}

/// What an error body says in machine terms: `error.code` or `error.type`, only when it is a
/// short `[a-z0-9_.-]` identifier (so it cannot carry a prompt, a key or free text).
pub fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    ["/error/code", "/error/type"]
        .into_iter()
        .filter_map(|p| v.pointer(p).and_then(Value::as_str))
        .find(|s| is_identifier(s))
        .map(str::to_owned)
}

/// True when the error body reports exhausted quota or credits (waiting will not help).
pub fn quota_exhausted(body: &[u8]) -> bool {
    matches!(
        error_code(body).as_deref(),
        Some("insufficient_quota" | "billing_hard_limit_reached")
    )
}

fn is_identifier(s: &str) -> bool {
    (1..=48).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
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
