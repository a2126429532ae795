//! Structured replies: a JSON Schema compiled once per column, the reply parsed and validated
//! against it, and the bounded re-asking of an invalid reply (`llm_structured`, `llm_judge`).
//!
//! Problems are described by where they are in the reply and which schema rule failed, never
//! by the reply's content (it may echo prompts).

use super::{GenerationError, GeneratorConfigError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Default number of extra attempts after an invalid structured reply.
pub const DEFAULT_INVALID_OUTPUT_RETRIES: u32 = 2;
/// Largest accepted `invalid_output_retries`.
pub const MAX_INVALID_OUTPUT_RETRIES: u32 = 10;
/// Most scores one judge may declare.
pub const MAX_JUDGE_SCORES: usize = 64;

/// A JSON Schema compiled for validating replies.
#[derive(Clone)]
pub struct ReplySchema {
    schema: Value,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for ReplySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplySchema")
            .field("schema", &self.schema)
            .finish()
    }
}

impl ReplySchema {
    /// Compiles `schema`: it must be a JSON object describing an object (`"type": "object"`,
    /// as OpenAI's structured outputs require) and a valid JSON Schema.
    pub fn compile(schema: Value) -> Result<Self, GeneratorConfigError> {
        let Some(obj) = schema.as_object() else {
            return Err(GeneratorConfigError::new(
                "schema",
                "must be a JSON Schema object (e.g. {\"type\": \"object\", \"properties\": {…}})",
            ));
        };
        if obj.get("type") != Some(&Value::from("object")) {
            return Err(GeneratorConfigError::new(
                "schema",
                "must describe an object (\"type\": \"object\"): structured replies are JSON objects",
            ));
        }
        if let Err(e) = jsonschema::meta::validate(&schema) {
            return Err(GeneratorConfigError::new(
                "schema",
                format!(
                    "is not a valid JSON Schema (at {}: {})",
                    pointer_or_root(&e.instance_path().to_string()),
                    e
                ),
            ));
        }
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| GeneratorConfigError::new("schema", format!("cannot be compiled: {e}")))?;
        Ok(Self {
            schema,
            validator: Arc::new(validator),
        })
    }

    /// The schema as given.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The reply as a JSON value that satisfies the schema, or why not (sanitized).
    pub fn check(&self, reply: &str) -> Result<Value, String> {
        let value: Value = serde_json::from_str(strip_code_fence(reply)).map_err(|e| {
            format!(
                "reply is not JSON ({:?} at line {})",
                e.classify(),
                e.line()
            )
        })?;
        if let Some(e) = self.validator.iter_errors(&value).next() {
            return Err(format!(
                "reply breaks schema rule {} at {}",
                pointer_or_root(&e.schema_path().to_string()),
                pointer_or_root(&e.instance_path().to_string())
            ));
        }
        Ok(value)
    }
}

fn pointer_or_root(p: &str) -> String {
    if p.is_empty() {
        "(root)".to_string()
    } else {
        p.to_string()
    }
}

/// Models often wrap JSON in a Markdown fence even when asked not to: ```` ```json … ``` ````.
fn strip_code_fence(reply: &str) -> &str {
    let t = reply.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

/// The error after every attempt gave an invalid reply.
pub(crate) fn exhausted(attempts: u32, last: &str) -> GenerationError {
    GenerationError::InvalidStructuredOutput {
        message: format!("{attempts} attempt(s) gave no valid reply; last: {last}"),
    }
}

/// One named score a judge asks for: an integer in `[min, max]`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeScore {
    /// The score's name: the output field (`{{ column.name }}`). Letters, digits and `_`,
    /// starting with a letter or `_`; unique within the judge.
    pub name: String,
    /// Lowest allowed value (integer, default 1).
    #[serde(default = "default_min")]
    pub min: i64,
    /// Highest allowed value (integer ≥ `min`, default 10).
    #[serde(default = "default_max")]
    pub max: i64,
    /// What the score measures: sent to the model as the field's schema `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn default_min() -> i64 {
    1
}

fn default_max() -> i64 {
    10
}

