//! The Redis backend against a real `redis-server` on a free loopback port (skipped, with a
//! note, where none is installed outside CI). Waits poll the observable state in bounded
//! loops; no assertion is a wall-clock bound.

use std::sync::Arc;
use std::time::Duration;
use weir_contracts::{ProviderModelKey, SharedLimitsMode};
use weir_redis::{EndpointKeys, RedisSharedLimits, RedisSharedLimitsConfig, SharedFallback};
use weir_request_admission::{
    SharedDemand, SharedGate, SharedLimits, SharedOutcome, SharedRelease, SharedTry,
};
use weir_telemetry::RequestEventStream;
use weir_testkit::RedisServer;

fn endpoint() -> ProviderModelKey {
    ProviderModelKey::new("loopback", "m1").expect("key")
}

fn demand(cap: u32) -> SharedDemand {
    SharedDemand {
        static_cap: cap,
        ..SharedDemand::default()
    }
}

fn config(scope: &str) -> RedisSharedLimitsConfig {
    RedisSharedLimitsConfig {
        scope: scope.into(),
        renew_every: Duration::from_millis(50),
        lease_ttl: Duration::from_millis(600),
        retry_every: Duration::from_millis(50),
        op_timeout: Duration::from_millis(300),
        ..RedisSharedLimitsConfig::default()
    }
}

async fn connect(server: &RedisServer, config: RedisSharedLimitsConfig) -> Arc<RedisSharedLimits> {
    RedisSharedLimits::connect(&server.url(), config)
        .await
        .expect("connect")
}

