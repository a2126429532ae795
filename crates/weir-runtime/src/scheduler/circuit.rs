//! `CircuitBreaker`: per model alias, opens when a provider has kept failing with no success.

use super::config::CircuitBreakerConfig;
use std::collections::HashMap;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
struct AliasCircuit {
    last_success: Instant,
    consecutive_failures: u32,
}

/// Tracks, per model alias, the time of the last success and the failures since.
///
/// Salvage keeps rate-limited and admission-waiting tasks forever (as the reference does);
/// the breaker is what bounds it: a model whose calls have all failed for `open_after`, at
/// least `min_failures` times in a row, opens its circuit and the run stops with
/// `StopReason::CircuitOpen` instead of crawling silently.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: CircuitBreakerConfig,
    models: HashMap<String, AliasCircuit>,
}

impl CircuitBreaker {
    /// A breaker with every circuit closed.
    pub fn new(config: CircuitBreakerConfig) -> Self {
        Self {
            config,
            models: HashMap::new(),
        }
    }

    /// A call of `alias` succeeded: its circuit closes.
    pub fn record_success(&mut self, alias: &str, now: Instant) {
        match self.models.get_mut(alias) {
            Some(c) => {
                c.last_success = now;
                c.consecutive_failures = 0;
            }
            None => {
                self.models.insert(
                    alias.to_owned(),
                    AliasCircuit {
                        last_success: now,
                        consecutive_failures: 0,
                    },
                );
            }
        }
    }

    /// A task execution against `alias` failed; true when its circuit is now open.
    ///
    /// A model's clock starts at its first failure when it has never succeeded (not at the
    /// start of the run): a column that becomes ready late is not judged by time it never had.
    pub fn record_failure(&mut self, alias: &str, now: Instant) -> bool {
        let c = self.models.entry(alias.to_owned()).or_insert(AliasCircuit {
            last_success: now,
            consecutive_failures: 0,
        });
        c.consecutive_failures = c.consecutive_failures.saturating_add(1);
        c.consecutive_failures >= self.config.min_failures
            && now.saturating_duration_since(c.last_success) >= self.config.open_after
    }

    /// Failures of `alias` since its last success.
    pub fn consecutive_failures(&self, alias: &str) -> u32 {
        self.models.get(alias).map_or(0, |c| c.consecutive_failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn needs_both_time_and_failures_and_a_success_closes_it() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(CircuitBreakerConfig {
            open_after: Duration::from_secs(10),
            min_failures: 3,
        });
        let at = |s| t0 + Duration::from_secs(s);
        // Many failures at once (a burst) do not open it: not enough time without success.
        for _ in 0..20 {
            assert!(!b.record_failure("m", at(1)));
        }
        b.record_success("m", at(2));
        assert_eq!(b.consecutive_failures("m"), 0);
        // Long silence but only two failures: still closed.
        assert!(!b.record_failure("m", at(30)));
        assert!(!b.record_failure("m", at(31)));
        assert!(b.record_failure("m", at(32)));
        // Another model is independent, and its clock starts at its own first failure.
        for s in 32..42 {
            assert!(!b.record_failure("other", at(s)));
        }
        assert!(b.record_failure("other", at(42)));
    }
}
