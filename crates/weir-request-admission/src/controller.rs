//! `RequestAdmissionController` (the trait) and `AdaptiveRequestAdmissionController`: routes
//! each call to its provider/model shard, checks lease generations, and shuts everything down.

use crate::config::{RequestAdmissionConfig, RequestAdmissionConfigError};
use crate::lease::{
    RequestAdmissionDecision, RequestAdmissionDenied, RequestAdmissionError, RequestAdmissionItem,
    RequestAdmissionLease,
};
use crate::pressure::RequestPressureSnapshotProvider;
use crate::shard::{Shard, Shared, Start};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::future::Future;
use std::hash::Hasher;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use weir_contracts::{
    ContractError, ControllerGeneration, ProviderModelKey, ProviderModelStaticCap, ReleaseReason,
    ReleaseResult, RequestAdmissionDenyReason, RequestReleaseOutcome,
};
use weir_fair::hash::{FxHashMap, FxHasher};
use weir_telemetry::RequestEventStream;

/// The request-admission boundary the runtime's `ModelRequestExecutor` talks to.
///
/// Object safe (`Arc<dyn RequestAdmissionController>`); the concrete
/// [`AdaptiveRequestAdmissionController`] has the same methods inherently, without boxing.
#[async_trait]
pub trait RequestAdmissionController: Send + Sync {
    /// Registers an alias of an endpoint with its `max_parallel_requests`; returns the merged cap.
    fn register(
        &self,
        provider_name: &str,
        model_id: &str,
        alias: &str,
        max_parallel_requests: u32,
    ) -> Result<ProviderModelStaticCap, ContractError>;
    /// Non-blocking admission: a lease now or a typed denial.
    fn try_acquire(&self, item: RequestAdmissionItem) -> RequestAdmissionDecision;
    /// Waits for a lease (timeout, shutdown and hard denial end the wait with an error).
    async fn acquire(
        &self,
        item: RequestAdmissionItem,
    ) -> Result<RequestAdmissionLease, RequestAdmissionError>;
    /// Blocking acquire for threads outside any tokio runtime.
    fn acquire_blocking(
        &self,
        item: RequestAdmissionItem,
    ) -> Result<RequestAdmissionLease, RequestAdmissionError>;
    /// Releases a lease exactly once with its classified outcome.
    fn release(
        &self,
        lease: RequestAdmissionLease,
        outcome: RequestReleaseOutcome,
    ) -> ReleaseResult;
    /// Denies every waiter and every later acquire with `shutdown`.
    fn shutdown(&self);
    /// Read-only pressure snapshots.
    fn pressure(&self) -> RequestPressureSnapshotProvider;
}

/// Hash of an endpoint's names, computed from borrowed `&str`s (no key is built per lookup),
/// with the admission crates' one fast hasher (keys are short trusted names).
fn names_hash(provider_name: &str, model_id: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(provider_name.as_bytes());
    h.write(&[0xff]);
    h.write(model_id.as_bytes());
    h.finish()
}

/// Endpoints whose names share a hash.
type Bucket = Vec<(ProviderModelKey, Arc<Shard>)>;

/// Endpoint → shard, looked up by borrowed names (hash buckets of `(key, shard)`).
#[derive(Default)]
pub(crate) struct ShardMap {
    buckets: FxHashMap<u64, Bucket>,
    len: usize,
}

impl ShardMap {
    pub fn get(&self, provider_name: &str, model_id: &str) -> Option<&Arc<Shard>> {
        self.buckets
            .get(&names_hash(provider_name, model_id))?
            .iter()
            .find(|(k, _)| &*k.provider_name == provider_name && &*k.model_id == model_id)
            .map(|(_, s)| s)
    }

    fn insert_with(
        &mut self,
        key: &ProviderModelKey,
        make: impl FnOnce(u64) -> Arc<Shard>,
    ) -> Arc<Shard> {
        if let Some(s) = self.get(&key.provider_name, &key.model_id) {
            return Arc::clone(s);
        }
        self.len += 1;
        let shard = make(self.len as u64);
        self.buckets
            .entry(names_hash(&key.provider_name, &key.model_id))
            .or_default()
            .push((key.clone(), Arc::clone(&shard)));
        shard
    }

    fn iter(&self) -> impl Iterator<Item = (&ProviderModelKey, &Arc<Shard>)> {
        self.buckets.values().flatten().map(|(k, s)| (k, s))
    }
}

