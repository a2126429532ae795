//! Scheduler end-to-end on local-only workflows: every record written once, in order, deterministic.

use std::sync::Arc;
use weir_contracts::SchedulerEventKind;
use weir_runtime::generators::{Category, Expression, UniformInt};
use weir_runtime::model_facade::NoModelFacade;
use weir_runtime::scheduler::{AsyncTaskScheduler, InMemoryRecordSink, SchedulerConfig};
use weir_runtime::workflow::{ColumnSpec, Workflow};
use weir_telemetry::{EventStream, InMemoryAdmissionEventSink, MonotonicClock};

fn workflow(records: u64, buffer: u64, groups: u32) -> Arc<Workflow> {
    Arc::new(
        Workflow::new("local", records, 7)
            .with_buffer_size(buffer)
            .with_max_concurrent_row_groups(groups)
            .with_column(ColumnSpec::new(
                "topic",
                Arc::new(Category::new(["a", "b", "c"]).expect("valid")),
            ))
            .with_column(ColumnSpec::new(
                "n",
                Arc::new(UniformInt::new(1, 100).expect("valid")),
            ))
            .with_column(ColumnSpec::new(
                "title",
                Arc::new(Expression::new("{{ topic }}-{{ n }}").expect("valid")),
            )),
    )
}

async fn run(
    records: u64,
    buffer: u64,
    groups: u32,
    inline: bool,
) -> (
    Vec<(u64, weir_runtime::generators::Record)>,
    weir_runtime::scheduler::SchedulerReport,
) {
    let mut sink = InMemoryRecordSink::new();
    let outcome =
        AsyncTaskScheduler::new(workflow(records, buffer, groups), Arc::new(NoModelFacade))
            .with_inline_local_tasks(inline)
            .run(&mut sink)
            .await
            .expect("run");
    (sink.rows(), outcome.report)
}

#[tokio::test]
async fn writes_every_record_once_in_order_and_leaves_no_lease() {
    let (rows, report) = run(1_000, 64, 3, true).await;
    assert_eq!(rows.len(), 1_000);
    assert_eq!(report.records_written, 1_000);
    assert!(
        rows.iter().enumerate().all(|(i, (g, _))| *g == i as u64),
        "row order"
    );
    for (_, r) in &rows {
        let title = r["title"].as_str().expect("title");
        assert_eq!(
            title,
            format!("{}-{}", r["topic"].as_str().expect("topic"), r["n"])
        );
    }
    assert_eq!(report.tasks_completed, 3_000);
    assert_eq!(report.final_task_snapshot.active_lease_count, 0);
    assert!(report.final_task_snapshot.leased_resources.is_empty());
    assert_eq!(report.queued_at_end, 0);
    assert!(report.max_row_groups_in_flight <= 3);
}

#[tokio::test]
async fn output_is_identical_whatever_the_concurrency() {
    let (a, _) = run(500, 50, 1, true).await;
    let (b, _) = run(500, 50, 4, false).await;
    let (c, _) = run(500, 50, 8, true).await;
    assert_eq!(a, b);
    assert_eq!(a, c);
}

#[tokio::test]
async fn lease_always_precedes_spawn_in_the_event_stream() {
    let sink = Arc::new(InMemoryAdmissionEventSink::new());
    let events = EventStream::single(sink.clone(), MonotonicClock::start());
    let mut records = InMemoryRecordSink::new();
    AsyncTaskScheduler::new(workflow(200, 50, 2), Arc::new(NoModelFacade))
        .with_events(events)
        .with_config(SchedulerConfig {
            max_concurrent_row_groups: 2,
            ..SchedulerConfig::default()
        })
        .run(&mut records)
        .await
        .expect("run");
    let ev = sink.scheduler_events();
    let view = weir_telemetry::CorrelatedRuntimeView::new(ev.clone(), Vec::new());
    assert_eq!(view.hidden_scheduler_resource_waiters(), 0);
    let count = |k| ev.iter().filter(|e| e.event_kind() == k).count();
    assert_eq!(count(SchedulerEventKind::TaskLeaseAcquired), 600);
    assert_eq!(count(SchedulerEventKind::TaskLeaseReleased), 600);
    assert_eq!(count(SchedulerEventKind::RowGroupCheckpointed), 4);
    assert_eq!(count(SchedulerEventKind::SchedulerJobCompleted), 1);
    assert!(ev.windows(2).all(|w| w[0].sequence < w[1].sequence));
}
