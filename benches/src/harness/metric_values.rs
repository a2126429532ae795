//! `MetricValues`: the derived metrics of one iteration as typed fields (see `metrics.rs` for
//! the formulas). Gates read fields; the artifact's flat `metrics` object (`name → number`, the
//! schema of `plans/benchmarks.md`) is written by [`MetricValues::to_map`], so its keys are
//! unchanged.

use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// p50 / p95 / max of a distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DistMs {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest sample.
    pub max: f64,
}

/// Every derived metric of one iteration (`None`: not measurable in this run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricValues {
    /// Wall time of the run (s).
    pub wall_seconds: f64,
    /// `selected − ready_enqueued` per execution.
    pub ready_queue_wait: Option<DistMs>,
    /// `task_lease_acquired − selected` per execution.
    pub task_admission_wait: Option<DistMs>,
    /// `task_lease_acquired − ready_enqueued` per execution.
    pub ready_to_lease_gap: Option<DistMs>,
    /// Request wait per attempt.
    pub request_wait: Option<DistMs>,
    /// `request_lease_acquired − request_wait_completed` per attempt.
    pub request_acquire_overhead: Option<DistMs>,
    /// `request_lease_released − model_request_completed` per attempt.
    pub request_release_overhead: Option<DistMs>,
    /// Downstream `ready_enqueued → task_lease_acquired` (heavy-root scenarios).
    pub downstream_ready_to_dispatch: Option<DistMs>,
    /// Largest ready-idle gap (ms).
    pub ready_idle_gap_ms_max: f64,
    /// Sum of ready-idle gaps (ms).
    pub ready_idle_gap_ms_total: f64,
    /// Time suspended by `admission_blocked` / `group_capped` (ms).
    pub policy_blocked_ms_total: f64,
    /// `∫ active / submission capacity dt`.
    pub active_capacity_integral: f64,
    /// The integral over the run's span.
    pub active_capacity_mean: Option<f64>,
    /// Per endpoint (`provider/model`): `∫ in-flight dt / (parallel × span)`.
    pub request_utilization: BTreeMap<String, f64>,
    /// The lower bound (s).
    pub lower_bound_seconds: f64,
    /// The planned lower bound (s).
    pub planned_lower_bound_seconds: f64,
    /// Critical path (s).
    pub critical_path_seconds: f64,
    /// Wall over the lower bound.
    pub wall_over_bound: Option<f64>,
    /// Wall over the planned lower bound.
    pub wall_over_planned_bound: Option<f64>,
    /// First downstream `dependency_ready` (s, heavy root).
    pub first_downstream_ready_seconds: Option<f64>,
    /// First downstream `task_lease_acquired` (s, heavy root).
    pub first_downstream_dispatch_seconds: Option<f64>,
    /// First downstream dispatch − first downstream ready (ms, heavy root).
    pub initial_idle_gap_ms: Option<f64>,
    /// Last root `task_completed` (s, heavy root).
    pub root_last_completed_seconds: Option<f64>,
    /// Root acquisitions above the strict share (heavy root).
    pub root_over_admission_debt: Option<f64>,
    /// Largest excess above the strict share (heavy root).
    pub root_over_admission_peak_excess: Option<f64>,
    /// Last `task_completed` of the cooling column (s, cooldown scenarios).
    pub cooling_column_end_seconds: Option<f64>,
    /// Last `task_completed` of the free column (s, cooldown scenarios).
    pub free_column_end_seconds: Option<f64>,
    /// First `row_group_checkpointed` that wrote records (s).
    pub time_to_first_record_seconds: Option<f64>,
    /// First checkpoint at which half the records were written (s).
    pub time_to_50pct_records_seconds: Option<f64>,
    /// p95 of row completion times (s).
    pub row_completion_p95_seconds: Option<f64>,
    /// Records written.
    pub records_written: u64,
    /// Rows dropped.
    pub rows_dropped: u64,
    /// `request_lease_acquired` events.
    pub request_lease_count: u64,
    /// `model_request_started` events.
    pub outbound_attempts: u64,
    /// Hidden scheduler-resource waiters per the view.
    pub hidden_scheduler_resource_waiters: u64,
    /// Scheduler events captured.
    pub events_scheduler: u64,
    /// Request events captured.
    pub events_request: u64,
    /// Task executions joined by the view.
    pub task_executions: u64,
    /// Process CPU time (s), when measured.
    pub cpu_seconds: Option<f64>,
    /// CPU µs per captured event, when measured.
    pub cpu_us_per_event: Option<f64>,
    /// Peak RSS (MiB), when measured.
    pub peak_rss_mib: Option<f64>,
}

