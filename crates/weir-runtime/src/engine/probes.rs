//! `RunProbes`: a tiny scheduler-stream sink that derives the run's hidden scheduler-resource waiters.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use weir_contracts::{SchedulerAdmissionEvent, SchedulerEventKind, TaskExecutionId};
use weir_telemetry::EventSink;

#[derive(Debug, Default)]
struct State {
    leased: HashSet<TaskExecutionId>,
    hidden: u64,
}

/// Derives, from the scheduler events themselves, the run's hidden scheduler-resource waiters
/// (a worker spawned before its task lease).
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
        match event.event_kind() {
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
