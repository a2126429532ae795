//! Unit tests of the limit algorithms and their wrappers (driven through `DomainLimit`).

use super::goodput::LossWindow;
use super::*;
use crate::config::RequestAdmissionPolicy;
use weir_contracts::RequestDomain;

fn domain(config: &RequestAdmissionConfig, limit: u32) -> DomainLimit {
    let key = RequestResourceKey::new("p", "m", RequestDomain::Chat).unwrap();
    DomainLimit::new(key, limit, true, config, None, Instant::now())
}

/// Feeds one release with the domain's current in-flight count.
fn apply_outcome(
    config: &RequestAdmissionConfig,
    s: &mut DomainLimit,
    mut f: ReleaseFacts,
) -> Transition {
    f.in_flight = s.in_flight;
    s.apply_release(config, f)
}

fn facts(kind: RequestReleaseOutcomeKind, admitted: u32, now: Instant) -> ReleaseFacts {
    ReleaseFacts {
        kind,
        retry_after_seconds: None,
        signal: None,
        admitted_limit: admitted,
        admitted_in_flight: admitted,
        in_flight: 0,
        effective_max: 4,
        ramp_target: 4,
        now,
        acquired_at: now,
    }
}

#[test]
fn plan_aimd_decreases_once_per_cascade() {
    let config = RequestAdmissionConfig {
        policy: RequestAdmissionPolicy::PlanAimd,
        multiplicative_decrease_factor: 0.5,
        ..RequestAdmissionConfig::default()
    };
    let now = Instant::now();
    let mut s = domain(&config, 4);
    s.in_flight = 3;
    let t = apply_outcome(
        &config,
        &mut s,
        facts(RequestReleaseOutcomeKind::RateLimited, 4, now),
    );
    assert_eq!(t.decreased, Some((4, 2)));
    assert_eq!(s.core().rate_limit_ceiling, 4);
    // Same cascade: admitted at 4 > current 2.
    let t = apply_outcome(
        &config,
        &mut s,
        facts(RequestReleaseOutcomeKind::RateLimited, 4, now),
    );
    assert_eq!(t.decreased, None);
    assert_eq!(s.current(), 2);
    assert_eq!(s.core().consecutive_rate_limits, 2);
    // A new cascade (admitted at the lowered limit) decreases again.
    let t = apply_outcome(
        &config,
        &mut s,
        facts(RequestReleaseOutcomeKind::RateLimited, 2, now),
    );
    assert_eq!(t.decreased, Some((2, 1)));
}

#[test]
fn goodput_falls_to_survivors_and_always_decreases_on_a_new_cascade() {
    let config = RequestAdmissionConfig::default();
    let now = Instant::now();
    let mut s = domain(&config, 128);
    s.in_flight = 127;
    let mut f = facts(RequestReleaseOutcomeKind::RateLimited, 128, now);
    f.effective_max = 128;
    f.retry_after_seconds = Some(0.5);
    assert_eq!(
        apply_outcome(&config, &mut s, f).decreased,
        Some((128, 127))
    );
    for survivors in (32..127).rev() {
        s.in_flight = survivors;
        apply_outcome(&config, &mut s, f);
    }
    assert_eq!(s.current(), 32);
    assert!(s.algorithm.next_deadline().is_some(), "a plateau holds");
    // A lone rate limit at low demand falls at most to the plan's factor.
    let mut s = domain(&config, 100);
    s.in_flight = 0;
    f.admitted_limit = 100;
    apply_outcome(&config, &mut s, f);
    assert_eq!(s.current(), 75);
}

fn goodput_state_serving(config: &RequestAdmissionConfig, limit: u32, served: u32) -> DomainLimit {
    // A domain that has been serving `served` calls at once successfully.
    let now = Instant::now();
    let mut s = domain(config, limit);
    for _ in 0..64 {
        s.in_flight = served - 1;
        let mut f = facts(RequestReleaseOutcomeKind::Success, limit, now);
        f.admitted_in_flight = served;
        f.effective_max = limit;
        apply_outcome(config, &mut s, f);
    }
    s.in_flight = served;
    s
}

fn rate_limited(admitted_in_flight: u32, limit: u32, ra: Option<f64>) -> ReleaseFacts {
    let mut f = facts(
        RequestReleaseOutcomeKind::RateLimited,
        limit,
        Instant::now(),
    );
    f.admitted_in_flight = admitted_in_flight;
    f.effective_max = limit;
    f.retry_after_seconds = ra;
    f
}

#[test]
fn window_signals_never_decrease_or_cool_down_under_either_policy() {
    for policy in [
        RequestAdmissionPolicy::PlanAimd,
        RequestAdmissionPolicy::default(),
    ] {
        let config = RequestAdmissionConfig {
            policy,
            ..RequestAdmissionConfig::default()
        };
        let mut s = goodput_state_serving(&config, 32, 32);
        for signal in [RateLimitSignal::RequestWindow, RateLimitSignal::TokenWindow] {
            for _ in 0..100 {
                let mut f = rate_limited(32, 32, Some(5.0));
                f.signal = Some(signal);
                let t = apply_outcome(&config, &mut s, f);
                assert_eq!(t.rate_limit_class, Some(RateLimitClass::Window));
                assert_eq!((t.decreased, t.cooldown), (None, None));
            }
        }
        assert_eq!(s.current(), 32);
        assert!(s.cooldown_end().is_none() && s.algorithm.next_deadline().is_none());
    }
}

