//! `WindowProbe`: pacing a rate window whose reset nobody states — a fixed window that answers
//! 429 with no Retry-After and no reset header (a LiteLLM proxy's `rpm` limit).
//!
//! Retrying each refused request on its own backoff keeps most attempts probing the exhausted
//! window (74 % of attempts were 429s). Instead, the first such 429 ends the window: from then
//! on one request at a time probes it, after 100 ms, then doubling up to 1 s between probes,
//! while every other request of the scope waits (no timer each, one wake-up when the window
//! reopens). The successes counted before that first 429 are what one window holds; after a
//! probe succeeds (the window reset), that many go out, then probing starts again — so each
//! window costs its probes and not a wave of 429s.
//!
//! Each reset found also bounds the window's period from below: the first window began no
//! later than the first request sent to it, and every reset lies after the last refused
//! request's send. So the next reset lies at least that period after the last one, and the
//! probing of a later window starts there instead of 100 ms after it ran out, doubling from
//! 100 ms up to 250 ms only: fewer probes (fewer 429s), and the reset found sooner. A window
//! that ran out by count keeps sending what was counted in it (nothing refused them yet).
//!
//! Pure state: the ledger holds one per window under the scope's lock and calls it from
//! `BudgetReservation::ready`/`revalidate` and the settle paths.

use std::time::Duration;
use tokio::time::Instant;

/// Wait before the first probe of an exhausted window.
const FIRST_PROBE: Duration = Duration::from_millis(100);
/// Longest wait between probes: bounds how late a reset is noticed.
const MAX_PROBE: Duration = Duration::from_secs(1);
/// Longest wait between probes from the earliest instant a reset can be (it is due soon).
const MAX_NEAR_PROBE: Duration = Duration::from_millis(250);

/// What a reservation may do about one window now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeVerdict {
    /// Go (the window is open, or this reservation is the probe).
    Pass,
    /// Go as the window's probe.
    Probe,
    /// Wait until this instant (the next probe), or a wake-up.
    WaitUntil(Instant),
    /// Wait for a wake-up (the probe's result).
    Wait,
}

#[derive(Debug, Clone, Copy)]
struct Probing {
    open_at: Instant,
    interval: Duration,
    taken: bool,
    /// A 429 said the window is refusing (else it ran out by count).
    closed: bool,
    /// The longest wait between probes.
    max_interval: Duration,
}

/// One window's probe state (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct WindowProbe {
    /// Requests one window holds, learned from the successes before the first 429.
    per_window: Option<u64>,
    /// Successes since the window (re)opened.
    successes: u64,
    /// Requests still let through in the current window (`None`: not counted).
    left: Option<u64>,
    probing: Option<Probing>,
    /// Bumped when the window reopens: a reservation counted in an earlier window counts again.
    generation: u64,
    /// 429s that ended a window or a probe (for the snapshot).
    pub refusals: u64,
    /// When the first request was sent: the first window began no later.
    first_sent: Option<Instant>,
    /// The latest send of a refused request while probing: the window was still closed then.
    closed_at: Option<Instant>,
    /// The last window start found: after `.0`, no later than `.1` (the probe's send).
    last_start: Option<(Instant, Instant)>,
    /// A lower bound on the window's period, from the resets found so far.
    period_at_least: Option<Duration>,
}

impl WindowProbe {
    /// True when nothing was learned yet: every reservation passes without counting.
    pub fn is_idle(&self) -> bool {
        self.per_window.is_none() && self.probing.is_none()
    }

    /// True while the window is being probed.
    pub fn is_probing(&self) -> bool {
        self.probing.is_some()
    }

    /// The current window's generation (see [`admit`](Self::admit)).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What a reservation that is (`is_probe`) or is not the probe, and was last counted in
    /// generation `counted`, may do at `now`. Takes the probe or counts the request when it
    /// says so (`Probe`, or `Pass` in an uncounted generation).
    pub fn admit(&mut self, now: Instant, is_probe: bool, counted: Option<u64>) -> ProbeVerdict {
        if counted == Some(self.generation) {
            // Counted in the window that is still current (it ran out by count, nothing was
            // refused): this one fits in it.
            return ProbeVerdict::Pass;
        }
        if let Some(p) = &mut self.probing {
            if is_probe {
                return ProbeVerdict::Pass;
            }
            if now < p.open_at {
                return ProbeVerdict::WaitUntil(p.open_at);
            }
            if !p.taken {
                p.taken = true;
                return ProbeVerdict::Probe;
            }
            return ProbeVerdict::Wait;
        }
        match self.left {
            Some(0) => {
                // Used up what a window holds: probe for the reset instead of meeting it with
                // a wave of 429s, from where the next reset can first be.
                let earliest = self.earliest_reset();
                let open_at = earliest.map_or(now + FIRST_PROBE, |t| t.max(now));
                let max_interval = if earliest.is_some() {
                    MAX_NEAR_PROBE
                } else {
                    MAX_PROBE
                };
                // The ones counted in this window still go: it is not refusing yet.
                self.start_probing(open_at, max_interval, false);
                ProbeVerdict::WaitUntil(open_at)
            }
            Some(n) => {
                self.left = Some(n - 1);
                ProbeVerdict::Pass
            }
            None => ProbeVerdict::Pass,
        }
    }

