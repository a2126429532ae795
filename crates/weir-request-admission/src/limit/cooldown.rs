//! The cooldown wrapper: while it runs the domain admits nothing; it only ever extends.

use tokio::time::Instant;

/// End of a domain's cooldown (`None` until the first one).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cooldown {
    until: Option<Instant>,
}

impl Cooldown {
    /// Whether it runs at `now`.
    pub fn cooling(&self, now: Instant) -> bool {
        self.until.is_some_and(|b| now < b)
    }

    /// The end of the last cooldown.
    pub fn end(&self) -> Option<Instant> {
        self.until
    }

    /// Extends to `until` (a later, shorter cooldown never shortens a running one).
    pub fn extend(&mut self, until: Instant) {
        self.until = Some(self.until.map_or(until, |b| b.max(until)));
    }
}
