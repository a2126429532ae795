//! The claim protocol against a real `redis-server` (weir-testkit's throwaway one): claims,
//! renewals, take-over after a lease runs out, release, and the rebuild after Redis came back
//! empty. Waits are bounded by generous deadlines and never asserted on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_coordinator::{Claim, Coordinator, CoordinatorConfig, CoordinatorError, Durable, JobSpec};
use weir_testkit::RedisServer;

const DEADLINE: Duration = Duration::from_secs(20);

fn config(lease_ms: u64) -> CoordinatorConfig {
    CoordinatorConfig {
        lease: Duration::from_millis(lease_ms),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        ..CoordinatorConfig::default()
    }
}

fn job(row_groups: u64) -> JobSpec {
    JobSpec::new(&["spec=test", "seed=1"], row_groups)
}

async fn worker(url: &str, name: &str, rgs: u64, lease_ms: u64, disk: Vec<u64>) -> Coordinator {
    let disk = Arc::new(Mutex::new(disk));
    worker_on(url, name, rgs, lease_ms, disk).await
}

fn empty_dir(token: &str) -> Durable {
    Durable::new(token, Box::new(Vec::new))
}

async fn worker_on(
    url: &str,
    name: &str,
    rgs: u64,
    lease_ms: u64,
    disk: Arc<Mutex<Vec<u64>>>,
) -> Coordinator {
    let done = Box::new(move || disk.lock().map(|d| d.clone()).unwrap_or_default());
    Coordinator::connect(
        url,
        name,
        job(rgs),
        config(lease_ms),
        Durable::new("dir-1", done),
    )
    .await
    .expect("connects")
}

fn claimed(c: Claim) -> u64 {
    match c {
        Claim::RowGroup { row_group, .. } => row_group,
        other => panic!("expected a row group, got {other:?}"),
    }
}

#[tokio::test]
async fn claims_hand_out_each_row_group_once_then_wait_then_done() {
    let Some(redis) = RedisServer::start_or_skip("claims_hand_out_each_row_group_once") else {
        return;
    };
    let a = worker(&redis.url(), "a", 3, 60_000, vec![]).await;
    let b = worker(&redis.url(), "b", 3, 60_000, vec![]).await;
    let mut got = vec![
        claimed(a.claim().await.expect("claim")),
        claimed(b.claim().await.expect("claim")),
        claimed(a.claim().await.expect("claim")),
    ];
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2]);
    match b.claim().await.expect("claim") {
        Claim::Wait { leased, .. } => assert_eq!(leased, 3),
        other => panic!("expected wait, got {other:?}"),
    }
    for rg in 0..3 {
        a.complete(rg).await.expect("complete");
    }
    assert_eq!(b.claim().await.expect("claim"), Claim::JobDone);
    let status = a.status().await.expect("status");
    assert_eq!((status.done, status.leased, status.total), (3, 0, 3));
    // Every key carries a TTL.
    let client = redis::Client::open(redis.url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    for key in a.keys().all() {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("pttl");
        // -2: the key does not exist (an empty set or hash); otherwise it must expire.
        assert!(ttl > 0 || ttl == -2, "{key}: PTTL {ttl}");
        assert!(key.contains(&format!("{{{}}}", a.job().id)), "{key}");
    }
}

#[tokio::test]
async fn a_lease_not_renewed_is_taken_over_and_a_renewed_one_is_not() {
    let Some(redis) = RedisServer::start_or_skip("a_lease_not_renewed_is_taken_over") else {
        return;
    };
    let a = worker(&redis.url(), "a", 2, 600, vec![]).await;
    let b = worker(&redis.url(), "b", 2, 600, vec![]).await;
    let rg_a0 = claimed(a.claim().await.expect("claim"));
    let rg_a1 = claimed(a.claim().await.expect("claim"));
    // `a` keeps renewing rg_a0 only; rg_a1 runs out and `b` takes it over.
    let start = Instant::now();
    let taken = loop {
        assert!(start.elapsed() < DEADLINE, "no take-over");
        assert!(a.renew(&[rg_a0]).await.expect("renew").is_empty());
        match b.claim().await.expect("claim") {
            Claim::RowGroup {
                row_group,
                taken_over_from,
            } => break (row_group, taken_over_from),
            Claim::Wait { .. } => tokio::time::sleep(Duration::from_millis(50)).await,
            Claim::JobDone => panic!("not done"),
        }
    };
    assert_eq!(taken, (rg_a1, Some("a".to_string())));
    // `a` learns it lost rg_a1 and still holds rg_a0.
    assert_eq!(a.renew(&[rg_a0, rg_a1]).await.expect("renew"), [rg_a1]);
    // A released claim is taken over at once.
    a.release(&[rg_a0]).await.expect("release");
    assert_eq!(
        b.claim().await.expect("claim"),
        Claim::RowGroup {
            row_group: rg_a0,
            taken_over_from: None
        }
    );
}

