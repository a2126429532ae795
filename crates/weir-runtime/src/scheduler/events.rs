//! `SchedulerEvents`: builds scheduler events (with captured correlation) only when a sink wants them.

use super::columns::ColumnInfo;
use crate::completion::Task;
use std::sync::Arc;
use weir_contracts::{
    LeaseId, RuntimeCorrelation, SchedulerAdmissionEvent, SchedulerEventKind,
    SchedulerEventPayload, TaskExecutionId, TaskId,
};
use weir_telemetry::SchedulerEventStream;

/// Optional fields of one task event.
#[derive(Default)]
pub(crate) struct TaskEventFields<'a> {
    pub execution: Option<TaskExecutionId>,
    pub lease: Option<LeaseId>,
    pub reason: Option<&'a str>,
    /// The typed data, for kinds that carry any (else the kind's empty payload).
    pub payload: Option<SchedulerEventPayload>,
}

/// The scheduler's handle on its event stream.
pub(crate) struct SchedulerEvents {
    pub stream: SchedulerEventStream,
    pub run_id: Arc<str>,
    /// The live counters progress displays read (`AsyncTaskScheduler::progress`).
    pub progress: Arc<super::RunProgress>,
}

impl SchedulerEvents {
    /// The correlation of `task` (and its execution) as captured into events and task scopes.
    pub fn correlation(
        &self,
        col: &ColumnInfo,
        task: &Task,
        execution: Option<TaskExecutionId>,
    ) -> RuntimeCorrelation {
        RuntimeCorrelation {
            run_id: self.run_id.to_string(),
            row_group: Some(task.row_group),
            task_column: Some(task.column.to_string()),
            task_type: Some(task.task_type.as_str().to_owned()),
            scheduling_group_kind: Some(col.kind.as_str().to_owned()),
            scheduling_group_identity_hash: Some(col.identity_hash.to_string()),
            task_execution_id: execution,
        }
    }

    /// Emits a task-scoped event.
    pub fn task(
        &self,
        kind: SchedulerEventKind,
        col: &ColumnInfo,
        task: &Task,
        task_id: &TaskId,
        fields: TaskEventFields<'_>,
    ) {
        self.stream.emit_with(kind, |now| {
            let payload = fields
                .payload
                .unwrap_or_else(|| SchedulerEventPayload::default_for(kind));
            debug_assert_eq!(payload.kind(), kind, "payload of another kind");
            let mut e = SchedulerAdmissionEvent::with_payload(payload, now);
            e.captured_correlation = Some(self.correlation(col, task, fields.execution));
            e.task_id = Some(task_id.clone());
            e.task_execution_id = fields.execution;
            e.task_lease_id = fields.lease;
            e.reason_or_result = fields.reason.map(str::to_owned);
            e
        });
    }

    /// Emits a run-scoped event built by `fill` (which sets the payload of kinds with data).
    pub fn run(&self, kind: SchedulerEventKind, fill: impl FnOnce(&mut SchedulerAdmissionEvent)) {
        self.stream.emit_with(kind, |now| {
            let mut e = SchedulerAdmissionEvent::new(kind, now);
            e.captured_correlation = Some(RuntimeCorrelation::for_run(self.run_id.to_string()));
            fill(&mut e);
            debug_assert_eq!(e.event_kind(), kind, "payload of another kind");
            e
        });
    }

    /// Whether any sink wants `kind`.
    pub fn wants(&self, kind: SchedulerEventKind) -> bool {
        self.stream.wants(kind)
    }
}
