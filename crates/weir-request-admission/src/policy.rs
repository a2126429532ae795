//! Release-outcome transitions of the adaptive limit: the plan's AIMD and the goodput policy.
//!
//! Both policies share the contract: a rate limit always sets (extends, never shortens) the
//! cooldown, aborts the startup ramp and lowers the limit once per cascade; growth happens only
//! on successes outside cooldown and never above the effective max. They differ in how far they
//! fall and when they grow (see `plans/request-admission.md`).

use crate::config::{GoodputPolicyConfig, RequestAdmissionConfig, RequestAdmissionPolicy};
use crate::limit::{AdaptiveRequestLimitState, LossWindow, Plateau};
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{RateLimitSignal, RequestReleaseOutcomeKind};

/// How the release handling read a rate limit (see `plans/request-admission.md`, "429
/// classification").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateLimitClass {
    /// Too many in flight: a decrease, and an endpoint cooldown when `cooldown`.
    Concurrency { cooldown: bool },
    /// The provider said a request or token window is exhausted: a per-request (budget) wait.
    Window,
    /// Admitted well below the concurrency that was recently succeeding: noise.
    Isolated,
    /// No Retry-After, no signal and too few rate limits in the loss window to mean
    /// concurrency: the executor's per-request backoff handles it.
    Unconfirmed,
}

impl RateLimitClass {
    /// The durable name used in `request_rate_limited` diagnostics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrency { .. } => "concurrency",
            Self::Window => "window",
            Self::Isolated => "isolated",
            Self::Unconfirmed => "unconfirmed",
        }
    }
}

/// What a release changed, for events.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Transition {
    /// `(previous, current)` after a decrease.
    pub decreased: Option<(u32, u32)>,
    /// `(previous, current)` after an increase.
    pub increased: Option<(u32, u32)>,
    /// The ceiling the limit rose above.
    pub soft_ceiling_recovered: Option<u32>,
    /// The limit reached the effective max outside cooldown.
    pub fully_recovered: bool,
    /// The cooldown the rate limit imposed.
    pub cooldown: Option<Duration>,
    /// A ramp step applied on this release.
    pub ramp: Option<(u32, u32)>,
    /// The decrease came from the latency saturation signal.
    pub latency_decrease: bool,
    /// How a rate limit was read.
    pub rate_limit_class: Option<RateLimitClass>,
}

/// Facts about the released lease the policy needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReleaseFacts {
    pub kind: RequestReleaseOutcomeKind,
    pub retry_after_seconds: Option<f64>,
    /// What the provider said about a rate limit's cause.
    pub signal: Option<RateLimitSignal>,
    /// The domain limit when the lease was admitted (cascade detection).
    pub admitted_limit: u32,
    /// The domain's in-flight count right after the lease was admitted (itself included).
    pub admitted_in_flight: u32,
    pub effective_max: u32,
    /// The startup ramp's target (the resource's initial limit).
    pub ramp_target: u32,
    pub now: Instant,
    /// When the released lease was admitted (latency samples).
    pub acquired_at: Instant,
}

/// Applies one release outcome (counters were already decremented).
pub(crate) fn apply_outcome(
    config: &RequestAdmissionConfig,
    state: &mut AdaptiveRequestLimitState,
    facts: ReleaseFacts,
) -> Transition {
    let mut t = Transition::default();
    state.last_outcome = Some(facts.kind);
    if matches!(config.policy, RequestAdmissionPolicy::Goodput(_)) {
        observe_goodput(state, &facts);
    }
    match facts.kind {
        RequestReleaseOutcomeKind::RateLimited => {
            let class = classify(config, state, &facts);
            t.rate_limit_class = Some(class);
            match class {
                RateLimitClass::Concurrency { cooldown } => {
                    on_rate_limited(config, state, facts, cooldown, &mut t);
                }
                // Not "too many in flight": no decrease, no endpoint cooldown, no plateau
                // restart; the ramp and slow start keep going.
                _ => state.consecutive_rate_limits += 1,
            }
        }
        RequestReleaseOutcomeKind::Success if !state.cooling(facts.now) => {
            if state.ramp_started.is_some() {
                t.ramp = state.apply_ramp(facts.ramp_target, config.startup_ramp(), facts.now);
                state.success_streak = 0;
                state.consecutive_rate_limits = 0;
                return t;
            }
            state.consecutive_rate_limits = 0;
            on_success(config, state, facts, &mut t);
        }
        kind => {
            t.ramp = state.apply_ramp(facts.ramp_target, config.startup_ramp(), facts.now);
            let local = matches!(
                kind,
                RequestReleaseOutcomeKind::LocalCancelled | RequestReleaseOutcomeKind::LocalTimeout
            );
            // As the reference: with nothing in flight any non-local outcome (a success during
            // cooldown included) ends the run of consecutive rate limits.
            if state.in_flight == 0 && !local {
                state.consecutive_rate_limits = 0;
            }
        }
    }
    t
}

