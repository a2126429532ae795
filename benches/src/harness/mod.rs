//! The `weir-bench` scenario harness: scenario catalogue, engine runs, derived metrics, gates,
//! artifacts (JSON, CSV, `summary.md`) and the A/B comparison of two refs.
//!
//! Entry point: the `weir-bench` binary (`cargo xtask bench ...` builds and runs it in release).
//! The artifact layout follows `plans/benchmarks.md` (schema [`ARTIFACT_SCHEMA_VERSION`]).

pub mod artifact;
pub mod bound;
pub mod compare;
pub mod coordinated;
pub mod driver;
pub mod gates;
pub mod goodput;
pub mod metric_values;
pub mod metrics;
pub mod queue_mix;
pub mod run;
pub mod scenarios;
pub mod shared;
pub mod stats;
pub mod sysinfo;

/// Version of the JSON artifact layout; bump on any incompatible field change.
pub const ARTIFACT_SCHEMA_VERSION: &str = "weir-bench-artifact/1";
/// Version of the harness code (metric formulas, gates); bump when a formula changes.
pub const HARNESS_VERSION: &str = "1.0.0";
/// Largest ready-idle gap (ms) still attributed to event-loop scheduling granularity.
pub const READY_IDLE_GRANULARITY_MS: f64 = 5.0;
