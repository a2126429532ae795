//! The workflow model: columns, generators, model aliases, row-group sizing, and its validation.
//!
//! A [`Workflow`] is the Rust shape of a dataset recipe. [`Workflow::validate`] checks it and
//! produces the [`ExecutionGraph`] the runtime reads; every failure is a typed [`WorkflowError`]
//! naming the offending field, column or alias. Column dependencies are the union of the explicit
//! `depends_on` list and the columns the generator reads (`required_columns`, e.g. template refs).

mod graph;
mod models;

pub use graph::{ExecutionGraph, GraphColumn};
pub use models::{ModelAlias, ModelRateLimits, ModelRegistry};

use crate::generators::ColumnGenerator;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

/// How a column is generated.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// One generator call per row.
    Cell,
    /// One generator call per row group.
    FullColumn,
}

impl Strategy {
    /// Snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cell => "cell",
            Self::FullColumn => "full_column",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One output column: its name, explicit dependencies, strategy and generator.
#[derive(Clone)]
pub struct ColumnSpec {
    /// Column name (unique in the workflow).
    pub name: String,
    /// Explicit dependencies, in addition to the generator's `required_columns`.
    pub depends_on: Vec<String>,
    /// Generation strategy; must match the generator's.
    pub strategy: Strategy,
    /// The generator producing this column.
    pub generator: Arc<dyn ColumnGenerator>,
}

impl ColumnSpec {
    /// A column taking its strategy from the generator.
    pub fn new(name: impl Into<String>, generator: Arc<dyn ColumnGenerator>) -> Self {
        Self {
            name: name.into(),
            depends_on: Vec::new(),
            strategy: generator.strategy(),
            generator,
        }
    }

    /// Adds explicit dependencies.
    pub fn depends_on<S: Into<String>>(mut self, deps: impl IntoIterator<Item = S>) -> Self {
        self.depends_on.extend(deps.into_iter().map(Into::into));
        self
    }

