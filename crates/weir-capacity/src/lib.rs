//! weir's AsyncCapacityPlan: explains every capacity value of a run and its source, from read-only snapshots.
