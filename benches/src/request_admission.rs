//! request_admission micro benchmarks for weir-micro: uncontended try_acquire/acquire + release
//! against a same-run tokio `Semaphore` baseline, and the contended 1,000-task run.

use crate::{measure_ns_per_op, median, Baseline, MicroResult};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use weir_contracts::{RequestDomain, RequestReleaseOutcome, RequestResourceKey};
use weir_request_admission::{
    AdaptiveRequestAdmissionController, RequestAdmissionConfig, RequestAdmissionDecision,
    RequestAdmissionItem,
};

/// Samples per measurement; ours and the baseline alternate sample by sample so both see the
/// same machine load (the dev box is shared).
const SAMPLES: usize = 41;
const OPS: u64 = 20_000;
/// Samples of the contended run (each alternates ours and the baseline).
const CONTENDED_SAMPLES: usize = 11;
/// Contended run shape (the stress workload).
pub const CONTENDED_TASKS: usize = 1000;
/// Cycles per task in the contended run.
pub const CONTENDED_CYCLES: usize = 20;
/// Static cap of the contended run.
pub const CONTENDED_CAP: u32 = 64;

/// A controller (default config, no event sink) with one endpoint of `cap`, and a chat item.
pub fn setup(
    cap: u32,
) -> (
    Arc<AdaptiveRequestAdmissionController>,
    RequestAdmissionItem,
) {
    let c = AdaptiveRequestAdmissionController::new(RequestAdmissionConfig::default())
        .expect("invariant: the default config is valid");
    c.register("bench", "model", "bench", cap)
        .expect("invariant: bench names are non-empty");
    let key = RequestResourceKey::new("bench", "model", RequestDomain::Chat)
        .expect("invariant: bench names are non-empty");
    (Arc::new(c), RequestAdmissionItem::new(key))
}

/// One uncontended `try_acquire` + `release`.
pub fn try_cycle(c: &AdaptiveRequestAdmissionController, item: &RequestAdmissionItem) {
    if let RequestAdmissionDecision::Lease(l) = c.try_acquire(item.clone()) {
        c.release(l, RequestReleaseOutcome::success());
    }
}

fn row(
    name: &str,
    params: serde_json::Value,
    ns: f64,
    baseline: Option<(&str, f64)>,
) -> MicroResult {
    MicroResult {
        benchmark: name.to_string(),
        params,
        ns_per_op_median: ns,
        ratio: baseline.map(|(_, b)| ns / b),
        baseline: baseline.map(|(n, b)| Baseline {
            name: n.to_string(),
            ns_per_op_median: b,
        }),
        extra: serde_json::Map::new(),
    }
}

fn uncontended_try() -> MicroResult {
    let (c, item) = setup(1 << 20);
    let sem = Semaphore::new(1 << 20);
    let mut base_samples = Vec::with_capacity(SAMPLES);
    let mut our_samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        base_samples.push(measure_ns_per_op(1, OPS, || {
            if let Ok(p) = sem.try_acquire() {
                drop(std::hint::black_box(p));
            }
        }));
        our_samples.push(measure_ns_per_op(1, OPS, || try_cycle(&c, &item)));
    }
    let base = median(&mut base_samples);
    let ns = median(&mut our_samples);
    row(
        "request_admission_try_acquire_release",
        json!({"cap": 1 << 20, "events": "disabled"}),
        ns,
        Some(("tokio_semaphore_try_acquire_release", base)),
    )
}

fn uncontended_async() -> MicroResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("invariant: a current-thread runtime builds");
    let (c, item) = setup(1 << 20);
    let sem = Arc::new(Semaphore::new(1 << 20));
    let mut base_samples = Vec::with_capacity(SAMPLES);
    let mut our_samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        base_samples.push(rt.block_on(async {
            let start = Instant::now();
            for _ in 0..OPS {
                if let Ok(p) = sem.acquire().await {
                    drop(std::hint::black_box(p));
                }
            }
            start.elapsed().as_nanos() as f64 / OPS as f64
        }));
        our_samples.push(rt.block_on(async {
            let start = Instant::now();
            for _ in 0..OPS {
                if let Ok(l) = c.acquire(item.clone()).await {
                    c.release(l, RequestReleaseOutcome::success());
                }
            }
            start.elapsed().as_nanos() as f64 / OPS as f64
        }));
    }
    let base = median(&mut base_samples);
    let ns = median(&mut our_samples);
    row(
        "request_admission_acquire_release",
        json!({"cap": 1 << 20, "events": "disabled", "runtime": "current_thread"}),
        ns,
        Some(("tokio_semaphore_acquire_release", base)),
    )
}

/// Runs the contended workload once on `rt`: `(wall ns, max observed in flight)`.
pub fn contended_once(rt: &tokio::runtime::Runtime, use_semaphore: bool) -> (f64, u32) {
    let (c, item) = setup(CONTENDED_CAP);
    let sem = Arc::new(Semaphore::new(CONTENDED_CAP as usize));
    let live = Arc::new(AtomicU32::new(0));
    let max = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(CONTENDED_TASKS);
        for _ in 0..CONTENDED_TASKS {
            let (c, item, sem, live, max) = (
                c.clone(),
                item.clone(),
                sem.clone(),
                live.clone(),
                max.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for _ in 0..CONTENDED_CYCLES {
                    if use_semaphore {
                        let Ok(p) = sem.acquire().await else { return };
                        let now = live.fetch_add(1, Ordering::Relaxed) + 1;
                        max.fetch_max(now, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                        live.fetch_sub(1, Ordering::Relaxed);
                        drop(p);
                    } else {
                        let Ok(l) = c.acquire(item.clone()).await else {
                            return;
                        };
                        let now = live.fetch_add(1, Ordering::Relaxed) + 1;
                        max.fetch_max(now, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                        live.fetch_sub(1, Ordering::Relaxed);
                        c.release(l, RequestReleaseOutcome::success());
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    (
        start.elapsed().as_nanos() as f64,
        max.load(Ordering::Relaxed),
    )
}

fn contended() -> MicroResult {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("invariant: a multi-thread runtime builds");
    let cycles = (CONTENDED_TASKS * CONTENDED_CYCLES) as f64;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut max_in_flight = 0;
    for _ in 0..CONTENDED_SAMPLES {
        let (ns, max) = contended_once(&rt, false);
        ours.push(ns / cycles);
        max_in_flight = max_in_flight.max(max);
        base.push(contended_once(&rt, true).0 / cycles);
    }
    let ns = median(&mut ours);
    let b = median(&mut base);
    let mut r = row(
        "request_admission_contended",
        json!({"tasks": CONTENDED_TASKS, "cycles_per_task": CONTENDED_CYCLES, "cap": CONTENDED_CAP, "worker_threads": 2}),
        ns,
        Some(("tokio_semaphore_contended", b)),
    );
    r.extra.insert("cycles_per_second".into(), json!(1e9 / ns));
    r.extra.insert("max_in_flight".into(), json!(max_in_flight));
    r
}

/// Runs this area's micro benchmarks.
pub fn run() -> Vec<MicroResult> {
    vec![uncontended_try(), uncontended_async(), contended()]
}
