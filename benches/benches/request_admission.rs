//! Criterion bench for request_admission (being written).

fn main() {}
