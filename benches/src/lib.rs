//! Shared pieces of weir's micro-benchmark runner (`weir-micro`): the JSON row shape and timing.
//!
//! `cargo xtask bench micro --filter NAME --json OUT.json` runs `weir-micro`, which writes a JSON
//! array of [`MicroResult`] rows. Each owning area has its own module and registers its
//! benchmarks in [`run_filtered`].
//!
//! The scenario harness behind `cargo xtask bench` lives in [`harness`] (binary `weir-bench`).

use serde::Serialize;
use std::time::Instant;

pub mod harness;
pub mod request_admission;
pub mod task_admission;

/// A baseline measured in the same process run as the benchmark it is compared with.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// Baseline name, e.g. `tokio_semaphore_acquire_release`.
    pub name: String,
    /// Median nanoseconds per operation of the baseline.
    pub ns_per_op_median: f64,
}

/// One row of `weir-micro`'s JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct MicroResult {
    /// Benchmark name.
    pub benchmark: String,
    /// Parameters (e.g. `{"tasks": 1000, "groups": 8}`).
    pub params: serde_json::Value,
    /// Median nanoseconds per operation over the samples.
    pub ns_per_op_median: f64,
    /// The same-run baseline, if any.
    pub baseline: Option<Baseline>,
    /// `ns_per_op_median / baseline.ns_per_op_median`.
    pub ratio: Option<f64>,
    /// Extra, benchmark-specific fields (flattened into the row).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Median of `samples` (0 for none).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    harness::stats::percentile_sorted(samples, 0.5)
}

/// Runs `op` `ops` times per sample for `samples` samples; returns the median ns per op.
pub fn measure_ns_per_op(samples: usize, ops: u64, mut op: impl FnMut()) -> f64 {
    let mut per_op = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        for _ in 0..ops {
            op();
        }
        per_op.push(start.elapsed().as_nanos() as f64 / ops.max(1) as f64);
    }
    median(&mut per_op)
}

/// Runs every benchmark whose area name contains `filter` (all when empty).
pub fn run_filtered(filter: &str) -> Vec<MicroResult> {
    let mut out = Vec::new();
    if "task-admission".contains(filter) || filter.is_empty() {
        out.extend(task_admission::run());
    }
    if "request-admission".contains(filter) || filter.is_empty() {
        out.extend(request_admission::run());
    }
    out
}
