//! Goodput: the plan's AIMD vs the default policy against scripted providers whose hidden
//! concurrency C is far below the static cap (paused time, deterministic, seeded randomness).
//!
//! The provider serves at most C calls at once; a call that arrives while C are in flight gets
//! a fast 429 (1 ms) with Retry-After. Variants add heavy-tailed (lognormal) latency, sporadic
//! 429s without Retry-After that are unrelated to load, a capacity that steps down, and 429s
//! that say a rate window is exhausted. Every call is retried until it succeeds, each attempt
//! with a fresh lease; after a 429 without Retry-After the caller backs off on its own (as the
//! runtime's executor does: a per-request jittered backoff, 25–75 ms here).

mod common;

use common::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{RateLimitSignal, RequestDomain, RequestReleaseOutcome};
use weir_request_admission::{RequestAdmissionConfig, RequestAdmissionPolicy};

/// How long a served call takes.
#[derive(Debug, Clone, Copy)]
enum Latency {
    Fixed(Duration),
    /// Lognormal with this median and sigma (of the underlying normal).
    LogNormal {
        median: Duration,
        sigma: f64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Workload {
    calls: u32,
    hidden_concurrency: u32,
    latency: Latency,
    cap: u32,
    retry_after: f64,
    /// Probability that a call the provider would serve gets a 429 without Retry-After anyway.
    sporadic: f64,
    /// `(after, capacity)`: the hidden concurrency changes at `after` from the start.
    step: Option<(Duration, u32)>,
    /// The signal the provider's concurrency 429s carry.
    signal: Option<RateLimitSignal>,
}

impl Workload {
    fn mean_latency(&self) -> f64 {
        match self.latency {
            Latency::Fixed(d) => d.as_secs_f64(),
            Latency::LogNormal { median, sigma } => {
                median.as_secs_f64() * (sigma * sigma / 2.0).exp()
            }
        }
    }
}

#[derive(Debug)]
struct Outcome {
    wall_seconds: f64,
    wall_over_ideal: f64,
    rate_limited_fraction: f64,
    attempts: u32,
    max_provider_in_flight: u32,
    final_limit: u32,
    /// Mean adaptive limit over the run (sampled every 50 ms).
    mean_limit: f64,
}

/// splitmix64: a tiny seeded generator (tests need no `rand`).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(1e-12);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
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
    let done = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let sampler = {
        let (c, done) = (c.clone(), done.clone());
        let sum = Arc::new(AtomicU64::new(0));
        let n = Arc::new(AtomicU64::new(0));
        let (s2, n2) = (sum.clone(), n.clone());
        let calls = w.calls;
        (
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) < calls {
                    s2.fetch_add(u64::from(limit(&c, &chat())), Ordering::Relaxed);
                    if let Some(s) = c
                        .pressure()
                        .snapshot(&chat())
                        .filter(|_| std::env::var("GOODPUT_TRACE").is_ok())
                    {
                        println!(
                            "t={:.2} limit={} inflight={} cooldown={:.2} ceiling={}",
                            start.elapsed().as_secs_f64(),
                            s.current_limit,
                            s.in_flight_count,
                            s.cooldown_remaining_seconds,
                            s.rate_limit_ceiling
                        );
                    }
                    n2.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }),
            sum,
            n,
        )
    };
    let mut tasks = Vec::new();
    for i in 0..w.calls {
        let (c, pif, maxf, attempts, limited, done) = (
            c.clone(),
            provider_in_flight.clone(),
            max_in_flight.clone(),
            attempts.clone(),
            limited.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(u64::from(i) * 7919 + 17);
            loop {
                let lease = c.acquire(item(RequestDomain::Chat)).await.unwrap();
                attempts.fetch_add(1, Ordering::Relaxed);
                let capacity = match w.step {
                    Some((after, cap)) if start.elapsed() >= after => cap,
                    _ => w.hidden_concurrency,
                };
                let sporadic = w.sporadic > 0.0 && rng.next_f64() < w.sporadic;
                if pif.load(Ordering::Relaxed) >= capacity || sporadic {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    limited.fetch_add(1, Ordering::Relaxed);
                    let outcome = if sporadic {
                        RequestReleaseOutcome::rate_limited(None)
                    } else {
                        let o = RequestReleaseOutcome::rate_limited(Some(w.retry_after));
                        match w.signal {
                            Some(s) => o.with_rate_limit_signal(s),
                            None => o,
                        }
                    };
                    let wait = (sporadic || w.signal.is_some()).then(|| {
                        // The executor's own per-request backoff (jittered); for a window
                        // 429 it waits the Retry-After itself.
                        if sporadic {
                            Duration::from_secs_f64(0.025 + 0.05 * rng.next_f64())
                        } else {
                            Duration::from_secs_f64(w.retry_after * (1.0 + 0.2 * rng.next_f64()))
                        }
                    });
                    c.release(lease, outcome);
                    if let Some(wait) = wait {
                        tokio::time::sleep(wait).await;
                    }
                    continue;
                }
                let now = pif.fetch_add(1, Ordering::Relaxed) + 1;
                maxf.fetch_max(now, Ordering::Relaxed);
                let latency = match w.latency {
                    Latency::Fixed(d) => d,
                    Latency::LogNormal { median, sigma } => {
                        median.mul_f64((sigma * rng.normal()).exp().min(50.0))
                    }
                };
                tokio::time::sleep(latency).await;
                pif.fetch_sub(1, Ordering::Relaxed);
                c.release(lease, RequestReleaseOutcome::success());
                done.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let wall = (Instant::now() - start).as_secs_f64();
    let (sampler, sum, n) = sampler;
    sampler.await.unwrap();
    let ideal = f64::from(w.calls) * w.mean_latency() / f64::from(w.hidden_concurrency);
    let attempts = attempts.load(Ordering::Relaxed);
    Outcome {
        wall_seconds: wall,
        wall_over_ideal: wall / ideal,
        rate_limited_fraction: f64::from(limited.load(Ordering::Relaxed)) / f64::from(attempts),
        attempts,
        max_provider_in_flight: max_in_flight.load(Ordering::Relaxed),
        final_limit: limit(&c, &chat()),
        mean_limit: sum.load(Ordering::Relaxed) as f64 / n.load(Ordering::Relaxed).max(1) as f64,
    }
}

const ISSUE_WORKLOAD: Workload = Workload {
    calls: 3000,
    hidden_concurrency: 32,
    latency: Latency::Fixed(Duration::from_millis(100)),
    cap: 128,
    retry_after: 0.5,
    sporadic: 0.0,
    step: None,
    signal: None,
};

fn report(name: &str, o: &Outcome) {
    println!(
        "{name}: wall {:.3}s = {:.3}x ideal, rate limited {:.2}% of {} attempts, max in flight {}, \
         final limit {}, mean limit {:.1}",
        o.wall_seconds,
        o.wall_over_ideal,
        o.rate_limited_fraction * 100.0,
        o.attempts,
        o.max_provider_in_flight,
        o.final_limit,
        o.mean_limit
    );
}

#[tokio::test(start_paused = true)]
async fn default_goodput_policy_beats_plan_aimd_on_hidden_concurrency() {
    let plan = simulate(RequestAdmissionPolicy::PlanAimd, ISSUE_WORKLOAD).await;
    let goodput = simulate(RequestAdmissionPolicy::default(), ISSUE_WORKLOAD).await;
    println!("C=32, 100 ms, cap 128, Retry-After 0.5 s, 3000 calls (ideal 9.375 s)");
    report("plan_aimd", &plan);
    report("goodput", &goodput);
    // Slow start: the opening burst no longer sends 128 against 32.
    assert!(goodput.wall_over_ideal <= 1.06, "{goodput:?}");
    assert!(goodput.rate_limited_fraction <= 0.02, "{goodput:?}");
    assert!(
        plan.wall_over_ideal > goodput.wall_over_ideal + 0.3,
        "{plan:?} vs {goodput:?}"
    );
    assert!(goodput.max_provider_in_flight <= 32);
    assert_eq!(goodput.final_limit, 32);
}

#[tokio::test(start_paused = true)]
async fn goodput_policy_recovers_when_capacity_is_the_cap() {
    // No hidden limit: nothing is rate limited and slow start reaches the static cap in
    // log2(64 / 8) = 3 round trips (the run's only cost over ideal).
    let w = Workload {
        calls: 640,
        hidden_concurrency: 64,
        cap: 64,
        ..ISSUE_WORKLOAD
    };
    let o = simulate(RequestAdmissionPolicy::default(), w).await;
    report("capacity = cap", &o);
    assert_eq!(o.rate_limited_fraction, 0.0);
    assert!(o.wall_seconds <= 1.0 + 0.3 + 0.01, "{o:?}");
    assert_eq!(o.final_limit, 64);
}

#[tokio::test(start_paused = true)]
async fn sporadic_429s_without_retry_after_keep_the_limit_near_capacity() {
    let clean = simulate(RequestAdmissionPolicy::default(), ISSUE_WORKLOAD).await;
    let w = Workload {
        sporadic: 0.05,
        ..ISSUE_WORKLOAD
    };
    let o = simulate(RequestAdmissionPolicy::default(), w).await;
    report("clean", &clean);
    report("sporadic 5%", &o);
    assert!(
        o.wall_seconds <= 1.15 * clean.wall_seconds,
        "{o:?} vs {clean:?}"
    );
    assert!(o.final_limit >= 30, "{o:?}");
    assert!(o.mean_limit >= 28.0, "{o:?}");
    // And against a cap that is the capacity (the issue's 32 → 1 collapse).
    let w = Workload {
        sporadic: 0.05,
        hidden_concurrency: 32,
        cap: 32,
        ..ISSUE_WORKLOAD
    };
    let o = simulate(RequestAdmissionPolicy::default(), w).await;
    report("sporadic 5%, cap 32", &o);
    assert!(o.final_limit >= 30, "{o:?}");
    assert!(o.wall_over_ideal <= 1.15, "{o:?}");
}

#[tokio::test(start_paused = true)]
async fn heavy_tailed_latency_settles_near_capacity() {
    let w = Workload {
        latency: Latency::LogNormal {
            median: Duration::from_millis(100),
            sigma: 0.8,
        },
        ..ISSUE_WORKLOAD
    };
    let o = simulate(RequestAdmissionPolicy::default(), w).await;
    report("lognormal sigma 0.8", &o);
    assert!(o.final_limit >= 30 && o.final_limit <= 33, "{o:?}");
    assert!(o.mean_limit >= 28.0, "{o:?}");
    assert!(o.rate_limited_fraction <= 0.02, "{o:?}");
    assert!(o.wall_over_ideal <= 1.15, "{o:?}");
}

#[tokio::test(start_paused = true)]
async fn a_capacity_step_down_is_followed() {
    let w = Workload {
        step: Some((Duration::from_secs(4), 16)),
        ..ISSUE_WORKLOAD
    };
    let o = simulate(RequestAdmissionPolicy::default(), w).await;
    report("capacity 32 -> 16 at 4 s", &o);
    // Physical bound: 1,280 calls in the first 4 s at 32, the remaining 1,720 at 16 (10.75 s).
    // The run pays the opening (slow start + one 0.5 s Retry-After) and two cascades at the
    // step, each idling for most of its Retry-After: ~1.13x.
    let ideal = 4.0 + 1720.0 * 0.1 / 16.0;
    assert!(o.final_limit >= 15 && o.final_limit <= 17, "{o:?}");
    assert!(o.rate_limited_fraction <= 0.02, "{o:?}");
    assert!(o.wall_seconds <= 1.15 * ideal, "{o:?} vs ideal {ideal}");
}

#[tokio::test(start_paused = true)]
async fn window_429s_never_decrease_the_limit() {
    // The provider says each 429 is a request-window 429: the limit stays where slow start
    // took it, there is no endpoint cooldown, and the callers wait per request.
    let w = Workload {
        calls: 600,
        hidden_concurrency: 24,
        cap: 32,
        signal: Some(RateLimitSignal::RequestWindow),
        ..ISSUE_WORKLOAD
    };
    let c_events = simulate(RequestAdmissionPolicy::default(), w).await;
    report("request-window 429s", &c_events);
    assert!(c_events.rate_limited_fraction > 0.0);
    assert_eq!(c_events.final_limit, 32, "{c_events:?}");
}
