//! EventStream and FanOutSink behaviour: interest filter, per-stream sequences, sink isolation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use weir_contracts::{
    RequestAdmissionEvent, RequestEventKind, SchedulerAdmissionEvent, SchedulerEventKind,
};
use weir_telemetry::{
    EventSink, EventStream, FanOutSink, InMemoryAdmissionEventSink, MonotonicClock,
};

/// Accepts only `selected`.
struct OnlySelected(InMemoryAdmissionEventSink);

impl EventSink<SchedulerAdmissionEvent> for OnlySelected {
    fn accepts(&self, kind: SchedulerEventKind) -> bool {
        kind == SchedulerEventKind::Selected
    }
    fn emit(&self, event: &SchedulerAdmissionEvent) {
        EventSink::<SchedulerAdmissionEvent>::emit(&self.0, event);
    }
}

struct Panicky {
    calls: AtomicUsize,
}

impl EventSink<SchedulerAdmissionEvent> for Panicky {
    fn emit(&self, _event: &SchedulerAdmissionEvent) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        panic!("sink bug");
    }
    fn flush(&self) {
        panic!("flush bug");
    }
}

fn sched(kind: SchedulerEventKind) -> impl FnOnce(f64) -> SchedulerAdmissionEvent {
    move |now| SchedulerAdmissionEvent::new(kind, now)
}

#[test]
fn unwanted_kind_never_runs_the_builder() {
    let sink = Arc::new(OnlySelected(InMemoryAdmissionEventSink::new()));
    let stream: EventStream<SchedulerAdmissionEvent> =
        EventStream::single(sink.clone(), MonotonicClock::start());
    let built = AtomicUsize::new(0);
    for kind in SchedulerEventKind::ALL {
        stream.emit_with(*kind, |now| {
            built.fetch_add(1, Ordering::SeqCst);
            SchedulerAdmissionEvent::new(*kind, now)
        });
    }
    assert_eq!(built.load(Ordering::SeqCst), 1, "only `selected` is built");
    assert!(stream.wants(SchedulerEventKind::Selected));
    assert!(!stream.wants(SchedulerEventKind::QueueEmpty));
    let events = sink.0.scheduler_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_kind(), SchedulerEventKind::Selected);
    assert_eq!(
        events[0].sequence, 1,
        "unwanted kinds consume no sequence numbers"
    );

    let off: EventStream<SchedulerAdmissionEvent> = EventStream::disabled();
    assert!(!off.is_enabled());
    off.emit_with(SchedulerEventKind::Selected, |_| panic!("never built"));
    assert_eq!(off.emitted(), 0);
}

#[test]
fn sequences_are_dense_and_independent_per_stream() {
    let sink = Arc::new(InMemoryAdmissionEventSink::new());
    let clock = MonotonicClock::start();
    let scheduler: EventStream<SchedulerAdmissionEvent> = EventStream::single(sink.clone(), clock);
    let request: EventStream<RequestAdmissionEvent> = EventStream::single(sink.clone(), clock);
    for i in 0..10 {
        scheduler.emit_with(
            SchedulerEventKind::Selected,
            sched(SchedulerEventKind::Selected),
        );
        if i % 2 == 0 {
            request.emit_with(RequestEventKind::RequestWaitStarted, |now| {
                RequestAdmissionEvent::new(RequestEventKind::RequestWaitStarted, now)
            });
        }
    }
    // `emit` of a pre-built event is sequenced by the stream too.
    scheduler.emit(SchedulerAdmissionEvent::new(
        SchedulerEventKind::QueueEmpty,
        0.0,
    ));
    let s: Vec<u64> = sink.scheduler_events().iter().map(|e| e.sequence).collect();
    let r: Vec<u64> = sink.request_events().iter().map(|e| e.sequence).collect();
    assert_eq!(s, (1..=11).collect::<Vec<_>>());
    assert_eq!(r, (1..=5).collect::<Vec<_>>());
    assert_eq!(scheduler.emitted(), 11);
    assert_eq!(request.emitted(), 5);
}

