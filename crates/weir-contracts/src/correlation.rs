//! `RuntimeCorrelation`: the primitive runtime context that joins scheduler and request timelines.

use crate::ids::TaskExecutionId;
use serde::{Deserialize, Serialize};

/// Primitive runtime context captured into events when they are built (never read later).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuntimeCorrelation {
    /// The run.
    pub run_id: String,
    /// Row group being processed.
    pub row_group: Option<u64>,
    /// Output column of the task.
    pub task_column: Option<String>,
    /// Task type (`from_scratch`, `cell`, `batch`, ...).
    pub task_type: Option<String>,
    /// Scheduling group kind (`local`, `model`, `custom_model`).
    pub scheduling_group_kind: Option<String>,
    /// 16-hex hash of the scheduling group identity.
    pub scheduling_group_identity_hash: Option<String>,
    /// The task execution this context belongs to.
    pub task_execution_id: Option<TaskExecutionId>,
}

impl RuntimeCorrelation {
    /// A run-level correlation (only `run_id` set).
    pub fn for_run(run_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            ..Self::default()
        }
    }
}
