//! `KnownLimit`: the per-minute budgets a run ended up knowing per endpoint (configured on the
//! model entry or learned from response headers), as the runtime's own types.
//!
//! The budget ledger's snapshots (`RunResult::budget_snapshots`) are request admission's types;
//! the CLI may not depend on that crate (and may not have it re-exported), so the report reads
//! this conversion instead: one entry per window that has an effective limit, with what it
//! admitted, so a lower bound can say which limit binds and where it came from.

use super::RunResult;
use serde::{Deserialize, Serialize};
use weir_contracts::ProviderModelKey;
use weir_request_admission::{BudgetKind, BudgetWindowSnapshot};

/// Which per-minute window a limit paces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitWindow {
    /// Requests per minute.
    Requests,
    /// Tokens (input + output) per minute.
    Tokens,
    /// Input tokens per minute.
    InputTokens,
    /// Output tokens per minute.
    OutputTokens,
}

impl LimitWindow {
    /// The spec field configuring this window (`requests_per_minute`, ...).
    pub const fn field(self) -> &'static str {
        match self {
            Self::Requests => "requests_per_minute",
            Self::Tokens => "tokens_per_minute",
            Self::InputTokens => "input_tokens_per_minute",
            Self::OutputTokens => "output_tokens_per_minute",
        }
    }

    /// What one unit of the window is (`requests`, `tokens`, ...), for sentences.
    pub const fn units(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::InputTokens => "input tokens",
            Self::OutputTokens => "output tokens",
        }
    }

    fn of(kind: BudgetKind) -> Self {
        match kind {
            BudgetKind::Requests => Self::Requests,
            BudgetKind::Tokens => Self::Tokens,
            BudgetKind::InputTokens => Self::InputTokens,
            BudgetKind::OutputTokens => Self::OutputTokens,
        }
    }
}

/// Where the limit in effect came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// The model entry's `rate_limits` (tightest over the endpoint's aliases); also when the
    /// headers reported the same limit.
    Configured,
    /// The provider's `x-ratelimit-limit-*` headers (tighter than anything configured).
    Learned,
}

/// One window of one endpoint with an effective limit at the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownLimit {
    /// The endpoint (the budget scope).
    pub endpoint: ProviderModelKey,
    /// Which window.
    pub window: LimitWindow,
    /// The limit pacing used at the end: min(configured, learned), per minute.
    pub per_minute: u64,
    /// Where `per_minute` came from.
    pub source: LimitSource,
    /// The configured limit, when one was.
    pub configured_per_minute: Option<u64>,
    /// The learned limit, when headers reported one.
    pub learned_per_minute: Option<u64>,
    /// Units weir's pacing admits at once (the burst a full bucket lets through).
    pub burst_units: u64,
    /// Units the endpoint used: admitted (reservations plus charges beyond them) minus refunds.
    pub used_units: u64,
    /// Reservations that waited for this window.
    pub waits: u64,
    /// Total time those reservations waited, seconds (a task waits here before its request
    /// lease: no request event marks it).
    pub wait_seconds: f64,
}

impl KnownLimit {
    fn of(endpoint: &ProviderModelKey, w: &BudgetWindowSnapshot) -> Option<Self> {
        let per_minute = w.effective_per_minute.filter(|l| *l > 0)?;
        let source = if w.configured_per_minute == Some(per_minute) {
            LimitSource::Configured
        } else {
            LimitSource::Learned
        };
        Some(Self {
            endpoint: endpoint.clone(),
            window: LimitWindow::of(w.kind),
            per_minute,
            source,
            configured_per_minute: w.configured_per_minute,
            learned_per_minute: w.learned_per_minute,
            burst_units: w.burst_units.unwrap_or(1),
            used_units: w.admitted_units.saturating_sub(w.refunded_units),
            waits: w.waits,
            wait_seconds: w.total_wait_seconds,
        })
    }
}

impl RunResult {
    /// Every window with a limit in effect at the end of the run (configured or learned),
    /// ordered by endpoint then window; empty when no budget was configured or learned.
    pub fn known_limits(&self) -> Vec<KnownLimit> {
        self.budget_snapshots
            .iter()
            .flat_map(|s| s.windows.iter().filter_map(|w| KnownLimit::of(&s.scope, w)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(
        kind: BudgetKind,
        configured: Option<u64>,
        learned: Option<u64>,
    ) -> BudgetWindowSnapshot {
        let effective = match (configured, learned) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (c, l) => c.or(l),
        };
        BudgetWindowSnapshot {
            kind,
            configured_per_minute: configured,
            learned_per_minute: learned,
            effective_per_minute: effective,
            burst_units: effective.map(|_| 4),
            reserved_units: 0,
            admitted_units: 120,
            refunded_units: 20,
            charged_units: 0,
            waits: 0,
            total_wait_seconds: 0.0,
            max_wait_seconds: 0.0,
            gate_remaining: None,
            gate_seconds_left: None,
            header_pushbacks: 0,
            probing: false,
            probe_refusals: 0,
        }
    }

    #[test]
    fn windows_with_a_limit_say_where_it_came_from() {
        let key = ProviderModelKey::new("p", "m").expect("key");
        let of = |w: &BudgetWindowSnapshot| KnownLimit::of(&key, w);
        assert_eq!(of(&window(BudgetKind::Requests, None, None)), None);
        let configured = of(&window(BudgetKind::Requests, Some(60), Some(600))).expect("known");
        assert_eq!(
            (
                configured.per_minute,
                configured.source,
                configured.used_units
            ),
            (60, LimitSource::Configured, 100)
        );
        let learned = of(&window(BudgetKind::Tokens, Some(6000), Some(600))).expect("known");
        assert_eq!(
            (learned.window, learned.per_minute, learned.source),
            (LimitWindow::Tokens, 600, LimitSource::Learned)
        );
        assert_eq!(learned.burst_units, 4);
    }
}
