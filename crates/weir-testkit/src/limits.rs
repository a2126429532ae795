//! The loopback server's rate limiters as pure state machines on an injected clock (`now` is the
//! time since the server started): sporadic 429s, a fixed window, a request token bucket and a
//! tokens-per-minute bucket, plus the OpenAI-form `x-ratelimit-*` headers they report.
//!
//! Pure so the unit tests drive them with exact instants; the server holds one [`Limiter`] under
//! a std mutex and calls [`Limiter::admit`] once per request.

use crate::config::{FixedWindow, RequestBucket, Sporadic429, TokenBucket};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Why a limiter refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A sporadic 429 (a random draw, unrelated to load).
    Sporadic,
    /// The fixed window is used up until `reset_after`.
    Window { reset_after: Duration },
    /// The request bucket holds less than one request; one is back after `retry_after`.
    RequestBucket { retry_after: Duration },
    /// The token bucket holds fewer than the request's tokens; enough are back after `retry_after`.
    TokenBucket { retry_after: Duration },
}

/// One budget as the headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// `x-ratelimit-limit-*`.
    pub limit: u64,
    /// `x-ratelimit-remaining-*`.
    pub remaining: u64,
    /// `x-ratelimit-reset-*` (time until the budget is full again).
    pub reset_after: Duration,
}

/// What [`Limiter::admit`] decided, with the budgets as they stand after the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// `None`: admitted (every budget was charged).
    pub refusal: Option<Refusal>,
    /// Request budget (bucket, else window), when one is configured.
    pub requests: Option<Budget>,
    /// Token budget, when a token bucket is configured.
    pub tokens: Option<Budget>,
}

/// A continuously refilled bucket: `level` units, at most `burst`, refilled at `per_second`.
#[derive(Debug, Clone)]
struct Bucket {
    per_second: f64,
    burst: f64,
    level: f64,
    last: Duration,
    /// What the header reports as the limit (per minute).
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

    /// Time until `amount` units are available (zero when they are now).
    fn wait_for(&self, amount: f64) -> Duration {
        let missing = amount.min(self.burst) - self.level;
        if missing <= 0.0 || self.per_second <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(missing / self.per_second).unwrap_or(Duration::MAX)
    }

    fn budget(&self) -> Budget {
        Budget {
            limit: self.limit_per_minute,
            remaining: self.level.max(0.0).floor() as u64,
            reset_after: self.wait_for(self.burst),
        }
    }
}

/// N requests per window of T, windows aligned on the first request.
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
        if self.length.is_zero() {
            return;
        }
        if now >= start + self.length {
            // Jump to the window holding `now` (windows tile time from the first request).
            let n = ((now - start).as_nanos() / self.length.as_nanos()) as u32;
            self.start = Some(start + self.length * n);
            self.used = 0;
        }
    }

    fn reset_after(&self, now: Duration) -> Duration {
        self.start
            .map_or(Duration::ZERO, |s| (s + self.length).saturating_sub(now))
    }

    fn budget(&self, now: Duration) -> Budget {
        Budget {
            limit: self.limit,
            remaining: self.limit.saturating_sub(self.used),
            reset_after: self.reset_after(now),
        }
    }
}

