//! Proptest state machine: random acquire / release / outcome / time / cancel / shutdown sequences
//! checked against the ledger invariants after every step.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use weir_contracts::{LeaseId, RequestDomain, RequestReleaseOutcome, RequestReleaseOutcomeKind};
use weir_request_admission::{
    AdaptiveRequestAdmissionController, GoodputPolicyConfig, RequestAdmissionConfig,
    RequestAdmissionDecision, RequestAdmissionError, RequestAdmissionLease, RequestAdmissionPolicy,
};

const DOMAINS: [RequestDomain; 2] = [RequestDomain::Chat, RequestDomain::Embedding];
const OUTCOMES: [RequestReleaseOutcomeKind; 5] = [
    RequestReleaseOutcomeKind::Success,
    RequestReleaseOutcomeKind::Success,
    RequestReleaseOutcomeKind::RateLimited,
    RequestReleaseOutcomeKind::ProviderFailure,
    RequestReleaseOutcomeKind::LocalTimeout,
];

#[derive(Debug, Clone)]
enum Op {
    TryAcquire(usize),
    StartAcquire(usize, Option<u16>),
    PollAll,
    Release(usize, usize, Option<u16>),
    DropLease(usize),
    DuplicateRelease(usize),
    Cancel(usize),
    Advance(u16),
    RaiseCap(u32),
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize).prop_map(Op::TryAcquire),
        6 => (0..2usize, proptest::option::weighted(0.5, 0..1500u16)).prop_map(|(d, t)| Op::StartAcquire(d, t)),
        5 => Just(Op::PollAll),
        8 => (any::<usize>(), 0..OUTCOMES.len(), proptest::option::of(0..3000u16)).prop_map(|(i, o, r)| Op::Release(i, o, r)),
        2 => any::<usize>().prop_map(Op::DropLease),
        1 => any::<usize>().prop_map(Op::DuplicateRelease),
        2 => any::<usize>().prop_map(Op::Cancel),
        4 => (1..2500u16).prop_map(Op::Advance),
        1 => (1..4u32).prop_map(Op::RaiseCap),
        1 => Just(Op::Shutdown),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    cap: u32,
    goodput: bool,
    ramp_seconds: u8,
    factor: f64,
    successes: u32,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1..6u32,
        any::<bool>(),
        prop_oneof![3 => Just(0u8), 1 => 1..5u8],
        0.3..0.9f64,
        1..4u32,
    )
        .prop_map(|(cap, goodput, ramp_seconds, factor, successes)| Setup {
            cap,
            goodput,
            ramp_seconds,
            factor,
            successes,
        })
}

type Pending =
    Pin<Box<dyn Future<Output = Result<RequestAdmissionLease, RequestAdmissionError>> + Send>>;

struct Model {
    c: Arc<AdaptiveRequestAdmissionController>,
    cap: u32,
    held: Vec<RequestAdmissionLease>,
    pending: Vec<Pending>,
    released: HashSet<LeaseId>,
    issued: HashSet<LeaseId>,
}

impl Model {
    fn check(&self, after_poll: bool) -> Result<(), TestCaseError> {
        let p = self.c.pressure();
        let g = p.global_snapshot(&chat().provider_model()).unwrap();
        prop_assert!(
            g.aggregate_in_flight <= g.static_cap,
            "aggregate {} > cap {}",
            g.aggregate_in_flight,
            g.static_cap
        );
        prop_assert_eq!(g.static_cap, self.cap);
        let mut sum = 0;
        let mut waiters = 0;
        for d in DOMAINS {
            if let Some(s) = p.snapshot(&key(d)) {
                prop_assert!(
                    s.current_limit >= 1 && s.current_limit <= s.effective_max,
                    "limit {} outside [1, {}]",
                    s.current_limit,
                    s.effective_max
                );
                prop_assert!(s.effective_max <= g.static_cap);
                sum += s.in_flight_count;
                waiters += s.waiters;
            }
        }
        prop_assert_eq!(sum, g.aggregate_in_flight);
        let held = self.held.len() as u32;
        prop_assert!(g.aggregate_in_flight >= held, "a held lease is not counted");
        prop_assert!(
            g.aggregate_in_flight <= held + self.pending.len() as u32,
            "a lease was lost"
        );
        prop_assert!(waiters as usize <= self.pending.len());
        if after_poll {
            prop_assert_eq!(
                g.aggregate_in_flight,
                held,
                "every admitted waiter was claimed"
            );
        }
        Ok(())
    }

    fn take_lease(&mut self, l: RequestAdmissionLease) -> Result<(), TestCaseError> {
        prop_assert!(self.issued.insert(l.lease_id()), "lease id issued twice");
        self.held.push(l);
        Ok(())
    }

    async fn poll_all(&mut self) -> Result<(), TestCaseError> {
        let mut still = Vec::new();
        for mut f in std::mem::take(&mut self.pending) {
            match poll_once(&mut f).await {
                Poll::Ready(Ok(l)) => self.take_lease(l)?,
                Poll::Ready(Err(e)) => {
                    prop_assert!(e.denied().is_some());
                }
                Poll::Pending => still.push(f),
            }
        }
        self.pending = still;
        Ok(())
    }
}

