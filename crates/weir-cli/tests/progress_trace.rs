//! The progress model against recorded timings: a 5,000-record quickstart run with
//! `buffer_size` 1000 (6 columns), sampled every 0.5 s from its `events.jsonl`
//! (`tests/fixtures/progress-quickstart-5000.csv`: seconds, cells done, records written).

use std::time::Duration;
use weir_cli::progress_model::{ProgressModel, ProgressSample};

const TRACE: &str = include_str!("fixtures/progress-quickstart-5000.csv");

fn samples() -> Vec<ProgressSample> {
    TRACE
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ProgressSample {
                at_seconds: f[0].parse().expect("seconds"),
                cells_done: f[1].parse().expect("cells"),
                records_written: f[2].parse().expect("records"),
            }
        })
        .collect()
}

#[test]
fn records_move_within_three_seconds_though_no_row_group_is_written_for_thirteen() {
    let trace = samples();
    let mut m = ProgressModel::new(5_000 * 6, 5_000, 0);
    let mut first_nonzero = None;
    for s in &trace {
        m.observe(*s);
        if first_nonzero.is_none() && m.records_done() > 0 {
            first_nonzero = Some(s.at_seconds);
        }
    }
    let first_written = trace
        .iter()
        .find(|s| s.records_written > 0)
        .map(|s| s.at_seconds);
    assert!(first_nonzero.is_some_and(|t| t <= 3.0), "{first_nonzero:?}");
    assert!(first_written.is_some_and(|t| t > 10.0), "{first_written:?}");
    assert_eq!(m.records_done(), 5_000);
}

#[test]
fn eta_stays_within_twice_the_true_remaining_time_after_a_fifth_of_the_run() {
    let trace = samples();
    let end = trace
        .iter()
        .find(|s| s.records_written == 5_000)
        .map(|s| s.at_seconds)
        .expect("the run finished");
    let mut m = ProgressModel::new(5_000 * 6, 5_000, 0);
    let mut checked = 0;
    for s in &trace {
        m.observe(*s);
        let remaining = end - s.at_seconds;
        // From 20 % of the run on, while at least a second is left (below that the ratio of
        // two sub-second figures says nothing a user can see).
        if s.at_seconds < 0.2 * end || remaining < 1.0 {
            continue;
        }
        let eta = m.eta().expect("an ETA after a fifth of the run");
        let ratio = eta.as_secs_f64() / remaining;
        assert!(
            (0.5..=2.0).contains(&ratio),
            "at {:.1}s: eta {:.1}s vs {:.1}s left (ratio {ratio:.2})",
            s.at_seconds,
            eta.as_secs_f64(),
            remaining
        );
        checked += 1;
    }
    assert!(checked > 40, "{checked} samples checked");
    assert!(m.eta().is_none_or(|e| e <= Duration::from_secs(1)));
}
