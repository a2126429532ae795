//! The startup-ramp wrapper: `1 + floor((target − 1) · elapsed / ramp)` from the domain's first
//! admission attempt (integer math so timer wake-ups land exactly on ramp steps).

use std::time::Duration;
use tokio::time::Instant;

/// Start of the startup ramp while it is active.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartupRamp {
    started: Option<Instant>,
}

impl StartupRamp {
    /// A ramp starting now when enabled and the target is above 1.
    pub fn start(ramp: Duration, target: u32, now: Instant) -> Self {
        Self {
            started: (!ramp.is_zero() && target > 1).then_some(now),
        }
    }

    /// Whether it runs.
    pub fn active(&self) -> bool {
        self.started.is_some()
    }

    /// Aborts it where it stands (a rate limit).
    pub fn stop(&mut self) {
        self.started = None;
    }

    /// The ramp's limit at `now` for `target` (pure; `None` when no ramp is active).
    pub fn limit_at(&self, current: u32, target: u32, ramp: Duration, now: Instant) -> Option<u32> {
        let start = self.started?;
        let target = target.max(1);
        if ramp.is_zero() || target <= 1 {
            return Some(current.min(target).max(1));
        }
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= ramp {
            return Some(target);
        }
        let step = u128::from(target - 1) * elapsed.as_nanos() / ramp.as_nanos();
        Some(target.min(1 + step as u32))
    }

    /// Applies the ramp at `now`; returns `(previous, current)` when the limit changed.
    pub fn apply(
        &mut self,
        current: &mut u32,
        target: u32,
        ramp: Duration,
        now: Instant,
    ) -> Option<(u32, u32)> {
        let start = self.started?;
        let limit = self.limit_at(*current, target, ramp, now)?;
        if ramp.is_zero() || target <= 1 || now.saturating_duration_since(start) >= ramp {
            self.started = None;
        }
        let prev = *current;
        *current = limit;
        (prev != limit).then_some((prev, limit))
    }

    /// The next instant the ramp raises the limit (strictly after `now` once applied at `now`).
    pub fn next_step(&self, current: u32, target: u32, ramp: Duration) -> Option<Instant> {
        let start = self.started?;
        if ramp.is_zero() || target <= 1 {
            return None;
        }
        let level = u128::from(current.clamp(1, target));
        if level >= u128::from(target) {
            return Some(start + ramp);
        }
        // Smallest elapsed e with (target-1)·e/ramp ≥ level.
        let denom = u128::from(target - 1);
        let nanos = (level * ramp.as_nanos()).div_ceil(denom);
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        Some(start + Duration::from_nanos(nanos).min(ramp))
    }
}
