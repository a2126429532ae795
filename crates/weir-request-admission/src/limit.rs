//! `AdaptiveRequestLimitState`: one request resource's adaptive limit, counters, cooldown and
//! startup ramp (integer ramp math so timer wake-ups land exactly on ramp steps).

use crate::latency::LatencyTracker;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{RequestReleaseOutcomeKind, RequestResourceKey};

/// The goodput policy's memory of where rate limits began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plateau {
    /// Limit the policy holds at after the last rate-limit cascade.
    pub level: u32,
    /// When the hold started (the end of the cooldown that set it).
    pub since: Instant,
    /// How long the limit stays at `level` before probing above it.
    pub hold: Duration,
}

/// Highest concurrency that recently completed successfully (goodput policy): a max over the
/// current and the previous bucket of success releases (each bucket `max(32, 8 × limit)`
/// releases, so "recent" spans the last ~8–16 round trips at the limit). Count-based, so a
/// release never needs the clock for it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SuccessPeak {
    current: u32,
    previous: u32,
    samples: u32,
}

impl SuccessPeak {
    /// Records one success that ran at `concurrency`.
    pub fn record(&mut self, concurrency: u32, limit: u32) {
        self.current = self.current.max(concurrency);
        self.samples += 1;
        if self.samples >= limit.saturating_mul(8).max(32) {
            self.previous = self.current;
            self.current = 0;
            self.samples = 0;
        }
    }

    /// Forgets every sample (the capacity changed).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The recent peak (0 before any success).
    pub fn get(&self) -> u32 {
        self.current.max(self.previous)
    }
}

/// Rate limits among the last releases (goodput policy): a window of `max(limit, 16)` releases.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LossWindow {
    releases: u32,
    rate_limits: u32,
}

impl LossWindow {
    /// Counts one release; returns the rate limits in the window including it.
    pub fn record(&mut self, rate_limited: bool, limit: u32) -> u32 {
        if self.releases >= limit.max(16) {
            *self = Self::default();
        }
        self.releases += 1;
        self.rate_limits += u32::from(rate_limited);
        self.rate_limits
    }

    /// Rate limits counted in the current window.
    pub fn rate_limits(&self) -> u32 {
        self.rate_limits
    }

    /// Rate limits that make unexplained 429s concurrency evidence: a quarter of the window.
    pub fn threshold(limit: u32) -> u32 {
        (limit.max(16) / 4).max(2)
    }

    /// Forgets the window (after it led to a decrease).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Adaptive state of one provider/model/domain resource.
#[derive(Debug, Clone)]
pub(crate) struct AdaptiveRequestLimitState {
    pub resource: RequestResourceKey,
    pub current_limit: u32,
    pub in_flight: u32,
    pub waiters: u32,
    /// End of the current cooldown (`None` once it was never set).
    pub blocked_until: Option<Instant>,
    pub success_streak: u32,
    /// Limit at which the last rate-limit cascade began (0 = never rate limited).
    pub rate_limit_ceiling: u32,
    /// `request_soft_ceiling_recovered` not yet emitted for the current ceiling.
    pub soft_ceiling_pending: bool,
    pub consecutive_rate_limits: u32,
    pub last_outcome: Option<RequestReleaseOutcomeKind>,
    /// Start of the startup ramp while it is active.
    pub ramp_started: Option<Instant>,
    pub ever_rate_limited: bool,
    /// Goodput policy plateau (unused by the plan's AIMD).
    pub plateau: Option<Plateau>,
    /// Latency saturation signal, when configured for the endpoint.
    pub latency: Option<LatencyTracker>,
    /// Goodput slow start: the limit grows by one per success (doubling per round trip) until
    /// the first concurrency rate limit or the effective max.
    pub slow_start: bool,
    /// Goodput: highest concurrency recently served successfully.
    pub success_peak: SuccessPeak,
    /// Goodput: rate limits among the last releases.
    pub loss: LossWindow,
}

impl AdaptiveRequestLimitState {
    /// A fresh state: the ramp starts now when enabled and the target is above 1.
    pub fn new(
        resource: RequestResourceKey,
        initial_limit: u32,
        ramp: Duration,
        now: Instant,
    ) -> Self {
        let ramp_active = !ramp.is_zero() && initial_limit > 1;
        Self {
            resource,
            current_limit: if ramp_active { 1 } else { initial_limit.max(1) },
            in_flight: 0,
            waiters: 0,
            blocked_until: None,
            success_streak: 0,
            rate_limit_ceiling: 0,
            soft_ceiling_pending: false,
            consecutive_rate_limits: 0,
            last_outcome: None,
            ramp_started: ramp_active.then_some(now),
            ever_rate_limited: false,
            plateau: None,
            latency: None,
            slow_start: false,
            success_peak: SuccessPeak::default(),
            loss: LossWindow::default(),
        }
    }

