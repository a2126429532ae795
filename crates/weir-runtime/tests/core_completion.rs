//! CompletionTracker: root tasks, downstream readiness, idempotent handoff, full columns, drops, freeing.

use std::collections::BTreeSet;
use std::sync::Arc;
use weir_contracts::TaskId;
use weir_runtime::completion::{
    CompleteOutcome, CompletionTracker, DropCause, ReadyTask, Task, TaskType, TrackerError,
};
use weir_runtime::generators::{ColumnGenerator, Expression, UniformInt, Validator};
use weir_runtime::workflow::{ColumnSpec, ExecutionGraph, Workflow};

fn int() -> Arc<dyn ColumnGenerator> {
    Arc::new(UniformInt::new(0, 9).unwrap())
}

fn expr(t: &str) -> Arc<dyn ColumnGenerator> {
    Arc::new(Expression::new(t).unwrap())
}

/// seed (cell root) -> text (cell) -> check (full, reads text) -> final (cell, reads check + seed)
fn graph() -> ExecutionGraph {
    Workflow::new("t", 100, 1)
        .with_column(ColumnSpec::new("seed", int()))
        .with_column(ColumnSpec::new("text", expr("{{ seed }}")))
        .with_column(ColumnSpec::new(
            "check",
            Arc::new(Validator::new(["text"]).unwrap()),
        ))
        .with_column(ColumnSpec::new("final", expr("{{ seed }}")).depends_on(["check"]))
        .validate()
        .unwrap()
}

fn names(f: &[ReadyTask]) -> Vec<String> {
    f.iter()
        .map(|r| {
            format!(
                "{}:{}:{:?}",
                r.task.column, r.task.row_group, r.task.row_index
            )
        })
        .collect()
}

fn ack(t: &mut CompletionTracker) -> Vec<ReadyTask> {
    let f = t.ready_frontier();
    t.mark_enqueued(f.iter().map(|r| &r.id));
    f
}

fn cell(col: &str, rg: u64, r: u64) -> Task {
    Task {
        column: col.into(),
        row_group: rg,
        row_index: Some(r),
        task_type: TaskType::Cell,
    }
}

fn batch(col: &str, rg: u64) -> Task {
    Task {
        column: col.into(),
        row_group: rg,
        row_index: None,
        task_type: TaskType::Batch,
    }
}

#[test]
fn root_tasks_are_ready_first_and_downstream_waits_for_deps() {
    let mut t = CompletionTracker::new(&graph());
    assert!(t.ready_frontier().is_empty());
    t.admit_row_group(0, 3).unwrap();
    let f = ack(&mut t);
    assert_eq!(
        names(&f),
        ["seed:0:Some(0)", "seed:0:Some(1)", "seed:0:Some(2)"]
    );
    assert_eq!(f[0].id, TaskId::stable("seed", 0, Some(0), "cell"));
    assert!(t.ready_frontier().is_empty());
    t.mark_complete(&cell("seed", 0, 1)).unwrap();
    assert_eq!(names(&ack(&mut t)), ["text:0:Some(1)"]);
    // "final" also reads seed, but must wait for the full-column "check".
    t.mark_complete(&cell("seed", 0, 0)).unwrap();
    t.mark_complete(&cell("seed", 0, 2)).unwrap();
    assert_eq!(names(&ack(&mut t)), ["text:0:Some(0)", "text:0:Some(2)"]);
    t.mark_complete(&cell("text", 0, 0)).unwrap();
    t.mark_complete(&cell("text", 0, 1)).unwrap();
    assert!(t.ready_frontier().is_empty(), "check waits for every row");
    t.mark_complete(&cell("text", 0, 2)).unwrap();
    let f = ack(&mut t);
    assert_eq!(names(&f), ["check:0:None"]);
    assert_eq!(f[0].task.task_type, TaskType::Batch);
    t.mark_complete(&batch("check", 0)).unwrap();
    assert_eq!(
        names(&ack(&mut t)),
        ["final:0:Some(0)", "final:0:Some(1)", "final:0:Some(2)"]
    );
    assert!(!t.row_group_complete(0));
    for r in 0..3 {
        t.mark_complete(&cell("final", 0, r)).unwrap();
    }
    assert!(t.row_group_complete(0));
}

