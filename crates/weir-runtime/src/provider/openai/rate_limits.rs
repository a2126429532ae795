//! Rate-limit headers of any response (2xx and errors) into a `RateLimitObservation`: the
//! OpenAI form (`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`), LiteLLM's (the same
//! names, resets as numbers or absent; upstream headers forwarded as `llm_provider-x-ratelimit-*`)
//! and Anthropic's (`anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
//! {limit,remaining,reset}`, resets as RFC 3339 times).
//!
//! Values that are placeholders (`-1`, a limit of `0`, unparseable text) are dropped, so an
//! observation only ever says what the provider actually reported.

use reqwest::header::{HeaderMap, DATE};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weir_contracts::{RateLimitObservation, WindowObservation};

/// Numbers above this are Unix times (seconds), not durations: 1e9 s is 2001-09-09.
const EPOCH_THRESHOLD_SECONDS: f64 = 1e9;

/// Every window the headers report, or `None` when they report none.
///
/// Resets given as absolute times (RFC 3339, Unix seconds) are made relative to the response's
/// `Date` header when it has one (the server's own clock, so client clock skew does not matter;
/// one-second resolution makes the reset read up to 1 s late — the safe side), else to `now`.
pub fn rate_limits_from_headers(
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<RateLimitObservation> {
    // Most responses of most servers carry no rate-limit header: one pass over the names
    // spares them the lookups below.
    if !headers.keys().any(|k| k.as_str().contains("ratelimit")) {
        return None;
    }
    let reference = headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
        .unwrap_or(now);
    let text = |name: &str| -> Option<&str> {
        headers
            .get(name)
            .or_else(|| headers.get(format!("llm_provider-{name}")))
            .and_then(|v| v.to_str().ok())
    };
    let openai = |window: &str| WindowObservation {
        limit: text(&format!("x-ratelimit-limit-{window}")).and_then(parse_count),
        remaining: text(&format!("x-ratelimit-remaining-{window}")).and_then(parse_count),
        reset_after: text(&format!("x-ratelimit-reset-{window}"))
            .and_then(|v| parse_reset_value(v, reference)),
    };
    let anthropic = |window: &str| WindowObservation {
        limit: text(&format!("anthropic-ratelimit-{window}-limit")).and_then(parse_count),
        remaining: text(&format!("anthropic-ratelimit-{window}-remaining")).and_then(parse_count),
        reset_after: text(&format!("anthropic-ratelimit-{window}-reset"))
            .and_then(|v| parse_reset_value(v, reference)),
    };
    let observation = RateLimitObservation {
        requests: clean(merge(openai("requests"), anthropic("requests"))),
        tokens: clean(merge(openai("tokens"), anthropic("tokens"))),
        input_tokens: clean(anthropic("input-tokens")),
        output_tokens: clean(anthropic("output-tokens")),
    };
    (!observation.is_empty()).then_some(observation)
}

/// `a`'s parts, missing ones filled from `b`.
fn merge(a: WindowObservation, b: WindowObservation) -> WindowObservation {
    WindowObservation {
        limit: a.limit.or(b.limit),
        remaining: a.remaining.or(b.remaining),
        reset_after: a.reset_after.or(b.reset_after),
    }
}

/// A limit of 0 is a placeholder (no real window has size 0): the whole window is unknown then.
fn clean(w: WindowObservation) -> WindowObservation {
    if w.limit == Some(0) {
        WindowObservation::default()
    } else {
        w
    }
}

/// A non-negative count (`"60"`, `"59.0"`); negative placeholders and text give `None`.
pub fn parse_count(value: &str) -> Option<u64> {
    let v = value.trim();
    if let Ok(n) = v.parse::<u64>() {
        return Some(n);
    }
    let f: f64 = v.parse().ok()?;
    // `as` saturates: absurdly large counts become u64::MAX rather than wrapping.
    (f.is_finite() && f >= 0.0).then_some(f.floor() as u64)
}

/// A reset value in any form seen in the wild, as a duration from `reference` (zero when the
/// reset is already past):
/// a Go-style duration (`"1s"`, `"6m0s"`, `"12ms"`, `"1h2m3.5s"`), plain seconds (`"20"`,
/// `"0.5"`), Unix seconds (numbers above 1e9), or an RFC 3339 time (`2026-01-01T00:00:05Z`,
/// offsets and fractions allowed).
pub fn parse_reset_value(value: &str, reference: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Some(d) = parse_go_duration(v) {
        return Some(d);
    }
    if let Ok(f) = v.parse::<f64>() {
        if !f.is_finite() || f < 0.0 {
            return None;
        }
        if f > EPOCH_THRESHOLD_SECONDS {
            let at = UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(f).ok()?)?;
            return Some(at.duration_since(reference).unwrap_or(Duration::ZERO));
        }
        return Duration::try_from_secs_f64(f).ok();
    }
    let at = parse_rfc3339(v)?;
    Some(at.duration_since(reference).unwrap_or(Duration::ZERO))
}

/// A Go-style duration (`"1s"`, `"6m0s"`, `"250ms"`, `"1h2m3.5s"`, `"0s"`): number–unit pairs
/// with units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`. Zero is allowed; a bare number is not.
pub fn parse_go_duration(value: &str) -> Option<Duration> {
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
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += amount * scale;
        rest = tail;
    }
    if !total.is_finite() || total < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// An RFC 3339 date-time (`2026-01-01T00:00:05Z`, `…T00:00:05.250+02:00`; `t`/space separator
