//! `ChargeEstimator`: what a provider charges per request, read off the token headers of
//! responses to requests sent one after the other.
//!
//! A provider that charges `max_tokens` at admission with a default the request did not state
//! charges more than `usage` reports, and weir only learned the difference from 429s: a whole
//! wave of them at first contact, each reading wide by the header's rounding (one millisecond
//! of `retry-after-ms` is 6 tokens at 6,000 tokens/s). But every response of an OpenAI-style
//! endpoint carries `x-ratelimit-remaining-tokens`, the level right after that request was
//! charged. For requests `a` and `b` sent consecutively, `remaining_a + refill(a → b) −
//! remaining_b` is what `b` cost — exact up to the floor of `remaining` and the requests' time
//! on the wire, both zero-mean, so the median of a few such pairs is the charge. Pairs sent
//! less than a millisecond apart are skipped: over several connections they may arrive in
//! either order (the first contact's requests, sent together, read 40 and −20 for 20).
//!
//! Pure state: the ledger holds one per scope under the scope's lock.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Readings kept to pair with answers that arrive out of order.
const KEPT: usize = 16;
/// Pairs needed before the median is used.
pub(crate) const MIN_PAIRS: u64 = 8;
/// Pairs the median is taken over.
const SAMPLES: usize = 63;
/// Sends closer than this may reach the provider in either order (several connections): a
/// swapped pair reads one request's charge twice and the other's as negative.
const MIN_GAP: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy)]
struct Reading {
    seq: u64,
    sent_at: Instant,
    remaining: u64,
    /// Charged (a 2xx); a refused request's reading is the level it found, nothing taken.
    admitted: bool,
    /// Input tokens the request reserved (its prompt estimate).
    input: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct ChargeEstimator {
    readings: VecDeque<Reading>,
    /// The latest pairs' charge beyond the later request's input estimate.
    samples: VecDeque<f64>,
    pairs: u64,
    /// Their median, kept as pairs come (read on every reading that adds one).
    median: Option<f64>,
}

impl ChargeEstimator {
    /// The token reading of the `seq`-th request sent to the scope (sent at `sent_at`,
    /// reserving `input` input tokens), with the window's refill interval and burst. Returns
    /// true when it completed a pair (the estimate may have moved).
    #[allow(clippy::too_many_arguments)]
    pub fn reading(
        &mut self,
        seq: u64,
        sent_at: Instant,
        remaining: u64,
        admitted: bool,
        input: u64,
        interval_ns: u64,
        burst: u64,
    ) -> bool {
        if interval_ns == 0 {
            return false;
        }
        let r = Reading {
            seq,
            sent_at,
            remaining,
            admitted,
            input,
        };
        let before = self.readings.iter().find(|x| x.seq + 1 == seq).copied();
        let after = self.readings.iter().find(|x| x.seq == seq + 1).copied();
        let mut paired = false;
        for (a, b) in [before.map(|a| (a, r)), after.map(|b| (r, b))]
            .into_iter()
            .flatten()
        {
            paired |= self.pair(&a, &b, interval_ns, burst);
        }
        if self.readings.len() == KEPT {
            self.readings.pop_front();
        }
        self.readings.push_back(r);
        if paired {
            self.median = (self.pairs >= MIN_PAIRS).then(|| median(&self.samples));
        }
        paired
    }

    /// Adds the sample pair `a → b` gives, if any.
    fn pair(&mut self, a: &Reading, b: &Reading, interval_ns: u64, burst: u64) -> bool {
        let gap = b.sent_at.saturating_duration_since(a.sent_at);
        if !b.admitted || gap < MIN_GAP {
            return false;
        }
        let refill = gap.as_nanos() as f64 / interval_ns as f64;
        let level = a.remaining as f64 + refill;
        // A bucket that filled up between them lost refill: the difference says nothing.
        if level >= burst as f64 - 1.0 {
            return false;
        }
        let charge = level - b.remaining as f64;
        if charge <= 0.0 {
            return false;
        }
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(charge - b.input as f64);
        self.pairs += 1;
        true
    }

    /// Tokens charged per request beyond its input estimate (the median of the latest pairs:
    /// a request the provider counted that weir did not number, e.g. another client's, reads
    /// as a double charge), once there are enough pairs.
    pub fn output_charge(&self) -> Option<f64> {
        self.median
    }
}

/// The median of `samples` (not empty).
fn median(samples: &VecDeque<f64>) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_readings_give_the_charge_whatever_order_they_arrive_in() {
        let t0 = Instant::now();
        let mut e = ChargeEstimator::default();
        // A 400-token bucket at 6,000 tokens/s (interval 166,667 ns); each request costs 20
        // (4 of prompt); sent 1 ms apart (6 tokens of refill between).
        let level = |k: u64| 400.0 - 20.0 * k as f64 + 6.0 * (k - 1) as f64;
        let sent = |k: u64| t0 + Duration::from_millis(k - 1);
        for k in [2u64, 1, 3, 5, 4, 6, 8, 7, 9, 10] {
            e.reading(k, sent(k), level(k).floor() as u64, true, 4, 166_667, 400);
        }
        let out = e.output_charge().expect("nine pairs");
        assert!((out - 16.0).abs() < 0.1, "{out}");
    }

    #[test]
    fn a_refused_later_request_or_a_full_bucket_gives_no_sample() {
        let t0 = Instant::now();
        let mut e = ChargeEstimator::default();
        e.reading(1, t0, 380, true, 4, 166_667, 400);
        e.reading(2, t0, 380, false, 4, 166_667, 400);
        // 10 ms later the bucket was full again: no pair.
        e.reading(
            3,
            t0 + Duration::from_millis(10),
            380,
            true,
            4,
            166_667,
            400,
        );
        assert_eq!(e.pairs, 0);
        assert!(e.samples.is_empty());
        assert_eq!(e.output_charge(), None);
    }
}
