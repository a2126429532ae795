//! `FanOutSink`: one sink that forwards to several children, isolating a panicking child.

use crate::event::AdmissionEvent;
use crate::sink::EventSink;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

struct Child<E: AdmissionEvent> {
    sink: Arc<dyn EventSink<E>>,
    /// Kinds this child accepts (bit `kind_index`), read once at construction.
    mask: u64,
    disabled: AtomicBool,
}

/// Forwards each event to every child that accepts its kind.
///
/// `accepts` is the union of the children's filters. A child that panics in `emit` or `flush` is
/// disabled (it receives nothing afterwards) and counted; the other children and the caller are
/// unaffected. [`crate::EventStream`] already isolates its direct sinks; this is for composing
/// several sinks behind one.
pub struct FanOutSink<E: AdmissionEvent> {
    children: Vec<Child<E>>,
    interest: u64,
    panicked: AtomicUsize,
}

impl<E: AdmissionEvent> std::fmt::Debug for FanOutSink<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOutSink")
            .field("stream", &E::STREAM)
            .field("children", &self.children.len())
            .field("panicked", &self.panicked_children())
            .finish()
    }
}

impl<E: AdmissionEvent> FanOutSink<E> {
    /// A fan-out over `children` (their filters are read now, once).
    pub fn new(children: Vec<Arc<dyn EventSink<E>>>) -> Self {
        let children: Vec<Child<E>> = children
            .into_iter()
            .map(|sink| {
                let mask = crate::stream::interest_mask(sink.as_ref());
                Child {
                    sink,
                    mask,
                    disabled: AtomicBool::new(false),
                }
            })
            .collect();
        let interest = children.iter().fold(0, |m, c| m | c.mask);
        Self {
            children,
            interest,
            panicked: AtomicUsize::new(0),
        }
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Children disabled because they panicked.
    pub fn panicked_children(&self) -> usize {
        self.panicked.load(Ordering::Relaxed)
    }

    fn disable(&self, child: &Child<E>, during: &'static str) {
        if !child.disabled.swap(true, Ordering::AcqRel) {
            self.panicked.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                stream = E::STREAM,
                during,
                "fan-out child sink panicked; disabling it"
            );
        }
    }
}

impl<E: AdmissionEvent> EventSink<E> for FanOutSink<E> {
    fn accepts(&self, kind: E::Kind) -> bool {
        self.interest & (1u64 << E::kind_index(kind)) != 0
    }

    fn emit(&self, event: &E) {
        let bit = 1u64 << E::kind_index(event.kind());
        for child in &self.children {
            if child.mask & bit == 0 || child.disabled.load(Ordering::Acquire) {
                continue;
            }
            if catch_unwind(AssertUnwindSafe(|| child.sink.emit(event))).is_err() {
                self.disable(child, "emit");
            }
        }
    }

    fn flush(&self) {
        for child in &self.children {
            if child.disabled.load(Ordering::Acquire) {
                continue;
            }
            if catch_unwind(AssertUnwindSafe(|| child.sink.flush())).is_err() {
                self.disable(child, "flush");
            }
        }
    }
}
