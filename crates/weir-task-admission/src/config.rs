//! `TaskAdmissionConfig` and `BoundedBorrowTaskAdmissionPolicyConfig`: validated, engine-internal knobs.

use std::collections::BTreeMap;
use weir_contracts::{ContractError, SchedulerResourceKey, TaskGroupKey};

/// Default submission capacity (scheduler-spawned tasks in flight).
pub const DEFAULT_SUBMISSION_CAPACITY: u32 = 1024;
/// Default dynamic-borrow reserve fraction.
pub const DEFAULT_DYNAMIC_BORROW_RESERVE_FRACTION: f64 = 0.0;
/// Default cap on dynamically reserved slots.
pub const DEFAULT_DYNAMIC_BORROW_MAX_RESERVED_SLOTS: u32 = 8;

/// Errors in task-admission configuration or requests: `ContractError` names the field.
pub type TaskAdmissionConfigError = ContractError;

/// How a strict fair share `L·w/T` is rounded to whole units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrictShareRounding {
    /// Round down (then at least 1).
    Floor,
    /// Round up (the reference default).
    #[default]
    Ceil,
}

/// Bounded-borrow policy knobs (engine-internal; no public runtime knob in V1).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundedBorrowTaskAdmissionPolicyConfig {
    /// Explicit borrow ceiling per (group, resource); wins over the default and dynamic ceilings.
    pub borrow_ceiling_by_group_resource: BTreeMap<(TaskGroupKey, SchedulerResourceKey), u32>,
    /// Ceiling for pairs without an explicit entry; `None` selects the dynamic ceiling.
    pub default_borrow_ceiling: Option<u32>,
    /// Dynamic ceiling: fraction of a resource's limit kept in reserve for late peers, in [0, 1].
    pub dynamic_borrow_reserve_fraction: f64,
    /// Dynamic ceiling: upper bound on reserved slots (> 0).
    pub dynamic_borrow_max_reserved_slots: u32,
    /// Rounding of the strict share.
    pub strict_share_rounding: StrictShareRounding,
    /// `true`: any release in the group repays debt for the released units (group-level).
    /// `false`: only the lease that borrowed repays what it borrowed (lease-level).
    pub repay_on_withheld_peer_pressure: bool,
}

impl Default for BoundedBorrowTaskAdmissionPolicyConfig {
    fn default() -> Self {
        Self {
            borrow_ceiling_by_group_resource: BTreeMap::new(),
            default_borrow_ceiling: None,
            dynamic_borrow_reserve_fraction: DEFAULT_DYNAMIC_BORROW_RESERVE_FRACTION,
            dynamic_borrow_max_reserved_slots: DEFAULT_DYNAMIC_BORROW_MAX_RESERVED_SLOTS,
            strict_share_rounding: StrictShareRounding::Ceil,
            repay_on_withheld_peer_pressure: true,
        }
    }
}

impl BoundedBorrowTaskAdmissionPolicyConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), TaskAdmissionConfigError> {
        let f = self.dynamic_borrow_reserve_fraction;
        if !f.is_finite() || !(0.0..=1.0).contains(&f) {
            return Err(ContractError::new(
                "bounded_borrow.dynamic_borrow_reserve_fraction",
                format!("must be between 0 and 1, got {f}"),
            ));
        }
        if self.dynamic_borrow_max_reserved_slots == 0 {
            return Err(ContractError::new(
                "bounded_borrow.dynamic_borrow_max_reserved_slots",
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// Task-stage capacity: submission capacity, other resource limits, optional bounded borrow.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskAdmissionConfig {
    /// Limit of the `submission` resource (every ordinary task holds one unit).
    pub submission_capacity: u32,
    /// Limits of other scheduler resources; an explicit `submission` entry overrides
    /// `submission_capacity` (as in the reference).
    pub resource_limits: BTreeMap<SchedulerResourceKey, u32>,
    /// Enables `BoundedBorrowTaskAdmissionPolicy` when set; strict fair otherwise.
    pub bounded_borrow: Option<BoundedBorrowTaskAdmissionPolicyConfig>,
    /// Attach a full ledger snapshot to every denial (costly; off by default).
    pub snapshot_on_denial: bool,
}

impl Default for TaskAdmissionConfig {
    fn default() -> Self {
        Self {
            submission_capacity: DEFAULT_SUBMISSION_CAPACITY,
            resource_limits: BTreeMap::new(),
            bounded_borrow: None,
            snapshot_on_denial: false,
        }
    }
}

impl TaskAdmissionConfig {
    /// A config with `submission_capacity` and no other resources.
    pub fn with_submission_capacity(submission_capacity: u32) -> Self {
        Self {
            submission_capacity,
            ..Self::default()
        }
    }

    /// Adds (or replaces) a resource limit.
    pub fn with_limit(mut self, key: SchedulerResourceKey, limit: u32) -> Self {
        self.resource_limits.insert(key, limit);
        self
    }

    /// Enables bounded borrow.
    pub fn with_bounded_borrow(mut self, cfg: BoundedBorrowTaskAdmissionPolicyConfig) -> Self {
        self.bounded_borrow = Some(cfg);
        self
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), TaskAdmissionConfigError> {
        if self.submission_capacity == 0 {
            return Err(ContractError::new(
                "submission_capacity",
                "must be positive",
            ));
        }
        if let Some((k, _)) = self.resource_limits.iter().find(|(_, v)| **v == 0) {
            return Err(ContractError::new(
                format!("resource_limits.{k}"),
                "must be positive",
            ));
        }
        if let Some(b) = &self.bounded_borrow {
            b.validate()?;
        }
        Ok(())
    }

    /// The merged limits: `submission` first from `submission_capacity`, then `resource_limits`.
    pub fn merged_limits(&self) -> BTreeMap<SchedulerResourceKey, u32> {
        let mut m = BTreeMap::new();
        m.insert(SchedulerResourceKey::submission(), self.submission_capacity);
        for (k, v) in &self.resource_limits {
            m.insert(k.clone(), *v);
        }
        m
    }
}