impl MetricValues {
    /// The artifact's flat form: metric name → value, absent metrics left out.
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: f64| {
            m.insert(k.to_owned(), v);
        };
        put("wall_seconds", self.wall_seconds);
        for (name, d) in [
            ("ready_queue_wait", self.ready_queue_wait),
            ("task_admission_wait", self.task_admission_wait),
            ("ready_to_lease_gap", self.ready_to_lease_gap),
            ("request_wait", self.request_wait),
            ("request_acquire_overhead", self.request_acquire_overhead),
            ("request_release_overhead", self.request_release_overhead),
            (
                "downstream_ready_to_dispatch",
                self.downstream_ready_to_dispatch,
            ),
        ] {
            if let Some(d) = d {
                put(&format!("{name}_ms_p50"), d.p50);
                put(&format!("{name}_ms_p95"), d.p95);
                put(&format!("{name}_ms_max"), d.max);
            }
        }
        put("ready_idle_gap_ms_max", self.ready_idle_gap_ms_max);
        put("ready_idle_gap_ms_total", self.ready_idle_gap_ms_total);
        put("policy_blocked_ms_total", self.policy_blocked_ms_total);
        put("active_capacity_integral", self.active_capacity_integral);
        for (name, v) in &self.request_utilization {
            put(&format!("request_utilization.{name}"), *v);
        }
        put("lower_bound_seconds", self.lower_bound_seconds);
        put(
            "planned_lower_bound_seconds",
            self.planned_lower_bound_seconds,
        );
        put("critical_path_seconds", self.critical_path_seconds);
        for (name, v) in [
            ("active_capacity_mean", self.active_capacity_mean),
            ("wall_over_bound", self.wall_over_bound),
            ("wall_over_planned_bound", self.wall_over_planned_bound),
            (
                "first_downstream_ready_seconds",
                self.first_downstream_ready_seconds,
            ),
            (
                "first_downstream_dispatch_seconds",
                self.first_downstream_dispatch_seconds,
            ),
            ("initial_idle_gap_ms", self.initial_idle_gap_ms),
            (
                "root_last_completed_seconds",
                self.root_last_completed_seconds,
            ),
            ("root_over_admission_debt", self.root_over_admission_debt),
            (
                "root_over_admission_peak_excess",
                self.root_over_admission_peak_excess,
            ),
            (
                "cooling_column_end_seconds",
                self.cooling_column_end_seconds,
            ),
            ("free_column_end_seconds", self.free_column_end_seconds),
            (
                "time_to_first_record_seconds",
                self.time_to_first_record_seconds,
            ),
            (
                "time_to_50pct_records_seconds",
                self.time_to_50pct_records_seconds,
            ),
            (
                "row_completion_p95_seconds",
                self.row_completion_p95_seconds,
            ),
            ("cpu_seconds", self.cpu_seconds),
            ("cpu_us_per_event", self.cpu_us_per_event),
            ("peak_rss_mib", self.peak_rss_mib),
        ] {
            if let Some(v) = v {
                put(name, v);
            }
        }
        for (name, v) in [
            ("records_written", self.records_written),
            ("rows_dropped", self.rows_dropped),
            ("request_lease_count", self.request_lease_count),
            ("outbound_attempts", self.outbound_attempts),
            (
                "hidden_scheduler_resource_waiters",
                self.hidden_scheduler_resource_waiters,
            ),
            ("events_scheduler", self.events_scheduler),
            ("events_request", self.events_request),
            ("task_executions", self.task_executions),
        ] {
            put(name, v as f64);
        }
        m
    }
}

impl Serialize for MetricValues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_map_keeps_the_flat_metric_names() {
        let mut v = MetricValues {
            wall_seconds: 2.0,
            ready_queue_wait: Some(DistMs {
                p50: 1.0,
                p95: 2.0,
                max: 3.0,
            }),
            wall_over_bound: Some(1.5),
            records_written: 10,
            ..Default::default()
        };
        v.request_utilization.insert("sim/m1".into(), 0.5);
        let m = v.to_map();
        assert_eq!(m["wall_seconds"], 2.0);
        assert_eq!(m["ready_queue_wait_ms_p50"], 1.0);
        assert_eq!(m["ready_queue_wait_ms_p95"], 2.0);
        assert_eq!(m["ready_queue_wait_ms_max"], 3.0);
        assert_eq!(m["wall_over_bound"], 1.5);
        assert_eq!(m["records_written"], 10.0);
        assert_eq!(m["request_utilization.sim/m1"], 0.5);
        // Unmeasured metrics are absent, not zero.
        assert!(!m.contains_key("task_admission_wait_ms_p50"));
        assert!(!m.contains_key("cpu_seconds"));
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(json["ready_queue_wait_ms_p95"], 2.0);
    }
}
