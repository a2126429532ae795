//! `ExecutionGraph`: the validated column DAG (topological order, upstream/downstream, roots).
//!
//! Built only by `Workflow::validate`, so every instance is acyclic and names only known columns.
//! Columns are addressed by a dense index (declaration order) so readiness tracking can use
//! vectors instead of maps.

use super::Strategy;
use std::collections::HashMap;
use std::sync::Arc;

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphColumn {
    /// Column name.
    pub name: Arc<str>,
    /// Generation strategy.
    pub strategy: Strategy,
    /// Indices of the columns this one reads, ascending.
    pub upstream: Vec<usize>,
    /// Indices of the columns that read this one, ascending.
    pub downstream: Vec<usize>,
}

/// The validated column DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionGraph {
    columns: Vec<GraphColumn>,
    topo: Vec<usize>,
    index: HashMap<Arc<str>, usize>,
}

impl ExecutionGraph {
    /// Builds from nodes and a topological order (both produced by validation).
    pub(crate) fn from_parts(columns: Vec<GraphColumn>, topo: Vec<usize>) -> Self {
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Self {
            columns,
            topo,
            index,
        }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True when the graph has no columns (never, for a validated workflow).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Column index of `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The node at `index`.
    pub fn column(&self, index: usize) -> Option<&GraphColumn> {
        self.columns.get(index)
    }

    /// All nodes in declaration order.
    pub fn columns(&self) -> &[GraphColumn] {
        &self.columns
    }

    /// Column indices in topological order (ties broken by declaration order).
    pub fn topological_indices(&self) -> &[usize] {
        &self.topo
    }

    /// Column names in topological order.
    pub fn topological_order(&self) -> Vec<&str> {
        self.topo.iter().map(|i| &*self.columns[*i].name).collect()
    }

    /// Names of the columns `name` reads (None for an unknown column).
    pub fn upstream(&self, name: &str) -> Option<Vec<&str>> {
        let c = self.columns.get(self.index_of(name)?)?;
        Some(c.upstream.iter().map(|i| &*self.columns[*i].name).collect())
    }

    /// Names of the columns that read `name` (None for an unknown column).
    pub fn downstream(&self, name: &str) -> Option<Vec<&str>> {
        let c = self.columns.get(self.index_of(name)?)?;
        Some(
            c.downstream
                .iter()
                .map(|i| &*self.columns[*i].name)
                .collect(),
        )
    }

    /// Columns with no upstream, in topological order.
    pub fn root_columns(&self) -> Vec<&str> {
        self.topo
            .iter()
            .filter(|i| self.columns[**i].upstream.is_empty())
            .map(|i| &*self.columns[*i].name)
            .collect()
    }

    /// Strategy of `name`.
    pub fn strategy(&self, name: &str) -> Option<Strategy> {
        Some(self.columns.get(self.index_of(name)?)?.strategy)
    }
}
