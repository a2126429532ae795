//! `CompletionTracker`: dependency readiness per row group, and the ready frontier it reports.
//!
//! The tracker answers one question — which tasks have every dependency satisfied — and never
//! enqueues, orders or admits work. Readiness is incremental: each (column, row) keeps a count of
//! unmet dependencies, completions decrement the counts of their direct downstream only, and a
//! count reaching zero appends the task to the pending frontier. `ready_frontier()` returns the
//! pending tasks (in readiness order) until the scheduler acknowledges them with
//! `mark_enqueued`. State exists only for admitted, not yet taken row groups.
//!
//! Task shapes: a root cell column gets one `cell` task per row, a root full column one
//! `from_scratch` task, a non-root full column one `batch` task per row group. A dropped row's
//! cells are never made ready; a full-column task treats dropped rows as done, and when every
//! row of a group is dropped its full-column tasks are done without running.

use crate::workflow::{ExecutionGraph, Strategy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use weir_contracts::TaskId;

/// What kind of unit of work a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    /// A root full-column task (no upstream): generates the column for a row group from nothing.
    FromScratch,
    /// One cell.
    Cell,
    /// A non-root full-column task over a row group.
    Batch,
}

impl TaskType {
    /// Snake_case name (also part of the stable task id).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FromScratch => "from_scratch",
            Self::Cell => "cell",
            Self::Batch => "batch",
        }
    }
}

/// One unit of scheduler work: a column's cell, or its whole-row-group task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Task {
    /// Output column.
    pub column: Arc<str>,
    /// Row group.
    pub row_group: u64,
    /// Row inside the row group; `None` for `from_scratch` and `batch` tasks.
    pub row_index: Option<u64>,
    /// Task type.
    pub task_type: TaskType,
}

impl Task {
    /// The stable id: `TaskId::stable(column, row_group, row_index, task_type)`.
    pub fn id(&self) -> TaskId {
        TaskId::stable(
            &self.column,
            self.row_group,
            self.row_index,
            self.task_type.as_str(),
        )
    }
}

/// A dependency-ready task with its stable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyTask {
    /// Stable id (queue and tracker membership key).
    pub id: TaskId,
    /// The task.
    pub task: Task,
}

/// Why a row was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DropCause {
    /// A task of `column` failed without a retry.
    NonRetryableFailure {
        /// The failing column.
        column: String,
        /// Bounded error type (e.g. `bad_output`).
        error_type: String,
    },
    /// A validator rejected the row.
    ValidationFailed {
        /// The validating column.
        column: String,
        /// Sanitized reason.
        reason: String,
    },
    /// Anything else (sanitized text).
    Other {
        /// Sanitized reason.
        reason: String,
    },
}

/// What `mark_complete` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// The task is now complete and its downstream was updated.
    Completed,
    /// It was already complete (idempotent repeat).
    AlreadyComplete,
    /// Its row (or every row of its group) was dropped; nothing changed.
    RowDropped,
}

/// A finished row group handed over for checkpointing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedRowGroup {
    /// The row group.
    pub row_group: u64,
    /// Rows it was admitted with.
    pub rows: u64,
    /// Dropped rows with their causes, by row index.
    pub dropped: BTreeMap<u64, DropCause>,
}

impl CompletedRowGroup {
    /// Rows that were not dropped.
    pub fn surviving_rows(&self) -> u64 {
        self.rows - self.dropped.len() as u64
    }
}

/// A tracker call did not fit the graph or the admitted row groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerError {
    /// The row group is not admitted (or was already taken).
    UnknownRowGroup {
        /// The row group.
        row_group: u64,
    },
    /// `admit_row_group` was called twice for one row group.
    RowGroupAlreadyAdmitted {
        /// The row group.
        row_group: u64,
    },
    /// A row group must have at least one row.
    EmptyRowGroup {
        /// The row group.
        row_group: u64,
    },
    /// The row index is past the row group's size.
    RowOutOfRange {
        /// The row group.
        row_group: u64,
        /// The bad row index.
        row_index: u64,
        /// The row group's size.
        rows: u64,
    },
    /// The column is not in the graph.
    UnknownColumn {
        /// The column.
        column: String,
    },
    /// The task's type/row index does not match the column's strategy and position.
    TaskShapeMismatch {
        /// The column.
        column: String,
        /// The task type given.
        task_type: TaskType,
        /// The column's strategy.
        strategy: Strategy,
    },
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownRowGroup { row_group } => {
                write!(f, "row group {row_group} is not admitted")
            }
            Self::RowGroupAlreadyAdmitted { row_group } => {
                write!(f, "row group {row_group} is already admitted")
            }
            Self::EmptyRowGroup { row_group } => write!(f, "row group {row_group} has no rows"),
            Self::RowOutOfRange {
                row_group,
                row_index,
                rows,
            } => write!(
                f,
                "row {row_index} is out of range for row group {row_group} ({rows} rows)"
            ),
            Self::UnknownColumn { column } => write!(f, "column {column:?} is not in the graph"),
            Self::TaskShapeMismatch {
                column,
                task_type,
                strategy,
            } => write!(
                f,
                "a {} task does not fit column {column:?} ({strategy})",
                task_type.as_str()
            ),
        }
    }
}

