//! CorrelatedRuntimeView: id joins, the 13 timeline fields, retried tasks, hidden waiters.

use weir_contracts::RequestEventKind as R;
use weir_contracts::{
    ControllerGeneration, LeaseId, RequestAdmissionEvent, RequestAttemptId, RequestEventKind,
    RuntimeCorrelation, SchedulerAdmissionEvent, SchedulerEventKind as S, TaskExecutionId, TaskId,
};
use weir_telemetry::{CorrelatedRuntimeView, TIMELINE_FIELDS};

fn s(seq: u64, kind: S, at: f64, task: Option<&str>, exec: Option<u64>) -> SchedulerAdmissionEvent {
    let mut e = SchedulerAdmissionEvent::new(kind, at);
    e.sequence = seq;
    e.task_id = task.map(TaskId::new);
    e.task_execution_id = exec.map(TaskExecutionId);
    e
}

fn with_lease(mut e: SchedulerAdmissionEvent, counter: u64) -> SchedulerAdmissionEvent {
    e.task_lease_id = Some(LeaseId::new(ControllerGeneration(1), counter));
    e
}

fn r(
    seq: u64,
    kind: RequestEventKind,
    at: f64,
    exec: Option<u64>,
    attempt: Option<u64>,
) -> RequestAdmissionEvent {
    let mut e = RequestAdmissionEvent::new(kind, at);
    e.sequence = seq;
    e.task_execution_id = exec.map(TaskExecutionId);
    e.request_attempt_id = attempt.map(RequestAttemptId);
    e
}

fn correlated(mut e: RequestAdmissionEvent, exec: u64) -> RequestAdmissionEvent {
    let mut c = RuntimeCorrelation::for_run("run");
    c.task_execution_id = Some(TaskExecutionId(exec));
    e.captured_correlation = Some(c);
    e
}

fn single_execution_view() -> CorrelatedRuntimeView {
    let a = Some("task-a");
    let scheduler = vec![
        s(1, S::DependencyReady, 1.0, a, None),
        s(2, S::ReadyEnqueued, 2.0, a, None),
        s(3, S::Selected, 3.0, a, None),
        with_lease(s(4, S::TaskLeaseAcquired, 4.0, a, Some(10)), 1),
        s(5, S::WorkerSpawned, 5.0, a, Some(10)),
        s(6, S::QueueEmpty, 6.0, None, None),
        s(7, S::TaskCompleted, 12.0, a, Some(10)),
        // No execution id: joined through the task lease id.
        with_lease(s(8, S::TaskLeaseReleased, 13.0, a, None), 1),
    ];
    let request = vec![
        r(1, R::RequestWaitStarted, 6.0, Some(10), Some(100)),
        // Attempt id only: joined through the attempt.
        r(2, R::RequestWaitCompleted, 7.0, None, Some(100)),
        // Execution only through captured correlation.
        correlated(r(3, R::RequestLeaseAcquired, 7.0, None, Some(100)), 10),
        r(4, R::ModelRequestStarted, 8.0, Some(10), Some(100)),
        r(5, R::ModelRequestCompleted, 9.0, Some(10), Some(100)),
        r(6, R::RequestLeaseReleased, 10.0, Some(10), Some(100)),
        r(7, R::RequestLimitDecreased, 10.0, None, None),
        r(8, R::RequestWaitStarted, 10.5, Some(10), Some(101)),
        r(9, R::RequestWaitCompleted, 10.5, Some(10), Some(101)),
        r(10, R::RequestLeaseAcquired, 10.5, Some(10), Some(101)),
        r(11, R::ModelRequestStarted, 10.6, Some(10), Some(101)),
        r(12, R::ModelRequestCompleted, 11.0, Some(10), Some(101)),
        r(13, R::RequestLeaseReleased, 11.0, Some(10), Some(101)),
    ];
    // Input order does not matter: the view sorts each stream by sequence.
    let mut scheduler = scheduler;
    scheduler.reverse();
    CorrelatedRuntimeView::new(scheduler, request)
}