/// Shared body of the controller (the pressure provider holds it too).
pub(crate) struct ControllerCore {
    pub shared: Arc<Shared>,
    pub shards: RwLock<ShardMap>,
}

impl ControllerCore {
    pub fn shard(&self, key: &ProviderModelKey) -> Option<Arc<Shard>> {
        self.shards
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key.provider_name, &key.model_id)
            .cloned()
    }

    pub fn all_shards(&self) -> Vec<Arc<Shard>> {
        let map = self.shards.read().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<(ProviderModelKey, Arc<Shard>)> = map
            .iter()
            .map(|(k, s)| (k.clone(), Arc::clone(s)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, s)| s).collect()
    }
}

type WaitFuture =
    Pin<Box<dyn Future<Output = Result<RequestAdmissionLease, RequestAdmissionError>> + Send>>;

enum AcquireState {
    Init(RequestAdmissionItem),
    /// Queued: the wait is boxed so the fast path stays small and cheap to move.
    Waiting(WaitFuture),
    Done,
}

/// The future of [`AdaptiveRequestAdmissionController::acquire`].
///
/// Lazy: nothing happens until it is first polled. Dropping it before admission removes its
/// waiter; dropping it after the controller admitted it releases that lease as `local_cancelled`.
#[must_use = "futures do nothing unless polled"]
pub struct RequestAcquire<'a> {
    controller: &'a AdaptiveRequestAdmissionController,
    state: AcquireState,
}

impl std::fmt::Debug for RequestAcquire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            AcquireState::Init(_) => "init",
            AcquireState::Waiting(_) => "waiting",
            AcquireState::Done => "done",
        };
        f.debug_struct("RequestAcquire")
            .field("state", &state)
            .finish()
    }
}

impl Future for RequestAcquire<'_> {
    type Output = Result<RequestAdmissionLease, RequestAdmissionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut wait = match std::mem::replace(&mut this.state, AcquireState::Done) {
            AcquireState::Init(item) => match this.controller.begin(item) {
                Start::Lease(lease) => return Poll::Ready(Ok(lease)),
                Start::Denied(d) => return Poll::Ready(Err(RequestAdmissionError::Denied(d))),
                Start::Queued(q) => Box::pin(Shard::wait(q)) as WaitFuture,
            },
            AcquireState::Waiting(f) => f,
            AcquireState::Done => panic!("RequestAcquire polled after completion"),
        };
        match wait.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                this.state = AcquireState::Waiting(wait);
                Poll::Pending
            }
        }
    }
}

struct CachedShard {
    generation: ControllerGeneration,
    provider_name: Arc<str>,
    model_id: Arc<str>,
    shard: Arc<Shard>,
}

thread_local! {
    static LAST_SHARD: std::cell::RefCell<Option<CachedShard>> = const { std::cell::RefCell::new(None) };
}

/// Builder of an [`AdaptiveRequestAdmissionController`].
#[derive(Debug, Default)]
pub struct RequestAdmissionControllerBuilder {
    config: RequestAdmissionConfig,
    events: Option<RequestEventStream>,
}

impl RequestAdmissionControllerBuilder {
    /// Sets the engine config (validated by `build`).
    pub fn config(mut self, config: RequestAdmissionConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the request event stream (default: disabled).
    pub fn events(mut self, events: RequestEventStream) -> Self {
        self.events = Some(events);
        self
    }

    /// Validates the config and builds the controller.
    pub fn build(self) -> Result<AdaptiveRequestAdmissionController, RequestAdmissionConfigError> {
        self.config.validate()?;
        let events = self.events.unwrap_or_else(RequestEventStream::disabled);
        let shared = Arc::new(Shared::new(
            ControllerGeneration::next(),
            self.config,
            events,
        ));
        Ok(AdaptiveRequestAdmissionController {
            core: Arc::new(ControllerCore {
                shared,
                shards: RwLock::new(ShardMap::default()),
            }),
        })
    }
}

/// weir's request admission controller: per-endpoint shards, adaptive per-domain limits under
/// the endpoint's static cap, weighted fair waiters, cancellation-safe leases. See the crate docs.
pub struct AdaptiveRequestAdmissionController {
    core: Arc<ControllerCore>,
}

impl std::fmt::Debug for AdaptiveRequestAdmissionController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveRequestAdmissionController")
            .field("generation", &self.core.shared.generation)
            .field("policy", &self.core.shared.config.policy.name())
            .finish()
    }
}