    /// Peeks without taking anything: would a reservation have to wait now?
    pub fn would_wait(&self, now: Instant, is_probe: bool, counted: Option<u64>) -> bool {
        if counted == Some(self.generation) {
            return false;
        }
        match &self.probing {
            Some(_) if is_probe => false,
            Some(p) => now < p.open_at || p.taken,
            None => self.left == Some(0),
        }
    }

    /// Starts probing at `open_at`, doubling the wait up to `max_interval`; `closed` when a
    /// 429 said the window is refusing (what was counted in it must be counted again), not
    /// when it ran out by count.
    fn start_probing(&mut self, open_at: Instant, max_interval: Duration, closed: bool) {
        self.probing = Some(Probing {
            open_at,
            interval: FIRST_PROBE,
            taken: false,
            closed,
            max_interval,
        });
        if closed {
            self.generation += 1;
        }
    }

    /// Notes a request of this window sent at `at` (the first one bounds the first window).
    pub fn sent(&mut self, at: Instant) {
        self.first_sent.get_or_insert(at);
    }

    /// The earliest instant the next window can begin, once a reset was found: the last
    /// start's lower bound plus the period's.
    fn earliest_reset(&self) -> Option<Instant> {
        Some(self.last_start?.0 + self.period_at_least?)
    }

    /// A request of this window sent at `sent_at` got an answer that was not a window 429.
    /// Returns true when it was the probe and the window reopened (wake everyone).
    pub fn succeeded(&mut self, was_probe: bool, sent_at: Instant) -> bool {
        self.successes += 1;
        if self.probing.is_some() && !was_probe {
            // Sent before the window ran out, answered after its first 429 (answers do not
            // keep send order): the window held this one too.
            if let Some(n) = &mut self.per_window {
                *n = (*n).max(self.successes);
            }
        }
        if !(was_probe && self.probing.is_some()) {
            return false;
        }
        self.learn_period(sent_at);
        self.probing = None;
        self.successes = 1;
        self.left = self.per_window.map(|s| s.saturating_sub(1));
        self.generation += 1;
        true
    }

    /// The probe sent at `opened` found the window open: it began after the last refused
    /// send and no later than `opened`. The previous start (or, the first time, the first
    /// send) was no later than its upper bound, so the period is at least the difference.
    fn learn_period(&mut self, opened: Instant) {
        let Some(closed) = self.closed_at.take() else {
            return;
        };
        let began_by = self.last_start.map(|(_, hi)| hi).or(self.first_sent);
        if let Some(began_by) = began_by {
            let p = closed.saturating_duration_since(began_by);
            self.period_at_least = Some(self.period_at_least.map_or(p, |q| q.max(p)));
        }
        self.last_start = Some((closed, opened.max(closed)));
    }

    /// A window 429 with no known reset, answered at `now` to a request sent at `sent_at`.
    /// Returns true when waiters must re-check.
    pub fn refused(&mut self, was_probe: bool, now: Instant, sent_at: Instant) -> bool {
        if self.per_window.is_none() {
            self.per_window = Some(self.successes.max(1));
        }
        self.closed_at = Some(self.closed_at.map_or(sent_at, |c| c.max(sent_at)));
        match &mut self.probing {
            Some(p) if was_probe => {
                self.refusals += 1;
                p.interval = (p.interval * 2).min(p.max_interval);
                p.open_at = now + p.interval;
                p.taken = false;
                true
            }
            // A request sent before probing began: the window is already being probed. If it
            // ran out by count, it is refusing sooner than counted: what was counted in it
            // waits for the probe too.
            Some(p) => {
                if p.closed {
                    return false;
                }
                p.closed = true;
                self.refusals += 1;
                self.generation += 1;
                true
            }
            None => {
                self.refusals += 1;
                self.left = Some(0);
                self.start_probing(now + FIRST_PROBE, MAX_PROBE, true);
                true
            }
        }
    }

    /// A reservation counted in generation `counted` was given back unsent: its place in the
    /// window is free again. Returns true when that ends a probing the count had started
    /// (waiters must re-check).
    pub fn uncount(&mut self, counted: u64) -> bool {
        if counted != self.generation {
            return false;
        }
        let Some(n) = self.left else {
            return false;
        };
        self.left = Some(n + 1);
        if self.probing.is_some_and(|p| !p.closed && !p.taken) {
            self.probing = None;
            return true;
        }
        false
    }

