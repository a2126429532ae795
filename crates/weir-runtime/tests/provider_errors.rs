//! ProviderError classification: HTTP status → kind, retryability, and the release outcome.

use std::time::Duration;
use weir_contracts::RequestReleaseOutcomeKind as Out;
use weir_runtime::provider::{
    parse_retry_after_seconds, release_outcome_of, ProviderError, ProviderErrorKind as K,
    ProviderResponse,
};

#[test]
fn http_status_classification() {
    let cases: &[(u16, K)] = &[
        (429, K::RateLimited),
        (503, K::Overloaded),
        (408, K::Timeout),
        (500, K::ServerError),
        (502, K::ServerError),
        (504, K::ServerError),
        (400, K::Client),
        (401, K::Client),
        (403, K::Client),
        (404, K::Client),
        (413, K::Client),
        (422, K::Client),
        (418, K::Client),
        (302, K::Redirect),
        (307, K::Redirect),
        (102, K::Malformed),
    ];
    for &(status, kind) in cases {
        let e = ProviderError::from_http_status(status, None, false);
        assert_eq!(e.kind, kind, "status {status}");
        assert_eq!(e.status, Some(status));
    }
    // Quota exhaustion is a client error even on a 429: waiting does not help.
    let quota = ProviderError::from_http_status(429, Some(Duration::from_secs(5)), true);
    assert_eq!(quota.kind, K::Client);
    assert!(!quota.retryable());
    assert_eq!(quota.release_outcome().kind, Out::ProviderFailure);
}

#[test]
fn retryable_only_for_transient_kinds() {
    for kind in K::ALL {
        let expected = !matches!(
            kind,
            K::Client | K::Malformed | K::Unreachable | K::Tls | K::Redirect | K::ResponseTooLarge
        );
        assert_eq!(kind.retryable(), expected, "{kind}");
    }
    assert!(ProviderError::server_error(502).retryable());
    assert!(!ProviderError::client(401, "authentication failed").retryable());
}

#[test]
fn release_outcome_per_kind() {
    let ra = Some(Duration::from_millis(1500));

    let o = ProviderError::rate_limited(ra).release_outcome();
    assert_eq!(o.kind, Out::RateLimited);
    assert_eq!(o.retry_after_seconds, Some(1.5));
    assert_eq!(o.provider_status, Some(429));

    let o = ProviderError::rate_limited(None).release_outcome();
    assert_eq!((o.kind, o.retry_after_seconds), (Out::RateLimited, None));

    // A queueing server's 503 is saturation: rate-limit pressure, status kept.
    let o = ProviderError::overloaded(ra).release_outcome();
    assert_eq!(o.kind, Out::RateLimited);
    assert_eq!(o.retry_after_seconds, Some(1.5));
    assert_eq!(o.provider_status, Some(503));

    let o = ProviderError::timeout().release_outcome();
    assert_eq!((o.kind, o.provider_status), (Out::ProviderTimeout, None));
    let o = ProviderError::from_http_status(408, None, false).release_outcome();
    assert_eq!(
        (o.kind, o.provider_status),
        (Out::ProviderTimeout, Some(408))
    );

    for (e, status) in [
        (ProviderError::server_error(500), Some(500)),
        (ProviderError::connection(), None),
        (
            ProviderError::client(422, "unprocessable entity"),
            Some(422),
        ),
        (
            ProviderError::malformed(Some(200), "missing choices"),
            Some(200),
        ),
    ] {
        let o = e.release_outcome();
        assert_eq!(o.kind, Out::ProviderFailure, "{e:?}");
        assert_eq!(o.provider_status, status);
        assert_eq!(o.retry_after_seconds, None);
        assert_eq!(
            o.diagnostics.get("provider_error_kind"),
            Some(&serde_json::Value::from(e.kind.as_str()))
        );
    }

    let ok = ProviderResponse::text("hi");
    assert_eq!(ok.release_outcome().kind, Out::Success);
    assert_eq!(release_outcome_of(&Ok(ok)).kind, Out::Success);
    assert_eq!(
        release_outcome_of(&Err(ProviderError::timeout())).kind,
        Out::ProviderTimeout
    );
}

#[test]
fn messages_are_fixed_and_body_free() {
    let e = ProviderError::from_http_status(401, None, false);
    assert_eq!(
        e.to_string(),
        "provider rejected the request (401): authentication failed"
    );
    assert_eq!(
        ProviderError::server_error(502).to_string(),
        "provider server error (502)"
    );
}

#[test]
fn retry_after_header_parsing() {
    assert_eq!(parse_retry_after_seconds("2"), Some(Duration::from_secs(2)));
    assert_eq!(
        parse_retry_after_seconds(" 1.5 "),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(parse_retry_after_seconds("0"), None);
    assert_eq!(parse_retry_after_seconds("-3"), None);
    assert_eq!(parse_retry_after_seconds("inf"), None);
    assert_eq!(
        parse_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"),
        None
    );
}
