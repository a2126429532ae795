//! `TaskAdmissionView`: the controller's hard ledger and policy debt, lent read-only to policies.

use crate::hash::PtrIndex;
use crate::queue_view::key_cmp;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_contracts::{
    ReleaseReason, SchedulerResourceKey, SchedulerResourceRequest, TaskAdmissionSnapshot,
    TaskGroupKey, TaskGroupSpec,
};
use weir_fair::hash::FxHashMap;

/// One limited resource and its leased units.
#[derive(Debug, Clone)]
pub(crate) struct ResourceSlot {
    pub(crate) key: SchedulerResourceKey,
    pub(crate) limit: u32,
    pub(crate) leased: u64,
}

/// Per-resource counters of one group, inline for up to four resources: at hundreds of groups
/// a heap array per ledger is one more cache miss per dispatch.
pub(crate) type Counters = smallvec::SmallVec<[u64; 4]>;

/// Per-group ledger: active leases, leased units and policy debt, dense by resource index
/// (the controller's resource list is fixed at construction), so a ledger update is an array
/// index, not a keyed search.
#[derive(Debug, Clone)]
pub(crate) struct GroupLedger {
    pub(crate) spec: Arc<TaskGroupSpec>,
    pub(crate) running: u32,
    pub(crate) leased: Counters,
    pub(crate) debt: Counters,
    /// Σ `leased` and Σ `debt`: O(1) "holds anything" / "owes anything".
    pub(crate) leased_total: u64,
    pub(crate) debt_total: u64,
}

impl GroupLedger {
    /// An empty ledger over `resources` resources.
    pub(crate) fn new(spec: Arc<TaskGroupSpec>, resources: usize) -> Self {
        Self {
            spec,
            running: 0,
            leased: smallvec::smallvec![0; resources],
            debt: smallvec::smallvec![0; resources],
            leased_total: 0,
            debt_total: 0,
        }
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.running == 0 && self.leased_total == 0 && self.debt_total == 0
    }

    /// Adds `delta` (signed, clamped at zero) to the debt of resource `idx`.
    pub(crate) fn add_debt(&mut self, idx: usize, delta: i64) {
        if let Some(d) = self.debt.get_mut(idx) {
            let new = d.saturating_add_signed(delta);
            self.debt_total = self.debt_total - *d + new;
            *d = new;
        }
    }
}

/// The controller's state that views borrow.
#[derive(Debug, Clone, Default)]
pub(crate) struct LedgerState {
    pub(crate) resources: Vec<ResourceSlot>,
    pub(crate) groups: Vec<Option<GroupLedger>>,
    pub(crate) group_index: FxHashMap<TaskGroupKey, u32>,
    /// Address of a ledger's `Arc<TaskGroupSpec>` → slot: a hash-free fast path for callers
    /// that reuse one `Arc` per group (validated by pointer equality, else the key map is used).
    pub(crate) spec_ptr_index: PtrIndex,
    pub(crate) free_groups: Vec<u32>,
    /// Ledgers holding nothing, kept for reuse until they outnumber a bound (then swept).
    pub(crate) idle_groups: usize,
    pub(crate) active_leases: u64,
    pub(crate) release_diagnostics: [u64; 5],
    pub(crate) policy_counters: BTreeMap<String, i64>,
}

pub(crate) fn reason_index(r: ReleaseReason) -> usize {
    match r {
        ReleaseReason::Released => 0,
        ReleaseReason::Duplicate => 1,
        ReleaseReason::StaleLease => 2,
        ReleaseReason::WrongControllerGeneration => 3,
        ReleaseReason::UnknownLease => 4,
    }
}

impl LedgerState {
    pub(crate) fn resource(&self, key: &SchedulerResourceKey) -> Option<&ResourceSlot> {
        self.resource_index(key).map(|i| &self.resources[i])
    }

    /// Index of `key` in `resources` (address fast path, then text; tiny lists scan linearly).
    #[inline]
    pub(crate) fn resource_index(&self, key: &SchedulerResourceKey) -> Option<usize> {
        let r = &self.resources;
        if r.len() <= 8 {
            return r.iter().position(|s| key_cmp(&s.key, key).is_eq());
        }
        r.binary_search_by(|s| key_cmp(&s.key, key)).ok()
    }

    pub(crate) fn group_slot(&self, key: &TaskGroupKey) -> Option<u32> {
        self.group_index.get(key).copied()
    }

