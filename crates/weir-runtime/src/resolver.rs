//! `TaskSchedulingResolver`: generator `SchedulingMetadata` → scheduler inputs, once per run.
//!
//! The resolver is the only bridge from generator-facing metadata to scheduler-internal
//! `TaskGroupSpec` + `SchedulerResourceRequest`. It resolves every column up front (so a fatal
//! metadata error stops the run before any scheduling), calls each distinct generator instance
//! once, appends the scheduler flow identity (the output column) to the group identity, and
//! records a diagnostic for every metadata error it recovered from through a fallback.

use crate::generators::ColumnGenerator;
use crate::workflow::Workflow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use weir_contracts::{
    ContractError, SchedulerResourceRequest, SchedulingKind, SchedulingMetadata,
    SchedulingMetadataError, SchedulingMetadataErrorCode, TaskGroupKey, TaskGroupSpec,
};

/// Default multiplier of a model group's weight for its admitted limit (reference: 2).
pub const DEFAULT_MODEL_GROUP_LIMIT_MULTIPLIER: u32 = 2;
/// Default upper bound on a model group's admitted limit (reference standalone default: 256).
pub const DEFAULT_MODEL_GROUP_LIMIT_CAP: u32 = 256;

/// Resolver tuning (engine-internal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolverConfig {
    /// `admitted_limit = max(1, min(cap, multiplier × weight))` for model/custom_model groups.
    pub model_group_limit_multiplier: u32,
    /// Upper bound on model/custom_model admitted limits (the scheduler passes its task capacity).
    pub model_group_limit_cap: u32,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            model_group_limit_multiplier: DEFAULT_MODEL_GROUP_LIMIT_MULTIPLIER,
            model_group_limit_cap: DEFAULT_MODEL_GROUP_LIMIT_CAP,
        }
    }
}

/// Scheduler inputs for every task of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTaskScheduling {
    /// Fairness group (metadata identity + output column) with weight and admitted limit.
    pub group: TaskGroupSpec,
    /// Task-stage resources each task holds: `{submission: 1}`.
    pub resource_request: SchedulerResourceRequest,
}

/// A metadata error the resolver recovered from through its fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverDiagnostic {
    /// The column whose generator reported the error.
    pub column: String,
    /// The error code.
    pub code: SchedulingMetadataErrorCode,
    /// The error message.
    pub message: String,
    /// Identity of the fallback metadata used instead.
    pub fallback_identity: Vec<String>,
    /// The error's sanitized diagnostics.
    pub diagnostics: BTreeMap<String, String>,
}

/// Resolution failed before any scheduling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverError {
    /// A generator's metadata error had no fallback.
    Metadata {
        /// The column.
        column: String,
        /// The error.
        error: SchedulingMetadataError,
    },
    /// The resolved group spec was rejected (should not happen with valid metadata).
    Contract {
        /// The column.
        column: String,
        /// The error.
        error: ContractError,
    },
}

impl fmt::Display for ResolverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Metadata { column, error } => write!(f, "column {column:?}: {error}"),
            Self::Contract { column, error } => write!(f, "column {column:?}: {error}"),
        }
    }
}

impl std::error::Error for ResolverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Metadata { error, .. } => Some(error),
            Self::Contract { error, .. } => Some(error),
        }
    }
}

#[derive(Debug, Clone)]
struct ResolvedColumn {
    metadata: SchedulingMetadata,
    scheduling: ResolvedTaskScheduling,
}

/// Per-run cache of resolved scheduling, keyed by output column.
#[derive(Debug, Clone)]
pub struct TaskSchedulingResolver {
    columns: HashMap<String, ResolvedColumn>,
    diagnostics: Vec<ResolverDiagnostic>,
    config: ResolverConfig,
}

impl TaskSchedulingResolver {
    /// Resolves every column of `workflow`.
    pub fn for_workflow(
        workflow: &Workflow,
        config: ResolverConfig,
    ) -> Result<Self, ResolverError> {
        Self::new(
            workflow
                .columns
                .iter()
                .map(|c| (c.name.clone(), Arc::clone(&c.generator))),
            config,
        )
    }

