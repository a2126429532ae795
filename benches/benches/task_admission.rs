//! Criterion bench for task admission: one dispatch op (select_next + try_acquire + commit +
//! release) on a backlog of ready tasks, next to the tokio `Semaphore` baseline. The
//! `/try_acquire_at` case passes a caller-held timestamp instead of reading the clock.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::time::{Duration, Instant};
use weir_benches::task_admission::{CycleBench, CAPACITY};

fn dispatch_cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("task_admission_dispatch_cycle");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for (tasks, groups, caller_timestamp) in [
        (10_000usize, 1usize, false),
        (10_000, 256, false),
        (100_000, 256, false),
        (100_000, 256, true),
    ] {
        let mut bench = CycleBench::new(tasks, groups);
        let label = if caller_timestamp {
            bench = bench.with_caller_timestamp();
            format!("{tasks}x{groups}/try_acquire_at")
        } else {
            format!("{tasks}x{groups}")
        };
        g.bench_with_input(BenchmarkId::from_parameter(label), &(), |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    if bench.queued() == 0 {
                        bench.release_all();
                        bench.refill();
                    }
                    let start = Instant::now();
                    while done < iters && bench.cycle() {
                        done += 1;
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

fn semaphore_baseline(c: &mut Criterion) {
    let sem = tokio::sync::Semaphore::new(CAPACITY as usize);
    c.bench_function("tokio_semaphore_acquire_release", |b| {
        b.iter(|| {
            if let Ok(p) = black_box(&sem).try_acquire() {
                drop(black_box(p));
            }
        })
    });
}

criterion_group!(benches, dispatch_cycle, semaphore_baseline);
criterion_main!(benches);
