//! Multi-threaded stress: 1,000 tasks × 20 acquire/yield/release cycles on cap 64.

mod common;

use common::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use weir_contracts::{RequestDomain, RequestReleaseOutcome};
use weir_request_admission::RequestAdmissionConfig;

#[test]
fn thousand_tasks_twenty_cycles_cap_64() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = controller(RequestAdmissionConfig::default(), 64);
    let live = Arc::new(AtomicU32::new(0));
    let max = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(1000);
        for t in 0..1000 {
            let (c, live, max, done) = (c.clone(), live.clone(), max.clone(), done.clone());
            let domain = if t % 4 == 0 {
                RequestDomain::Embedding
            } else {
                RequestDomain::Chat
            };
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    let lease = c.acquire(item(domain)).await.unwrap();
                    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    live.fetch_sub(1, Ordering::SeqCst);
                    assert!(c.release(lease, RequestReleaseOutcome::success()).released);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 1000);
    let observed = max.load(Ordering::SeqCst);
    assert!(observed <= 64, "max in flight {observed}");
    assert!(observed > 1, "the run was actually concurrent");
    let g = c
        .pressure()
        .global_snapshot(&chat().provider_model())
        .unwrap();
    assert_eq!(
        (
            g.aggregate_in_flight,
            g.aggregate_active_lease_count,
            g.aggregate_waiters
        ),
        (0, 0, 0)
    );
    assert!(c.pressure().release_diagnostics().is_empty());
}
