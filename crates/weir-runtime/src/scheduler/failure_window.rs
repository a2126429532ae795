//! `FailureWindow`: the sliding window of model-task outcomes behind early shutdown.

use super::config::EarlyShutdownConfig;
use std::collections::VecDeque;

/// Keeps the last `window` task outcomes and says when the failure share crosses the threshold.
#[derive(Debug, Clone)]
pub struct FailureWindow {
    config: EarlyShutdownConfig,
    outcomes: VecDeque<bool>,
    failures: usize,
}

impl FailureWindow {
    /// An empty window.
    pub fn new(config: EarlyShutdownConfig) -> Self {
        Self {
            config,
            outcomes: VecDeque::with_capacity(config.window),
            failures: 0,
        }
    }

    /// Records one terminal task outcome; returns true when the run should stop early.
    pub fn record(&mut self, failed: bool) -> bool {
        if self.outcomes.len() == self.config.window {
            if let Some(true) = self.outcomes.pop_front() {
                self.failures -= 1;
            }
        }
        self.outcomes.push_back(failed);
        if failed {
            self.failures += 1;
        }
        self.should_stop()
    }

    /// Whether the current window is at or above the failure threshold.
    pub fn should_stop(&self) -> bool {
        self.outcomes.len() >= self.config.min_outcomes
            && self.failure_rate() >= self.config.max_failure_rate
    }

    /// Outcomes in the window.
    pub fn outcomes(&self) -> usize {
        self.outcomes.len()
    }

    /// Failures in the window.
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// Failure share of the current window (0 when empty).
    pub fn failure_rate(&self) -> f64 {
        if self.outcomes.is_empty() {
            0.0
        } else {
            self.failures as f64 / self.outcomes.len() as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_only_after_min_outcomes_and_slides() {
        let mut w = FailureWindow::new(EarlyShutdownConfig {
            window: 4,
            min_outcomes: 3,
            max_failure_rate: 0.5,
        });
        assert!(!w.record(true));
        assert!(!w.record(true)); // only 2 outcomes
        assert!(w.record(false)); // 2/3 failed
        assert!(w.record(false)); // 2/4 = 0.5 -> trips (at the threshold)
        let mut w = FailureWindow::new(EarlyShutdownConfig {
            window: 4,
            min_outcomes: 3,
            max_failure_rate: 0.75,
        });
        for _ in 0..4 {
            w.record(true);
        }
        assert!(w.should_stop());
        for _ in 0..2 {
            w.record(false);
        }
        assert!(!w.should_stop()); // the two oldest failures slid out: 2/4
        assert!((w.failure_rate() - 0.5).abs() < 1e-9);
    }
}
