//! Criterion bench for request admission: uncontended try_acquire/acquire + release next to a
//! tokio `Semaphore`, and the contended 1,000-task × 20-cycle run on cap 64.

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use tokio::sync::Semaphore;
use weir_benches::request_admission::{contended_once, setup, try_cycle};
use weir_contracts::RequestReleaseOutcome;

fn uncontended(c: &mut Criterion) {
    let (ctrl, item) = setup(1 << 20);
    let sem = Semaphore::new(1 << 20);
    let mut g = c.benchmark_group("request_admission_uncontended");
    g.bench_function("try_acquire_release", |b| {
        b.iter(|| try_cycle(&ctrl, &item))
    });
    g.bench_function("tokio_semaphore_try_acquire_release", |b| {
        b.iter(|| drop(std::hint::black_box(sem.try_acquire())))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("invariant: runtime builds");
    g.bench_function("acquire_release", |b| {
        b.iter(|| {
            rt.block_on(async {
                if let Ok(l) = ctrl.acquire(item.clone()).await {
                    ctrl.release(l, RequestReleaseOutcome::success());
                }
            })
        })
    });
    let sem = Arc::new(Semaphore::new(1 << 20));
    g.bench_function("tokio_semaphore_acquire_release", |b| {
        b.iter(|| rt.block_on(async { drop(std::hint::black_box(sem.acquire().await)) }))
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("invariant: runtime builds");
    let mut g = c.benchmark_group("request_admission_contended");
    g.sample_size(10);
    g.bench_function("1000_tasks_x20_cap64", |b| {
        b.iter(|| contended_once(&rt, false))
    });
    g.bench_function("tokio_semaphore_1000_tasks_x20_cap64", |b| {
        b.iter(|| contended_once(&rt, true))
    });
    g.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