#[test]
fn mark_enqueued_is_idempotent_and_frontier_repeats_until_acked() {
    let mut t = CompletionTracker::new(&graph());
    t.admit_row_group(0, 2).unwrap();
    let first = t.ready_frontier();
    assert_eq!(
        t.ready_frontier(),
        first,
        "unacknowledged tasks stay on the frontier"
    );
    let ids: Vec<TaskId> = vec![first[0].id.clone()];
    assert_eq!(t.mark_enqueued(&ids), 1);
    assert_eq!(t.mark_enqueued(&ids), 0);
    assert_eq!(t.mark_enqueued(&[TaskId::new("task-unknown")]), 0);
    assert_eq!(names(&t.ready_frontier()), ["seed:0:Some(1)"]);
    // Completing twice is harmless and does not double-ready downstream.
    assert_eq!(
        t.mark_complete(&cell("seed", 0, 0)).unwrap(),
        CompleteOutcome::Completed
    );
    assert_eq!(
        t.mark_complete(&cell("seed", 0, 0)).unwrap(),
        CompleteOutcome::AlreadyComplete
    );
    let text: Vec<_> = t
        .ready_frontier()
        .into_iter()
        .filter(|r| &*r.task.column == "text")
        .collect();
    assert_eq!(text.len(), 1);
}

#[test]
fn root_full_column_is_from_scratch() {
    struct Scratch;
    #[async_trait::async_trait]
    impl ColumnGenerator for Scratch {
        fn strategy(&self) -> weir_runtime::workflow::Strategy {
            weir_runtime::workflow::Strategy::FullColumn
        }
        fn required_columns(&self) -> Vec<String> {
            Vec::new()
        }
    }
    let g = Workflow::new("t", 5, 1)
        .with_column(ColumnSpec::new("s", Arc::new(Scratch)))
        .with_column(ColumnSpec::new("d", expr("{{ s }}")))
        .validate()
        .unwrap();
    let mut t = CompletionTracker::new(&g);
    t.admit_row_group(7, 4).unwrap();
    let f = ack(&mut t);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].task.task_type, TaskType::FromScratch);
    let scratch = f[0].task.clone();
    assert_eq!(
        t.mark_complete(&scratch).unwrap(),
        CompleteOutcome::Completed
    );
    assert_eq!(
        ack(&mut t).len(),
        4,
        "one cell per row once the whole column exists"
    );
}

#[test]
fn dropped_rows_never_ready_downstream_and_count_as_done_for_full_columns() {
    let mut t = CompletionTracker::new(&graph());
    t.admit_row_group(0, 3).unwrap();
    ack(&mut t);
    for r in 0..3 {
        t.mark_complete(&cell("seed", 0, r)).unwrap();
    }
    // text row 1 becomes ready but is withdrawn by the drop before it is enqueued.
    assert_eq!(t.ready_frontier().len(), 3);
    let cause = DropCause::NonRetryableFailure {
        column: "seed".into(),
        error_type: "bad_output".into(),
    };
    assert!(t.drop_row(0, 1, cause.clone()).unwrap());
    assert!(
        !t.drop_row(0, 1, cause.clone()).unwrap(),
        "second drop is a no-op"
    );
    assert_eq!(names(&ack(&mut t)), ["text:0:Some(0)", "text:0:Some(2)"]);
    t.mark_complete(&cell("text", 0, 0)).unwrap();
    assert!(t.ready_frontier().is_empty());
    t.mark_complete(&cell("text", 0, 2)).unwrap();
    assert_eq!(
        names(&ack(&mut t)),
        ["check:0:None"],
        "dropped row counts as done"
    );
    // A late completion on the dropped row changes nothing.
    assert_eq!(
        t.mark_complete(&cell("text", 0, 1)).unwrap(),
        CompleteOutcome::RowDropped
    );
    t.mark_complete(&batch("check", 0)).unwrap();
    assert_eq!(names(&ack(&mut t)), ["final:0:Some(0)", "final:0:Some(2)"]);
    t.mark_complete(&cell("final", 0, 0)).unwrap();
    t.mark_complete(&cell("final", 0, 2)).unwrap();
    let done = t.take_completed_row_group(0).unwrap().unwrap();
    assert_eq!(done.surviving_rows(), 2);
    assert_eq!(done.dropped.get(&1), Some(&cause));
}

