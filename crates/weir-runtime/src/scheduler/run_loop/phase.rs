//! The run loop's phases (running → stopping → draining) and the caller's stop signal.

use super::StopReason;
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the run loop is in its life; every "may I still do X" question is asked here.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Phase {
    /// Admitting row groups, enqueueing ready work, dispatching it, retrying.
    Running,
    /// A caller asked to stop: no admission, dispatch or retry; running workers may finish
    /// until `grace_deadline`, then they are aborted.
    Stopping {
        /// Why the run stops.
        reason: StopReason,
        /// When running workers are aborted.
        grace_deadline: Instant,
    },
    /// Every running worker was aborted (the grace passed, or the run stopped itself): wait
    /// for each to come back through the `JoinSet` so its lease is released and accounted.
    Draining {
        /// Why the run stops.
        reason: StopReason,
    },
}

impl Phase {
    /// True while new work may be admitted, dispatched and retried.
    pub(super) fn is_running(&self) -> bool {
        matches!(self, Self::Running)
    }

    /// The stop reason once the run is stopping or draining.
    pub(super) fn stop_reason(&self) -> Option<&StopReason> {
        match self {
            Self::Running => None,
            Self::Stopping { reason, .. } | Self::Draining { reason } => Some(reason),
        }
    }

    /// When the stop grace ends, while stopping.
    pub(super) fn grace_deadline(&self) -> Option<Instant> {
        match self {
            Self::Stopping { grace_deadline, .. } => Some(*grace_deadline),
            _ => None,
        }
    }

    /// True once the grace is over at `now`: time to abort and drain.
    pub(super) fn grace_over(&self, now: Instant) -> bool {
        self.grace_deadline().is_some_and(|d| d <= now)
    }
}

/// The caller's stop signal, and whether anyone can still send one.
pub(super) struct CancelWatch {
    rx: watch::Receiver<bool>,
    closed: bool,
}

impl CancelWatch {
    /// Watches `rx`.
    pub(super) fn new(rx: watch::Receiver<bool>) -> Self {
        Self { rx, closed: false }
    }

    /// True when a stop was requested.
    pub(super) fn requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// True while a future stop request is possible (the sender is alive).
    pub(super) fn open(&self) -> bool {
        !self.closed
    }

    /// Waits for the next change. A closed channel means nobody can ask to stop any more:
    /// it is remembered so the loop stops polling it (never parking the loop itself).
    pub(super) async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            self.closed = true;
        }
    }
}
