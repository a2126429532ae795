//! `TracingEventSink`: forwards each event as a `tracing` debug event with bounded fields.
//!
//! Targets are `weir::scheduler` and `weir::request`, so a subscriber filter such as
//! `weir::request=debug` selects one stream. Only the kind, sequence, capture time, ids (as
//! display strings), resource key and reason are recorded; snapshots and diagnostics are not.

use crate::sink::EventSink;
use weir_contracts::{RequestAdmissionEvent, SchedulerAdmissionEvent};

/// Emits both streams' events as `tracing` debug events (attach to either stream or both).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingEventSink;

impl TracingEventSink {
    /// A tracing sink.
    pub fn new() -> Self {
        Self
    }
}

impl EventSink<SchedulerAdmissionEvent> for TracingEventSink {
    fn emit(&self, event: &SchedulerAdmissionEvent) {
        tracing::debug!(
            target: "weir::scheduler",
            kind = event.event_kind().as_str(),
            sequence = event.sequence,
            captured_at = event.captured_at_monotonic,
            task_id = event.task_id.as_ref().map(|id| id.as_str()),
            task_execution_id = event.task_execution_id.map(tracing::field::display),
            task_lease_id = event.task_lease_id.map(tracing::field::display),
            scheduler_resource = event.scheduler_resource_key.as_ref().map(|k| k.as_str()),
            reason = event.reason_or_result.as_deref(),
            "scheduler admission event"
        );
    }
}

impl EventSink<RequestAdmissionEvent> for TracingEventSink {
    fn emit(&self, event: &RequestAdmissionEvent) {
        tracing::debug!(
            target: "weir::request",
            kind = event.event_kind().as_str(),
            sequence = event.sequence,
            captured_at = event.captured_at_monotonic,
            task_execution_id = event.task_execution_id.map(tracing::field::display),
            request_attempt_id = event.request_attempt_id.map(tracing::field::display),
            request_lease_id = event.request_lease_id.map(tracing::field::display),
            request_resource = event.request_resource_key.as_ref().map(tracing::field::display),
            reason = event.reason_or_outcome.as_deref(),
            "request admission event"
        );
    }
}
