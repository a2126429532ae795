//! Criterion bench for telemetry (being written).

fn main() {}
