//! [`RedisSharedLimits`]: the [`SharedLimits`] backend on Redis.
//!
//! One multiplexed connection ([`ConnectionManager`]: reconnects by itself) carries every
//! script call; each admission and each release is one `EVALSHA` (a `NOSCRIPT` after a server
//! restart costs one `SCRIPT LOAD` more, once). A background task renews the leases this worker
//! holds every `renew_every` (one round trip per endpoint with held leases): that is how a
//! dead worker's leases expire (nobody renews them) and how a live worker's leases reappear
//! when the server comes back empty.
//!
//! When the store fails, the backend degrades to its [`SharedFallback`]: `LocalShare` admits up
//! to a share of the last known shared cap per endpoint locally, `Pause` admits nothing new;
//! either way the leases held stay held. A degraded backend tries the store again at most every
//! `retry_every` (on an admission or on renewal); the first success recovers it and renews at
//! once, re-adding every held lease (fallback grants included: they are real calls in flight).

use crate::keys::EndpointKeys;
use crate::scripts::{ADMIT_SCRIPT, RELEASE_SCRIPT, RENEW_SCRIPT};
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{
    ProviderModelKey, SharedEndpointSnapshot, SharedLimitsMode, SharedLimitsSnapshot,
};
use weir_request_admission::{
    SharedDemand, SharedLeaseToken, SharedLimits, SharedOutcome, SharedRelease, SharedTry,
};

/// What a worker does while the store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SharedFallback {
    /// Admit locally up to this share (0, 1] of the endpoint's last known shared cap (at least
    /// one lease), counting the leases already held.
    LocalShare(f64),
    /// Admit nothing new until the store returns (callers wait, bounded by their own limits).
    Pause,
}

impl Default for SharedFallback {
    fn default() -> Self {
        Self::LocalShare(0.25)
    }
}

/// Settings of the Redis backend.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSharedLimitsConfig {
    /// Key scope: every worker of one job uses the same (default `default`).
    pub scope: String,
    /// A lease not renewed for this long expires (a dead worker's leases free themselves).
    pub lease_ttl: Duration,
    /// How often held leases are renewed (well under `lease_ttl`).
    pub renew_every: Duration,
    /// TTL of every key, refreshed on each use (idle scopes vanish).
    pub key_ttl: Duration,
    /// After a concurrency 429 lowers the shared cap, it holds this long before probing up.
    pub cap_hold: Duration,
    /// Behaviour while the store is unreachable.
    pub fallback: SharedFallback,
    /// A degraded backend tries the store at most this often.
    pub retry_every: Duration,
    /// Connect and response timeout of one store operation.
    pub op_timeout: Duration,
    /// Header-observed budgets are paced this share (permille) under the stated limit.
    pub learned_margin_permille: u32,
    /// A fresh endpoint's shared cap opens here (all workers together) and grows by one per
    /// success until the first concurrency 429: the slow start, shared.
    pub slow_start_cap: u32,
    /// A request-budget slot at most this far ahead is booked with the admission (one round
    /// trip; the caller sleeps to it holding the lease); further ones are refused with a hint.
    pub book_max: Duration,
}

impl Default for RedisSharedLimitsConfig {
    fn default() -> Self {
        Self {
            scope: "default".into(),
            lease_ttl: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
            key_ttl: Duration::from_secs(600),
            cap_hold: Duration::from_secs(10),
            fallback: SharedFallback::default(),
            retry_every: Duration::from_millis(500),
            op_timeout: Duration::from_millis(500),
            learned_margin_permille: 20,
            slow_start_cap: 8,
            book_max: Duration::from_millis(250),
        }
    }
}

/// The store could not be reached or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSharedLimitsError {
    /// What failed, naming the URL.
    pub message: String,
}

impl fmt::Display for RedisSharedLimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RedisSharedLimitsError {}

/// Per-endpoint state this worker keeps.
#[derive(Debug)]
struct Endpoint {
    keys: EndpointKeys,
    static_cap: u32,
    /// Held lease tokens (members are `worker:token`).
    held: HashSet<u64>,
    learned_cap: Option<u32>,
    max_in_flight: u32,
    rpm: Option<u64>,
    tpm: Option<u64>,
}

#[derive(Debug)]
struct State {
    mode: SharedLimitsMode,
    last_error: Option<String>,
    /// While degraded: the next instant a try may go to the store.
    next_retry: Instant,
    endpoints: HashMap<ProviderModelKey, Endpoint>,
}

