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
//! Beside the concurrency limit, never instead of it, the [`budget`] module paces requests and
//! tokens per provider/model scope ([`BudgetLedger`]): per-minute budgets configured in the
//! spec or learned from response headers, reserved before the concurrency acquire and settled
//! against each response's usage.
//!
//! Several processes calling one endpoint can also admit under limits they share through a
//! store: the [`shared`] module's [`SharedLimits`] trait (implemented on Redis by
//! `weir-redis`) and [`SharedGate`], an optional gate after the local controller and budgets.
//!
//! # Using it alone
//!
//! A Rust LLM client that needs only request admission depends on this crate, on
//! `weir-contracts` (keys, outcomes, snapshots) and on tokio (the controller's timers run on
//! it):
//!
//! ```toml
//! [dependencies]
//! weir-request-admission = { path = "…/crates/weir-request-admission" }
//! weir-contracts = { path = "…/crates/weir-contracts" }
//! tokio = { version = "1", features = ["rt", "time", "macros"] }
//! ```
//!
//! The simplest use is [`AdaptiveRequestAdmissionController::call`]: it acquires a lease,
//! runs your call under it and releases it with the outcome your error type's
//! [`ClassifyRelease`] maps it to (a success is always `success`). The example below shows
//! the parts by hand, then the helper.
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
//! assert_eq!(snap.in_flight_count, 0);
//!
//! // The helper: acquire → call → classify → release, exactly once.
//! #[derive(Debug)]
//! struct Http429;
//! impl weir_request_admission::ClassifyRelease for Http429 {
//!     fn release_outcome(&self) -> RequestReleaseOutcome {
//!         RequestReleaseOutcome::rate_limited(Some(0.5))
//!     }
//! }
//! let text = controller
//!     .call(RequestAdmissionItem::new(chat.clone()), || async {
//!         Ok::<_, Http429>("a reply")
//!     })
//!     .await
//!     .expect("admitted, and the call succeeded");
//! assert_eq!(text, "a reply");
//! let failed = controller
//!     .call(RequestAdmissionItem::new(chat.clone()), || async { Err::<(), _>(Http429) })
//!     .await;
//! assert!(matches!(failed, Err(weir_request_admission::LeasedCallError::Call(Http429))));
//! assert_eq!(controller.pressure().snapshot(&chat).map(|s| s.in_flight_count), Some(0));
//! controller.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod budget;
mod config;
mod controller;
mod events;
mod lease;
mod leased_call;
mod ledger;
mod limit;
mod pressure;
mod queue;
mod shard;
pub mod shared;
mod slab;
mod timer;
mod waiters;

pub use budget::{
    BudgetConfig, BudgetConfigError, BudgetDemand, BudgetKind, BudgetLedger, BudgetLimits,
    BudgetReservation, BudgetScopeSnapshot, BudgetWindowSnapshot,
};
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
pub use leased_call::{ClassifyRelease, LeasedCallError};
pub use limit::latency::LatencySaturationConfig;
pub use pressure::RequestPressureSnapshotProvider;
pub use shared::{
    SharedDemand, SharedGate, SharedLease, SharedLeaseToken, SharedLimits, SharedOutcome,
    SharedRelease, SharedTry, SharedWaitExceeded,
};
