//! `BudgetLedger`: the scopes' windows, reservations that settle or refund exactly once, header
//! observations and window blocks.

use super::charge::ChargeEstimator;
use super::limits::{BudgetConfig, BudgetConfigError, BudgetDemand, BudgetKind, BudgetLimits};
use super::probe::{ProbeVerdict, WindowProbe};
use super::snapshot::{BudgetScopeSnapshot, BudgetWindowSnapshot};
use super::window::{unit_interval_ns, Gate, Window};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use weir_contracts::{ProviderModelKey, RateLimitObservation, TokenUsage, WindowObservation};

/// What a token-window 429 says the refused request needed, in tokens: at least `at_least`,
/// at most `at_most`. The provider's `remaining` is its level rounded down, and its
/// `retry_after` the wait until the request fits rounded up to the header's resolution (a
/// millisecond for `retry-after-ms`, a second for whole seconds): at 6,000 tokens/s one
/// millisecond is 6 tokens, so one reading alone overstated a 20-token request as 23–25.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NeededRange {
    pub at_least: u64,
    pub at_most: u64,
}

impl NeededRange {
    /// The range from a refusal's token window and `retry_after` (`None` without a limit and a
    /// remaining count).
    pub fn read(w: &WindowObservation, retry_after: Duration) -> Option<Self> {
        let (limit, remaining) = (w.limit.filter(|l| *l > 0)?, w.remaining?);
        let interval = unit_interval_ns(limit);
        let resolution = if retry_after >= Duration::from_secs(1) && retry_after.subsec_nanos() == 0
        {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(1)
        };
        // needed > level + (retry_after − resolution) × rate and needed < level + 1 +
        // retry_after × rate, with `remaining ≤ level < remaining + 1`; needed is whole.
        let waited_at_least = retry_after.saturating_sub(resolution).as_nanos() / interval;
        let waited_at_most = retry_after.as_nanos().div_ceil(interval);
        Some(Self {
            at_least: u64::try_from(u128::from(remaining) + waited_at_least + 1).ok()?,
            at_most: u64::try_from(u128::from(remaining) + waited_at_most).ok()?,
        })
    }
}

/// One limit scope's four windows and its reservation counters.
#[derive(Debug)]
pub(crate) struct Scope {
    pub windows: [Window; 4],
    pub reservations: u64,
    pub settled: u64,
    pub refunded: u64,
    pub kept: u64,
    /// The latest slot handed out: later reservations never get an earlier one (FIFO even when
    /// a small reservation would fit a burst a big one ahead of it is waiting for).
    pub last_slot: Option<Instant>,
    /// Output tokens the settled responses reported, and how many reported them: the
    /// estimate for a request whose `max_tokens` is unknown once there is evidence.
    pub output_tokens_seen: u64,
    /// Settled responses that reported usage.
    pub usage_samples: u64,
    /// Tokens per request the provider charges beyond the usage-based estimate, as its
    /// token-window 429s show (`remaining + retry_after × rate` is what the refused request
    /// needed): a provider that charges `max_tokens` at admission (OpenAI) with a default the
    /// request did not state. Set by `Scope::update_extra`: the measured value inside
    /// `extra_bounds`, else their top.
    pub charge_extra: u64,
    /// What the token-window 429s so far allow the extra to be: `(at least, at most)`.
    pub extra_bounds: Option<(u64, u64)>,
    /// The per-request charge read off consecutive responses' token headers (`budget::charge`).
    pub charge: ChargeEstimator,
    /// Requests with token units sent so far (numbers them for `charge`).
    pub token_sends: u64,
    /// Requests without `max_tokens` sent before any extra was known and not settled yet: on
    /// the wire at the reservation's size, charged the provider's default.
    pub sent_without_extra: u64,
    /// The extra charged at once, at the release, for each of those (their settles then do
    /// not charge it again).
    pub prepaid_extra: Option<u64>,
    /// Reservations let through before the scope's first response (see
    /// [`FIRST_CONTACT_REQUESTS`]).
    pub first_contact_passed: u32,
    /// Set when the first reservation ends: first contact is over.
    pub first_contact_over: bool,
    /// The request and token windows' probes for a reset nobody states (`budget::probe`).
    pub probes: [WindowProbe; 2],
    /// Changes to the windows' state other than bookings (refunds, charges, header caps): an
    /// unused reservation booked before one of them is no longer the clean tail that can be
    /// rewound (the change was computed with its units booked).
    pub adjustments: u64,
}

impl Scope {
    fn new(limits: BudgetLimits, config: &BudgetConfig) -> Self {
        Self {
            windows: BudgetKind::ALL.map(|k| {
                Window::new(
                    limits.get(k),
                    config.burst_seconds,
                    config.learned_rate_margin,
                )
            }),
            reservations: 0,
            settled: 0,
            refunded: 0,
            kept: 0,
            last_slot: None,
            output_tokens_seen: 0,
            usage_samples: 0,
            charge_extra: 0,
            extra_bounds: None,
            charge: ChargeEstimator::default(),
            token_sends: 0,
            sent_without_extra: 0,
            prepaid_extra: None,
            adjustments: 0,
            first_contact_passed: 0,
            first_contact_over: false,
            probes: [WindowProbe::default(), WindowProbe::default()],
        }
    }

    /// Tightening pacing changes so far, per window (see `Window::changes`).
    fn epochs(&self) -> [u64; 4] {
        [0, 1, 2, 3].map(|i| self.windows[i].changes)
    }