    /// The slot of `spec`'s group: pointer fast path, then the key map.
    pub(crate) fn group_slot_of(&self, spec: &TaskGroupSpec) -> Option<u32> {
        let addr = spec as *const TaskGroupSpec as usize as u64;
        if let Some(&slot) = self.spec_ptr_index.get(&addr) {
            if self
                .ledger(slot)
                .is_some_and(|g| std::ptr::eq(Arc::as_ptr(&g.spec), spec))
            {
                return Some(slot);
            }
        }
        self.group_slot(&spec.key)
    }

    pub(crate) fn ledger(&self, slot: u32) -> Option<&GroupLedger> {
        self.groups.get(slot as usize)?.as_ref()
    }

    /// The view of ledger `slot`.
    pub(crate) fn ledger_view(&self, slot: u32) -> Option<GroupLedgerView<'_>> {
        self.ledger(slot).map(|ledger| GroupLedgerView {
            state: self,
            ledger,
        })
    }

    /// `(key, value)` for every non-zero entry of a dense per-resource vector (sorted by key,
    /// as `resources` is).
    pub(crate) fn nonzero(&self, dense: &[u64]) -> Vec<(SchedulerResourceKey, u64)> {
        self.resources
            .iter()
            .zip(dense)
            .filter(|(_, v)| **v > 0)
            .map(|(r, v)| (r.key.clone(), *v))
            .collect()
    }
}

/// Read-only view of the task-admission ledger (O(1) to take; borrowed from the controller).
#[derive(Debug, Clone, Copy)]
pub struct TaskAdmissionView<'a> {
    pub(crate) state: &'a LedgerState,
}

/// One group's ledger entry, as seen through a [`TaskAdmissionView`].
#[derive(Debug, Clone, Copy)]
pub struct GroupLedgerView<'a> {
    pub(crate) state: &'a LedgerState,
    pub(crate) ledger: &'a GroupLedger,
}

impl<'a> GroupLedgerView<'a> {
    /// The group's spec as last admitted.
    pub fn spec(&self) -> &'a TaskGroupSpec {
        &self.ledger.spec
    }

    /// Active leases of the group.
    pub fn running(&self) -> u32 {
        self.ledger.running
    }

    /// Leased units of `resource` held by the group.
    pub fn leased(&self, resource: &SchedulerResourceKey) -> u64 {
        self.state
            .resource_index(resource)
            .and_then(|i| self.ledger.leased.get(i).copied())
            .unwrap_or(0)
    }

    /// Policy debt of the group for `resource`.
    pub fn debt(&self, resource: &SchedulerResourceKey) -> u64 {
        self.state
            .resource_index(resource)
            .and_then(|i| self.ledger.debt.get(i).copied())
            .unwrap_or(0)
    }

    /// True when the group owes any debt (O(1)).
    pub fn owes(&self) -> bool {
        self.ledger.debt_total > 0
    }

    /// Leased units by resource (sorted by key, non-zero).
    pub fn leased_by_resource(&self) -> Vec<(SchedulerResourceKey, u64)> {
        self.state.nonzero(&self.ledger.leased)
    }

    /// Debt by resource (sorted by key, non-zero).
    pub fn debt_by_resource(&self) -> Vec<(SchedulerResourceKey, u64)> {
        self.state.nonzero(&self.ledger.debt)
    }
}

impl<'a> TaskAdmissionView<'a> {
    /// Configured limit of `resource` (`None`: not limited, so never admissible).
    pub fn limit(&self, resource: &SchedulerResourceKey) -> Option<u32> {
        self.state.resource(resource).map(|r| r.limit)
    }

    /// The limit of the resource at ledger index `idx`.
    #[inline]
    pub(crate) fn limit_at(&self, idx: usize) -> Option<u32> {
        self.state.resources.get(idx).map(|r| r.limit)
    }

    /// Free units of `resource` (0 when it has no limit).
    pub fn available(&self, resource: &SchedulerResourceKey) -> u64 {
        self.state
            .resource(resource)
            .map_or(0, |r| u64::from(r.limit).saturating_sub(r.leased))
    }

    /// Leased units of `resource`.
    pub fn leased(&self, resource: &SchedulerResourceKey) -> u64 {
        self.state.resource(resource).map_or(0, |r| r.leased)
    }

