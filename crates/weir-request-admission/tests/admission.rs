//! Deterministic rule tests of request admission under paused tokio time.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{
    ReleaseReason, RequestAdmissionDenyReason, RequestAttemptId, RequestDomain,
    RequestEventContext, RequestEventKind, RequestEventPayload, RequestGroupSpec,
    RequestReleaseOutcome, RequestReleaseOutcomeKind, RuntimeCorrelation, TaskExecutionId,
};
use weir_request_admission::{
    AdaptiveRequestAdmissionController, RequestAdmissionConfig, RequestAdmissionDecision,
    RequestAdmissionError, RequestAdmissionItem,
};

fn lease_of(d: RequestAdmissionDecision) -> weir_request_admission::RequestAdmissionLease {
    match d {
        RequestAdmissionDecision::Lease(l) => l,
        RequestAdmissionDecision::Denied(d) => panic!("denied: {:?}", d.reason),
    }
}

fn reason_of(d: RequestAdmissionDecision) -> RequestAdmissionDenyReason {
    match d {
        RequestAdmissionDecision::Lease(l) => panic!("unexpected lease {:?}", l.lease_id()),
        RequestAdmissionDecision::Denied(d) => d.reason,
    }
}

#[tokio::test(start_paused = true)]
async fn static_cap_is_min_over_aliases_and_bounds_all_domains() {
    let c = controller(RequestAdmissionConfig::default(), 8);
    let cap = c.register("prov", "model", "second", 3).unwrap();
    assert_eq!(cap.cap, 3);
    assert_eq!(cap.aliases, vec!["alias".to_string(), "second".to_string()]);
    let a = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    let b = lease_of(c.try_acquire(item(RequestDomain::Embedding)));
    let d = lease_of(c.try_acquire(item(RequestDomain::Image)));
    assert_eq!(
        reason_of(c.try_acquire(item(RequestDomain::Chat))),
        RequestAdmissionDenyReason::NoCapacity
    );
    let g = c
        .pressure()
        .global_snapshot(&chat().provider_model())
        .unwrap();
    assert_eq!((g.static_cap, g.aggregate_in_flight), (3, 3));
    for l in [a, b, d] {
        assert!(c.release(l, RequestReleaseOutcome::success()).released);
    }
    assert_eq!(
        c.pressure()
            .global_snapshot(&chat().provider_model())
            .unwrap()
            .aggregate_in_flight,
        0
    );
    // Registration errors name the field.
    assert_eq!(
        c.register("", "m", "a", 1).unwrap_err().field,
        "provider_name"
    );
    assert_eq!(c.register("p", "m", " ", 1).unwrap_err().field, "alias");
}

#[tokio::test(start_paused = true)]
async fn unregistered_endpoint_is_a_hard_denial() {
    let c = AdaptiveRequestAdmissionController::new(RequestAdmissionConfig::default()).unwrap();
    assert_eq!(
        reason_of(c.try_acquire(item(RequestDomain::Chat))),
        RequestAdmissionDenyReason::HardPolicyDenial
    );
    let err = c.acquire(item(RequestDomain::Chat)).await.unwrap_err();
    assert_eq!(
        err.reason(),
        Some(RequestAdmissionDenyReason::HardPolicyDenial)
    );
    assert!(c.pressure().snapshot(&chat()).is_none());
}

