//! `AsyncTaskScheduler` and its loop-owned helpers: config, row-group admission, retry backoff, early shutdown.

pub mod backoff;
pub mod config;
pub mod failure_window;
pub mod row_groups;