    /// `(key, limit, leased)` for every limited resource, sorted by key.
    pub fn resources(&self) -> impl Iterator<Item = (&'a SchedulerResourceKey, u32, u64)> + 'a {
        self.state
            .resources
            .iter()
            .map(|r| (&r.key, r.limit, r.leased))
    }

    /// True when every requested resource has a limit and enough free units now.
    pub fn hard_eligible(&self, request: &SchedulerResourceRequest) -> bool {
        request
            .amounts()
            .iter()
            .all(|(k, a)| self.available(k) >= u64::from(*a))
    }

    /// The ledger of group `key`, if it holds leases or debt.
    pub fn group(&self, key: &TaskGroupKey) -> Option<GroupLedgerView<'a>> {
        let slot = self.state.group_slot(key)?;
        self.state.ledger_view(slot)
    }

    /// The ledger of `spec`'s group (pointer fast path for a shared `Arc`, else by key).
    pub fn group_of_spec(&self, spec: &TaskGroupSpec) -> Option<GroupLedgerView<'a>> {
        let slot = self.state.group_slot_of(spec)?;
        self.state.ledger_view(slot)
    }

    /// Every group holding leases or debt, in slot order.
    pub fn groups(&self) -> impl Iterator<Item = GroupLedgerView<'a>> + 'a {
        self.state
            .groups
            .iter()
            .flatten()
            .filter(|g| !g.is_idle())
            .map(|ledger| GroupLedgerView {
                state: self.state,
                ledger,
            })
    }

    /// Active leases of group `key`.
    pub fn running_count(&self, key: &TaskGroupKey) -> u32 {
        self.group(key).map_or(0, |g| g.running())
    }

    /// Leased units of `resource` held by group `key`.
    pub fn group_leased(&self, key: &TaskGroupKey, resource: &SchedulerResourceKey) -> u64 {
        self.group(key).map_or(0, |g| g.leased(resource))
    }

    /// Policy debt of group `key` for `resource`.
    pub fn debt(&self, key: &TaskGroupKey, resource: &SchedulerResourceKey) -> u64 {
        self.group(key).map_or(0, |g| g.debt(resource))
    }

    /// Active task leases.
    pub fn active_lease_count(&self) -> u64 {
        self.state.active_leases
    }

    /// Rejected releases counted for `reason` (0 for `released`).
    pub fn release_diagnostic(&self, reason: ReleaseReason) -> u64 {
        if reason == ReleaseReason::Released {
            return 0;
        }
        self.state.release_diagnostics[reason_index(reason)]
    }

    /// Counters applied from policy deltas (`PolicyStateDelta::diagnostic_counters`).
    pub fn policy_counters(&self) -> &'a BTreeMap<String, i64> {
        &self.state.policy_counters
    }

    /// The serializable wire form.
    pub fn to_snapshot(&self) -> TaskAdmissionSnapshot {
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let mut s = TaskAdmissionSnapshot {
            active_lease_count: self.state.active_leases,
            ..TaskAdmissionSnapshot::default()
        };
        for r in &self.state.resources {
            s.resource_limits.insert(r.key.clone(), r.limit);
            s.resources_available.insert(
                r.key.clone(),
                clamp(u64::from(r.limit).saturating_sub(r.leased)),
            );
            if r.leased > 0 {
                s.leased_resources.insert(r.key.clone(), clamp(r.leased));
            }
        }
        for g in self.state.groups.iter().flatten().filter(|g| !g.is_idle()) {
            let key = &g.spec.key;
            if g.leased_total > 0 {
                s.leased_resources_by_group.insert(
                    key.clone(),
                    self.state
                        .nonzero(&g.leased)
                        .into_iter()
                        .map(|(k, v)| (k, clamp(v)))
                        .collect(),
                );
            }
            if g.running > 0 {
                s.running_counts_by_group.insert(key.clone(), g.running);
            }
            for (k, v) in self.state.nonzero(&g.debt) {
                s.policy_debt_by_group_resource
                    .insert((key.clone(), k), clamp(v));
            }
        }
        for reason in ReleaseReason::ALL {
            let n = self.release_diagnostic(*reason);
            if n > 0 {
                s.release_diagnostics.insert(*reason, n);
            }
        }
        s
    }
}

impl From<TaskAdmissionView<'_>> for TaskAdmissionSnapshot {
    fn from(v: TaskAdmissionView<'_>) -> Self {
        v.to_snapshot()
    }
}