#[tokio::test(start_paused = true)]
async fn plan_aimd_429_halves_then_two_successes_fully_recover() {
    let config = RequestAdmissionConfig {
        multiplicative_decrease_factor: 0.5,
        successes_until_increase: 1,
        cooldown_seconds: 1.0,
        ..plan_config()
    };
    let (c, sink) = controller_with_sink(config, 4);
    let leases: Vec<_> = (0..4)
        .map(|_| lease_of(c.try_acquire(item(RequestDomain::Chat))))
        .collect();
    let mut leases = leases.into_iter();
    let first = leases.next().unwrap();
    assert!(
        c.release(first, RequestReleaseOutcome::rate_limited(None))
            .released
    );
    assert_eq!(limit(&c, &chat()), 2);
    // The rest of the cascade (admitted at 4 > 2) does not decrease again.
    let second = leases.next().unwrap();
    c.release(second, RequestReleaseOutcome::rate_limited(None));
    assert_eq!(limit(&c, &chat()), 2);
    // Successes during cooldown do not count.
    let third = leases.next().unwrap();
    c.release(third, RequestReleaseOutcome::success());
    assert_eq!(limit(&c, &chat()), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    let fourth = leases.next().unwrap();
    c.release(fourth, RequestReleaseOutcome::success());
    assert_eq!(limit(&c, &chat()), 3);
    let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    c.release(l, RequestReleaseOutcome::success());
    assert_eq!(limit(&c, &chat()), 4);
    let ev = sink.request_events();
    assert_eq!(count(&ev, RequestEventKind::RequestLimitDecreased), 1);
    assert_eq!(count(&ev, RequestEventKind::RequestRateLimited), 2);
    assert_eq!(count(&ev, RequestEventKind::RequestLimitIncreased), 2);
    assert_eq!(count(&ev, RequestEventKind::RequestFullyRecovered), 1);
    // The ceiling was the full cap, so the limit never rose above it.
    assert_eq!(count(&ev, RequestEventKind::RequestSoftCeilingRecovered), 0);
    let dec = ev
        .iter()
        .find(|e| e.event_kind() == RequestEventKind::RequestLimitDecreased)
        .unwrap();
    let RequestEventPayload::RequestLimitDecreased(change) = &dec.payload else {
        panic!("a decrease carries its limits");
    };
    assert_eq!((change.previous, change.current), (4, 2));
    let snap = c.pressure().snapshot(&chat()).unwrap();
    assert_eq!(
        (snap.rate_limit_ceiling, snap.consecutive_rate_limits),
        (4, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn soft_ceiling_recovered_fires_once_above_the_last_ceiling() {
    let config = RequestAdmissionConfig {
        multiplicative_decrease_factor: 0.5,
        successes_until_increase: 1,
        cooldown_seconds: 1.0,
        ..plan_config()
    };
    let (c, sink) = controller_with_sink(config, 8);
    // Bring the limit to 2 with a first cascade at 4... start by lowering from 8 to 4.
    let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    c.release(l, RequestReleaseOutcome::rate_limited(None));
    assert_eq!(limit(&c, &chat()), 4);
    tokio::time::advance(Duration::from_secs(1)).await;
    let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    c.release(l, RequestReleaseOutcome::rate_limited(None));
    assert_eq!(limit(&c, &chat()), 2);
    assert_eq!(
        c.pressure().snapshot(&chat()).unwrap().rate_limit_ceiling,
        4
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    for _ in 0..6 {
        let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
        c.release(l, RequestReleaseOutcome::success());
    }
    assert_eq!(limit(&c, &chat()), 8);
    let ev = sink.request_events();
    let soft: Vec<_> = ev
        .iter()
        .filter(|e| e.event_kind() == RequestEventKind::RequestSoftCeilingRecovered)
        .collect();
    assert_eq!(soft.len(), 1, "once per ceiling, not on every increase");
    assert!(matches!(
        &soft[0].payload,
        RequestEventPayload::RequestSoftCeilingRecovered(s) if s.rate_limit_ceiling == 4
    ));
    assert_eq!(count(&ev, RequestEventKind::RequestFullyRecovered), 1);
}

#[tokio::test(start_paused = true)]
async fn startup_ramp_cap_four_over_ten_seconds() {
    let config = RequestAdmissionConfig {
        startup_ramp_seconds: 10.0,
        ..plan_config()
    };
    let c = controller(config, 4);
    // The ramp starts at the resource's first use.
    tokio::time::advance(Duration::from_secs(100)).await;
    let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    assert_eq!(l.current_adaptive_limit(), 1);
    assert_eq!(
        reason_of(c.try_acquire(item(RequestDomain::Chat))),
        RequestAdmissionDenyReason::NoCapacity
    );
    c.release(l, RequestReleaseOutcome::success());
    assert_eq!(limit(&c, &chat()), 1);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(limit(&c, &chat()), 2);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(limit(&c, &chat()), 4);
}

#[tokio::test(start_paused = true)]
async fn ramp_steps_wake_waiters_without_releases() {
    let config = RequestAdmissionConfig {
        startup_ramp_seconds: 10.0,
        ..plan_config()
    };
    let c = controller(config, 4);
    let start = Instant::now();
    let first = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    // Limit 1 is taken; the second waiter is admitted by the ramp step at 10/3 s.
    let second = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    let waited = Instant::now() - start;
    // The step is at 10/3 s; tokio timers have millisecond resolution.
    assert!(waited >= Duration::from_nanos(3_333_333_334), "{waited:?}");
    assert!(waited <= Duration::from_millis(3_334), "{waited:?}");
    assert_eq!(second.current_adaptive_limit(), 2);
    drop((first, second));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_during_ramp_aborts_it() {
    let config = RequestAdmissionConfig {
        startup_ramp_seconds: 10.0,
        multiplicative_decrease_factor: 0.5,
        cooldown_seconds: 1.0,
        ..plan_config()
    };
    let c = controller(config, 8);
    let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    tokio::time::advance(Duration::from_secs(5)).await;
    // Ramp at t=5 on target 8: 1 + floor(7·0.5) = 4.
    assert_eq!(limit(&c, &chat()), 4);
    let l2 = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    c.release(l2, RequestReleaseOutcome::rate_limited(None));
    assert_eq!(limit(&c, &chat()), 2);
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(limit(&c, &chat()), 2, "the ramp no longer raises the limit");
    c.release(l, RequestReleaseOutcome::success());
}

#[tokio::test(start_paused = true)]
async fn cooldown_expiry_admits_a_waiter_with_no_release() {
    let config = RequestAdmissionConfig {
        cooldown_seconds: 1.0,
        ..plan_config()
    };
    let (c, sink) = controller_with_sink(config, 4);
    let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    c.release(l, RequestReleaseOutcome::rate_limited(Some(2.5)));
    let cooldown = c.pressure().snapshot(&chat()).unwrap();
    assert_eq!(cooldown.cooldown_remaining_seconds, 2.5);
    let d = c.try_acquire(item(RequestDomain::Chat));
    let denied = d.denied().unwrap();
    assert_eq!(denied.reason, RequestAdmissionDenyReason::Cooldown);
    assert_eq!(denied.retry_after_seconds, Some(2.5));
    let start = Instant::now();
    let lease = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_millis(2500));
    let ev = sink.request_events();
    let k = kinds(&ev);
    let formed = k
        .iter()
        .position(|x| *x == RequestEventKind::RequestQueueFormed)
        .unwrap();
    let drained = k
        .iter()
        .position(|x| *x == RequestEventKind::RequestQueueDrained)
        .unwrap();
    assert!(formed < drained);
    drop(lease);
}

#[tokio::test(start_paused = true)]
async fn try_acquire_never_jumps_an_eligible_waiter() {
    let config = RequestAdmissionConfig {
        cooldown_seconds: 1.0,
        ..plan_config()
    };
    let c = controller(config, 4);
    let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    c.release(l, RequestReleaseOutcome::rate_limited(None));
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.acquire(item(RequestDomain::Chat)).await })
    };
    settle().await;
    // Jump exactly to the cooldown end without letting the timer task run.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        reason_of(c.try_acquire(item(RequestDomain::Chat))),
        RequestAdmissionDenyReason::QueuedWaitersAhead
    );
    let lease = waiter.await.unwrap().unwrap();
    // Now the queue is empty and try_acquire may admit.
    let l2 = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    drop((lease, l2));
}

#[tokio::test(start_paused = true)]
async fn later_shorter_retry_after_never_shortens_cooldown_and_retry_after_is_capped() {
    let config = RequestAdmissionConfig {
        max_retry_after_seconds: 30.0,
        ..plan_config()
    };
    let c = controller(config, 4);
    let a = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    let b = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    c.release(a, RequestReleaseOutcome::rate_limited(Some(10.0)));
    c.release(b, RequestReleaseOutcome::rate_limited(Some(1.0)));
    let s = c.pressure().snapshot(&chat()).unwrap();
    assert_eq!(s.cooldown_remaining_seconds, 10.0);
    tokio::time::advance(Duration::from_secs(10)).await;
    let a = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    c.release(a, RequestReleaseOutcome::rate_limited(Some(86_400.0)));
    let s = c.pressure().snapshot(&chat()).unwrap();
    assert_eq!(s.cooldown_remaining_seconds, 30.0);
}

#[tokio::test(start_paused = true)]
async fn raised_static_cap_lifts_limits_never_rate_limited() {
    let c = controller(plan_config(), 2);
    let chat_l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    let emb_l = lease_of(c.try_acquire(item(RequestDomain::Embedding)));
    c.release(chat_l, RequestReleaseOutcome::success());
    c.release(emb_l, RequestReleaseOutcome::rate_limited(None));
    assert_eq!(limit(&c, &key(RequestDomain::Embedding)), 1);
    // A second alias can only lower the min; replace the alias cap to raise it.
    c.register("prov", "model", "alias", 10).unwrap();
    assert_eq!(limit(&c, &chat()), 10);
    assert_eq!(limit(&c, &key(RequestDomain::Embedding)), 1);
    c.register("prov", "model", "alias", 3).unwrap();
    assert_eq!(limit(&c, &chat()), 3);
}

#[tokio::test(start_paused = true)]
async fn zero_queue_wait_timeout_means_try_once() {
    let (c, sink) = controller_with_sink(plan_config(), 1);
    let once = item(RequestDomain::Chat).with_queue_wait_timeout(Duration::ZERO);
    // Free capacity: admitted, no timeout.
    let l = c.acquire(once.clone()).await.unwrap();
    // Full: one try, then queue_timeout, with nothing left queued.
    let err = c.acquire(once).await.unwrap_err();
    let denied = err.denied().unwrap();
    assert_eq!(denied.reason, RequestAdmissionDenyReason::QueueTimeout);
    assert_eq!(denied.diagnostics["last_denial"], "no_capacity");
    assert_eq!(c.pressure().snapshot(&chat()).unwrap().waiters, 0);
    assert_eq!(
        count(&sink.request_events(), RequestEventKind::RequestWaitTimeout),
        1
    );
    drop(l);
}

#[tokio::test(start_paused = true)]
async fn queue_wait_timeout_removes_the_waiter() {
    let config = RequestAdmissionConfig {
        default_queue_wait_timeout_seconds: Some(3.0),
        ..plan_config()
    };
    let (c, sink) = controller_with_sink(config, 1);
    let l = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    let start = Instant::now();
    let err = c.acquire(item(RequestDomain::Chat)).await.unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(3));
    assert_eq!(err.reason(), Some(RequestAdmissionDenyReason::QueueTimeout));
    let item_timeout = item(RequestDomain::Chat).with_queue_wait_timeout(Duration::from_millis(10));
    let err = c.acquire(item_timeout).await.unwrap_err();
    assert_eq!(err.reason(), Some(RequestAdmissionDenyReason::QueueTimeout));
    let s = c.pressure().snapshot(&chat()).unwrap();
    assert_eq!((s.waiters, s.in_flight_count), (0, 1));
    let ev = sink.request_events();
    assert_eq!(count(&ev, RequestEventKind::RequestQueueFormed), 2);
    assert_eq!(count(&ev, RequestEventKind::RequestQueueDrained), 2);
    drop(l);
}

