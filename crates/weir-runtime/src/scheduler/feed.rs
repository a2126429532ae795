//! [`RowGroupFeed`]: row groups handed to a run one at a time by someone else (a coordinator
//! shared by several processes), instead of the run walking `first_row_group..` itself.
//!
//! In feed mode the run admits exactly the row groups it receives, in the order received, and
//! hands each one to the `RecordSink` as soon as it completes (there is no "earlier group" to
//! wait for: the groups another process generates never come here). The run ends when the
//! sender is dropped and every received group is written — or at a stop, as always. It never
//! decides which row groups exist: that is the feeder's job.

use tokio::sync::mpsc;

/// The receiving end of a row-group feed (see the module docs).
#[derive(Debug)]
pub struct RowGroupFeed {
    rx: mpsc::Receiver<u64>,
    /// A group received but not admitted yet (no free row-group slot at that moment).
    pub(crate) next: Option<u64>,
    /// The sender is gone: no more groups will come.
    pub(crate) closed: bool,
}

impl RowGroupFeed {
    /// A feed and its sender. `capacity` bounds the groups handed over but not yet taken
    /// (1 keeps a feeder from claiming work the run has no room for).
    pub fn channel(capacity: usize) -> (mpsc::Sender<u64>, Self) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            tx,
            Self {
                rx,
                next: None,
                closed: false,
            },
        )
    }

    /// Takes the next group if one is waiting, without blocking.
    pub(crate) fn poll_now(&mut self) -> Option<u64> {
        if let Some(rg) = self.next.take() {
            return Some(rg);
        }
        if self.closed {
            return None;
        }
        match self.rx.try_recv() {
            Ok(rg) => Some(rg),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.closed = true;
                None
            }
        }
    }

    /// Waits for the next group (or the sender's end) and keeps it in `next`.
    pub(crate) async fn wait(&mut self) {
        if self.next.is_some() || self.closed {
            return;
        }
        match self.rx.recv().await {
            Some(rg) => self.next = Some(rg),
            None => self.closed = true,
        }
    }

    /// No group is waiting and none will come.
    pub(crate) fn exhausted(&self) -> bool {
        self.closed && self.next.is_none()
    }
}