#[derive(Debug, Default)]
struct Counters {
    admissions: AtomicU64,
    fallback_admissions: AtomicU64,
    refusals: AtomicU64,
    releases: AtomicU64,
    left_to_expire: AtomicU64,
    round_trips: AtomicU64,
    renewal_round_trips: AtomicU64,
    degraded: AtomicU64,
    recoveries: AtomicU64,
    leases_restored: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Shared limits on Redis (see the module docs).
pub struct RedisSharedLimits {
    conn: ConnectionManager,
    config: RedisSharedLimitsConfig,
    worker: String,
    next_token: AtomicU64,
    state: Mutex<State>,
    counters: Counters,
    /// Itself, for background releases of abandoned leases.
    me: Weak<Self>,
}

impl fmt::Debug for RedisSharedLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSharedLimits")
            .field("worker", &self.worker)
            .field("scope", &self.config.scope)
            .finish()
    }
}

impl RedisSharedLimits {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`), checks it answers, and starts the renewal
    /// task (needs a tokio runtime with time). Unreachable → an error naming the URL.
    pub async fn connect(
        url: &str,
        config: RedisSharedLimitsConfig,
    ) -> Result<Arc<Self>, RedisSharedLimitsError> {
        let fail = |what: &str, e: &dyn fmt::Display| RedisSharedLimitsError {
            message: format!("shared limits: cannot {what} Redis at {url}: {e}"),
        };
        let client = redis::Client::open(url).map_err(|e| fail("parse the URL of", &e))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(config.op_timeout)
            .set_response_timeout(config.op_timeout)
            .set_number_of_retries(1)
            .set_max_delay(100);
        let mut conn = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(|e| fail("connect to", &e))?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| fail("talk to", &e))?;
        if pong != "PONG" {
            return Err(fail("talk to", &format!("PING answered {pong:?}")));
        }
        let worker = worker_id();
        let backend = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            conn,
            config,
            worker,
            next_token: AtomicU64::new(1),
            state: Mutex::new(State {
                mode: SharedLimitsMode::Shared,
                last_error: None,
                next_retry: Instant::now(),
                endpoints: HashMap::new(),
            }),
            counters: Counters::default(),
        });
        let weak = Arc::downgrade(&backend);
        let every = backend.config.renew_every;
        tokio::spawn(renewal_loop(weak, every));
        Ok(backend)
    }

    /// This worker's id in the store.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The settings.
    pub fn config(&self) -> &RedisSharedLimitsConfig {
        &self.config
    }

    fn member(&self, token: u64) -> String {
        format!("{}:{token}", self.worker)
    }

    /// The endpoint's keys, registering it on first use.
    fn keys_for(&self, endpoint: &ProviderModelKey, static_cap: u32) -> (EndpointKeys, usize) {
        let mut st = self.state.lock();
        let scope = &self.config.scope;
        let e = st
            .endpoints
            .entry(endpoint.clone())
            .or_insert_with(|| Endpoint {
                keys: EndpointKeys::new(scope, endpoint),
                static_cap: static_cap.max(1),
                held: HashSet::new(),
                learned_cap: None,
                max_in_flight: 0,
                rpm: None,
                tpm: None,
            });
        e.static_cap = static_cap.max(1);
        (e.keys.clone(), e.held.len())
    }

    /// True when this call should go to the store (shared, or degraded and due for a retry).
    fn store_due(&self) -> bool {
        let mut st = self.state.lock();
        if st.mode == SharedLimitsMode::Shared {
            return true;
        }
        let now = Instant::now();
        if now >= st.next_retry {
            st.next_retry = now + self.config.retry_every;
            return true;
        }
        false
    }

    /// A store operation failed: degrade (once per episode) and remember why.
    fn degrade(&self, e: &redis::RedisError) {
        let mut st = self.state.lock();
        st.last_error = Some(e.to_string());
        st.next_retry = Instant::now() + self.config.retry_every;
        if st.mode == SharedLimitsMode::Shared {
            st.mode = match self.config.fallback {
                SharedFallback::LocalShare(_) => SharedLimitsMode::LocalShare,
                SharedFallback::Pause => SharedLimitsMode::Paused,
            };
            bump(&self.counters.degraded);
        }
    }

    /// A store operation succeeded: recover if degraded. True when it just recovered.
    fn mark_reachable(&self) -> bool {
        let mut st = self.state.lock();
        if st.mode == SharedLimitsMode::Shared {
            return false;
        }
        st.mode = SharedLimitsMode::Shared;
        st.last_error = None;
        bump(&self.counters.recoveries);
        true
    }

    /// Admission while degraded: a local share of the last known cap, or nothing.
    fn fallback_admit(&self, endpoint: &ProviderModelKey) -> SharedTry {
        let share = match self.config.fallback {
            SharedFallback::Pause => return SharedTry::Wait(self.config.retry_every),
            SharedFallback::LocalShare(share) => share,
        };
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock();
        let Some(e) = st.endpoints.get_mut(endpoint) else {
            return SharedTry::Wait(self.config.retry_every);
        };
        let cap = e.learned_cap.unwrap_or(e.static_cap);
        let allowed = ((f64::from(cap) * share).floor() as u32).max(1);
        if e.held.len() as u64 >= u64::from(allowed) {
            return SharedTry::Wait(Duration::ZERO);
        }
        e.held.insert(token);
        drop(st);
        bump(&self.counters.admissions);
        bump(&self.counters.fallback_admissions);
        SharedTry::Admitted(SharedLeaseToken(token))
    }

    /// Renews every held lease (one round trip per endpoint with leases). Also the recovery
    /// probe of a degraded backend.
    pub async fn renew_now(&self) {
        if !self.store_due() {
            return;
        }
        let batches: Vec<(EndpointKeys, Vec<String>)> = {
            let st = self.state.lock();
            st.endpoints
                .values()
                .map(|e| {
                    let members = e.held.iter().map(|t| self.member(*t)).collect::<Vec<_>>();
                    (e.keys.clone(), members)
                })
                .collect()
        };
        let mut conn = self.conn.clone();
        for (keys, members) in batches {
            let mut inv = RENEW_SCRIPT.prepare_invoke();
            inv.key(&keys.leases)
                .key(&keys.meta)
                .key(&keys.released)
                .arg(self.config.lease_ttl.as_millis() as u64)
                .arg(self.config.key_ttl.as_millis() as u64);
            for m in &members {
                inv.arg(m);
            }
            bump(&self.counters.renewal_round_trips);
            match inv.invoke_async::<u64>(&mut conn).await {
                Ok(restored) => {
                    self.mark_reachable();
                    self.counters
                        .leases_restored
                        .fetch_add(restored, Ordering::Relaxed);
                }
                Err(e) => {
                    self.degrade(&e);
                    return;
                }
            }
        }
    }

    /// Forgets `token`; true if it was held.
    fn forget(&self, endpoint: &ProviderModelKey, token: u64) -> Option<(EndpointKeys, u32)> {
        let mut st = self.state.lock();
        let e = st.endpoints.get_mut(endpoint)?;
        e.held
            .remove(&token)
            .then(|| (e.keys.clone(), e.static_cap))
    }

    async fn release_in_store(
        &self,
        keys: &EndpointKeys,
        static_cap: u32,
        endpoint: &ProviderModelKey,
        token: u64,
        release: SharedRelease,
    ) {
        if self.mode() != SharedLimitsMode::Shared {
            // Not reachable now: the lease expires (it is no longer renewed).
            bump(&self.counters.left_to_expire);
            return;
        }
        let outcome: u8 = match release.outcome {
            SharedOutcome::Success => 0,
            SharedOutcome::ConcurrencyLimited => 1,
            SharedOutcome::WindowLimited => 2,
            SharedOutcome::Other => 3,
        };
        let mut conn = self.conn.clone();
        bump(&self.counters.round_trips);
        let answer: Result<(u64, u32, u32), _> = RELEASE_SCRIPT
            .key(&keys.leases)
            .key(&keys.meta)
            .key(&keys.released)
            .arg(self.member(token))
            .arg(outcome)
            .arg(release.retry_after.map_or(0, |d| d.as_millis() as u64))
            .arg(release.observed_requests_per_minute.unwrap_or(0))
            .arg(release.observed_tokens_per_minute.unwrap_or(0))
            .arg(self.config.key_ttl.as_millis() as u64)
            .arg(self.config.cap_hold.as_millis() as u64)
            .arg(static_cap)
            .arg(self.config.lease_ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await;
        match answer {
            Ok((_removed, _in_flight, cap)) => {
                bump(&self.counters.releases);
                let mut st = self.state.lock();
                if let Some(e) = st.endpoints.get_mut(endpoint) {
                    e.learned_cap = (cap > 0).then_some(cap);
                }
            }
            Err(e) => {
                bump(&self.counters.left_to_expire);
                self.degrade(&e);
            }
        }
    }
}

#[async_trait]
impl SharedLimits for RedisSharedLimits {
    async fn try_admit(&self, endpoint: &ProviderModelKey, demand: SharedDemand) -> SharedTry {
        let (keys, held) = self.keys_for(endpoint, demand.static_cap);
        if !self.store_due() {
            return self.fallback_admit(endpoint);
        }
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.conn.clone();
        bump(&self.counters.round_trips);
        let answer: Result<(u8, u64, u32, u32, u64, u64), _> = ADMIT_SCRIPT
            .key(&keys.leases)
            .key(&keys.meta)
            .key(&keys.released)
            .key(&keys.workers)
            .key(&keys.waiting)
            .arg(self.member(token))
            .arg(self.config.lease_ttl.as_millis() as u64)
            .arg(demand.static_cap.max(1))
            .arg(demand.requests_per_minute.unwrap_or(0))
            .arg(demand.tokens_per_minute.unwrap_or(0))
            .arg(demand.tokens)
            .arg(self.config.key_ttl.as_millis() as u64)
            .arg(self.config.learned_margin_permille)
            .arg(self.config.slow_start_cap.max(1))
            .arg(&self.worker)
            .arg(held)
            .arg(self.config.book_max.as_millis() as u64)
            .invoke_async(&mut conn)
            .await;
        let (status, wait_us, in_flight, learned, rpm, tpm) = match answer {
            Ok(a) => a,
            Err(e) => {
                self.degrade(&e);
                return self.fallback_admit(endpoint);
            }
        };
        if self.mark_reachable() {
            // Back after a loss (maybe empty): put every held lease back before more admissions
            // count the set.
            self.renew_now().await;
        }
        let mut st = self.state.lock();
        let Some(e) = st.endpoints.get_mut(endpoint) else {
            return SharedTry::Wait(Duration::ZERO);
        };
        e.learned_cap = (learned > 0).then_some(learned);
        e.rpm = (rpm > 0).then_some(rpm);
        e.tpm = (tpm > 0).then_some(tpm);
        e.max_in_flight = e.max_in_flight.max(in_flight);
        if status == 0 || status == 6 {
            e.held.insert(token);
            drop(st);
            bump(&self.counters.admissions);
            if status == 6 {
                SharedTry::Booked(SharedLeaseToken(token), Duration::from_micros(wait_us))
            } else {
                SharedTry::Admitted(SharedLeaseToken(token))
            }
        } else {
            drop(st);
            bump(&self.counters.refusals);
            SharedTry::Wait(Duration::from_micros(wait_us))
        }
    }

    async fn release(
        &self,
        endpoint: &ProviderModelKey,
        lease: SharedLeaseToken,
        release: SharedRelease,
    ) {
        // Forget first: from here it is no longer renewed, so a dropped release expires.
        let Some((keys, static_cap)) = self.forget(endpoint, lease.0) else {
            return;
        };
        self.release_in_store(&keys, static_cap, endpoint, lease.0, release)
            .await;
    }

    fn abandon(&self, endpoint: &ProviderModelKey, lease: SharedLeaseToken) {
        let Some((keys, static_cap)) = self.forget(endpoint, lease.0) else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            bump(&self.counters.left_to_expire);
            return;
        };
        let Some(me) = self.me.upgrade() else {
            bump(&self.counters.left_to_expire);
            return;
        };
        let endpoint = endpoint.clone();
        handle.spawn(async move {
            let release = SharedRelease {
                outcome: SharedOutcome::Other,
                ..SharedRelease::default()
            };
            me.release_in_store(&keys, static_cap, &endpoint, lease.0, release)
                .await;
        });
    }

    fn mode(&self) -> SharedLimitsMode {
        self.state.lock().mode
    }

    fn last_error(&self) -> Option<String> {
        self.state.lock().last_error.clone()
    }

    fn snapshot(&self) -> SharedLimitsSnapshot {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let st = self.state.lock();
        let mut endpoints: Vec<SharedEndpointSnapshot> = st
            .endpoints
            .iter()
            .map(|(k, e)| SharedEndpointSnapshot {
                endpoint: k.clone(),
                static_cap: e.static_cap,
                learned_cap: e.learned_cap,
                max_shared_in_flight: e.max_in_flight,
                held: e.held.len() as u32,
                requests_per_minute: e.rpm,
                tokens_per_minute: e.tpm,
            })
            .collect();
        endpoints.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        let admissions = load(&c.admissions);
        let round_trips = load(&c.round_trips);
        let (fallback, share) = match self.config.fallback {
            SharedFallback::LocalShare(s) => (SharedLimitsMode::LocalShare, s),
            SharedFallback::Pause => (SharedLimitsMode::Paused, 0.0),
        };
        SharedLimitsSnapshot {
            backend: "redis".into(),
            scope: self.config.scope.clone(),
            worker: self.worker.clone(),
            mode: st.mode,
            fallback,
            fallback_share: share,
            admissions,
            fallback_admissions: load(&c.fallback_admissions),
            refusals: load(&c.refusals),
            releases: load(&c.releases),
            left_to_expire: load(&c.left_to_expire),
            round_trips,
            renewal_round_trips: load(&c.renewal_round_trips),
            round_trips_per_request: if admissions == 0 {
                0.0
            } else {
                round_trips as f64 / admissions as f64
            },
            degraded: load(&c.degraded),
            recoveries: load(&c.recoveries),
            leases_restored: load(&c.leases_restored),
            endpoints,
        }
    }
}

/// Renews held leases until the backend is dropped.
async fn renewal_loop(weak: Weak<RedisSharedLimits>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(backend) = weak.upgrade() else {
            return;
        };
        backend.renew_now().await;
    }
}

/// A worker id unique enough across processes and hosts: pid, start time, a counter.
fn worker_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "w{:x}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}
