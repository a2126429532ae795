//! Model-backed generators: `LlmText` (one chat call), `Embedding` (one embedding call) and
//! `LlmJudge` (one chat call whose reply must carry a 1–10 score).
//!
//! Each is built with the workflow's [`ModelRegistry`] so its scheduling metadata is resolved
//! once, at construction: `model(provider, model_id, "chat"|"embedding", cap)`. An unknown alias
//! is kept as a fatal metadata error (workflow validation reports it as well).

use super::{CellContext, ColumnGenerator, GenerationError, GeneratorConfigError};
use crate::template::Template;
use crate::workflow::{ModelRegistry, Strategy};
use async_trait::async_trait;
use serde_json::Value;
use weir_contracts::{SchedulingMetadata, SchedulingMetadataError};

/// The alias, prompt template and pre-resolved metadata every model-backed built-in shares.
#[derive(Debug, Clone)]
struct ModelBinding {
    alias: String,
    template: Template,
    metadata: Result<SchedulingMetadata, SchedulingMetadataError>,
}

impl ModelBinding {
    fn new(
        models: &ModelRegistry,
        alias: &str,
        template: &str,
        generation_kind: &str,
        namespace: &str,
    ) -> Result<Self, GeneratorConfigError> {
        if alias.trim().is_empty() {
            return Err(GeneratorConfigError::new(
                "model_alias",
                "must be non-empty",
            ));
        }
        let aliases = [alias.to_string()];
        Ok(Self {
            alias: alias.to_string(),
            template: Template::parse(template)?,
            metadata: models.metadata_for(&aliases, generation_kind, namespace),
        })
    }
}

/// Renders a prompt template and makes one chat call; the value is the reply text.
#[derive(Debug, Clone)]
pub struct LlmText {
    binding: ModelBinding,
}

impl LlmText {
    /// `alias` must be defined in `models` for scheduling metadata to resolve.
    pub fn new(
        models: &ModelRegistry,
        alias: &str,
        prompt: &str,
    ) -> Result<Self, GeneratorConfigError> {
        Ok(Self {
            binding: ModelBinding::new(models, alias, prompt, "chat", "weir.llm_text")?,
        })
    }
}

#[async_trait]
impl ColumnGenerator for LlmText {
    fn get_scheduling_metadata(&self) -> Result<SchedulingMetadata, SchedulingMetadataError> {
        self.binding.metadata.clone()
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        self.binding.template.referenced_columns()
    }

    fn model_aliases(&self) -> Vec<String> {
        vec![self.binding.alias.clone()]
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let prompt = self.binding.template.render(ctx.record)?;
        let reply = ctx.models.chat(&self.binding.alias, &prompt).await?;
        Ok(Value::String(reply.text))
    }
}

/// Renders an input template and makes one embedding call; the value is the float array.
///
/// The full vector is stored (not a summary): it is the column's real output, and simulated
/// embeddings are small.
#[derive(Debug, Clone)]
pub struct Embedding {
    binding: ModelBinding,
}

impl Embedding {
    /// `alias` must be defined in `models` for scheduling metadata to resolve.
    pub fn new(
        models: &ModelRegistry,
        alias: &str,
        input: &str,
    ) -> Result<Self, GeneratorConfigError> {
        Ok(Self {
            binding: ModelBinding::new(models, alias, input, "embedding", "weir.embedding")?,
        })
    }
}

#[async_trait]
impl ColumnGenerator for Embedding {
    fn get_scheduling_metadata(&self) -> Result<SchedulingMetadata, SchedulingMetadataError> {
        self.binding.metadata.clone()
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        self.binding.template.referenced_columns()
    }

    fn model_aliases(&self) -> Vec<String> {
        vec![self.binding.alias.clone()]
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let input = self.binding.template.render(ctx.record)?;
        let vector = ctx.models.embed(&self.binding.alias, &input).await?;
        let mut out = Vec::with_capacity(vector.len());
        for x in vector {
            let n = serde_json::Number::from_f64(f64::from(x)).ok_or_else(|| {
                GenerationError::bad_output("embedding contains a non-finite value")
            })?;
            out.push(Value::Number(n));
        }
        Ok(Value::Array(out))
    }
}

/// Asks a model to judge other columns; the value is the integer score 1–10 from the reply.
///
/// A reply with no parsable score is a non-retryable [`GenerationError::BadOutput`]: the same
/// prompt is likely to get the same kind of answer, and retry budget belongs to transient
/// provider failures (see [`parse_judge_score`] for the rule).
#[derive(Debug, Clone)]
pub struct LlmJudge {
    binding: ModelBinding,
}

impl LlmJudge {
    /// `alias` must be defined in `models` for scheduling metadata to resolve.
    pub fn new(
        models: &ModelRegistry,
        alias: &str,
        prompt: &str,
    ) -> Result<Self, GeneratorConfigError> {
        Ok(Self {
            binding: ModelBinding::new(models, alias, prompt, "chat", "weir.llm_judge")?,
        })
    }
}

/// The score in a judge reply: the first run of ASCII digits, which must be 1–10 and not
/// preceded by `-` or `.`; anything else is `None`.
pub fn parse_judge_score(reply: &str) -> Option<u8> {
    let bytes = reply.as_bytes();
    let start = bytes.iter().position(u8::is_ascii_digit)?;
    if start > 0 && matches!(bytes[start - 1], b'-' | b'.') {
        return None;
    }
    let len = bytes[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let end = start + len;
    if end < bytes.len() && bytes[end] == b'.' && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
    {
        return None; // a decimal like 7.5 is not an integer score
    }
    let n: u32 = reply[start..end].parse().ok()?;
    (1..=10).contains(&n).then_some(n as u8)
}

#[async_trait]
impl ColumnGenerator for LlmJudge {
    fn get_scheduling_metadata(&self) -> Result<SchedulingMetadata, SchedulingMetadataError> {
        self.binding.metadata.clone()
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        self.binding.template.referenced_columns()
    }

    fn model_aliases(&self) -> Vec<String> {
        vec![self.binding.alias.clone()]
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let prompt = self.binding.template.render(ctx.record)?;
        let reply = ctx.models.chat(&self.binding.alias, &prompt).await?;
        let score = parse_judge_score(&reply.text).ok_or_else(|| {
            GenerationError::bad_output("judge reply has no integer score in 1..=10")
        })?;
        Ok(Value::from(score))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_judge_score;

    #[test]
    fn judge_score_rule() {
        assert_eq!(parse_judge_score("Score: 8/10"), Some(8));
        assert_eq!(parse_judge_score("10"), Some(10));
        assert_eq!(parse_judge_score("I'd say 3. Reason: 9 things"), Some(3));
        assert_eq!(parse_judge_score("0"), None);
        assert_eq!(parse_judge_score("11 out of 10"), None);
        assert_eq!(parse_judge_score("-3"), None);
        assert_eq!(parse_judge_score("7.5"), None);
        assert_eq!(parse_judge_score("great"), None);
        assert_eq!(parse_judge_score("99999999999999999999"), None);
    }
}
