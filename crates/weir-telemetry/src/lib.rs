//! weir's admission telemetry: event sinks, per-stream sequencing, runtime correlation.
//!
//! Two streams, scheduler and request, each an [`EventStream`] over [`EventSink`]s. A sink's
//! interest filter is read once, so an event nobody wants is never built; sinks are isolated
//! from each other and from the caller. [`RuntimeCorrelationProvider`] carries the running task's
//! [`weir_contracts::RuntimeCorrelation`] on a tokio task-local.
//!
//! Sinks: [`InMemoryAdmissionEventSink`] (tests, benchmarks), [`JsonlEventSink`] (append-mode JSON
//! lines, buffered; optionally written on a background thread), [`TracingEventSink`] (`tracing`
//! debug events under `weir::scheduler` / `weir::request`) and [`FanOutSink`] (composes sinks,
//! isolating a panicking child). [`CorrelatedRuntimeView`] joins the two streams by id into
//! per-execution timelines with the plan's 13 monotonic fields.
//!
//! # Using it alone
//!
//! It speaks `weir-contracts` types, so depend on both (add tokio yourself only to run
//! [`RuntimeCorrelationProvider::scope`]-style code inside a runtime):
//!
//! ```toml
//! [dependencies]
//! weir-telemetry = { path = "…/crates/weir-telemetry" }
//! weir-contracts = { path = "…/crates/weir-contracts" }
//! ```
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
//!
//! // Join the streams: a worker spawned after its lease is not a hidden waiter.
//! use weir_contracts::TaskExecutionId;
//! use weir_telemetry::CorrelatedRuntimeView;
//! let exec = TaskExecutionId(7);
//! for kind in [SchedulerEventKind::TaskLeaseAcquired, SchedulerEventKind::WorkerSpawned] {
//!     stream.emit_with(kind, |now| {
//!         let mut e = SchedulerAdmissionEvent::new(kind, now);
//!         e.task_execution_id = Some(exec);
//!         e
//!     });
//! }
//! let view = CorrelatedRuntimeView::from_sink(&sink);
//! assert_eq!(view.hidden_scheduler_resource_waiters(), 0);
//! assert!(view.execution(exec).is_some_and(|t| t.worker_spawned_at.is_some()));
//! ```

pub mod clock;
pub mod correlation;
pub mod event;
pub mod fanout;
pub mod jsonl;
pub mod memory;
#[cfg(feature = "otel")]
pub mod otel;
pub mod sink;
pub mod stream;
pub mod tracing_sink;
pub mod view;

pub use clock::MonotonicClock;
pub use correlation::RuntimeCorrelationProvider;
pub use event::AdmissionEvent;
pub use fanout::FanOutSink;
pub use jsonl::{JsonlEventSink, JsonlOpenError, JsonlWriteError, JsonlWriteMode};
pub use memory::InMemoryAdmissionEventSink;
#[cfg(feature = "otel")]
pub use otel::OtelMetricsSink;
pub use sink::{EventSink, RequestAdmissionEventSink, SchedulerAdmissionEventSink};
pub use stream::{EventStream, RequestEventStream, SchedulerEventStream};
pub use tracing_sink::TracingEventSink;
pub use view::{
    CorrelatedRuntimeView, RequestAttemptTimeline, TaskExecutionTimeline, TimelineEvent,
    TimelineRow, TIMELINE_FIELDS,
};
