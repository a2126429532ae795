//! Cancellation safety: a dropped acquire never leaks a waiter or a lease, at every await point.

mod common;

use common::*;
use std::time::Duration;
use weir_contracts::{
    RequestDomain, RequestEventKind, RequestReleaseOutcome, RequestReleaseOutcomeKind,
};
use weir_request_admission::RequestAdmissionConfig;

#[tokio::test(start_paused = true)]
async fn dropping_an_unpolled_acquire_does_nothing() {
    let (c, sink) = controller_with_sink(plan_config(), 1);
    let before = sink.request_events().len();
    let fut = c.acquire(item(RequestDomain::Chat));
    drop(fut);
    assert_eq!(sink.request_events().len(), before);
    assert!(c.pressure().snapshot(&chat()).is_none());
}

#[tokio::test(start_paused = true)]
async fn dropping_a_queued_acquire_removes_its_waiter() {
    let (c, sink) = controller_with_sink(plan_config(), 1);
    let holder = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    let mut fut = Box::pin(c.acquire(item(RequestDomain::Chat)));
    assert!(poll_once(&mut fut).await.is_pending());
    assert_eq!(c.pressure().snapshot(&chat()).unwrap().waiters, 1);
    drop(fut);
    let s = c.pressure().snapshot(&chat()).unwrap();
    assert_eq!((s.waiters, s.in_flight_count), (0, 1));
    let ev = sink.request_events();
    let cancelled = ev
        .iter()
        .find(|e| e.event_kind() == RequestEventKind::RequestWaitCancelled)
        .unwrap();
    assert_eq!(cancelled.reason_or_outcome.as_deref(), Some("cancellation"));
    assert!(cancelled.request_lease_id.is_none());
    assert_eq!(count(&ev, RequestEventKind::RequestQueueDrained), 1);
    // The released holder admits nobody (the waiter is gone) and counters return to zero.
    c.release(holder, RequestReleaseOutcome::success());
    assert_eq!(in_flight(&c, &chat()), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_an_admitted_but_unclaimed_acquire_releases_local_cancelled() {
    let (c, sink) = controller_with_sink(plan_config(), 1);
    let holder = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    let mut fut = Box::pin(c.acquire(item(RequestDomain::Chat)));
    assert!(poll_once(&mut fut).await.is_pending());
    let mut next = Box::pin(c.acquire(item(RequestDomain::Chat)));
    assert!(poll_once(&mut next).await.is_pending());
    // The release admits `fut` (oldest) — the controller counts it in flight...
    c.release(holder, RequestReleaseOutcome::success());
    assert_eq!(in_flight(&c, &chat()), 1);
    // ...but its caller is gone before claiming it: released as local_cancelled, and the
    // capacity passes to the next waiter.
    drop(fut);
    let s = c.pressure().snapshot(&chat()).unwrap();
    assert_eq!(
        s.last_outcome,
        Some(RequestReleaseOutcomeKind::LocalCancelled)
    );
    assert_eq!((s.in_flight_count, s.waiters), (1, 0));
    let ev = sink.request_events();
    let cancelled = ev
        .iter()
        .find(|e| e.event_kind() == RequestEventKind::RequestWaitCancelled)
        .unwrap();
    assert!(
        cancelled.request_lease_id.is_some(),
        "names the admitted lease"
    );
    let local_releases = ev
        .iter()
        .filter(|e| {
            e.event_kind() == RequestEventKind::RequestLeaseReleased
                && e.reason_or_outcome.as_deref() == Some("local_cancelled")
        })
        .count();
    assert_eq!(local_releases, 1);
    let l = match poll_once(&mut next).await {
        std::task::Poll::Ready(r) => r.unwrap(),
        std::task::Poll::Pending => panic!("next waiter should have been admitted"),
    };
    c.release(l, RequestReleaseOutcome::success());
    assert_eq!(in_flight(&c, &chat()), 0);
}

#[tokio::test(start_paused = true)]
async fn aborting_a_task_at_each_wait_point_leaks_nothing() {
    let config = RequestAdmissionConfig {
        cooldown_seconds: 1.0,
        default_queue_wait_timeout_seconds: Some(5.0),
        ..plan_config()
    };
    let c = controller(config, 1);
    // (a) waiting on capacity, (b) waiting on a cooldown timer, (c) granted but not yet run.
    for scenario in 0..3 {
        let holder = c.acquire(item(RequestDomain::Chat)).await.unwrap();
        if scenario == 1 {
            c.release(holder.detached(), RequestReleaseOutcome::rate_limited(None));
        }
        let task = {
            let c = c.clone();
            tokio::spawn(async move {
                let l = c.acquire(item(RequestDomain::Chat)).await.unwrap();
                c.release(l, RequestReleaseOutcome::success());
            })
        };
        settle().await;
        assert_eq!(c.pressure().snapshot(&chat()).unwrap().waiters, 1);
        match scenario {
            0 | 1 => task.abort(),
            _ => {
                c.release(holder.detached(), RequestReleaseOutcome::success());
                task.abort();
            }
        }
        assert!(task.await.unwrap_err().is_cancelled());
        drop(holder);
        if scenario == 1 {
            tokio::time::advance(Duration::from_secs(2)).await;
            settle().await;
        }
        let s = c.pressure().snapshot(&chat()).unwrap();
        assert_eq!(
            (s.in_flight_count, s.waiters),
            (0, 0),
            "scenario {scenario}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_lease_dropped_without_release_is_released_once() {
    let (c, sink) = controller_with_sink(plan_config(), 2);
    let l = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    let copy = l.detached();
    drop(l);
    assert_eq!(in_flight(&c, &chat()), 0);
    // The guard already released it: an explicit release of a copy is a duplicate.
    let r = c.release(copy, RequestReleaseOutcome::success());
    assert!(!r.released);
    let ev = sink.request_events();
    assert_eq!(count(&ev, RequestEventKind::RequestLeaseReleased), 1);
    assert_eq!(
        c.pressure().snapshot(&chat()).unwrap().last_outcome,
        Some(RequestReleaseOutcomeKind::LocalCancelled)
    );
    // Explicitly released leases are not released again by their guard.
    let l = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    c.release(l, RequestReleaseOutcome::success());
    assert_eq!(
        count(
            &sink.request_events(),
            RequestEventKind::RequestLeaseReleased
        ),
        2
    );
    // A panicking holder releases through the guard during unwinding.
    let c2 = c.clone();
    let res = tokio::spawn(async move {
        let _l = c2.acquire(item(RequestDomain::Chat)).await.unwrap();
        panic!("provider call blew up");
    })
    .await;
    assert!(res.unwrap_err().is_panic());
    assert_eq!(in_flight(&c, &chat()), 0);
}

#[tokio::test(start_paused = true)]
async fn grant_and_deadline_at_the_same_instant_returns_the_lease() {
    let config = RequestAdmissionConfig {
        cooldown_seconds: 2.0,
        ..plan_config()
    };
    let c = controller(config, 1);
    let l = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    c.release(l, RequestReleaseOutcome::rate_limited(None));
    // The cooldown ends exactly at the waiter's deadline: it must get the lease (or a clean
    // timeout with nothing in flight), never lose one.
    let it = item(RequestDomain::Chat).with_queue_wait_timeout(Duration::from_secs(2));
    match c.acquire(it).await {
        Ok(l) => {
            assert_eq!(in_flight(&c, &chat()), 1);
            drop(l);
        }
        Err(e) => assert_eq!(
            e.reason(),
            Some(weir_contracts::RequestAdmissionDenyReason::QueueTimeout)
        ),
    }
    settle().await;
    assert_eq!(in_flight(&c, &chat()), 0);
}
