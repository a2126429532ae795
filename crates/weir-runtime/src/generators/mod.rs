//! The `ColumnGenerator` trait, the contexts generators run in, their typed errors, and built-ins.
//!
//! A generator produces one column: per row (`Strategy::Cell`, [`ColumnGenerator::generate_cell`])
//! or per row group (`Strategy::FullColumn`, [`ColumnGenerator::generate_full_column`]). It
//! declares the columns it reads and its static scheduling metadata; it never sees queues, leases
//! or request admission. Randomness comes only from the per-cell seed in the context, so output
//! does not depend on concurrency or completion order.

mod custom;
mod expression;
mod llm;
mod samplers;
pub mod structured;
mod validator;

pub use custom::{BoxFuture, Custom, CustomCallContext, CustomCalls, CustomFn};
pub use expression::Expression;
pub use llm::{Embedding, LlmJudge, LlmStructured, LlmText};
pub use samplers::{Category, UniformFloat, UniformInt, Uuid};
pub use structured::{JudgeScore, ReplySchema};
pub use validator::Validator;

use crate::model_facade::{ModelCallError, ModelCallErrorKind, ModelFacade};
use crate::template::TemplateError;
use crate::workflow::Strategy;
use async_trait::async_trait;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use weir_contracts::{Fnv64, SchedulingMetadata, SchedulingMetadataError};

/// One row's values by column name.
pub type Record = BTreeMap<String, Value>;

/// Deterministic per-cell seed from (workflow seed, column, global row index).
///
/// The global row index (row-group offset + local row) keeps values independent of the
/// row-group size as well as of scheduling order.
pub fn cell_seed(workflow_seed: u64, column: &str, global_row: u64) -> u64 {
    let mut h = Fnv64::new();
    h.write(&workflow_seed.to_le_bytes());
    h.write(column.as_bytes());
    h.write(&[0]);
    h.write(&global_row.to_le_bytes());
    splitmix64(h.finish())
}

/// Seed for a whole-row-group call: (workflow seed, column, row group).
pub fn batch_seed(workflow_seed: u64, column: &str, row_group: u64) -> u64 {
    let mut h = Fnv64::new();
    h.write(&workflow_seed.to_le_bytes());
    h.write(column.as_bytes());
    h.write(&[1]);
    h.write(&row_group.to_le_bytes());
    splitmix64(h.finish())
}

/// SplitMix64 finalizer: spreads FNV's weak low bits over the whole word.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a cell generator sees for one row.
pub struct CellContext<'a> {
    /// The column being generated.
    pub column: &'a str,
    /// The row's current values (upstream columns are present).
    pub record: &'a Record,
    /// Row group of the row.
    pub row_group: u64,
    /// Row index inside the row group.
    pub row_index: u64,
    /// Deterministic seed for this cell (see [`cell_seed`]).
    pub seed: u64,
    /// Model-call boundary.
    pub models: &'a Arc<dyn ModelFacade>,
}

impl<'a> CellContext<'a> {
    /// Builds a context; `global_row` is the row-group offset plus `row_index`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        column: &'a str,
        record: &'a Record,
        row_group: u64,
        row_index: u64,
        global_row: u64,
        workflow_seed: u64,
        models: &'a Arc<dyn ModelFacade>,
    ) -> Self {
        Self {
            column,
            record,
            row_group,
            row_index,
            seed: cell_seed(workflow_seed, column, global_row),
            models,
        }
    }

    /// A fresh RNG seeded from this cell's seed.
    pub fn rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed)
    }
}

/// One row of a row group as a full-column generator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    /// Row index inside the row group.
    pub row_index: u64,
    /// Deterministic seed for this row's cell of the column (see [`cell_seed`]).
    pub seed: u64,
    /// The row's current values; the generator inserts its column here.
    pub record: Record,
    /// Set by the generator to drop the row (the reason is sanitized text).
    pub drop_reason: Option<String>,
}

/// What a full-column generator sees: the live (not dropped) rows of one row group.
pub struct BatchContext<'a> {
    /// The column being generated.
    pub column: &'a str,
    /// The row group.
    pub row_group: u64,
    /// Deterministic seed for this column and row group (see [`batch_seed`]).
    pub seed: u64,
    /// The live rows, ordered by row index.
    pub rows: &'a mut [BatchRow],
    /// Model-call boundary.
    pub models: &'a Arc<dyn ModelFacade>,
}

impl BatchContext<'_> {
    /// A fresh RNG seeded from the batch seed.
    pub fn rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed)
    }
}

