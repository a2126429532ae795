//! Goodput: the plan's AIMD vs the default policy against a scripted provider whose hidden
//! concurrency C is far below the static cap (paused time, deterministic).
//!
//! The provider serves at most C calls at once (100 ms each); a call that arrives while C are in
//! flight gets a fast 429 (1 ms) with Retry-After. Every call is retried until it succeeds, each
//! attempt with a fresh lease.

mod common;

use common::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{RequestDomain, RequestReleaseOutcome};
use weir_request_admission::{RequestAdmissionConfig, RequestAdmissionPolicy};

#[derive(Debug, Clone, Copy)]
struct Workload {
    calls: u32,
    hidden_concurrency: u32,
    latency: Duration,
    cap: u32,
    retry_after: f64,
}

#[derive(Debug)]
struct Outcome {
    wall_over_ideal: f64,
    rate_limited_fraction: f64,
    attempts: u32,
    max_provider_in_flight: u32,
    final_limit: u32,
}

async fn simulate(policy: RequestAdmissionPolicy, w: Workload) -> Outcome {
    let c = controller(
        RequestAdmissionConfig {
            policy,
            ..RequestAdmissionConfig::default()
        },
        w.cap,
    );
    let provider_in_flight = Arc::new(AtomicU32::new(0));
    let max_in_flight = Arc::new(AtomicU32::new(0));
    let attempts = Arc::new(AtomicU32::new(0));
    let limited = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..w.calls {
        let (c, pif, maxf, attempts, limited) = (
            c.clone(),
            provider_in_flight.clone(),
            max_in_flight.clone(),
            attempts.clone(),
            limited.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let lease = c.acquire(item(RequestDomain::Chat)).await.unwrap();
                attempts.fetch_add(1, Ordering::Relaxed);
                if pif.load(Ordering::Relaxed) >= w.hidden_concurrency {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    limited.fetch_add(1, Ordering::Relaxed);
                    c.release(
                        lease,
                        RequestReleaseOutcome::rate_limited(Some(w.retry_after)),
                    );
                    continue;
                }
                let now = pif.fetch_add(1, Ordering::Relaxed) + 1;
                maxf.fetch_max(now, Ordering::Relaxed);
                tokio::time::sleep(w.latency).await;
                pif.fetch_sub(1, Ordering::Relaxed);
                c.release(lease, RequestReleaseOutcome::success());
                return;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let wall = (Instant::now() - start).as_secs_f64();
    let ideal = f64::from(w.calls) * w.latency.as_secs_f64() / f64::from(w.hidden_concurrency);
    let attempts = attempts.load(Ordering::Relaxed);
    Outcome {
        wall_over_ideal: wall / ideal,
        rate_limited_fraction: f64::from(limited.load(Ordering::Relaxed)) / f64::from(attempts),
        attempts,
        max_provider_in_flight: max_in_flight.load(Ordering::Relaxed),
        final_limit: limit(&c, &chat()),
    }
}

const ISSUE_WORKLOAD: Workload = Workload {
    calls: 3000,
    hidden_concurrency: 32,
    latency: Duration::from_millis(100),
    cap: 128,
    retry_after: 0.5,
};

#[tokio::test(start_paused = true)]
async fn default_goodput_policy_beats_plan_aimd_on_hidden_concurrency() {
    let plan = simulate(RequestAdmissionPolicy::PlanAimd, ISSUE_WORKLOAD).await;
    let goodput = simulate(RequestAdmissionPolicy::default(), ISSUE_WORKLOAD).await;
    println!("C=32, 100 ms, cap 128, Retry-After 0.5 s, 3000 calls (ideal 9.375 s)");
    println!(
        "plan_aimd: wall/ideal {:.3}, rate limited {:.2}% of {} attempts, final limit {}",
        plan.wall_over_ideal,
        plan.rate_limited_fraction * 100.0,
        plan.attempts,
        plan.final_limit
    );
    println!(
        "goodput:   wall/ideal {:.3}, rate limited {:.2}% of {} attempts, final limit {}",
        goodput.wall_over_ideal,
        goodput.rate_limited_fraction * 100.0,
        goodput.attempts,
        goodput.final_limit
    );
    assert!(goodput.wall_over_ideal <= 1.10, "{goodput:?}");
    assert!(goodput.rate_limited_fraction <= 0.05, "{goodput:?}");
    assert!(
        plan.wall_over_ideal > goodput.wall_over_ideal + 0.3,
        "{plan:?} vs {goodput:?}"
    );
    assert!(goodput.max_provider_in_flight <= 32);
}

#[tokio::test(start_paused = true)]
async fn goodput_policy_recovers_when_capacity_is_the_cap() {
    // No hidden limit: nothing is rate limited and the run is ideal at the static cap.
    let w = Workload {
        calls: 640,
        hidden_concurrency: 64,
        latency: Duration::from_millis(100),
        cap: 64,
        retry_after: 0.5,
    };
    let o = simulate(RequestAdmissionPolicy::default(), w).await;
    assert_eq!(o.rate_limited_fraction, 0.0);
    assert!(o.wall_over_ideal <= 1.01, "{o:?}");
    assert_eq!(o.final_limit, 64);
}