    /// Finds the slot for `units` at `now` and books it in every window.
    fn book(&mut self, units: &[u64; 4], now: Instant) -> (Instant, [u64; 4]) {
        let mut slot = self.last_slot.map_or(now, |l| l.max(now));
        for (w, n) in self.windows.iter().zip(units) {
            slot = slot.max(w.earliest(*n, now));
        }
        // Pushing past one gate only ends others, so this settles within a few rounds.
        for _ in 0..=4 {
            let pushed = self
                .windows
                .iter()
                .zip(units)
                .fold(slot, |acc, (w, n)| acc.max(w.gate_push(*n, acc)));
            if pushed == slot {
                break;
            }
            slot = pushed;
        }
        let mut cum_after = [0u64; 4];
        for (i, n) in units.iter().enumerate() {
            cum_after[i] = self.windows[i].commit(*n, slot, now);
        }
        self.last_slot = Some(slot);
        (slot, cum_after)
    }

    fn outstanding(&self) -> u64 {
        self.reservations - self.settled - self.refunded - self.kept
    }

    /// The output tokens to reserve when `max_tokens` is unknown: the mean output of the
    /// settled responses that reported usage (rounded up), plus what token-window 429s showed
    /// the provider charges beyond the reservation (`charge_extra`).
    fn learned_output(&self) -> Option<u64> {
        self.mean_output()
            .map(|m| m.saturating_add(self.charge_extra))
    }

    /// Sets `charge_extra` from what the 429s bound it to and what the headers measured: the
    /// measured median (to the nearest whole, halves down) inside the bounds, else
    /// the bounds' top, else nothing. The first extra releases the queue to re-book at it.
    fn update_extra(&mut self, now: Instant) {
        let measured = self.charge.output_charge().map(|c| {
            let extra = c - self.mean_output().unwrap_or(0) as f64;
            (extra - 0.5).ceil().max(0.0) as u64
        });
        let burst = self.windows[BudgetKind::Tokens.index()].burst();
        let extra = match (self.extra_bounds, measured) {
            (Some((lo, hi)), Some(m)) => m.clamp(lo, hi.max(lo)),
            (Some((_, hi)), None) => hi,
            (None, Some(m)) => m,
            (None, None) => return,
        }
        .min(burst);
        if self.charge_extra == 0 && extra > 0 {
            for w in &mut self.windows {
                w.release_unsent(now);
            }
            self.last_slot = self.last_slot.map(|l| l.min(now));
            // What is on the wire already cost the provider the extra too: without it here
            // the ledger runs that many requests' extra ahead until they settle (a second
            // wave of 429s one latency after the first).
            let owed = self.sent_without_extra.saturating_mul(extra);
            for kind in [BudgetKind::Tokens, BudgetKind::OutputTokens] {
                self.windows[kind.index()].charge(owed, now);
            }
            self.prepaid_extra = Some(extra);
        }
        self.charge_extra = extra;
    }

    /// A request sent (`without_extra`: before any extra was known) left the wire.
    fn off_the_wire(&mut self, without_extra: bool) {
        if without_extra && self.prepaid_extra.is_none() {
            self.sent_without_extra = self.sent_without_extra.saturating_sub(1);
        }
    }

    /// Mean output tokens of the settled responses that reported usage (rounded up).
    fn mean_output(&self) -> Option<u64> {
        (self.usage_samples > 0).then(|| self.output_tokens_seen.div_ceil(self.usage_samples))
    }

    /// True while the scope knows no limit and no reservation has ended yet.
    fn in_first_contact(&self) -> bool {
        !self.first_contact_over && self.windows.iter().all(|w| w.effective().is_none())
    }

    /// Ends first contact (a reservation ended); returns true when this call ended it.
    fn end_first_contact(&mut self) -> bool {
        !std::mem::replace(&mut self.first_contact_over, true)
    }

    /// Takes `units` off the not-yet-sent counters: the request was sent, or never will be.
    fn sent_or_dropped(&mut self, units: &[u64; 4]) {
        for (w, n) in self.windows.iter_mut().zip(units) {
            w.unsent = w.unsent.saturating_sub(*n);
        }
    }