#[tokio::test(start_paused = true)]
async fn weighted_two_to_one_across_domains_sharing_a_cap() {
    let c = controller(plan_config(), 1);
    let holder = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (domain, weight, n) in [
        (RequestDomain::Chat, 2, 6),
        (RequestDomain::Embedding, 1, 6),
    ] {
        for i in 0..n {
            let c = c.clone();
            let order = order.clone();
            let it = RequestAdmissionItem::new(key(domain))
                .with_group(RequestGroupSpec::new(key(domain), weight).unwrap());
            tasks.push(tokio::spawn(async move {
                let l = c.acquire(it).await.unwrap();
                order.lock().unwrap().push((domain, i));
                tokio::time::sleep(Duration::from_millis(1)).await;
                c.release(l, RequestReleaseOutcome::success());
            }));
            settle().await;
        }
    }
    c.release(holder, RequestReleaseOutcome::success());
    for t in tasks {
        t.await.unwrap();
    }
    let order: Vec<_> = order.lock().unwrap().clone();
    let letters: String = order
        .iter()
        .map(|(d, _)| if *d == RequestDomain::Chat { 'c' } else { 'e' })
        .collect();
    assert_eq!(letters, "ceccecceceee");
    // Oldest first within each domain.
    let chat_ids: Vec<_> = order
        .iter()
        .filter(|(d, _)| *d == RequestDomain::Chat)
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(chat_ids, (0..6).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn shutdown_denies_waiters_and_new_acquires() {
    let (c, sink) = controller_with_sink(plan_config(), 1);
    let l = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.acquire(item(RequestDomain::Chat)).await })
        })
        .collect();
    settle().await;
    assert!(!c.is_shut_down());
    c.shutdown();
    assert!(c.is_shut_down());
    for w in waiters {
        let err = w.await.unwrap().unwrap_err();
        assert_eq!(err.reason(), Some(RequestAdmissionDenyReason::Shutdown));
    }
    assert_eq!(
        reason_of(c.try_acquire(item(RequestDomain::Chat))),
        RequestAdmissionDenyReason::Shutdown
    );
    let err = c.acquire(item(RequestDomain::Embedding)).await.unwrap_err();
    assert_eq!(err.reason(), Some(RequestAdmissionDenyReason::Shutdown));
    // Outstanding leases still release normally.
    assert!(c.release(l, RequestReleaseOutcome::success()).released);
    let s = c.pressure().snapshot(&chat()).unwrap();
    assert_eq!((s.in_flight_count, s.waiters), (0, 0));
    assert!(
        count(
            &sink.request_events(),
            RequestEventKind::RequestAcquireDenied
        ) >= 4
    );
}

