//! `CooldownAdvisory`: the read-only request-pressure advisory backed by pressure snapshots.

use crate::scheduler::PressureAdvisory;
use weir_contracts::{RequestDomain, RequestResourceKey, SchedulingKind, SchedulingMetadata};
use weir_request_admission::RequestPressureSnapshotProvider;

/// Says a `model` task is pressured while its endpoint's domain is cooling down.
pub struct CooldownAdvisory {
    pressure: RequestPressureSnapshotProvider,
}

impl CooldownAdvisory {
    /// An advisory reading `pressure` (never mutating it).
    pub fn new(pressure: RequestPressureSnapshotProvider) -> Self {
        Self { pressure }
    }
}

impl PressureAdvisory for CooldownAdvisory {
    fn is_pressured(&self, metadata: &SchedulingMetadata) -> bool {
        if metadata.kind() != SchedulingKind::Model {
            return false;
        }
        let id = metadata.identity();
        let domain = match id.get(3).map(String::as_str) {
            Some("embedding") => RequestDomain::Embedding,
            Some("image") => RequestDomain::Image,
            _ => RequestDomain::Chat,
        };
        let Ok(resource) = RequestResourceKey::new(&id[1], &id[2], domain) else {
            return false;
        };
        self.pressure
            .snapshot(&resource)
            .is_some_and(|s| s.cooldown_remaining_seconds > 0.0)
    }
}
