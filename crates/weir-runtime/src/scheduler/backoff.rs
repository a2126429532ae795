//! Retry backoff: exponential with seeded jitter, never shorter than a provider's Retry-After.

use super::config::TaskRetryConfig;
use std::time::Duration;
use weir_contracts::Fnv64;

/// Delay before retry number `retry` (1-based) of a task, honouring `retry_after`.
///
/// `base * 2^(retry-1)` capped at `max_delay`, plus up to `jitter` of it. Jitter is drawn from a
/// hash of `salt` (e.g. the task id) and the retry number, so a run's schedule is reproducible.
pub fn retry_delay(
    config: &TaskRetryConfig,
    retry: u32,
    retry_after: Option<Duration>,
    salt: &str,
) -> Duration {
    let exp = retry.saturating_sub(1).min(30);
    let raw = config.base_delay.saturating_mul(1u32 << exp);
    let capped = raw.min(config.max_delay);
    let mut h = Fnv64::new();
    h.write(salt.as_bytes());
    h.write(&retry.to_le_bytes());
    let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64; // uniform in [0, 1)
    let jittered = capped.mul_f64(1.0 + config.jitter * unit);
    match retry_after {
        Some(ra) if ra > jittered => ra,
        _ => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_honours_retry_after() {
        let c = TaskRetryConfig {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            jitter: 0.0,
        };
        assert_eq!(retry_delay(&c, 1, None, "t"), Duration::from_millis(100));
        assert_eq!(retry_delay(&c, 2, None, "t"), Duration::from_millis(200));
        assert_eq!(retry_delay(&c, 3, None, "t"), Duration::from_millis(350));
        assert_eq!(
            retry_delay(&c, 1, Some(Duration::from_secs(2)), "t"),
            Duration::from_secs(2)
        );
        let j = TaskRetryConfig { jitter: 0.5, ..c };
        let d = retry_delay(&j, 1, None, "t");
        assert!(d >= Duration::from_millis(100) && d < Duration::from_millis(150));
        assert_eq!(d, retry_delay(&j, 1, None, "t"), "deterministic");
    }
}
