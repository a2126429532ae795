//! One budget window of one scope: GCRA pacing (virtual scheduling), the header gate, counters.
//!
//! State is the theoretical arrival time `tat` (the instant the window's bucket would be full
//! again, all reservations so far pre-debited), the emission interval `T = ceil(60 s / limit)`
//! and the burst `B` units. A reservation of `n` units gets the slot
//! `s = max(now, floor, tat − (B − min(n, B))·T)` and moves `tat` to `max(tat, s) + n·T`; slots
//! of successive reservations never decrease, so waiters are served in order and each sleeps to
//! its own instant. Refunds and charges are applied at `max(now, last slot)` (after everything
//! already scheduled) and `floor` keeps later slots at or after that instant, so the sequence of
//! events stays in time order — which is what makes the pre-debited `tat` an exact token bucket
//! (see plans/budgets.md for the bound this gives).

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

const MINUTE_NS: u128 = 60_000_000_000;

/// Nanoseconds per unit of a `limit`-per-minute budget (rounded up; `limit` ≥ 1).
pub(crate) fn unit_interval_ns(limit: u64) -> u128 {
    MINUTE_NS.div_ceil(u128::from(limit.max(1)))
}

/// "At most `remaining` more units until `until`" (a header's remaining + reset, or a window 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gate {
    pub until: Instant,
    pub remaining: u64,
}

/// Counters and pacing state of one window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub configured: Option<u64>,
    pub learned: Option<u64>,
    /// The provider bucket's capacity as its headers report it (`remaining + reset / T`, see
    /// [`Window::learn_burst`]); used only while the learned limit is the effective one.
    pub learned_burst: Option<u64>,
    /// Emission interval in ns (0: no effective limit, nothing paced).
    interval_ns: u64,
    burst: u64,
    burst_seconds: f64,
    /// `BudgetConfig::learned_rate_margin`.
    learned_margin: f64,
    tat: Option<Instant>,
    floor: Option<Instant>,
    last_slot: Option<Instant>,
    pub gate: Option<Gate>,
    blocked_until: Option<Instant>,
    /// Tightening pacing changes so far (a limit learned where none was, a lower limit, a
    /// shallower burst): a reservation booked before one re-books. Looser changes keep the
    /// slots already handed out (they are conservative), and blocks are re-checked by the
    /// reservations themselves (`blocked_until`), so neither re-books: a re-book leaves the
    /// old booking's units spent, unless a [`release_unsent`](Self::release_unsent) took them
    /// out first.
    pub changes: u64,
    /// Paced bookings `(slot, units)` whose slot may still be ahead, in booking order (the
    /// ones whose slot passed are dropped as bookings come): what a release can take out.
    ahead: VecDeque<(Instant, u64)>,
    /// Every [`release_unsent`](Self::release_unsent) so far: `(changes after it, instant)`.
    releases: Vec<(u64, Instant)>,
    /// Units reserved so far (monotone; positions reservations for header bookkeeping).
    pub cum_reserved: u64,
    pub outstanding: u64,
    /// Outstanding units not sent yet (no `mark_used`); `outstanding − unsent` is on the wire.
    pub unsent: u64,
    pub admitted: u64,
    pub refunded: u64,
    pub charged: u64,
    pub waits: u64,
    /// Header readings that pushed `tat` back (`cap_level`).
    pub pushbacks: u64,
    pub wait_ns_total: u128,
    pub max_wait_ns: u64,
}

fn ns(d: Duration) -> u128 {
    d.as_nanos()
}