async fn run(setup: Setup, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let policy = if setup.goodput {
        RequestAdmissionPolicy::Goodput(GoodputPolicyConfig {
            probe_hold_min_seconds: 2.0,
            ..GoodputPolicyConfig::default()
        })
    } else {
        RequestAdmissionPolicy::PlanAimd
    };
    let config = RequestAdmissionConfig {
        policy,
        cooldown_seconds: 0.5,
        max_retry_after_seconds: 2.0,
        startup_ramp_seconds: f64::from(setup.ramp_seconds),
        multiplicative_decrease_factor: setup.factor,
        successes_until_increase: setup.successes,
        ..RequestAdmissionConfig::default()
    };
    let c = controller(config, setup.cap);
    let mut m = Model {
        c: c.clone(),
        cap: setup.cap,
        held: Vec::new(),
        pending: Vec::new(),
        released: HashSet::new(),
        issued: HashSet::new(),
    };
    for op in ops {
        let mut after_poll = false;
        match op {
            Op::TryAcquire(d) => match c.try_acquire(item(DOMAINS[d])) {
                RequestAdmissionDecision::Lease(l) => {
                    let s = c.pressure().snapshot(l.resource()).unwrap();
                    prop_assert!(s.in_flight_count <= l.current_adaptive_limit());
                    m.take_lease(l)?;
                }
                RequestAdmissionDecision::Denied(_) => {}
            },
            Op::StartAcquire(d, t) => {
                let mut it = item(DOMAINS[d]);
                if let Some(ms) = t {
                    it = it.with_queue_wait_timeout(Duration::from_millis(u64::from(ms)));
                }
                let c2 = c.clone();
                let mut f: Pending = Box::pin(async move { c2.acquire(it).await });
                match poll_once(&mut f).await {
                    Poll::Ready(Ok(l)) => m.take_lease(l)?,
                    Poll::Ready(Err(e)) => prop_assert!(e.denied().is_some()),
                    Poll::Pending => m.pending.push(f),
                }
            }
            Op::PollAll => {
                m.poll_all().await?;
                after_poll = true;
            }
            Op::Release(i, o, ra) => {
                if !m.held.is_empty() {
                    let l = m.held.swap_remove(i % m.held.len());
                    let id = l.lease_id();
                    let mut outcome = RequestReleaseOutcome::of(OUTCOMES[o]);
                    if OUTCOMES[o] == RequestReleaseOutcomeKind::RateLimited {
                        outcome.retry_after_seconds = ra.map(|ms| f64::from(ms) / 1000.0);
                    }
                    let r = c.release(l, outcome);
                    prop_assert!(r.released, "a held lease must release: {:?}", r.reason);
                    prop_assert!(m.released.insert(id), "released twice");
                }
            }
            Op::DropLease(i) => {
                if !m.held.is_empty() {
                    let l = m.held.swap_remove(i % m.held.len());
                    m.released.insert(l.lease_id());
                    drop(l);
                }
            }
            Op::DuplicateRelease(i) => {
                if !m.held.is_empty() {
                    let l = m.held.swap_remove(i % m.held.len());
                    let copy = l.detached();
                    m.released.insert(l.lease_id());
                    prop_assert!(c.release(l, RequestReleaseOutcome::success()).released);
                    let before = c
                        .pressure()
                        .global_snapshot(&chat().provider_model())
                        .unwrap()
                        .aggregate_in_flight;
                    let r = c.release(copy, RequestReleaseOutcome::success());
                    prop_assert!(!r.released);
                    let after = c
                        .pressure()
                        .global_snapshot(&chat().provider_model())
                        .unwrap()
                        .aggregate_in_flight;
                    prop_assert_eq!(before, after, "a duplicate release changed a counter");
                }
            }
            Op::Cancel(i) => {
                if !m.pending.is_empty() {
                    let f = m.pending.swap_remove(i % m.pending.len());
                    drop(f);
                }
            }
            Op::Advance(ms) => {
                tokio::time::advance(Duration::from_millis(u64::from(ms))).await;
                settle().await;
            }
            Op::RaiseCap(by) => {
                m.cap += by;
                c.register("prov", "model", "alias", m.cap).unwrap();
            }
            Op::Shutdown => {
                c.shutdown();
                m.poll_all().await?;
                prop_assert!(m.pending.is_empty(), "shutdown must end every wait");
                after_poll = true;
            }
        }
        m.check(after_poll)?;
    }
    // Tear down: cancel every wait, release every lease: all counters return to zero.
    m.pending.clear();
    for l in m.held.drain(..) {
        prop_assert!(c.release(l, RequestReleaseOutcome::success()).released);
    }
    let p = c.pressure();
    let g = p.global_snapshot(&chat().provider_model()).unwrap();
    prop_assert_eq!(
        (
            g.aggregate_in_flight,
            g.aggregate_active_lease_count,
            g.aggregate_waiters
        ),
        (0, 0, 0)
    );
    for s in p.snapshots() {
        prop_assert_eq!(
            (s.in_flight_count, s.active_lease_count, s.waiters),
            (0, 0, 0)
        );
    }
    prop_assert!(p
        .release_diagnostics()
        .keys()
        .all(|r| *r == weir_contracts::ReleaseReason::Duplicate));
    Ok(())
}

proptest! {
    // `ProptestConfig::default()` reads PROPTEST_CASES (256 when unset).
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn ledger_invariants_hold_under_random_operations(
        setup in setup(),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(setup, ops))?;
    }
}
