//! Criterion bench for task_admission (being written).

fn main() {}
