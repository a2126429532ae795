//! `RequestPressureSnapshotProvider`: the read-only view of request pressure (no mutation, no
//! admission) for diagnostics, telemetry, benchmarks, capacity plans and task policies.

use crate::controller::ControllerCore;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_contracts::{
    ProviderModelKey, ProviderModelPressureSnapshot, ProviderModelStaticCap, ReleaseReason,
    RequestAdmissionConfigSnapshot, RequestPressureSnapshot, RequestResourceKey,
};

/// Read-only request pressure. Cheap to clone; snapshots are consistent per endpoint.
#[derive(Clone)]
pub struct RequestPressureSnapshotProvider {
    core: Arc<ControllerCore>,
}

impl std::fmt::Debug for RequestPressureSnapshotProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestPressureSnapshotProvider")
            .field("generation", &self.core.shared.generation)
            .finish()
    }
}

impl RequestPressureSnapshotProvider {
    pub(crate) fn new(core: Arc<ControllerCore>) -> Self {
        Self { core }
    }

    /// Snapshot of one resource; `None` before the resource was first used or its endpoint registered.
    pub fn snapshot(&self, resource: &RequestResourceKey) -> Option<RequestPressureSnapshot> {
        self.core
            .shard(&resource.provider_model())?
            .snapshot(resource.domain)
    }

    /// Snapshots of every used resource, in key order.
    pub fn snapshots(&self) -> Vec<RequestPressureSnapshot> {
        self.core
            .all_shards()
            .iter()
            .flat_map(|s| s.snapshots())
            .collect()
    }

    /// Aggregate snapshot of one registered endpoint.
    pub fn global_snapshot(
        &self,
        provider_model: &ProviderModelKey,
    ) -> Option<ProviderModelPressureSnapshot> {
        Some(self.core.shard(provider_model)?.global_snapshot())
    }

    /// Aggregate snapshots of every registered endpoint, in key order.
    pub fn global_snapshots(&self) -> Vec<ProviderModelPressureSnapshot> {
        self.core
            .all_shards()
            .iter()
            .map(|s| s.global_snapshot())
            .collect()
    }

    /// Static caps of every registered endpoint (for capacity plans).
    pub fn static_caps(&self) -> BTreeMap<ProviderModelKey, ProviderModelStaticCap> {
        self.core
            .all_shards()
            .iter()
            .map(|s| (s.key().clone(), s.static_cap()))
            .collect()
    }

    /// The controller's config snapshot (includes the policy name).
    pub fn config_snapshot(&self) -> RequestAdmissionConfigSnapshot {
        self.core.shared.config.snapshot()
    }

    /// Rejected releases by reason (duplicate, stale, wrong generation, unknown).
    pub fn release_diagnostics(&self) -> BTreeMap<ReleaseReason, u64> {
        self.core.shared.leak_diagnostics()
    }
}
