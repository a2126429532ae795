//! `RunProgress`: live counters of a run's completed work, read by progress displays.

use std::sync::atomic::{AtomicU64, Ordering};

/// Completed tasks and cells so far, updated by the run loop as each task completes (one
/// relaxed atomic add each): a progress line reads them instead of subscribing to a per-task
/// event, which would make the scheduler build one event per task just to count it.
#[derive(Debug, Default)]
pub struct RunProgress {
    tasks: AtomicU64,
    cells: AtomicU64,
}

impl RunProgress {
    /// Tasks completed so far.
    pub fn tasks_completed(&self) -> u64 {
        self.tasks.load(Ordering::Relaxed)
    }

    /// Cells completed so far: one per cell task, the row group's rows per full-column task.
    pub fn cells_completed(&self) -> u64 {
        self.cells.load(Ordering::Relaxed)
    }

    /// One task completed, covering `cells` cells.
    pub(crate) fn record(&self, cells: u64) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
        self.cells.fetch_add(cells, Ordering::Relaxed);
    }
}