    /// Explicit dependencies plus the generator's required columns, de-duplicated, in order.
    pub fn dependencies(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in self
            .depends_on
            .iter()
            .cloned()
            .chain(self.generator.required_columns())
        {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }
}

impl fmt::Debug for ColumnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColumnSpec")
            .field("name", &self.name)
            .field("depends_on", &self.depends_on)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

/// Default rows per row group (the reference's `buffer_size` default).
pub const DEFAULT_BUFFER_SIZE: u64 = 1000;
/// Default number of row groups in flight at once.
pub const DEFAULT_MAX_CONCURRENT_ROW_GROUPS: u32 = 3;

/// A dataset recipe: how many records, which columns, which models.
///
/// ```
/// use std::sync::Arc;
/// use weir_runtime::generators::{Category, LlmText};
/// use weir_runtime::workflow::{ColumnSpec, ModelAlias, Workflow};
///
/// let wf = Workflow::new("reviews", 1_000, 42)
///     .with_buffer_size(100)
///     .with_model(ModelAlias::new("writer", "sim", "sim-large", 16));
/// let models = wf.model_registry();
/// let wf = wf
///     .with_column(ColumnSpec::new("topic", Arc::new(Category::new(["books", "films"])?)))
///     .with_column(ColumnSpec::new(
///         "review",
///         Arc::new(LlmText::new(&models, "writer", "Review some {{ topic }}.")?),
///     ));
/// let graph = wf.validate()?;
/// assert_eq!(graph.topological_order(), ["topic", "review"]);
/// assert_eq!(graph.root_columns(), ["topic"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Workflow name (for reports).
    pub name: String,
    /// Number of records to generate (≥ 1).
    pub records: u64,
    /// Seed for every sampler; with the same seed the output is the same.
    pub seed: u64,
    /// Rows per row group (≥ 1).
    pub buffer_size: u64,
    /// Row groups in flight at once (≥ 1).
    pub max_concurrent_row_groups: u32,
    /// Output columns, in declaration order.
    pub columns: Vec<ColumnSpec>,
    /// Model aliases generators may call.
    pub models: Vec<ModelAlias>,
}

/// Why a workflow is invalid; each variant names the field, column or alias at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowError {
    /// `records` is 0.
    ZeroRecords,
    /// `buffer_size` is 0.
    ZeroBufferSize,
    /// `max_concurrent_row_groups` is 0.
    ZeroMaxConcurrentRowGroups,
    /// `columns` is empty.
    NoColumns,
    /// A column has an empty name.
    EmptyColumnName {
        /// Position in `columns`.
        position: usize,
    },
    /// Two columns share a name.
    DuplicateColumn {
        /// The repeated name.
        column: String,
    },
    /// Two model definitions share an alias.
    DuplicateModelAlias {
        /// The repeated alias.
        alias: String,
    },
    /// A generator uses a model alias that `models` does not define.
    UnknownModelAlias {
        /// The column whose generator uses it.
        column: String,
        /// The unknown alias.
        alias: String,
    },
    /// A column depends on (or its template references) a column that does not exist.
    UnknownColumn {
        /// The column holding the reference.
        column: String,
        /// The unknown name.
        reference: String,
    },
    /// The column's declared strategy differs from its generator's.
    StrategyMismatch {
        /// The column.
        column: String,
        /// The declared strategy.
        declared: Strategy,
        /// The generator's strategy.
        generator: Strategy,
    },
    /// Dependencies form a cycle; `columns[i]` reads `columns[i+1]`, and the last reads the first.
    Cycle {
        /// The columns on the cycle.
        columns: Vec<String>,
    },
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroRecords => f.write_str("records: must be at least 1"),
            Self::ZeroBufferSize => f.write_str("buffer_size: must be at least 1"),
            Self::ZeroMaxConcurrentRowGroups => {
                f.write_str("max_concurrent_row_groups: must be at least 1")
            }
            Self::NoColumns => f.write_str("columns: a workflow needs at least one column"),
            Self::EmptyColumnName { position } => {
                write!(f, "columns[{position}].name: must be non-empty")
            }
            Self::DuplicateColumn { column } => write!(f, "column {column:?} is defined twice"),
            Self::DuplicateModelAlias { alias } => {
                write!(f, "model alias {alias:?} is defined twice")
            }
            Self::UnknownModelAlias { column, alias } => {
                write!(f, "column {column:?} uses unknown model alias {alias:?}")
            }
            Self::UnknownColumn { column, reference } => {
                write!(
                    f,
                    "column {column:?} references unknown column {reference:?}"
                )
            }
            Self::StrategyMismatch {
                column,
                declared,
                generator,
            } => write!(
                f,
                "column {column:?} is declared {declared} but its generator is {generator}"
            ),
            Self::Cycle { columns } => {
                write!(f, "dependency cycle: {}", columns.join(" -> "))?;
                if let Some(first) = columns.first() {
                    write!(f, " -> {first}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for WorkflowError {}

impl Workflow {
    /// A workflow with default row-group sizing, no columns and no models.
    pub fn new(name: impl Into<String>, records: u64, seed: u64) -> Self {
        Self {
            name: name.into(),
            records,
            seed,
            buffer_size: DEFAULT_BUFFER_SIZE,
            max_concurrent_row_groups: DEFAULT_MAX_CONCURRENT_ROW_GROUPS,
            columns: Vec::new(),
            models: Vec::new(),
        }
    }

    /// Sets the row-group size.
    pub fn with_buffer_size(mut self, buffer_size: u64) -> Self {
        self.buffer_size = buffer_size;
        self
    }

    /// Sets how many row groups may be in flight.
    pub fn with_max_concurrent_row_groups(mut self, n: u32) -> Self {
        self.max_concurrent_row_groups = n;
        self
    }

    /// Adds a model alias.
    pub fn with_model(mut self, model: ModelAlias) -> Self {
        self.models.push(model);
        self
    }

    /// Adds a column.
    pub fn with_column(mut self, column: ColumnSpec) -> Self {
        self.columns.push(column);
        self
    }

    /// A registry over `models` (hand it to model-backed generators at construction).
    pub fn model_registry(&self) -> ModelRegistry {
        ModelRegistry::new(self.models.iter().cloned())
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Number of row groups: `ceil(records / buffer_size)` (0 if `buffer_size` is 0).
    pub fn row_group_count(&self) -> u64 {
        if self.buffer_size == 0 {
            return 0;
        }
        self.records.div_ceil(self.buffer_size)
    }

    /// Rows in row group `rg` (all full except possibly the last; 0 past the end).
    pub fn row_group_size(&self, rg: u64) -> u64 {
        let start = rg.saturating_mul(self.buffer_size);
        self.records.saturating_sub(start).min(self.buffer_size)
    }

    /// Global index of the first row of row group `rg`.
    pub fn row_offset(&self, rg: u64) -> u64 {
        rg.saturating_mul(self.buffer_size)
    }

    /// Checks the workflow and builds its execution graph.
    pub fn validate(&self) -> Result<ExecutionGraph, WorkflowError> {
        if self.records == 0 {
            return Err(WorkflowError::ZeroRecords);
        }
        if self.buffer_size == 0 {
            return Err(WorkflowError::ZeroBufferSize);
        }
        if self.max_concurrent_row_groups == 0 {
            return Err(WorkflowError::ZeroMaxConcurrentRowGroups);
        }
        if self.columns.is_empty() {
            return Err(WorkflowError::NoColumns);
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, c) in self.columns.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(WorkflowError::EmptyColumnName { position: i });
            }
            if index.insert(c.name.as_str(), i).is_some() {
                return Err(WorkflowError::DuplicateColumn {
                    column: c.name.clone(),
                });
            }
        }
        let mut aliases: BTreeSet<&str> = BTreeSet::new();
        for m in &self.models {
            if !aliases.insert(m.alias.as_str()) {
                return Err(WorkflowError::DuplicateModelAlias {
                    alias: m.alias.clone(),
                });
            }
        }
        let mut upstream: Vec<Vec<usize>> = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let generator_strategy = c.generator.strategy();
            if generator_strategy != c.strategy {
                return Err(WorkflowError::StrategyMismatch {
                    column: c.name.clone(),
                    declared: c.strategy,
                    generator: generator_strategy,
                });
            }
            for alias in c.generator.model_aliases() {
                if !aliases.contains(alias.as_str()) {
                    return Err(WorkflowError::UnknownModelAlias {
                        column: c.name.clone(),
                        alias,
                    });
                }
            }
            let mut ups = Vec::new();
            for dep in c.dependencies() {
                let i = *index
                    .get(dep.as_str())
                    .ok_or_else(|| WorkflowError::UnknownColumn {
                        column: c.name.clone(),
                        reference: dep.clone(),
                    })?;
                ups.push(i);
            }
            ups.sort_unstable();
            ups.dedup();
            upstream.push(ups);
        }
        let topo = topological_order(&upstream).map_err(|cycle| WorkflowError::Cycle {
            columns: cycle
                .into_iter()
                .map(|i| self.columns[i].name.clone())
                .collect(),
        })?;
        let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); self.columns.len()];
        for (i, ups) in upstream.iter().enumerate() {
            for u in ups {
                downstream[*u].push(i);
            }
        }
        let nodes = self
            .columns
            .iter()
            .zip(upstream)
            .zip(downstream)
            .map(|((c, upstream), downstream)| GraphColumn {
                name: Arc::from(c.name.as_str()),
                strategy: c.strategy,
                upstream,
                downstream,
            })
            .collect();
        Ok(ExecutionGraph::from_parts(nodes, topo))
    }
}