    /// Applies what a response said. Its `remaining` is the provider's level when the request
    /// arrived (≈ `anchor.sent_at`): it did not count the units booked after that request
    /// (sent since, or still waiting), which the scope's `tat` already holds; so the bucket is
    /// full again no earlier than `sent_at + (burst + after − remaining)·T`
    /// (`Window::cap_level`). Only windows that did not tighten since the request was booked
    /// are capped: after a tightening the bookings re-book and `tat` no longer holds them all.
    /// Without an anchor (an observation with no reservation) everything outstanding counts
    /// as after it, anchored now.
    ///
    /// `remaining N` with `reset R` reads two ways. A **bucket** (OpenAI, Anthropic: "the time
    /// until the budget is full again") refills continuously, so `R ≈ (depth − N)·T` with
    /// `T = 60 s / limit`: the level is capped and the depth `N + R/T` is learned — and no gate,
    /// since the bucket refills within `R`. A **window** (a reset unrelated to how much is
    /// used, e.g. a fixed window's end) also gets a gate: at most `N − after` more until
    /// `now + R`. The reading is a bucket when the limit is known and `R` is no longer than
    /// refilling `limit − N` units would take (+25 %, +20 ms of rounding); otherwise a window,
    /// which is the conservative reading.
    fn observe(
        &mut self,
        obs: &RateLimitObservation,
        anchor: Option<&Anchor>,
        now: Instant,
        max_block: Duration,
    ) {
        self.adjustments += 1;
        let parts: [&WindowObservation; 4] = [
            &obs.requests,
            &obs.tokens,
            &obs.input_tokens,
            &obs.output_tokens,
        ];
        for (i, part) in parts.into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            let w = &mut self.windows[i];
            let at = anchor.and_then(|a| a.sent_at).map_or(now, |t| t.min(now));
            let booked_since = |w: &Window| match anchor {
                Some(a) => w.cum_reserved.saturating_sub(a.cum_after[i]),
                None => w.outstanding,
            };
            let limit = part
                .limit
                .filter(|l| *l > 0)
                .map(|l| l.min(BudgetLimits::MAX_PER_MINUTE));
            if let Some(limit) = limit {
                w.learn_limit(limit, now);
            }
            let Some(remaining) = part.remaining else {
                continue;
            };
            let reset = part.reset_after;
            let bucket = match (limit.or(w.effective()), reset) {
                (Some(limit), Some(reset)) if reads_as_bucket(limit, remaining, reset) => {
                    let interval = unit_interval_ns(limit);
                    Some(u128::from(remaining) + (reset.as_nanos() + interval / 2) / interval)
                }
                _ => None,
            };
            if let Some(depth) = bucket {
                w.learn_burst(u64::try_from(depth).unwrap_or(u64::MAX), now);
            }
            // Compared only now: learning the limit above may have tightened this window. Since
            // a tightening, the bookings made before it re-book (adding themselves again) and
            // `tat` holds only what was booked since; then what the header did not count is
            // what is on the wire.
            let after = if anchor.is_none_or(|a| a.epochs[i] == w.changes) {
                booked_since(w)
            } else {
                w.outstanding.saturating_sub(w.unsent)
            };
            w.cap_level(remaining, after, at);
            if let (None, Some(reset)) = (bucket, reset.filter(|r| !r.is_zero())) {
                let gate = Gate {
                    until: now + reset.min(max_block),
                    remaining: remaining.saturating_sub(after),
                };
                w.install_gate(gate, now);
            }
        }
    }
}

/// Where a settled reservation sat: the response's `remaining` is read relative to it.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    cum_after: [u64; 4],
    epochs: [u64; 4],
    sent_at: Option<Instant>,
}

/// True when `reset` is no longer than a bucket of `limit` per minute takes to refill what
/// `remaining` says is used (`limit − remaining` units), with 25 % + 20 ms for rounding.
fn reads_as_bucket(limit: u64, remaining: u64, reset: Duration) -> bool {
    if remaining > limit {
        return false;
    }
    let refill_ns = u128::from(limit - remaining) * 60_000_000_000 / u128::from(limit);
    reset.as_nanos() <= refill_ns + refill_ns / 4 + 20_000_000
}

/// A scope's state and the wake-up of reservations held at first contact.
#[derive(Debug)]
pub(crate) struct ScopeCell {
    state: Mutex<Scope>,
    /// Wakes reservations held in `ready`: when first contact ends (see
    /// [`FIRST_CONTACT_REQUESTS`]) and when a window probe changes state.
    changed: Notify,
}

impl ScopeCell {
    fn new(scope: Scope) -> Self {
        Self {
            state: Mutex::new(scope),
            changed: Notify::new(),
        }
    }
}

fn lock(scope: &ScopeCell) -> MutexGuard<'_, Scope> {
    // Plain counters: a panic elsewhere leaves them usable.
    scope.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reservations a scope with no known limit lets through before its first response: the
/// request-admission slow start's opening concurrency. The others wait (without a concurrency
/// lease) for the first reservation to end, so that the limits its headers teach pace them:
/// admitted unpaced, they would queue for leases ahead of every paced request, and the slots
/// handed out meanwhile would pass unused and then go out together. Costs nothing beyond the
/// slow start's own first round trip.
pub(crate) const FIRST_CONTACT_REQUESTS: u32 = 8;

/// Request and token budgets per limit scope (provider + model), beside the adaptive
/// concurrency limit. Cheap to share (`Arc`); every method takes only the scope's own lock and
/// never holds it across an `.await`.
#[derive(Debug)]
pub struct BudgetLedger {
    config: BudgetConfig,
    max_block: Duration,
    scopes: RwLock<HashMap<ProviderModelKey, Arc<ScopeCell>>>,
}

impl Default for BudgetLedger {
    /// A ledger with the default settings and nothing configured (limits are still learned).
    fn default() -> Self {
        let config = BudgetConfig::default();
        Self {
            max_block: Duration::from_secs_f64(config.max_block_seconds),
            config,
            scopes: RwLock::default(),
        }
    }
}

impl BudgetLedger {
    /// A ledger with `config` (validated).
    pub fn new(config: BudgetConfig) -> Result<Self, BudgetConfigError> {
        config.validate()?;
        let max_block = Duration::try_from_secs_f64(config.max_block_seconds)
            .unwrap_or(Duration::from_secs(900));
        Ok(Self {
            config,
            max_block,
            scopes: RwLock::default(),
        })
    }

