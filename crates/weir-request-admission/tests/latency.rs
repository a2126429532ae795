//! Latency saturation signal (paused time, deterministic): a scripted server that QUEUES past its
//! hidden concurrency C (FIFO, never rejects). Without the signal the limit stays at the static
//! cap; with it the limit comes down near C and latency falls back towards the unloaded value.

mod common;

use common::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use weir_contracts::payload::LimitChangeCause;
use weir_contracts::{
    ProviderModelKey, RequestDomain, RequestEventKind, RequestEventPayload, RequestReleaseOutcome,
};
use weir_request_admission::{LatencySaturationConfig, RequestAdmissionConfig};

#[derive(Debug)]
struct Outcome {
    final_limit: u32,
    mean_latency_last_quarter_ms: f64,
    max_in_flight: u32,
}

async fn simulate(config: RequestAdmissionConfig, calls: u32, hidden: usize, cap: u32) -> Outcome {
    let c = controller(config, cap);
    let server = Arc::new(Semaphore::new(hidden));
    let in_flight = Arc::new(AtomicU32::new(0));
    let max_in_flight = Arc::new(AtomicU32::new(0));
    let late_latency_us = Arc::new(AtomicU64::new(0));
    let late_count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..calls {
        let (c, server, inf, maxf, lat, cnt, done) = (
            c.clone(),
            server.clone(),
            in_flight.clone(),
            max_in_flight.clone(),
            late_latency_us.clone(),
            late_count.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let lease = c.acquire(item(RequestDomain::Chat)).await.unwrap();
            let started = Instant::now();
            let now = inf.fetch_add(1, Ordering::Relaxed) + 1;
            maxf.fetch_max(now, Ordering::Relaxed);
            {
                // The server queues instead of rejecting: wait for a slot, then 100 ms of work.
                let _slot = server.acquire().await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            inf.fetch_sub(1, Ordering::Relaxed);
            if done.fetch_add(1, Ordering::Relaxed) >= calls * 3 / 4 {
                lat.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                cnt.fetch_add(1, Ordering::Relaxed);
            }
            c.release(lease, RequestReleaseOutcome::success());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = late_count.load(Ordering::Relaxed).max(1);
    Outcome {
        final_limit: limit(&c, &chat()),
        mean_latency_last_quarter_ms: late_latency_us.load(Ordering::Relaxed) as f64
            / n as f64
            / 1000.0,
        max_in_flight: max_in_flight.load(Ordering::Relaxed),
    }
}

fn with_signal(signal: Option<LatencySaturationConfig>) -> RequestAdmissionConfig {
    let mut config = RequestAdmissionConfig::default();
    if let Some(s) = signal {
        config
            .latency_saturation
            .insert(ProviderModelKey::new("prov", "model").unwrap(), s);
    }
    config
}

#[tokio::test(start_paused = true)]
async fn off_by_default_a_queueing_server_keeps_the_limit_at_the_cap() {
    let off = simulate(with_signal(None), 2_000, 8, 64).await;
    println!("off: {off:?}");
    assert_eq!(off.final_limit, 64);
    assert_eq!(off.max_in_flight, 64);
    // Everything queues at the server: 64 in flight over 8 slots ≈ 8 × 100 ms.
    assert!(off.mean_latency_last_quarter_ms > 600.0);
}

#[tokio::test(start_paused = true)]
async fn the_signal_brings_the_limit_near_the_served_concurrency() {
    let on = simulate(
        with_signal(Some(LatencySaturationConfig::default())),
        2_000,
        8,
        64,
    )
    .await;
    println!("on: {on:?}");
    // Tolerance 2: the limit settles between C and about 2C (it probes up, then falls back).
    assert!((6..=18).contains(&on.final_limit), "{on:?}");
    assert!(on.mean_latency_last_quarter_ms < 300.0, "{on:?}");
}

#[tokio::test(start_paused = true)]
async fn the_signal_emits_a_decrease_with_its_cause_and_never_fires_below_the_limit() {
    let mut config = with_signal(Some(LatencySaturationConfig::default()));
    config.cooldown_seconds = 1.0;
    let (c, sink) = controller_with_sink(config, 16);
    // Below the limit (4 in flight of 16), even a 10× latency jump is not pressure.
    for round in 0..40u64 {
        let latency = if round < 20 { 100 } else { 1_000 };
        let leases: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(c.acquire(item(RequestDomain::Chat)).await.unwrap());
            }
            v
        };
        tokio::time::sleep(Duration::from_millis(latency)).await;
        for l in leases {
            c.release(l, RequestReleaseOutcome::success());
        }
    }
    assert_eq!(limit(&c, &chat()), 16);
    // At the limit, it fires and says why.
    for round in 0..6u64 {
        let mut v = Vec::new();
        let n = limit(&c, &chat());
        for _ in 0..n {
            v.push(c.acquire(item(RequestDomain::Chat)).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100 * (round + 5))).await;
        for l in v {
            c.release(l, RequestReleaseOutcome::success());
        }
    }
    assert!(limit(&c, &chat()) < 16);
    let decreases: Vec<_> = sink
        .request_events()
        .into_iter()
        .filter(|e| e.event_kind() == RequestEventKind::RequestLimitDecreased)
        .collect();
    assert!(!decreases.is_empty());
    assert!(decreases.iter().all(|e| matches!(
        &e.payload,
        RequestEventPayload::RequestLimitDecreased(c)
            if c.cause == Some(LimitChangeCause::LatencySaturation)
    )));
}

#[test]
fn invalid_signal_config_names_the_field() {
    let config = with_signal(Some(LatencySaturationConfig {
        min_decrease_factor: 1.0,
        ..LatencySaturationConfig::default()
    }));
    let err = config.validate().unwrap_err();
    assert_eq!(
        err.field,
        "latency_saturation[prov/model].min_decrease_factor"
    );
}
