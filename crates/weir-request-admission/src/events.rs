//! Request events collected under a shard lock and emitted after it is released.
//!
//! A `PendingEvent` is only created when the stream wants its kind; it is turned into a
//! `RequestAdmissionEvent` by `EventStream::emit_with`, which stamps time and sequence in emission
//! order.

use weir_contracts::{
    LeaseId, RequestAdmissionEvent, RequestEventContext, RequestEventKind, RequestEventPayload,
    RequestPressureSnapshot, RequestResourceKey,
};
use weir_telemetry::RequestEventStream;

/// An event whose data was captured under the lock.
#[derive(Debug)]
pub(crate) struct PendingEvent {
    /// The kind and its typed data.
    pub payload: RequestEventPayload,
    pub resource: Option<RequestResourceKey>,
    pub group: Option<RequestResourceKey>,
    pub lease: Option<LeaseId>,
    pub reason: Option<&'static str>,
    pub context: Option<RequestEventContext>,
    pub snapshot: Option<RequestPressureSnapshot>,
}

impl PendingEvent {
    /// An event of a kind without data.
    pub fn new(kind: RequestEventKind) -> Self {
        Self::of(RequestEventPayload::default_for(kind))
    }

    /// An event carrying `payload`.
    pub fn of(payload: RequestEventPayload) -> Self {
        Self {
            payload,
            resource: None,
            group: None,
            lease: None,
            reason: None,
            context: None,
            snapshot: None,
        }
    }

    pub fn resource(mut self, r: &RequestResourceKey) -> Self {
        self.resource = Some(r.clone());
        self
    }

    pub fn group(mut self, g: Option<&RequestResourceKey>) -> Self {
        self.group = g.cloned();
        self
    }

    pub fn lease(mut self, id: LeaseId) -> Self {
        self.lease = Some(id);
        self
    }

    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn context(mut self, ctx: Option<&RequestEventContext>) -> Self {
        self.context = ctx.cloned();
        self
    }

    pub fn snapshot(mut self, s: RequestPressureSnapshot) -> Self {
        self.snapshot = Some(s);
        self
    }

    /// The event's kind.
    pub fn kind(&self) -> RequestEventKind {
        self.payload.kind()
    }

    /// Builds the DTO at emission time `now`.
    fn build(self, now: f64) -> RequestAdmissionEvent {
        let mut e = RequestAdmissionEvent::with_payload(self.payload, now);
        if let Some(ctx) = self.context {
            e.captured_correlation = ctx.captured_correlation.as_deref().cloned();
            e.task_execution_id = ctx.task_execution_id;
            e.request_attempt_id = ctx.request_attempt_id;
        }
        e.request_lease_id = self.lease;
        e.request_resource_key = self.resource;
        e.request_group_key = self.group;
        e.reason_or_outcome = self.reason.map(str::to_string);
        e.pressure_snapshot = self.snapshot;
        e
    }

    /// Emits through `stream` (call with no lock held).
    pub fn emit(self, stream: &RequestEventStream) {
        let kind = self.kind();
        stream.emit_with(kind, |now| self.build(now));
    }
}
