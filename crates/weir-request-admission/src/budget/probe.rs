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
//! Pure state: the ledger holds one per window under the scope's lock and calls it from
//! `BudgetReservation::ready`/`revalidate` and the settle paths.

use std::time::Duration;
use tokio::time::Instant;

/// Wait before the first probe of an exhausted window.
const FIRST_PROBE: Duration = Duration::from_millis(100);
/// Longest wait between probes: bounds how late a reset is noticed.
const MAX_PROBE: Duration = Duration::from_secs(1);

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
        if counted == Some(self.generation) {
            return ProbeVerdict::Pass;
        }
        match self.left {
            Some(0) => {
                // Used up what a window holds: probe for the reset instead of meeting it with
                // a wave of 429s.
                let open_at = now + FIRST_PROBE;
                self.start_probing(open_at, FIRST_PROBE);
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
        match &self.probing {
            Some(_) if is_probe => false,
            Some(p) => now < p.open_at || p.taken,
            None => counted != Some(self.generation) && self.left == Some(0),
        }
    }

    fn start_probing(&mut self, open_at: Instant, interval: Duration) {
        self.probing = Some(Probing {
            open_at,
            interval,
            taken: false,
        });
        self.generation += 1;
    }

    /// A request of this window got an answer that was not a window 429. Returns true when it
    /// was the probe and the window reopened (wake everyone).
    pub fn succeeded(&mut self, was_probe: bool) -> bool {
        self.successes += 1;
        if !(was_probe && self.probing.is_some()) {
            return false;
        }
        self.probing = None;
        self.successes = 1;
        self.left = self.per_window.map(|s| s.saturating_sub(1));
        self.generation += 1;
        true
    }

    /// A window 429 with no known reset at `now`. Returns true when waiters must re-check.
    pub fn refused(&mut self, was_probe: bool, now: Instant) -> bool {
        if self.per_window.is_none() {
            self.per_window = Some(self.successes.max(1));
        }
        match &mut self.probing {
            Some(p) if was_probe => {
                self.refusals += 1;
                p.interval = (p.interval * 2).min(MAX_PROBE);
                p.open_at = now + p.interval;
                p.taken = false;
                true
            }
            // A request sent before probing began: the window is already being probed.
            Some(_) => false,
            None => {
                self.refusals += 1;
                self.left = Some(0);
                self.start_probing(now + FIRST_PROBE, FIRST_PROBE);
                true
            }
        }
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
            assert!(!p.succeeded(false));
        }
        assert!(p.refused(false, at(10)));
        assert!(
            !p.refused(false, at(11)),
            "the rest of the wave changes nothing"
        );
        assert_eq!(
            p.admit(at(50), false, None),
            ProbeVerdict::WaitUntil(at(110))
        );
        assert_eq!(p.admit(at(110), false, None), ProbeVerdict::Probe);
        assert_eq!(p.admit(at(110), false, None), ProbeVerdict::Wait);
        assert!(
            p.refused(true, at(120)),
            "the probe failed: the next is 200 ms later"
        );
        assert_eq!(
            p.admit(at(130), false, None),
            ProbeVerdict::WaitUntil(at(320))
        );
        assert_eq!(p.admit(at(320), false, None), ProbeVerdict::Probe);
        assert!(p.succeeded(true), "the window reset");
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
    fn the_wait_between_probes_doubles_up_to_a_second() {
        let mut p = WindowProbe::default();
        p.refused(false, at(0));
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let ProbeVerdict::WaitUntil(t) = p.admit(at(now), false, None) else {
                panic!("expected a wait");
            };
            now = u64::try_from((t - at(0)).as_millis()).unwrap_or(u64::MAX);
            assert_eq!(p.admit(at(now), false, None), ProbeVerdict::Probe);
            p.refused(true, at(now));
            waits.push(now);
        }
        assert_eq!(waits, vec![100, 300, 700, 1_500, 2_500, 3_500]);
    }

    #[test]
    fn an_abandoned_probe_hands_over() {
        let mut p = WindowProbe::default();
        p.refused(false, at(0));
        assert_eq!(p.admit(at(100), false, None), ProbeVerdict::Probe);
        assert_eq!(p.admit(at(100), false, None), ProbeVerdict::Wait);
        assert!(p.probe_abandoned());
        assert_eq!(p.admit(at(100), false, None), ProbeVerdict::Probe);
    }
}