impl JudgeScore {
    /// A score named `name` in `[min, max]`.
    pub fn new(name: &str, min: i64, max: i64) -> Self {
        Self {
            name: name.to_string(),
            min,
            max,
            description: None,
        }
    }

    /// The same score with a description.
    pub fn with_description(mut self, description: &str) -> Self {
        self.description = Some(description.to_string());
        self
    }
}

/// Checks a judge's scores; the error's field is `scores[i].name` / `.min` / `.max` or `scores`.
pub fn validate_scores(scores: &[JudgeScore]) -> Vec<GeneratorConfigError> {
    let mut errors = Vec::new();
    if scores.is_empty() || scores.len() > MAX_JUDGE_SCORES {
        errors.push(GeneratorConfigError::new(
            "scores",
            format!(
                "must declare 1..={MAX_JUDGE_SCORES} scores (got {})",
                scores.len()
            ),
        ));
    }
    for (i, s) in scores.iter().enumerate() {
        let ident = s
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && s.name.len() <= 64;
        if !ident {
            errors.push(GeneratorConfigError::new(
                format!("scores[{i}].name"),
                format!(
                    "{:?} must be 1–64 letters, digits or '_' starting with a letter or '_'",
                    s.name
                ),
            ));
        } else if let Some(j) = scores[..i].iter().position(|o| o.name == s.name) {
            errors.push(GeneratorConfigError::new(
                format!("scores[{i}].name"),
                format!("duplicate score name {:?} (first at scores[{j}])", s.name),
            ));
        }
        if s.min > s.max {
            errors.push(GeneratorConfigError::new(
                format!("scores[{i}].min"),
                format!("must be ≤ max (min {} > max {})", s.min, s.max),
            ));
        }
    }
    errors
}

/// The reply schema of a judge: an object with one required integer field per score.
pub fn judge_schema(scores: &[JudgeScore]) -> Value {
    let mut properties = Map::new();
    for s in scores {
        let mut p = json!({"type": "integer", "minimum": s.min, "maximum": s.max});
        if let Some(d) = &s.description {
            p["description"] = Value::from(d.as_str());
        }
        properties.insert(s.name.clone(), p);
    }
    let required: Vec<Value> = scores
        .iter()
        .map(|s| Value::from(s.name.as_str()))
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_and_validated_without_echoing_content() {
        let s = ReplySchema::compile(json!({
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1}},
            "required": ["n"]
        }))
        .unwrap();
        assert_eq!(s.check("{\"n\": 3}").unwrap(), json!({"n": 3}));
        assert_eq!(
            s.check("```json\n{\"n\": 4}\n```").unwrap(),
            json!({"n": 4})
        );
        let e = s.check("On a scale of 1 to 10, I'd give it 7").unwrap_err();
        assert!(e.starts_with("reply is not JSON"), "{e}");
        let e = s.check("{\"n\": \"secret-text\"}").unwrap_err();
        assert!(e.contains("/properties/n/type") && e.contains("/n"), "{e}");
        assert!(!e.contains("secret-text"), "{e}");
    }

    #[test]
    fn schema_must_be_an_object_schema() {
        assert_eq!(
            ReplySchema::compile(json!([1])).unwrap_err().field,
            "schema"
        );
        assert!(ReplySchema::compile(json!({"type": "string"})).is_err());
        assert!(ReplySchema::compile(json!({"type": "object", "minProperties": -1})).is_err());
    }

    #[test]
    fn scores_are_checked_by_field() {
        let bad = [
            JudgeScore::new("clarity", 1, 10),
            JudgeScore::new("clarity", 1, 10),
            JudgeScore::new("x.y", 5, 1),
        ];
        let fields: Vec<String> = validate_scores(&bad).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["scores[1].name", "scores[2].name", "scores[2].min"]
        );
        assert_eq!(validate_scores(&[])[0].field, "scores");
        let schema = judge_schema(&[JudgeScore::new("a", 0, 5).with_description("d")]);
        assert_eq!(schema["properties"]["a"]["maximum"], json!(5));
        assert_eq!(schema["required"], json!(["a"]));
    }
}
