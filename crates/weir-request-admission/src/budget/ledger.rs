//! `BudgetLedger`: the scopes' windows, reservations that settle or refund exactly once, header
//! observations and window blocks.

use super::limits::{BudgetConfig, BudgetConfigError, BudgetDemand, BudgetKind, BudgetLimits};
use super::snapshot::{BudgetScopeSnapshot, BudgetWindowSnapshot};
use super::window::{Gate, Window};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::{ProviderModelKey, RateLimitObservation, TokenUsage, WindowObservation};

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
}

impl Scope {
    fn new(limits: BudgetLimits, config: &BudgetConfig) -> Self {
        Self {
            windows: BudgetKind::ALL.map(|k| Window::new(limits.get(k), config.burst_seconds)),
            reservations: 0,
            settled: 0,
            refunded: 0,
            kept: 0,
            last_slot: None,
            output_tokens_seen: 0,
            usage_samples: 0,
        }
    }

    /// Pacing changes so far, over all windows.
    fn epoch(&self) -> u64 {
        self.windows.iter().map(|w| w.changes).sum()
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

    /// Applies what a response said; `cum_after` positions the reservation it came with, so
    /// units reserved after it (which its `remaining` did not count) are subtracted.
    fn observe(
        &mut self,
        obs: &RateLimitObservation,
        cum_after: Option<&[u64; 4]>,
        now: Instant,
        max_block: Duration,
    ) {
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
            if let Some(limit) = part.limit.filter(|l| *l > 0) {
                w.learn_limit(limit.min(BudgetLimits::MAX_PER_MINUTE), now);
            }
            if let Some(remaining) = part.remaining {
                let after = match cum_after {
                    Some(c) => w.cum_reserved.saturating_sub(c[i]),
                    None => w.outstanding,
                };
                let left = remaining.saturating_sub(after);
                w.cap_level(left, now);
                if let Some(reset) = part.reset_after.filter(|r| !r.is_zero()) {
                    let gate = Gate {
                        until: now + reset.min(max_block),
                        remaining: left,
                    };
                    w.install_gate(gate, now);
                }
            }
        }
    }
}

fn lock(scope: &Mutex<Scope>) -> MutexGuard<'_, Scope> {
    // Plain counters: a panic elsewhere leaves them usable.
    scope.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Request and token budgets per limit scope (provider + model), beside the adaptive
/// concurrency limit. Cheap to share (`Arc`); every method takes only the scope's own lock and
/// never holds it across an `.await`.
#[derive(Debug)]
pub struct BudgetLedger {
    config: BudgetConfig,
    max_block: Duration,
    scopes: RwLock<HashMap<ProviderModelKey, Arc<Mutex<Scope>>>>,
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

    fn scope(&self, key: &ProviderModelKey) -> Arc<Mutex<Scope>> {
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
            .or_insert_with(|| Arc::new(Mutex::new(Scope::new(BudgetLimits::none(), &self.config))))
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
        let learned = max_tokens.is_none().then(|| {
            let arc = self.scope(scope);
            let s = lock(&arc);
            (s.usage_samples > 0).then(|| s.output_tokens_seen.div_ceil(s.usage_samples))
        });
        BudgetDemand::estimate(prompt_chars, max_tokens.or(learned.flatten()), &self.config)
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
        let (slot, cum_after, epoch) = {
            let mut s = lock(&arc);
            let (slot, cum_after) = s.book(&units, now);
            s.reservations += 1;
            (slot, cum_after, s.epoch())
        };
        BudgetReservation {
            scope: arc,
            units,
            cum_after,
            slot,
            reserved_at: now,
            epoch,
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
        let scopes: Vec<(ProviderModelKey, Arc<Mutex<Scope>>)> = self
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
        outstanding: s.outstanding(),
    }
}

/// One request's reservation on a scope's budgets. Settle it with the response
/// ([`settle`](Self::settle)); dropped before [`mark_used`](Self::mark_used) it refunds
/// everything, dropped after it keeps the reservation as charged (the provider counted the
/// request). Either way exactly once: the methods consume it and `Drop` checks `done`.
#[derive(Debug)]
pub struct BudgetReservation {
    scope: Arc<Mutex<Scope>>,
    units: [u64; 4],
    cum_after: [u64; 4],
    slot: Instant,
    reserved_at: Instant,
    epoch: u64,
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

