//! TracingEventSink: one debug event per admission event, under the stream's target.

use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::SubscriberExt;
use weir_contracts::{
    RequestAdmissionEvent, RequestEventKind, SchedulerAdmissionEvent, SchedulerEventKind,
};
use weir_telemetry::{EventStream, MonotonicClock, TracingEventSink};

struct Capture(Arc<Mutex<Vec<(String, tracing::Level)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let m = event.metadata();
        if let Ok(mut seen) = self.0.lock() {
            seen.push((m.target().to_string(), *m.level()));
        }
    }
}

#[test]
fn emits_debug_events_under_stream_targets() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Capture(seen.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let sink = Arc::new(TracingEventSink::new());
        let clock = MonotonicClock::start();
        let s: EventStream<SchedulerAdmissionEvent> = EventStream::single(sink.clone(), clock);
        let r: EventStream<RequestAdmissionEvent> = EventStream::single(sink, clock);
        s.emit_with(SchedulerEventKind::Selected, |now| {
            SchedulerAdmissionEvent::new(SchedulerEventKind::Selected, now)
        });
        r.emit_with(RequestEventKind::RequestWaitStarted, |now| {
            RequestAdmissionEvent::new(RequestEventKind::RequestWaitStarted, now)
        });
    });
    let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(
        seen,
        vec![
            ("weir::scheduler".to_string(), tracing::Level::DEBUG),
            ("weir::request".to_string(), tracing::Level::DEBUG),
        ]
    );
}