    /// Resolves `(column, generator)` pairs; a generator shared by several columns is asked once.
    pub fn new(
        columns: impl IntoIterator<Item = (String, Arc<dyn ColumnGenerator>)>,
        config: ResolverConfig,
    ) -> Result<Self, ResolverError> {
        // Keyed by the generator's data pointer: one metadata call per distinct instance.
        let mut by_instance: HashMap<*const (), SchedulingMetadata> = HashMap::new();
        // Holds every generator until resolution ends so no address is reused for another one.
        let mut keep_alive: Vec<Arc<dyn ColumnGenerator>> = Vec::new();
        let mut out = Self {
            columns: HashMap::new(),
            diagnostics: Vec::new(),
            config,
        };
        for (column, generator) in columns {
            let ptr = Arc::as_ptr(&generator).cast::<()>();
            let metadata = match by_instance.get(&ptr) {
                Some(m) => m.clone(),
                None => {
                    let m = match generator.get_scheduling_metadata() {
                        Ok(m) => m,
                        Err(error) => out.recover(&column, error)?,
                    };
                    by_instance.insert(ptr, m.clone());
                    keep_alive.push(Arc::clone(&generator));
                    m
                }
            };
            let scheduling =
                out.schedule(&metadata, &column)
                    .map_err(|error| ResolverError::Contract {
                        column: column.clone(),
                        error,
                    })?;
            out.columns.insert(
                column,
                ResolvedColumn {
                    metadata,
                    scheduling,
                },
            );
        }
        Ok(out)
    }

    fn recover(
        &mut self,
        column: &str,
        error: SchedulingMetadataError,
    ) -> Result<SchedulingMetadata, ResolverError> {
        let Some(fallback) = error.fallback.clone() else {
            return Err(ResolverError::Metadata {
                column: column.to_string(),
                error,
            });
        };
        tracing::warn!(
            column,
            code = error.code.as_str(),
            "scheduling metadata fell back: {}",
            error.message
        );
        self.diagnostics.push(ResolverDiagnostic {
            column: column.to_string(),
            code: error.code,
            message: error.message,
            fallback_identity: fallback.identity().to_vec(),
            diagnostics: error.diagnostics,
        });
        Ok(fallback)
    }

    /// Group = metadata identity + flow identity (the output column); weight = metadata weight.
    fn schedule(
        &self,
        metadata: &SchedulingMetadata,
        column: &str,
    ) -> Result<ResolvedTaskScheduling, ContractError> {
        let weight = metadata.weight().max(1);
        let mut identity = metadata.identity().to_vec();
        identity.push(column.to_string());
        let admitted_limit = match metadata.kind() {
            SchedulingKind::Local => None,
            SchedulingKind::Model | SchedulingKind::CustomModel => Some(
                self.config
                    .model_group_limit_cap
                    .min(
                        self.config
                            .model_group_limit_multiplier
                            .saturating_mul(weight),
                    )
                    .max(1),
            ),
        };
        let group = TaskGroupSpec::new(
            TaskGroupKey::new(metadata.kind(), identity),
            weight,
            admitted_limit,
        )?;
        Ok(ResolvedTaskScheduling {
            group,
            resource_request: SchedulerResourceRequest::submission(),
        })
    }

    /// Scheduler inputs for tasks of `column` (cached; no generator call).
    pub fn resolve(&self, column: &str) -> Option<&ResolvedTaskScheduling> {
        self.columns.get(column).map(|c| &c.scheduling)
    }

    /// The metadata `column` resolved to (after any fallback).
    pub fn metadata(&self, column: &str) -> Option<&SchedulingMetadata> {
        self.columns.get(column).map(|c| &c.metadata)
    }

    /// Every fallback taken, in column order.
    pub fn diagnostics(&self) -> &[ResolverDiagnostic] {
        &self.diagnostics
    }

    /// The configuration in use.
    pub fn config(&self) -> ResolverConfig {
        self.config
    }
}
