//! `MonotonicClock`: seconds since a run's origin on tokio's clock (so paused-time tests are exact).

use tokio::time::Instant;

/// A monotonic clock measured from a fixed origin; clones share the origin.
///
/// Uses `tokio::time::Instant`, which follows `tokio::time::pause()` inside a runtime and the
/// system monotonic clock outside one. Both event streams of a run share one clock so their
/// timelines can be merged.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// A clock with an explicit origin.
    pub fn with_origin(origin: Instant) -> Self {
        Self { origin }
    }

    /// The origin.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Seconds since the origin.
    pub fn now(&self) -> f64 {
        self.seconds_at(Instant::now())
    }

    /// Seconds from the origin to `instant` (0 for instants before the origin).
    pub fn seconds_at(&self, instant: Instant) -> f64 {
        instant.saturating_duration_since(self.origin).as_secs_f64()
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::start()
    }
}
