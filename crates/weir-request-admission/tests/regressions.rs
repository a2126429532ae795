//! Regressions found in review: lost wakeup behind a timed-out group head, huge timeouts.

use std::sync::Arc;
use std::time::Duration;
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