impl AdaptiveRequestAdmissionController {
    /// A builder (config + event stream).
    pub fn builder() -> RequestAdmissionControllerBuilder {
        RequestAdmissionControllerBuilder::default()
    }

    /// A controller with `config` and no event sink.
    pub fn new(config: RequestAdmissionConfig) -> Result<Self, RequestAdmissionConfigError> {
        Self::builder().config(config).build()
    }

    /// This controller's generation (leases of other generations are rejected).
    pub fn generation(&self) -> ControllerGeneration {
        self.core.shared.generation
    }

    /// The validated config.
    pub fn config(&self) -> &RequestAdmissionConfig {
        &self.core.shared.config
    }

    /// Registers `alias` of `provider_name/model_id` with its `max_parallel_requests` (values
    /// below 1 count as 1). The endpoint's static cap is the minimum over its aliases; limits that
    /// were never rate limited follow a changed cap up or down. Returns the merged cap.
    pub fn register(
        &self,
        provider_name: &str,
        model_id: &str,
        alias: &str,
        max_parallel_requests: u32,
    ) -> Result<ProviderModelStaticCap, ContractError> {
        let key = ProviderModelKey::new(provider_name, model_id)?;
        if alias.trim().is_empty() {
            return Err(ContractError::new("alias", "must be non-empty"));
        }
        let shard = match self.core.shard(&key) {
            Some(s) => s,
            None => {
                let mut map = self
                    .core
                    .shards
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                map.insert_with(&key, |index| {
                    Arc::new(Shard::new(
                        index,
                        key.clone(),
                        Arc::clone(&self.core.shared),
                    ))
                })
            }
        };
        Ok(shard.register_alias(alias, max_parallel_requests))
    }

    fn hard_denial(&self, item: RequestAdmissionItem) -> RequestAdmissionDenied {
        let shutdown = self.is_shut_down();
        let mut diagnostics = BTreeMap::new();
        if !shutdown {
            diagnostics.insert("unregistered".to_string(), "true".to_string());
        }
        RequestAdmissionDenied {
            item,
            reason: if shutdown {
                RequestAdmissionDenyReason::Shutdown
            } else {
                RequestAdmissionDenyReason::HardPolicyDenial
            },
            retry_after_seconds: None,
            available_after_monotonic: None,
            snapshot: None,
            diagnostics,
        }
    }

    fn shard_for(&self, item: &RequestAdmissionItem) -> Option<Arc<Shard>> {
        let r = &item.resource;
        let generation = self.core.shared.generation;
        // Per-thread cache of the last endpoint, hit when the item's names are the very same
        // `Arc<str>`s (callers clone resolved keys). The cache holds clones of those Arcs, so a
        // pointer can never be reused by another name while cached.
        let hit = LAST_SHARD.with(|cell| {
            let cached = cell.borrow();
            cached.as_ref().and_then(|c| {
                (c.generation == generation
                    && Arc::ptr_eq(&c.provider_name, &r.provider_name)
                    && Arc::ptr_eq(&c.model_id, &r.model_id))
                .then(|| Arc::clone(&c.shard))
            })
        });
        if hit.is_some() {
            return hit;
        }
        let shard = {
            let map = self
                .core
                .shards
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            // Borrowed lookup: builds no key; the one Arc clone moves into the lease.
            map.get(&r.provider_name, &r.model_id).cloned()
        }?;
        LAST_SHARD.with(|cell| {
            *cell.borrow_mut() = Some(CachedShard {
                generation,
                provider_name: Arc::clone(&r.provider_name),
                model_id: Arc::clone(&r.model_id),
                shard: Arc::clone(&shard),
            });
        });
        Some(shard)
    }

    /// Non-blocking: a lease when the item is eligible now and no eligible queued waiter of the
    /// same endpoint would be served first; otherwise a typed denial (`queued_waiters_ahead`,
    /// `cooldown`, `no_capacity`, `shutdown`, `hard_policy_denial` for an unregistered endpoint).
    pub fn try_acquire(&self, item: RequestAdmissionItem) -> RequestAdmissionDecision {
        match self.shard_for(&item) {
            Some(shard) => Shard::try_acquire(shard, item),
            None => RequestAdmissionDecision::Denied(Box::new(self.hard_denial(item))),
        }
    }