/// The goodput policy's evidence: the success peak and the loss window.
fn observe_goodput(state: &mut AdaptiveRequestLimitState, f: &ReleaseFacts) {
    let limit = state.current_limit;
    match f.kind {
        RequestReleaseOutcomeKind::Success => {
            // What the provider served with this call: at most what was in flight when it was
            // admitted and at most what is in flight now (+1: itself, already decremented).
            let served = f.admitted_in_flight.min(state.in_flight + 1);
            state.success_peak.record(served, limit);
            state.loss.record(false, limit);
        }
        RequestReleaseOutcomeKind::RateLimited => {
            state.loss.record(true, limit);
        }
        _ => {}
    }
}

/// Reads a rate limit (see `plans/request-admission.md`, "429 classification").
fn classify(
    config: &RequestAdmissionConfig,
    state: &AdaptiveRequestLimitState,
    f: &ReleaseFacts,
) -> RateLimitClass {
    let has_retry_after = f
        .retry_after_seconds
        .is_some_and(|r| r.is_finite() && r > 0.0);
    match f.signal {
        Some(RateLimitSignal::RequestWindow | RateLimitSignal::TokenWindow) => {
            return RateLimitClass::Window;
        }
        Some(RateLimitSignal::Concurrency) => {
            return RateLimitClass::Concurrency { cooldown: true };
        }
        None => {}
    }
    match &config.policy {
        // The plan's AIMD reads every unexplained rate limit as the plan does.
        RequestAdmissionPolicy::PlanAimd => RateLimitClass::Concurrency { cooldown: true },
        RequestAdmissionPolicy::Goodput(_) => {
            let confirmed = state.loss.rate_limits() >= LossWindow::threshold(state.current_limit);
            let peak = state.success_peak.get();
            if !confirmed && f.admitted_in_flight.saturating_mul(2) < peak {
                RateLimitClass::Isolated
            } else if has_retry_after {
                RateLimitClass::Concurrency { cooldown: true }
            } else if confirmed {
                RateLimitClass::Concurrency { cooldown: false }
            } else {
                RateLimitClass::Unconfirmed
            }
        }
    }
}

fn on_rate_limited(
    config: &RequestAdmissionConfig,
    state: &mut AdaptiveRequestLimitState,
    f: ReleaseFacts,
    with_cooldown: bool,
    t: &mut Transition,
) {
    // The ramp (and slow start) is aborted where it stands; the policy takes over.
    state.ramp_started = None;
    state.slow_start = false;
    state.consecutive_rate_limits += 1;
    state.success_streak = 0;
    state.ever_rate_limited = true;
    state.loss.reset();
    let cooldown = with_cooldown.then(|| config.cooldown_for(f.retry_after_seconds));
    if let Some(cooldown) = cooldown {
        let until = f.now + cooldown;
        // A later, shorter Retry-After never shortens a running cooldown.
        state.blocked_until = Some(state.blocked_until.map_or(until, |b| b.max(until)));
        t.cooldown = Some(cooldown);
    }
    let prev = state.current_limit;
    let new_cascade = f.admitted_limit <= prev;
    if new_cascade {
        state.rate_limit_ceiling = prev;
        state.soft_ceiling_pending = true;
    }
    let factor_floor =
        ((f64::from(prev) * config.multiplicative_decrease_factor).floor() as u32).max(1);
    let next = match &config.policy {
        RequestAdmissionPolicy::PlanAimd => {
            // Leases admitted above the already-lowered limit do not decrease it again.
            if new_cascade {
                factor_floor
            } else {
                prev
            }
        }
        RequestAdmissionPolicy::Goodput(_) => {
            // Fall to the concurrency still in flight (the calls the provider was serving);
            // the first decrease of a cascade is at most as deep as the plan's factor unless
            // more rate limits of the same cascade prove the survivors are fewer.
            let survivors = state.in_flight.max(1);
            if new_cascade {
                survivors
                    .max(factor_floor)
                    .min(prev.saturating_sub(1))
                    .max(1)
            } else {
                survivors.min(prev)
            }
        }
    };
    if next < prev {
        state.current_limit = next;
        t.decreased = Some((prev, next));
    }
    if let RequestAdmissionPolicy::Goodput(g) = &config.policy {
        update_plateau(
            g,
            state,
            prev,
            new_cascade,
            cooldown,
            f.admitted_in_flight,
            f.now,
        );
    }
}

