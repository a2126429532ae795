//! Release-outcome transitions of the adaptive limit: the plan's AIMD and the goodput policy.
//!
//! Both policies share the contract: a rate limit always sets (extends, never shortens) the
//! cooldown, aborts the startup ramp and lowers the limit once per cascade; growth happens only
//! on successes outside cooldown and never above the effective max. They differ in how far they
//! fall and when they grow (see `plans/request-admission.md`).

use crate::config::{GoodputPolicyConfig, RequestAdmissionConfig, RequestAdmissionPolicy};
use crate::limit::{AdaptiveRequestLimitState, Plateau};
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::RequestReleaseOutcomeKind;

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
}

/// Facts about the released lease the policy needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReleaseFacts {
    pub kind: RequestReleaseOutcomeKind,
    pub retry_after_seconds: Option<f64>,
    /// The domain limit when the lease was admitted (cascade detection).
    pub admitted_limit: u32,
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
    match facts.kind {
        RequestReleaseOutcomeKind::RateLimited => {
            on_rate_limited(config, state, facts, &mut t);
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

fn on_rate_limited(
    config: &RequestAdmissionConfig,
    state: &mut AdaptiveRequestLimitState,
    f: ReleaseFacts,
    t: &mut Transition,
) {
    // The ramp is aborted where it stands; AIMD takes over.
    state.ramp_started = None;
    state.consecutive_rate_limits += 1;
    state.success_streak = 0;
    state.ever_rate_limited = true;
    let cooldown = config.cooldown_for(f.retry_after_seconds);
    let until = f.now + cooldown;
    // A later, shorter Retry-After never shortens a running cooldown.
    state.blocked_until = Some(state.blocked_until.map_or(until, |b| b.max(until)));
    t.cooldown = Some(cooldown);
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
        update_plateau(g, state, prev, new_cascade, cooldown, until);
    }
}

fn update_plateau(
    g: &GoodputPolicyConfig,
    state: &mut AdaptiveRequestLimitState,
    prev: u32,
    new_cascade: bool,
    cooldown: Duration,
    until: Instant,
) {
    let base = Duration::from_secs_f64(
        g.probe_hold_min_seconds
            .max(g.probe_hold_cooldown_multiple * cooldown.as_secs_f64())
            .min(g.probe_hold_max_seconds),
    );
    let level = state.current_limit;
    let since = state.blocked_until.unwrap_or(until);
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
            t.decreased = Some((prev, next));
            t.latency_decrease = true;
            return;
        }
    }
    let window = match &config.policy {
        RequestAdmissionPolicy::PlanAimd => config.successes_until_increase,
        RequestAdmissionPolicy::Goodput(_) => {
            if let Some(p) = state.plateau {
                if state.current_limit >= p.level && f.now < p.since + p.hold {
                    // Plateau: stay just under the level where rate limits began.
                    state.success_streak = 0;
                    return;
                }
            }
            // One increase per round trip: a window of successes as large as the limit.
            state.current_limit.max(1)
        }
    };
    state.success_streak += 1;
    if state.success_streak < window {
        return;
    }
    state.success_streak = 0;
    let prev = state.current_limit;
    let next = prev
        .saturating_add(config.additive_increase_step)
        .min(f.effective_max)
        .max(prev.min(f.effective_max));
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
            admitted_limit: admitted,
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
}
