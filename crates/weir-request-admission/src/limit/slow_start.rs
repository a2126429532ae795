//! The slow-start wrapper: a domain whose limit is unknown opens small and grows by one per
//! success (doubling per round trip) until its first concurrency rate limit or the effective max.

use super::LimitCore;

/// Whether slow start still runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlowStart {
    active: bool,
}

impl SlowStart {
    /// Opens at `window` when that is below `limit`; returns the opening limit.
    pub fn open(&mut self, limit: u32, window: u32) -> u32 {
        if window >= 1 && limit > window {
            self.active = true;
            window
        } else {
            limit
        }
    }

    /// Whether it runs.
    pub fn active(&self) -> bool {
        self.active
    }

    /// Ends it (a concurrency rate limit, a latency decrease, the effective max, a rebase).
    pub fn close(&mut self) {
        self.active = false;
    }

    /// A success while it runs: one more.
    pub fn on_success(&mut self, core: &mut LimitCore) -> Option<u32> {
        core.success_streak = 0;
        Some(core.current.saturating_add(1))
    }
}