    /// Waits for a lease for this caller. Ends with an error on the item's queue-wait timeout
    /// (`Some(ZERO)` = try once), shutdown or a hard denial. Cancellation safe: dropping the future
    /// before admission removes the waiter; dropping it after the controller admitted it releases
    /// that lease as `local_cancelled`.
    pub fn acquire(&self, item: RequestAdmissionItem) -> RequestAcquire<'_> {
        RequestAcquire {
            controller: self,
            state: AcquireState::Init(item),
        }
    }

    /// The immediate attempt of `acquire` (runs at its first poll).
    fn begin(&self, item: RequestAdmissionItem) -> Start {
        match self.shard_for(&item) {
            Some(shard) => Shard::start(shard, item, false),
            None => Start::Denied(Box::new(self.hard_denial(item))),
        }
    }

    /// Blocking acquire for non-async callers. Refuses with
    /// [`RequestAdmissionError::BlockingOnRuntimeThread`] on any thread inside a tokio runtime
    /// context (workers, `block_on`, and also `spawn_blocking` threads, which tokio does not let a
    /// library tell apart; there use `Handle::current().block_on(controller.acquire(item))`).
    pub fn acquire_blocking(
        &self,
        item: RequestAdmissionItem,
    ) -> Result<RequestAdmissionLease, RequestAdmissionError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(RequestAdmissionError::BlockingOnRuntimeThread(Box::new(
                item,
            )));
        }
        match self.shard_for(&item) {
            Some(shard) => Shard::acquire_blocking(shard, item),
            None => Err(RequestAdmissionError::Denied(Box::new(
                self.hard_denial(item),
            ))),
        }
    }

    /// Releases `lease` with `outcome`, exactly once. Never fails: a duplicate (a
    /// [`RequestAdmissionLease::detached`] copy released twice), stale, unknown or
    /// other-controller lease changes no counter here, is counted, emits
    /// `request_release_diagnostic` and returns `released: false`. (A lease of another controller
    /// is still returned to its own controller as `local_cancelled` by its drop guard.)
    pub fn release(
        &self,
        mut lease: RequestAdmissionLease,
        outcome: RequestReleaseOutcome,
    ) -> ReleaseResult {
        if lease.lease_id.generation != self.core.shared.generation {
            return self.core.shared.reject_release(
                ReleaseReason::WrongControllerGeneration,
                lease.lease_id,
                &lease.item.resource,
            );
        }
        lease.armed = false;
        lease.shard.release(&lease, &outcome)
    }

    /// Shuts down: every queued waiter gets a typed `shutdown` denial, later acquires are denied.
    /// Outstanding leases can still be released.
    pub fn shutdown(&self) {
        self.core.shared.shutdown.store(true, Ordering::Release);
        for shard in self.core.all_shards() {
            shard.shutdown();
        }
    }

    /// Whether [`AdaptiveRequestAdmissionController::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.core.shared.is_shut_down()
    }

    /// The read-only pressure snapshot provider.
    pub fn pressure(&self) -> RequestPressureSnapshotProvider {
        RequestPressureSnapshotProvider::new(Arc::clone(&self.core))
    }
}

#[async_trait]
impl RequestAdmissionController for AdaptiveRequestAdmissionController {
    fn register(
        &self,
        provider_name: &str,
        model_id: &str,
        alias: &str,
        max_parallel_requests: u32,
    ) -> Result<ProviderModelStaticCap, ContractError> {
        AdaptiveRequestAdmissionController::register(
            self,
            provider_name,
            model_id,
            alias,
            max_parallel_requests,
        )
    }

    fn try_acquire(&self, item: RequestAdmissionItem) -> RequestAdmissionDecision {
        AdaptiveRequestAdmissionController::try_acquire(self, item)
    }

    async fn acquire(
        &self,
        item: RequestAdmissionItem,
    ) -> Result<RequestAdmissionLease, RequestAdmissionError> {
        AdaptiveRequestAdmissionController::acquire(self, item).await
    }

    fn acquire_blocking(
        &self,
        item: RequestAdmissionItem,
    ) -> Result<RequestAdmissionLease, RequestAdmissionError> {
        AdaptiveRequestAdmissionController::acquire_blocking(self, item)
    }

    fn release(
        &self,
        lease: RequestAdmissionLease,
        outcome: RequestReleaseOutcome,
    ) -> ReleaseResult {
        AdaptiveRequestAdmissionController::release(self, lease, outcome)
    }

    fn shutdown(&self) {
        AdaptiveRequestAdmissionController::shutdown(self)
    }

    fn pressure(&self) -> RequestPressureSnapshotProvider {
        AdaptiveRequestAdmissionController::pressure(self)
    }
}