fn update_plateau(
    g: &GoodputPolicyConfig,
    state: &mut AdaptiveRequestLimitState,
    prev: u32,
    new_cascade: bool,
    cooldown: Option<Duration>,
    admitted_in_flight: u32,
    now: Instant,
) {
    let cooldown_secs = cooldown.map_or(0.0, |c| c.as_secs_f64());
    let base = Duration::from_secs_f64(
        g.probe_hold_min_seconds
            .max(g.probe_hold_cooldown_multiple * cooldown_secs)
            .min(g.probe_hold_max_seconds),
    );
    // The level is the capacity estimate: the highest concurrency recently served
    // successfully, below the limit this cascade began at, and below what was in flight when
    // this lease was admitted (the provider was full then: C ≤ admitted_in_flight − 1). The
    // limit itself may fall lower (to the survivors) and climbs back to the level fast (one
    // per success).
    if new_cascade && state.plateau.is_some_and(|p| prev <= p.level) {
        // Rate limited at or below the estimate: the capacity fell, the successes behind the
        // estimate are stale. Start over from what survives this cascade.
        state.success_peak.reset();
    }
    // Without a success to go by, the limit after the decrease is the only estimate.
    let bound = admitted_in_flight.saturating_sub(1);
    let peak = state.success_peak.get();
    let estimate = if peak == 0 { state.current_limit } else { peak };
    let mut level = estimate
        .min(state.rate_limit_ceiling.saturating_sub(1))
        .min(bound);
    if let Some(p) = state.plateau.filter(|_| !new_cascade) {
        // Later rate limits of the same cascade can only lower the estimate.
        level = level.min(p.level);
    }
    let level = level.max(1);
    let since = state.blocked_until.filter(|b| *b > now).unwrap_or(now);
    let hold = match state.plateau {
        Some(p) if new_cascade && prev > p.level && level <= p.level => {
            // A failed probe: wait twice as long before the next one.
            Duration::from_secs_f64((p.hold.as_secs_f64() * 2.0).min(g.probe_hold_max_seconds))
                .max(base)
        }
        Some(p) if !new_cascade => p.hold.max(base),
        _ => base,
    };
    state.plateau = Some(Plateau { level, since, hold });
}

