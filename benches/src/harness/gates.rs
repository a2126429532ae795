//! Gates: PASS/FAIL checks of a scenario's iterations (and of an A/B comparison).
//!
//! Correctness gates are always enforced. Timing gates are enforced in full runs and only
//! reported in `--smoke` runs (a shared CI box must not flake on them); a reported timing gate
//! that misses prints `WARN`, never `FAIL`.

use super::metric_values::MetricValues;
use super::metrics::IterationMetrics;
use super::scenarios::EngineScenario;
use super::stats::percentile;
use super::READY_IDLE_GRANULARITY_MS;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Outcome of one gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Holds.
    Pass,
    /// Enforced and does not hold.
    Fail,
    /// Not enforced here and does not hold.
    Warn,
}

/// One checked gate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gate {
    /// Scenario id (or `ab` for comparison gates).
    pub scenario: String,
    /// Gate name.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// Whether a miss fails the run.
    pub enforced: bool,
    /// Measured value and threshold.
    pub detail: String,
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
        };
        let note = if self.enforced {
            ""
        } else {
            " (reported, not enforced)"
        };
        write!(
            f,
            "{s} {} {}: {}{note}",
            self.scenario, self.name, self.detail
        )
    }
}

/// Builds a gate from a condition.
pub fn gate(scenario: &str, name: &str, ok: bool, enforced: bool, detail: String) -> Gate {
    Gate {
        scenario: scenario.to_owned(),
        name: name.to_owned(),
        status: match (ok, enforced) {
            (true, _) => Status::Pass,
            (false, true) => Status::Fail,
            (false, false) => Status::Warn,
        },
        enforced,
        detail,
    }
}

/// One metric of every iteration that measured it.
fn values(iters: &[IterationMetrics], metric: impl Fn(&MetricValues) -> Option<f64>) -> Vec<f64> {
    iters.iter().filter_map(|m| metric(&m.values)).collect()
}