#[test]
fn fan_out_isolates_a_panicking_child() {
    let good = Arc::new(InMemoryAdmissionEventSink::new());
    let selected_only = Arc::new(OnlySelected(InMemoryAdmissionEventSink::new()));
    let bad = Arc::new(Panicky {
        calls: AtomicUsize::new(0),
    });
    let fan = Arc::new(FanOutSink::new(vec![
        bad.clone() as Arc<dyn EventSink<SchedulerAdmissionEvent>>,
        good.clone(),
        selected_only.clone(),
    ]));
    assert_eq!(fan.len(), 3);
    // Union of the children's filters.
    for kind in SchedulerEventKind::ALL {
        assert!(EventSink::<SchedulerAdmissionEvent>::accepts(&*fan, *kind));
    }
    let stream: EventStream<SchedulerAdmissionEvent> =
        EventStream::single(fan.clone(), MonotonicClock::start());
    stream.emit_with(
        SchedulerEventKind::Selected,
        sched(SchedulerEventKind::Selected),
    );
    stream.emit_with(
        SchedulerEventKind::QueueEmpty,
        sched(SchedulerEventKind::QueueEmpty),
    );
    stream.emit_with(
        SchedulerEventKind::Selected,
        sched(SchedulerEventKind::Selected),
    );
    stream.flush();

    assert_eq!(
        bad.calls.load(Ordering::SeqCst),
        1,
        "disabled after its first panic"
    );
    assert_eq!(fan.panicked_children(), 1);
    assert_eq!(
        good.scheduler_events().len(),
        3,
        "others still receive everything"
    );
    assert_eq!(
        selected_only.0.scheduler_events().len(),
        2,
        "child filters still apply"
    );
    assert_eq!(stream.emitted(), 3);
}

#[test]
fn fan_out_of_filtered_children_only_wants_their_union() {
    let fan: FanOutSink<SchedulerAdmissionEvent> = FanOutSink::new(vec![Arc::new(OnlySelected(
        InMemoryAdmissionEventSink::new(),
    ))]);
    let stream: EventStream<SchedulerAdmissionEvent> =
        EventStream::single(Arc::new(fan), MonotonicClock::start());
    assert!(stream.wants(SchedulerEventKind::Selected));
    assert!(!stream.wants(SchedulerEventKind::WorkerSpawned));
    stream.emit_with(SchedulerEventKind::WorkerSpawned, |_| panic!("never built"));
}

#[test]
fn stream_isolates_a_panicking_direct_sink() {
    let good = Arc::new(InMemoryAdmissionEventSink::new());
    let stream: EventStream<SchedulerAdmissionEvent> = EventStream::new(
        vec![
            Arc::new(Panicky {
                calls: AtomicUsize::new(0),
            }),
            good.clone(),
        ],
        MonotonicClock::start(),
    );
    stream.emit_with(
        SchedulerEventKind::Selected,
        sched(SchedulerEventKind::Selected),
    );
    stream.emit_with(
        SchedulerEventKind::Selected,
        sched(SchedulerEventKind::Selected),
    );
    stream.flush();
    assert_eq!(good.scheduler_events().len(), 2);
}

#[test]
fn concurrent_producers_deliver_in_sequence_order() {
    use std::sync::Arc;
    use weir_contracts::{SchedulerAdmissionEvent, SchedulerEventKind};
    use weir_telemetry::{EventStream, InMemoryAdmissionEventSink, MonotonicClock};
    let sink = Arc::new(InMemoryAdmissionEventSink::new());
    let stream: EventStream<SchedulerAdmissionEvent> =
        EventStream::single(sink.clone(), MonotonicClock::start());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = stream.clone();
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    s.emit_with(SchedulerEventKind::Selected, |now| {
                        SchedulerAdmissionEvent::new(SchedulerEventKind::Selected, now)
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("producer thread");
    }
    let events = sink.scheduler_events();
    assert_eq!(events.len(), 8_000);
    for (i, w) in events.windows(2).enumerate() {
        assert_eq!(
            w[1].sequence,
            w[0].sequence + 1,
            "delivery order == sequence order at {i}"
        );
        assert!(w[1].captured_at_monotonic >= w[0].captured_at_monotonic);
    }
}