    /// The probe ended without an answer (dropped, cancelled): the next waiter probes.
    pub fn probe_abandoned(&mut self) -> bool {
        match &mut self.probing {
            Some(p) if p.taken => {
                p.taken = false;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        // A fixed origin: the state machine only compares instants.
        thread_local!(static ORIGIN: Instant = Instant::now());
        ORIGIN.with(|o| *o + Duration::from_millis(ms))
    }

    #[test]
    fn the_first_429_learns_the_window_and_one_probe_at_a_time_finds_the_reset() {
        let mut p = WindowProbe::default();
        assert!(p.is_idle());
        for _ in 0..5 {
            assert_eq!(p.admit(at(0), false, None), ProbeVerdict::Pass);
            assert!(!p.succeeded(false, at(0)));
        }
        assert!(p.refused(false, at(10), at(10)));
        assert!(
            !p.refused(false, at(11), at(11)),
            "the rest of the wave changes nothing"
        );
        assert_eq!(
            p.admit(at(50), false, None),
            ProbeVerdict::WaitUntil(at(110))
        );
        assert_eq!(p.admit(at(110), false, None), ProbeVerdict::Probe);
        assert_eq!(p.admit(at(110), false, None), ProbeVerdict::Wait);
        assert!(
            p.refused(true, at(120), at(120)),
            "the probe failed: the next is 200 ms later"
        );
        assert_eq!(
            p.admit(at(130), false, None),
            ProbeVerdict::WaitUntil(at(320))
        );
        assert_eq!(p.admit(at(320), false, None), ProbeVerdict::Probe);
        assert!(p.succeeded(true, at(320)), "the window reset");
        // Five per window, the probe was one of them: four more, then probing again.
        let g = Some(p.generation());
        let passes = (0..4)
            .map(|_| p.admit(at(330), false, None))
            .filter(|v| *v == ProbeVerdict::Pass)
            .count();
        assert_eq!(passes, 4);
        assert_eq!(
            p.admit(at(330), false, g),
            ProbeVerdict::Pass,
            "counted once"
        );
        assert_eq!(
            p.admit(at(330), false, None),
            ProbeVerdict::WaitUntil(at(430))
        );
    }

    #[test]
    fn a_found_reset_bounds_the_period_and_the_next_probing_starts_there() {
        let mut p = WindowProbe::default();
        p.sent(at(0));
        for _ in 0..3 {
            p.succeeded(false, at(0));
        }
        // Three fit; a request sent at 400 is refused (answered at 500), so is the probe
        // sent at 600.
        assert!(p.refused(false, at(500), at(400)));
        assert_eq!(p.admit(at(600), false, None), ProbeVerdict::Probe);
        assert!(p.refused(true, at(700), at(600)));
        // The next probe, sent at 900, finds the window open: it began in (600, 900], and the
        // first one no later than 0, so the period is more than 600 ms.
        assert_eq!(p.admit(at(900), false, None), ProbeVerdict::Probe);
        assert!(p.succeeded(true, at(900)));
        let passes = (0..2)
            .map(|_| p.admit(at(900), false, None))
            .filter(|v| *v == ProbeVerdict::Pass)
            .count();
        assert_eq!(passes, 2, "three per window, the probe was one");
        assert_eq!(
            p.admit(at(900), false, None),
            ProbeVerdict::WaitUntil(at(1_200)),
            "no probe before the earliest next reset (600 + 600)"
        );
        assert_eq!(p.admit(at(1_200), false, None), ProbeVerdict::Probe);
        assert!(p.refused(true, at(1_300), at(1_200)));
        assert_eq!(
            p.admit(at(1_300), false, None),
            ProbeVerdict::WaitUntil(at(1_500)),
            "then the usual doubling"
        );
        assert_eq!(p.admit(at(1_500), false, None), ProbeVerdict::Probe);
        assert!(p.refused(true, at(1_600), at(1_500)));
        assert_eq!(
            p.admit(at(1_600), false, None),
            ProbeVerdict::WaitUntil(at(1_850)),
            "up to 250 ms: the reset is due"
        );
    }

    #[test]
    fn the_wait_between_probes_doubles_up_to_a_second() {
        let mut p = WindowProbe::default();
        p.refused(false, at(0), at(0));
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let ProbeVerdict::WaitUntil(t) = p.admit(at(now), false, None) else {
                panic!("expected a wait");
            };
            now = u64::try_from((t - at(0)).as_millis()).unwrap_or(u64::MAX);
            assert_eq!(p.admit(at(now), false, None), ProbeVerdict::Probe);
            p.refused(true, at(now), at(now));
            waits.push(now);
        }
        assert_eq!(waits, vec![100, 300, 700, 1_500, 2_500, 3_500]);
    }

    #[test]
    fn an_abandoned_probe_hands_over() {
        let mut p = WindowProbe::default();
        p.refused(false, at(0), at(0));
        assert_eq!(p.admit(at(100), false, None), ProbeVerdict::Probe);
        assert_eq!(p.admit(at(100), false, None), ProbeVerdict::Wait);
        assert!(p.probe_abandoned());
        assert_eq!(p.admit(at(100), false, None), ProbeVerdict::Probe);
    }
}
