//! `SchedulableTask`: one unit of dependency-ready work as the queue and the controller see it.

use std::sync::Arc;
use weir_contracts::{SchedulerResourceRequest, TaskGroupSpec, TaskId};

/// Dependency-ready work: a stable id, the runtime's payload, its fairness group and resources.
///
/// `group` and `resource_request` are `Arc`s because many tasks share one group spec and one
/// request shape; cloning them into leases and views is then a reference-count bump.
#[derive(Debug, Clone)]
pub struct SchedulableTask<P> {
    /// Stable identity; the queue is idempotent by it.
    pub task_id: TaskId,
    /// The runtime's own description of the work (opaque here).
    pub payload: P,
    /// Fairness group and its weight / admitted cap.
    pub group: Arc<TaskGroupSpec>,
    /// Scheduler task-stage resources the task holds while it runs.
    pub resource_request: Arc<SchedulerResourceRequest>,
}

impl<P> SchedulableTask<P> {
    /// Builds a task.
    pub fn new(
        task_id: TaskId,
        payload: P,
        group: Arc<TaskGroupSpec>,
        resource_request: Arc<SchedulerResourceRequest>,
    ) -> Self {
        Self {
            task_id,
            payload,
            group,
            resource_request,
        }
    }
}
