//! The goodput policy (the default): on a concurrency rate limit fall to the concurrency still
//! being served, remember a capacity estimate (the plateau level), climb back to it one per
//! success, hold there, probe above it after a hold that doubles per failed probe, grow once per
//! round trip. Unexplained rate limits are read by evidence (isolated / unconfirmed).

use super::{LimitAlgorithm, LimitCore, RateLimitClass, RateLimitContext, ReleaseFacts};
use crate::config::{GoodputPolicyConfig, RequestAdmissionConfig};
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::RequestReleaseOutcomeKind;

/// Where rate limits began, and how long to stay there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plateau {
    /// The capacity estimate the limit climbs back to and holds at.
    pub level: u32,
    /// When the hold started (the end of the cooldown that set it, or the decrease).
    pub since: Instant,
    /// How long the limit stays at `level` before probing above it.
    pub hold: Duration,
}

/// Highest concurrency that recently completed successfully: a max over the current and the
/// previous bucket of success releases (each bucket `max(32, 8 × limit)` releases, so "recent"
/// spans the last ~8–16 round trips at the limit). Count-based: no clock read.
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

/// Rate limits among the last releases: a window of `max(limit, 16)` releases.
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

/// The goodput policy and its memory.
#[derive(Debug, Clone)]
pub(crate) struct Goodput {
    config: GoodputPolicyConfig,
    factor: f64,
    step: u32,
    pub(crate) plateau: Option<Plateau>,
    pub(crate) success_peak: SuccessPeak,
    pub(crate) loss: LossWindow,
}

impl Goodput {
    /// From the policy's tunables and the config's factor and step.
    pub fn new(config: &RequestAdmissionConfig, g: GoodputPolicyConfig) -> Self {
        Self {
            config: g,
            factor: config.multiplicative_decrease_factor,
            step: config.additive_increase_step,
            plateau: None,
            success_peak: SuccessPeak::default(),
            loss: LossWindow::default(),
        }
    }

    fn update_plateau(
        &mut self,
        core: &LimitCore,
        prev: u32,
        admitted_in_flight: u32,
        cx: RateLimitContext,
        now: Instant,
    ) {
        let g = &self.config;
        let cooldown_secs = cx.cooldown.map_or(0.0, |c| c.as_secs_f64());
        let base = Duration::from_secs_f64(
            g.probe_hold_min_seconds
                .max(g.probe_hold_cooldown_multiple * cooldown_secs)
                .min(g.probe_hold_max_seconds),
        );
        if cx.new_cascade && self.plateau.is_some_and(|p| prev <= p.level) {
            // Rate limited at or below the estimate: the capacity fell, the successes behind
            // the estimate are stale. Start over from what survives this cascade.
            self.success_peak.reset();
        }
        // The level is the capacity estimate: the highest concurrency recently served
        // successfully, below the limit this cascade began at, and below what was in flight
        // when this lease was admitted (the provider was full then: C ≤ admitted_in_flight − 1).
        // Without a success to go by, the limit after the decrease is the only estimate.
        let bound = admitted_in_flight.saturating_sub(1);
        let peak = self.success_peak.get();
        let estimate = if peak == 0 { core.current } else { peak };
        let mut level = estimate
            .min(core.rate_limit_ceiling.saturating_sub(1))
            .min(bound);
        if let Some(p) = self.plateau.filter(|_| !cx.new_cascade) {
            // Later rate limits of the same cascade can only lower the estimate.
            level = level.min(p.level);
        }
        let level = level.max(1);
        let since = cx.cooldown_end.filter(|b| *b > now).unwrap_or(now);
        let hold = match self.plateau {
            Some(p) if cx.new_cascade && prev > p.level && level <= p.level => {
                // A failed probe: wait twice as long before the next one.
                Duration::from_secs_f64((p.hold.as_secs_f64() * 2.0).min(g.probe_hold_max_seconds))
                    .max(base)
            }
            Some(p) if !cx.new_cascade => p.hold.max(base),
            _ => base,
        };
        self.plateau = Some(Plateau { level, since, hold });
    }
}