    /// The ledger settings.
    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    fn scope(&self, key: &ProviderModelKey) -> Arc<ScopeCell> {
        if let Some(s) = self
            .scopes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return s.clone();
        }
        self.scopes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(ScopeCell::new(Scope::new(
                    BudgetLimits::none(),
                    &self.config,
                )))
            })
            .clone()
    }

    /// Configures `limits` on `scope`, merged with what is already configured there by the
    /// tightest rule (aliases of one endpoint); returns the merged configuration.
    pub fn register(
        &self,
        scope: &ProviderModelKey,
        limits: BudgetLimits,
    ) -> Result<BudgetLimits, BudgetConfigError> {
        limits.validate()?;
        let s = self.scope(scope);
        let mut s = lock(&s);
        let now = Instant::now();
        let mut merged = BudgetLimits::none();
        for kind in BudgetKind::ALL {
            let w = &mut s.windows[kind.index()];
            let next = match (w.configured, limits.get(kind)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            };
            w.configure(next, now);
            match kind {
                BudgetKind::Requests => merged.requests_per_minute = next,
                BudgetKind::Tokens => merged.tokens_per_minute = next,
                BudgetKind::InputTokens => merged.input_tokens_per_minute = next,
                BudgetKind::OutputTokens => merged.output_tokens_per_minute = next,
            }
        }
        Ok(merged)
    }

    /// The limits configured on `scope` (none when unknown).
    pub fn configured(&self, scope: &ProviderModelKey) -> BudgetLimits {
        let s = self.scope(scope);
        let s = lock(&s);
        BudgetLimits {
            requests_per_minute: s.windows[0].configured,
            tokens_per_minute: s.windows[1].configured,
            input_tokens_per_minute: s.windows[2].configured,
            output_tokens_per_minute: s.windows[3].configured,
        }
    }

    /// The demand estimate of a prompt of `prompt_chars` characters (see [`BudgetDemand::estimate`]).
    pub fn estimate(&self, prompt_chars: usize, max_tokens: Option<u64>) -> BudgetDemand {
        BudgetDemand::estimate(prompt_chars, max_tokens, &self.config)
    }

    /// Like [`estimate`](Self::estimate), but when `max_tokens` is unknown and `scope` has
    /// settled responses with usage, the output estimate is their mean output tokens (rounded
    /// up) instead of `default_output_tokens`: reserving 256 tokens for replies of 20 paced a
    /// token-bound run at a tenth of its budget.
    pub fn estimate_for(
        &self,
        scope: &ProviderModelKey,
        prompt_chars: usize,
        max_tokens: Option<u64>,
    ) -> BudgetDemand {
        let learned = max_tokens
            .is_none()
            .then(|| lock(&self.scope(scope)).learned_output());
        BudgetDemand::estimate(prompt_chars, max_tokens.or(learned.flatten()), &self.config)
    }

    /// Reserves a prompt of `prompt_chars` characters with [`estimate_for`](Self::estimate_for)'s
    /// demand. When `max_tokens` is unknown, a re-booking after a pacing change takes the
    /// scope's output estimate by then: a thousand requests reserved at first contact with the
    /// default 256 output tokens each, for replies of 10, would otherwise hold a token budget
    /// for minutes (and requests the provider charges more than estimated are re-booked at
    /// what it charges).
    pub fn reserve_for(
        &self,
        scope: &ProviderModelKey,
        prompt_chars: usize,
        max_tokens: Option<u64>,
    ) -> BudgetReservation {
        let demand = self.estimate_for(scope, prompt_chars, max_tokens);
        let mut r = self.reserve(scope, demand);
        r.reestimate = max_tokens.is_none();
        r
    }

    /// Reserves `demand` on `scope` now; see [`reserve_at`](Self::reserve_at).
    pub fn reserve(&self, scope: &ProviderModelKey, demand: BudgetDemand) -> BudgetReservation {
        self.reserve_at(scope, demand, Instant::now())
    }

    /// Reserves one request and `demand`'s tokens on `scope` at `now`. The reservation's
    /// [`ready_at`](BudgetReservation::ready_at) is the instant every window admits it (FIFO:
    /// later reservations never get an earlier slot); nothing waits here.
    pub fn reserve_at(
        &self,
        scope: &ProviderModelKey,
        demand: BudgetDemand,
        now: Instant,
    ) -> BudgetReservation {
        let units = demand.units();
        let arc = self.scope(scope);
        let (slot, cum_after, epochs, adjustments) = {
            let mut s = lock(&arc);
            let (slot, cum_after) = s.book(&units, now);
            s.reservations += 1;
            (slot, cum_after, s.epochs(), s.adjustments)
        };
        BudgetReservation {
            scope: arc,
            units,
            cum_after,
            slot,
            reserved_at: now,
            epochs,
            adjustments,
            sent_at: None,
            token_seq: None,
            sent_without_extra: false,
            first_contact: false,
            probe_of: [false; 2],
            counted: [None; 2],
            reestimate: false,
            used: false,
            done: false,
            max_block: self.max_block,
        }
    }

    /// Applies a response's observation that came without a reservation (units still reserved
    /// on the scope count as already taken from its `remaining`).
    pub fn observe(&self, scope: &ProviderModelKey, obs: &RateLimitObservation, now: Instant) {
        let s = self.scope(scope);
        lock(&s).observe(obs, None, now, self.max_block);
    }

    /// A window 429: nothing more is admitted in `kind` until `now + block` (capped by
    /// `max_block_seconds`); reservations already scheduled re-check it when their slot comes.
    pub fn block(&self, scope: &ProviderModelKey, kind: BudgetKind, block: Duration, now: Instant) {
        if block.is_zero() {
            return;
        }
        let s = self.scope(scope);
        let until = now + block.min(self.max_block);
        lock(&s).windows[kind.index()].block(until, now);
    }

    /// A read-only snapshot of `scope` at `now` (`None` when the ledger never saw it).
    pub fn snapshot(&self, scope: &ProviderModelKey, now: Instant) -> Option<BudgetScopeSnapshot> {
        let arc = self
            .scopes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scope)
            .cloned()?;
        let s = lock(&arc);
        Some(snapshot_of(scope, &s, now))
    }

    /// Snapshots of every scope, ordered by scope.
    pub fn snapshots(&self) -> Vec<BudgetScopeSnapshot> {
        let now = Instant::now();
        let scopes: Vec<(ProviderModelKey, Arc<ScopeCell>)> = self
            .scopes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out: Vec<BudgetScopeSnapshot> = scopes
            .iter()
            .map(|(k, s)| snapshot_of(k, &lock(s), now))
            .collect();
        out.sort_by(|a, b| a.scope.cmp(&b.scope));
        out
    }
}