    /// Sleeps (a tokio timer, no polling) until the budget admits this request; a window
    /// blocked by a 429 after this reservation was made moves the slot to the block's end.
    /// Cancel-safe: dropping the future leaves the reservation unused (its drop refunds it).
    pub async fn ready(&mut self) {
        loop {
            if self.slot > Instant::now() {
                tokio::time::sleep_until(self.slot).await;
            }
            let now = Instant::now();
            let blocked = {
                let s = lock(&self.scope);
                s.windows
                    .iter()
                    .zip(self.units)
                    .filter(|(_, n)| *n > 0)
                    .filter_map(|(w, _)| w.blocked_until(now))
                    .max()
            };
            match blocked {
                Some(until) if until > self.slot => self.slot = until,
                _ => return,
            }
        }
    }

    /// Re-books the reservation when the scope's pacing changed since it was made (a limit was
    /// learned or changed, or a window was blocked): a request that reserved while nothing was
    /// known, then waited elsewhere (for a concurrency lease), must not go out unpaced. Returns
    /// true when it re-booked; then [`ready`](Self::ready) again before sending.
    pub fn revalidate(&mut self) -> bool {
        if self.used || self.done {
            return false;
        }
        let now = Instant::now();
        let mut s = lock(&self.scope);
        if s.epoch() == self.epoch {
            return false;
        }
        let tail = self.is_tail(&s, now);
        for (w, n) in s.windows.iter_mut().zip(self.units) {
            w.outstanding -= n;
            w.cancel(n, tail);
        }
        let (slot, cum_after) = s.book(&self.units, now);
        self.slot = slot;
        self.cum_after = cum_after;
        self.epoch = s.epoch();
        true
    }

    fn is_tail(&self, s: &Scope, now: Instant) -> bool {
        s.last_slot == Some(self.slot)
            && self.slot >= now
            && s.windows
                .iter()
                .zip(self.cum_after)
                .all(|(w, c)| w.cum_reserved == c)
    }

    /// Marks the request as sent: from now on a drop keeps the reservation charged.
    pub fn mark_used(&mut self) {
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
        mut self,
        usage: Option<TokenUsage>,
        observation: Option<&RateLimitObservation>,
        now: Instant,
    ) {
        self.done = true;
        let mut s = lock(&self.scope);
        for (w, n) in s.windows.iter_mut().zip(self.units) {
            w.outstanding -= n;
        }
        if let Some(u) = usage {
            s.output_tokens_seen = s.output_tokens_seen.saturating_add(u.output_tokens);
            s.usage_samples += 1;
            let actual = [1, u.total(), u.input_tokens, u.output_tokens];
            // The request unit (index 0) stays charged: the request was sent.
            for ((w, reserved), used) in s.windows.iter_mut().zip(self.units).zip(actual).skip(1) {
                if used > reserved {
                    w.charge(used - reserved, now);
                } else {
                    w.refund(reserved - used, now);
                }
            }
        }
        if let Some(obs) = observation {
            s.observe(obs, Some(&self.cum_after), now, self.max_block);
        }
        s.settled += 1;
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
        let tail = s.last_slot == Some(self.slot)
            && self.slot >= now
            && s.windows
                .iter()
                .zip(self.cum_after)
                .all(|(w, c)| w.cum_reserved == c);
        for (w, n) in s.windows.iter_mut().zip(self.units) {
            w.outstanding -= n;
            w.cancel(n, tail);
        }
        s.refunded += 1;
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
        } else {
            self.refund_unused(Instant::now());
        }
    }
}
