//! `RunProbes`: a tiny sink on both streams that derives the run's hidden waiters and in-flight maxima.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use weir_contracts::{
    ProviderModelKey, RequestAdmissionEvent, RequestEventKind, SchedulerAdmissionEvent,
    SchedulerEventKind, TaskExecutionId,
};
use weir_telemetry::EventSink;

#[derive(Debug, Default)]
struct State {
    leased: HashSet<TaskExecutionId>,
    hidden: u64,
    in_flight: HashMap<ProviderModelKey, u32>,
    max_in_flight: BTreeMap<ProviderModelKey, u32>,
}

/// Derives, from the events themselves, the run's hidden scheduler-resource waiters (a worker
/// spawned before its task lease) and each endpoint's most request leases at once.
///
/// Accepts only the handful of kinds it needs, so it costs nothing on the others; its memory is
/// bounded by the work in flight.
#[derive(Debug, Default)]
pub struct RunProbes {
    state: Mutex<State>,
}

impl RunProbes {
    /// Workers seen spawning without a task lease.
    pub fn hidden_waiters(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .hidden
    }

    /// Most request leases held at once per endpoint.
    pub fn max_in_flight(&self) -> BTreeMap<ProviderModelKey, u32> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .max_in_flight
            .clone()
    }
}

impl EventSink<SchedulerAdmissionEvent> for RunProbes {
    fn accepts(&self, kind: SchedulerEventKind) -> bool {
        matches!(
            kind,
            SchedulerEventKind::TaskLeaseAcquired
                | SchedulerEventKind::WorkerSpawned
                | SchedulerEventKind::TaskLeaseReleased
        )
    }

    fn emit(&self, event: &SchedulerAdmissionEvent) {
        let Some(exec) = event.task_execution_id else {
            return;
        };
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match event.event_kind {
            SchedulerEventKind::TaskLeaseAcquired => {
                s.leased.insert(exec);
            }
            SchedulerEventKind::WorkerSpawned if !s.leased.contains(&exec) => {
                s.hidden += 1;
            }
            SchedulerEventKind::TaskLeaseReleased => {
                s.leased.remove(&exec);
            }
            _ => {}
        }
    }
}

impl EventSink<RequestAdmissionEvent> for RunProbes {
    fn accepts(&self, kind: RequestEventKind) -> bool {
        matches!(
            kind,
            RequestEventKind::RequestLeaseAcquired | RequestEventKind::RequestLeaseReleased
        )
    }

    fn emit(&self, event: &RequestAdmissionEvent) {
        let Some(resource) = &event.request_resource_key else {
            return;
        };
        let key = resource.provider_model();
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match event.event_kind {
            RequestEventKind::RequestLeaseAcquired => {
                let n = {
                    let n = s.in_flight.entry(key.clone()).or_default();
                    *n += 1;
                    *n
                };
                let m = s.max_in_flight.entry(key).or_default();
                *m = (*m).max(n);
            }
            RequestEventKind::RequestLeaseReleased => {
                if let Some(n) = s.in_flight.get_mut(&key) {
                    *n = n.saturating_sub(1);
                }
            }
            _ => {}
        }
    }
}
