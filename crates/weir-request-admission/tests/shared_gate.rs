//! `SharedGate` over a scripted in-memory backend (paused time): a waiter is woken by this
//! process's release, a bounded wait ends, a dropped lease is abandoned exactly once, and mode
//! changes become `shared_limits_degraded` / `shared_limits_recovered` events.

use async_trait::async_trait;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use weir_contracts::{
    ProviderModelKey, RequestEventKind, RequestEventPayload, SharedLimitsMode, SharedLimitsSnapshot,
};
use weir_request_admission::{
    SharedDemand, SharedGate, SharedLeaseToken, SharedLimits, SharedRelease, SharedTry,
};
use weir_telemetry::{EventStream, InMemoryAdmissionEventSink, MonotonicClock};

/// A store with a cap, counting tries, releases and abandons; its mode is set by the test.
#[derive(Debug, Default)]
struct Scripted {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    cap: u32,
    held: u32,
    next: u64,
    tries: u64,
    releases: u64,
    abandons: u64,
    mode: SharedLimitsMode,
}

#[async_trait]
impl SharedLimits for Scripted {
    async fn try_admit(&self, _: &ProviderModelKey, _: SharedDemand) -> SharedTry {
        let mut s = self.state.lock();
        s.tries += 1;
        if s.held < s.cap {
            s.held += 1;
            s.next += 1;
            SharedTry::Admitted(SharedLeaseToken(s.next))
        } else {
            SharedTry::Wait(Duration::ZERO)
        }
    }
    async fn release(&self, _: &ProviderModelKey, _: SharedLeaseToken, _: SharedRelease) {
        let mut s = self.state.lock();
        s.held -= 1;
        s.releases += 1;
    }
    fn abandon(&self, _: &ProviderModelKey, _: SharedLeaseToken) {
        let mut s = self.state.lock();
        s.held -= 1;
        s.abandons += 1;
    }
    fn mode(&self) -> SharedLimitsMode {
        self.state.lock().mode
    }
    fn last_error(&self) -> Option<String> {
        Some("store lost".into())
    }
    fn snapshot(&self) -> SharedLimitsSnapshot {
        SharedLimitsSnapshot::default()
    }
}

fn endpoint() -> ProviderModelKey {
    ProviderModelKey::new("p", "m").expect("key")
}

#[tokio::test(start_paused = true)]
async fn a_release_wakes_the_waiter_and_a_dropped_lease_is_abandoned_once() {
    let backend = Arc::new(Scripted::default());
    backend.state.lock().cap = 1;
    let gate = Arc::new(SharedGate::new(backend.clone(), EventStream::disabled()));
    let e = endpoint();
    let first = gate
        .admit(&e, SharedDemand::default(), None)
        .await
        .expect("free");
    let g = gate.clone();
    let waiter = tokio::spawn(async move {
        g.admit(&endpoint(), SharedDemand::default(), None)
            .await
            .map(|l| l.token())
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    first.release(SharedRelease::default()).await;
    let token = waiter.await.expect("join").expect("admitted");
    assert_eq!(token, Some(SharedLeaseToken(2)));
    // The waiter's lease was dropped with the task's result: abandoned, exactly once.
    let s = backend.state.lock();
    assert_eq!((s.releases, s.abandons, s.held), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_bounded_wait_ends_and_leaves_the_baton_free() {
    let backend = Arc::new(Scripted::default());
    backend.state.lock().cap = 1;
    let gate = SharedGate::new(backend.clone(), EventStream::disabled());
    let e = endpoint();
    let held = gate
        .admit(&e, SharedDemand::default(), None)
        .await
        .expect("free");
    let err = gate
        .admit(
            &e,
            SharedDemand::default(),
            Some(Duration::from_millis(100)),
        )
        .await
        .expect_err("cap full");
    assert!(err.waited >= Duration::from_millis(100));
    // One poller: a few tries over 100 ms of 10-15 ms backoffs, not a hot loop.
    assert!(
        backend.state.lock().tries <= 1 + 12,
        "{}",
        backend.state.lock().tries
    );
    drop(held);
    gate.admit(&e, SharedDemand::default(), Some(Duration::ZERO))
        .await
        .expect("baton and slot free again");
}

#[tokio::test(start_paused = true)]
async fn mode_changes_become_events() {
    let backend = Arc::new(Scripted::default());
    backend.state.lock().cap = 8;
    let sink = Arc::new(InMemoryAdmissionEventSink::new());
    let gate = SharedGate::new(
        backend.clone(),
        EventStream::single(sink.clone(), MonotonicClock::start()),
    );
    let e = endpoint();
    backend.state.lock().mode = SharedLimitsMode::LocalShare;
    let _a = gate
        .admit(&e, SharedDemand::default(), None)
        .await
        .expect("a");
    let _b = gate
        .admit(&e, SharedDemand::default(), None)
        .await
        .expect("b");
    backend.state.lock().mode = SharedLimitsMode::Shared;
    let _c = gate
        .admit(&e, SharedDemand::default(), None)
        .await
        .expect("c");
    let events = sink.request_events();
    let kinds: Vec<_> = events.iter().map(|e| e.event_kind()).collect();
    assert_eq!(
        kinds,
        [
            RequestEventKind::SharedLimitsDegraded,
            RequestEventKind::SharedLimitsRecovered
        ]
    );
    let RequestEventPayload::SharedLimitsDegraded(d) = &events[0].payload else {
        panic!("payload");
    };
    assert_eq!(d.current, SharedLimitsMode::LocalShare);
    assert_eq!(d.reason.as_deref(), Some("store lost"));
}
