//! Shared helpers for weir's criterion benches and the `weir-micro` JSON runner.
