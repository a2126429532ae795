//! `ObservedMaximaTracker`: per-key maxima of the snapshots a run feeds it (plain struct, no locks).
//!
//! The runtime owns one tracker and calls the `observe_*` methods with snapshots it already holds
//! (on enqueue, dispatch and worker end). Order does not matter: a maximum is the same whatever
//! order snapshots arrive in, so a stale snapshot can only fail to raise a value, never lower one.

use std::collections::BTreeMap;
use weir_contracts::{
    ProviderModelKey, ProviderModelPressureSnapshot, RequestPressureSnapshot, RequestResourceKey,
    SchedulerResourceKey, TaskAdmissionSnapshot, TaskGroupKey,
};

/// Raises `map[key]` to `value`, cloning the key only when it is new.
pub(crate) fn raise<K: Ord + Clone>(map: &mut BTreeMap<K, u32>, key: &K, value: u32) {
    match map.get_mut(key) {
        Some(current) => *current = (*current).max(value),
        None => {
            map.insert(key.clone(), value);
        }
    }
}

/// Per-layer maxima collected during a run; feeds `observed_maxima` and row-group fields of the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedMaximaTracker {
    pub(crate) row_groups_in_flight: u32,
    pub(crate) row_groups_in_flight_now: Option<u32>,
    pub(crate) row_group_target_max: Option<u32>,
    pub(crate) row_group_target_now: Option<u32>,
    pub(crate) row_group_blocked: BTreeMap<String, u64>,
    pub(crate) queued_tasks_by_group: BTreeMap<TaskGroupKey, u32>,
    pub(crate) task_leases_by_resource: BTreeMap<SchedulerResourceKey, u32>,
    pub(crate) request_waiters_by_resource: BTreeMap<RequestResourceKey, u32>,
    pub(crate) request_in_flight_by_resource: BTreeMap<RequestResourceKey, u32>,
    pub(crate) request_domain_current_limits: BTreeMap<RequestResourceKey, u32>,
    pub(crate) provider_model_aggregate_in_flight: BTreeMap<ProviderModelKey, u32>,
    pub(crate) transport_pool_utilization: Option<BTreeMap<ProviderModelKey, u32>>,
}

impl ObservedMaximaTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records task-lease usage per scheduler resource from a task-admission snapshot.
    pub fn observe_task(&mut self, snapshot: &TaskAdmissionSnapshot) {
        for (resource, &units) in &snapshot.leased_resources {
            raise(&mut self.task_leases_by_resource, resource, units);
        }
    }

    /// Records request waiters, in-flight counts, current limits and endpoint aggregates.
    pub fn observe_request(
        &mut self,
        resources: &[RequestPressureSnapshot],
        provider_models: &[ProviderModelPressureSnapshot],
    ) {
        for s in resources {
            raise(
                &mut self.request_waiters_by_resource,
                &s.resource,
                s.waiters,
            );
            raise(
                &mut self.request_in_flight_by_resource,
                &s.resource,
                s.in_flight_count,
            );
            raise(
                &mut self.request_domain_current_limits,
                &s.resource,
                s.current_limit,
            );
        }
        for s in provider_models {
            raise(
                &mut self.provider_model_aggregate_in_flight,
                &s.provider_model,
                s.aggregate_in_flight,
            );
        }
    }

    /// Records the number of row groups in flight now.
    pub fn observe_row_groups(&mut self, in_flight: u32) {
        self.row_groups_in_flight = self.row_groups_in_flight.max(in_flight);
        self.row_groups_in_flight_now = Some(in_flight);
    }

    /// Records the adaptive row-group target now (it only grows, but the tracker does not assume so).
    pub fn observe_row_group_target(&mut self, target: u32) {
        self.row_group_target_max = Some(self.row_group_target_max.unwrap_or(0).max(target));
        self.row_group_target_now = Some(target);
    }

    /// Counts one blocked row-group growth step for `reason` (e.g. `queued_task_guardrail`).
    pub fn observe_row_group_blocked(&mut self, reason: &str) {
        match self.row_group_blocked.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.row_group_blocked.insert(reason.to_owned(), 1);
            }
        }
    }

    /// Records queued tasks per task group (labelled with `TaskGroupKey::label()` in the plan).
    pub fn observe_queue(&mut self, queued_by_group: &BTreeMap<TaskGroupKey, u32>) {
        for (group, &count) in queued_by_group {
            raise(&mut self.queued_tasks_by_group, group, count);
        }
    }

    /// Records transport connections in use per endpoint, for adapters that report it.
    pub fn observe_transport_pool(&mut self, in_use: &BTreeMap<ProviderModelKey, u32>) {
        let map = self
            .transport_pool_utilization
            .get_or_insert_with(BTreeMap::new);
        for (key, &n) in in_use {
            raise(map, key, n);
        }
    }
}
