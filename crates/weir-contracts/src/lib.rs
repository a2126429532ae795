//! weir's durable contract vocabulary: ids, keys, metadata, outcomes, events and capacity values.
//!
//! Every layer of weir speaks through these types; this crate has no async runtime and no logic
//! beyond validation, so any crate (or an outside Rust program) can depend on it alone. Names follow
//! the design plan (`SchedulingMetadata`, `RequestResourceKey`, `SchedulerEventKind`, ...), and
//! JSON is the wire form: struct fields in declaration order, `BTreeMap`s for maps, structured-key
//! maps as arrays of pairs, non-finite floats as strings (see [`json`]).
//!
//! # Using it alone
//!
//! It depends on nothing else of weir (no async runtime either):
//!
//! ```toml
//! [dependencies]
//! weir-contracts = { path = "…/crates/weir-contracts" }
//! serde_json = "1"   # only for the wire-form round trip below
//! ```
//!
//! ```
//! use weir_contracts::{
//!     RequestDomain, RequestResourceKey, SchedulerEventKind, SchedulingMetadata,
//!     SchedulingMetadataErrorCode,
//! };
//!
//! // Metadata is validated when it is built: weight must be positive.
//! let meta = SchedulingMetadata::model("openai", "gpt-x", "chat", 16)?;
//! assert_eq!(meta.identity(), ["model", "openai", "gpt-x", "chat"]);
//! let err = SchedulingMetadata::local("default", 0).unwrap_err();
//! assert_eq!(err.code, SchedulingMetadataErrorCode::NonPositiveWeight);
//!
//! // Keys and event kinds serialise to the plan's strings.
//! let key = RequestResourceKey::new("openai", "gpt-x", RequestDomain::Chat)?;
//! assert_eq!(
//!     serde_json::to_string(&key)?,
//!     r#"{"provider_name":"openai","model_id":"gpt-x","domain":"chat"}"#
//! );
//! assert_eq!(SchedulerEventKind::TaskLeaseAcquired.as_str(), "task_lease_acquired");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod capacity;
pub mod correlation;
pub mod error;
pub mod events;
pub mod ids;
pub mod json;
pub mod metadata;
pub mod outcome;
pub mod payload;
pub mod rate_limit;
pub mod request;
pub mod snapshots;
pub mod task;

pub use capacity::{
    CapMergeRule, CapacitySource, CapacityValue, ProviderModelStaticCap,
    RequestAdmissionConfigSnapshot,
};
pub use correlation::RuntimeCorrelation;
pub use error::ContractError;
pub use events::{
    RequestAdmissionEvent, RequestEventKind, SchedulerAdmissionEvent, SchedulerEventKind,
};
pub use ids::{
    identity_hash, ControllerGeneration, Fnv64, LeaseId, RequestAttemptId, TaskExecutionId, TaskId,
};
pub use metadata::{
    SchedulingKind, SchedulingMetadata, SchedulingMetadataError, SchedulingMetadataErrorCode,
};
pub use outcome::{
    RateLimitSignal, ReleaseDiagnostics, ReleaseReason, ReleaseResult, RequestAdmissionDenyReason,
    RequestReleaseOutcome, RequestReleaseOutcomeKind, TaskAdmissionDenyReason,
};
pub use payload::{RequestEventPayload, SchedulerEventPayload, TaskTerminalOutcome};
pub use rate_limit::{RateLimitObservation, TokenUsage, WindowObservation};
pub use request::{
    ProviderModelKey, RequestDomain, RequestEventContext, RequestGroupSpec, RequestResourceKey,
};
pub use snapshots::{
    ProviderModelPressureSnapshot, RequestPressureSnapshot, SharedEndpointSnapshot,
    SharedLimitsMode, SharedLimitsSnapshot, TaskAdmissionSnapshot,
};
pub use task::{SchedulerResourceKey, SchedulerResourceRequest, TaskGroupKey, TaskGroupSpec};