/// and lower-case `z` accepted). Hand-written (about forty lines) because `httpdate` reads only
/// HTTP-dates and the small crates that read RFC 3339 reject numeric offsets.
pub fn parse_rfc3339(value: &str) -> Option<SystemTime> {
    let b = value.trim().as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let frac = &rest[1..=digits];
        let mut scaled = 0u64;
        for (i, d) in frac.iter().take(9).enumerate() {
            scaled += u64::from(d - b'0') * 10u64.pow(8 - i as u32);
        }
        nanos = u32::try_from(scaled).ok()?;
        rest = &rest[1 + digits..];
    }
    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = num(&[*h1, *h2])?;
            let m = num(&[*m1, *m2])?;
            let o = h * 3600 + m * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_seconds;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn go_durations() {
        let cases = [
            ("1s", 1.0),
            ("6m0s", 360.0),
            ("12ms", 0.012),
            ("1h2m3.5s", 3723.5),
            ("0s", 0.0),
            ("1h30m", 5400.0),
            ("250us", 0.00025),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_go_duration(text),
                Some(Duration::from_secs_f64(secs)),
                "{text}"
            );
        }
        for bad in ["", "5", "s", "5 parsecs", "1d", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(at(0)));
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:05Z"),
            Some(at(1_767_225_605))
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T02:00:05+02:00"),
            Some(at(1_767_225_605))
        );
        assert_eq!(
            parse_rfc3339("2025-12-31T23:00:05-01:00"),
            Some(at(1_767_225_605))
        );
        assert_eq!(
            parse_rfc3339("2026-01-01t00:00:05.250z"),
            Some(at(1_767_225_605) + Duration::from_millis(250))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00Z"),
            Some(at(1_709_208_000))
        );
        for bad in [
            "",
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "Thu, 01 Jan 2026 00:00:05 GMT",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn reset_values_in_every_form() {
        let now = at(1_767_225_600);
        let d = |v: &str| parse_reset_value(v, now);
        assert_eq!(d("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(d("20"), Some(Duration::from_secs(20)));
        assert_eq!(d("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(d("1767225605"), Some(Duration::from_secs(5)));
        assert_eq!(d("2026-01-01T00:00:05Z"), Some(Duration::from_secs(5)));
        assert_eq!(d("2025-12-31T23:59:00Z"), Some(Duration::ZERO), "past: now");
        assert_eq!(d("-1"), None);
        assert_eq!(d("soon"), None);
    }

    #[test]
    fn openai_headers_on_any_response() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "29000"),
            ("x-ratelimit-reset-tokens", "2s"),
        ]);
        let o = rate_limits_from_headers(&h, at(0)).expect("observed");
        assert_eq!(
            o.requests,
            WindowObservation {
                limit: Some(500),
                remaining: Some(499),
                reset_after: Some(Duration::from_millis(120)),
            }
        );
        assert_eq!(o.tokens.limit, Some(30_000));
        assert_eq!(o.tokens.remaining, Some(29_000));
        assert_eq!(o.tokens.reset_after, Some(Duration::from_secs(2)));
        assert!(o.input_tokens.is_empty() && o.output_tokens.is_empty());
        assert_eq!(rate_limits_from_headers(&HeaderMap::new(), at(0)), None);
    }

    #[test]
    fn anthropic_headers_relative_to_the_date_header() {
        let now = at(1_767_225_600);
        let h = headers(&[
            ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:02Z"),
            ("anthropic-ratelimit-input-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "39000"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2026-01-01T00:00:01.500Z",
            ),
            ("anthropic-ratelimit-output-tokens-remaining", "8000"),
            ("anthropic-ratelimit-tokens-remaining", "47000"),
        ]);
        // The client's clock runs 10 s ahead: the Date header wins.
        let o = rate_limits_from_headers(&h, now + Duration::from_secs(10)).expect("observed");
        assert_eq!(o.requests.limit, Some(50));
        assert_eq!(o.requests.remaining, Some(0));
        assert_eq!(o.requests.reset_after, Some(Duration::from_secs(2)));
        assert_eq!(
            o.input_tokens.reset_after,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(o.output_tokens.remaining, Some(8000));
        assert_eq!(o.tokens.remaining, Some(47_000));
        // Without a Date header the client's clock is the reference.
        let h = headers(&[("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:02Z")]);
        let o = rate_limits_from_headers(&h, now).expect("observed");
        assert_eq!(o.requests.reset_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn litellm_forms_and_placeholders() {
        // LiteLLM's own limits: remaining + limit, no reset.
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "299"),
            ("x-ratelimit-limit-requests", "300"),
        ]);
        let o = rate_limits_from_headers(&h, at(0)).expect("observed");
        assert_eq!(o.requests.remaining, Some(299));
        assert_eq!(o.requests.reset_after, None);
        // An upstream's headers forwarded with LiteLLM's prefix.
        let h = headers(&[("llm_provider-x-ratelimit-remaining-tokens", "1000")]);
        let o = rate_limits_from_headers(&h, at(0)).expect("observed");
        assert_eq!(o.tokens.remaining, Some(1000));
        // Placeholders: -1 and a zero limit report nothing.
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "-1"),
            ("x-ratelimit-limit-tokens", "0"),
            ("x-ratelimit-remaining-tokens", "0"),
        ]);
        assert_eq!(rate_limits_from_headers(&h, at(0)), None);
        assert_eq!(parse_count("59.0"), Some(59));
        assert_eq!(parse_count("many"), None);
    }
}