fn snapshot_of(scope: &ProviderModelKey, s: &Scope, now: Instant) -> BudgetScopeSnapshot {
    let windows = BudgetKind::ALL
        .iter()
        .zip(s.windows.iter())
        .map(|(kind, w)| {
            let gate = w.active_gate(now);
            BudgetWindowSnapshot {
                kind: *kind,
                configured_per_minute: w.configured,
                learned_per_minute: w.learned,
                effective_per_minute: w.effective(),
                burst_units: w.effective().map(|_| w.burst()),
                reserved_units: w.outstanding,
                admitted_units: w.admitted,
                refunded_units: w.refunded,
                charged_units: w.charged,
                waits: w.waits,
                total_wait_seconds: w.wait_ns_total as f64 / 1e9,
                max_wait_seconds: w.max_wait_ns as f64 / 1e9,
                gate_remaining: gate.map(|g| g.remaining),
                gate_seconds_left: gate.map(|g| (g.until - now).as_secs_f64()),
                header_pushbacks: w.pushbacks,
                probing: s
                    .probes
                    .get(kind.index())
                    .is_some_and(WindowProbe::is_probing),
                probe_refusals: s.probes.get(kind.index()).map_or(0, |p| p.refusals),
            }
        })
        .collect();
    BudgetScopeSnapshot {
        scope: scope.clone(),
        windows,
        reservations: s.reservations,
        settled: s.settled,
        refunded: s.refunded,
        kept_after_use: s.kept,
        extra_tokens_per_request: s.charge_extra,
        outstanding: s.outstanding(),
    }
}

/// One request's reservation on a scope's budgets. Settle it with the response
/// ([`settle`](Self::settle)); dropped before [`mark_used`](Self::mark_used) it refunds
/// everything, dropped after it keeps the reservation as charged (the provider counted the
/// request). Either way exactly once: the methods consume it and `Drop` checks `done`.
#[derive(Debug)]
pub struct BudgetReservation {
    scope: Arc<ScopeCell>,
    units: [u64; 4],
    cum_after: [u64; 4],
    slot: Instant,
    reserved_at: Instant,
    /// When [`mark_used`](Self::mark_used) was called (≈ when the provider saw it).
    sent_at: Option<Instant>,
    /// Its number among the scope's requests with token units sent (`Scope::token_sends`).
    token_seq: Option<u64>,
    /// Sent without `max_tokens` before any extra was known (`Scope::sent_without_extra`).
    sent_without_extra: bool,
    /// Passed [`ready`](Self::ready) as one of the scope's first-contact requests.
    first_contact: bool,
    /// Per probed window (requests, tokens): this reservation is its probe.
    probe_of: [bool; 2],
    /// Per probed window: the window generation this reservation was counted in.
    counted: [Option<u64>; 2],
    /// Reserved by [`BudgetLedger::reserve_for`] without `max_tokens`: a re-booking takes the
    /// scope's output estimate at that time.
    reestimate: bool,
    /// Each window's `changes` when this was booked (a tightening since: re-book).
    epochs: [u64; 4],
    /// The scope's `adjustments` when this was booked (see `is_tail`).
    adjustments: u64,
    used: bool,
    done: bool,
    max_block: Duration,
}

impl BudgetReservation {
    /// The instant every window admits this request.
    pub fn ready_at(&self) -> Instant {
        self.slot
    }

    /// How long the budget made it wait (slot − the instant it was reserved).
    pub fn wait(&self) -> Duration {
        self.slot.saturating_duration_since(self.reserved_at)
    }

    /// Units taken from `kind`.
    pub fn units(&self, kind: BudgetKind) -> u64 {
        self.units[kind.index()]
    }

    /// Sleeps (a tokio timer, no polling) until the budget admits this request. While the scope
    /// knows no limit and has had no response, only the first 8 pass (the slow start's opening
    /// concurrency); the rest
    /// wait for the first reservation to end. A pacing change meanwhile re-books
    /// ([`revalidate`](Self::revalidate)), and a window blocked by a 429 moves the slot to
    /// the block's end. Cancel-safe: dropping the future leaves the reservation unused (its
    /// drop refunds it).
    pub async fn ready(&mut self) {
        self.ready_within(None).await;
    }

