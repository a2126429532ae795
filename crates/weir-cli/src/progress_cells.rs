//! `CellCounter`: a scheduler-stream sink that counts completed cells for the progress line.
//!
//! It accepts two event kinds only, both of which the report's collector already takes (so
//! the runtime builds no extra event for it): `row_group_admitted` tells how many rows each row
//! group has, and a `task_lease_released` whose outcome is `success` adds one cell for a cell
//! task or the row group's rows for a full-column task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use weir_contracts::{
    SchedulerAdmissionEvent, SchedulerEventKind, SchedulerEventPayload, TaskTerminalOutcome,
};
use weir_telemetry::EventSink;

/// Counts completed cells of a run.
#[derive(Debug, Default)]
pub struct CellCounter {
    done: AtomicU64,
    rows_by_row_group: Mutex<HashMap<u64, u64>>,
}

impl CellCounter {
    /// Cells completed so far.
    pub fn cells_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl EventSink<SchedulerAdmissionEvent> for CellCounter {
    fn accepts(&self, kind: SchedulerEventKind) -> bool {
        matches!(
            kind,
            SchedulerEventKind::RowGroupAdmitted | SchedulerEventKind::TaskLeaseReleased
        )
    }

    fn emit(&self, event: &SchedulerAdmissionEvent) {
        match &event.payload {
            SchedulerEventPayload::RowGroupAdmitted(a) => {
                self.rows_by_row_group
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(a.row_group, a.rows);
            }
            SchedulerEventPayload::TaskLeaseReleased(r)
                if r.outcome == Some(TaskTerminalOutcome::Success) =>
            {
                let c = event.captured_correlation.as_ref();
                let cells = match c.and_then(|c| c.task_type.as_deref()) {
                    Some("cell") | None => 1,
                    Some(_) => c
                        .and_then(|c| c.row_group)
                        .and_then(|rg| {
                            self.rows_by_row_group
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get(&rg)
                                .copied()
                        })
                        .unwrap_or(1),
                };
                self.done.fetch_add(cells, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}
