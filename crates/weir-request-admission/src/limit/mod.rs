//! Adaptive limits: the `LimitAlgorithm` trait, the algorithms (the plan's AIMD, the goodput
//! policy) as types owning their state, and `DomainLimit`, which wraps one domain's algorithm in
//! the startup ramp, slow start, the latency saturation signal and the cooldown.
//!
//! The shard only asks a `DomainLimit` for its limit, feeds it release samples and reads its next
//! deadline; a new algorithm is a new type here plus its config variant (see `algorithm_for`).

mod aimd;
mod classify;
mod cooldown;
mod goodput;
pub(crate) mod latency;
mod ramp;
mod slow_start;

pub(crate) use classify::RateLimitClass;

use crate::config::{RequestAdmissionConfig, RequestAdmissionPolicy};
use cooldown::Cooldown;
use latency::{LatencySaturationConfig, LatencyTracker};
use ramp::StartupRamp;
use slow_start::SlowStart;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{RateLimitSignal, RequestReleaseOutcomeKind, RequestResourceKey};

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

/// One release, as the limit sees it.
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
    /// The domain's in-flight count after this release.
    pub in_flight: u32,
    pub effective_max: u32,
    /// The startup ramp's target (the resource's initial limit).
    pub ramp_target: u32,
    pub now: Instant,
    /// When the released lease was admitted (latency samples).
    pub acquired_at: Instant,
}

/// State every algorithm reads and writes: the limit and the cascade bookkeeping.
#[derive(Debug, Clone, Default)]
pub(crate) struct LimitCore {
    /// The current adaptive limit.
    pub current: u32,
    /// Qualifying successes since the last change.
    pub success_streak: u32,
    /// Limit at which the last rate-limit cascade began (0 = never rate limited).
    pub rate_limit_ceiling: u32,
    /// `request_soft_ceiling_recovered` not yet emitted for the current ceiling.
    pub soft_ceiling_pending: bool,
    pub consecutive_rate_limits: u32,
    pub last_outcome: Option<RequestReleaseOutcomeKind>,
    pub ever_rate_limited: bool,
}

/// What a concurrency rate limit looks like to an algorithm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimitContext {
    /// The lease was admitted at or below the current limit (a new cascade).
    pub new_cascade: bool,
    /// The cooldown this rate limit imposed (`None`: no endpoint cooldown).
    pub cooldown: Option<Duration>,
    /// When the (possibly longer, running) cooldown ends.
    pub cooldown_end: Option<Instant>,
}

/// An adaptive-limit algorithm: owns its state; the wrappers in [`DomainLimit`] run around it.
pub(crate) trait LimitAlgorithm: fmt::Debug + Send + Sync {
    /// Reads a rate limit the provider did not explain (the signal rules come first).
    fn classify(&self, core: &LimitCore, f: &ReleaseFacts) -> RateLimitClass;
    /// Sees every release before anything else (evidence for `classify`).
    fn observe(&mut self, _core: &LimitCore, _f: &ReleaseFacts) {}
    /// A concurrency rate limit: may lower `core.current` (never raise it).
    fn on_rate_limit(&mut self, core: &mut LimitCore, f: &ReleaseFacts, cx: RateLimitContext);
    /// A success outside cooldown, ramp and slow start: the proposed next limit, if it grows.
    fn on_success(&mut self, core: &mut LimitCore, f: &ReleaseFacts) -> Option<u32>;
    /// The next instant the algorithm's own rules change by time alone (e.g. a hold's end);
    /// a release of a domain whose algorithm has one reads the clock.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// The slow-start opening limit, when the algorithm wants one.
    fn slow_start_limit(&self) -> Option<u32> {
        None
    }
}

/// The algorithm the config names.
fn algorithm_for(config: &RequestAdmissionConfig) -> Box<dyn LimitAlgorithm> {
    match &config.policy {
        RequestAdmissionPolicy::PlanAimd => Box::new(aimd::PlanAimd::new(config)),
        RequestAdmissionPolicy::Goodput(g) => Box::new(goodput::Goodput::new(config, *g)),
    }
}

/// One provider/model/domain resource: its counters, limit and wrappers.
#[derive(Debug)]
pub(crate) struct DomainLimit {
    pub resource: RequestResourceKey,
    pub in_flight: u32,
    pub waiters: u32,
    core: LimitCore,
    cooldown: Cooldown,
    ramp: StartupRamp,
    slow_start: SlowStart,
    latency: Option<LatencyTracker>,
    algorithm: Box<dyn LimitAlgorithm>,
}

