//! `ColumnInfo`: what the scheduler needs per column, resolved once per run.

use crate::generators::ColumnGenerator;
use crate::resolver::TaskSchedulingResolver;
use crate::workflow::{ExecutionGraph, Workflow};
use std::sync::Arc;
use weir_contracts::{
    identity_hash, SchedulerResourceRequest, SchedulingKind, SchedulingMetadata, TaskGroupSpec,
};

/// Per-column scheduling facts, resolved once per run.
pub(crate) struct ColumnInfo {
    pub name: Arc<str>,
    pub generator: Arc<dyn ColumnGenerator>,
    pub group: Arc<TaskGroupSpec>,
    pub request: Arc<SchedulerResourceRequest>,
    pub metadata: SchedulingMetadata,
    pub kind: SchedulingKind,
    pub identity_hash: Arc<str>,
    /// Cheap local work runs inline on the dispatch loop (after its lease): no spawn, no copy.
    pub inline: bool,
    /// Model aliases the generator may call (for failure reports and the circuit breaker).
    pub models: Vec<String>,
    /// True when the column's tasks are model calls (their outcomes feed early shutdown).
    pub model_backed: bool,
}

impl ColumnInfo {
    /// The one model this column calls, when it calls exactly one.
    pub fn single_model(&self) -> Option<&str> {
        match self.models.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// Resolves every column of `workflow` in topological order.
pub(crate) fn resolve_columns(
    workflow: &Workflow,
    graph: &ExecutionGraph,
    resolver: &TaskSchedulingResolver,
    inline_local: bool,
) -> Result<Vec<ColumnInfo>, String> {
    let mut out = Vec::with_capacity(graph.len());
    for name in graph.topological_order() {
        let spec = workflow
            .column(name)
            .ok_or_else(|| format!("column {name:?} is in the graph but not the workflow"))?;
        let resolved = resolver
            .resolve(name)
            .ok_or_else(|| format!("column {name:?} has no resolved scheduling"))?;
        let metadata = resolver
            .metadata(name)
            .cloned()
            .unwrap_or_else(SchedulingMetadata::default_local);
        let kind = metadata.kind();
        let mut models = spec.generator.model_aliases();
        models.sort();
        models.dedup();
        out.push(ColumnInfo {
            model_backed: kind != SchedulingKind::Local || !models.is_empty(),
            models,
            name: Arc::from(name),
            generator: spec.generator.clone(),
            group: Arc::new(resolved.group.clone()),
            request: Arc::new(resolved.resource_request.clone()),
            identity_hash: Arc::from(identity_hash(resolved.group.key.identity.as_ref())),
            inline: inline_local && kind == SchedulingKind::Local && spec.generator.runs_inline(),
            metadata,
            kind,
        });
    }
    Ok(out)
}