#[test]
fn goodput_classifies_unexplained_rate_limits_by_evidence() {
    let config = RequestAdmissionConfig::default();
    // Admitted at 10 while 32 were recently served: isolated, even with a Retry-After.
    let mut s = goodput_state_serving(&config, 32, 32);
    let t = apply_outcome(&config, &mut s, rate_limited(10, 32, Some(1.0)));
    assert_eq!(t.rate_limit_class, Some(RateLimitClass::Isolated));
    assert_eq!((t.decreased, t.cooldown, s.current()), (None, None, 32));
    // At the limit with a Retry-After and nothing else in flight: concurrency, as the plan
    // (decrease + cooldown).
    s.in_flight = 0;
    let t = apply_outcome(&config, &mut s, rate_limited(32, 32, Some(1.0)));
    assert_eq!(
        t.rate_limit_class,
        Some(RateLimitClass::Concurrency { cooldown: true })
    );
    assert!(t.decreased.is_some() && t.cooldown == Some(Duration::from_secs(1)));
    // The same overshoot while others are still being served: the refused call waits its own
    // Retry-After; the endpoint decreases but does not pause.
    let mut s = goodput_state_serving(&config, 32, 32);
    s.in_flight = 31;
    let t = apply_outcome(&config, &mut s, rate_limited(33, 32, Some(1.0)));
    assert_eq!(
        t.rate_limit_class,
        Some(RateLimitClass::Concurrency { cooldown: false })
    );
    assert!(t.decreased.is_some());
    assert_eq!((t.cooldown, s.cooldown_end()), (None, None));
    // At the limit without a Retry-After: no cooldown ever; a decrease only once a quarter
    // of the loss window were rate limits.
    let mut s = goodput_state_serving(&config, 32, 32);
    let threshold = LossWindow::threshold(32);
    for i in 1..=threshold {
        let t = apply_outcome(&config, &mut s, rate_limited(32, 32, None));
        assert_eq!(t.cooldown, None);
        if i < threshold {
            assert_eq!(t.rate_limit_class, Some(RateLimitClass::Unconfirmed));
            assert_eq!(t.decreased, None);
        } else {
            assert_eq!(
                t.rate_limit_class,
                Some(RateLimitClass::Concurrency { cooldown: false })
            );
            assert!(t.decreased.is_some());
        }
    }
    assert!(s.cooldown_end().is_none());
    // An explicit concurrency signal is believed at once.
    let mut s = goodput_state_serving(&config, 32, 32);
    let mut f = rate_limited(5, 32, None);
    f.signal = Some(RateLimitSignal::Concurrency);
    let t = apply_outcome(&config, &mut s, f);
    assert_eq!(
        t.rate_limit_class,
        Some(RateLimitClass::Concurrency { cooldown: true })
    );
    assert_eq!(t.cooldown, Some(config.cooldown()));
}

#[test]
fn goodput_slow_start_doubles_per_round_trip_until_a_concurrency_rate_limit() {
    let config = RequestAdmissionConfig::default();
    let now = Instant::now();
    let key = RequestResourceKey::new("p", "m", RequestDomain::Chat).unwrap();
    let mut s = DomainLimit::new(key, 128, false, &config, None, now);
    assert_eq!((s.current(), s.slow_start.active()), (8, true));
    let mut f = facts(RequestReleaseOutcomeKind::Success, 8, now);
    f.effective_max = 128;
    for _ in 0..8 {
        apply_outcome(&config, &mut s, f);
    }
    assert_eq!(s.current(), 16, "one round trip doubles the limit");
    // An unconfirmed rate limit does not end slow start.
    apply_outcome(&config, &mut s, rate_limited(16, 16, None));
    assert!(s.slow_start.active());
    apply_outcome(&config, &mut s, rate_limited(16, 16, Some(0.5)));
    assert!(!s.slow_start.active());
    assert!(s.current() < 16);
}

#[test]
fn ramp_cap_four_over_ten_seconds() {
    let t0 = Instant::now();
    let ramp = Duration::from_secs(10);
    let mut r = StartupRamp::start(ramp, 4, t0);
    let mut limit = 1;
    assert_eq!(
        r.next_step(limit, 4, ramp),
        Some(t0 + Duration::from_nanos(3_333_333_334))
    );
    assert_eq!(
        r.apply(&mut limit, 4, ramp, t0 + Duration::from_secs(5)),
        Some((1, 2))
    );
    let next = r.next_step(limit, 4, ramp).unwrap();
    assert_eq!(next, t0 + Duration::from_nanos(6_666_666_667));
    // At the computed step instant the limit really rises (no early wake-up loop).
    assert_eq!(r.apply(&mut limit, 4, ramp, next), Some((2, 3)));
    assert_eq!(r.apply(&mut limit, 4, ramp, t0 + ramp), Some((3, 4)));
    assert!(!r.active());
    assert_eq!(r.next_step(limit, 4, ramp), None);
}