impl DomainLimit {
    /// A fresh domain: the ramp starts now when enabled and the target is above 1; otherwise
    /// slow start opens when the algorithm wants it and the initial limit was not configured.
    pub fn new(
        resource: RequestResourceKey,
        initial_limit: u32,
        configured: bool,
        config: &RequestAdmissionConfig,
        latency: Option<LatencySaturationConfig>,
        now: Instant,
    ) -> Self {
        let ramp = StartupRamp::start(config.startup_ramp(), initial_limit, now);
        let algorithm = algorithm_for(config);
        let mut current = if ramp.active() {
            1
        } else {
            initial_limit.max(1)
        };
        let mut slow_start = SlowStart::default();
        if let Some(window) = algorithm.slow_start_limit().filter(|_| !configured) {
            if !ramp.active() {
                current = slow_start.open(current, window);
            }
        }
        Self {
            resource,
            in_flight: 0,
            waiters: 0,
            core: LimitCore {
                current,
                ..LimitCore::default()
            },
            cooldown: Cooldown::default(),
            ramp,
            slow_start,
            latency: latency.map(LatencyTracker::new),
            algorithm,
        }
    }

    /// The current limit (without a pending ramp step).
    pub fn current(&self) -> u32 {
        self.core.current
    }

    /// Read-only snapshot fields.
    pub fn core(&self) -> &LimitCore {
        &self.core
    }

    /// Whether the resource is cooling down at `now`.
    pub fn cooling(&self, now: Instant) -> bool {
        self.cooldown.cooling(now)
    }

    /// The end of the last cooldown.
    pub fn cooldown_end(&self) -> Option<Instant> {
        self.cooldown.end()
    }

    /// The limit at `now` including a ramp step not yet applied (pure, for snapshots).
    pub fn limit_at(&self, target: u32, ramp: Duration, now: Instant) -> u32 {
        self.ramp
            .limit_at(self.core.current, target, ramp, now)
            .unwrap_or(self.core.current)
    }

    /// Whether the startup ramp is running.
    pub fn ramping(&self) -> bool {
        self.ramp.active()
    }

    /// Applies the ramp at `now`; `(previous, current)` when the limit changed.
    pub fn refresh(&mut self, target: u32, ramp: Duration, now: Instant) -> Option<(u32, u32)> {
        self.ramp.apply(&mut self.core.current, target, ramp, now)
    }

    /// The earliest instant time alone changes admission: the cooldown's end while cooling,
    /// else the next ramp step.
    pub fn next_deadline(&self, target: u32, ramp: Duration, now: Instant) -> Option<Instant> {
        if self.cooling(now) {
            self.cooldown.end()
        } else {
            self.ramp.next_step(self.core.current, target, ramp)
        }
    }

    /// Whether a release must read the clock (some rule looks at time).
    pub fn needs_clock(&self) -> bool {
        self.cooldown.end().is_some()
            || self.ramp.active()
            || self.latency.is_some()
            || self.algorithm.next_deadline().is_some()
    }

    /// After a static-cap change: limits never rate limited follow the new initial limit
    /// (up or down; slow start keeps probing up from where it is); rate-limited ones are only
    /// clamped to the new effective max.
    pub fn rebase(&mut self, target: u32, effective_max: u32, ramp: Duration, now: Instant) {
        if !self.core.ever_rate_limited {
            if self.ramp.active() {
                let _ = self.refresh(target, ramp, now);
            } else if self.slow_start.active() && self.core.current < target {
                // Still probing: keep growing towards the new cap from where it is.
            } else {
                self.core.current = target;
                self.slow_start.close();
            }
        }
        self.core.current = self.core.current.clamp(1, effective_max);
    }