    /// Like [`ready`](Self::ready), but gives up (returns false, nothing sent; the caller
    /// cancels or drops the reservation) once a window probe has held it longer than
    /// `probe_wait` in all: a window that never reopens must not hold a call forever. Pacing
    /// waits are not bounded (a budget-bound queue is as long as it is).
    pub async fn ready_within(&mut self, probe_wait: Option<Duration>) -> bool {
        let mut held_since: Option<Instant> = None;
        loop {
            let scope = self.scope.clone();
            let changed = scope.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let held = !self.first_contact && {
                let mut s = lock(&self.scope);
                if !s.in_first_contact() {
                    false
                } else if s.first_contact_passed < FIRST_CONTACT_REQUESTS {
                    s.first_contact_passed += 1;
                    self.first_contact = true;
                    false
                } else {
                    true
                }
            };
            if held {
                changed.await;
                continue;
            }
            let now = Instant::now();
            let until = match self.probe_verdict(now) {
                ProbeVerdict::Wait => None,
                ProbeVerdict::WaitUntil(t) => Some(t),
                ProbeVerdict::Pass | ProbeVerdict::Probe => {
                    self.revalidate();
                    if self.slot > Instant::now() {
                        tokio::time::sleep_until(self.slot).await;
                        continue;
                    }
                    return true;
                }
            };
            let since = *held_since.get_or_insert(now);
            let deadline = probe_wait.map(|w| since + w);
            if deadline.is_some_and(|d| d <= now) {
                return false;
            }
            let wake = match (until, deadline) {
                (Some(u), Some(d)) => Some(u.min(d)),
                (u, d) => u.or(d),
            };
            match wake {
                Some(t) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(t) => {}
                        () = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// The probed windows' verdict for this reservation at `now`: a wait if any window makes
    /// it wait, else it passes every one (counted, or taking a probe).
    fn probe_verdict(&mut self, now: Instant) -> ProbeVerdict {
        let mut s = lock(&self.scope);
        let probed = self.probed_windows(&s);
        for i in (0..2).filter(|i| probed[*i]) {
            if s.probes[i].would_wait(now, self.probe_of[i], self.counted[i]) {
                return s.probes[i].admit(now, self.probe_of[i], self.counted[i]);
            }
        }
        let mut verdict = ProbeVerdict::Pass;
        for i in (0..2).filter(|i| probed[*i]) {
            let v = s.probes[i].admit(now, self.probe_of[i], self.counted[i]);
            if v == ProbeVerdict::Probe {
                self.probe_of[i] = true;
                verdict = v;
            }
            self.counted[i] = Some(s.probes[i].generation());
        }
        verdict
    }

    /// Which of the probed windows (requests, tokens) this reservation takes units of while
    /// they have learned something (an idle probe passes everyone uncounted).
    fn probed_windows(&self, s: &Scope) -> [bool; 2] {
        [0, 1].map(|i| self.units[i] > 0 && !s.probes[i].is_idle())
    }

    /// Hands the probe of every window this reservation was probing to the next waiter (it
    /// ended without an answer); true when a waiter must wake.
    fn abandon_probes(&self, s: &mut Scope) -> bool {
        let mut wake = false;
        for i in (0..2).filter(|i| self.probe_of[*i]) {
            wake |= s.probes[i].probe_abandoned();
        }
        wake
    }

    /// True when a window being probed for its reset would hold this reservation now (see
    /// [`settle_window_refused`](Self::settle_window_refused)): a caller holding a concurrency
    /// lease should give it back before waiting in [`ready`](Self::ready) again.
    pub fn held_by_window_probe(&self) -> bool {
        let s = lock(&self.scope);
        self.probe_holds(&s, Instant::now())
    }

    /// True when a probed window would hold this reservation now (it passed `ready` before the
    /// window was exhausted, e.g. while it waited for a concurrency lease).
    fn probe_holds(&self, s: &Scope, now: Instant) -> bool {
        let probed = self.probed_windows(s);
        (0..2).any(|i| probed[i] && s.probes[i].would_wait(now, self.probe_of[i], self.counted[i]))
    }

    /// Re-checks the reservation just before sending: it re-books when the scope's pacing
    /// tightened since it was made (a limit was learned where none was known, or lowered), and
    /// moves its slot to the end of a window block (a 429) that began after it was made. A
    /// request that reserved while nothing was known, then waited elsewhere (for a concurrency
    /// lease), must not go out unpaced or into a blocked window — nor into a window being
    /// probed for its reset (see [`settle_window_refused`](Self::settle_window_refused)).
    /// Returns true when the slot moved or a probe holds it; then [`ready`](Self::ready) again
    /// before sending.
    pub fn revalidate(&mut self) -> bool {
        if self.used || self.done {
            return false;
        }
        let now = Instant::now();
        let mut s = lock(&self.scope);
        if self.probe_holds(&s, now) {
            return true;
        }
        if s.epochs() == self.epochs {
            let blocked = s
                .windows
                .iter()
                .zip(self.units)
                .filter(|(_, n)| *n > 0)
                .filter_map(|(w, _)| w.blocked_until(now))
                .max();
            return match blocked {
                Some(until) if until > self.slot => {
                    self.slot = until;
                    true
                }
                _ => false,
            };
        }
        let tail = self.is_tail(&s, now);
        self.unbook(&mut s, tail);
        if self.reestimate {
            if let Some(output) = s.learned_output() {
                // `max_tokens` unknown: re-book at what the replies turned out to cost.
                let input = self.units[BudgetKind::InputTokens.index()];
                self.units = BudgetDemand::new(input, output).units();
            }
        }
        let (slot, cum_after) = s.book(&self.units, now);
        self.slot = slot;
        self.cum_after = cum_after;
        self.epochs = s.epochs();
        self.adjustments = s.adjustments;
        true
    }

    /// True when rewinding this unused reservation restores the state exactly as if it had
    /// never been booked: it is the latest booking, its slot has not passed, and nothing else
    /// changed the windows since (a refund or charge applied after its slot, a header cap or a
    /// limit change were all computed with its units in place).
    fn is_tail(&self, s: &Scope, now: Instant) -> bool {
        s.last_slot == Some(self.slot)
            && self.slot >= now
            && s.adjustments == self.adjustments
            && s.epochs() == self.epochs
            && s.windows
                .iter()
                .zip(self.cum_after)
                .all(|(w, c)| w.cum_reserved == c)
    }

    /// Takes this unsent booking out of the windows (to re-book it, or because it will never
    /// be sent): its pre-debit is rewound when it is the `tail`, and stays spent otherwise —
    /// unless a release already took it out (`Window::release_unsent`).
    fn unbook(&self, s: &mut Scope, tail: bool) {
        s.sent_or_dropped(&self.units);
        for ((w, n), epoch) in s.windows.iter_mut().zip(self.units).zip(self.epochs) {
            w.outstanding -= n;
            let released = w.was_released(epoch, self.slot);
            w.cancel(n, self.slot, tail && !released);
        }
    }

    /// Marks the request as sent: from now on a drop keeps the reservation charged.
    pub fn mark_used(&mut self) {
        if !self.used && !self.done {
            let now = Instant::now();
            self.sent_at = Some(now);
            let mut s = lock(&self.scope);
            s.sent_or_dropped(&self.units);
            if self.units[BudgetKind::Tokens.index()] > 0 {
                s.token_sends += 1;
                self.token_seq = Some(s.token_sends);
            }
            if self.reestimate && s.charge_extra == 0 {
                s.sent_without_extra += 1;
                self.sent_without_extra = true;
            }
            for ((w, n), epoch) in s.windows.iter_mut().zip(self.units).zip(self.epochs) {
                if n > 0 && w.was_released(epoch, self.slot) {
                    // Released, then sent on its old booking (it passed `ready` before the
                    // release and waited elsewhere): it counts from now.
                    w.charge(n, now);
                }
            }
            for i in (0..2).filter(|i| self.units[*i] > 0) {
                s.probes[i].sent(now);
            }
        }
        self.used = true;
    }

    /// Settles against the response now; see [`settle_at`](Self::settle_at).
    pub fn settle(self, usage: Option<TokenUsage>, observation: Option<&RateLimitObservation>) {
        self.settle_at(usage, observation, Instant::now());
    }

    /// Settles at `now`: with `usage`, token windows are refunded or charged the difference
    /// (the request unit stays charged); without it the reservation stays as reserved. Then
    /// applies the response's `observation` (limits learned, `remaining`/reset tightened;
    /// a reset is capped by the ledger's `max_block_seconds`).
    pub fn settle_at(
        self,
        usage: Option<TokenUsage>,
        observation: Option<&RateLimitObservation>,
        now: Instant,
    ) {
        self.settle_inner(usage, observation, now, None, true);
    }

    /// Settles a window 429 that states no reset (no Retry-After, no reset header: a fixed
    /// window behind a proxy) now: like [`settle`](Self::settle) without usage, and the
    /// window (`Requests`, or `Tokens` for any token window) is probed for its reset from now
    /// on — one request at a time, every other reservation of the scope waiting in
    /// [`ready`](Self::ready) — instead of each request retrying into it (see
    /// `budget/probe.rs`). The successes before the first such 429 are taken as what one
    /// window holds.
    pub fn settle_window_refused(
        self,
        kind: BudgetKind,
        observation: Option<&RateLimitObservation>,
    ) {
        let window = usize::from(kind != BudgetKind::Requests);
        self.settle_inner(None, observation, Instant::now(), Some(window), false);
    }

    /// Settles (see the callers); `admitted` when the provider served the request (a 2xx).
    fn settle_inner(
        mut self,
        usage: Option<TokenUsage>,
        observation: Option<&RateLimitObservation>,
        now: Instant,
        refused: Option<usize>,
        admitted: bool,
    ) {
        self.done = true;
        let mut s = lock(&self.scope);
        if !self.used {
            s.sent_or_dropped(&self.units);
        }
        for (w, n) in s.windows.iter_mut().zip(self.units) {
            w.outstanding -= n;
        }
        if let Some(u) = usage {
            s.adjustments += 1;
            s.output_tokens_seen = s.output_tokens_seen.saturating_add(u.output_tokens);
            s.usage_samples += 1;
            // A request without `max_tokens` cost the provider its default, not its usage:
            // the extra the 429s showed stays charged. Refunding down to usage instead let the
            // ledger drift a request's extra ahead of the provider per request, until a header
            // pushed it back half a burst at a time, with 429 waves in between.
            let extra = if self.reestimate { s.charge_extra } else { 0 };
            let actual = [
                1,
                u.total().saturating_add(extra),
                u.input_tokens,
                u.output_tokens.saturating_add(extra),
            ];
            let prepaid = s
                .prepaid_extra
                .filter(|_| self.sent_without_extra)
                .unwrap_or(0);
            let mut reserved_units = self.units;
            for kind in [BudgetKind::Tokens, BudgetKind::OutputTokens] {
                let i = kind.index();
                reserved_units[i] = reserved_units[i].saturating_add(prepaid);
            }
            // The request unit (index 0) stays charged: the request was sent.
            for ((w, reserved), used) in
                s.windows.iter_mut().zip(reserved_units).zip(actual).skip(1)
            {
                if used > reserved {
                    w.charge(used - reserved, now);
                } else {
                    w.refund(reserved - used, now);
                }
            }
        }
        if let Some(obs) = observation {
            let anchor = Anchor {
                cum_after: self.cum_after,
                epochs: self.epochs,
                sent_at: self.sent_at,
            };
            s.observe(obs, Some(&anchor), now, self.max_block);
            if let (Some(seq), Some(sent_at), Some(remaining), true) = (
                self.token_seq,
                self.sent_at,
                obs.tokens.remaining,
                self.reestimate,
            ) {
                // The provider's own refill (the window paces a margin under it).
                let w = &s.windows[BudgetKind::Tokens.index()];
                let interval = obs
                    .tokens
                    .limit
                    .or(w.effective())
                    .filter(|l| *l > 0)
                    .map_or(0, |l| u64::try_from(unit_interval_ns(l)).unwrap_or(0));
                let burst = w.burst();
                let input = self.units[BudgetKind::InputTokens.index()];
                // Only requests without `max_tokens` are read: their charge beyond the prompt
                // is the provider's default, which is what the extra estimates.
                // The median moves only with a new pair.
                if s.charge
                    .reading(seq, sent_at, remaining, admitted, input, interval, burst)
                {
                    s.update_extra(now);
                }
            }
        }
        s.settled += 1;
        s.off_the_wire(self.sent_without_extra);
        let mut wake = s.end_first_contact();
        let sent_at = self.sent_at.unwrap_or(now);
        for i in (0..2).filter(|i| self.units[*i] > 0) {
            wake |= if refused == Some(i) {
                s.probes[i].refused(self.probe_of[i], now, sent_at)
            } else {
                s.probes[i].succeeded(self.probe_of[i], sent_at)
            };
        }
        drop(s);
        if wake {
            self.scope.changed.notify_waiters();
        }
    }

    /// Settles a token-window 429 now: like [`settle`](Self::settle) without usage, and the
    /// refusal teaches what the request needed. A bucket that refuses a request with
    /// `remaining R` left and `retry_after` until it would fit says the request costs about
    /// `R + retry_after × rate` (see [`NeededRange`]); when that is more than the usage-based
    /// estimate, the provider charges more than weir estimates (typically `max_tokens` it
    /// defaults), so later estimates without `max_tokens` add the difference (and, the first
    /// time, the bookings already queued re-book at it).
    pub fn settle_refused(self, observation: Option<&RateLimitObservation>, retry_after: Duration) {
        let needed = observation.and_then(|o| NeededRange::read(&o.tokens, retry_after));
        let (scope, input, output) = (
            self.scope.clone(),
            self.units[BudgetKind::InputTokens.index()],
            self.units[BudgetKind::OutputTokens.index()],
        );
        self.settle_inner(None, observation, Instant::now(), None, false);
        let Some(needed) = needed else { return };
        let mut s = lock(&scope);
        // What weir estimates without the extra: the prompt plus the replies' mean output.
        let usage_based = input.saturating_add(s.mean_output().unwrap_or(output));
        let reading = (
            needed.at_least.saturating_sub(usage_based),
            needed.at_most.saturating_sub(usage_based),
        );
        // Every reading bounds the same extra: keep what they all allow. Readings that
        // disagree (the provider changed, or prompts differ) start over from the latest.
        let (lo, hi) = match s.extra_bounds {
            Some((lo, hi)) if lo.max(reading.0) <= hi.min(reading.1) => {
                (lo.max(reading.0), hi.min(reading.1))
            }
            _ => reading,
        };
        // Never more than the estimate again (a reading is noisy). The first extra re-books
        // what is queued (at its old size the queue would overrun the provider by the
        // difference); later readings refine it, and most of the queue re-books after them,
        // when its old slots come.
        s.extra_bounds = Some((lo.min(usage_based.max(1)), hi.min(usage_based.max(1))));
        s.update_extra(Instant::now());
    }

    /// Gives everything back now (the request was not sent).
    pub fn cancel(self) {
        self.cancel_at(Instant::now());
    }

    /// Gives everything back at `now` (the request was not sent).
    pub fn cancel_at(mut self, now: Instant) {
        self.done = true;
        self.refund_unused(now);
    }

    /// Returns an unused reservation: its pre-debit is taken back when it is still the scope's
    /// latest and its slot has not passed (see `Window::cancel`).
    fn refund_unused(&self, now: Instant) {
        let mut s = lock(&self.scope);
        let tail = self.is_tail(&s, now);
        self.unbook(&mut s, tail);
        s.refunded += 1;
        let mut wake = s.end_first_contact();
        wake |= self.abandon_probes(&mut s);
        for i in (0..2).filter(|i| self.units[*i] > 0 && !self.probe_of[*i]) {
            if let Some(g) = self.counted[i] {
                wake |= s.probes[i].uncount(g);
            }
        }
        drop(s);
        if wake {
            self.scope.changed.notify_waiters();
        }
    }
}

impl Drop for BudgetReservation {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if self.used {
            let mut s = lock(&self.scope);
            for (w, n) in s.windows.iter_mut().zip(self.units) {
                w.outstanding -= n;
            }
            s.kept += 1;
            s.off_the_wire(self.sent_without_extra);
            let mut wake = s.end_first_contact();
            wake |= self.abandon_probes(&mut s);
            drop(s);
            if wake {
                self.scope.changed.notify_waiters();
            }
        } else {
            self.refund_unused(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(limit: u64, remaining: u64) -> WindowObservation {
        WindowObservation {
            limit: Some(limit),
            remaining: Some(remaining),
            reset_after: None,
        }
    }

    #[test]
    fn a_refusal_bounds_what_the_request_needed_by_the_headers_rounding() {
        // 360,000 per minute is 6 tokens a millisecond. A 20-token request refused at level
        // 17.4 waits 0.43 ms, sent as `retry-after-ms: 1` with `remaining: 17`.
        let r = NeededRange::read(&tokens(360_000, 17), Duration::from_millis(1)).unwrap();
        assert_eq!((r.at_least, r.at_most), (18, 23));
        assert!((r.at_least..=r.at_most).contains(&20));
        // Level 13.9, wait 1.02 ms: `retry-after-ms: 2`, `remaining: 13`.
        let r = NeededRange::read(&tokens(360_000, 13), Duration::from_millis(2)).unwrap();
        assert_eq!((r.at_least, r.at_most), (19, 25));
        // A whole-seconds Retry-After is a second wide.
        let r = NeededRange::read(&tokens(60, 0), Duration::from_secs(2)).unwrap();
        assert_eq!((r.at_least, r.at_most), (2, 2));
        assert_eq!(
            NeededRange::read(&WindowObservation::default(), Duration::from_millis(1)),
            None
        );
    }
}
