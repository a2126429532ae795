//! `EventSink`: the one trait both streams' sinks implement, with an interest filter.

use crate::event::AdmissionEvent;
use weir_contracts::{RequestAdmissionEvent, SchedulerAdmissionEvent};

/// Receives already-built events of one stream.
///
/// `accepts` is asked once per kind when an [`crate::EventStream`] is built; an event of a kind no
/// sink accepts is never constructed. `emit` must not block for long and should not panic (a
/// panic is caught and the sink is disabled, but it costs the event).
pub trait EventSink<E: AdmissionEvent>: Send + Sync {
    /// Whether this sink wants events of `kind` (default: all).
    fn accepts(&self, kind: E::Kind) -> bool {
        let _ = kind;
        true
    }

    /// Receives one event (sequence already stamped).
    fn emit(&self, event: &E);

    /// Flushes buffered output; called when the stream is closed.
    fn flush(&self) {}
}

/// The plan's `SchedulerAdmissionEventSink`: a sink of the scheduler stream.
pub type SchedulerAdmissionEventSink = dyn EventSink<SchedulerAdmissionEvent>;

/// The plan's `RequestAdmissionEventSink`: a sink of the request stream.
pub type RequestAdmissionEventSink = dyn EventSink<RequestAdmissionEvent>;
