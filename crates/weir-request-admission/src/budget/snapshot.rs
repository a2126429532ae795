//! Read-only budget snapshots for the capacity plan and the run report.

use super::limits::BudgetKind;
use serde::{Deserialize, Serialize};
use weir_contracts::ProviderModelKey;

/// One window of one scope at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetWindowSnapshot {
    /// Which window.
    pub kind: BudgetKind,
    /// The limit the spec configured (tightest over the scope's aliases).
    pub configured_per_minute: Option<u64>,
    /// The limit the latest response header reported.
    pub learned_per_minute: Option<u64>,
    /// The limit pacing uses: min(configured, learned).
    pub effective_per_minute: Option<u64>,
    /// Units the window admits at once (`None` when not paced).
    pub burst_units: Option<u64>,
    /// Units reserved by requests not yet settled.
    pub reserved_units: u64,
    /// Units admitted so far (reservations plus charges).
    pub admitted_units: u64,
    /// Units given back (unused estimates, cancelled reservations).
    pub refunded_units: u64,
    /// Units charged beyond reservations (usage above the estimate).
    pub charged_units: u64,
    /// Reservations that had to wait for this window.
    pub waits: u64,
    /// Total wait those reservations were given, seconds.
    pub total_wait_seconds: f64,
    /// Longest single wait, seconds.
    pub max_wait_seconds: f64,
    /// A header or 429 gate in force: units it still lets through before it ends.
    pub gate_remaining: Option<u64>,
    /// Seconds until that gate ends.
    pub gate_seconds_left: Option<f64>,
    /// Times a response header said the provider had less left than weir's pacing assumed
    /// and pushed the pacing back (the provider charged more than reserved, or another client
    /// shares the key).
    #[serde(default)]
    pub header_pushbacks: u64,
    /// The window is being probed for a reset nobody stated (a window 429 without one).
    #[serde(default)]
    pub probing: bool,
    /// Window 429s without a stated reset that ended a window or a failed probe.
    #[serde(default)]
    pub probe_refusals: u64,
}

/// One limit scope (provider + model) at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetScopeSnapshot {
    /// The scope.
    pub scope: ProviderModelKey,
    /// Its four windows, in [`BudgetKind::ALL`] order.
    pub windows: Vec<BudgetWindowSnapshot>,
    /// Reservations made.
    pub reservations: u64,
    /// Reservations settled against a response.
    pub settled: u64,
    /// Reservations refunded (cancelled or dropped before use).
    pub refunded: u64,
    /// Reservations dropped after use (kept as charged).
    pub kept_after_use: u64,
    /// Reservations not yet resolved (zero after a clean run).
    pub outstanding: u64,
    /// Tokens per request the provider's token-window 429s showed it charges beyond the
    /// usage-based estimate (e.g. a default `max_tokens`); 0 until one did.
    #[serde(default)]
    pub extra_tokens_per_request: u64,
}

impl BudgetScopeSnapshot {
    /// The snapshot of `kind`.
    pub fn window(&self, kind: BudgetKind) -> Option<&BudgetWindowSnapshot> {
        self.windows.iter().find(|w| w.kind == kind)
    }
}