fn dur(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

impl Window {
    pub fn new(configured: Option<u64>, burst_seconds: f64, learned_margin: f64) -> Self {
        let mut w = Self {
            configured: None,
            learned: None,
            learned_burst: None,
            interval_ns: 0,
            burst: 1,
            burst_seconds,
            learned_margin,
            tat: None,
            floor: None,
            last_slot: None,
            gate: None,
            blocked_until: None,
            changes: 0,
            ahead: VecDeque::new(),
            releases: Vec::new(),
            cum_reserved: 0,
            outstanding: 0,
            unsent: 0,
            admitted: 0,
            refunded: 0,
            charged: 0,
            waits: 0,
            pushbacks: 0,
            wait_ns_total: 0,
            max_wait_ns: 0,
        };
        w.configured = configured;
        w.retune(None);
        w
    }

    /// min(configured, learned): the only limit pacing uses.
    pub fn effective(&self) -> Option<u64> {
        match (self.configured, self.learned) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (c, l) => c.or(l),
        }
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Re-derives interval and burst from the effective limit. The change takes effect after
    /// the last slot already handed out (those keep the spacing they were given), keeping the
    /// bucket's *level* there (capped at the new burst; lowered by the depth lost when the
    /// burst shrinks), so a changed limit never hands out units that were not there.
    fn retune(&mut self, now: Option<Instant>) {
        let old_interval = self.interval_ns;
        let old_burst = self.burst;
        let at = now.map(|n| self.effective_at(n));
        let level = match (at, self.tat) {
            (Some(at), Some(tat)) if old_interval > 0 && tat > at => {
                old_burst as f64 - ns(tat - at) as f64 / old_interval as f64
            }
            _ => f64::INFINITY,
        };
        match self.effective() {
            Some(limit) if limit > 0 => {
                // A learned limit is the provider's own rate: aim a little under it.
                let exact = unit_interval_ns(limit);
                let interval = if self.learned == Some(limit) && self.configured != Some(limit) {
                    (exact as f64 / (1.0 - self.learned_margin)).ceil() as u128
                } else {
                    exact
                };
                self.interval_ns = u64::try_from(interval).unwrap_or(u64::MAX);
                self.burst = self.burst_for(limit);
            }
            _ => {
                self.interval_ns = 0;
                self.burst = 1;
            }
        }
        if let Some(at) = at {
            let tightened = (old_interval == 0 && self.interval_ns > 0)
                || (old_interval > 0 && self.interval_ns > old_interval)
                || self.burst < old_burst;
            if tightened {
                self.changes += 1;
            }
            if self.interval_ns == 0 {
                self.tat = None;
            } else {
                if level.is_finite() {
                    // A shallower bucket keeps its deficit below full, not its level: the
                    // units between the two depths were never there to spend (a deeper one
                    // keeps the level, so no units appear either).
                    let level = level - old_burst.saturating_sub(self.burst) as f64;
                    let debt = (self.burst as f64 - level.min(self.burst as f64)).max(0.0);
                    let debt_ns = (debt * self.interval_ns as f64).ceil();
                    self.tat = Some(at + dur(debt_ns as u128));
                } else if self.tat.is_some() {
                    self.tat = Some(self.tat.map_or(at, |t| t.max(at)));
                }
                self.floor = Some(self.floor.map_or(at, |f| f.max(at)));
            }
        }
    }

    /// Sets the learned limit (a header's full window size) and re-derives the pacing.
    pub fn learn_limit(&mut self, limit: u64, now: Instant) {
        if limit == 0 || self.learned == Some(limit) {
            return;
        }
        let before = self.effective();
        self.learned = Some(limit);
        if self.effective() != before {
            self.retune(Some(now));
        }
    }

    /// The largest burst a header may teach: one second's worth of the limit (at least one
    /// unit). Providers quantize per-minute limits into shorter windows (OpenAI: "60,000 RPM may
    /// be enforced as 1,000 per second"), so a bucket reported as a whole minute deep is not
    /// spent in one go.
    fn burst_cap(limit: u64) -> u64 {
        (limit / 60).max(1)
    }

    /// A bucket-shaped header said the provider's bucket holds `burst` units when full. Only
    /// grows (a later, smaller reading is a rounding of the same bucket) and only applies while
    /// the learned limit is the effective one: a tighter configured budget keeps its own burst.
    pub fn learn_burst(&mut self, burst: u64, now: Instant) {
        if burst <= self.learned_burst.unwrap_or(0) {
            return;
        }
        self.learned_burst = Some(burst);
        if let Some(limit) = self.effective().filter(|l| *l > 0) {
            if self.burst_for(limit) != self.burst {
                self.retune(Some(now));
            }
        }
    }

    /// The burst at effective limit `limit`: `burst_seconds` worth (at least one unit), or the
    /// learned bucket depth (capped) when the learned limit is the effective one and deeper.
    fn burst_for(&self, limit: u64) -> u64 {
        let base = ((limit as f64 * self.burst_seconds / 60.0).floor() as u64).max(1);
        match self.learned_burst {
            Some(b) if self.learned == Some(limit) => base.max(b.min(Self::burst_cap(limit))),
            _ => base,
        }
    }

    /// Requests turned out to cost more than reserved, and the bookings not sent yet re-book
    /// at the higher cost. Those whose slot is still ahead are the tail of the booking order
    /// (slots never decrease, and a sent booking's slot has passed), so their units come out
    /// of `tat` exactly, and each re-books from where the kept ones end rather than after its
    /// own old booking: re-booking with the old units spent idled the provider for the whole
    /// queue's length (2 s of a 10 s run). Bookings whose slot has passed stay spent. Refunds
    /// and charges that took effect after the queue now take effect now: the responses they
    /// came from have arrived, nothing kept has a slot past `now`.
    /// A released booking is then re-booked, charged when sent, or dropped
    /// (`BudgetReservation::unbook`, `mark_used`).
    pub fn release_unsent(&mut self, now: Instant) {
        self.drop_passed(now);
        let ahead: u64 = self.ahead.drain(..).map(|(_, n)| n).sum();
        if let (Some(tat), true) = (self.tat, self.interval_ns > 0 && ahead > 0) {
            let back = dur(u128::from(ahead) * u128::from(self.interval_ns));
            self.tat = Some(tat.checked_sub(back).unwrap_or(now));
        }
        self.last_slot = self.last_slot.map(|l| l.min(now));
        self.floor = self.floor.map(|f| f.min(now));
        self.changes += 1;
        self.releases.push((self.changes, now));
    }

    /// True when a booking at slot `slot`, made at pacing epoch `epoch` and not sent, was
    /// taken out of `tat` by a release (the first one after it, if its slot was still ahead).
    pub fn was_released(&self, epoch: u64, slot: Instant) -> bool {
        self.releases
            .iter()
            .find(|(change, _)| epoch < *change)
            .is_some_and(|(_, at)| slot > *at)
    }

    /// Forgets the bookings whose slot has passed (a release keeps them spent).
    fn drop_passed(&mut self, now: Instant) {
        while self.ahead.front().is_some_and(|(slot, _)| *slot <= now) {
            self.ahead.pop_front();
        }
    }

    /// Sets the configured limit (a tighter alias registered later) and re-derives the pacing.
    pub fn configure(&mut self, limit: Option<u64>, now: Instant) {
        let before = self.effective();
        self.configured = limit;
        if self.effective() != before {
            self.retune(Some(now));
        }
    }

    /// The earliest instant the GCRA and the floor admit `n` units.
    pub fn earliest(&self, n: u64, now: Instant) -> Instant {
        if n == 0 {
            return now;
        }
        let mut s = now;
        if let Some(f) = self.floor {
            s = s.max(f);
        }
        if let (Some(tat), true) = (self.tat, self.interval_ns > 0) {
            let credit = u128::from(self.burst - n.min(self.burst)) * u128::from(self.interval_ns);
            if let Some(t) = tat.checked_sub(dur(credit)) {
                s = s.max(t);
            }
        }
        s
    }

    /// `s`, or the gate's end when the gate cannot take `n` more units before then.
    pub fn gate_push(&self, n: u64, s: Instant) -> Instant {
        match self.gate {
            Some(g) if n > 0 && s < g.until && g.remaining < n => g.until,
            _ => s,
        }
    }

    /// Books `n` units at slot `s` (after `earliest`/`gate_push` agreed on it).
    pub fn commit(&mut self, n: u64, s: Instant, now: Instant) -> u64 {
        self.cum_reserved = self.cum_reserved.saturating_add(n);
        if n == 0 {
            return self.cum_reserved;
        }
        self.unsent += n;

        if self.interval_ns > 0 {
            let base = self.tat.map_or(s, |t| t.max(s));
            self.tat = Some(base + dur(u128::from(n) * u128::from(self.interval_ns)));
            self.drop_passed(now);
            self.ahead.push_back((s, n));
        }
        if let Some(g) = &mut self.gate {
            if s < g.until {
                g.remaining = g.remaining.saturating_sub(n);
            }
        }
        self.last_slot = Some(self.last_slot.map_or(s, |l| l.max(s)));
        self.outstanding += n;
        self.admitted = self.admitted.saturating_add(n);
        if s > now {
            let w = ns(s - now);
            self.waits += 1;
            self.wait_ns_total += w;
            self.max_wait_ns = self.max_wait_ns.max(u64::try_from(w).unwrap_or(u64::MAX));
        }
        self.cum_reserved
    }

    /// The instant refunds and charges take effect: after every slot handed out so far.
    fn effective_at(&self, now: Instant) -> Instant {
        self.last_slot.map_or(now, |l| l.max(now))
    }

    /// Gives back `n` units a sent request did not use (its usage was below the estimate),
    /// capped at a full bucket and effective after every slot handed out so far; later slots
    /// never precede that instant. (A provider that charges the estimate at admission and
    /// corrects it at completion behaves the same way.)
    pub fn refund(&mut self, n: u64, now: Instant) {
        if n == 0 {
            return;
        }
        let at = self.effective_at(now);
        if let (Some(tat), true) = (self.tat, self.interval_ns > 0) {
            self.floor = Some(self.floor.map_or(at, |f| f.max(at)));
            let back = dur(u128::from(n) * u128::from(self.interval_ns));
            let lowered = tat.checked_sub(back).unwrap_or(at);
            self.tat = Some(lowered.max(at));
        }
        self.refunded = self.refunded.saturating_add(n);
    }

    /// Takes back the pre-debit of an unused reservation of `n` units — only when it is the
    /// latest one and its slot has not passed (`tail`): then the state is exactly as if it had
    /// never been made (up to its slot). Otherwise the units stay spent: rewinding past later
    /// slots, or giving them back later (a refund), could admit more than the provider's bucket
    /// holds — the bucket would have had them earlier, and a full bucket loses refill (the
    /// proptest found all three).
    pub fn cancel(&mut self, n: u64, slot: Instant, tail: bool) {
        if n == 0 {
            return;
        }
        if let (Some(tat), true) = (self.tat, tail && self.interval_ns > 0) {
            let back = dur(u128::from(n) * u128::from(self.interval_ns));
            if let Some(t) = tat.checked_sub(back) {
                self.tat = Some(t);
            }
            // Rewound: no longer in `tat` for a release to take out.
            if self.ahead.back() == Some(&(slot, n)) {
                self.ahead.pop_back();
            }
        }
        self.refunded = self.refunded.saturating_add(n);
    }

    /// Charges `n` units a response used beyond its reservation.
    pub fn charge(&mut self, n: u64, now: Instant) {
        if n == 0 {
            return;
        }
        if self.interval_ns > 0 {
            let at = self.effective_at(now);
            // Later slots stay at or after the charge, so events remain in time order.
            self.floor = Some(self.floor.map_or(at, |f| f.max(at)));
            let base = self.tat.map_or(at, |t| t.max(at));
            self.tat = Some(base + dur(u128::from(n) * u128::from(self.interval_ns)));
        }
        if let Some(g) = &mut self.gate {
            g.remaining = g.remaining.saturating_sub(n);
        }
        self.charged = self.charged.saturating_add(n);
        self.admitted = self.admitted.saturating_add(n);
    }

    /// A header said "`remaining` left at `at`" (when the request it answers was sent), not
    /// counting the `after` units booked after that request (which `tat` holds): the bucket is
    /// full again no earlier than `at + (burst + after − remaining)·T`. Applied only when that
    /// is more than half a burst (at least one unit) past `tat`: a header is off by a few units
    /// either way (the request's time on the wire, rounding), and taking the max of noisy
    /// readings would ratchet the pacing below the rate. A real drift (the provider charging
    /// more per request than reserved, another client on the same key) grows past the
    /// tolerance and is taken in one step.
    pub fn cap_level(&mut self, remaining: u64, after: u64, at: Instant) {
        let debt = self.burst.saturating_add(after);
        if self.interval_ns == 0 || remaining >= debt {
            return;
        }
        let interval = u128::from(self.interval_ns);
        let floor_tat = at + dur(u128::from(debt - remaining) * interval);
        let tolerance = dur(u128::from((self.burst / 2).max(1)) * interval);
        match self.tat {
            Some(t) if floor_tat <= t + tolerance => {}
            _ => {
                self.pushbacks += 1;
                self.tat = Some(floor_tat);
            }
        }
    }

    /// Installs "at most `remaining` more until `until`". A newer observation that lasts at
    /// least as long replaces the old gate (it already counts everything before it); a shorter
    /// one only lowers the old gate's remaining.
    pub fn install_gate(&mut self, gate: Gate, now: Instant) {
        if gate.until <= now {
            return;
        }
        self.gate = match self.gate.filter(|g| g.until > now) {
            Some(old) if old.until > gate.until => Some(Gate {
                until: old.until,
                remaining: old.remaining.min(gate.remaining),
            }),
            _ => Some(gate),
        };
    }

    /// Blocks the window until `until` (a window 429): nothing more before then.
    pub fn block(&mut self, until: Instant, now: Instant) {
        if until <= now {
            return;
        }
        let until = self.gate.filter(|g| g.until > now).map_or(until, |g| {
            if g.remaining == 0 {
                g.until.max(until)
            } else {
                until
            }
        });
        self.gate = Some(Gate {
            until,
            remaining: 0,
        });
        // Reservations already scheduled before the block re-check it when their slot comes
        // (`BudgetReservation::ready`) and before they are sent (`revalidate`).
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// The end of a block (window 429) still in force at `now`.
    pub fn blocked_until(&self, now: Instant) -> Option<Instant> {
        self.blocked_until.filter(|b| *b > now)
    }

    /// The gate still in force at `now`.
    pub fn active_gate(&self, now: Instant) -> Option<Gate> {
        self.gate.filter(|g| g.until > now)
    }
}
