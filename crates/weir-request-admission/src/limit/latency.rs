//! Latency-based saturation signal (optional per endpoint, off by default): for servers that
//! queue instead of rejecting, a short-term latency far above the recent baseline while the
//! domain runs at its limit is treated as pressure and lowers the limit by the latency gradient.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::RequestAdmissionConfigError;

/// Latency samples shorter than this (1 µs) are ignored: they carry no signal.
const MIN_SAMPLE_SECONDS: f64 = 1e-6;

/// Settings of the latency saturation signal of one provider/model endpoint.
///
/// Samples are the lease hold times (acquire → release) of successful attempts. The baseline
/// follows falling latency fast and rising latency slowly, and never rises from a sample above
/// `tolerance ×` itself (so it stays near the unloaded latency instead of learning our own
/// queue); the short-term average follows every sample. When, after `min_samples` samples,
/// `short > tolerance × baseline` and the domain's in-flight count was at its limit, the limit
/// becomes `floor(limit × max(baseline / short, min_decrease_factor))` (at least 1, at most
/// `limit − 1`) — the gradient of a queueing server brings it back to the concurrency the server
/// really serves. Samples of leases admitted before a decrease are ignored (they queued behind
/// the old limit), so it decreases at most once per round trip. No cooldown is imposed. After
/// `max_consecutive_decreases` decreases in a row that did not bring latency back within the
/// tolerance, the latency is taken to be the server's own (it got slower, not queued): the
/// baseline re-bases to the short-term average instead of decreasing further.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencySaturationConfig {
    /// Pressure when short-term latency exceeds this multiple of the baseline (> 1; default 2.0).
    pub tolerance: f64,
    /// Samples the short-term average spans (≥ 1; default 8).
    pub short_window: u32,
    /// Samples the baseline spans while latency rises (≥ short_window; default 2,000).
    pub baseline_window: u32,
    /// Samples needed since the start or the last decrease before it may fire (≥ 1; default 16).
    pub min_samples: u32,
    /// Deepest single decrease as a factor of the limit, in (0, 1) (default 0.5).
    pub min_decrease_factor: f64,
    /// Decreases in a row without relief before the baseline re-bases (≥ 1; default 4).
    pub max_consecutive_decreases: u32,
}

impl Default for LatencySaturationConfig {
    fn default() -> Self {
        Self {
            tolerance: 2.0,
            short_window: 8,
            baseline_window: 2_000,
            min_samples: 16,
            min_decrease_factor: 0.5,
            max_consecutive_decreases: 4,
        }
    }
}

impl LatencySaturationConfig {
    /// Validates every field; `prefix` names where the config sits (for the error's field).
    pub fn validate(&self, prefix: &str) -> Result<(), RequestAdmissionConfigError> {
        let err = |f: &str, m: &str| RequestAdmissionConfigError::new(format!("{prefix}.{f}"), m);
        if !(self.tolerance.is_finite() && self.tolerance > 1.0) {
            return Err(err("tolerance", "must be a finite number > 1"));
        }
        if self.short_window == 0 {
            return Err(err("short_window", "must be >= 1"));
        }
        if self.baseline_window < self.short_window {
            return Err(err("baseline_window", "must be >= short_window"));
        }
        if self.min_samples == 0 {
            return Err(err("min_samples", "must be >= 1"));
        }
        if !(self.min_decrease_factor > 0.0 && self.min_decrease_factor < 1.0) {
            return Err(err("min_decrease_factor", "must be in (0, 1)"));
        }
        if self.max_consecutive_decreases == 0 {
            return Err(err("max_consecutive_decreases", "must be >= 1"));
        }
        Ok(())
    }
}

/// Per-domain latency memory of the signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LatencyTracker {
    config: LatencySaturationConfig,
    /// Seconds; near the unloaded latency.
    baseline: Option<f64>,
    /// Seconds; recent latency.
    short: Option<f64>,
    samples: u32,
    /// Leases admitted at or before this instant no longer count (set by a decrease).
    epoch: Option<Instant>,
    /// Decreases since latency was last within the tolerance.
    consecutive: u32,
}

impl LatencyTracker {
    /// A tracker with no samples yet.
    pub fn new(config: LatencySaturationConfig) -> Self {
        Self {
            config,
            baseline: None,
            short: None,
            samples: 0,
            epoch: None,
            consecutive: 0,
        }
    }

