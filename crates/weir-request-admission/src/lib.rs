//! weir's request admission: per provider/model/domain adaptive limits under a static cap, fair
//! waiters, cancellation-safe leases.
//!
//! Every concrete model-call attempt acquires a [`RequestAdmissionLease`] from an
//! [`AdaptiveRequestAdmissionController`] and releases it exactly once with a classified
//! [`weir_contracts::RequestReleaseOutcome`]. The endpoint's static cap (the minimum of its
//! aliases' `max_parallel_requests`) bounds all domains together; each domain's adaptive limit
//! (a named [`RequestAdmissionPolicy`]: the plan's AIMD or the default goodput policy) and
//! cooldown decide admission beneath it. State is sharded per endpoint; waiters sleep until
//! admitted, timed out, shut down, or until a tokio timer fires at their cooldown's end.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use weir_contracts::{RequestDomain, RequestReleaseOutcome, RequestResourceKey};
//! use weir_request_admission::{
//!     AdaptiveRequestAdmissionController, RequestAdmissionConfig, RequestAdmissionItem,
//! };
//! use weir_contracts::RequestAdmissionDenyReason;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! let controller = Arc::new(AdaptiveRequestAdmissionController::new(
//!     RequestAdmissionConfig::default(),
//! )?);
//! // Aliases of one endpoint share the smallest cap.
//! controller.register("openai", "gpt-x", "fast", 4)?;
//! let cap = controller.register("openai", "gpt-x", "cheap", 2)?;
//! assert_eq!(cap.cap, 2);
//!
//! let chat = RequestResourceKey::new("openai", "gpt-x", RequestDomain::Chat)?;
//! let a = controller.acquire(RequestAdmissionItem::new(chat.clone())).await?;
//! let b = controller.acquire(RequestAdmissionItem::new(chat.clone())).await?;
//!
//! // The cap is full: a zero queue-wait timeout means "try once".
//! let item = RequestAdmissionItem::new(chat.clone()).with_queue_wait_timeout(Duration::ZERO);
//! let err = controller.acquire(item).await.unwrap_err();
//! assert_eq!(err.reason(), Some(RequestAdmissionDenyReason::QueueTimeout));
//!
//! // Release exactly once with the classified outcome; a dropped lease releases itself
//! // as `local_cancelled`.
//! assert!(controller.release(a, RequestReleaseOutcome::success()).released);
//! drop(b);
//!
//! let snap = controller.pressure().snapshot(&chat).expect("chat was used");
//! assert_eq!((snap.in_flight_count, snap.current_limit), (0, 2));
//! controller.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod controller;
mod events;
mod lease;
mod ledger;
mod limit;
mod pressure;
mod queue;
mod shard;
mod slab;
mod timer;
mod waiters;

pub use config::{
    GoodputPolicyConfig, RequestAdmissionConfig, RequestAdmissionConfigError,
    RequestAdmissionPolicy, RequestAdmissionTuningConfig,
};
pub use controller::{
    AdaptiveRequestAdmissionController, RequestAcquire, RequestAdmissionController,
    RequestAdmissionControllerBuilder,
};
pub use lease::{
    RequestAdmissionDecision, RequestAdmissionDenied, RequestAdmissionError, RequestAdmissionItem,
    RequestAdmissionLease,
};
pub use limit::latency::LatencySaturationConfig;
pub use pressure::RequestPressureSnapshotProvider;
