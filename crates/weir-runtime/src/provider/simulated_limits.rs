//! The simulated provider's rate budgets as pure state on an injected clock (`now` = time since
//! the provider was built): a fixed window, a request token bucket and a tokens-per-minute
//! bucket, and what they report as `x-ratelimit-*` content ([`WindowObservation`]).
//!
//! The same semantics as `weir-testkit`'s loopback limiters (the runtime may not depend on the
//! testkit, so each owns its few lines): a refused call charges nothing, an admitted one charges
//! every budget; windows tile time from the first call; buckets start full.

use super::simulated_config::{FixedWindowConfig, RequestBucketConfig, TokenBucketConfig};
use std::time::Duration;
use weir_contracts::{RateLimitSignal, WindowObservation};

/// Why a budget refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BudgetRefusal {
    /// The fixed window is used up (no Retry-After, like a LiteLLM proxy).
    Window,
    /// The request bucket is empty; a call is back after the duration.
    RequestBucket(Duration),
    /// The token bucket holds too few tokens; they are back after the duration.
    TokenBucket(Duration),
}

impl BudgetRefusal {
    /// The Retry-After the 429 carries.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Self::Window => None,
            Self::RequestBucket(d) | Self::TokenBucket(d) => Some(d),
        }
    }

    /// Which budget the 429 names.
    pub fn signal(self) -> RateLimitSignal {
        match self {
            Self::Window | Self::RequestBucket(_) => RateLimitSignal::RequestWindow,
            Self::TokenBucket(_) => RateLimitSignal::TokenWindow,
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    per_second: f64,
    burst: f64,
    level: f64,
    last: Duration,
    limit_per_minute: u64,
}

impl Bucket {
    fn new(per_second: f64, burst: f64, limit_per_minute: u64) -> Self {
        Self {
            per_second,
            burst,
            level: burst,
            last: Duration::ZERO,
            limit_per_minute,
        }
    }

    fn refill(&mut self, now: Duration) {
        let dt = now.saturating_sub(self.last).as_secs_f64();
        self.level = (self.level + dt * self.per_second).min(self.burst);
        self.last = self.last.max(now);
    }

    fn wait_for(&self, amount: f64) -> Duration {
        let missing = amount.min(self.burst) - self.level;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(missing / self.per_second).unwrap_or(Duration::MAX)
    }

    fn observe(&self) -> WindowObservation {
        WindowObservation {
            limit: Some(self.limit_per_minute),
            remaining: Some(self.level.max(0.0).floor() as u64),
            reset_after: Some(self.wait_for(self.burst)),
        }
    }
}

#[derive(Debug, Clone)]
struct Window {
    limit: u64,
    length: Duration,
    start: Option<Duration>,
    used: u64,
}

impl Window {
    fn roll(&mut self, now: Duration) {
        let start = *self.start.get_or_insert(now);
        if !self.length.is_zero() && now >= start + self.length {
            let n = ((now - start).as_nanos() / self.length.as_nanos()) as u32;
            self.start = Some(start + self.length * n);
            self.used = 0;
        }
    }

    fn observe(&self, now: Duration) -> WindowObservation {
        WindowObservation {
            limit: Some(self.limit),
            remaining: Some(self.limit.saturating_sub(self.used)),
            reset_after: Some(
                self.start
                    .map_or(Duration::ZERO, |s| (s + self.length).saturating_sub(now)),
            ),
        }
    }
}

/// Every configured budget of one simulated model.
#[derive(Debug, Clone)]
pub(crate) struct Budgets {
    window: Option<Window>,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl Budgets {
    /// The budgets of one model config (all full).
    pub fn new(
        window: Option<&FixedWindowConfig>,
        requests: Option<&RequestBucketConfig>,
        tokens: Option<&TokenBucketConfig>,
    ) -> Self {
        Self {
            window: window.map(|w| Window {
                limit: u64::from(w.limit),
                length: Duration::try_from_secs_f64(w.window_s).unwrap_or(Duration::MAX),
                start: None,
                used: 0,
            }),
            requests: requests.map(|b| {
                Bucket::new(
                    b.per_second,
                    f64::from(b.burst.max(1)),
                    (b.per_second * 60.0).round() as u64,
                )
            }),
            tokens: tokens.map(|t| {
                Bucket::new(
                    t.tokens_per_minute as f64 / 60.0,
                    t.burst.max(1) as f64,
                    t.tokens_per_minute,
                )
            }),
        }
    }

    /// Checks a call costing `tokens` at `now` without charging it: window, request bucket,
    /// token bucket, in that order.
    pub fn check(&mut self, now: Duration, tokens: u64) -> Option<BudgetRefusal> {
        if let Some(w) = self.window.as_mut() {
            w.roll(now);
            if w.used >= w.limit {
                return Some(BudgetRefusal::Window);
            }
        }
        if let Some(b) = self.requests.as_mut() {
            b.refill(now);
            if b.level < 1.0 {
                return Some(BudgetRefusal::RequestBucket(b.wait_for(1.0)));
            }
        }
        if let Some(b) = self.tokens.as_mut() {
            b.refill(now);
            // A call larger than the whole burst passes on a full bucket (and leaves a debt).
            if b.level < (tokens as f64).min(b.burst) {
                return Some(BudgetRefusal::TokenBucket(b.wait_for(tokens as f64)));
            }
        }
        None
    }

    /// Charges an admitted call (after [`Self::check`] returned `None` at the same `now`).
    pub fn charge(&mut self, tokens: u64) {
        if let Some(w) = self.window.as_mut() {
            w.used += 1;
        }
        if let Some(b) = self.requests.as_mut() {
            b.level -= 1.0;
        }
        if let Some(b) = self.tokens.as_mut() {
            b.level -= tokens as f64;
        }
    }

    /// True when a token budget is configured.
    pub fn has_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// The request budget (bucket, else window) and the token budget as headers would report
    /// them now.
    pub fn observe(&self, now: Duration) -> (Option<WindowObservation>, Option<WindowObservation>) {
        let requests = self
            .requests
            .as_ref()
            .map(Bucket::observe)
            .or_else(|| self.window.as_ref().map(|w| w.observe(now)));
        (requests, self.tokens.as_ref().map(Bucket::observe))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bucket_window_and_tokens_refuse_without_charging() {
        let mut b = Budgets::new(
            Some(&FixedWindowConfig {
                limit: 3,
                window_s: 1.0,
            }),
            Some(&RequestBucketConfig {
                per_second: 10.0,
                burst: 2,
            }),
            Some(&TokenBucketConfig {
                tokens_per_minute: 600,
                burst: 50,
            }),
        );
        for _ in 0..2 {
            assert_eq!(b.check(Duration::ZERO, 20), None);
            b.charge(20);
        }
        // Bucket empty: one call back after 100 ms.
        assert_eq!(
            b.check(Duration::ZERO, 20),
            Some(BudgetRefusal::RequestBucket(ms(100)))
        );
        // At 100 ms the bucket has one call but the token bucket holds 11 of 20.
        assert_eq!(
            b.check(ms(100), 20),
            Some(BudgetRefusal::TokenBucket(ms(900)))
        );
        assert_eq!(b.check(ms(1_000), 20), None);
        b.charge(20);
        // The window rolled at 1 s; the bucket reports 600/min, the token bucket is empty.
        let (req, tok) = b.observe(ms(1_000));
        assert_eq!(req.and_then(|r| r.limit), Some(600));
        assert_eq!(tok.and_then(|t| t.remaining), Some(0));
    }

    #[test]
    fn fixed_window_refuses_until_it_rolls() {
        let mut b = Budgets::new(
            Some(&FixedWindowConfig {
                limit: 2,
                window_s: 6.0,
            }),
            None,
            None,
        );
        for _ in 0..2 {
            assert_eq!(b.check(ms(500), 0), None);
            b.charge(0);
        }
        assert_eq!(b.check(ms(6_000), 0), Some(BudgetRefusal::Window));
        let (req, _) = b.observe(ms(6_000));
        assert_eq!(
            req,
            Some(WindowObservation {
                limit: Some(2),
                remaining: Some(0),
                reset_after: Some(ms(500)),
            })
        );
        assert_eq!(b.check(ms(6_500), 0), None, "next window from 6.5 s");
        assert_eq!(BudgetRefusal::Window.retry_after(), None);
        assert_eq!(
            BudgetRefusal::TokenBucket(ms(1)).signal(),
            RateLimitSignal::TokenWindow
        );
    }
}