fn on_success(
    config: &RequestAdmissionConfig,
    state: &mut AdaptiveRequestLimitState,
    f: ReleaseFacts,
    t: &mut Transition,
) {
    if let Some(tracker) = state.latency.as_mut() {
        // `in_flight` was already decremented: +1 is the count while this lease was held.
        let at_limit = state.in_flight + 1 >= state.current_limit;
        if let Some(next) = tracker.observe(f.acquired_at, f.now, state.current_limit, at_limit) {
            let prev = state.current_limit;
            state.current_limit = next;
            state.success_streak = 0;
            state.slow_start = false;
            t.decreased = Some((prev, next));
            t.latency_decrease = true;
            return;
        }
    }
    let (window, step) = match &config.policy {
        RequestAdmissionPolicy::PlanAimd => (
            config.successes_until_increase,
            config.additive_increase_step,
        ),
        RequestAdmissionPolicy::Goodput(_) => {
            let below_level = state.plateau.is_some_and(|p| state.current_limit < p.level);
            if state.slow_start || below_level {
                // Slow start, or climbing back to the capacity estimate: +1 per success.
                (1, 1)
            } else {
                if let Some(p) = state.plateau {
                    if f.now < p.since + p.hold {
                        // Plateau: stay at the level where rate limits began.
                        state.success_streak = 0;
                        return;
                    }
                }
                // One increase per round trip: a window of successes as large as the limit.
                (state.current_limit.max(1), config.additive_increase_step)
            }
        }
    };
    state.success_streak += 1;
    if state.success_streak < window {
        return;
    }
    state.success_streak = 0;
    let prev = state.current_limit;
    let mut next = prev
        .saturating_add(step)
        .min(f.effective_max)
        .max(prev.min(f.effective_max));
    if let Some(p) = state.plateau.filter(|p| prev < p.level) {
        // Fast recovery stops at the level; the hold decides about going above it.
        next = next.min(p.level);
    }
    if next >= f.effective_max {
        state.slow_start = false;
    }
    if next <= prev {
        return;
    }
    state.current_limit = next;
    t.increased = Some((prev, next));
    if state.soft_ceiling_pending && state.rate_limit_ceiling > 0 && next > state.rate_limit_ceiling
    {
        state.soft_ceiling_pending = false;
        t.soft_ceiling_recovered = Some(state.rate_limit_ceiling);
    }
    if next == f.effective_max && !state.cooling(f.now) {
        t.fully_recovered = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_contracts::{RequestDomain, RequestResourceKey};

    fn state(limit: u32) -> AdaptiveRequestLimitState {
        let key = RequestResourceKey::new("p", "m", RequestDomain::Chat).unwrap();
        AdaptiveRequestLimitState::new(key, limit, Duration::ZERO, Instant::now())
    }

    fn facts(kind: RequestReleaseOutcomeKind, admitted: u32, now: Instant) -> ReleaseFacts {
        ReleaseFacts {
            kind,
            retry_after_seconds: None,
            signal: None,
            admitted_limit: admitted,
            admitted_in_flight: admitted,
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
        let mut s = state(4);
        s.in_flight = 3;
        let t = apply_outcome(
            &config,
            &mut s,
            facts(RequestReleaseOutcomeKind::RateLimited, 4, now),
        );
        assert_eq!(t.decreased, Some((4, 2)));
        assert_eq!(s.rate_limit_ceiling, 4);
        // Same cascade: admitted at 4 > current 2.
        let t = apply_outcome(
            &config,
            &mut s,
            facts(RequestReleaseOutcomeKind::RateLimited, 4, now),
        );
        assert_eq!(t.decreased, None);
        assert_eq!(s.current_limit, 2);
        assert_eq!(s.consecutive_rate_limits, 2);
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
        let mut s = state(128);
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
        assert_eq!(s.current_limit, 32);
        assert_eq!(s.plateau.map(|p| p.level), Some(32));
        // A lone rate limit at low demand falls at most to the plan's factor.
        let mut s = state(100);
        s.in_flight = 0;
        f.admitted_limit = 100;
        apply_outcome(&config, &mut s, f);
        assert_eq!(s.current_limit, 75);
    }

    fn goodput_state_serving(limit: u32, served: u32) -> AdaptiveRequestLimitState {
        // A domain that has been serving `served` calls at once successfully.
        let config = RequestAdmissionConfig::default();
        let now = Instant::now();
        let mut s = state(limit);
        for _ in 0..64 {
            s.in_flight = served - 1;
            let mut f = facts(RequestReleaseOutcomeKind::Success, limit, now);
            f.admitted_in_flight = served;
            f.effective_max = limit;
            apply_outcome(&config, &mut s, f);
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
            let mut s = goodput_state_serving(32, 32);
            for signal in [RateLimitSignal::RequestWindow, RateLimitSignal::TokenWindow] {
                for _ in 0..100 {
                    let mut f = rate_limited(32, 32, Some(5.0));
                    f.signal = Some(signal);
                    let t = apply_outcome(&config, &mut s, f);
                    assert_eq!(t.rate_limit_class, Some(RateLimitClass::Window));
                    assert_eq!((t.decreased, t.cooldown), (None, None));
                }
            }
            assert_eq!(s.current_limit, 32);
            assert!(s.blocked_until.is_none() && s.plateau.is_none());
        }
    }

    #[test]
    fn goodput_classifies_unexplained_rate_limits_by_evidence() {
        let config = RequestAdmissionConfig::default();
        // Admitted at 10 while 32 were recently served: isolated, even with a Retry-After.
        let mut s = goodput_state_serving(32, 32);
        let t = apply_outcome(&config, &mut s, rate_limited(10, 32, Some(1.0)));
        assert_eq!(t.rate_limit_class, Some(RateLimitClass::Isolated));
        assert_eq!((t.decreased, t.cooldown, s.current_limit), (None, None, 32));
        // At the limit with a Retry-After: concurrency, as the plan (decrease + cooldown).
        let t = apply_outcome(&config, &mut s, rate_limited(32, 32, Some(1.0)));
        assert_eq!(
            t.rate_limit_class,
            Some(RateLimitClass::Concurrency { cooldown: true })
        );
        assert!(t.decreased.is_some() && t.cooldown == Some(Duration::from_secs(1)));
        // At the limit without a Retry-After: no cooldown ever; a decrease only once a quarter
        // of the loss window were rate limits.
        let mut s = goodput_state_serving(32, 32);
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
        assert!(s.blocked_until.is_none());
        // An explicit concurrency signal is believed at once.
        let mut s = goodput_state_serving(32, 32);
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
        let mut s = state(128);
        s.start_slow(8);
        assert_eq!((s.current_limit, s.slow_start), (8, true));
        let mut f = facts(RequestReleaseOutcomeKind::Success, 8, now);
        f.effective_max = 128;
        for _ in 0..8 {
            apply_outcome(&config, &mut s, f);
        }
        assert_eq!(s.current_limit, 16, "one round trip doubles the limit");
        // An unconfirmed rate limit does not end slow start.
        apply_outcome(&config, &mut s, rate_limited(16, 16, None));
        assert!(s.slow_start);
        apply_outcome(&config, &mut s, rate_limited(16, 16, Some(0.5)));
        assert!(!s.slow_start);
        assert!(s.current_limit < 16);
    }
}