/// Kahn's algorithm, smallest declaration index first; on failure returns one cycle.
fn topological_order(upstream: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = upstream.len();
    let mut unmet: Vec<usize> = upstream.iter().map(Vec::len).collect();
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ups) in upstream.iter().enumerate() {
        for u in ups {
            downstream[*u].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|i| unmet[*i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for d in &downstream[i] {
            unmet[*d] -= 1;
            if unmet[*d] == 0 {
                ready.insert(*d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every node left over has an unmet upstream that is also left over: walk upstream edges
    // until a node repeats; the repeated stretch is a cycle.
    let left: Vec<bool> = (0..n).map(|i| unmet[i] > 0).collect();
    let start = (0..n).find(|i| left[*i]).unwrap_or(0);
    let mut path: Vec<usize> = Vec::new();
    let mut pos: HashMap<usize, usize> = HashMap::new();
    let mut v = start;
    loop {
        if let Some(p) = pos.get(&v) {
            let mut cycle = path[*p..].to_vec();
            let min_at = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| **c)
                .map(|(i, _)| i)
                .unwrap_or(0);
            cycle.rotate_left(min_at);
            return Err(cycle);
        }
        pos.insert(v, path.len());
        path.push(v);
        match upstream[v].iter().find(|u| left[**u]) {
            Some(u) => v = *u,
            None => return Err(path),
        }
    }
}