#[test]
fn joins_all_thirteen_fields_by_id() {
    let view = single_execution_view();
    assert_eq!(view.executions().len(), 1);
    let t = view.execution(TaskExecutionId(10)).expect("execution 10");
    assert_eq!(t.task_id, Some(TaskId::new("task-a")));
    let expected = [
        1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0, 8.0, 9.0, 10.0, 12.0, 13.0,
    ];
    let fields = t.fields();
    for (i, (name, value)) in fields.iter().enumerate() {
        assert_eq!(*name, TIMELINE_FIELDS[i]);
        assert_eq!(*value, Some(expected[i]), "{name}");
    }
    assert!(t.missing_fields().is_empty());
    // Per-attempt timelines, grouped by attempt id.
    assert_eq!(t.attempts.len(), 2);
    assert_eq!(t.attempts[0].request_attempt_id, RequestAttemptId(100));
    assert_eq!(t.attempts[0].request_wait_completed_at, Some(7.0));
    assert_eq!(t.attempts[1].request_attempt_id, RequestAttemptId(101));
    assert_eq!(t.attempts[1].model_request_started_at, Some(10.6));
    assert_eq!(t.attempts[1].request_lease_released_at, Some(11.0));
    assert_eq!(view.request_lease_count(), 2);
    assert_eq!(view.outbound_attempts(), 2);
    assert_eq!(view.hidden_scheduler_resource_waiters(), 0);
    let json = serde_json::to_value(t).expect("serializable");
    assert_eq!(json["task_lease_released_at"], 13.0);
}

#[test]
fn timeline_is_merged_by_time_then_scheduler_first_then_sequence() {
    let view = single_execution_view();
    let timeline = view.timeline();
    assert_eq!(timeline.len(), 8 + 13);
    for w in timeline.windows(2) {
        assert!(w[0].captured_at() <= w[1].captured_at());
    }
    // At t=6.0 the scheduler's queue_empty comes before the request's wait start.
    let at6: Vec<(&str, &str)> = timeline
        .iter()
        .filter(|e| e.captured_at() == 6.0)
        .map(|e| (e.stream(), e.kind_name()))
        .collect();
    assert_eq!(
        at6,
        vec![
            ("scheduler", "queue_empty"),
            ("request", "request_wait_started")
        ]
    );
    // At t=7.0 two request events keep sequence order.
    let at7: Vec<u64> = timeline
        .iter()
        .filter(|e| e.captured_at() == 7.0)
        .map(|e| e.sequence())
        .collect();
    assert_eq!(at7, vec![2, 3]);
    let rows = view.timeline_rows();
    assert_eq!(rows[0].event_kind, "dependency_ready");
    assert_eq!(rows[0].stream, "scheduler");
}

#[test]
fn a_retried_task_has_two_correctly_joined_executions() {
    let b = Some("task-b");
    let c = Some("task-c");
    let scheduler = vec![
        s(1, S::DependencyReady, 0.0, b, None),
        s(2, S::DependencyReady, 0.5, c, None),
        s(3, S::ReadyEnqueued, 1.0, b, None),
        s(4, S::Selected, 2.0, b, None),
        s(5, S::TaskLeaseAcquired, 3.0, b, Some(20)),
        s(6, S::WorkerSpawned, 4.0, b, Some(20)),
        s(7, S::RetryDeferred, 5.0, b, Some(20)),
        s(8, S::TaskLeaseReleased, 6.0, b, Some(20)),
        s(9, S::ReadyEnqueued, 7.0, b, None),
        s(10, S::ReadyEnqueued, 7.5, c, None),
        // A stale selection then a fresh one: the last before the execution counts.
        s(11, S::Selected, 7.9, b, None),
        s(12, S::Selected, 8.0, b, None),
        // An id-less lease event before the spawn belongs to the following execution.
        s(13, S::TaskLeaseAcquired, 9.0, b, None),
        s(14, S::WorkerSpawned, 10.0, b, Some(21)),
        s(15, S::TaskCompleted, 11.0, b, Some(21)),
        // Id-less release after the execution goes to the one before it.
        s(16, S::TaskLeaseReleased, 12.0, b, None),
    ];
    let request = vec![
        r(1, R::RequestWaitStarted, 4.1, Some(20), Some(1)),
        r(2, R::RequestWaitCancelled, 5.0, Some(20), Some(1)),
        r(3, R::RequestWaitStarted, 10.1, Some(21), Some(2)),
    ];
    let view = CorrelatedRuntimeView::new(scheduler, request);
    let execs = view.executions_of_task(&TaskId::new("task-b"));
    assert_eq!(execs.len(), 2);
    let (first, second) = (execs[0], execs[1]);
    assert_eq!(first.task_execution_id, TaskExecutionId(20));
    assert_eq!(second.task_execution_id, TaskExecutionId(21));

    assert_eq!(first.dependency_ready_at, Some(0.0));
    assert_eq!(first.ready_enqueued_at, Some(1.0));
    assert_eq!(first.selected_at, Some(2.0));
    assert_eq!(first.task_lease_acquired_at, Some(3.0));
    assert_eq!(first.worker_spawned_at, Some(4.0));
    assert_eq!(first.request_wait_started_at, Some(4.1));
    assert_eq!(first.request_wait_completed_at, None);
    assert_eq!(first.task_completed_at, None);
    assert_eq!(first.task_lease_released_at, Some(6.0));

    assert_eq!(
        second.dependency_ready_at, None,
        "dependency readiness belonged to the first"
    );
    assert_eq!(second.ready_enqueued_at, Some(7.0));
    assert_eq!(second.selected_at, Some(8.0));
    assert_eq!(second.task_lease_acquired_at, Some(9.0));
    assert_eq!(second.worker_spawned_at, Some(10.0));
    assert_eq!(second.request_wait_started_at, Some(10.1));
    assert_eq!(second.task_completed_at, Some(11.0));
    assert_eq!(second.task_lease_released_at, Some(12.0));

    // Task C never ran: its events stay unattributed.
    assert!(view.executions_of_task(&TaskId::new("task-c")).is_empty());
    assert_eq!(view.hidden_scheduler_resource_waiters(), 0);
}

