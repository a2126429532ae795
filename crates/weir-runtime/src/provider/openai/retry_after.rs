//! When a 429/503 says to come back: `retry-after-ms`, `Retry-After` (delta-seconds or
//! HTTP-date) and OpenAI's `x-ratelimit-reset-*` durations, in that order of precedence.

use super::super::error::parse_retry_after_seconds;
use reqwest::header::HeaderMap;
use std::time::{Duration, SystemTime};

/// The provider's "retry after" from response headers, judged against the wall clock `now`.
///
/// Precedence: `retry-after-ms` (most precise), then `Retry-After` as delta-seconds or an
/// HTTP-date (a date in the past gives nothing), then the longest of
/// `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` (`"1s"`, `"6m0s"`, `"250ms"`).
/// Unparseable or non-positive values are ignored, so admission falls back to its own cooldown.
pub fn retry_after_from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(parse_retry_after_seconds) {
        // The value was milliseconds: parse_retry_after_seconds read it as a number.
        return Some(ms / 1000);
    }
    if let Some(v) = text("retry-after") {
        if let Some(d) = parse_retry_after_value(v, now) {
            return Some(d);
        }
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .into_iter()
        .filter_map(|h| text(h).and_then(parse_reset_duration))
        .max()
}

/// Parses one `Retry-After` value: delta-seconds, else an HTTP-date relative to `now`.
pub fn parse_retry_after_value(value: &str, now: SystemTime) -> Option<Duration> {
    if let Some(d) = parse_retry_after_seconds(value) {
        return Some(d);
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    at.duration_since(now).ok().filter(|d| !d.is_zero())
}

/// Parses an OpenAI reset duration such as `"1s"`, `"6m0s"`, `"1h2m3.5s"` or `"250ms"`.
pub fn parse_reset_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(split);
        let amount: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += amount * scale;
        rest = tail;
    }
    if !total.is_finite() || total <= 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
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

    #[test]
    fn precedence_and_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after_from_headers(
                &headers(&[("retry-after", "3"), ("retry-after-ms", "250")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after_from_headers(
                &headers(&[
                    ("x-ratelimit-reset-requests", "1s"),
                    ("x-ratelimit-reset-tokens", "6m0s")
                ]),
                now
            ),
            Some(Duration::from_secs(360))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", &past)]), now),
            None
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(retry_after_from_headers(&HeaderMap::new(), now), None);
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
