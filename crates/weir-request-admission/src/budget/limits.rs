//! What a budget is: the four per-minute windows, their configured limits, and the ledger settings.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the (up to) four budget windows of a limit scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// Requests per minute.
    Requests,
    /// Tokens (input + output) per minute.
    Tokens,
    /// Input (prompt) tokens per minute, where the provider splits them.
    InputTokens,
    /// Output (completion) tokens per minute, where the provider splits them.
    OutputTokens,
}

impl BudgetKind {
    /// Every kind, in snapshot order.
    pub const ALL: [BudgetKind; 4] = [
        BudgetKind::Requests,
        BudgetKind::Tokens,
        BudgetKind::InputTokens,
        BudgetKind::OutputTokens,
    ];

    /// Snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::InputTokens => "input_tokens",
            Self::OutputTokens => "output_tokens",
        }
    }

    /// The spec field configuring this window.
    pub const fn field(self) -> &'static str {
        match self {
            Self::Requests => "requests_per_minute",
            Self::Tokens => "tokens_per_minute",
            Self::InputTokens => "input_tokens_per_minute",
            Self::OutputTokens => "output_tokens_per_minute",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Requests => 0,
            Self::Tokens => 1,
            Self::InputTokens => 2,
            Self::OutputTokens => 3,
        }
    }
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bad budget setting: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfigError {
    /// Offending field (`requests_per_minute`, `burst_seconds`, ...).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for BudgetConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for BudgetConfigError {}

/// Configured per-minute limits of one scope (every field optional; `None` = not configured).
///
/// This is the shape of a spec model entry's `rate_limits` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetLimits {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Input tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_per_minute: Option<u64>,
    /// Output tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_minute: Option<u64>,
}

impl BudgetLimits {
    /// Largest accepted per-minute limit (10⁹: far above any real provider tier, small enough
    /// that one unit's emission interval stays ≥ 60 ns).
    pub const MAX_PER_MINUTE: u64 = 1_000_000_000;

    /// No limit configured.
    pub const fn none() -> Self {
        Self {
            requests_per_minute: None,
            tokens_per_minute: None,
            input_tokens_per_minute: None,
            output_tokens_per_minute: None,
        }
    }

    /// The same limits with `requests_per_minute`.
    pub fn with_requests_per_minute(mut self, rpm: u64) -> Self {
        self.requests_per_minute = Some(rpm);
        self
    }

    /// The same limits with `tokens_per_minute`.
    pub fn with_tokens_per_minute(mut self, tpm: u64) -> Self {
        self.tokens_per_minute = Some(tpm);
        self
    }

    /// The same limits with `input_tokens_per_minute`.
    pub fn with_input_tokens_per_minute(mut self, n: u64) -> Self {
        self.input_tokens_per_minute = Some(n);
        self
    }

    /// The same limits with `output_tokens_per_minute`.
    pub fn with_output_tokens_per_minute(mut self, n: u64) -> Self {
        self.output_tokens_per_minute = Some(n);
        self
    }

    /// The configured limit of `kind`.
    pub const fn get(&self, kind: BudgetKind) -> Option<u64> {
        match kind {
            BudgetKind::Requests => self.requests_per_minute,
            BudgetKind::Tokens => self.tokens_per_minute,
            BudgetKind::InputTokens => self.input_tokens_per_minute,
            BudgetKind::OutputTokens => self.output_tokens_per_minute,
        }
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        BudgetKind::ALL.iter().all(|k| self.get(*k).is_none())
    }

