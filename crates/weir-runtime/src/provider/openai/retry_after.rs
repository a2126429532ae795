//! When a 429/503 says to come back, in every form seen in the wild: `retry-after-ms`,
//! `Retry-After` (delta-seconds or HTTP-date), LiteLLM's `llm_provider-retry-after(-ms)`, the
//! "Please try again in 1.2s" text of an OpenAI error body, and the reset of the exhausted
//! `x-ratelimit-*` / `anthropic-ratelimit-*` window — in that order of precedence.
//!
//! "Retry now" is a value, not an absence: a `Retry-After` HTTP-date at or before now (one-second
//! resolution makes "now + 0.5 s" read as the past), a zero delay, or a reset already passed give
//! a short jittered delay in [`RETRY_NOW_MIN`, `RETRY_NOW_MAX`] instead of `None` (which would
//! make admission fall back to its default cooldown, seconds instead of milliseconds).

use super::rate_limits::{parse_go_duration, rate_limits_from_headers};
use super::wire::ErrorBody;
use reqwest::header::HeaderMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weir_contracts::{RateLimitObservation, RateLimitSignal, WindowObservation};

/// Shortest "retry now" delay.
pub const RETRY_NOW_MIN: Duration = Duration::from_millis(50);
/// Longest "retry now" delay.
pub const RETRY_NOW_MAX: Duration = Duration::from_millis(250);

/// The provider's "retry after" from response headers alone, judged against the wall clock
/// `now` (see [`retry_after_of`]; no error body).
pub fn retry_after_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    retry_after_of(
        headers,
        now,
        &ErrorBody::default(),
        rate_limits_from_headers(headers, now).as_ref(),
    )
}

/// The provider's "retry after" for one error response.
///
/// | precedence | source | forms |
/// |---|---|---|
/// | 1 | `retry-after-ms` | milliseconds (decimals ok) |
/// | 2 | `Retry-After` | delta-seconds (decimals ok), HTTP-date |
/// | 3 | `llm_provider-retry-after-ms`, `llm_provider-retry-after` | as 1 and 2 (LiteLLM forwards the upstream's) |
/// | 4 | the body's "try again in …" | `1.2s`, `20ms`, `6m0s`, `12 seconds` |
/// | 5 | rate-limit window resets | the longest reset among exhausted windows (`remaining: 0`); else the reset of the window the body names; else the shortest reported reset |
///
/// A delay of zero, an HTTP-date at or before `now` and a reset already past mean "retry now":
/// a jittered delay in [50 ms, 250 ms] (hashed from the header text and `now`, so concurrent
/// 429s spread out; deterministic for a given input). Unparseable and negative values are
/// skipped (the next source is tried); when nothing applies the result is `None` and admission
/// uses its own cooldown.
pub fn retry_after_of(
    headers: &HeaderMap,
    now: SystemTime,
    body: &ErrorBody,
    rate_limits: Option<&RateLimitObservation>,
) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now_delay = |seed: &str| retry_now_delay(seed, now);
    for (ms_name, name) in [
        ("retry-after-ms", "retry-after"),
        ("llm_provider-retry-after-ms", "llm_provider-retry-after"),
    ] {
        if let Some(v) = text(ms_name) {
            if let Some(ms) = parse_non_negative(v) {
                return Some(nonzero_or(
                    Duration::try_from_secs_f64(ms / 1000.0).ok()?,
                    || now_delay(v),
                ));
            }
        }
        if let Some(v) = text(name) {
            if let Some(d) = parse_retry_after_value(v, now) {
                return Some(d);
            }
        }
    }
    if let Some(d) = body.retry_in {
        return Some(nonzero_or(d, || now_delay("body")));
    }
    let reset = window_reset(rate_limits?, body.signal)?;
    Some(nonzero_or(reset, || now_delay("reset")))
}

