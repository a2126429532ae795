//! Task admission outcomes: `TaskAdmissionLease`, `TaskAdmissionDenied`, `TaskAdmissionDecision`.

use crate::policy::PolicyDetail;
use std::sync::Arc;
use weir_contracts::{
    ControllerGeneration, LeaseId, SchedulerResourceKey, TaskAdmissionDenyReason,
    TaskAdmissionSnapshot, TaskGroupSpec, TaskId,
};

/// Proof that a task holds scheduler resources; release exactly this lease on every terminal path.
///
/// Only a controller makes leases (fields are private), so a lease whose id is active is genuine.
/// The lease names its task by id; the group and resources it holds live in the issuing
/// controller's active-lease record ([`crate::TaskAdmissionController::lease_group`],
/// [`crate::TaskAdmissionController::lease_resources`]), so making, moving and dropping a lease
/// does no reference counting.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskAdmissionLease {
    pub(crate) lease_id: LeaseId,
    pub(crate) task_id: TaskId,
    pub(crate) acquired_at: f64,
    pub(crate) borrowed: Vec<(SchedulerResourceKey, u32)>,
    /// Index of the lease's record in the issuing controller's active-lease slab.
    pub(crate) active_slot: u32,
}

impl TaskAdmissionLease {
    /// Unique id: the issuing controller's generation plus its counter.
    pub fn lease_id(&self) -> LeaseId {
        self.lease_id
    }

    /// Generation of the issuing controller.
    pub fn controller_generation(&self) -> ControllerGeneration {
        self.lease_id.generation
    }

    /// The admitted task.
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }

    /// Monotonic seconds (controller clock) at acquisition.
    pub fn acquired_at(&self) -> f64 {
        self.acquired_at
    }

    /// Units admitted above strict share under bounded borrow (empty otherwise).
    pub fn borrowed(&self) -> &[(SchedulerResourceKey, u32)] {
        &self.borrowed
    }
}

/// A typed denial: the candidate, why, when it may change, and (optionally) a ledger snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskAdmissionDenied {
    /// The denied task.
    pub task_id: TaskId,
    /// Its group.
    pub group: Arc<TaskGroupSpec>,
    /// Why.
    pub reason: TaskAdmissionDenyReason,
    /// Monotonic seconds (controller clock) after which the decision may change, when known.
    pub available_after: Option<f64>,
    /// Typed detail (render with [`PolicyDetail::diagnostics`]).
    pub detail: PolicyDetail,
    /// Ledger snapshot at denial (only when `snapshot_on_denial` is configured).
    pub snapshot: Option<Box<TaskAdmissionSnapshot>>,
}

/// Outcome of `try_acquire`: a lease or a typed denial.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskAdmissionDecision {
    /// Admitted.
    Lease(TaskAdmissionLease),
    /// Not admitted now. Boxed: the lease is the hot variant, and a 128-byte enum would be
    /// copied on every admission.
    Denied(Box<TaskAdmissionDenied>),
}

impl TaskAdmissionDecision {
    /// The lease, if admitted.
    pub fn into_lease(self) -> Option<TaskAdmissionLease> {
        match self {
            Self::Lease(l) => Some(l),
            Self::Denied(_) => None,
        }
    }

    /// The denial, if denied.
    pub fn denied(&self) -> Option<&TaskAdmissionDenied> {
        match self {
            Self::Lease(_) => None,
            Self::Denied(d) => Some(d),
        }
    }

    /// True when admitted.
    pub fn is_lease(&self) -> bool {
        matches!(self, Self::Lease(_))
    }
}