    /// Per window the smaller of the two (a window configured on one side only keeps it): the
    /// merge rule for aliases of one endpoint.
    pub fn tightest(self, other: Self) -> Self {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) => x,
            (None, y) => y,
        };
        Self {
            requests_per_minute: min(self.requests_per_minute, other.requests_per_minute),
            tokens_per_minute: min(self.tokens_per_minute, other.tokens_per_minute),
            input_tokens_per_minute: min(
                self.input_tokens_per_minute,
                other.input_tokens_per_minute,
            ),
            output_tokens_per_minute: min(
                self.output_tokens_per_minute,
                other.output_tokens_per_minute,
            ),
        }
    }

    /// Every set limit is in `1..=MAX_PER_MINUTE`; the error names the first bad field.
    pub fn validate(&self) -> Result<(), BudgetConfigError> {
        for kind in BudgetKind::ALL {
            if let Some(v) = self.get(kind) {
                if v == 0 || v > Self::MAX_PER_MINUTE {
                    return Err(BudgetConfigError {
                        field: kind.field(),
                        message: format!(
                            "must be an integer in 1..={} per minute (got {v})",
                            Self::MAX_PER_MINUTE
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Ledger-wide settings: burst, token estimates, caps on what a header may impose.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Burst allowance as seconds of the window's rate: a window admits at once at most
    /// `max(1, floor(limit × burst_seconds / 60))` units (default 0: one unit, i.e. requests
    /// are spaced by exactly 60 s / limit and a token reservation waits for the previous one's
    /// debt). Keep it small: a sliding or fixed provider window counts the burst on top of the rate.
    pub burst_seconds: f64,
    /// Output tokens reserved for a request whose `max_tokens` is unknown (default 256).
    pub default_output_tokens: u64,
    /// Characters per prompt token for the input estimate (default 4.0).
    pub chars_per_token: f64,
    /// Longest block a header reset, Retry-After or window 429 may impose (default 900 s).
    pub max_block_seconds: f64,
    /// Fraction below a *learned* limit that pacing aims at (default 0.02: 2 % under). Paced
    /// exactly at a provider bucket's rate, its level stays at zero and any request that
    /// arrives a little earlier relative to the one before it is refused (one in five was,
    /// on loopback); a small margin lets the bucket keep a few units of slack. Configured
    /// limits are paced as given.
    pub learned_rate_margin: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            burst_seconds: 0.0,
            default_output_tokens: 256,
            chars_per_token: 4.0,
            max_block_seconds: 900.0,
            learned_rate_margin: 0.02,
        }
    }
}

impl BudgetConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), BudgetConfigError> {
        let bad = |field, message: String| Err(BudgetConfigError { field, message });
        if !(self.burst_seconds.is_finite() && (0.0..=60.0).contains(&self.burst_seconds)) {
            return bad(
                "burst_seconds",
                format!("must be in [0, 60] (got {})", self.burst_seconds),
            );
        }
        if self.default_output_tokens > BudgetLimits::MAX_PER_MINUTE {
            return bad(
                "default_output_tokens",
                format!("must be at most {}", BudgetLimits::MAX_PER_MINUTE),
            );
        }
        if !(self.chars_per_token.is_finite() && self.chars_per_token >= 0.5) {
            return bad(
                "chars_per_token",
                format!(
                    "must be a finite number ≥ 0.5 (got {})",
                    self.chars_per_token
                ),
            );
        }
        if !(self.max_block_seconds.is_finite()
            && self.max_block_seconds > 0.0
            && self.max_block_seconds <= 86_400.0)
        {
            return bad(
                "max_block_seconds",
                format!("must be in (0, 86400] (got {})", self.max_block_seconds),
            );
        }
        if !(self.learned_rate_margin.is_finite()
            && (0.0..=0.5).contains(&self.learned_rate_margin))
        {
            return bad(
                "learned_rate_margin",
                format!("must be in [0, 0.5] (got {})", self.learned_rate_margin),
            );
        }
        Ok(())
    }
}

/// What one request reserves: its estimated input and output tokens (and one request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetDemand {
    /// Estimated input (prompt) tokens.
    pub input_tokens: u64,
    /// Reserved output tokens (`max_tokens`, or the configured default estimate).
    pub output_tokens: u64,
}

impl BudgetDemand {
    /// Explicit token counts.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
        }
    }

    /// The estimate of a prompt of `prompt_chars` characters: `ceil(chars / chars_per_token)`
    /// input tokens plus `max_tokens` (or `default_output_tokens` when unknown).
    pub fn estimate(prompt_chars: usize, max_tokens: Option<u64>, config: &BudgetConfig) -> Self {
        let per = config.chars_per_token.max(0.5);
        // Saturating float → int: a prompt longer than u64 tokens is not a real case.
        let input = (prompt_chars as f64 / per).ceil() as u64;
        Self {
            input_tokens: input.min(BudgetLimits::MAX_PER_MINUTE),
            output_tokens: max_tokens
                .unwrap_or(config.default_output_tokens)
                .min(BudgetLimits::MAX_PER_MINUTE),
        }
    }

    /// Input plus output tokens.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Units this demand takes from each window, indexed like [`BudgetKind::ALL`].
    pub(crate) fn units(&self) -> [u64; 4] {
        [1, self.tokens(), self.input_tokens, self.output_tokens]
    }
}
