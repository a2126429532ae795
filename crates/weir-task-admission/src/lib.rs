//! weir's task admission: the weighted fair ready queue, the task lease ledger and its policies.
//!
//! [`FairTaskQueue`] owns ready-work membership and order (weighted start-time fair queueing
//! across task groups, FIFO inside a group). [`TaskAdmissionController`] owns scheduler-resource
//! leases and asks a [`TaskAdmissionPolicy`] ([`StrictFairTaskAdmissionPolicy`] or
//! [`BoundedBorrowTaskAdmissionPolicy`]) whether a candidate may run. The scheduler couples them
//! in one dispatch step: `select_next → try_acquire → commit`, releasing the lease if the
//! commit finds the selection stale.
//!
//! # Using it alone
//!
//! The crate needs no async runtime. Its types come from `weir-contracts` (keys, ids, metadata,
//! snapshots), so depend on both:
//!
//! ```toml
//! [dependencies]
//! weir-task-admission = { path = "…/crates/weir-task-admission" }
//! weir-contracts = { path = "…/crates/weir-contracts" }
//! ```
//!
//! # Task groups: what an identity means
//!
//! A [`TaskGroupKey`](weir_contracts::TaskGroupKey) is `(kind, identity)`: the `kind`
//! (`local`, `model`, `custom_model`) and an ordered list of strings. Two tasks are in the
//! same group exactly when both parts are equal; the queue is fair *between* groups (weighted
//! by [`TaskGroupSpec::weight`](weir_contracts::TaskGroupSpec)) and FIFO *inside* one. The
//! crate never reads the strings: choose them so that one group is one flow of work you want
//! to share fairly. weir's runtime uses the metadata identity plus the output column, e.g.
//! `model:["model", "openai", "gpt-x", "chat", "summary"]`, so two columns on one model
//! endpoint share it fairly, and a local column is `local:["local", "default", "title"]`.
//! The group's `admitted_limit` (optional) caps its leases at once. A group that empties keeps
//! no credit: when it returns it starts at the queue's current virtual time.
//!
//! ```
//! use std::sync::Arc;
//! use weir_contracts::{SchedulerResourceRequest, SchedulingKind, TaskGroupKey, TaskGroupSpec, TaskId};
//! use weir_task_admission::{
//!     FairTaskQueue, SchedulableTask, TaskAdmissionConfig, TaskAdmissionController,
//!     TaskAdmissionDecision,
//! };
//!
//! let group = |name: &str, weight| {
//!     let key = TaskGroupKey::new(SchedulingKind::Local, vec!["local".into(), name.into()]);
//!     Arc::new(TaskGroupSpec::new(key, weight, None).unwrap())
//! };
//! let (a, b) = (group("a", 2), group("b", 1));
//! let req = Arc::new(SchedulerResourceRequest::submission());
//! let mut queue = FairTaskQueue::new();
//! for i in 0..3 {
//!     for g in [&a, &b] {
//!         let id = TaskId::new(format!("{}-{i}", g.key.identity[1]));
//!         queue.enqueue([SchedulableTask::new(id, (), g.clone(), req.clone())]);
//!     }
//! }
//! let mut admission = TaskAdmissionController::new(TaskAdmissionConfig::with_submission_capacity(4))?;
//!
//! let mut order = Vec::new();
//! while let Some(sel) = queue.select_next(|t, v| admission.is_eligible(t, v)) {
//!     let TaskAdmissionDecision::Lease(lease) = admission.try_acquire(sel.item, &sel.queue_view) else {
//!         break;
//!     };
//!     let token = sel.token();
//!     let task = queue.commit(token).expect("nothing else touched the queue");
//!     order.push(task.task_id.to_string());
//!     assert!(admission.release(&lease).released);
//!     // A second release of the same lease is diagnosed, never double-counted.
//!     assert!(!admission.release(&lease).released);
//! }
//! // Weight 2 vs 1: after the first round, two picks of `a` for every pick of `b`.
//! assert_eq!(order, ["a-0", "b-0", "a-1", "a-2", "b-1", "b-2"]);
//! assert_eq!(admission.snapshot().active_lease_count, 0);
//! # Ok::<(), weir_contracts::ContractError>(())
//! ```

mod active_leases;
mod admission_view;
mod bounded_borrow;
mod config;
mod controller;
mod hash;
mod lease;
mod policy;
mod queue;
mod queue_view;
mod shapes;
mod strict_fair;
mod task;

pub use admission_view::{GroupLedgerView, TaskAdmissionView};
pub use bounded_borrow::{strict_share, BoundedBorrowTaskAdmissionPolicy};
pub use config::{
    BoundedBorrowTaskAdmissionPolicyConfig, StrictShareRounding, TaskAdmissionConfig,
    TaskAdmissionConfigError, DEFAULT_DYNAMIC_BORROW_MAX_RESERVED_SLOTS,
    DEFAULT_DYNAMIC_BORROW_RESERVE_FRACTION, DEFAULT_SUBMISSION_CAPACITY,
};
pub use controller::{DeniedHead, TaskAdmissionBlockSummary, TaskAdmissionController};
pub use lease::{TaskAdmissionDecision, TaskAdmissionDenied, TaskAdmissionLease};
pub use policy::{
    fair_pressure_resources, peer_stats, AdmissionCandidate, DebtChange, LeaseContext, PeerStats,
    PolicyDetail, PolicyStateDelta, TaskAdmissionPolicy, TaskAdmissionPolicyDecision,
};
pub use queue::{FairTaskQueue, QueueSelection, SelectionToken};
pub use queue_view::{HeadSignature, QueueGroupView, QueueView, QueueViewSnapshot};
pub use strict_fair::StrictFairTaskAdmissionPolicy;
pub use task::SchedulableTask;