/// Why a retryable failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryableCause {
    /// Provider rate limit.
    RateLimited,
    /// Provider timeout after the call started.
    Timeout,
    /// Provider 5xx.
    ServerError,
    /// Connection failure (no status).
    Connection,
}

/// Coarse class of a generation failure, for the scheduler's retry/drop decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationErrorClass {
    /// Transient provider failure: defer and retry.
    Retryable,
    /// Request admission refused/timed out before a provider call: typed, not a provider timeout.
    Admission,
    /// Cancelled locally.
    Cancelled,
    /// Retrying cannot help: drop the row (or the row group for full-column tasks).
    NonRetryable,
}

/// A generator failure.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationError {
    /// A transient provider failure; carries the source model-call error.
    Retryable {
        /// What kind of transient failure.
        cause: RetryableCause,
        /// The model-call error.
        source: ModelCallError,
    },
    /// Request admission refused or timed out before any provider call started.
    Admission {
        /// The model-call error (kind `admission`).
        source: ModelCallError,
    },
    /// The call was cancelled locally.
    Cancelled {
        /// The model-call error (kind `cancelled`).
        source: ModelCallError,
    },
    /// A non-retryable provider error (4xx, unknown alias, malformed response).
    Provider {
        /// The model-call error.
        source: ModelCallError,
    },
    /// The model answered but the answer is unusable (e.g. no score in a judge reply).
    BadOutput {
        /// Sanitized explanation.
        message: String,
    },
    /// A structured reply (`llm_structured`, `llm_judge`) was not JSON or did not match its
    /// schema, on every attempt the column allows.
    InvalidStructuredOutput {
        /// Sanitized explanation: the attempts and the last problem (where in the reply and
        /// which schema rule, never the reply's content).
        message: String,
    },
    /// Input or output failed validation.
    Validation {
        /// Sanitized explanation.
        message: String,
    },
    /// A template could not be rendered for this row.
    Template(TemplateError),
    /// The scheduler called a strategy the generator does not implement.
    UnsupportedStrategy {
        /// The strategy that was called.
        strategy: Strategy,
    },
}

impl GenerationError {
    /// A bad-output error.
    pub fn bad_output(message: impl Into<String>) -> Self {
        Self::BadOutput {
            message: message.into(),
        }
    }

    /// A validation error.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
        }
    }

    /// The coarse class the scheduler acts on.
    pub fn class(&self) -> GenerationErrorClass {
        match self {
            Self::Retryable { .. } => GenerationErrorClass::Retryable,
            Self::Admission { .. } => GenerationErrorClass::Admission,
            Self::Cancelled { .. } => GenerationErrorClass::Cancelled,
            _ => GenerationErrorClass::NonRetryable,
        }
    }

    /// True for transient provider failures.
    pub fn is_retryable(&self) -> bool {
        self.class() == GenerationErrorClass::Retryable
    }

    /// Snake_case error type for events and metrics (bounded vocabulary).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Retryable { cause, .. } => match cause {
                RetryableCause::RateLimited => "rate_limited",
                RetryableCause::Timeout => "provider_timeout",
                RetryableCause::ServerError => "server_error",
                RetryableCause::Connection => "connection_error",
            },
            Self::Admission { .. } => "request_admission",
            Self::Cancelled { .. } => "cancelled",
            Self::Provider { .. } => "provider_error",
            Self::BadOutput { .. } => "bad_output",
            Self::InvalidStructuredOutput { .. } => "invalid_structured_output",
            Self::Validation { .. } => "validation_failure",
            Self::Template(_) => "template_error",
            Self::UnsupportedStrategy { .. } => "unsupported_strategy",
        }
    }
}

impl From<ModelCallError> for GenerationError {
    fn from(source: ModelCallError) -> Self {
        match &source.kind {
            ModelCallErrorKind::RateLimited { .. } => Self::Retryable {
                cause: RetryableCause::RateLimited,
                source,
            },
            ModelCallErrorKind::ProviderTimeout => Self::Retryable {
                cause: RetryableCause::Timeout,
                source,
            },
            ModelCallErrorKind::ProviderFailure {
                status,
                retryable: true,
            } => Self::Retryable {
                cause: if status.is_some() {
                    RetryableCause::ServerError
                } else {
                    RetryableCause::Connection
                },
                source,
            },
            ModelCallErrorKind::Admission { .. } => Self::Admission { source },
            ModelCallErrorKind::Cancelled => Self::Cancelled { source },
            ModelCallErrorKind::ProviderFailure {
                retryable: false, ..
            }
            | ModelCallErrorKind::UnknownAlias
            | ModelCallErrorKind::MalformedResponse => Self::Provider { source },
        }
    }
}