impl LimitAlgorithm for Goodput {
    fn observe(&mut self, core: &LimitCore, f: &ReleaseFacts) {
        let limit = core.current;
        match f.kind {
            RequestReleaseOutcomeKind::Success => {
                // What the provider served with this call: at most what was in flight when it
                // was admitted and at most what is in flight now (+1: itself).
                let served = f.admitted_in_flight.min(f.in_flight + 1);
                self.success_peak.record(served, limit);
                self.loss.record(false, limit);
            }
            RequestReleaseOutcomeKind::RateLimited => {
                self.loss.record(true, limit);
            }
            _ => {}
        }
    }

    fn classify(&self, core: &LimitCore, f: &ReleaseFacts) -> RateLimitClass {
        let has_retry_after = f
            .retry_after_seconds
            .is_some_and(|r| r.is_finite() && r > 0.0);
        let confirmed = self.loss.rate_limits() >= LossWindow::threshold(core.current);
        if !confirmed && f.admitted_in_flight.saturating_mul(2) < self.success_peak.get() {
            RateLimitClass::Isolated
        } else if has_retry_after {
            // An overshoot: the provider is still serving the calls in flight, so the refused
            // call waits out its own Retry-After (the executor's per-request backoff) while
            // the rest go on under the decreased limit. Pausing the whole endpoint for it cost
            // a full Retry-After of idle capacity per cascade (a tenth of a 10 s run at 1 s).
            // With nothing else in flight the endpoint may be refusing everything: cool down.
            RateLimitClass::Concurrency {
                cooldown: f.in_flight == 0,
            }
        } else if confirmed {
            RateLimitClass::Concurrency { cooldown: false }
        } else {
            RateLimitClass::Unconfirmed
        }
    }

    fn on_rate_limit(&mut self, core: &mut LimitCore, f: &ReleaseFacts, cx: RateLimitContext) {
        self.loss.reset();
        let prev = core.current;
        // Fall to the concurrency still in flight (the calls the provider was serving); the
        // first decrease of a cascade is at most as deep as the plan's factor unless more rate
        // limits of the same cascade prove the survivors are fewer.
        let factor_floor = ((f64::from(prev) * self.factor).floor() as u32).max(1);
        let survivors = f.in_flight.max(1);
        let next = if cx.new_cascade {
            survivors
                .max(factor_floor)
                .min(prev.saturating_sub(1))
                .max(1)
        } else {
            survivors.min(prev)
        };
        if next < prev {
            core.current = next;
        }
        self.update_plateau(core, prev, f.admitted_in_flight, cx, f.now);
    }

    fn on_success(&mut self, core: &mut LimitCore, f: &ReleaseFacts) -> Option<u32> {
        let below_level = self.plateau.is_some_and(|p| core.current < p.level);
        let (window, step) = if below_level {
            // Climbing back to the capacity estimate: +1 per success.
            (1, 1)
        } else {
            if let Some(p) = self.plateau {
                if f.now < p.since + p.hold {
                    // Plateau: stay at the level where rate limits began.
                    core.success_streak = 0;
                    return None;
                }
            }
            // One increase per round trip: a window of successes as large as the limit.
            (core.current.max(1), self.step)
        };
        core.success_streak += 1;
        if core.success_streak < window {
            return None;
        }
        core.success_streak = 0;
        let mut next = core.current.saturating_add(step);
        if let Some(p) = self.plateau.filter(|p| core.current < p.level) {
            // Fast recovery stops at the level; the hold decides about going above it.
            next = next.min(p.level);
        }
        Some(next)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.plateau.map(|p| p.since + p.hold)
    }

    fn slow_start_limit(&self) -> Option<u32> {
        Some(self.config.slow_start_initial_limit)
    }
}