    /// Records one success held from `acquired_at` to `now`; returns the new limit when the
    /// signal fires (`at_limit`: in flight was at the limit before this release).
    pub fn observe(
        &mut self,
        acquired_at: Instant,
        now: Instant,
        limit: u32,
        at_limit: bool,
    ) -> Option<u32> {
        if self.epoch.is_some_and(|e| acquired_at <= e) {
            return None;
        }
        let sample = now.saturating_duration_since(acquired_at).as_secs_f64();
        if sample < MIN_SAMPLE_SECONDS {
            // A zero-length call (same clock tick) says nothing about server latency, and a zero
            // baseline could never rise again: ignore it.
            return None;
        }
        let c = self.config;
        let short_alpha = 2.0 / (f64::from(c.short_window) + 1.0);
        let long_alpha = 2.0 / (f64::from(c.baseline_window) + 1.0);
        let baseline = match self.baseline {
            None => sample,
            // Fall fast, rise slowly, never from an elevated sample: the baseline tracks the
            // unloaded latency, not the queue our own concurrency builds.
            Some(b) if sample < b => b + (sample - b) * short_alpha,
            Some(b) if sample <= c.tolerance * b => b + (sample - b) * long_alpha,
            Some(b) => b,
        };
        self.baseline = Some(baseline);
        let short = self
            .short
            .map_or(sample, |s| s + (sample - s) * short_alpha);
        self.short = Some(short);
        self.samples = self.samples.saturating_add(1);
        if self.samples < c.min_samples || baseline <= 0.0 {
            return None;
        }
        if short <= c.tolerance * baseline {
            self.consecutive = 0;
            return None;
        }
        if !at_limit || limit <= 1 {
            return None;
        }
        if self.consecutive >= c.max_consecutive_decreases {
            // Decreasing did not bring latency down: the server itself got slower.
            self.baseline = Some(short);
            self.consecutive = 0;
            self.samples = 0;
            return None;
        }
        let gradient = (baseline / short).max(c.min_decrease_factor);
        let next = ((f64::from(limit) * gradient).floor() as u32).clamp(1, limit - 1);
        self.short = None;
        self.samples = 0;
        self.epoch = Some(now);
        self.consecutive += 1;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_on_a_queueing_gradient_only_at_the_limit() {
        let t0 = Instant::now();
        let mut t = LatencyTracker::new(LatencySaturationConfig::default());
        let ms = |n: u64| Duration::from_millis(n);
        // Unloaded: 100 ms samples, never fires.
        for i in 0..40 {
            let at = t0 + ms(i * 10);
            assert_eq!(t.observe(at, at + ms(100), 32, true), None);
        }
        // Queueing at 4× the served concurrency: latency 400 ms. Not at the limit: nothing.
        let start = t0 + ms(1_000);
        for i in 0..20 {
            let at = start + ms(i);
            assert_eq!(t.observe(at, at + ms(400), 32, false), None);
        }
        // At the limit it fires once, by the gradient (floored at half), then waits for fresh
        // leases admitted after the decrease.
        let mut fired = None;
        for i in 0..20 {
            let at = start + ms(100 + i);
            if let Some(n) = t.observe(at, at + ms(400), 32, true) {
                fired = Some((n, at + ms(400)));
                break;
            }
        }
        let (next, when) = fired.expect("fires");
        assert_eq!(next, 16);
        let stale = when - ms(1);
        assert_eq!(t.observe(stale, when + ms(400), 16, true), None);
    }

    #[test]
    fn a_server_that_got_slower_rebases_instead_of_collapsing_the_limit() {
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let mut t = LatencyTracker::new(LatencySaturationConfig::default());
        let mut clock = t0;
        let mut limit = 64;
        for _ in 0..20 {
            assert_eq!(t.observe(clock, clock + ms(100), limit, true), None);
            clock += ms(10);
        }
        // Latency triples for good, whatever our concurrency: at most 4 decreases, then re-base.
        let mut decreases = 0;
        for _ in 0..400 {
            clock += ms(10);
            if let Some(n) = t.observe(clock, clock + ms(300), limit, true) {
                limit = n;
                decreases += 1;
            }
        }
        assert_eq!(decreases, 4);
        assert_eq!(limit, 4);
        assert!(t.baseline.is_some_and(|b| b > 0.25));
    }

    #[test]
    fn validation_names_the_field() {
        let c = LatencySaturationConfig {
            tolerance: 1.0,
            ..LatencySaturationConfig::default()
        };
        assert_eq!(c.validate("x").unwrap_err().field, "x.tolerance");
        let c = LatencySaturationConfig {
            baseline_window: 2,
            ..LatencySaturationConfig::default()
        };
        assert_eq!(c.validate("x").unwrap_err().field, "x.baseline_window");
    }
}