impl From<TemplateError> for GenerationError {
    fn from(e: TemplateError) -> Self {
        Self::Template(e)
    }
}

impl fmt::Display for GenerationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable { source, .. }
            | Self::Admission { source }
            | Self::Cancelled { source }
            | Self::Provider { source } => write!(f, "{}: {source}", self.error_type()),
            Self::BadOutput { message } => write!(f, "bad model output: {message}"),
            Self::InvalidStructuredOutput { message } => {
                write!(f, "invalid structured output: {message}")
            }
            Self::Validation { message } => write!(f, "validation failed: {message}"),
            Self::Template(e) => write!(f, "{e}"),
            Self::UnsupportedStrategy { strategy } => {
                write!(f, "generator does not support the {strategy} strategy")
            }
        }
    }
}

impl std::error::Error for GenerationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Retryable { source, .. }
            | Self::Admission { source }
            | Self::Cancelled { source }
            | Self::Provider { source } => Some(source),
            Self::Template(e) => Some(e),
            _ => None,
        }
    }
}

/// A built-in generator was configured wrongly; `field` names the bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfigError {
    /// The offending field (`"weights"`, `"low"`, `"template"`, ...).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl GeneratorConfigError {
    /// Builds an error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for GeneratorConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for GeneratorConfigError {}

impl From<TemplateError> for GeneratorConfigError {
    fn from(e: TemplateError) -> Self {
        Self::new("template", e.to_string())
    }
}

/// Produces one column. Implement `generate_cell` for `Strategy::Cell` generators and
/// `generate_full_column` for `Strategy::FullColumn` ones.
#[async_trait]
pub trait ColumnGenerator: Send + Sync {
    /// Static scheduling metadata; the default is `local/("local","default")/1`.
    fn get_scheduling_metadata(&self) -> Result<SchedulingMetadata, SchedulingMetadataError> {
        Ok(SchedulingMetadata::default_local())
    }

    /// Per row or per row group.
    fn strategy(&self) -> Strategy;

    /// Columns this generator reads (they become dependencies).
    fn required_columns(&self) -> Vec<String>;

    /// Model aliases this generator may call (checked against the workflow's models).
    fn model_aliases(&self) -> Vec<String> {
        Vec::new()
    }

    /// True when generation is short, pure CPU work that never waits (built-in samplers,
    /// expressions, validators): the scheduler may then run it inline on its dispatch loop,
    /// after its lease, instead of spawning a worker. Default false — a generator that awaits
    /// anything must keep it false.
    fn runs_inline(&self) -> bool {
        false
    }

    /// Generates one cell.
    async fn generate_cell(&self, _ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        Err(GenerationError::UnsupportedStrategy {
            strategy: Strategy::Cell,
        })
    }

    /// Generates the column for every live row of a row group (writing into `ctx.rows`).
    async fn generate_full_column(
        &self,
        _ctx: &mut BatchContext<'_>,
    ) -> Result<(), GenerationError> {
        Err(GenerationError::UnsupportedStrategy {
            strategy: Strategy::FullColumn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_every_input() {
        let s = cell_seed(1, "a", 0);
        assert_eq!(s, cell_seed(1, "a", 0));
        assert_ne!(s, cell_seed(2, "a", 0));
        assert_ne!(s, cell_seed(1, "b", 0));
        assert_ne!(s, cell_seed(1, "a", 1));
        assert_ne!(batch_seed(1, "a", 0), batch_seed(1, "a", 1));
    }

    #[test]
    fn model_errors_map_to_classes() {
        let e: GenerationError = ModelCallError::rate_limited("m", Some(1.0)).into();
        assert_eq!(e.class(), GenerationErrorClass::Retryable);
        let e: GenerationError = ModelCallError::new(
            "m",
            ModelCallErrorKind::ProviderFailure {
                status: None,
                retryable: true,
            },
            "reset",
        )
        .into();
        assert_eq!(e.error_type(), "connection_error");
        let e: GenerationError = ModelCallError::new(
            "m",
            ModelCallErrorKind::Admission {
                reason: "queue_timeout".into(),
            },
            "",
        )
        .into();
        assert_eq!(e.class(), GenerationErrorClass::Admission);
        assert_eq!(e.error_type(), "request_admission");
        let e: GenerationError = ModelCallError::unknown_alias("m").into();
        assert_eq!(e.class(), GenerationErrorClass::NonRetryable);
        let e: GenerationError = ModelCallError::new(
            "m",
            ModelCallErrorKind::ProviderFailure {
                status: Some(400),
                retryable: false,
            },
            "",
        )
        .into();
        assert!(!e.is_retryable());
    }
}
