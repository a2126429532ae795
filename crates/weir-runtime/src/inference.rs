//! What a chat call asks for beyond its prompt: inference parameters (`temperature`, `top_p`,
//! `max_tokens`, `stop`, `seed`, free-form `extra_body`), a system prompt and a structured
//! response format; [`ChatRequest`] carries them from a generator to the provider.
//!
//! The parameters reach an OpenAI-compatible body exactly as given (only the fields that are
//! set; `extra_body` keys merged at the top level). A model entry's parameters are the
//! defaults; a column's `inference` overrides them field by field ([`InferenceParams::over`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Largest accepted `max_tokens` (10⁶: beyond any context window; keeps budget estimates finite).
pub const MAX_MAX_TOKENS: u32 = 1_000_000;
/// Most `stop` sequences accepted (OpenAI allows 4; some servers more).
pub const MAX_STOP_SEQUENCES: usize = 16;

/// Body keys weir writes itself: `extra_body` may not set them (the typed fields, or weir's own
/// message and response-format handling, own them).
pub const RESERVED_BODY_KEYS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "response_format",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
];

/// Sampling and length parameters of a chat call; every field is optional (unset = not sent,
/// the server's default applies).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceParams {
    /// Sampling temperature in [0, 2] (sent as `temperature`, the number as written: `1`
    /// stays `1`, never `1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Number>,
    /// Nucleus sampling mass in (0, 1] (sent as `top_p`, the number as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Number>,
    /// Longest reply in tokens, 1..=1,000,000 (sent as `max_tokens`). Also the output part of
    /// the token-budget estimate of each call (prompt estimate + `max_tokens`); the simulated
    /// provider writes at most this many tokens and reports them as usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Stop sequence(s): one string or a list of 1–16 non-empty strings (sent as `stop`, in the
    /// form given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    /// Sampling seed for servers that support reproducible sampling (sent as `seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Further body keys, merged at the top level of the request body as given (e.g.
    /// `{"frequency_penalty": 0.5}`). May not name a key weir sets itself (`model`,
    /// `messages`, `stream`, `response_format` or one of the fields above). A column's
    /// `extra_body` is merged over the model's, key by key.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra_body: Map<String, Value>,
}

/// `stop` as the user wrote it: one string or a list.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    /// One stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl StopSequences {
    /// The sequences as a slice-like list.
    pub fn sequences(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A bad inference setting: the field (relative to the `inference` object) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceParamError {
    /// The offending field, e.g. `max_tokens`, `extra_body.model`, `stop[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl InferenceParamError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl InferenceParams {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `self` (a column's override) over `base` (the model's defaults): each set field wins;
    /// `extra_body` merges key by key, the override's keys winning.
    pub fn over(&self, base: &InferenceParams) -> InferenceParams {
        let mut extra_body = base.extra_body.clone();
        for (k, v) in &self.extra_body {
            extra_body.insert(k.clone(), v.clone());
        }
        InferenceParams {
            temperature: self
                .temperature
                .clone()
                .or_else(|| base.temperature.clone()),
            top_p: self.top_p.clone().or_else(|| base.top_p.clone()),
            max_tokens: self.max_tokens.or(base.max_tokens),
            stop: self.stop.clone().or_else(|| base.stop.clone()),
            seed: self.seed.or(base.seed),
            extra_body,
        }
    }

    /// Every problem, each naming its field.
    pub fn validate(&self) -> Vec<InferenceParamError> {
        let mut errors = Vec::new();
        if let Some(t) = self.temperature.as_ref().and_then(Number::as_f64) {
            if !(t.is_finite() && (0.0..=2.0).contains(&t)) {
                errors.push(InferenceParamError::new(
                    "temperature",
                    format!("must be a finite number in [0, 2] (got {t})"),
                ));
            }
        }
        if let Some(p) = self.top_p.as_ref().and_then(Number::as_f64) {
            if !(p.is_finite() && p > 0.0 && p <= 1.0) {
                errors.push(InferenceParamError::new(
                    "top_p",
                    format!("must be a finite number in (0, 1] (got {p})"),
                ));
            }
        }
        if let Some(m) = self.max_tokens {
            if !(1..=MAX_MAX_TOKENS).contains(&m) {
                errors.push(InferenceParamError::new(
                    "max_tokens",
                    format!("must be in 1..={MAX_MAX_TOKENS} (got {m})"),
                ));
            }
        }
        match &self.stop {
            Some(StopSequences::One(s)) if s.is_empty() => {
                errors.push(InferenceParamError::new("stop", "must be non-empty"));
            }
            Some(StopSequences::Many(v)) => {
                if v.is_empty() || v.len() > MAX_STOP_SEQUENCES {
                    errors.push(InferenceParamError::new(
                        "stop",
                        format!(
                            "must list 1..={MAX_STOP_SEQUENCES} sequences (got {})",
                            v.len()
                        ),
                    ));
                }
                for (i, s) in v.iter().enumerate() {
                    if s.is_empty() {
                        errors.push(InferenceParamError::new(
                            format!("stop[{i}]"),
                            "must be non-empty",
                        ));
                    }
                }
            }
            _ => {}
        }
        for key in self.extra_body.keys() {
            if RESERVED_BODY_KEYS.contains(&key.as_str()) {
                let hint =
                    if ["model", "messages", "stream", "response_format"].contains(&key.as_str()) {
                        "weir sets it itself".to_string()
                    } else {
                        format!("set it as inference.{key}")
                    };
                errors.push(InferenceParamError::new(
                    format!("extra_body.{key}"),
                    format!("is reserved ({hint})"),
                ));
            }
        }
        errors
    }

    /// The body keys these parameters add, in a fixed order (typed fields, then `extra_body`).
    pub fn body_entries(&self) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(t) = &self.temperature {
            out.insert("temperature".into(), Value::Number(t.clone()));
        }
        if let Some(p) = &self.top_p {
            out.insert("top_p".into(), Value::Number(p.clone()));
        }
        if let Some(m) = self.max_tokens {
            out.insert("max_tokens".into(), Value::from(m));
        }
        if let Some(s) = &self.stop {
            out.insert(
                "stop".into(),
                serde_json::to_value(s).unwrap_or(Value::Null),
            );
        }
        if let Some(s) = self.seed {
            out.insert("seed".into(), Value::from(s));
        }
        for (k, v) in &self.extra_body {
            // Validation refuses reserved keys; should one slip through, the typed field wins.
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        out
    }
}

/// A structured reply format: OpenAI's `response_format: {"type": "json_schema", ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFormat {
    /// The schema's name (`json_schema.name`): letters, digits, `_` and `-`, ≤ 64 characters.
    pub name: String,
    /// The JSON Schema the reply must satisfy.
    pub schema: Value,
}

