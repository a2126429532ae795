//! JsonlEventSink: one valid JSON object per line with the stream key first, append mode,
//! flush on drop, and a write error that disables the sink and is reported once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tracing_subscriber::layer::SubscriberExt;
use weir_contracts::{
    RequestAdmissionEvent, RequestEventKind, SchedulerAdmissionEvent, SchedulerEventKind, TaskId,
};
use weir_telemetry::{EventSink, EventStream, JsonlEventSink, JsonlWriteMode, MonotonicClock};

const MODES: [JsonlWriteMode; 2] = [JsonlWriteMode::Inline, JsonlWriteMode::Background];

/// A unique path under the temp dir, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Self(std::env::temp_dir().join(format!(
            "weir-telemetry-{tag}-{}-{n}.jsonl",
            std::process::id()
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn lines(path: &PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("read log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

fn emit_some(sink: &Arc<JsonlEventSink>) {
    let clock = MonotonicClock::start();
    let s: EventStream<SchedulerAdmissionEvent> = EventStream::single(sink.clone(), clock);
    let r: EventStream<RequestAdmissionEvent> = EventStream::single(sink.clone(), clock);
    s.emit_with(SchedulerEventKind::Selected, |now| {
        let mut e = SchedulerAdmissionEvent::new(SchedulerEventKind::Selected, now);
        e.task_id = Some(TaskId::new("task-a"));
        e
    });
    r.emit_with(RequestEventKind::RequestWaitStarted, |now| {
        RequestAdmissionEvent::new(RequestEventKind::RequestWaitStarted, now)
    });
    s.emit_with(SchedulerEventKind::WorkerSpawned, |now| {
        SchedulerAdmissionEvent::new(SchedulerEventKind::WorkerSpawned, now)
    });
}

#[test]
fn writes_one_json_object_per_line_with_stream_first() {
    for mode in MODES {
        let tmp = TempPath::new("lines");
        let sink = Arc::new(JsonlEventSink::open_with(&tmp.0, mode).expect("open"));
        emit_some(&sink);
        assert_eq!(sink.close(), Ok(()));
        let raw = std::fs::read_to_string(&tmp.0).expect("read");
        for line in raw.lines() {
            assert!(
                line.starts_with("{\"stream\":"),
                "{mode:?}: stream key first: {line}"
            );
        }
        let got = lines(&tmp.0);
        assert_eq!(got.len(), 3, "{mode:?}");
        assert_eq!(got[0]["stream"], "scheduler");
        assert_eq!(got[0]["event_kind"], "selected");
        assert_eq!(got[0]["sequence"], 1);
        assert_eq!(got[0]["task_id"], "task-a");
        assert_eq!(got[1]["stream"], "request");
        assert_eq!(got[1]["event_kind"], "request_wait_started");
        assert_eq!(got[1]["sequence"], 1);
        assert_eq!(got[2]["stream"], "scheduler");
        assert_eq!(got[2]["sequence"], 2);
        // The rest of the event's fields follow in declaration order.
        let first = raw.lines().next().unwrap_or_default();
        let positions: Vec<usize> = [
            "\"stream\"",
            "\"event_kind\"",
            "\"captured_at_monotonic\"",
            "\"sequence\"",
        ]
        .iter()
        .filter_map(|k| first.find(k))
        .collect();
        assert_eq!(positions.len(), 4, "{first}");
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{first}");
        assert_eq!(sink.lines_written(), 3);
    }
}

#[test]
fn appends_to_an_existing_file() {
    for mode in MODES {
        let tmp = TempPath::new("append");
        std::fs::write(&tmp.0, "{\"stream\":\"scheduler\",\"preexisting\":true}\n").expect("seed");
        {
            let sink = Arc::new(JsonlEventSink::open_with(&tmp.0, mode).expect("open"));
            emit_some(&sink);
        }
        {
            let sink = Arc::new(JsonlEventSink::open_with(&tmp.0, mode).expect("reopen"));
            emit_some(&sink);
        }
        let got = lines(&tmp.0);
        assert_eq!(got.len(), 7, "{mode:?}");
        assert_eq!(got[0]["preexisting"], true);
    }
}

#[test]
fn flushes_on_drop_and_on_flush() {
    for mode in MODES {
        let tmp = TempPath::new("drop");
        let sink = Arc::new(JsonlEventSink::open_with(&tmp.0, mode).expect("open"));
        emit_some(&sink);
        EventSink::<SchedulerAdmissionEvent>::flush(&*sink);
        assert_eq!(lines(&tmp.0).len(), 3, "{mode:?}: visible after flush()");
        emit_some(&sink);
        // Buffered (64 KiB), so not yet on disk...
        assert_eq!(lines(&tmp.0).len(), 3, "{mode:?}: still buffered");
        drop(sink);
        // ...until the sink is dropped.
        assert_eq!(lines(&tmp.0).len(), 6, "{mode:?}: flushed on drop");
    }
}

#[test]
fn events_after_close_are_dropped() {
    let tmp = TempPath::new("closed");
    let sink = Arc::new(JsonlEventSink::open(&tmp.0).expect("open"));
    emit_some(&sink);
    assert_eq!(sink.close(), Ok(()));
    assert_eq!(sink.close(), Ok(()), "idempotent");
    emit_some(&sink);
    assert_eq!(lines(&tmp.0).len(), 3);
    assert_eq!(sink.events_dropped(), 3);
}

#[test]
fn open_error_is_typed() {
    let dir = std::env::temp_dir().join(format!("weir-no-such-dir-{}", std::process::id()));
    let err = JsonlEventSink::open(dir.join("x.jsonl")).expect_err("missing directory");
    assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("x.jsonl"));
}

/// Counts WARN events on the current thread.
struct WarnCounter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WarnCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn write_error_disables_the_sink_and_is_reported_once() {
    for mode in MODES {
        let warns = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(WarnCounter(warns.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let sink = Arc::new(JsonlEventSink::open_with("/dev/full", mode).expect("open"));
            emit_some(&sink);
            // The buffer hides the error until it is flushed.
            EventSink::<SchedulerAdmissionEvent>::flush(&*sink);
            assert!(sink.is_failed(), "{mode:?}");
            let err = sink.error().expect("error recorded");
            assert_eq!(err.path, PathBuf::from("/dev/full"));
            // Further events and flushes are ignored, never panic, never re-report.
            for _ in 0..100 {
                emit_some(&sink);
            }
            EventSink::<RequestAdmissionEvent>::flush(&*sink);
            assert_eq!(sink.close(), Err(err));
            assert_eq!(sink.events_dropped(), 300);
            drop(sink);
        });
        assert_eq!(
            warns.load(Ordering::SeqCst),
            1,
            "{mode:?}: reported exactly once"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_buffer_fails_without_flush() {
    // More than 64 KiB of events reach the disk (and its error) without any explicit flush.
    let sink =
        Arc::new(JsonlEventSink::open_with("/dev/full", JsonlWriteMode::Inline).expect("open"));
    let s: EventStream<SchedulerAdmissionEvent> =
        EventStream::single(sink.clone(), MonotonicClock::start());
    for _ in 0..2_000 {
        s.emit_with(SchedulerEventKind::Selected, |now| {
            let mut e = SchedulerAdmissionEvent::new(SchedulerEventKind::Selected, now);
            e.reason_or_result = Some("x".repeat(64));
            e
        });
    }
    assert!(sink.is_failed());
    assert!(sink.events_dropped() > 0);
}