impl std::error::Error for TrackerError {}

/// Lifecycle of one trackable unit (a cell, or a full column in one row group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Dependencies not yet met.
    Waiting,
    /// Ready, reported by the frontier, not yet acknowledged.
    Pending,
    /// Acknowledged as enqueued (queued or running).
    Enqueued,
    /// Complete (or, for a full column, done because every row was dropped).
    Done,
}

#[derive(Debug)]
enum ColumnState {
    Cell {
        /// Unmet dependencies per row.
        unmet: Vec<u32>,
        status: Vec<Status>,
    },
    Full {
        /// (cell upstream, row) pairs neither complete nor dropped.
        unmet_cells: u64,
        /// Full-column upstreams not yet complete.
        unmet_full: u32,
        status: Status,
    },
}

#[derive(Debug)]
struct RowGroupState {
    rows: u64,
    dropped: Vec<bool>,
    drop_causes: BTreeMap<u64, DropCause>,
    columns: Vec<ColumnState>,
    /// Units (cells of live rows + full columns) not yet done.
    outstanding: u64,
}

/// Static per-column facts derived from the graph once.
#[derive(Debug)]
struct ColumnInfo {
    name: Arc<str>,
    strategy: Strategy,
    is_root: bool,
    cell_ups: Vec<usize>,
    full_ups: Vec<usize>,
    downstream: Vec<usize>,
}

/// Dependency readiness for the admitted row groups of one run.
#[derive(Debug)]
pub struct CompletionTracker {
    columns: Vec<ColumnInfo>,
    /// Topological order (root tasks are reported in it).
    topo: Vec<usize>,
    index: HashMap<Arc<str>, usize>,
    groups: BTreeMap<u64, RowGroupState>,
    /// Pending frontier in readiness order.
    pending: BTreeMap<u64, ReadyTask>,
    pending_index: HashMap<TaskId, u64>,
    next_seq: u64,
}

