//! `EventStream`: the emitting handle of one stream — interest mask, sequence numbers, sink isolation.

use crate::clock::MonotonicClock;
use crate::event::AdmissionEvent;
use crate::sink::EventSink;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use weir_contracts::{RequestAdmissionEvent, SchedulerAdmissionEvent};

struct SinkSlot<E: AdmissionEvent> {
    sink: Arc<dyn EventSink<E>>,
    /// Kinds this sink accepts, as a bit mask over `kind_index`.
    mask: u64,
    /// Set when the sink panicked; it receives nothing after that.
    disabled: AtomicBool,
}

struct Inner<E: AdmissionEvent> {
    sinks: Vec<SinkSlot<E>>,
    /// Union of the sinks' masks: the cheap "does anyone want this kind" test.
    interest: u64,
    sequence: AtomicU64,
    clock: MonotonicClock,
    /// Serializes sequence assignment and delivery (emission order == sequence order).
    emission: std::sync::Mutex<()>,
}

/// Emits events of one stream to its sinks. Cheap to clone (shared state).
///
/// Producers call [`EventStream::emit_with`] with a closure that builds the event; the closure
/// runs only when some sink accepts the kind, so an unwanted event costs one mask test and no
/// allocation. Sequence numbers are assigned per stream, in emission order, starting at 1.
/// Call `emit_with` only after releasing any queue or controller lock.
pub struct EventStream<E: AdmissionEvent> {
    inner: Arc<Inner<E>>,
}

impl<E: AdmissionEvent> Clone for EventStream<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E: AdmissionEvent> std::fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("stream", &E::STREAM)
            .field("sinks", &self.inner.sinks.len())
            .field("interest", &format_args!("{:#x}", self.inner.interest))
            .finish()
    }
}

impl<E: AdmissionEvent> EventStream<E> {
    /// A stream delivering to `sinks`, timestamped by `clock`.
    pub fn new(sinks: Vec<Arc<dyn EventSink<E>>>, clock: MonotonicClock) -> Self {
        let sinks: Vec<SinkSlot<E>> = sinks
            .into_iter()
            .map(|sink| {
                let mask = interest_mask(sink.as_ref());
                SinkSlot {
                    sink,
                    mask,
                    disabled: AtomicBool::new(false),
                }
            })
            .collect();
        let interest = sinks.iter().fold(0, |m, s| m | s.mask);
        Self {
            inner: Arc::new(Inner {
                sinks,
                interest,
                sequence: AtomicU64::new(0),
                clock,
                emission: std::sync::Mutex::new(()),
            }),
        }
    }

    /// A stream with no sinks: every `wants` is false and nothing is ever built.
    pub fn disabled() -> Self {
        Self::new(Vec::new(), MonotonicClock::start())
    }

    /// A stream with one sink.
    pub fn single(sink: Arc<dyn EventSink<E>>, clock: MonotonicClock) -> Self {
        Self::new(vec![sink], clock)
    }

    /// Whether any sink accepts `kind` (one load and a bit test).
    #[inline]
    pub fn wants(&self, kind: E::Kind) -> bool {
        self.inner.interest & (1u64 << E::kind_index(kind)) != 0
    }

    /// Whether any sink is attached at all.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.inner.interest != 0
    }

    /// The stream's clock.
    pub fn clock(&self) -> MonotonicClock {
        self.inner.clock
    }

    /// Seconds since the clock origin.
    pub fn now(&self) -> f64 {
        self.inner.clock.now()
    }

    /// Builds (only if wanted) and emits an event of `kind`; `build` gets the capture time.
    ///
    /// Capture time, sequence number and delivery happen under the stream's emission lock, so
    /// every sink sees events in sequence order with non-decreasing capture times, even with
    /// concurrent producers. (Producers still call this only after releasing their own locks.)
    #[inline]
    pub fn emit_with(&self, kind: E::Kind, build: impl FnOnce(f64) -> E) {
        if self.wants(kind) {
            let _order = self.lock_order();
            let event = build(self.inner.clock.now());
            self.deliver(kind, event);
        }
    }

    /// Emits an already-built event (its kind must be wanted for any sink to see it).
    pub fn emit(&self, event: E) {
        let kind = event.kind();
        if self.wants(kind) {
            let _order = self.lock_order();
            self.deliver(kind, event);
        }
    }

    fn lock_order(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .emission
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn deliver(&self, kind: E::Kind, mut event: E) {
        let seq = self.inner.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        event.set_sequence(seq);
        let bit = 1u64 << E::kind_index(kind);
        for slot in &self.inner.sinks {
            if slot.mask & bit == 0 || slot.disabled.load(Ordering::Relaxed) {
                continue;
            }
            let ok = catch_unwind(AssertUnwindSafe(|| slot.sink.emit(&event))).is_ok();
            if !ok {
                // Isolate: a panicking sink never reaches the caller or the other sinks again.
                slot.disabled.store(true, Ordering::Relaxed);
                tracing::warn!(stream = E::STREAM, "event sink panicked; disabling it");
            }
        }
    }

    /// Number of events emitted so far (the last sequence number).
    pub fn emitted(&self) -> u64 {
        self.inner.sequence.load(Ordering::Relaxed)
    }

    /// Flushes every sink (e.g. at the end of a run).
    pub fn flush(&self) {
        for slot in &self.inner.sinks {
            if !slot.disabled.load(Ordering::Relaxed)
                && catch_unwind(AssertUnwindSafe(|| slot.sink.flush())).is_err()
            {
                // As for emit: a sink that panics is disabled, never retried.
                slot.disabled.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// The kinds `sink` accepts, as a bit mask over `kind_index`; asked once per kind. A sink whose
/// filter panics is treated as not interested in that kind.
pub(crate) fn interest_mask<E: AdmissionEvent>(sink: &dyn EventSink<E>) -> u64 {
    E::all_kinds()
        .iter()
        .filter(|k| catch_unwind(AssertUnwindSafe(|| sink.accepts(**k))).unwrap_or(false))
        .fold(0u64, |m, k| m | (1u64 << E::kind_index(*k)))
}

/// The scheduler stream.
pub type SchedulerEventStream = EventStream<SchedulerAdmissionEvent>;
/// The request stream.
pub type RequestEventStream = EventStream<RequestAdmissionEvent>;
