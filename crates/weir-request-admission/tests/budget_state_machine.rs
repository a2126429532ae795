//! Proptest state machine over the budget ledger (paused tokio time): every admission the
//! ledger schedules would be accepted by a provider token bucket with the configured rate and
//! the documented burst; no 60 s window gets more requests than the budget plus the burst; slots
//! are FIFO; every reservation settles, refunds or is kept exactly once; nothing is left behind.

use proptest::prelude::*;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{ProviderModelKey, RateLimitObservation, TokenUsage, WindowObservation};
use weir_request_admission::{
    BudgetConfig, BudgetDemand, BudgetLedger, BudgetLimits, BudgetReservation,
};

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        input: u64,
        output: u64,
    },
    Advance {
        ms: u64,
    },
    Start(usize),
    Settle {
        idx: usize,
        usage: Option<(u8, u8)>,
        obs: Option<ObsSpec>,
    },
    Drop(usize),
    /// Sends it and settles it as a token-window 429 whose `retry-after` says it needed
    /// `extra` tokens more than it reserved: the ledger learns the provider's extra charge and
    /// re-books everything not sent yet (`Window::release_unsent`).
    SettleRefused {
        idx: usize,
        extra: u8,
    },
}

#[derive(Debug, Clone, Copy)]
struct ObsSpec {
    /// 0: none, 1: half the configured limit, 2: twice it.
    limit: u8,
    remaining: Option<u64>,
    reset_ms: Option<u64>,
    tokens: bool,
}

fn op() -> impl Strategy<Value = Op> {
    let obs = (
        0..3u8,
        proptest::option::of(0..5u64),
        proptest::option::of(0..3_000u64),
        any::<bool>(),
    )
        .prop_map(|(limit, remaining, reset_ms, tokens)| ObsSpec {
            limit,
            remaining,
            reset_ms,
            tokens,
        });
    prop_oneof![
        4 => (0..40u64, 0..40u64).prop_map(|(input, output)| Op::Reserve { input, output }),
        3 => (0..800u64).prop_map(|ms| Op::Advance { ms }),
        3 => any::<usize>().prop_map(Op::Start),
        3 => (any::<usize>(), proptest::option::of((0..=200u8, 0..=200u8)), proptest::option::weighted(0.3, obs))
            .prop_map(|(idx, usage, obs)| Op::Settle { idx, usage, obs }),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => (any::<usize>(), 1..30u8).prop_map(|(idx, extra)| Op::SettleRefused { idx, extra }),
    ]
}

struct Live {
    r: BudgetReservation,
    used: bool,
    input: u64,
    output: u64,
    /// Ledger order of the reservation: its admission sorts among refunds by when it was
    /// reserved (the ledger pre-debits it then), not by when the caller got round to it.
    seq: u64,
}

/// One event the provider-side bucket model replays, in (time, ledger order).
#[derive(Debug, Clone, Copy)]
struct Ev {
    t_ns: u128,
    seq: u64,
    kind: EvKind,
}

#[derive(Debug, Clone, Copy)]
enum EvKind {
    Admit(u64),
    Refund(u64),
    Charge(u64),
}

/// Replays `events` against a token bucket (capacity `cap`, `per_minute` refill, full at 0):
/// every admission must find `min(n, cap)` units.
fn check_bucket(mut events: Vec<Ev>, per_minute: u64, cap: u64) -> Result<(), String> {
    events.sort_by_key(|e| (e.t_ns, e.seq));
    let rate = per_minute as f64 / 60e9;
    let cap = cap as f64;
    let (mut level, mut t) = (cap, 0u128);
    for e in events {
        level = (level + (e.t_ns - t) as f64 * rate).min(cap);
        t = e.t_ns;
        match e.kind {
            EvKind::Admit(n) => {
                let need = (n as f64).min(cap);
                if level + 1e-6 < need {
                    return Err(format!(
                        "admission of {n} at {} ns found {level:.6} (cap {cap})",
                        e.t_ns
                    ));
                }
                level -= n as f64;
            }
            EvKind::Refund(n) => level = (level + n as f64).min(cap),
            EvKind::Charge(n) => level -= n as f64,
        }
    }
    Ok(())
}