impl CompletionTracker {
    /// A tracker over `graph` with no row groups admitted.
    pub fn new(graph: &ExecutionGraph) -> Self {
        let cols = graph.columns();
        let columns: Vec<ColumnInfo> = cols
            .iter()
            .map(|c| {
                let (cell_ups, full_ups) = c
                    .upstream
                    .iter()
                    .partition(|u| cols[**u].strategy == Strategy::Cell);
                ColumnInfo {
                    name: c.name.clone(),
                    strategy: c.strategy,
                    is_root: c.upstream.is_empty(),
                    cell_ups,
                    full_ups,
                    downstream: c.downstream.clone(),
                }
            })
            .collect();
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Self {
            columns,
            topo: graph.topological_indices().to_vec(),
            index,
            groups: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_index: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Admits a row group of `rows` rows; its root tasks join the frontier.
    pub fn admit_row_group(&mut self, row_group: u64, rows: u64) -> Result<(), TrackerError> {
        if rows == 0 {
            return Err(TrackerError::EmptyRowGroup { row_group });
        }
        if self.groups.contains_key(&row_group) {
            return Err(TrackerError::RowGroupAlreadyAdmitted { row_group });
        }
        let n = usize::try_from(rows).map_err(|_| TrackerError::RowOutOfRange {
            row_group,
            row_index: rows,
            rows,
        })?;
        let mut outstanding = 0u64;
        let columns = self
            .columns
            .iter()
            .map(|c| match c.strategy {
                Strategy::Cell => {
                    outstanding += rows;
                    let deps = (c.cell_ups.len() + c.full_ups.len()) as u32;
                    ColumnState::Cell {
                        unmet: vec![deps; n],
                        status: vec![Status::Waiting; n],
                    }
                }
                Strategy::FullColumn => {
                    outstanding += 1;
                    ColumnState::Full {
                        unmet_cells: c.cell_ups.len() as u64 * rows,
                        unmet_full: c.full_ups.len() as u32,
                        status: Status::Waiting,
                    }
                }
            })
            .collect();
        self.groups.insert(
            row_group,
            RowGroupState {
                rows,
                dropped: vec![false; n],
                drop_causes: BTreeMap::new(),
                columns,
                outstanding,
            },
        );
        for pos in 0..self.topo.len() {
            let ci = self.topo[pos];
            if !self.columns[ci].is_root {
                continue;
            }
            match self.columns[ci].strategy {
                Strategy::Cell => {
                    for r in 0..rows {
                        self.try_ready_cell(row_group, ci, r);
                    }
                }
                Strategy::FullColumn => self.try_ready_full(row_group, ci),
            }
        }
        Ok(())
    }

    /// Dependency-ready tasks not yet acknowledged as enqueued, in readiness order.
    pub fn ready_frontier(&self) -> Vec<ReadyTask> {
        self.pending.values().cloned().collect()
    }

    /// Number of tasks in the pending frontier.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Acknowledges that the queue accepted these tasks; unknown or repeated ids are ignored.
    /// Returns how many were acknowledged now.
    pub fn mark_enqueued<'a>(&mut self, task_ids: impl IntoIterator<Item = &'a TaskId>) -> usize {
        let mut acked = 0;
        for id in task_ids {
            let Some(seq) = self.pending_index.remove(id) else {
                continue;
            };
            let Some(ready) = self.pending.remove(&seq) else {
                continue;
            };
            if let Some(status) = self.status_mut(&ready.task) {
                *status = Status::Enqueued;
            }
            acked += 1;
        }
        acked
    }

    /// Puts an enqueued task whose execution was deferred (retryable failure) back on the
    /// frontier. Returns false when it is complete, dropped, or not enqueued.
    pub fn requeue(&mut self, task: &Task) -> Result<bool, TrackerError> {
        let ci = self.check_task(task)?;
        let dropped = self.is_task_dropped(task)?;
        let Some(status) = self.status_mut(task) else {
            return Ok(false);
        };
        if dropped || *status != Status::Enqueued {
            return Ok(false);
        }
        *status = Status::Waiting;
        match task.row_index {
            Some(r) => self.try_ready_cell(task.row_group, ci, r),
            None => self.try_ready_full(task.row_group, ci),
        }
        Ok(true)
    }

    /// Records a task's successful terminal outcome and readies its downstream.
    pub fn mark_complete(&mut self, task: &Task) -> Result<CompleteOutcome, TrackerError> {
        let ci = self.check_task(task)?;
        if self.is_task_dropped(task)? {
            return Ok(CompleteOutcome::RowDropped);
        }
        let rg = task.row_group;
        let previous = {
            let status = self
                .status_mut(task)
                .ok_or(TrackerError::UnknownRowGroup { row_group: rg })?;
            std::mem::replace(status, Status::Done)
        };
        match previous {
            Status::Done => return Ok(CompleteOutcome::AlreadyComplete),
            Status::Pending => self.unpend(task),
            Status::Waiting | Status::Enqueued => {}
        }
        if let Some(g) = self.groups.get_mut(&rg) {
            g.outstanding -= 1;
        }
        // Indexed, not cloned: this runs once per completed task, and a clone allocated.
        let n_down = self.columns[ci].downstream.len();
        match task.row_index {
            Some(r) => {
                for k in 0..n_down {
                    let d = self.columns[ci].downstream[k];
                    match self.columns[d].strategy {
                        Strategy::Cell => {
                            if self.decrement_cell(rg, d, r) {
                                self.try_ready_cell(rg, d, r);
                            }
                        }
                        Strategy::FullColumn => {
                            if let Some(ColumnState::Full { unmet_cells, .. }) =
                                self.column_state_mut(rg, d)
                            {
                                *unmet_cells -= 1;
                            }
                            self.try_ready_full(rg, d);
                        }
                    }
                }
            }
            None => {
                let rows = self.groups.get(&rg).map_or(0, |g| g.rows);
                for k in 0..n_down {
                    let d = self.columns[ci].downstream[k];
                    match self.columns[d].strategy {
                        Strategy::Cell => {
                            for r in 0..rows {
                                if self.decrement_cell(rg, d, r) {
                                    self.try_ready_cell(rg, d, r);
                                }
                            }
                        }
                        Strategy::FullColumn => {
                            if let Some(ColumnState::Full { unmet_full, .. }) =
                                self.column_state_mut(rg, d)
                            {
                                *unmet_full -= 1;
                            }
                            self.try_ready_full(rg, d);
                        }
                    }
                }
            }
        }
        Ok(CompleteOutcome::Completed)
    }

    /// Records a non-retryable failure: a cell drops its row, a full-column task its whole group.
    /// Returns how many rows this call newly dropped (0 when they were dropped already), so a
    /// caller can count drops when they happen, not only when the group is written.
    pub fn mark_failed(&mut self, task: &Task, cause: DropCause) -> Result<u64, TrackerError> {
        self.check_task(task)?;
        match task.row_index {
            Some(r) => self.drop_row(task.row_group, r, cause).map(u64::from),
            None => self.drop_row_group(task.row_group, cause),
        }
    }

    /// Drops every live row of a row group; returns how many rows were newly dropped.
    pub fn drop_row_group(
        &mut self,
        row_group: u64,
        cause: DropCause,
    ) -> Result<u64, TrackerError> {
        let rows = self
            .groups
            .get(&row_group)
            .ok_or(TrackerError::UnknownRowGroup { row_group })?
            .rows;
        let mut newly = 0;
        for r in 0..rows {
            newly += u64::from(self.drop_row(row_group, r, cause.clone())?);
        }
        Ok(newly)
    }

    /// Drops one row: its not-yet-enqueued cells leave the frontier, its downstream cells never
    /// become ready, and full-column tasks stop waiting for it. Returns false if already dropped.
    pub fn drop_row(
        &mut self,
        row_group: u64,
        row_index: u64,
        cause: DropCause,
    ) -> Result<bool, TrackerError> {
        let g = self
            .groups
            .get_mut(&row_group)
            .ok_or(TrackerError::UnknownRowGroup { row_group })?;
        if row_index >= g.rows {
            return Err(TrackerError::RowOutOfRange {
                row_group,
                row_index,
                rows: g.rows,
            });
        }
        let r = row_index as usize;
        if g.dropped[r] {
            return Ok(false);
        }
        g.dropped[r] = true;
        g.drop_causes.insert(row_index, cause);
        let all_dropped = g.drop_causes.len() as u64 == g.rows;
        // Cells of this row: account as done, withdraw pending ones from the frontier.
        let mut withdrawn: Vec<usize> = Vec::new();
        let mut done_cells: Vec<bool> = vec![false; self.columns.len()];
        for (ci, col) in g.columns.iter_mut().enumerate() {
            if let ColumnState::Cell { status, .. } = col {
                match status[r] {
                    Status::Done => done_cells[ci] = true,
                    Status::Pending => {
                        withdrawn.push(ci);
                        g.outstanding -= 1;
                    }
                    Status::Waiting | Status::Enqueued => g.outstanding -= 1,
                }
            }
        }
        // Full columns stop waiting for this row's unfinished cell upstreams.
        for (ci, info) in self.columns.iter().enumerate() {
            if let ColumnState::Full { unmet_cells, .. } = &mut g.columns[ci] {
                let missing = info.cell_ups.iter().filter(|u| !done_cells[**u]).count() as u64;
                *unmet_cells -= missing;
            }
        }
        let mut withdrawn_full: Vec<usize> = Vec::new();
        if all_dropped {
            for (ci, col) in g.columns.iter_mut().enumerate() {
                if let ColumnState::Full { status, .. } = col {
                    if *status != Status::Done {
                        if *status == Status::Pending {
                            withdrawn_full.push(ci);
                        }
                        *status = Status::Done;
                        g.outstanding -= 1;
                    }
                }
            }
        }
        for ci in withdrawn {
            let task = self.cell_task(ci, row_group, row_index);
            self.unpend(&task);
        }
        for ci in withdrawn_full {
            let task = self.full_task(ci, row_group);
            self.unpend(&task);
        }
        if !all_dropped {
            for pos in 0..self.topo.len() {
                let ci = self.topo[pos];
                if self.columns[ci].strategy == Strategy::FullColumn {
                    self.try_ready_full(row_group, ci);
                }
            }
        }
        Ok(true)
    }

    /// True when every live row has every column and every full column is done.
    pub fn row_group_complete(&self, row_group: u64) -> bool {
        self.groups
            .get(&row_group)
            .is_some_and(|g| g.outstanding == 0)
    }

    /// Whether a row is dropped (None if the row group is not admitted or the row is out of range).
    pub fn is_dropped(&self, row_group: u64, row_index: u64) -> Option<bool> {
        let g = self.groups.get(&row_group)?;
        g.dropped.get(usize::try_from(row_index).ok()?).copied()
    }

    /// Admitted row groups still held by the tracker, ascending.
    pub fn live_row_groups(&self) -> Vec<u64> {
        self.groups.keys().copied().collect()
    }

    /// Removes a complete row group's state (freeing its memory) and returns its summary;
    /// `Ok(None)` if it is not complete yet.
    pub fn take_completed_row_group(
        &mut self,
        row_group: u64,
    ) -> Result<Option<CompletedRowGroup>, TrackerError> {
        let g = self
            .groups
            .get(&row_group)
            .ok_or(TrackerError::UnknownRowGroup { row_group })?;
        if g.outstanding != 0 {
            return Ok(None);
        }
        let g = self
            .groups
            .remove(&row_group)
            .ok_or(TrackerError::UnknownRowGroup { row_group })?;
        Ok(Some(CompletedRowGroup {
            row_group,
            rows: g.rows,
            dropped: g.drop_causes,
        }))
    }

    // ---- internals -------------------------------------------------------------------------

    fn check_task(&self, task: &Task) -> Result<usize, TrackerError> {
        let ci = *self
            .index
            .get(&task.column)
            .ok_or_else(|| TrackerError::UnknownColumn {
                column: task.column.to_string(),
            })?;
        let info = &self.columns[ci];
        let expected = match info.strategy {
            Strategy::Cell => TaskType::Cell,
            Strategy::FullColumn if info.is_root => TaskType::FromScratch,
            Strategy::FullColumn => TaskType::Batch,
        };
        if task.task_type != expected || task.row_index.is_some() != (expected == TaskType::Cell) {
            return Err(TrackerError::TaskShapeMismatch {
                column: task.column.to_string(),
                task_type: task.task_type,
                strategy: info.strategy,
            });
        }
        let g = self
            .groups
            .get(&task.row_group)
            .ok_or(TrackerError::UnknownRowGroup {
                row_group: task.row_group,
            })?;
        if let Some(r) = task.row_index {
            if r >= g.rows {
                return Err(TrackerError::RowOutOfRange {
                    row_group: task.row_group,
                    row_index: r,
                    rows: g.rows,
                });
            }
        }
        Ok(ci)
    }

    /// A cell task on a dropped row, or a full-column task of a fully dropped group.
    fn is_task_dropped(&self, task: &Task) -> Result<bool, TrackerError> {
        let g = self
            .groups
            .get(&task.row_group)
            .ok_or(TrackerError::UnknownRowGroup {
                row_group: task.row_group,
            })?;
        Ok(match task.row_index {
            Some(r) => g.dropped[r as usize],
            None => g.drop_causes.len() as u64 == g.rows,
        })
    }

    fn column_state_mut(&mut self, rg: u64, ci: usize) -> Option<&mut ColumnState> {
        self.groups.get_mut(&rg)?.columns.get_mut(ci)
    }

    fn status_mut(&mut self, task: &Task) -> Option<&mut Status> {
        let ci = *self.index.get(&task.column)?;
        match self.column_state_mut(task.row_group, ci)? {
            ColumnState::Cell { status, .. } => {
                status.get_mut(usize::try_from(task.row_index?).ok()?)
            }
            ColumnState::Full { status, .. } => Some(status),
        }
    }

    /// Decrements a cell's unmet count; true when it reached zero.
    fn decrement_cell(&mut self, rg: u64, ci: usize, r: u64) -> bool {
        match self.column_state_mut(rg, ci) {
            Some(ColumnState::Cell { unmet, .. }) => {
                let u = &mut unmet[r as usize];
                *u = u.saturating_sub(1);
                *u == 0
            }
            _ => false,
        }
    }

    fn try_ready_cell(&mut self, rg: u64, ci: usize, r: u64) {
        let Some(g) = self.groups.get_mut(&rg) else {
            return;
        };
        if g.dropped[r as usize] {
            return;
        }
        if let ColumnState::Cell { unmet, status } = &mut g.columns[ci] {
            if unmet[r as usize] == 0 && status[r as usize] == Status::Waiting {
                status[r as usize] = Status::Pending;
                let task = self.cell_task(ci, rg, r);
                self.push_pending(task);
            }
        }
    }

    fn try_ready_full(&mut self, rg: u64, ci: usize) {
        let Some(g) = self.groups.get_mut(&rg) else {
            return;
        };
        if g.drop_causes.len() as u64 == g.rows {
            return;
        }
        if let ColumnState::Full {
            unmet_cells,
            unmet_full,
            status,
        } = &mut g.columns[ci]
        {
            if *unmet_cells == 0 && *unmet_full == 0 && *status == Status::Waiting {
                *status = Status::Pending;
                let task = self.full_task(ci, rg);
                self.push_pending(task);
            }
        }
    }

    fn cell_task(&self, ci: usize, rg: u64, r: u64) -> Task {
        Task {
            column: self.columns[ci].name.clone(),
            row_group: rg,
            row_index: Some(r),
            task_type: TaskType::Cell,
        }
    }

    fn full_task(&self, ci: usize, rg: u64) -> Task {
        Task {
            column: self.columns[ci].name.clone(),
            row_group: rg,
            row_index: None,
            task_type: if self.columns[ci].is_root {
                TaskType::FromScratch
            } else {
                TaskType::Batch
            },
        }
    }

    fn push_pending(&mut self, task: Task) {
        let id = task.id();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending_index.insert(id.clone(), seq);
        self.pending.insert(seq, ReadyTask { id, task });
    }

    fn unpend(&mut self, task: &Task) {
        if let Some(seq) = self.pending_index.remove(&task.id()) {
            self.pending.remove(&seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generators::{Expression, UniformInt, Validator};
    use crate::workflow::{ColumnSpec, Workflow};
    use std::sync::Arc as StdArc;

    fn graph() -> ExecutionGraph {
        Workflow::new("t", 4, 1)
            .with_buffer_size(2)
            .with_column(ColumnSpec::new(
                "a",
                StdArc::new(UniformInt::new(0, 9).unwrap()),
            ))
            .with_column(ColumnSpec::new(
                "b",
                StdArc::new(Expression::new("{{ a }}").unwrap()),
            ))
            .with_column(ColumnSpec::new(
                "v",
                StdArc::new(Validator::new(["b"]).unwrap()),
            ))
            .validate()
            .unwrap()
    }

    #[test]
    fn outstanding_counts_reach_zero() {
        let mut t = CompletionTracker::new(&graph());
        t.admit_row_group(0, 2).unwrap();
        let mut steps = 0;
        while !t.row_group_complete(0) {
            let f = t.ready_frontier();
            assert!(!f.is_empty(), "stalled");
            t.mark_enqueued(f.iter().map(|r| &r.id));
            for r in f {
                assert_eq!(
                    t.mark_complete(&r.task).unwrap(),
                    CompleteOutcome::Completed
                );
            }
            steps += 1;
        }
        assert_eq!(steps, 3);
        assert_eq!(
            t.take_completed_row_group(0)
                .unwrap()
                .unwrap()
                .surviving_rows(),
            2
        );
        assert!(t.live_row_groups().is_empty());
    }

    #[test]
    fn shape_errors() {
        let mut t = CompletionTracker::new(&graph());
        t.admit_row_group(0, 2).unwrap();
        let bad = Task {
            column: "v".into(),
            row_group: 0,
            row_index: Some(0),
            task_type: TaskType::Cell,
        };
        assert!(matches!(
            t.mark_complete(&bad),
            Err(TrackerError::TaskShapeMismatch { .. })
        ));
        assert_eq!(
            t.admit_row_group(0, 2),
            Err(TrackerError::RowGroupAlreadyAdmitted { row_group: 0 })
        );
        assert_eq!(
            t.admit_row_group(1, 0),
            Err(TrackerError::EmptyRowGroup { row_group: 1 })
        );
    }
}
