//! What the progress line says, as pure functions of timed samples: work done in cells (so it
//! moves from the first second, not once per row group), a smoothed rate, and an ETA that
//! says `--` until it has a rate worth trusting.
//!
//! A row group's records are written only when all of its cells are done, so counting written
//! records alone shows `0/5000` for the first row group's whole duration and then jumps; the
//! ETA computed from those jumps swung between minutes and hours. Cells complete steadily.

use std::time::Duration;

/// Seconds of samples before the model quotes an ETA at all.
const MIN_ETA_SECONDS: f64 = 2.0;
/// Time constant of the rate's exponential smoothing (seconds).
const SMOOTHING_SECONDS: f64 = 10.0;

/// One observation of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressSample {
    /// Seconds since the run started.
    pub at_seconds: f64,
    /// Cells completed so far in this session (a full-column task counts its rows).
    pub cells_done: u64,
    /// Records written so far (including a resumed run's earlier part).
    pub records_written: u64,
}

/// Smoothed progress of one run.
#[derive(Debug, Clone)]
pub struct ProgressModel {
    /// Cells this session must complete (records of this session × columns).
    cells_total: u64,
    /// Records the run must write in total (including a resumed part).
    records_total: u64,
    /// Records already written when this session started.
    records_at_start: u64,
    last: Option<ProgressSample>,
    /// Smoothed cells per second.
    rate: Option<f64>,
    first_at: Option<f64>,
}

impl ProgressModel {
    /// A model for a session that must complete `cells_total` cells and write `records_total`
    /// records in all, `records_at_start` of them written before it started.
    pub fn new(cells_total: u64, records_total: u64, records_at_start: u64) -> Self {
        Self {
            cells_total: cells_total.max(1),
            records_total,
            records_at_start,
            last: None,
            rate: None,
            first_at: None,
        }
    }

    /// Feeds one sample (samples must come in time order; an older one is ignored).
    pub fn observe(&mut self, s: ProgressSample) {
        if let Some(last) = self.last {
            let dt = s.at_seconds - last.at_seconds;
            if dt <= 0.0 {
                return;
            }
            let instant = s.cells_done.saturating_sub(last.cells_done) as f64 / dt;
            let alpha = 1.0 - (-dt / SMOOTHING_SECONDS).exp();
            // Until the first smoothing window has passed, the plain average since the start
            // is the better estimate (an EWMA seeded with one short interval is noise).
            let elapsed = s.at_seconds - self.first_at.unwrap_or(s.at_seconds);
            self.rate = Some(match self.rate {
                Some(r) if elapsed >= SMOOTHING_SECONDS => r + alpha * (instant - r),
                _ if elapsed > 0.0 => s.cells_done as f64 / s.at_seconds.max(elapsed),
                _ => instant,
            });
        } else {
            self.first_at = Some(s.at_seconds);
            if s.at_seconds > 0.0 {
                self.rate = Some(s.cells_done as f64 / s.at_seconds);
            }
        }
        self.last = Some(s);
    }

    /// Records' worth of work done: written records, or more when cells say so (never more
    /// than the total, never less than what was written).
    pub fn records_done(&self) -> u64 {
        let Some(s) = self.last else {
            return self.records_at_start;
        };
        let session_records = self.records_total.saturating_sub(self.records_at_start);
        let by_cells = (s.cells_done as u128 * session_records as u128 / self.cells_total as u128)
            as u64
            + self.records_at_start;
        by_cells.max(s.records_written).min(self.records_total)
    }

    /// Records per second, smoothed (`None` until there is a rate).
    pub fn records_per_second(&self) -> Option<f64> {
        let session_records = self.records_total.saturating_sub(self.records_at_start) as f64;
        self.rate
            .map(|cells| cells * session_records / self.cells_total as f64)
    }

    /// Time left at the smoothed rate; `None` until the model has seen enough to say.
    pub fn eta(&self) -> Option<Duration> {
        let s = self.last?;
        let since_first = s.at_seconds - self.first_at?;
        let rate = self.rate.filter(|r| *r > 0.0 && r.is_finite())?;
        if since_first < MIN_ETA_SECONDS || s.cells_done == 0 {
            return None;
        }
        let left = self.cells_total.saturating_sub(s.cells_done) as f64 / rate;
        Duration::try_from_secs_f64(left).ok()
    }
}

/// `eta 1m05s`, `eta 42s`, `eta 2h03m`, or `eta --` without an estimate.
pub fn format_eta(eta: Option<Duration>) -> String {
    let Some(d) = eta else {
        return "eta --".to_owned();
    };
    let s = d.as_secs();
    if s >= 3600 {
        format!("eta {}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("eta {}m{:02}s", s / 60, s % 60)
    } else {
        format!("eta {s}s")
    }
}

/// A whole-number rate: `63/s`, `1,250/s`, or `--/s` without one.
pub fn format_rate(per_second: Option<f64>) -> String {
    match per_second {
        Some(r) if r.is_finite() && r >= 0.0 => format!("{}/s", group_thousands(r.round() as u64)),
        _ => "--/s".to_owned(),
    }
}

/// `1234567` → `1,234,567`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_whole_and_readable() {
        assert_eq!(format_rate(Some(63.1082)), "63/s");
        assert_eq!(format_rate(Some(1_250.4)), "1,250/s");
        assert_eq!(format_rate(None), "--/s");
        assert_eq!(format_eta(None), "eta --");
        assert_eq!(format_eta(Some(Duration::from_secs(65))), "eta 1m05s");
        assert_eq!(format_eta(Some(Duration::from_secs(7_380))), "eta 2h03m");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(group_thousands(999), "999");
    }

    #[test]
    fn records_done_counts_cells_before_any_row_group_is_written() {
        // 5,000 records × 4 columns; 3 s in, 2,000 cells done, nothing written yet.
        let mut m = ProgressModel::new(20_000, 5_000, 0);
        m.observe(ProgressSample {
            at_seconds: 3.0,
            cells_done: 2_000,
            records_written: 0,
        });
        assert_eq!(m.records_done(), 500);
        // Written records are the floor; a resumed part counts.
        let mut m = ProgressModel::new(8_000, 3_000, 1_000);
        m.observe(ProgressSample {
            at_seconds: 1.0,
            cells_done: 0,
            records_written: 1_200,
        });
        assert_eq!(m.records_done(), 1_200);
    }

    #[test]
    fn no_eta_until_there_is_a_rate_worth_quoting() {
        let mut m = ProgressModel::new(1_000, 100, 0);
        assert_eq!(m.eta(), None);
        m.observe(ProgressSample {
            at_seconds: 0.5,
            cells_done: 10,
            records_written: 0,
        });
        assert_eq!(m.eta(), None, "half a second is not enough");
    }
}