fn run(rpm: u64, tpm: u64, burst_seconds: f64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let key = ProviderModelKey::new("p", "m").unwrap();
        let ledger = BudgetLedger::new(BudgetConfig {
            burst_seconds,
            ..BudgetConfig::default()
        })
        .unwrap();
        ledger
            .register(
                &key,
                BudgetLimits::none()
                    .with_requests_per_minute(rpm)
                    .with_tokens_per_minute(tpm),
            )
            .unwrap();
        let start = Instant::now();
        let ns = |t: Instant| (t - start).as_nanos();
        let mut live: Vec<Live> = Vec::new();
        let (mut seq, mut reserved, mut settled, mut refunded, mut kept) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut req_events = Vec::new();
        let mut tok_events = Vec::new();
        let mut req_admits: Vec<u128> = Vec::new();
        let mut last_tok_slot: Option<Instant> = None;
        let mut last_slot: Option<Instant> = None;
        let mut max_tokens = 0u64;
        let mut learned_burst = [0u64; 4];
        for op in ops {
            seq += 1;
            match op {
                Op::Reserve { input, output } => {
                    let r = ledger.reserve(&key, BudgetDemand::new(input, output));
                    if let Some(l) = last_slot {
                        prop_assert!(r.ready_at() >= l, "FIFO: slots never go back");
                    }
                    last_slot = Some(r.ready_at());
                    if input + output > 0 {
                        last_tok_slot = Some(
                            last_tok_slot.map_or(r.ready_at(), |l: Instant| l.max(r.ready_at())),
                        );
                    }
                    max_tokens = max_tokens.max(input + output);
                    reserved += 1;
                    live.push(Live {
                        r,
                        used: false,
                        input,
                        output,
                        seq,
                    });
                }
                Op::Advance { ms } => tokio::time::advance(Duration::from_millis(ms)).await,
                Op::Start(i) | Op::Settle { idx: i, .. } | Op::SettleRefused { idx: i, .. }
                    if !live.is_empty() =>
                {
                    let i = i % live.len();
                    if !live[i].used {
                        let at = live[i].r.ready_at();
                        if at > Instant::now() {
                            tokio::time::advance(at - Instant::now()).await;
                        }
                        let booked_at = live[i].r.ready_at();
                        live[i].r.ready().await;
                        // `ready` may have re-booked (a pacing change since the reservation):
                        // then it was pre-debited now, after every refund so far.
                        let at = live[i].r.ready_at();
                        if at != booked_at {
                            live[i].seq = seq;
                        }
                        if live[i].input + live[i].output > 0 {
                            last_tok_slot = Some(last_tok_slot.map_or(at, |l| l.max(at)));
                        }
                        live[i].r.mark_used();
                        live[i].used = true;
                        let seq = live[i].seq;
                        req_events.push(Ev {
                            t_ns: ns(at),
                            seq,
                            kind: EvKind::Admit(1),
                        });
                        req_admits.push(ns(at));
                        let n = live[i].input + live[i].output;
                        if n > 0 {
                            tok_events.push(Ev {
                                t_ns: ns(at),
                                seq,
                                kind: EvKind::Admit(n),
                            });
                        }
                    }
                    if let Op::SettleRefused { extra, .. } = op {
                        let l = live.swap_remove(i);
                        // Needed = remaining (0) + retry_after × rate: what it reserved + extra.
                        let needed = l.input + l.output + u64::from(extra);
                        let retry_after =
                            Duration::from_nanos((needed * 60_000_000_000).div_ceil(tpm));
                        let obs = RateLimitObservation {
                            tokens: WindowObservation {
                                limit: Some(tpm),
                                remaining: Some(0),
                                reset_after: None,
                            },
                            ..RateLimitObservation::default()
                        };
                        let extra_before = ledger
                            .snapshot(&key, Instant::now())
                            .map_or(0, |s| s.extra_tokens_per_request);
                        l.r.settle_refused(Some(&obs), retry_after);
                        settled += 1;
                        let extra_after = ledger
                            .snapshot(&key, Instant::now())
                            .map_or(0, |s| s.extra_tokens_per_request);
                        if extra_before == 0 && extra_after > 0 {
                            // The first extra learned releases everything unsent to re-book:
                            // slots handed out before are void (FIFO restarts), and refunds
                            // and charges take effect after what was sent (nothing sent has a
                            // slot past now) and what is booked from here on.
                            last_slot = None;
                            let now = Instant::now();
                            last_tok_slot = last_tok_slot.map(|l: Instant| l.min(now));
                            // The refunds and charges deferred past the queue (their responses
                            // had arrived) now take effect at once.
                            for e in req_events.iter_mut().chain(tok_events.iter_mut()) {
                                if !matches!(e.kind, EvKind::Admit(_)) && e.t_ns > ns(now) {
                                    e.t_ns = ns(now);
                                }
                            }
                        }
                        if let Some(snap) = ledger.snapshot(&key, Instant::now()) {
                            for (deepest, w) in learned_burst.iter_mut().zip(&snap.windows) {
                                *deepest = (*deepest).max(w.burst_units.unwrap_or(0));
                            }
                        }
                    }
                    if let Op::Settle { usage, obs, .. } = op {
                        let l = live.swap_remove(i);
                        let now = Instant::now();
                        let eff = last_tok_slot.map_or(now, |s| s.max(now));
                        let usage = usage.map(|(a, b)| TokenUsage {
                            input_tokens: l.input * u64::from(a) / 100,
                            output_tokens: l.output * u64::from(b) / 100,
                        });
                        if let Some(u) = usage {
                            let (had, used) = (l.input + l.output, u.total());
                            if used > had {
                                tok_events.push(Ev {
                                    t_ns: ns(eff),
                                    seq,
                                    kind: EvKind::Charge(used - had),
                                });
                            } else if had > used {
                                tok_events.push(Ev {
                                    t_ns: ns(eff),
                                    seq,
                                    kind: EvKind::Refund(had - used),
                                });
                            }
                        }
                        // Headers tighten; with a burst they could change B, so only with burst 0.
                        let obs = obs.filter(|_| burst_seconds == 0.0).map(|o| {
                            let base = if o.tokens { tpm } else { rpm };
                            let w = WindowObservation {
                                limit: match o.limit {
                                    1 => Some((base / 2).max(1)),
                                    2 => Some(base * 2),
                                    _ => None,
                                },
                                remaining: o.remaining,
                                reset_after: o.reset_ms.map(Duration::from_millis),
                            };
                            if o.tokens {
                                RateLimitObservation {
                                    tokens: w,
                                    ..RateLimitObservation::default()
                                }
                            } else {
                                RateLimitObservation {
                                    requests: w,
                                    ..RateLimitObservation::default()
                                }
                            }
                        });
                        l.r.settle(usage, obs.as_ref());
                        settled += 1;
                        // A bucket-shaped header may teach a deeper burst (see plans/budgets.md):
                        // the provider-side model takes the deepest burst the ledger ever used.
                        if let Some(snap) = ledger.snapshot(&key, Instant::now()) {
                            for (deepest, w) in learned_burst.iter_mut().zip(&snap.windows) {
                                *deepest = (*deepest).max(w.burst_units.unwrap_or(0));
                            }
                        }
                    }
                }
                Op::Drop(i) if !live.is_empty() => {
                    let l = live.swap_remove(i % live.len());
                    if l.used {
                        kept += 1
                    } else {
                        refunded += 1
                    }
                    drop(l.r);
                }
                _ => {}
            }
        }
        for l in live.drain(..) {
            if l.used {
                kept += 1
            } else {
                refunded += 1
            }
        }
        let snap = ledger.snapshot(&key, Instant::now()).unwrap();
        prop_assert_eq!(snap.reservations, reserved);
        prop_assert_eq!(
            (snap.settled, snap.refunded, snap.kept_after_use),
            (settled, refunded, kept)
        );
        prop_assert_eq!(snap.outstanding, 0);
        prop_assert!(
            snap.windows.iter().all(|w| w.reserved_units == 0),
            "{:?}",
            snap.windows
        );

        let burst = |limit: u64| ((limit as f64 * burst_seconds / 60.0).floor() as u64).max(1);
        let (b_req, b_tok) = (
            burst(rpm).max(learned_burst[0]),
            burst(tpm).max(learned_burst[1]),
        );
        check_bucket(req_events, rpm, b_req).map_err(TestCaseError::fail)?;
        check_bucket(tok_events, tpm, b_tok.max(max_tokens)).map_err(TestCaseError::fail)?;
        // No 60 s window gets more than the budget plus the burst.
        req_admits.sort_unstable();
        for (i, a) in req_admits.iter().enumerate() {
            let in_window = req_admits[i..]
                .iter()
                .take_while(|t| **t < a + 60_000_000_000)
                .count() as u64;
            prop_assert!(
                in_window <= rpm + b_req,
                "{in_window} requests in 60 s (budget {rpm}, burst {b_req})"
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn budgets_hold_and_every_reservation_resolves_once(
        rpm in 1..400u64,
        tpm in 20..6_000u64,
        burst in prop_oneof![Just(0.0f64), Just(0.5), Just(3.0)],
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(rpm, tpm, burst, ops)?;
    }
}