#[tokio::test(start_paused = true)]
async fn bad_releases_change_no_counter_and_are_diagnosed() {
    let (c, sink) = controller_with_sink(plan_config(), 4);
    let other = controller(plan_config(), 4);
    let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    let copy = l.detached();
    assert!(!copy.is_guarded());
    let keep = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    assert!(c.release(l, RequestReleaseOutcome::success()).released);
    let dup = c.release(copy, RequestReleaseOutcome::success());
    assert_eq!(
        (dup.released, dup.reason),
        (false, ReleaseReason::Duplicate)
    );
    assert_eq!(in_flight(&c, &chat()), 1);

    let foreign = lease_of(other.try_acquire(item(RequestDomain::Chat)));
    let wrong = c.release(foreign, RequestReleaseOutcome::success());
    assert_eq!(wrong.reason, ReleaseReason::WrongControllerGeneration);
    assert_eq!(in_flight(&c, &chat()), 1);
    // The foreign lease went back to its own controller through its drop guard.
    assert_eq!(in_flight(&other, &chat()), 0);

    // A copy older than the released-id history reads as stale.
    let old = lease_of(c.try_acquire(item(RequestDomain::Chat)));
    let old_copy = old.detached();
    c.release(old, RequestReleaseOutcome::success());
    for _ in 0..8192 {
        let x = lease_of(c.try_acquire(item(RequestDomain::Chat)));
        c.release(x, RequestReleaseOutcome::success());
    }
    let stale = c.release(old_copy, RequestReleaseOutcome::success());
    assert_eq!(stale.reason, ReleaseReason::StaleLease);
    assert_eq!(in_flight(&c, &chat()), 1);

    let diag = c.pressure().release_diagnostics();
    assert_eq!(diag[&ReleaseReason::Duplicate], 1);
    assert_eq!(diag[&ReleaseReason::WrongControllerGeneration], 1);
    assert_eq!(diag[&ReleaseReason::StaleLease], 1);
    assert_eq!(
        count(
            &sink.request_events(),
            RequestEventKind::RequestReleaseDiagnostic
        ),
        3
    );
    assert_eq!(
        c.pressure()
            .snapshot(&chat())
            .unwrap()
            .leak_diagnostics
            .len(),
        3
    );
    c.release(keep, RequestReleaseOutcome::success());
    assert_eq!(in_flight(&c, &chat()), 0);
}

