//! Model-backed generators: `LlmText` (one chat call), `LlmStructured` (a chat call whose
//! reply must be JSON matching a schema), `Embedding` (one embedding call) and `LlmJudge` (a
//! structured call for named integer scores).
//!
//! Chat columns take an optional system prompt (a template, like the prompt) and inference
//! parameters: the model alias's `inference`, overridden field by field by the column's.
//!
//! Each is built with the workflow's [`ModelRegistry`] so its scheduling metadata is resolved
//! once, at construction: `model(provider, model_id, "chat"|"embedding", cap)`. An unknown alias
//! is kept as a fatal metadata error (workflow validation reports it as well).

use super::structured::{self, JudgeScore, ReplySchema};
use super::{CellContext, ColumnGenerator, GenerationError, GeneratorConfigError};
use crate::inference::{ChatOptions, ChatRequest, InferenceParams, ResponseFormat};
use crate::template::Template;
use crate::workflow::{ModelRegistry, Strategy};
use async_trait::async_trait;
use serde_json::Value;
use weir_contracts::{SchedulingMetadata, SchedulingMetadataError};

/// The alias, prompt template, chat options and pre-resolved metadata every model-backed
/// built-in shares.
#[derive(Debug, Clone)]
struct ModelBinding {
    alias: String,
    template: Template,
    system: Option<Template>,
    /// The alias's own inference defaults (a column override is merged over them).
    model_inference: InferenceParams,
    options: ChatOptions,
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
        let model_inference = models
            .get(alias)
            .map(|m| m.inference.clone())
            .unwrap_or_default();
        Ok(Self {
            alias: alias.to_string(),
            template: Template::parse(template)?,
            system: None,
            options: ChatOptions {
                inference: model_inference.clone(),
                ..ChatOptions::default()
            },
            model_inference,
            metadata: models.metadata_for(&aliases, generation_kind, namespace),
        })
    }

    fn set_system_prompt(&mut self, system: &str) -> Result<(), GeneratorConfigError> {
        self.system = Some(
            Template::parse(system)
                .map_err(|e| GeneratorConfigError::new("system_prompt", e.to_string()))?,
        );
        Ok(())
    }

    fn set_inference(&mut self, column: &InferenceParams) -> Result<(), GeneratorConfigError> {
        if let Some(e) = column.validate().into_iter().next() {
            return Err(GeneratorConfigError::new(
                format!("inference.{}", e.field),
                e.message,
            ));
        }
        self.options.inference = column.over(&self.model_inference);
        Ok(())
    }

    fn required_columns(&self) -> Vec<String> {
        let mut out = self.template.referenced_columns();
        if let Some(system) = &self.system {
            for c in system.referenced_columns() {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The chat request for one row: rendered prompt and system prompt, and the options.
    fn request(&self, record: &super::Record) -> Result<ChatRequest, GenerationError> {
        let mut options = self.options.clone();
        if let Some(system) = &self.system {
            options.system_prompt = Some(system.render(record)?);
        }
        Ok(ChatRequest::new(self.template.render(record)?).with_options(options))
    }

    /// Asks until the reply satisfies `schema`, at most `1 + retries` times; every attempt is
    /// one admitted model call (provider failures end the cell as usual).
    async fn structured(
        &self,
        ctx: &CellContext<'_>,
        schema: &ReplySchema,
        retries: u32,
    ) -> Result<Value, GenerationError> {
        let request = self.request(ctx.record)?;
        let mut last = String::new();
        for _ in 0..=retries {
            let reply = ctx.models.chat_request(&self.alias, &request).await?;
            match schema.check(&reply.text) {
                Ok(value) => return Ok(value),
                Err(problem) => last = problem,
            }
        }
        Err(structured::exhausted(retries + 1, &last))
    }
}

/// Checks an `invalid_output_retries` setting.
fn checked_retries(retries: u32) -> Result<u32, GeneratorConfigError> {
    if retries > structured::MAX_INVALID_OUTPUT_RETRIES {
        return Err(GeneratorConfigError::new(
            "invalid_output_retries",
            format!(
                "must be in 0..={} (got {retries})",
                structured::MAX_INVALID_OUTPUT_RETRIES
            ),
        ));
    }
    Ok(retries)
}

/// The `ColumnGenerator` methods every model-bound cell column answers from its `binding`
/// (metadata, cell strategy, template columns, its one alias).
macro_rules! binding_column {
    () => {
        fn get_scheduling_metadata(&self) -> Result<SchedulingMetadata, SchedulingMetadataError> {
            self.binding.metadata.clone()
        }

        fn strategy(&self) -> Strategy {
            Strategy::Cell
        }

        fn required_columns(&self) -> Vec<String> {
            self.binding.required_columns()
        }

        fn model_aliases(&self) -> Vec<String> {
            vec![self.binding.alias.clone()]
        }
    };
}

/// The structured-reply setting shared by `LlmStructured` and `LlmJudge`.
macro_rules! structured_settings {
    ($t:ty) => {
        impl $t {
            /// Extra attempts after an invalid reply (0..=10; default 2).
            pub fn with_invalid_output_retries(
                mut self,
                retries: u32,
            ) -> Result<Self, GeneratorConfigError> {
                self.retries = checked_retries(retries)?;
                Ok(self)
            }
        }
    };
}

/// The chat-column settings shared by `LlmText`, `LlmStructured` and `LlmJudge`.
macro_rules! chat_settings {
    ($t:ty) => {
        impl $t {
            /// The same column with a system prompt (a template over the row's columns).
            pub fn with_system_prompt(
                mut self,
                system: &str,
            ) -> Result<Self, GeneratorConfigError> {
                self.binding.set_system_prompt(system)?;
                Ok(self)
            }

            /// The same column with inference parameters merged over the alias's defaults
            /// (each set field wins; `extra_body` merges key by key).
            pub fn with_inference(
                mut self,
                inference: &InferenceParams,
            ) -> Result<Self, GeneratorConfigError> {
                self.binding.set_inference(inference)?;
                Ok(self)
            }

            /// The options every call of this column sends (merged inference, format).
            pub fn chat_options(&self) -> &ChatOptions {
                &self.binding.options
            }
        }
    };
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
    binding_column!();

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let request = self.binding.request(ctx.record)?;
        let reply = ctx
            .models
            .chat_request(&self.binding.alias, &request)
            .await?;
        Ok(Value::String(reply.text))
    }
}

chat_settings!(LlmText);

/// Asks for a JSON reply matching `schema` (sent as `response_format: json_schema`); the value
/// is the parsed object. An invalid reply (not JSON, or breaking the schema) is asked again up
/// to `invalid_output_retries` times, then the row is dropped with
/// [`GenerationError::InvalidStructuredOutput`] (`invalid_structured_output`).
#[derive(Debug, Clone)]
pub struct LlmStructured {
    binding: ModelBinding,
    schema: ReplySchema,
    retries: u32,
}

impl LlmStructured {
    /// `schema` must be an object schema (see [`ReplySchema::compile`]); `name` names the
    /// response format (the column name).
    pub fn new(
        models: &ModelRegistry,
        alias: &str,
        prompt: &str,
        name: &str,
        schema: Value,
    ) -> Result<Self, GeneratorConfigError> {
        let schema = ReplySchema::compile(schema)?;
        let mut binding = ModelBinding::new(models, alias, prompt, "chat", "weir.llm_structured")?;
        binding.options.response_format =
            Some(ResponseFormat::json_schema(name, schema.schema().clone()));
        Ok(Self {
            binding,
            schema,
            retries: structured::DEFAULT_INVALID_OUTPUT_RETRIES,
        })
    }
}

chat_settings!(LlmStructured);
structured_settings!(LlmStructured);

#[async_trait]
impl ColumnGenerator for LlmStructured {
    binding_column!();

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        self.binding
            .structured(ctx, &self.schema, self.retries)
            .await
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
    binding_column!();

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

/// Asks a model to judge other columns for named integer scores, with structured output
/// (one required integer field per score, bounded by its `min`/`max`, sent as
/// `response_format: json_schema`). The value is an object with one field per score
/// (`{"clarity": 7, "accuracy": 9}`), or, for a judge built with [`LlmJudge::new`] (no declared
/// scores), the single `score` (1–10) as a bare integer.
///
/// A reply that is not JSON or breaks the schema is never turned into a guessed number: it is
/// asked again up to `invalid_output_retries` times, then the row is dropped with
/// [`GenerationError::InvalidStructuredOutput`] (a counted failure).
#[derive(Debug, Clone)]
pub struct LlmJudge {
    binding: ModelBinding,
    schema: ReplySchema,
    /// `None`: the single 1–10 `score`, written as a bare integer.
    scores: Option<Vec<JudgeScore>>,
    retries: u32,
}

/// The field name of a judge without declared scores.
const IMPLICIT_SCORE: &str = "score";

impl LlmJudge {
    /// A judge with one implicit score, `score` in 1..=10, written as a bare integer.
    pub fn new(
        models: &ModelRegistry,
        alias: &str,
        prompt: &str,
    ) -> Result<Self, GeneratorConfigError> {
        Self::build(models, alias, prompt, None)
    }

    /// A judge for the declared `scores` (see [`structured::validate_scores`]); the value is
    /// an object with one field per score.
    pub fn with_scores(
        models: &ModelRegistry,
        alias: &str,
        prompt: &str,
        scores: Vec<JudgeScore>,
    ) -> Result<Self, GeneratorConfigError> {
        if let Some(e) = structured::validate_scores(&scores).into_iter().next() {
            return Err(e);
        }
        Self::build(models, alias, prompt, Some(scores))
    }

    fn build(
        models: &ModelRegistry,
        alias: &str,
        prompt: &str,
        scores: Option<Vec<JudgeScore>>,
    ) -> Result<Self, GeneratorConfigError> {
        let declared = scores
            .clone()
            .unwrap_or_else(|| vec![JudgeScore::new(IMPLICIT_SCORE, 1, 10)]);
        let schema = ReplySchema::compile(structured::judge_schema(&declared))?;
        let mut binding = ModelBinding::new(models, alias, prompt, "chat", "weir.llm_judge")?;
        binding.options.response_format = Some(ResponseFormat::json_schema(
            "judge_scores",
            schema.schema().clone(),
        ));
        Ok(Self {
            binding,
            schema,
            scores,
            retries: structured::DEFAULT_INVALID_OUTPUT_RETRIES,
        })
    }

    /// The declared scores (`None` for the implicit single `score`).
    pub fn scores(&self) -> Option<&[JudgeScore]> {
        self.scores.as_deref()
    }
}

chat_settings!(LlmJudge);
structured_settings!(LlmJudge);

#[async_trait]
impl ColumnGenerator for LlmJudge {
    binding_column!();

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let value = self
            .binding
            .structured(ctx, &self.schema, self.retries)
            .await?;
        if self.scores.is_some() {
            return Ok(value);
        }
        // The schema made `score` a required integer, so it is there.
        Ok(value.get(IMPLICIT_SCORE).cloned().unwrap_or(Value::Null))
    }
}