    /// Starts the goodput slow start at `window` (when the limit is larger and no ramp runs).
    pub fn start_slow(&mut self, window: u32) {
        if self.ramp_started.is_none() && window >= 1 && self.current_limit > window {
            self.current_limit = window;
            self.slow_start = true;
        }
    }

    /// Whether the resource is cooling down at `now`.
    pub fn cooling(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|b| now < b)
    }

    /// The ramp's limit at `now` for `target` (pure; `None` when no ramp is active).
    pub fn ramp_limit_at(&self, target: u32, ramp: Duration, now: Instant) -> Option<u32> {
        let start = self.ramp_started?;
        let target = target.max(1);
        if ramp.is_zero() || target <= 1 {
            return Some(self.current_limit.min(target).max(1));
        }
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= ramp {
            return Some(target);
        }
        let step = u128::from(target - 1) * elapsed.as_nanos() / ramp.as_nanos();
        Some(target.min(1 + step as u32))
    }

    /// Applies the ramp at `now`; returns `(previous, current)` when the limit changed.
    pub fn apply_ramp(&mut self, target: u32, ramp: Duration, now: Instant) -> Option<(u32, u32)> {
        let start = self.ramp_started?;
        let limit = self.ramp_limit_at(target, ramp, now)?;
        if ramp.is_zero() || target <= 1 || now.saturating_duration_since(start) >= ramp {
            self.ramp_started = None;
        }
        let prev = self.current_limit;
        self.current_limit = limit;
        (prev != limit).then_some((prev, limit))
    }

    /// The next instant the ramp raises the limit (strictly after `now` once applied at `now`).
    pub fn next_ramp_step(&self, target: u32, ramp: Duration) -> Option<Instant> {
        let start = self.ramp_started?;
        if ramp.is_zero() || target <= 1 {
            return None;
        }
        let level = u128::from(self.current_limit.clamp(1, target));
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

#[cfg(test)]
mod tests {
    use super::*;
    use weir_contracts::RequestDomain;

    #[test]
    fn ramp_cap_four_over_ten_seconds() {
        let t0 = Instant::now();
        let key = RequestResourceKey::new("p", "m", RequestDomain::Chat).unwrap();
        let ramp = Duration::from_secs(10);
        let mut s = AdaptiveRequestLimitState::new(key, 4, ramp, t0);
        assert_eq!(s.current_limit, 1);
        assert_eq!(
            s.next_ramp_step(4, ramp),
            Some(t0 + Duration::from_nanos(3_333_333_334))
        );
        assert_eq!(
            s.apply_ramp(4, ramp, t0 + Duration::from_secs(5)),
            Some((1, 2))
        );
        let next = s.next_ramp_step(4, ramp).unwrap();
        assert_eq!(next, t0 + Duration::from_nanos(6_666_666_667));
        // At the computed step instant the limit really rises (no early wake-up loop).
        assert_eq!(s.apply_ramp(4, ramp, next), Some((2, 3)));
        assert_eq!(s.apply_ramp(4, ramp, t0 + ramp), Some((3, 4)));
        assert!(s.ramp_started.is_none());
        assert_eq!(s.next_ramp_step(4, ramp), None);
    }
}