#[tokio::test(start_paused = true)]
async fn events_follow_the_plan_vocabulary_with_context_and_sequence() {
    let (c, sink) = controller_with_sink(plan_config(), 1);
    let ctx = RequestEventContext {
        captured_correlation: Some(Arc::new(RuntimeCorrelation::for_run("run-1"))),
        task_execution_id: Some(TaskExecutionId(7)),
        request_attempt_id: Some(RequestAttemptId(42)),
    };
    let it = item(RequestDomain::Chat).with_event_context(ctx.clone());
    let l = c.acquire(it.clone()).await.unwrap();
    let waiter = {
        let c = c.clone();
        let it = it.clone();
        tokio::spawn(async move { c.acquire(it).await })
    };
    settle().await;
    c.release(l, RequestReleaseOutcome::success());
    let l2 = waiter.await.unwrap().unwrap();
    c.release(l2, RequestReleaseOutcome::rate_limited(Some(1.0)));
    let ev = sink.request_events();
    use RequestEventKind::*;
    assert_eq!(
        kinds(&ev),
        vec![
            RequestResourceRegistered,
            RequestEffectiveCapChanged,
            RequestWaitStarted,
            RequestWaitCompleted,
            RequestLeaseAcquired,
            RequestQueueFormed,
            RequestWaitStarted,
            RequestLeaseReleased,
            RequestWaitCompleted,
            RequestLeaseAcquired,
            RequestQueueDrained,
            RequestRateLimited,
            RequestLeaseReleased,
        ]
    );
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.sequence, i as u64 + 1, "sequence in emission order");
    }
    let acquired = ev
        .iter()
        .find(|e| e.event_kind() == RequestLeaseAcquired)
        .unwrap();
    assert_eq!(acquired.task_execution_id, Some(TaskExecutionId(7)));
    assert_eq!(acquired.request_attempt_id, Some(RequestAttemptId(42)));
    assert_eq!(
        acquired.captured_correlation.as_ref().unwrap().run_id,
        "run-1"
    );
    assert_eq!(acquired.request_resource_key, Some(chat()));
    assert!(acquired.request_lease_id.is_some());
    assert_eq!(
        acquired.pressure_snapshot.as_ref().unwrap().in_flight_count,
        1
    );
    let released = ev
        .iter()
        .rev()
        .find(|e| e.event_kind() == RequestLeaseReleased)
        .unwrap();
    assert_eq!(released.reason_or_outcome.as_deref(), Some("rate_limited"));
    // The queued waiter's admission events carry its own context too.
    let second_completed = ev
        .iter()
        .filter(|e| e.event_kind() == RequestWaitCompleted)
        .nth(1)
        .unwrap();
    assert_eq!(
        second_completed.request_attempt_id,
        Some(RequestAttemptId(42))
    );
}

