//! The seed plan's AIMD, exactly: ×factor once per cascade, +step per N successes outside
//! cooldown; every unexplained rate limit is a concurrency rate limit.

use super::{LimitAlgorithm, LimitCore, RateLimitClass, RateLimitContext, ReleaseFacts};
use crate::config::RequestAdmissionConfig;

/// The plan's AIMD.
#[derive(Debug, Clone)]
pub(crate) struct PlanAimd {
    factor: f64,
    step: u32,
    successes_until_increase: u32,
}

impl PlanAimd {
    /// From the config's AIMD fields.
    pub fn new(config: &RequestAdmissionConfig) -> Self {
        Self {
            factor: config.multiplicative_decrease_factor,
            step: config.additive_increase_step,
            successes_until_increase: config.successes_until_increase,
        }
    }
}

impl LimitAlgorithm for PlanAimd {
    fn classify(&self, _core: &LimitCore, _f: &ReleaseFacts) -> RateLimitClass {
        RateLimitClass::Concurrency { cooldown: true }
    }

    fn on_rate_limit(&mut self, core: &mut LimitCore, _f: &ReleaseFacts, cx: RateLimitContext) {
        // Leases admitted above the already-lowered limit do not decrease it again.
        if cx.new_cascade {
            core.current = ((f64::from(core.current) * self.factor).floor() as u32).max(1);
        }
    }

    fn on_success(&mut self, core: &mut LimitCore, _f: &ReleaseFacts) -> Option<u32> {
        core.success_streak += 1;
        if core.success_streak < self.successes_until_increase {
            return None;
        }
        core.success_streak = 0;
        Some(core.current.saturating_add(self.step))
    }
}