/// The gates of an engine scenario over its measured iterations.
pub fn engine_gates(
    id: &str,
    s: &EngineScenario,
    iters: &[IterationMetrics],
    smoke: bool,
) -> Vec<Gate> {
    let timing_enforced = !smoke;
    let mut out = Vec::new();
    let leaks: Vec<String> = iters
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.facts.leaks.iter().map(move |l| format!("iter {i}: {l}")))
        .collect();
    out.push(gate(
        id,
        "zero_leaks",
        leaks.is_empty(),
        true,
        if leaks.is_empty() {
            "0 task/request leases, waiters, in-flight, debt and bad releases at the end".into()
        } else {
            leaks.join("; ")
        },
    ));
    let hidden: u64 = iters
        .iter()
        .map(|m| {
            m.facts
                .hidden_waiters_view
                .max(m.facts.hidden_waiters_engine)
        })
        .max()
        .unwrap_or(0);
    out.push(gate(
        id,
        "zero_hidden_waiters",
        hidden == 0,
        true,
        format!("max(hidden_scheduler_resource_waiters) = {hidden}"),
    ));
    let mismatched: Vec<String> = iters
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            m.facts.request_leases != m.facts.outbound_attempts
                || m.facts.outbound_attempts != m.facts.executor_attempts
        })
        .map(|(i, m)| {
            format!(
                "iter {i}: leases {} / outbound {} / executor {}",
                m.facts.request_leases, m.facts.outbound_attempts, m.facts.executor_attempts
            )
        })
        .collect();
    out.push(gate(
        id,
        "request_leases_eq_attempts",
        mismatched.is_empty(),
        true,
        if mismatched.is_empty() {
            let l: Vec<String> = iters
                .iter()
                .map(|m| m.facts.request_leases.to_string())
                .collect();
            format!(
                "request_lease_acquired == model_request_started == executor attempts ({})",
                l.join(", ")
            )
        } else {
            mismatched.join("; ")
        },
    ));
    let inversions: u64 = iters.iter().map(|m| m.facts.monotone_violation_count).sum();
    out.push(gate(
        id,
        "monotone_timelines",
        inversions == 0,
        true,
        if inversions == 0 {
            "every execution and request attempt timeline is non-decreasing".into()
        } else {
            let ex: Vec<String> = iters
                .iter()
                .flat_map(|m| m.facts.monotone_violations.iter().cloned())
                .take(3)
                .collect();
            format!("{inversions} inversions, e.g. {}", ex.join("; "))
        },
    ));
    let incomplete: u64 = iters.iter().map(|m| m.facts.incomplete_timelines).sum();
    out.push(gate(
        id,
        "timeline_fields_complete",
        incomplete == 0,
        true,
        if incomplete == 0 {
            "all 13 timeline fields present on every completed model execution".into()
        } else {
            let ex: Vec<String> = iters
                .iter()
                .flat_map(|m| m.facts.incomplete_examples.iter().cloned())
                .take(2)
                .collect();
            format!("{incomplete} incomplete, e.g. {}", ex.join("; "))
        },
    ));
    if s.stop_after_seconds.is_none() {
        let bad: Vec<String> = iters
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                m.facts.stopped.is_some()
                    || m.facts.records_written + m.facts.rows_dropped != m.facts.records_requested
                    || (s.deterministic_output && m.facts.rows_dropped > 0)
            })
            .map(|(i, m)| {
                format!(
                    "iter {i}: written {} + dropped {} of {} (stopped: {:?})",
                    m.facts.records_written,
                    m.facts.rows_dropped,
                    m.facts.records_requested,
                    m.facts.stopped
                )
            })
            .collect();
        out.push(gate(
            id,
            "run_complete",
            bad.is_empty(),
            true,
            if bad.is_empty() {
                format!(
                    "{} records written, none dropped, no early stop",
                    iters.first().map_or(0, |m| m.facts.records_written)
                )
            } else {
                bad.join("; ")
            },
        ));
    } else {
        let stopped = iters.iter().all(|m| m.facts.stopped.is_some());
        out.push(gate(
            id,
            "stop_path_exercised",
            stopped,
            false,
            format!(
                "stopped in {}/{} iterations (cancellation path)",
                iters.iter().filter(|m| m.facts.stopped.is_some()).count(),
                iters.len()
            ),
        ));
    }
    if s.deterministic_output {
        let hashes: Vec<&str> = iters
            .iter()
            .filter_map(|m| m.output_hashes.get("records").map(String::as_str))
            .collect();
        let equal = hashes.windows(2).all(|w| w[0] == w[1]) && hashes.len() == iters.len();
        out.push(gate(
            id,
            "output_hash_equality",
            equal,
            true,
            format!("records hash over {} iterations: {}", hashes.len(), {
                let mut u = hashes.clone();
                u.dedup();
                u.join(" / ")
            }),
        ));
    }
    if s.gate_ready_idle {
        let maxes = values(iters, |v| Some(v.ready_idle_gap_ms_max));
        let med = percentile(&maxes, 0.5);
        let worst = maxes.iter().copied().fold(0.0, f64::max);
        out.push(gate(
            id,
            "ready_idle_gap_within_granularity",
            med <= READY_IDLE_GRANULARITY_MS,
            timing_enforced,
            format!(
                "median over iterations of max ready-idle gap {med:.3} ms (worst {worst:.3} ms) ≤ {READY_IDLE_GRANULARITY_MS} ms"
            ),
        ));
    }
    if let Some((root, down)) = &s.heavy_root {
        let before: Vec<bool> = iters
            .iter()
            .filter_map(|m| m.facts.heavy_root.as_ref())
            .map(
                |h| match (h.first_downstream_dispatch, h.root_last_completed) {
                    (Some(d), Some(r)) => d < r,
                    _ => false,
                },
            )
            .collect();
        let ok = !before.is_empty() && before.iter().all(|b| *b);
        let d = percentile(&values(iters, |v| v.first_downstream_dispatch_seconds), 0.5);
        let r = percentile(&values(iters, |v| v.root_last_completed_seconds), 0.5);
        out.push(gate(
            id,
            "downstream_dispatch_before_root_finishes",
            ok,
            true,
            format!(
                "first `{down}` lease at {d:.3} s < last `{root}` completion at {r:.3} s (medians)"
            ),
        ));
        if let Some(ceiling) = s.borrow_ceiling {
            let peak = iters
                .iter()
                .filter_map(|m| m.facts.heavy_root.as_ref())
                .map(|h| h.peak_excess)
                .max()
                .unwrap_or(0);
            out.push(gate(
                id,
                "root_over_admission_within_policy",
                peak <= i64::from(ceiling),
                true,
                format!(
                    "peak root excess over strict share after first downstream-ready = {peak} ≤ borrow ceiling {ceiling}"
                ),
            ));
        }
    }
    if let Some(max) = s.wall_over_bound_max {
        let v = values(iters, |v| v.wall_over_bound);
        let mean = if v.is_empty() {
            f64::INFINITY
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        };
        let planned = values(iters, |v| v.wall_over_planned_bound);
        let pmean = if planned.is_empty() {
            0.0
        } else {
            planned.iter().sum::<f64>() / planned.len() as f64
        };
        out.push(gate(
            id,
            "wall_within_bound",
            mean <= max,
            timing_enforced,
            format!(
                "mean wall / lower bound = {mean:.3} ≤ {max} (vs planned-mean bound {pmean:.3})"
            ),
        ));
    }
    if let Some((cooling, free)) = &s.cooldown {
        let ok = iters
            .iter()
            .filter_map(|m| m.facts.cooldown_ends)
            .all(|(a, b)| b < a);
        let a = percentile(&values(iters, |v| v.cooling_column_end_seconds), 0.5);
        let b = percentile(&values(iters, |v| v.free_column_end_seconds), 0.5);
        out.push(gate(
            id,
            "free_provider_not_stalled",
            ok,
            timing_enforced,
            format!(
                "`{free}` finished at {b:.3} s before cooling `{cooling}` at {a:.3} s (medians)"
            ),
        ));
    }
    out
}