#[test]
fn hidden_waiters_count_spawn_before_lease() {
    let a = Some("task-a");
    let lease_then_spawn = CorrelatedRuntimeView::new(
        vec![
            s(1, S::TaskLeaseAcquired, 1.0, a, Some(1)),
            s(2, S::WorkerSpawned, 1.0, a, Some(1)),
        ],
        Vec::new(),
    );
    assert_eq!(lease_then_spawn.hidden_scheduler_resource_waiters(), 0);

    // Same capture time: order is decided by the scheduler sequence.
    let spawn_then_lease = CorrelatedRuntimeView::new(
        vec![
            s(1, S::WorkerSpawned, 1.0, a, Some(1)),
            s(2, S::TaskLeaseAcquired, 1.0, a, Some(1)),
        ],
        Vec::new(),
    );
    assert_eq!(spawn_then_lease.hidden_scheduler_resource_waiters(), 1);

    let spawn_without_lease =
        CorrelatedRuntimeView::new(vec![s(1, S::WorkerSpawned, 1.0, a, Some(1))], Vec::new());
    assert_eq!(spawn_without_lease.hidden_scheduler_resource_waiters(), 1);

    // Legacy shape without execution ids: judged per task.
    let legacy = CorrelatedRuntimeView::new(
        vec![
            s(1, S::TaskLeaseAcquired, 1.0, Some("t1"), None),
            s(2, S::WorkerSpawned, 1.0, Some("t1"), None),
            s(3, S::WorkerSpawned, 1.0, Some("t2"), None),
            s(4, S::TaskLeaseAcquired, 1.0, Some("t2"), None),
        ],
        Vec::new(),
    );
    assert_eq!(legacy.hidden_scheduler_resource_waiters(), 1);
}

#[test]
fn lease_count_and_outbound_attempts_can_differ() {
    let view = CorrelatedRuntimeView::new(
        Vec::new(),
        vec![
            r(1, R::RequestLeaseAcquired, 1.0, Some(1), Some(1)),
            r(2, R::ModelRequestStarted, 1.0, Some(1), Some(1)),
            r(3, R::RequestLeaseAcquired, 2.0, Some(1), Some(2)),
        ],
    );
    assert_eq!(view.request_lease_count(), 2);
    assert_eq!(view.outbound_attempts(), 1);
    // An execution seen only in the request stream still gets a timeline.
    let t = view.execution(TaskExecutionId(1)).expect("execution");
    assert_eq!(t.task_id, None);
    assert_eq!(t.attempts.len(), 2);
}
