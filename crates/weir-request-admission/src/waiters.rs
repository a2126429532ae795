//! Queued waiters of one endpoint: the fair queue, each waiter's record (state, wake handle,
//! deadline, event context) and the count of blocking (thread-parked) waiters. It knows leases
//! and domains, never how a limit is derived.

use crate::ledger::Grant;
use crate::queue::RequestFairQueue;
use crate::slab::Slab;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;
use weir_contracts::{
    RequestAdmissionDenyReason, RequestDomain, RequestEventContext, RequestResourceKey,
};

/// How a waiter is woken.
#[derive(Debug, Clone)]
pub(crate) enum WakeHandle {
    Task(Arc<Notify>),
    Thread(std::thread::Thread),
}

impl WakeHandle {
    /// Wakes the waiter.
    pub fn wake(self) {
        match self {
            Self::Task(n) => n.notify_one(),
            Self::Thread(t) => t.unpark(),
        }
    }
}

/// Where a waiter's wait stands.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WaiterState {
    Queued,
    Granted(Grant),
    Denied(RequestAdmissionDenyReason),
}

/// One queued (or just decided) waiter.
#[derive(Debug)]
pub(crate) struct PendingWaiter {
    pub state: WaiterState,
    pub wake: WakeHandle,
    pub domain: RequestDomain,
    pub enqueued_at: Instant,
    /// The queue-wait deadline: past it the waiter is never granted, only timed out.
    pub deadline: Option<Instant>,
    /// Group key and context for the admitter's events (only kept when events are on).
    pub event_info: Option<Box<(RequestResourceKey, RequestEventContext)>>,
}

/// The waiters of one endpoint.
#[derive(Debug)]
pub(crate) struct Waiters {
    pub queue: RequestFairQueue,
    pub pending: Slab<PendingWaiter>,
    pub next_id: u64,
    /// Waiters parked on a thread (they time themselves).
    pub blocking: u32,
}

impl Default for Waiters {
    fn default() -> Self {
        Self {
            queue: RequestFairQueue::default(),
            pending: Slab::default(),
            next_id: 1,
            blocking: 0,
        }
    }
}

impl Waiters {
    /// Removes a waiter's record (and its blocking count); `None` when already gone.
    pub fn remove(&mut self, slot: u32, id: u64) -> Option<PendingWaiter> {
        let w = self.pending.remove(slot, id)?;
        if matches!(w.wake, WakeHandle::Thread(_)) {
            self.blocking = self.blocking.saturating_sub(1);
        }
        Some(w)
    }
}
