//! `AdmissionEvent`: what the two event DTOs have in common, so one stream type serves both.

use weir_contracts::{
    RequestAdmissionEvent, RequestEventKind, SchedulerAdmissionEvent, SchedulerEventKind,
};

/// An event of one of the two admission streams.
pub trait AdmissionEvent: Send + Sync + 'static {
    /// The stream's event-kind enum.
    type Kind: Copy + Eq + Send + Sync + std::fmt::Debug + 'static;
    /// `"scheduler"` or `"request"`.
    const STREAM: &'static str;
    /// Every kind of this stream, in plan order.
    fn all_kinds() -> &'static [Self::Kind];
    /// Dense index of a kind (its position in [`AdmissionEvent::all_kinds`]); fits in a `u64` mask.
    fn kind_index(kind: Self::Kind) -> u32;
    /// This event's kind.
    fn kind(&self) -> Self::Kind;
    /// The per-stream sequence number.
    fn sequence(&self) -> u64;
    /// Stamps the per-stream sequence number (done by the stream at emission).
    fn set_sequence(&mut self, sequence: u64);
    /// Monotonic capture time in seconds.
    fn captured_at(&self) -> f64;
    /// The kind's snake_case name.
    fn kind_name(kind: Self::Kind) -> &'static str;
}

impl AdmissionEvent for SchedulerAdmissionEvent {
    type Kind = SchedulerEventKind;
    const STREAM: &'static str = "scheduler";
    fn all_kinds() -> &'static [SchedulerEventKind] {
        SchedulerEventKind::ALL
    }
    fn kind_index(kind: SchedulerEventKind) -> u32 {
        kind as u32
    }
    fn kind(&self) -> SchedulerEventKind {
        self.event_kind()
    }
    fn sequence(&self) -> u64 {
        self.sequence
    }
    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = sequence;
    }
    fn captured_at(&self) -> f64 {
        self.captured_at_monotonic
    }
    fn kind_name(kind: SchedulerEventKind) -> &'static str {
        kind.as_str()
    }
}

impl AdmissionEvent for RequestAdmissionEvent {
    type Kind = RequestEventKind;
    const STREAM: &'static str = "request";
    fn all_kinds() -> &'static [RequestEventKind] {
        RequestEventKind::ALL
    }
    fn kind_index(kind: RequestEventKind) -> u32 {
        kind as u32
    }
    fn kind(&self) -> RequestEventKind {
        self.event_kind()
    }
    fn sequence(&self) -> u64 {
        self.sequence
    }
    fn set_sequence(&mut self, sequence: u64) {
        self.sequence = sequence;
    }
    fn captured_at(&self) -> f64 {
        self.captured_at_monotonic
    }
    fn kind_name(kind: RequestEventKind) -> &'static str {
        kind.as_str()
    }
}