#[tokio::test(start_paused = true)]
async fn disabled_stream_builds_nothing_and_config_snapshot_names_policy() {
    let c = controller(RequestAdmissionConfig::default(), 2);
    let l = c.acquire(item(RequestDomain::Chat)).await.unwrap();
    c.release(l, RequestReleaseOutcome::success());
    let snap = c.pressure().config_snapshot();
    assert_eq!(snap.policy, "goodput");
    assert_eq!(snap.successes_until_increase, 25);
    let plan = controller(plan_config(), 2);
    assert_eq!(plan.pressure().config_snapshot().policy, "plan_aimd");
    let caps = c.pressure().static_caps();
    assert_eq!(caps[&chat().provider_model()].cap, 2);
    assert_eq!(c.pressure().global_snapshots().len(), 1);
    assert_eq!(c.pressure().snapshots().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn other_outcomes_release_capacity_without_touching_the_limit() {
    let c = controller(plan_config(), 2);
    for kind in [
        RequestReleaseOutcomeKind::ProviderFailure,
        RequestReleaseOutcomeKind::ProviderTimeout,
        RequestReleaseOutcomeKind::LocalTimeout,
        RequestReleaseOutcomeKind::LocalCancelled,
        RequestReleaseOutcomeKind::UnexpectedException,
    ] {
        let l = lease_of(c.try_acquire(item(RequestDomain::Chat)));
        assert!(c.release(l, RequestReleaseOutcome::of(kind)).released);
        let s = c.pressure().snapshot(&chat()).unwrap();
        assert_eq!(
            (s.current_limit, s.in_flight_count, s.last_outcome),
            (2, 0, Some(kind))
        );
    }
}

#[test]
fn acquire_blocking_refuses_on_runtime_threads_and_works_on_plain_threads() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(async { controller(plan_config(), 1) });
    let err = rt.block_on(async { c.acquire_blocking(item(RequestDomain::Chat)).unwrap_err() });
    assert!(matches!(
        err,
        RequestAdmissionError::BlockingOnRuntimeThread(_)
    ));
    assert!(err.to_string().contains("acquire().await"));

    // Plain threads: one holds the lease, another blocks until it is released.
    let l = c.acquire_blocking(item(RequestDomain::Chat)).unwrap();
    let c2 = c.clone();
    let waiter = std::thread::spawn(move || c2.acquire_blocking(item(RequestDomain::Chat)));
    while c.pressure().snapshot(&chat()).unwrap().waiters == 0 {
        std::thread::yield_now();
    }
    c.release(l, RequestReleaseOutcome::success());
    let l2 = waiter.join().unwrap().unwrap();
    assert_eq!(in_flight(&c, &chat()), 1);
    drop(l2);
    assert_eq!(in_flight(&c, &chat()), 0);

    // With no runtime anywhere, a blocking waiter is woken by its own timed wait at the end
    // of the cooldown (50 ms here), not by a release.
    let l = c.acquire_blocking(item(RequestDomain::Chat)).unwrap();
    // Started before the release (the cooldown runs from the release): a thread descheduled
    // between the two on a loaded machine cannot shorten the measured wait.
    let start = std::time::Instant::now();
    c.release(l, RequestReleaseOutcome::rate_limited(Some(0.05)));
    let l = c.acquire_blocking(item(RequestDomain::Chat)).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(45));
    drop(l);
    // A blocking queue timeout.
    let l = c.acquire_blocking(item(RequestDomain::Chat)).unwrap();
    let err = c
        .acquire_blocking(
            item(RequestDomain::Chat).with_queue_wait_timeout(Duration::from_millis(20)),
        )
        .unwrap_err();
    assert_eq!(err.reason(), Some(RequestAdmissionDenyReason::QueueTimeout));
    drop(l);
}
