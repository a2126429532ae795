//! Admission items, leases (with their drop guard), denials, decisions and the acquire error.

use crate::shard::Shard;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{
    LeaseId, RequestAdmissionDenyReason, RequestEventContext, RequestGroupSpec,
    RequestPressureSnapshot, RequestResourceKey,
};

/// One concrete request attempt asking for admission.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAdmissionItem {
    /// The canonical provider/model/domain resource.
    pub resource: RequestResourceKey,
    /// Fairness group (V1: the resource, weight 1).
    pub group: RequestGroupSpec,
    /// How long `acquire` may wait (`None`: the config default; `Some(ZERO)`: try once).
    pub queue_wait_timeout: Option<Duration>,
    /// Opaque telemetry context copied into this attempt's events.
    pub event_context: RequestEventContext,
}

impl RequestAdmissionItem {
    /// An item for `resource` in its V1 group, with no timeout and an empty event context.
    pub fn new(resource: RequestResourceKey) -> Self {
        Self {
            group: RequestGroupSpec::for_resource(resource.clone()),
            resource,
            queue_wait_timeout: None,
            event_context: RequestEventContext::default(),
        }
    }

    /// Sets the queue-wait timeout.
    pub fn with_queue_wait_timeout(mut self, timeout: Duration) -> Self {
        self.queue_wait_timeout = Some(timeout);
        self
    }

    /// Sets the fairness group.
    pub fn with_group(mut self, group: RequestGroupSpec) -> Self {
        self.group = group;
        self
    }

    /// Sets the event context.
    pub fn with_event_context(mut self, event_context: RequestEventContext) -> Self {
        self.event_context = event_context;
        self
    }
}

/// An admitted request: release it exactly once with
/// [`crate::AdaptiveRequestAdmissionController::release`].
///
/// Dropping a lease that was not released releases it as `local_cancelled` (once), so a
/// cancelled or panicking caller never leaks capacity. [`RequestAdmissionLease::detached`] makes a
/// copy without that guard (for diagnostics; releasing both reports a `duplicate`).
pub struct RequestAdmissionLease {
    pub(crate) lease_id: LeaseId,
    pub(crate) item: RequestAdmissionItem,
    pub(crate) acquired_at: Instant,
    pub(crate) current_adaptive_limit: u32,
    /// The domain's in-flight count right after this admission (itself included).
    pub(crate) admitted_in_flight: u32,
    pub(crate) effective_max: u32,
    pub(crate) slot: u32,
    pub(crate) shard: Arc<Shard>,
    /// True while this value owns the drop-release.
    pub(crate) armed: bool,
}

impl RequestAdmissionLease {
    /// Unique lease id (controller generation + counter).
    pub fn lease_id(&self) -> LeaseId {
        self.lease_id
    }

    /// The admitted item.
    pub fn item(&self) -> &RequestAdmissionItem {
        &self.item
    }

    /// The admitted resource.
    pub fn resource(&self) -> &RequestResourceKey {
        &self.item.resource
    }

    /// When the lease was admitted (tokio clock).
    pub fn acquired_at(&self) -> Instant {
        self.acquired_at
    }

    /// The domain's adaptive limit when the lease was admitted.
    pub fn current_adaptive_limit(&self) -> u32 {
        self.current_adaptive_limit
    }

    /// The resource's effective max when the lease was admitted.
    pub fn effective_max(&self) -> u32 {
        self.effective_max
    }

    /// A copy naming the same lease that does not release anything when dropped.
    pub fn detached(&self) -> Self {
        Self {
            lease_id: self.lease_id,
            item: self.item.clone(),
            acquired_at: self.acquired_at,
            current_adaptive_limit: self.current_adaptive_limit,
            admitted_in_flight: self.admitted_in_flight,
            effective_max: self.effective_max,
            slot: self.slot,
            shard: Arc::clone(&self.shard),
            armed: false,
        }
    }

    /// Whether dropping this value releases the lease (false for detached copies and after release).
    pub fn is_guarded(&self) -> bool {
        self.armed
    }
}

impl Drop for RequestAdmissionLease {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            self.shard.release_dropped(self);
        }
    }
}

impl fmt::Debug for RequestAdmissionLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestAdmissionLease")
            .field("lease_id", &self.lease_id)
            .field("resource", &self.item.resource)
            .field("current_adaptive_limit", &self.current_adaptive_limit)
            .field("effective_max", &self.effective_max)
            .field("guarded", &self.armed)
            .finish()
    }
}

/// Why an item got no lease, with the timing the controller can tell.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAdmissionDenied {
    /// The item (returned so the caller can retry it).
    pub item: RequestAdmissionItem,
    /// Why.
    pub reason: RequestAdmissionDenyReason,
    /// Seconds until the blocking condition should clear, when known (cooldown).
    pub retry_after_seconds: Option<f64>,
    /// Monotonic time (event-stream clock) when it should clear, when known.
    pub available_after_monotonic: Option<f64>,
    /// Pressure snapshot of the resource, for non-hot denials.
    pub snapshot: Option<RequestPressureSnapshot>,
    /// Sanitized diagnostics.
    pub diagnostics: BTreeMap<String, String>,
}

/// The result of [`crate::AdaptiveRequestAdmissionController::try_acquire`].
#[derive(Debug)]
pub enum RequestAdmissionDecision {
    /// Admitted now.
    Lease(RequestAdmissionLease),
    /// Not admitted; nothing was queued (boxed: the denial is the cold path).
    Denied(Box<RequestAdmissionDenied>),
}

impl RequestAdmissionDecision {
    /// The lease, if admitted.
    pub fn lease(self) -> Option<RequestAdmissionLease> {
        match self {
            Self::Lease(l) => Some(l),
            Self::Denied(_) => None,
        }
    }

    /// The denial, if denied.
    pub fn denied(&self) -> Option<&RequestAdmissionDenied> {
        match self {
            Self::Lease(_) => None,
            Self::Denied(d) => Some(d),
        }
    }
}

/// A blocking acquire ended without a lease. Never raised after a lease was returned.
#[derive(Debug)]
pub enum RequestAdmissionError {
    /// A terminal denial: queue timeout, shutdown or hard policy denial.
    Denied(Box<RequestAdmissionDenied>),
    /// `acquire_blocking` was called on a thread inside a tokio runtime context.
    BlockingOnRuntimeThread(Box<RequestAdmissionItem>),
}

impl RequestAdmissionError {
    /// The denial, when this is one.
    pub fn denied(&self) -> Option<&RequestAdmissionDenied> {
        match self {
            Self::Denied(d) => Some(d),
            Self::BlockingOnRuntimeThread(_) => None,
        }
    }

    /// The denial reason, when this is a denial.
    pub fn reason(&self) -> Option<RequestAdmissionDenyReason> {
        self.denied().map(|d| d.reason)
    }
}

impl fmt::Display for RequestAdmissionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(d) => write!(
                f,
                "request admission failed for {}: {}",
                d.item.resource, d.reason
            ),
            Self::BlockingOnRuntimeThread(item) => write!(
                f,
                "acquire_blocking for {} would block a tokio runtime thread; use acquire().await",
                item.resource
            ),
        }
    }
}

impl std::error::Error for RequestAdmissionError {}