/// Every configured limiter of one server.
#[derive(Debug)]
pub(crate) struct Limiter {
    sporadic: Option<(f64, ChaCha8Rng)>,
    window: Option<Window>,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl Limiter {
    /// Builds the limiters that are configured (all full at `now = 0`).
    pub fn new(
        sporadic: Option<&Sporadic429>,
        window: Option<&FixedWindow>,
        requests: Option<&RequestBucket>,
        tokens: Option<&TokenBucket>,
    ) -> Self {
        Self {
            sporadic: sporadic.map(|s| (s.probability, ChaCha8Rng::seed_from_u64(s.seed))),
            window: window.map(|w| Window {
                limit: u64::from(w.limit),
                length: w.window,
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

    /// True when no limiter is configured (the server skips the lock).
    pub fn is_empty(&self) -> bool {
        self.sporadic.is_none()
            && self.window.is_none()
            && self.requests.is_none()
            && self.tokens.is_none()
    }

    /// Decides one request costing `tokens` at `now`: sporadic draw, then window, request bucket
    /// and token bucket. A refused request charges nothing; an admitted one charges every budget.
    pub fn admit(&mut self, now: Duration, tokens: u64) -> Verdict {
        if let Some(w) = self.window.as_mut() {
            w.roll(now);
        }
        if let Some(b) = self.requests.as_mut() {
            b.refill(now);
        }
        if let Some(b) = self.tokens.as_mut() {
            b.refill(now);
        }
        let refusal = self.refusal(now, tokens);
        if refusal.is_none() {
            if let Some(w) = self.window.as_mut() {
                w.used += 1;
            }
            if let Some(b) = self.requests.as_mut() {
                b.level -= 1.0;
            }
            if let Some(b) = self.tokens.as_mut() {
                // A request larger than the burst drains the bucket (it may go negative: the
                // next requests wait for the debt, as a provider charging max_tokens would).
                b.level -= tokens as f64;
            }
        }
        Verdict {
            refusal,
            requests: self
                .requests
                .as_ref()
                .map(Bucket::budget)
                .or_else(|| self.window.as_ref().map(|w| w.budget(now))),
            tokens: self.tokens.as_ref().map(Bucket::budget),
        }
    }

    fn refusal(&mut self, now: Duration, tokens: u64) -> Option<Refusal> {
        if let Some((p, rng)) = self.sporadic.as_mut() {
            // One draw per request whatever the outcome, so the stream depends on arrivals only.
            if rng.gen::<f64>() < *p {
                return Some(Refusal::Sporadic);
            }
        }
        if let Some(w) = &self.window {
            if w.used >= w.limit {
                return Some(Refusal::Window {
                    reset_after: w.reset_after(now),
                });
            }
        }
        if let Some(b) = &self.requests {
            if b.level < 1.0 {
                return Some(Refusal::RequestBucket {
                    retry_after: b.wait_for(1.0),
                });
            }
        }
        if let Some(b) = &self.tokens {
            // A request larger than the whole burst is admitted on a full bucket.
            if b.level < (tokens as f64).min(b.burst) {
                return Some(Refusal::TokenBucket {
                    retry_after: b.wait_for(tokens as f64),
                });
            }
        }
        None
    }
}

/// `d` in whole milliseconds, rounded up (a wait is never reported shorter than it is).
pub(crate) fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// An OpenAI-style reset duration: `250ms` below a second, `1.5s` below a minute, else `6m0s`.
pub(crate) fn format_reset(d: Duration) -> String {
    let ms = u128::from(ceil_millis(d));
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = |ms: u128| {
        if ms.is_multiple_of(1_000) {
            format!("{}s", ms / 1_000)
        } else {
            let s = format!("{}.{:03}", ms / 1_000, ms % 1_000);
            format!("{}s", s.trim_end_matches('0'))
        }
    };
    if ms < 60_000 {
        secs(ms)
    } else {
        format!("{}m{}", ms / 60_000, secs(ms % 60_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn request_bucket_admits_burst_then_paces_at_rate() {
        let cfg = RequestBucket {
            per_second: 100.0,
            burst: 5,
        };
        let mut l = Limiter::new(None, None, Some(&cfg), None);
        let admitted = (0..8)
            .filter(|_| l.admit(Duration::ZERO, 0).refusal.is_none())
            .count();
        assert_eq!(admitted, 5, "the burst, nothing more at t = 0");
        let v = l.admit(Duration::ZERO, 0);
        assert_eq!(
            v.refusal,
            Some(Refusal::RequestBucket {
                retry_after: ms(10)
            })
        );
        let b = v.requests.expect("request budget");
        assert_eq!((b.limit, b.remaining, b.reset_after), (6_000, 0, ms(50)));
        // One token per 10 ms afterwards.
        assert!(l.admit(ms(10), 0).refusal.is_none());
        assert!(l.admit(ms(10), 0).refusal.is_some());
        let admitted_in_a_second = (1..=100)
            .filter(|i| l.admit(ms(10 + 10 * i), 0).refusal.is_none())
            .count();
        assert_eq!(admitted_in_a_second, 100);
    }

    #[test]
    fn fixed_window_refuses_past_n_until_the_window_rolls() {
        let cfg = FixedWindow {
            limit: 3,
            window: Duration::from_secs(6),
        };
        let mut l = Limiter::new(None, Some(&cfg), None, None);
        // The window starts at the first request (t = 1 s).
        for _ in 0..3 {
            assert!(l.admit(Duration::from_secs(1), 0).refusal.is_none());
        }
        let v = l.admit(ms(6_500), 0);
        assert_eq!(
            v.refusal,
            Some(Refusal::Window {
                reset_after: ms(500)
            })
        );
        assert_eq!(v.requests.map(|b| b.remaining), Some(0));
        let v = l.admit(Duration::from_secs(7), 0);
        assert!(v.refusal.is_none(), "new window at 7 s");
        assert_eq!(v.requests.map(|b| (b.limit, b.remaining)), Some((3, 2)));
        // Skipping two windows lands in the window that holds `now`.
        assert!(l.admit(Duration::from_secs(20), 0).refusal.is_none());
        assert_eq!(
            l.admit(Duration::from_secs(20), 0)
                .requests
                .map(|b| b.reset_after),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn token_bucket_charges_request_tokens() {
        let cfg = TokenBucket {
            tokens_per_minute: 6_000,
            burst: 300,
        };
        let mut l = Limiter::new(None, None, None, Some(&cfg));
        assert!(l.admit(Duration::ZERO, 200).refusal.is_none());
        let v = l.admit(Duration::ZERO, 200);
        // 100 left, 100 more needed at 100 tokens/s.
        assert_eq!(
            v.refusal,
            Some(Refusal::TokenBucket {
                retry_after: Duration::from_secs(1)
            })
        );
        let t = v.tokens.expect("token budget");
        assert_eq!(
            (t.limit, t.remaining, t.reset_after),
            (6_000, 100, ms(2_000))
        );
        assert!(l.admit(Duration::from_secs(1), 200).refusal.is_none());
        // A request above the burst passes on a full bucket and leaves a debt.
        assert!(l.admit(Duration::from_secs(10), 1_000).refusal.is_none());
        assert!(l.admit(Duration::from_secs(10), 1).refusal.is_some());
    }

    #[test]
    fn sporadic_refusals_follow_the_seed_and_the_probability() {
        let cfg = Sporadic429 {
            probability: 0.05,
            seed: 9,
        };
        let draws = |seed| {
            let mut l = Limiter::new(
                Some(&Sporadic429 {
                    probability: cfg.probability,
                    seed,
                }),
                None,
                None,
                None,
            );
            (0..10_000)
                .map(|i| l.admit(ms(i), 0).refusal.is_some())
                .collect::<Vec<_>>()
        };
        let a = draws(9);
        assert_eq!(a, draws(9), "seeded");
        let refused = a.iter().filter(|r| **r).count();
        assert!((400..=600).contains(&refused), "{refused} of 10,000 at 5 %");
        assert_ne!(a, draws(10));
    }

    #[test]
    fn refused_requests_charge_nothing() {
        let window = FixedWindow {
            limit: 10,
            window: Duration::from_secs(1),
        };
        let bucket = RequestBucket {
            per_second: 1.0,
            burst: 2,
        };
        let mut l = Limiter::new(None, Some(&window), Some(&bucket), None);
        assert!(l.admit(Duration::ZERO, 0).refusal.is_none());
        assert!(l.admit(Duration::ZERO, 0).refusal.is_none());
        for _ in 0..5 {
            assert!(l.admit(Duration::ZERO, 0).refusal.is_some());
        }
        assert_eq!(l.window.as_ref().map(|w| w.used), Some(2));
    }

    #[test]
    fn reset_durations_use_the_openai_form() {
        assert_eq!(format_reset(ms(250)), "250ms");
        assert_eq!(format_reset(Duration::from_micros(1_500)), "2ms");
        assert_eq!(format_reset(ms(1_000)), "1s");
        assert_eq!(format_reset(ms(1_500)), "1.5s");
        assert_eq!(format_reset(ms(360_000)), "6m0s");
        assert_eq!(format_reset(ms(61_250)), "1m1.25s");
        assert_eq!(format_reset(Duration::ZERO), "0ms");
    }
}
