//! Proof that an unwanted `emit_with` never allocates (allocations counted on this thread).

use std::sync::Arc;
use weir_contracts::{SchedulerAdmissionEvent, SchedulerEventKind};
use weir_telemetry::{EventSink, EventStream, MonotonicClock};

struct OnlyQueueEmpty;

impl EventSink<SchedulerAdmissionEvent> for OnlyQueueEmpty {
    fn accepts(&self, kind: SchedulerEventKind) -> bool {
        kind == SchedulerEventKind::QueueEmpty
    }
    fn emit(&self, _event: &SchedulerAdmissionEvent) {}
}

#[test]
fn ten_thousand_unwanted_emits_allocate_nothing() {
    let stream: EventStream<SchedulerAdmissionEvent> =
        EventStream::single(Arc::new(OnlyQueueEmpty), MonotonicClock::start());
    let disabled: EventStream<SchedulerAdmissionEvent> = EventStream::disabled();
    let info = allocation_counter::measure(|| {
        for i in 0..10_000u64 {
            stream.emit_with(SchedulerEventKind::Selected, |now| {
                let mut e = SchedulerAdmissionEvent::new(SchedulerEventKind::Selected, now);
                e.reason_or_result = Some(format!("would allocate {i}"));
                e
            });
            disabled.emit_with(SchedulerEventKind::Selected, |now| {
                let mut e = SchedulerAdmissionEvent::new(SchedulerEventKind::Selected, now);
                e.reason_or_result = Some(format!("would allocate {i}"));
                e
            });
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    assert_eq!(stream.emitted(), 0);

    // Sanity: the counter does see allocations from a wanted emit.
    let wanted = allocation_counter::measure(|| {
        stream.emit_with(SchedulerEventKind::QueueEmpty, |now| {
            let mut e = SchedulerAdmissionEvent::new(SchedulerEventKind::QueueEmpty, now);
            e.reason_or_result = Some(String::from("allocates"));
            e
        });
    });
    assert!(wanted.count_total > 0);
}
