//! Custom generators: a user closure that may make zero, one or many model calls per row, and
//! `CustomCalls`, a ready-made one that makes a data-dependent number of chat calls.
//!
//! Custom code declares `custom_model` metadata: its request count is not knowable up front,
//! so task admission groups it by its alias set and each concrete call is admitted separately.

use super::{CellContext, ColumnGenerator, GenerationError, GeneratorConfigError, Record};
use crate::inference::{ChatOptions, ChatRequest};
use crate::model_facade::ModelFacade;
use crate::template::Template;
use crate::workflow::{ModelRegistry, Strategy};
use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use weir_contracts::{SchedulingMetadata, SchedulingMetadataError, SchedulingMetadataErrorCode};

/// A boxed, sendable future (what a custom closure returns).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The user closure behind [`Custom`].
pub type CustomFn =
    Arc<dyn Fn(CustomCallContext) -> BoxFuture<Result<Value, GenerationError>> + Send + Sync>;

/// An owned copy of a cell's context, so the closure's future can be `'static`.
#[derive(Clone)]
pub struct CustomCallContext {
    /// The column being generated.
    pub column: String,
    /// The row's current values.
    pub record: Record,
    /// Row group of the row.
    pub row_group: u64,
    /// Row index inside the row group.
    pub row_index: u64,
    /// Deterministic per-cell seed.
    pub seed: u64,
    /// Model-call boundary.
    pub models: Arc<dyn ModelFacade>,
}

impl CustomCallContext {
    /// Copies a cell context.
    pub fn from_cell(ctx: &CellContext<'_>) -> Self {
        Self {
            column: ctx.column.to_string(),
            record: ctx.record.clone(),
            row_group: ctx.row_group,
            row_index: ctx.row_index,
            seed: ctx.seed,
            models: Arc::clone(ctx.models),
        }
    }

    /// A fresh RNG seeded from the cell seed.
    pub fn rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed)
    }
}

impl fmt::Debug for CustomCallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomCallContext")
            .field("column", &self.column)
            .field("row_group", &self.row_group)
            .field("row_index", &self.row_index)
            .finish_non_exhaustive()
    }
}

/// A cell generator backed by a user closure.
#[derive(Clone)]
pub struct Custom {
    f: CustomFn,
    required: Vec<String>,
    aliases: Vec<String>,
    weight: Option<u32>,
}

impl Custom {
    /// A closure reading `required_columns`; with no model aliases its metadata is local.
    pub fn new<S, F, Fut>(required_columns: impl IntoIterator<Item = S>, f: F) -> Self
    where
        S: Into<String>,
        F: Fn(CustomCallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, GenerationError>> + Send + 'static,
    {
        Self {
            f: Arc::new(move |ctx| Box::pin(f(ctx))),
            required: required_columns.into_iter().map(Into::into).collect(),
            aliases: Vec::new(),
            weight: None,
        }
    }

    /// Declares the model aliases the closure may call (sorted, de-duplicated).
    pub fn with_model_aliases<S: Into<String>>(
        mut self,
        aliases: impl IntoIterator<Item = S>,
    ) -> Self {
        self.aliases = aliases.into_iter().map(Into::into).collect();
        self.aliases.sort();
        self.aliases.dedup();
        self
    }

    /// Overrides the static weight (default: the number of aliases, at least 1).
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }
}

#[async_trait]
impl ColumnGenerator for Custom {
    /// No aliases → local; otherwise `custom_model("custom_column", aliases joined by "-", "v1", w)`.
    fn get_scheduling_metadata(&self) -> Result<SchedulingMetadata, SchedulingMetadataError> {
        if self.aliases.is_empty() {
            return Ok(SchedulingMetadata::default_local());
        }
        let weight = self
            .weight
            .unwrap_or_else(|| u32::try_from(self.aliases.len()).unwrap_or(u32::MAX))
            .max(1);
        SchedulingMetadata::custom_model("custom_column", &self.aliases.join("-"), "v1", weight)
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        self.required.clone()
    }

    fn model_aliases(&self) -> Vec<String> {
        self.aliases.clone()
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        (self.f)(CustomCallContext::from_cell(ctx)).await
    }
}

impl fmt::Debug for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custom")
            .field("required", &self.required)
            .field("aliases", &self.aliases)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

/// Makes `n` chat calls per row, `n` drawn from the cell seed in `[min, max]`; the value is the
/// array of reply texts. Call `i` (0-based) sends the rendered prompt followed by ` #i`, with
/// the alias's inference defaults.
#[derive(Debug, Clone)]
pub struct CustomCalls {
    alias: String,
    template: Template,
    options: ChatOptions,
    min: u32,
    max: u32,
    metadata: Result<SchedulingMetadata, SchedulingMetadataError>,
}

impl CustomCalls {
    /// Metadata is `custom_model("custom_calls", alias, "v1", alias cap)`; requires `min <= max`.
    pub fn new(
        models: &ModelRegistry,
        alias: &str,
        prompt: &str,
        min: u32,
        max: u32,
    ) -> Result<Self, GeneratorConfigError> {
        if min > max {
            return Err(GeneratorConfigError::new(
                "min",
                format!("min ({min}) must not exceed max ({max})"),
            ));
        }
        if alias.trim().is_empty() {
            return Err(GeneratorConfigError::new(
                "model_alias",
                "must be non-empty",
            ));
        }
        let metadata = match models.get(alias) {
            Some(def) => SchedulingMetadata::custom_model("custom_calls", alias, "v1", def.cap()),
            None => Err(SchedulingMetadataError::fatal(
                SchedulingMetadataErrorCode::UnknownModelAlias,
                format!("model alias {alias:?} is not registered"),
            )
            .with_diagnostic("alias", alias)),
        };
        let options = ChatOptions {
            inference: models
                .get(alias)
                .map(|m| m.inference.clone())
                .unwrap_or_default(),
            ..ChatOptions::default()
        };
        Ok(Self {
            alias: alias.to_string(),
            template: Template::parse(prompt)?,
            options,
            min,
            max,
            metadata,
        })
    }

    /// How many calls the cell with `seed` makes.
    pub fn calls_for_seed(&self, seed: u64) -> u32 {
        ChaCha8Rng::seed_from_u64(seed).gen_range(self.min..=self.max)
    }
}

#[async_trait]
impl ColumnGenerator for CustomCalls {
    fn get_scheduling_metadata(&self) -> Result<SchedulingMetadata, SchedulingMetadataError> {
        self.metadata.clone()
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        self.template.referenced_columns()
    }

    fn model_aliases(&self) -> Vec<String> {
        vec![self.alias.clone()]
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let prompt = self.template.render(ctx.record)?;
        let n = self.calls_for_seed(ctx.seed);
        let mut replies = Vec::with_capacity(n as usize);
        for i in 0..n {
            let request =
                ChatRequest::new(format!("{prompt} #{i}")).with_options(self.options.clone());
            let reply = ctx.models.chat_request(&self.alias, &request).await?;
            replies.push(Value::String(reply.text));
        }
        Ok(Value::Array(replies))
    }
}
