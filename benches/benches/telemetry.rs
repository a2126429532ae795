//! Criterion bench for weir-telemetry: unwanted-emit cost, accepted-emit cost, JSONL throughput.
//!
//! Run: `cargo bench -p weir-benches --bench telemetry -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_contracts::payload::RetryDeferred;
use weir_contracts::{
    ControllerGeneration, LeaseId, RuntimeCorrelation, SchedulerAdmissionEvent, SchedulerEventKind,
    SchedulerEventPayload, SchedulerResourceKey, TaskExecutionId, TaskId,
};
use weir_telemetry::{EventSink, EventStream, JsonlEventSink, JsonlWriteMode, MonotonicClock};

/// Accepts one kind only, does nothing with it.
struct OnlyQueueEmpty;

impl EventSink<SchedulerAdmissionEvent> for OnlyQueueEmpty {
    fn accepts(&self, kind: SchedulerEventKind) -> bool {
        kind == SchedulerEventKind::QueueEmpty
    }
    fn emit(&self, event: &SchedulerAdmissionEvent) {
        black_box(event);
    }
}

/// Accepts everything, does nothing with it.
struct Noop;

impl EventSink<SchedulerAdmissionEvent> for Noop {
    fn emit(&self, event: &SchedulerAdmissionEvent) {
        black_box(event);
    }
}

/// A realistic task event: ids, correlation, resource key, two diagnostics.
fn realistic(now: f64, i: u64) -> SchedulerAdmissionEvent {
    let mut e = SchedulerAdmissionEvent::new(SchedulerEventKind::RetryDeferred, now);
    e.task_id = Some(TaskId::stable("answer", 3, Some(i), "cell"));
    e.task_execution_id = Some(TaskExecutionId(i));
    e.task_lease_id = Some(LeaseId::new(ControllerGeneration(1), i));
    e.scheduler_resource_key = Some(SchedulerResourceKey::submission());
    e.captured_correlation = Some(RuntimeCorrelation {
        run_id: "run-0001".into(),
        row_group: Some(3),
        task_column: Some("answer".into()),
        task_type: Some("cell".into()),
        scheduling_group_kind: Some("model".into()),
        scheduling_group_identity_hash: Some("0123456789abcdef".into()),
        task_execution_id: Some(TaskExecutionId(i)),
    });
    e.payload = SchedulerEventPayload::RetryDeferred(RetryDeferred {
        delay_seconds: 0.25,
        retry: Some(1),
        ..Default::default()
    });
    e
}

fn emit_unwanted(c: &mut Criterion) {
    let mut g = c.benchmark_group("telemetry/emit_with_unwanted");
    let filtered: EventStream<SchedulerAdmissionEvent> =
        EventStream::single(Arc::new(OnlyQueueEmpty), MonotonicClock::start());
    let disabled: EventStream<SchedulerAdmissionEvent> = EventStream::disabled();
    let mut i = 0u64;
    g.bench_function("filtered_kind", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            filtered.emit_with(black_box(SchedulerEventKind::WorkerSpawned), |now| {
                realistic(now, i)
            });
        })
    });
    g.bench_function("disabled_stream", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            disabled.emit_with(black_box(SchedulerEventKind::WorkerSpawned), |now| {
                realistic(now, i)
            });
        })
    });
    g.finish();
}

fn emit_accepted(c: &mut Criterion) {
    let mut g = c.benchmark_group("telemetry/emit_with_accepted");
    let noop: EventStream<SchedulerAdmissionEvent> =
        EventStream::single(Arc::new(Noop), MonotonicClock::start());
    let mut i = 0u64;
    g.bench_function("noop_sink_minimal_event", |b| {
        b.iter(|| {
            noop.emit_with(black_box(SchedulerEventKind::QueueEmpty), |now| {
                SchedulerAdmissionEvent::new(SchedulerEventKind::QueueEmpty, now)
            });
        })
    });
    g.bench_function("noop_sink_realistic_event", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            noop.emit_with(black_box(SchedulerEventKind::WorkerSpawned), |now| {
                realistic(now, i)
            });
        })
    });
    g.finish();
}

fn jsonl_throughput(c: &mut Criterion) {
    let path: PathBuf =
        std::env::temp_dir().join(format!("weir-telemetry-bench-{}.jsonl", std::process::id()));
    // Bytes per line of the realistic event, to turn events/s into MB/s.
    {
        let _ = std::fs::remove_file(&path);
        let sink = Arc::new(
            JsonlEventSink::open_with(&path, JsonlWriteMode::Inline)
                .expect("bench: open temp file"),
        );
        EventSink::<SchedulerAdmissionEvent>::emit(&*sink, &realistic(1.0, 12_345));
        sink.close().expect("bench: write temp file");
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        eprintln!("telemetry/jsonl: one realistic event line = {bytes} bytes");
    }
    let mut g = c.benchmark_group("telemetry/jsonl");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    for mode in [JsonlWriteMode::Inline, JsonlWriteMode::Background] {
        // Per event, as seen by the emitting thread; the sample ends with close() (flush + join),
        // so every event of the sample is on disk when its time is taken.
        g.bench_with_input(
            BenchmarkId::new("emit_then_close", format!("{mode:?}")),
            &mode,
            |b, mode| {
                b.iter_custom(|iters| {
                    let _ = std::fs::remove_file(&path);
                    let sink =
                        Arc::new(JsonlEventSink::open_with(&path, *mode).expect("bench: open"));
                    let stream: EventStream<SchedulerAdmissionEvent> =
                        EventStream::single(sink.clone(), MonotonicClock::start());
                    let start = Instant::now();
                    for i in 0..iters {
                        stream
                            .emit_with(SchedulerEventKind::WorkerSpawned, |now| realistic(now, i));
                    }
                    sink.close().expect("bench: write");
                    start.elapsed()
                })
            },
        );
        // Producer-side cost only (close happens outside the timed region).
        g.bench_with_input(
            BenchmarkId::new("emit_only", format!("{mode:?}")),
            &mode,
            |b, mode| {
                b.iter_custom(|iters| {
                    let _ = std::fs::remove_file(&path);
                    let sink =
                        Arc::new(JsonlEventSink::open_with(&path, *mode).expect("bench: open"));
                    let stream: EventStream<SchedulerAdmissionEvent> =
                        EventStream::single(sink.clone(), MonotonicClock::start());
                    let start = Instant::now();
                    for i in 0..iters {
                        stream
                            .emit_with(SchedulerEventKind::WorkerSpawned, |now| realistic(now, i));
                    }
                    let elapsed = start.elapsed();
                    sink.close().expect("bench: write");
                    elapsed
                })
            },
        );
    }
    g.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = emit_unwanted, emit_accepted, jsonl_throughput
}
criterion_main!(benches);
