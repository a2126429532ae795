//! weir's admission telemetry: event sinks, per-stream sequencing, runtime correlation.
//!
//! Two streams, scheduler and request, each an [`EventStream`] over [`EventSink`]s. A sink's
//! interest filter is read once, so an event nobody wants is never built; sinks are isolated
//! from each other and from the caller. [`RuntimeCorrelationProvider`] carries the running task's
//! [`weir_contracts::RuntimeCorrelation`] on a tokio task-local.
//!
//! ```
//! use std::sync::Arc;
//! use weir_contracts::{SchedulerAdmissionEvent, SchedulerEventKind};
//! use weir_telemetry::{EventStream, InMemoryAdmissionEventSink, MonotonicClock};
//!
//! let sink = Arc::new(InMemoryAdmissionEventSink::new());
//! let stream: EventStream<SchedulerAdmissionEvent> =
//!     EventStream::single(sink.clone(), MonotonicClock::start());
//! stream.emit_with(SchedulerEventKind::QueueEmpty, |now| {
//!     SchedulerAdmissionEvent::new(SchedulerEventKind::QueueEmpty, now)
//! });
//! let events = sink.scheduler_events();
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].sequence, 1);
//!
//! // With no sink, the builder closure never runs.
//! let off: EventStream<SchedulerAdmissionEvent> = EventStream::disabled();
//! off.emit_with(SchedulerEventKind::QueueEmpty, |_| unreachable!());
//! ```

pub mod clock;
pub mod correlation;
pub mod event;
pub mod memory;
pub mod sink;
pub mod stream;

pub use clock::MonotonicClock;
pub use correlation::RuntimeCorrelationProvider;
pub use event::AdmissionEvent;
pub use memory::InMemoryAdmissionEventSink;
pub use sink::{EventSink, RequestAdmissionEventSink, SchedulerAdmissionEventSink};
pub use stream::{EventStream, RequestEventStream, SchedulerEventStream};