/// Leases in the store's set for `endpoint` in `scope` (expired ones included until cleaned).
async fn stored_leases(server: &RedisServer, scope: &str) -> u64 {
    let client = redis::Client::open(server.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let keys = EndpointKeys::new(scope, &endpoint());
    redis::cmd("ZCARD")
        .arg(&keys.leases)
        .query_async(&mut c)
        .await
        .expect("zcard")
}

fn admitted(t: SharedTry) -> weir_request_admission::SharedLeaseToken {
    match t {
        SharedTry::Admitted(l) => l,
        SharedTry::Wait(d) => panic!("expected admission, told to wait {d:?}"),
        SharedTry::Booked(_, d) => panic!("expected admission now, booked {d:?} ahead"),
    }
}

/// Polls `f` every 20 ms, at most `tries` times; true once it holds.
async fn eventually(tries: u32, mut f: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..tries {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_cap_and_a_release_frees_a_slot() {
    let Some(server) = RedisServer::start_or_skip("two_workers_share_one_cap") else {
        return;
    };
    let a = connect(&server, config("cap")).await;
    let b = connect(&server, config("cap")).await;
    let e = endpoint();
    let la = admitted(a.try_admit(&e, demand(3)).await);
    let _lb = admitted(b.try_admit(&e, demand(3)).await);
    let _lb2 = admitted(b.try_admit(&e, demand(3)).await);
    assert!(matches!(
        a.try_admit(&e, demand(3)).await,
        SharedTry::Wait(_)
    ));
    a.release(&e, la, SharedRelease::default()).await;
    // Fair share: `a` waits and `b` already holds ceil(3 / 2) = 2, so the freed slot is a's.
    assert!(matches!(
        b.try_admit(&e, demand(3)).await,
        SharedTry::Wait(_)
    ));
    admitted(a.try_admit(&e, demand(3)).await);
    // One round trip per admission try and per release.
    let s = a.snapshot();
    assert_eq!((s.admissions, s.refusals, s.releases), (2, 1, 1));
    assert_eq!(s.round_trips, 4);
    assert_eq!(b.snapshot().endpoints[0].max_shared_in_flight, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_lease_expires_and_a_live_one_is_renewed() {
    let Some(server) = RedisServer::start_or_skip("dead_worker_lease_expires") else {
        return;
    };
    let e = endpoint();
    // The dead worker never renews (its renewal period is longer than the test).
    let dead = connect(
        &server,
        RedisSharedLimitsConfig {
            renew_every: Duration::from_secs(3600),
            ..config("expiry")
        },
    )
    .await;
    let live = connect(&server, config("expiry")).await;
    let other = connect(&server, config("expiry")).await;
    let _held_by_dead = admitted(dead.try_admit(&e, demand(2)).await);
    let _held_by_live = admitted(live.try_admit(&e, demand(2)).await);
    assert!(matches!(
        other.try_admit(&e, demand(2)).await,
        SharedTry::Wait(_)
    ));
    // After the lease TTL the dead worker's lease is gone, the live one's is still there.
    let freed = eventually(200, async || {
        matches!(other.try_admit(&e, demand(2)).await, SharedTry::Admitted(_))
    })
    .await;
    assert!(freed, "the dead worker's lease never expired");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(matches!(
        other.try_admit(&e, demand(2)).await,
        SharedTry::Wait(_)
    ));
    assert!(live.snapshot().renewal_round_trips > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_leases_reappear_by_renewal_after_an_empty_restart() {
    let Some(mut server) = RedisServer::start_or_skip("renewal_after_restart") else {
        return;
    };
    let e = endpoint();
    let a = connect(&server, config("restart")).await;
    let _l1 = admitted(a.try_admit(&e, demand(2)).await);
    let _l2 = admitted(a.try_admit(&e, demand(2)).await);
    server.restart().expect("restart");
    assert_eq!(
        stored_leases(&server, "restart").await,
        0,
        "came back empty"
    );
    let restored = eventually(200, async || stored_leases(&server, "restart").await == 2).await;
    assert!(restored, "held leases did not reappear");
    let b = connect(&server, config("restart")).await;
    assert!(matches!(
        b.try_admit(&e, demand(2)).await,
        SharedTry::Wait(_)
    ));
    assert!(a.snapshot().leases_restored >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_budget_is_shared_by_two_workers() {
    let Some(server) = RedisServer::start_or_skip("gcra_budget_shared") else {
        return;
    };
    let e = endpoint();
    let a = connect(&server, config("gcra")).await;
    let b = connect(&server, config("gcra")).await;
    // 60 per minute: one per second for both together.
    let paced = SharedDemand {
        static_cap: 8,
        requests_per_minute: Some(60),
        ..SharedDemand::default()
    };
    // A burst of two (one interval of tolerance), then one per second for both together.
    admitted(a.try_admit(&e, paced).await);
    admitted(b.try_admit(&e, paced).await);
    let SharedTry::Wait(wait) = b.try_admit(&e, paced).await else {
        panic!("the second worker was not paced by the first one's request");
    };
    assert!(
        wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    tokio::time::sleep(wait).await;
    admitted(b.try_admit(&e, paced).await);
    assert!(matches!(a.try_admit(&e, paced).await, SharedTry::Wait(_)));
    // A slot within `book_max` (250 ms) is booked with the admission: one round trip.
    let m4 = ProviderModelKey::new("loopback", "m4").expect("key");
    let fast = SharedDemand {
        requests_per_minute: Some(600),
        ..paced
    };
    admitted(a.try_admit(&m4, fast).await);
    admitted(b.try_admit(&m4, fast).await);
    let SharedTry::Booked(_, wait) = a.try_admit(&m4, fast).await else {
        panic!("a slot 100 ms ahead was not booked");
    };
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(100),
        "{wait:?}"
    );
    // A token budget is shared the same way.
    let m2 = ProviderModelKey::new("loopback", "m2").expect("key");
    let tokens = SharedDemand {
        static_cap: 8,
        tokens: 1_000,
        tokens_per_minute: Some(60_000),
        ..SharedDemand::default()
    };
    admitted(a.try_admit(&m2, tokens).await);
    let SharedTry::Wait(wait) = b.try_admit(&m2, tokens).await else {
        panic!("the token budget was not shared");
    };
    assert!(wait > Duration::from_millis(500), "{wait:?}");
    // A header-observed limit becomes everyone's budget (paced 2 % under it).
    let m3 = ProviderModelKey::new("loopback", "m3").expect("key");
    let t = admitted(a.try_admit(&m3, demand(8)).await);
    let observed = SharedRelease {
        observed_requests_per_minute: Some(30),
        ..SharedRelease::default()
    };
    a.release(&m3, t, observed).await;
    admitted(b.try_admit(&m3, demand(8)).await);
    admitted(b.try_admit(&m3, demand(8)).await);
    assert!(
        matches!(a.try_admit(&m3, demand(8)).await, SharedTry::Wait(d) if d > Duration::from_secs(1))
    );
    let learned = b
        .snapshot()
        .endpoints
        .iter()
        .find(|s| s.endpoint == m3)
        .map(|s| s.requests_per_minute);
    assert_eq!(learned, Some(Some(29)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_429_shares_the_cap_it_taught_and_a_lone_one_a_cooldown() {
    let Some(server) = RedisServer::start_or_skip("cooldown_and_cap_shared") else {
        return;
    };
    let e = endpoint();
    let a = connect(&server, config("cool")).await;
    let b = connect(&server, config("cool")).await;
    let la: Vec<_> = futures_free_collect(&a, &e, 3).await;
    let lb: Vec<_> = futures_free_collect(&b, &e, 2).await;
    // One of a's calls was refused for concurrency with Retry-After 400 ms while 4 others were
    // in flight: an overshoot. The cap becomes those 4 (full now), and no cooldown is shared.
    a.release(
        &e,
        la[0],
        SharedRelease {
            outcome: SharedOutcome::ConcurrencyLimited,
            retry_after: Some(Duration::from_millis(400)),
            ..SharedRelease::default()
        },
    )
    .await;
    assert!(matches!(b.try_admit(&e, demand(16)).await, SharedTry::Wait(d) if d.is_zero()));
    assert_eq!(b.snapshot().endpoints[0].learned_cap, Some(4));
    b.release(&e, lb[0], SharedRelease::default()).await;
    // b waited (refused at the full cap) and holds 1 of its fair 2: the slot is b's.
    assert!(matches!(
        a.try_admit(&e, demand(16)).await,
        SharedTry::Wait(_)
    ));
    let lb2 = admitted(b.try_admit(&e, demand(16)).await);
    // Everything else ends; the last call is refused alone: the endpoint refuses, not
    // overshoots, so its Retry-After is every worker's cooldown.
    for l in [la[1], la[2]] {
        a.release(&e, l, SharedRelease::default()).await;
    }
    b.release(&e, lb[1], SharedRelease::default()).await;
    b.release(
        &e,
        lb2,
        SharedRelease {
            outcome: SharedOutcome::ConcurrencyLimited,
            retry_after: Some(Duration::from_millis(400)),
            ..SharedRelease::default()
        },
    )
    .await;
    let SharedTry::Wait(wait) = a.try_admit(&e, demand(16)).await else {
        panic!("the cooldown was not shared");
    };
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(400),
        "{wait:?}"
    );
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    admitted(a.try_admit(&e, demand(16)).await);
}

async fn futures_free_collect(
    s: &RedisSharedLimits,
    e: &ProviderModelKey,
    n: usize,
) -> Vec<weir_request_admission::SharedLeaseToken> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(admitted(s.try_admit(e, demand(16)).await));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_falls_back_to_a_local_share_and_recovers_when_it_returns() {
    let Some(mut server) = RedisServer::start_or_skip("fallback_local_share") else {
        return;
    };
    let e = endpoint();
    let a = connect(
        &server,
        RedisSharedLimitsConfig {
            fallback: SharedFallback::LocalShare(0.5),
            ..config("fallback")
        },
    )
    .await;
    let held = admitted(a.try_admit(&e, demand(4)).await);
    server.stop();
    // Local share: half of the cap of 4, counting the lease already held.
    let second = admitted(a.try_admit(&e, demand(4)).await);
    assert_eq!(a.mode(), SharedLimitsMode::LocalShare);
    assert!(a.last_error().is_some());
    assert!(matches!(
        a.try_admit(&e, demand(4)).await,
        SharedTry::Wait(_)
    ));
    let s = a.snapshot();
    assert_eq!((s.degraded, s.fallback_admissions), (1, 1));
    server.restart().expect("restart");
    let back = eventually(200, async || {
        a.renew_now().await;
        a.mode() == SharedLimitsMode::Shared
    })
    .await;
    assert!(back, "never recovered");
    // Both held leases (the fallback grant too) are in the new, empty store.
    assert!(eventually(100, async || stored_leases(&server, "fallback").await == 2).await);
    a.release(&e, held, SharedRelease::default()).await;
    a.release(&e, second, SharedRelease::default()).await;
    assert_eq!(stored_leases(&server, "fallback").await, 0);
    assert_eq!(a.snapshot().recoveries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_in_pause_mode_admits_nothing_new() {
    let Some(mut server) = RedisServer::start_or_skip("fallback_pause") else {
        return;
    };
    let e = endpoint();
    let a = connect(
        &server,
        RedisSharedLimitsConfig {
            fallback: SharedFallback::Pause,
            ..config("pause")
        },
    )
    .await;
    let _held = admitted(a.try_admit(&e, demand(4)).await);
    server.stop();
    assert!(matches!(
        a.try_admit(&e, demand(4)).await,
        SharedTry::Wait(_)
    ));
    assert_eq!(a.mode(), SharedLimitsMode::Paused);
    server.restart().expect("restart");
    let back = eventually(200, async || {
        matches!(a.try_admit(&e, demand(4)).await, SharedTry::Admitted(_))
    })
    .await;
    assert!(back);
    assert_eq!(a.mode(), SharedLimitsMode::Shared);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_lease_or_wait_leaks_nothing() {
    let Some(server) = RedisServer::start_or_skip("cancellation_no_leak") else {
        return;
    };
    let e = endpoint();
    let backend = connect(&server, config("cancel")).await;
    let gate = SharedGate::new(backend.clone(), RequestEventStream::disabled());
    let lease = gate.admit(&e, demand(1), None).await.expect("admitted");
    // A waiter dropped while the cap is full gives its place back.
    let waited =
        tokio::time::timeout(Duration::from_millis(100), gate.admit(&e, demand(1), None)).await;
    assert!(waited.is_err(), "cap 1 was full");
    // The held lease dropped without release: its guard releases it in the background.
    drop(lease);
    assert!(eventually(100, async || stored_leases(&server, "cancel").await == 0).await);
    let again = gate
        .admit(&e, demand(1), Some(Duration::from_secs(5)))
        .await
        .expect("the slot and the baton are free again");
    again.release(SharedRelease::default()).await;
    let s = backend.snapshot();
    assert_eq!(s.releases, 2);
    assert_eq!(s.endpoints[0].held, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_common_path_is_one_round_trip_per_admission_and_one_per_release() {
    let Some(server) = RedisServer::start_or_skip("round_trips") else {
        return;
    };
    let e = endpoint();
    let backend = connect(
        &server,
        RedisSharedLimitsConfig {
            renew_every: Duration::from_secs(3600),
            ..config("trips")
        },
    )
    .await;
    let gate = SharedGate::new(backend.clone(), RequestEventStream::disabled());
    for _ in 0..50 {
        let l = gate.admit(&e, demand(8), None).await.expect("admitted");
        l.release(SharedRelease::default()).await;
    }
    let s = backend.snapshot();
    assert_eq!((s.admissions, s.releases, s.round_trips), (50, 50, 100));
    assert!((s.round_trips_per_request - 2.0).abs() < 1e-9);
}

#[tokio::test]
async fn an_unreachable_store_at_start_is_an_error_naming_the_url() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let url = format!("redis://127.0.0.1:{port}");
    let err = RedisSharedLimits::connect(&url, config("none"))
        .await
        .expect_err("nothing listens there");
    assert!(err.message.contains(&url), "{err}");
}