/// Parses one `Retry-After` value: delta-seconds (decimals ok), else an HTTP-date relative to
/// `now`. Zero seconds and a date at or before `now` mean "retry now" (a jittered
/// [`RETRY_NOW_MIN`]–[`RETRY_NOW_MAX`] delay); negative or unparseable values give `None`.
pub fn parse_retry_after_value(value: &str, now: SystemTime) -> Option<Duration> {
    if let Some(seconds) = parse_non_negative(value) {
        let d = Duration::try_from_secs_f64(seconds).ok()?;
        return Some(nonzero_or(d, || retry_now_delay(value, now)));
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    match at.duration_since(now) {
        Ok(d) if !d.is_zero() => Some(d),
        _ => Some(retry_now_delay(value, now)),
    }
}

/// Parses an OpenAI reset duration such as `"1s"`, `"6m0s"`, `"1h2m3.5s"` or `"250ms"`
/// (zero and unparseable values give `None`).
pub fn parse_reset_duration(value: &str) -> Option<Duration> {
    parse_go_duration(value).filter(|d| !d.is_zero())
}

/// The short, jittered delay that stands for "retry now": 50–250 ms, from an FNV-1a hash of
/// `seed` (the header text) and `now`'s nanoseconds.
pub fn retry_now_delay(seed: &str, now: SystemTime) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    for b in seed.bytes().chain(nanos.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let span = (RETRY_NOW_MAX - RETRY_NOW_MIN).as_millis() as u64 + 1;
    RETRY_NOW_MIN + Duration::from_millis(h % span)
}

/// Which window's reset to wait for (see [`retry_after_of`], row 5).
fn window_reset(o: &RateLimitObservation, signal: Option<RateLimitSignal>) -> Option<Duration> {
    let windows = [o.requests, o.tokens, o.input_tokens, o.output_tokens];
    let exhausted = windows
        .iter()
        .filter(|w| w.remaining == Some(0))
        .filter_map(|w| w.reset_after)
        .max();
    if exhausted.is_some() {
        return exhausted;
    }
    let named: Option<&[WindowObservation]> = match signal {
        Some(RateLimitSignal::RequestWindow) => Some(&windows[..1]),
        Some(RateLimitSignal::TokenWindow) => Some(&windows[1..]),
        _ => None,
    };
    if let Some(d) = named.and_then(|ws| ws.iter().filter_map(|w| w.reset_after).max()) {
        return Some(d);
    }
    windows.iter().filter_map(|w| w.reset_after).min()
}

fn parse_non_negative(value: &str) -> Option<f64> {
    let v: f64 = value.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

fn nonzero_or(d: Duration, now: impl FnOnce() -> Duration) -> Duration {
    if d.is_zero() {
        now()
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(400)
    }

    fn is_retry_now(d: Option<Duration>) -> bool {
        d.is_some_and(|d| (RETRY_NOW_MIN..=RETRY_NOW_MAX).contains(&d))
    }

    #[test]
    fn precedence_and_forms() {
        let now = now();
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        let ra = retry_after_from_headers(&headers(&[("retry-after", &date)]), now);
        // One-second resolution: the date reads 6.6 s after a now that is 0.4 s into its second.
        assert_eq!(ra, Some(Duration::from_millis(6600)));
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after_from_headers(
                &headers(&[("retry-after", "3"), ("retry-after-ms", "250")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("llm_provider-retry-after", "4")]), now),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("llm_provider-retry-after-ms", "120")]), now),
            Some(Duration::from_millis(120))
        );
        // The standard header outranks LiteLLM's forwarded one.
        assert_eq!(
            retry_after_from_headers(
                &headers(&[("retry-after", "2"), ("llm_provider-retry-after", "9")]),
                now
            ),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "-3")]), now),
            None
        );
        assert_eq!(retry_after_from_headers(&HeaderMap::new(), now), None);
    }

    #[test]
    fn past_dates_and_zero_mean_retry_now_not_none() {
        let now = now();
        for past in [
            httpdate::fmt_http_date(now - Duration::from_secs(7)),
            // "now + 0.5 s" truncated to the second: reads as the past.
            httpdate::fmt_http_date(now + Duration::from_millis(500)),
            httpdate::fmt_http_date(now),
        ] {
            let d = retry_after_from_headers(&headers(&[("retry-after", &past)]), now);
            assert!(is_retry_now(d), "{past}: {d:?}");
        }
        for (name, value) in [
            ("retry-after", "0"),
            ("retry-after-ms", "0"),
            ("llm_provider-retry-after", "0"),
        ] {
            let d = retry_after_from_headers(&headers(&[(name, value)]), now);
            assert!(is_retry_now(d), "{name}: {d:?}");
        }
        // Jitter: different instants give different delays, the same input the same one.
        let delays: std::collections::BTreeSet<Duration> = (0..32)
            .map(|i| retry_now_delay("x", now + Duration::from_nanos(i)))
            .collect();
        assert!(delays.len() > 8, "{delays:?}");
        assert_eq!(retry_now_delay("x", now), retry_now_delay("x", now));
    }

    #[test]
    fn body_text_and_window_resets() {
        let now = now();
        let body = ErrorBody {
            retry_in: Some(Duration::from_millis(1200)),
            ..ErrorBody::default()
        };
        assert_eq!(
            retry_after_of(&HeaderMap::new(), now, &body, None),
            Some(Duration::from_millis(1200))
        );
        // A header outranks the body.
        assert_eq!(
            retry_after_of(&headers(&[("retry-after", "2")]), now, &body, None),
            Some(Duration::from_secs(2))
        );
        // Resets: the exhausted window's, not the longest.
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "5000"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(
            retry_after_from_headers(&h, now),
            Some(Duration::from_secs(1))
        );
        // No window says it is exhausted: the body's named window, else the shortest reset.
        let h = headers(&[
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(
            retry_after_from_headers(&h, now),
            Some(Duration::from_secs(1))
        );
        let tokens = ErrorBody {
            signal: Some(RateLimitSignal::TokenWindow),
            ..ErrorBody::default()
        };
        let o = rate_limits_from_headers(&h, now);
        assert_eq!(
            retry_after_of(&h, now, &tokens, o.as_ref()),
            Some(Duration::from_secs(360))
        );
        // Anthropic's RFC 3339 reset of an exhausted window.
        let h = headers(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2023-11-14T22:13:23Z"),
        ]);
        assert_eq!(
            retry_after_from_headers(&h, now),
            Some(Duration::from_millis(2600))
        );
        // A reset already past: retry now.
        let h = headers(&[("x-ratelimit-reset-requests", "0s")]);
        assert!(is_retry_now(retry_after_from_headers(&h, now)));
    }

    #[test]
    fn reset_durations() {
        assert_eq!(
            parse_reset_duration("250ms"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_reset_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_reset_duration("0s"), None);
        assert_eq!(parse_reset_duration("5 parsecs"), None);
        assert_eq!(parse_reset_duration(""), None);
        assert_eq!(parse_reset_duration("s"), None);
    }
}