#[tokio::test]
async fn an_empty_restart_rebuilds_the_job_from_the_durable_parts() {
    let Some(mut redis) = RedisServer::start_or_skip("an_empty_restart_rebuilds_the_job") else {
        return;
    };
    let disk = Arc::new(Mutex::new(Vec::new()));
    let a = worker_on(&redis.url(), "a", 4, 60_000, disk.clone()).await;
    let b = worker_on(&redis.url(), "b", 4, 60_000, disk.clone()).await;
    let r0 = claimed(a.claim().await.expect("claim"));
    let r1 = claimed(b.claim().await.expect("claim"));
    let r2 = claimed(a.claim().await.expect("claim"));
    assert_eq!((r0, r1, r2), (0, 1, 2));
    // rg 0's part is durable (and Redis knows it); rg 2's part is durable but its completion
    // was never told to Redis; rg 1 is still being generated by `b`.
    a.complete(0).await.expect("complete");
    disk.lock().expect("disk").extend([0, 2]);
    redis.restart().expect("restart");
    // The dead cached connection is replaced within the call; the job, unknown to the empty
    // Redis, is rebuilt from the parts (0 and 2 done) and `b` takes its claim on 1 back.
    assert_eq!(
        b.renew(&[r1]).await.expect("renew after restart"),
        Vec::<u64>::new()
    );
    let status = a.status().await.expect("status");
    assert_eq!((status.done, status.leased), (2, 1));
    assert_eq!(claimed(a.claim().await.expect("claim")), 3);
    assert!(matches!(
        a.claim().await.expect("claim"),
        Claim::Wait { leased: 2, .. }
    ));
    b.complete(1).await.expect("complete");
    a.complete(3).await.expect("complete");
    assert_eq!(b.claim().await.expect("claim"), Claim::JobDone);
}

#[tokio::test]
async fn unreachable_redis_is_a_typed_error_naming_the_url() {
    // A port nothing listens on: bind one and let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let err = Coordinator::connect(&url, "a", job(1), config(1000), empty_dir("d"))
        .await
        .expect_err("nothing listens there");
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    let bad = Coordinator::connect("http://x", "a", job(1), config(1000), empty_dir("d"))
        .await
        .expect_err("not redis");
    assert!(matches!(bad, CoordinatorError::InvalidUrl { .. }), "{bad}");
}

#[tokio::test]
async fn another_identity_under_the_same_key_is_refused() {
    let Some(redis) = RedisServer::start_or_skip("another_identity_under_the_same_key") else {
        return;
    };
    let a = worker(&redis.url(), "a", 2, 60_000, vec![]).await;
    let client = redis::Client::open(redis.url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let _: () = redis::cmd("SET")
        .arg(&a.keys().meta)
        .arg("something else")
        .query_async(&mut conn)
        .await
        .expect("set");
    let err = Coordinator::connect(
        &redis.url(),
        "b",
        job(2),
        config(60_000),
        empty_dir("dir-1"),
    )
    .await
    .expect_err("conflict");
    assert!(matches!(err, CoordinatorError::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn a_finished_job_seen_from_a_new_empty_directory_starts_over() {
    let Some(redis) = RedisServer::start_or_skip("a_finished_job_seen_from_a_new_empty_dir") else {
        return;
    };
    let url = redis.url();
    let a = worker(&url, "a", 1, 60_000, vec![]).await;
    assert_eq!(claimed(a.claim().await.expect("claim")), 0);
    a.complete(0).await.expect("complete");
    // The same directory (token) again: done.
    let again = Coordinator::connect(&url, "a2", job(1), config(60_000), empty_dir("dir-1"))
        .await
        .expect("connects");
    assert_eq!(again.claim().await.expect("claim"), Claim::JobDone);
    // A new directory holding no part: the keys outlived the directory they described.
    let fresh = Coordinator::connect(&url, "b", job(1), config(60_000), empty_dir("dir-2"))
        .await
        .expect("connects");
    assert_eq!(claimed(fresh.claim().await.expect("claim")), 0);
    // A second worker of that new directory joins the restarted job instead of resetting it.
    let peer = Coordinator::connect(&url, "c", job(1), config(60_000), empty_dir("dir-2"))
        .await
        .expect("connects");
    assert!(matches!(
        peer.claim().await.expect("claim"),
        Claim::Wait { leased: 1, .. }
    ));
}