    /// Applies one release outcome (counters were already decremented).
    pub fn apply_release(
        &mut self,
        config: &RequestAdmissionConfig,
        f: ReleaseFacts,
    ) -> Transition {
        let mut t = Transition::default();
        self.core.last_outcome = Some(f.kind);
        self.algorithm.observe(&self.core, &f);
        match f.kind {
            RequestReleaseOutcomeKind::RateLimited => {
                let class = match f.signal {
                    Some(RateLimitSignal::RequestWindow | RateLimitSignal::TokenWindow) => {
                        RateLimitClass::Window
                    }
                    Some(RateLimitSignal::Concurrency) => {
                        RateLimitClass::Concurrency { cooldown: true }
                    }
                    None => self.algorithm.classify(&self.core, &f),
                };
                t.rate_limit_class = Some(class);
                match class {
                    RateLimitClass::Concurrency { cooldown } => {
                        self.on_concurrency(config, &f, cooldown, &mut t);
                    }
                    // Not "too many in flight": no decrease, no endpoint cooldown, no plateau
                    // restart; the ramp and slow start keep going.
                    _ => self.core.consecutive_rate_limits += 1,
                }
            }
            RequestReleaseOutcomeKind::Success if !self.cooling(f.now) => {
                if self.ramp.active() {
                    t.ramp = self.refresh(f.ramp_target, config.startup_ramp(), f.now);
                    self.core.success_streak = 0;
                    self.core.consecutive_rate_limits = 0;
                    return t;
                }
                self.core.consecutive_rate_limits = 0;
                self.on_success(&f, &mut t);
            }
            kind => {
                t.ramp = self.refresh(f.ramp_target, config.startup_ramp(), f.now);
                let local = matches!(
                    kind,
                    RequestReleaseOutcomeKind::LocalCancelled
                        | RequestReleaseOutcomeKind::LocalTimeout
                );
                // As the reference: with nothing in flight any non-local outcome (a success
                // during cooldown included) ends the run of consecutive rate limits.
                if self.in_flight == 0 && !local {
                    self.core.consecutive_rate_limits = 0;
                }
            }
        }
        t
    }

    fn on_concurrency(
        &mut self,
        config: &RequestAdmissionConfig,
        f: &ReleaseFacts,
        with_cooldown: bool,
        t: &mut Transition,
    ) {
        // The ramp (and slow start) is aborted where it stands; the algorithm takes over.
        self.ramp.stop();
        self.slow_start.close();
        let core = &mut self.core;
        core.consecutive_rate_limits += 1;
        core.success_streak = 0;
        core.ever_rate_limited = true;
        let cooldown = with_cooldown.then(|| config.cooldown_for(f.retry_after_seconds));
        if let Some(cooldown) = cooldown {
            // A later, shorter Retry-After never shortens a running cooldown.
            self.cooldown.extend(f.now + cooldown);
            t.cooldown = Some(cooldown);
        }
        let prev = core.current;
        let new_cascade = f.admitted_limit <= prev;
        if new_cascade {
            core.rate_limit_ceiling = prev;
            core.soft_ceiling_pending = true;
        }
        let cx = RateLimitContext {
            new_cascade,
            cooldown,
            cooldown_end: self.cooldown.end(),
        };
        self.algorithm.on_rate_limit(core, f, cx);
        core.current = core.current.clamp(1, prev.max(1));
        if core.current < prev {
            t.decreased = Some((prev, core.current));
        }
    }

    fn on_success(&mut self, f: &ReleaseFacts, t: &mut Transition) {
        if let Some(tracker) = self.latency.as_mut() {
            // `in_flight` was already decremented: +1 is the count while this lease was held.
            let at_limit = self.in_flight + 1 >= self.core.current;
            if let Some(next) = tracker.observe(f.acquired_at, f.now, self.core.current, at_limit) {
                let prev = self.core.current;
                self.core.current = next;
                self.core.success_streak = 0;
                self.slow_start.close();
                t.decreased = Some((prev, next));
                t.latency_decrease = true;
                return;
            }
        }
        let proposal = if self.slow_start.active() {
            self.slow_start.on_success(&mut self.core)
        } else {
            self.algorithm.on_success(&mut self.core, f)
        };
        let Some(proposal) = proposal else {
            return;
        };
        let prev = self.core.current;
        let next = proposal.min(f.effective_max).max(prev.min(f.effective_max));
        if next >= f.effective_max {
            self.slow_start.close();
        }
        if next <= prev {
            return;
        }
        let core = &mut self.core;
        core.current = next;
        t.increased = Some((prev, next));
        if core.soft_ceiling_pending
            && core.rate_limit_ceiling > 0
            && next > core.rate_limit_ceiling
        {
            core.soft_ceiling_pending = false;
            t.soft_ceiling_recovered = Some(core.rate_limit_ceiling);
        }
        if next == f.effective_max && !self.cooldown.cooling(f.now) {
            t.fully_recovered = true;
        }
    }
}

#[cfg(test)]
mod tests;
