//! task_admission micro benchmarks for weir-micro (being written).

use crate::MicroResult;

/// Runs this area's micro benchmarks.
pub fn run() -> Vec<MicroResult> {
    Vec::new()
}
