//! Budget ledger behaviour under paused time: pacing, FIFO, refunds, charges, headers, blocks.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{ProviderModelKey, RateLimitObservation, TokenUsage, WindowObservation};
use weir_request_admission::{BudgetConfig, BudgetDemand, BudgetKind, BudgetLedger, BudgetLimits};

fn key() -> ProviderModelKey {
    ProviderModelKey::new("p", "m").unwrap()
}

fn ledger(limits: BudgetLimits) -> BudgetLedger {
    let l = BudgetLedger::new(BudgetConfig::default()).unwrap();
    l.register(&key(), limits).unwrap();
    l
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn requests_are_paced_at_the_rate_and_served_in_order() {
    let l = Arc::new(ledger(BudgetLimits::none().with_requests_per_minute(600)));
    let start = Instant::now();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..10u32 {
        let mut r = l.reserve(&key(), BudgetDemand::new(1, 1));
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            r.ready().await;
            r.mark_used();
            order.lock().unwrap().push((i, start.elapsed()));
            r.settle(None, None);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    for (pos, (i, at)) in order.iter().enumerate() {
        assert_eq!(*i as usize, pos, "FIFO");
        assert_eq!(*at, 100 * MS * *i, "one every 100 ms");
    }
    let snap = l.snapshot(&key(), Instant::now()).unwrap();
    let w = snap.window(BudgetKind::Requests).unwrap();
    assert_eq!(
        (snap.outstanding, snap.settled, w.reserved_units),
        (0, 10, 0)
    );
    assert_eq!(w.waits, 9);
    assert!((w.max_wait_seconds - 0.9).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_reservation_returns_its_slot() {
    let l = ledger(BudgetLimits::none().with_requests_per_minute(600));
    let now = Instant::now();
    let a = l.reserve(&key(), BudgetDemand::default());
    let b = l.reserve(&key(), BudgetDemand::default());
    assert_eq!(b.ready_at() - now, 100 * MS);
    drop(b); // never used: refunded
    let c = l.reserve(&key(), BudgetDemand::default());
    assert_eq!(
        c.ready_at() - now,
        100 * MS,
        "c takes b's slot, not the one after"
    );
    let snap = l.snapshot(&key(), now).unwrap();
    assert_eq!(snap.refunded, 1);
    drop((a, c));
    let snap = l.snapshot(&key(), now).unwrap();
    assert_eq!(
        (snap.outstanding, snap.refunded, snap.reservations),
        (0, 3, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_future_dropped_while_waiting_refunds() {
    let l = Arc::new(ledger(BudgetLimits::none().with_requests_per_minute(60)));
    let _first = l.reserve(&key(), BudgetDemand::default());
    let l2 = l.clone();
    let waiter = tokio::spawn(async move {
        let mut r = l2.reserve(&key(), BudgetDemand::default());
        r.ready().await;
        r.mark_used();
    });
    tokio::time::sleep(100 * MS).await;
    waiter.abort();
    let _ = waiter.await;
    let snap = l.snapshot(&key(), Instant::now()).unwrap();
    assert_eq!((snap.refunded, snap.outstanding), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn usage_below_the_estimate_is_refunded_and_above_it_charged() {
    // 6,000 tokens per minute: 10 ms per token.
    let l = ledger(BudgetLimits::none().with_tokens_per_minute(6_000));
    let now = Instant::now();
    let mut a = l.reserve(&key(), BudgetDemand::new(50, 50));
    assert_eq!(a.ready_at(), now);
    a.mark_used();
    a.settle(
        Some(TokenUsage {
            input_tokens: 5,
            output_tokens: 5,
        }),
        None,
    );
    // Only 10 of 100 tokens charged: the next request waits 100 ms, not 1 s.
    let mut b = l.reserve(&key(), BudgetDemand::new(50, 50));
    assert_eq!(b.ready_at() - now, 100 * MS);
    tokio::time::advance(100 * MS).await;
    b.mark_used();
    b.settle(
        Some(TokenUsage {
            input_tokens: 100,
            output_tokens: 100,
        }),
        None,
    );
    // b used 200: its 100 reserved + 100 charged = 2 s after its slot.
    let c = l.reserve(&key(), BudgetDemand::new(1, 0));
    assert_eq!(c.ready_at() - now, 100 * MS + 2_000 * MS);
    let w = l.snapshot(&key(), now).unwrap().windows[1].clone();
    assert_eq!((w.refunded_units, w.charged_units), (90, 100));
}

fn obs_requests(
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_ms: Option<u64>,
) -> RateLimitObservation {
    RateLimitObservation {
        requests: WindowObservation {
            limit,
            remaining,
            reset_after: reset_ms.map(Duration::from_millis),
        },
        ..RateLimitObservation::default()
    }
}

#[tokio::test(start_paused = true)]
async fn headers_only_tighten_the_configured_limit() {
    let l = ledger(BudgetLimits::none().with_requests_per_minute(600));
    let mut r = l.reserve(&key(), BudgetDemand::default());
    r.mark_used();
    r.settle(None, Some(&obs_requests(Some(6_000), None, None)));
    let w = l.snapshot(&key(), Instant::now()).unwrap().windows[0].clone();
    assert_eq!(
        (
            w.configured_per_minute,
            w.learned_per_minute,
            w.effective_per_minute
        ),
        (Some(600), Some(6_000), Some(600)),
        "a looser header never loosens the configured budget"
    );
    let mut r = l.reserve(&key(), BudgetDemand::default());
    r.mark_used();
    r.settle(None, Some(&obs_requests(Some(60), None, None)));
    let w = l.snapshot(&key(), Instant::now()).unwrap().windows[0].clone();
    assert_eq!(w.effective_per_minute, Some(60));
    let now = Instant::now();
    let a = l.reserve(&key(), BudgetDemand::default());
    let b = l.reserve(&key(), BudgetDemand::default());
    assert_eq!(b.ready_at() - a.ready_at(), Duration::from_secs(1));
    assert!(a.ready_at() >= now);
}

#[tokio::test(start_paused = true)]
async fn a_learned_limit_paces_an_unconfigured_scope() {
    let l = BudgetLedger::new(BudgetConfig::default()).unwrap();
    let now = Instant::now();
    let mut r = l.reserve(&key(), BudgetDemand::default());
    r.mark_used();
    r.settle(None, Some(&obs_requests(Some(120), Some(119), Some(500))));
    let a = l.reserve(&key(), BudgetDemand::default());
    let b = l.reserve(&key(), BudgetDemand::default());
    assert_eq!(b.ready_at() - a.ready_at(), 500 * MS);
    assert!(a.ready_at() - now <= 500 * MS);
}

#[tokio::test(start_paused = true)]
async fn remaining_and_reset_bound_what_is_admitted_until_the_reset() {
    let l = BudgetLedger::new(BudgetConfig::default()).unwrap();
    let now = Instant::now();
    let mut r = l.reserve(&key(), BudgetDemand::default());
    r.mark_used();
    // Two reservations made while r was in flight: r's `remaining` did not count them.
    let x = l.reserve(&key(), BudgetDemand::default());
    let y = l.reserve(&key(), BudgetDemand::default());
    r.settle(None, Some(&obs_requests(None, Some(3), Some(2_000))));
    let a = l.reserve(&key(), BudgetDemand::default());
    let b = l.reserve(&key(), BudgetDemand::default());
    assert_eq!(
        a.ready_at(),
        now,
        "3 remaining − 2 already sent = 1 more now"
    );
    assert_eq!(
        b.ready_at() - now,
        2_000 * MS,
        "then nothing until the reset"
    );
    let snap = l.snapshot(&key(), now).unwrap();
    assert_eq!(snap.windows[0].gate_remaining, Some(0));
    drop((x, y, a, b));
}

#[tokio::test(start_paused = true)]
async fn a_window_429_blocks_new_and_already_scheduled_reservations() {
    let l = Arc::new(ledger(BudgetLimits::none().with_requests_per_minute(600)));
    let start = Instant::now();
    let _a = l.reserve(&key(), BudgetDemand::default());
    let mut b = l.reserve(&key(), BudgetDemand::default()); // slot 100 ms
    l.block(&key(), BudgetKind::Requests, Duration::from_secs(3), start);
    let c = l.reserve(&key(), BudgetDemand::default());
    assert_eq!(c.ready_at() - start, 3_000 * MS);
    b.ready().await;
    assert_eq!(
        start.elapsed(),
        3_000 * MS,
        "b re-checked the block at its slot"
    );
    // A token-window block does not hold a request that takes no tokens of it.
    l.block(
        &key(),
        BudgetKind::OutputTokens,
        Duration::from_secs(5),
        Instant::now(),
    );
    let d = l.reserve(&key(), BudgetDemand::new(10, 0));
    assert!(d.ready_at() - start < 5_000 * MS);
}

#[test]
fn aliases_merge_to_the_tightest_and_bad_limits_name_their_field() {
    let l = BudgetLedger::new(BudgetConfig::default()).unwrap();
    l.register(
        &key(),
        BudgetLimits::none()
            .with_requests_per_minute(100)
            .with_tokens_per_minute(9),
    )
    .unwrap();
    let merged = l
        .register(
            &key(),
            BudgetLimits::none()
                .with_requests_per_minute(50)
                .with_output_tokens_per_minute(7),
        )
        .unwrap();
    assert_eq!(
        merged,
        BudgetLimits {
            requests_per_minute: Some(50),
            tokens_per_minute: Some(9),
            input_tokens_per_minute: None,
            output_tokens_per_minute: Some(7),
        }
    );
    let e = l
        .register(&key(), BudgetLimits::none().with_input_tokens_per_minute(0))
        .unwrap_err();
    assert_eq!(e.field, "input_tokens_per_minute");
    let e = BudgetLimits::none()
        .with_tokens_per_minute(BudgetLimits::MAX_PER_MINUTE + 1)
        .validate()
        .unwrap_err();
    assert_eq!(e.field, "tokens_per_minute");
    let e = BudgetLedger::new(BudgetConfig {
        burst_seconds: f64::NAN,
        ..BudgetConfig::default()
    })
    .unwrap_err();
    assert_eq!(e.field, "burst_seconds");
}

#[test]
fn the_estimate_is_prompt_tokens_plus_max_tokens_or_the_default() {
    let c = BudgetConfig::default();
    assert_eq!(
        BudgetDemand::estimate(401, Some(100), &c),
        BudgetDemand::new(101, 100)
    );
    assert_eq!(
        BudgetDemand::estimate(0, None, &c),
        BudgetDemand::new(0, 256)
    );
}

#[tokio::test(start_paused = true)]
async fn a_reservation_dropped_after_use_stays_charged() {
    let l = ledger(BudgetLimits::none().with_requests_per_minute(60));
    let now = Instant::now();
    let mut a = l.reserve(&key(), BudgetDemand::default());
    a.mark_used();
    drop(a);
    let b = l.reserve(&key(), BudgetDemand::default());
    assert_eq!(b.ready_at() - now, Duration::from_secs(1));
    let snap = l.snapshot(&key(), now).unwrap();
    assert_eq!((snap.kept_after_use, snap.refunded), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn an_unknown_max_tokens_is_estimated_from_the_replies_seen() {
    let l = ledger(BudgetLimits::none().with_tokens_per_minute(60_000));
    // No evidence yet: the configured default output estimate.
    let first = l.estimate_for(&key(), 40, None);
    assert_eq!(
        first.output_tokens,
        BudgetConfig::default().default_output_tokens
    );
    let mut r = l.reserve(&key(), first);
    r.ready().await;
    r.mark_used();
    r.settle(
        Some(TokenUsage {
            input_tokens: 10,
            output_tokens: 21,
        }),
        None,
    );
    // After one reply of 21 output tokens, that is the estimate; a known max_tokens wins.
    assert_eq!(l.estimate_for(&key(), 40, None).output_tokens, 21);
    assert_eq!(l.estimate_for(&key(), 40, Some(5)).output_tokens, 5);
}
