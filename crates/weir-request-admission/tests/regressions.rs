//! Regressions found in review: lost wakeup behind a timed-out group head, huge timeouts, a
//! lease handed to a waiter whose deadline had passed, the rate-limit count reset (issue 13).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use weir_contracts::RequestAdmissionDenyReason;
use weir_contracts::{RequestDomain, RequestGroupSpec, RequestReleaseOutcome, RequestResourceKey};
use weir_request_admission::{
    AdaptiveRequestAdmissionController, RequestAdmissionConfig, RequestAdmissionItem,
};

fn key(domain: RequestDomain) -> RequestResourceKey {
    RequestResourceKey::new("p", "m", domain).expect("valid key")
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_group_head_does_not_strand_the_waiter_behind_it() {
    let c = Arc::new(
        AdaptiveRequestAdmissionController::new(RequestAdmissionConfig::default()).expect("config"),
    );
    c.register("p", "m", "a", 1).expect("register");
    let (chat, emb) = (key(RequestDomain::Chat), key(RequestDomain::Embedding));
    // Chat cools down for 60 s.
    let l = c
        .acquire(RequestAdmissionItem::new(chat.clone()))
        .await
        .expect("lease");
    c.release(l, RequestReleaseOutcome::rate_limited(Some(60.0)));
    // The cap (1) is held by an embedding lease.
    let held = c
        .acquire(RequestAdmissionItem::new(emb.clone()))
        .await
        .expect("lease");
    // W1 (chat) heads a group that W2 (embedding) shares.
    let group = RequestGroupSpec::for_resource(chat.clone());
    let w1 = {
        let c = c.clone();
        let item = RequestAdmissionItem::new(chat.clone())
            .with_group(group.clone())
            .with_queue_wait_timeout(Duration::from_secs(1));
        tokio::spawn(async move { c.acquire(item).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let w2 = {
        let c = c.clone();
        let item = RequestAdmissionItem::new(emb.clone()).with_group(group);
        tokio::spawn(async move { c.acquire(item).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(held); // frees the cap; W1 (chat) is still cooling down and times out at 1 s.
    assert!(w1.await.expect("join").is_err(), "W1 times out");
    let admitted = tokio::time::timeout(Duration::from_secs(5), w2).await;
    assert!(
        matches!(admitted, Ok(Ok(Ok(())))),
        "W2 must be admitted once W1 leaves: {admitted:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_queue_wait_timeout_means_no_deadline() {
    let c =
        AdaptiveRequestAdmissionController::new(RequestAdmissionConfig::default()).expect("config");
    c.register("p", "m", "a", 1).expect("register");
    let item =
        RequestAdmissionItem::new(key(RequestDomain::Chat)).with_queue_wait_timeout(Duration::MAX);
    let lease = c.acquire(item).await.expect("admitted, no overflow panic");
    drop(lease);
}

/// Polls a future exactly once with the current task's context.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_its_deadline_gets_queue_timeout_not_a_lease() {
    let c = Arc::new(
        AdaptiveRequestAdmissionController::new(RequestAdmissionConfig::default()).expect("config"),
    );
    c.register("p", "m", "a", 1).expect("register");
    let chat = key(RequestDomain::Chat);
    let held = c
        .acquire(RequestAdmissionItem::new(chat.clone()))
        .await
        .expect("lease");
    let item =
        RequestAdmissionItem::new(chat.clone()).with_queue_wait_timeout(Duration::from_secs(1));
    let c2 = c.clone();
    let mut waiter = Box::pin(async move { c2.acquire(item).await });
    assert!(poll_once(&mut waiter).await.is_pending(), "queued");
    // The deadline passes while the waiter is not polled; then capacity frees up.
    tokio::time::advance(Duration::from_secs(2)).await;
    c.release(held, RequestReleaseOutcome::success());
    match poll_once(&mut waiter).await {
        Poll::Ready(Err(e)) => {
            assert_eq!(e.reason(), Some(RequestAdmissionDenyReason::QueueTimeout))
        }
        other => panic!("an expired waiter must time out, got {other:?}"),
    }
    let snap = c.pressure().snapshot(&chat).expect("used");
    assert_eq!((snap.in_flight_count, snap.waiters), (0, 0));
    // The freed capacity is still usable.
    let l = c
        .try_acquire(RequestAdmissionItem::new(chat))
        .lease()
        .expect("free");
    drop(l);
}

#[tokio::test(start_paused = true)]
async fn a_success_during_cooldown_with_nothing_in_flight_resets_the_rate_limit_count() {
    let config = RequestAdmissionConfig {
        policy: weir_request_admission::RequestAdmissionPolicy::PlanAimd,
        ..RequestAdmissionConfig::default()
    };
    let c = AdaptiveRequestAdmissionController::new(config).expect("config");
    c.register("p", "m", "a", 4).expect("register");
    let chat = key(RequestDomain::Chat);
    let a = c
        .try_acquire(RequestAdmissionItem::new(chat.clone()))
        .lease()
        .expect("a");
    let b = c
        .try_acquire(RequestAdmissionItem::new(chat.clone()))
        .lease()
        .expect("b");
    c.release(a, RequestReleaseOutcome::rate_limited(Some(5.0)));
    let snap = c.pressure().snapshot(&chat).expect("used");
    assert_eq!(snap.consecutive_rate_limits, 1);
    assert!(snap.cooldown_remaining_seconds > 0.0);
    // Still cooling down; the last lease succeeds and nothing is in flight any more.
    c.release(b, RequestReleaseOutcome::success());
    let snap = c.pressure().snapshot(&chat).expect("used");
    assert!(snap.cooldown_remaining_seconds > 0.0);
    assert_eq!((snap.in_flight_count, snap.consecutive_rate_limits), (0, 0));
}