impl ResponseFormat {
    /// A `json_schema` format named after `name` (sanitized to the allowed characters).
    pub fn json_schema(name: &str, schema: Value) -> Self {
        let mut clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        if clean.is_empty() {
            clean.push_str("reply");
        }
        Self {
            name: clean,
            schema,
        }
    }

    /// The `response_format` body value.
    pub fn body_value(&self) -> Value {
        serde_json::json!({
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.schema}
        })
    }
}

/// What a chat call sends: the rendered prompt plus the options generators may set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatOptions {
    /// A system message sent before the prompt.
    pub system_prompt: Option<String>,
    /// Inference parameters (already merged: column over model).
    pub inference: InferenceParams,
    /// A structured reply format.
    pub response_format: Option<ResponseFormat>,
}

/// One chat call as a generator asks for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The user message.
    pub prompt: String,
    /// System prompt, parameters and response format.
    pub options: ChatOptions,
}

impl ChatRequest {
    /// A plain request: the prompt and nothing else.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            options: ChatOptions::default(),
        }
    }

    /// The same request with `options`.
    pub fn with_options(mut self, options: ChatOptions) -> Self {
        self.options = options;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn override_wins_field_by_field_and_extra_body_merges() {
        let base: InferenceParams = serde_json::from_value(
            json!({"temperature": 0.2, "max_tokens": 100, "extra_body": {"a": 1, "b": 2}}),
        )
        .unwrap();
        let col: InferenceParams =
            serde_json::from_value(json!({"max_tokens": 7, "extra_body": {"b": 3}})).unwrap();
        let m = col.over(&base);
        assert_eq!(m.temperature.and_then(|t| t.as_f64()), Some(0.2));
        assert_eq!(m.max_tokens, Some(7));
        assert_eq!(
            m.extra_body,
            json!({"a": 1, "b": 3}).as_object().unwrap().clone()
        );
    }

    #[test]
    fn validation_names_each_field() {
        let p: InferenceParams = serde_json::from_value(json!({
            "temperature": 3.0, "top_p": 0.0, "max_tokens": 0, "stop": ["x", ""],
            "extra_body": {"model": "x", "temperature": 1}
        }))
        .unwrap();
        let fields: Vec<String> = p.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "temperature",
                "top_p",
                "max_tokens",
                "stop[1]",
                "extra_body.model",
                "extra_body.temperature"
            ]
        );
        assert!(serde_json::from_value::<InferenceParams>(json!({"temprature": 1})).is_err());
    }

    #[test]
    fn body_entries_are_exactly_as_given() {
        let p: InferenceParams = serde_json::from_value(json!({
            "temperature": 1, "top_p": 0.9, "stop": "END", "seed": -3,
            "extra_body": {"logit_bias": {"1": 2}}
        }))
        .unwrap();
        let body = Value::Object(p.body_entries());
        assert_eq!(
            body,
            json!({"temperature": 1, "top_p": 0.9, "stop": "END", "seed": -3, "logit_bias": {"1": 2}})
        );
        assert!(body.to_string().contains("\"temperature\":1,"), "{body}");
    }
}
