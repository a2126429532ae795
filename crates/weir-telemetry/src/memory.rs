//! `InMemoryAdmissionEventSink`: keeps both streams' events in memory, for tests and diagnostics.

use crate::sink::EventSink;
use std::sync::{Mutex, PoisonError};
use weir_contracts::{RequestAdmissionEvent, SchedulerAdmissionEvent};

/// Collects every scheduler and request event it is given, in emission order.
#[derive(Debug, Default)]
pub struct InMemoryAdmissionEventSink {
    scheduler: Mutex<Vec<SchedulerAdmissionEvent>>,
    request: Mutex<Vec<RequestAdmissionEvent>>,
}

impl InMemoryAdmissionEventSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the scheduler events so far.
    pub fn scheduler_events(&self) -> Vec<SchedulerAdmissionEvent> {
        self.scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A copy of the request events so far.
    pub fn request_events(&self) -> Vec<RequestAdmissionEvent> {
        self.request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl EventSink<SchedulerAdmissionEvent> for InMemoryAdmissionEventSink {
    fn emit(&self, event: &SchedulerAdmissionEvent) {
        self.scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
    }
}

impl EventSink<RequestAdmissionEvent> for InMemoryAdmissionEventSink {
    fn emit(&self, event: &RequestAdmissionEvent) {
        self.request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
    }
}
