//! weir's AsyncCapacityPlan: explains every capacity value of a run and its source, from read-only snapshots.
//!
//! The plan admits nothing and never touches a controller. It is built from run settings, model
//! declarations and snapshot DTOs ([`CapacityInputs`] / [`AsyncCapacityPlanBuilder`]), and has
//! three sections: `configured` (each value a `CapacityValue` with `source`, `fallback_from`,
//! `missing_reason`), `runtime_snapshot` and `observed_maxima` (fed by an
//! [`ObservedMaximaTracker`] during the run). [`AsyncCapacityPlan::explain`] renders it as text.
//!
//! # Using it alone
//!
//! It speaks `weir-contracts` types, so depend on both:
//!
//! ```toml
//! [dependencies]
//! weir-capacity = { path = "…/crates/weir-capacity" }
//! weir-contracts = { path = "…/crates/weir-contracts" }
//! serde_json = "1"   # only for the JSON round trip below
//! ```
//!
//! ```
//! use weir_capacity::{AsyncCapacityPlanBuilder, ModelDeclaration, ObservedMaximaTracker};
//! use weir_contracts::{CapacitySource, ProviderModelKey};
//!
//! let mut tracker = ObservedMaximaTracker::new();
//! tracker.observe_row_groups(2);
//! tracker.observe_row_groups(1);
//!
//! let plan = AsyncCapacityPlanBuilder::new()
//!     .buffer_size(500, CapacitySource::RunConfig)
//!     // Two aliases of one endpoint: the static cap is the minimum, and both are recorded.
//!     .model(ModelDeclaration::new("fast", "openai", "gpt-x", Some(8)))
//!     .model(ModelDeclaration::new("careful", "openai", "gpt-x", Some(2)))
//!     .observed(tracker)
//!     .build()?;
//!
//! let caps = plan.configured.provider_model_static_caps.value.as_ref().unwrap();
//! let cap = &caps[&ProviderModelKey::new("openai", "gpt-x")?];
//! assert_eq!((cap.cap, cap.aliases.len()), (2, 2));
//! assert_eq!(plan.configured.provider_model_static_caps.source, CapacitySource::ModelMetadata);
//!
//! // Unset values fall back to documented defaults and say so...
//! assert_eq!(plan.configured.submission_capacity.value, Some(1024));
//! assert_eq!(plan.configured.submission_capacity.fallback_from.as_deref(), Some("run_config"));
//! // ...and values nobody supplied are missing with a reason, never a fabricated zero.
//! assert_eq!(plan.configured.transport_pool_limits.value, None);
//! assert!(plan.configured.transport_pool_limits.missing_reason.is_some());
//! assert_eq!(plan.observed_maxima.row_groups_in_flight, 2);
//!
//! assert!(plan.explain().contains("configured.buffer_size"));
//! let json = serde_json::to_string(&plan)?;
//! assert_eq!(serde_json::from_str::<weir_capacity::AsyncCapacityPlan>(&json)?, plan);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod build;
mod error;
mod explain;
pub use explain::ExplainRow;
mod inputs;
mod plan;
mod tracker;
mod wire;

pub use build::{
    MISSING_DOMAIN_LIMITS, MISSING_REQUEST_CONFIG, MISSING_REQUEST_RESOURCES, MISSING_STATIC_CAPS,
    MISSING_TRANSPORT_POOL,
};
pub use error::CapacityPlanError;
pub use inputs::{
    AsyncCapacityPlanBuilder, CapacityInputs, ModelDeclaration, RowGroupSettings, Sourced,
    DEFAULT_ADAPTIVE_ROW_GROUP_INITIAL_TARGET, DEFAULT_BUFFER_SIZE, DEFAULT_MAX_PARALLEL_REQUESTS,
    DEFAULT_ROW_GROUP_CONCURRENCY, DEFAULT_SUBMISSION_CAPACITY,
};
pub use plan::{
    AsyncCapacityConfigured, AsyncCapacityObservedMaxima, AsyncCapacityPlan,
    AsyncCapacityRuntimeSnapshot, PairMap, RowGroupAdmission, RowGroupMode,
};
pub use tracker::ObservedMaximaTracker;