#[test]
fn dropping_the_last_unfinished_row_releases_a_full_column() {
    let mut t = CompletionTracker::new(&graph());
    t.admit_row_group(0, 2).unwrap();
    ack(&mut t);
    t.mark_complete(&cell("seed", 0, 0)).unwrap();
    t.mark_complete(&cell("seed", 0, 1)).unwrap();
    ack(&mut t);
    t.mark_complete(&cell("text", 0, 0)).unwrap();
    // text row 1 is in flight and fails non-retryably.
    t.mark_failed(&cell("text", 0, 1), DropCause::Other { reason: "x".into() })
        .unwrap();
    assert_eq!(names(&ack(&mut t)), ["check:0:None"]);
}

#[test]
fn failed_full_column_drops_the_whole_group() {
    let mut t = CompletionTracker::new(&graph());
    t.admit_row_group(3, 2).unwrap();
    ack(&mut t);
    for r in 0..2 {
        t.mark_complete(&cell("seed", 3, r)).unwrap();
    }
    ack(&mut t);
    for r in 0..2 {
        t.mark_complete(&cell("text", 3, r)).unwrap();
    }
    ack(&mut t);
    t.mark_failed(
        &batch("check", 3),
        DropCause::Other {
            reason: "boom".into(),
        },
    )
    .unwrap();
    assert!(t.ready_frontier().is_empty());
    assert!(t.row_group_complete(3));
    assert_eq!(
        t.take_completed_row_group(3)
            .unwrap()
            .unwrap()
            .surviving_rows(),
        0
    );
}

#[test]
fn requeue_returns_a_deferred_task_to_the_frontier() {
    let mut t = CompletionTracker::new(&graph());
    t.admit_row_group(0, 1).unwrap();
    let f = ack(&mut t);
    assert!(t.requeue(&f[0].task).unwrap());
    assert!(!t.requeue(&f[0].task).unwrap(), "already pending");
    assert_eq!(t.ready_frontier(), f);
    ack(&mut t);
    t.mark_complete(&f[0].task).unwrap();
    assert!(
        !t.requeue(&f[0].task).unwrap(),
        "complete tasks stay complete"
    );
}

#[test]
fn completed_row_groups_are_freed_and_unknown_groups_are_typed_errors() {
    let mut t = CompletionTracker::new(&graph());
    for rg in 0..3 {
        t.admit_row_group(rg, 2).unwrap();
    }
    assert_eq!(
        t.take_completed_row_group(1).unwrap(),
        None,
        "not complete yet"
    );
    t.drop_row_group(
        1,
        DropCause::Other {
            reason: "test".into(),
        },
    )
    .unwrap();
    assert!(t.take_completed_row_group(1).unwrap().is_some());
    assert_eq!(t.live_row_groups(), vec![0, 2]);
    assert!(t.ready_frontier().iter().all(|r| r.task.row_group != 1));
    assert_eq!(
        t.mark_complete(&cell("seed", 1, 0)),
        Err(TrackerError::UnknownRowGroup { row_group: 1 })
    );
    assert_eq!(
        t.mark_complete(&cell("seed", 0, 9)),
        Err(TrackerError::RowOutOfRange {
            row_group: 0,
            row_index: 9,
            rows: 2
        })
    );
    assert!(matches!(
        t.mark_complete(&cell("nope", 0, 0)),
        Err(TrackerError::UnknownColumn { .. })
    ));
}

#[test]
fn frontier_work_stays_incremental_on_a_large_group() {
    // 20k rows: completing one root cell readies exactly one downstream task.
    let mut t = CompletionTracker::new(&graph());
    t.admit_row_group(0, 20_000).unwrap();
    assert_eq!(ack(&mut t).len(), 20_000);
    let mut seen = BTreeSet::new();
    for r in (0..20_000).rev() {
        t.mark_complete(&cell("seed", 0, r)).unwrap();
        assert_eq!(t.pending_len(), 1);
        let f = ack(&mut t);
        assert!(seen.insert(f[0].id.clone()));
    }
}

#[test]
fn full_driver_completes_several_groups_in_any_order() {
    let mut t = CompletionTracker::new(&graph());
    for rg in 0..4 {
        t.admit_row_group(rg, 5).unwrap();
    }
    let mut completed = 0;
    loop {
        let mut f = ack(&mut t);
        if f.is_empty() {
            break;
        }
        f.reverse(); // completion order differs from readiness order
        for r in f {
            t.mark_complete(&r.task).unwrap();
            completed += 1;
        }
    }
    // per group: 5 seed + 5 text + 1 check + 5 final
    assert_eq!(completed, 4 * 16);
    for rg in 0..4 {
        assert!(t.take_completed_row_group(rg).unwrap().is_some());
    }
    assert!(t.live_row_groups().is_empty());
}

/// Seeded random interleavings of ack / complete / fail: the frontier only ever holds tasks whose
/// dependencies are met, no row of a dropped row is ever readied, and every group finishes.
#[test]
fn random_interleavings_keep_readiness_invariants() {
    use rand::{Rng, SeedableRng};
    use std::collections::HashSet;
    let g = graph();
    for seed in 0..40u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut t = CompletionTracker::new(&g);
        let rows = 6u64;
        for rg in 0..3 {
            t.admit_row_group(rg, rows).unwrap();
        }
        let mut done: HashSet<Task> = HashSet::new();
        let mut dropped: HashSet<(u64, u64)> = HashSet::new();
        let mut in_flight: Vec<Task> = Vec::new();
        let met = |task: &Task, done: &HashSet<Task>, dropped: &HashSet<(u64, u64)>| -> bool {
            let rg = task.row_group;
            match (&*task.column, task.row_index) {
                ("seed", _) => true,
                ("text", Some(r)) => done.contains(&cell("seed", rg, r)),
                ("check", None) => (0..rows)
                    .all(|r| dropped.contains(&(rg, r)) || done.contains(&cell("text", rg, r))),
                ("final", Some(r)) => {
                    done.contains(&cell("seed", rg, r)) && done.contains(&batch("check", rg))
                }
                other => panic!("unexpected task {other:?}"),
            }
        };
        for _step in 0..10_000 {
            for r in t.ready_frontier() {
                assert!(
                    met(&r.task, &done, &dropped),
                    "seed {seed}: not ready {:?}",
                    r.task
                );
                if let Some(row) = r.task.row_index {
                    assert!(
                        !dropped.contains(&(r.task.row_group, row)),
                        "dropped row readied"
                    );
                }
            }
            match rng.gen_range(0..10) {
                0..=3 => {
                    let f = t.ready_frontier();
                    let take: Vec<ReadyTask> =
                        f.into_iter().filter(|_| rng.gen_bool(0.5)).collect();
                    assert_eq!(t.mark_enqueued(take.iter().map(|r| &r.id)), take.len());
                    in_flight.extend(take.into_iter().map(|r| r.task));
                }
                4..=8 if !in_flight.is_empty() => {
                    let task = in_flight.swap_remove(rng.gen_range(0..in_flight.len()));
                    match t.mark_complete(&task).unwrap() {
                        CompleteOutcome::Completed => assert!(done.insert(task)),
                        CompleteOutcome::RowDropped => {}
                        CompleteOutcome::AlreadyComplete => panic!("double completion"),
                    }
                }
                9 if !in_flight.is_empty() && rng.gen_bool(0.2) => {
                    let task = in_flight.swap_remove(rng.gen_range(0..in_flight.len()));
                    let rg = task.row_group;
                    match task.row_index {
                        Some(r) => {
                            dropped.insert((rg, r));
                        }
                        None => dropped.extend((0..rows).map(|r| (rg, r))),
                    }
                    t.mark_failed(
                        &task,
                        DropCause::Other {
                            reason: "random".into(),
                        },
                    )
                    .unwrap();
                }
                _ => {}
            }
            if t.ready_frontier().is_empty() && in_flight.is_empty() {
                break;
            }
        }
        for rg in 0..3 {
            assert!(t.row_group_complete(rg), "seed {seed}: group {rg} stalled");
            let summary = t.take_completed_row_group(rg).unwrap().unwrap();
            let expected_dropped = dropped.iter().filter(|(g, _)| *g == rg).count();
            assert_eq!(summary.dropped.len(), expected_dropped);
        }
    }
}
