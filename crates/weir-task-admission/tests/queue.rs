//! FairTaskQueue: ordering, staleness, idempotence, discard and view accounting.

mod common;
use common::*;
use weir_contracts::TaskId;
use weir_task_admission::FairTaskQueue;

#[test]
fn equal_weights_round_robin() {
    let mut q = FairTaskQueue::new();
    for name in ["a", "b", "c"] {
        fill(&mut q, &group(name, 1, None), &sub(), 3);
    }
    assert_eq!(
        drain_order(&mut q, 100),
        ["a", "b", "c", "a", "b", "c", "a", "b", "c"]
    );
    assert!(q.is_empty());
}

#[test]
fn weights_two_to_one() {
    let mut q = FairTaskQueue::new();
    fill(&mut q, &group("a", 2, None), &sub(), 40);
    fill(&mut q, &group("b", 1, None), &sub(), 40);
    let order = drain_order(&mut q, 30);
    assert_eq!(order[..9].join(""), "abaabaaba");
    // Every prefix stays within one pick of the exact 2:1 share.
    for k in 1..=order.len() {
        let a = order[..k].iter().filter(|g| *g == "a").count() as f64;
        assert!((a - k as f64 * 2.0 / 3.0).abs() <= 1.0, "prefix {k}: {a}");
    }
    assert_eq!(order.iter().filter(|g| *g == "a").count(), 20);
}

#[test]
fn enqueue_is_idempotent_by_task_id() {
    let mut q = FairTaskQueue::new();
    let g = group("a", 1, None);
    let accepted = q.enqueue([
        task("t1", &g, &sub()),
        task("t1", &g, &sub()),
        task("t2", &g, &sub()),
    ]);
    assert_eq!(accepted, [TaskId::new("t1"), TaskId::new("t2")]);
    assert!(q.enqueue([task("t2", &g, &sub())]).is_empty());
    assert_eq!(q.len(), 2);
    assert_eq!(q.view().queued_in_group(&key("a")), 2);
    // After commit the id may be enqueued again.
    let tok = q
        .select_next(|_, _| true)
        .map(|s| s.token())
        .expect("queued");
    assert_eq!(q.commit(tok).map(|t| t.task_id), Some(TaskId::new("t1")));
    assert_eq!(q.enqueue([task("t1", &g, &sub())]), [TaskId::new("t1")]);
}

#[test]
fn stale_selection_is_rejected_and_changes_nothing() {
    let mut q = FairTaskQueue::new();
    let (a, b) = (group("a", 1, None), group("b", 1, None));
    fill(&mut q, &a, &sub(), 2);
    let tok = q
        .select_next(|_, _| true)
        .map(|s| s.token())
        .expect("queued");
    // Unrelated enqueues (another group, or the tail of this group) keep the selection valid.
    fill(&mut q, &b, &sub(), 1);
    q.enqueue([task("a-9", &a, &sub())]);
    // Discarding the selected head makes it stale.
    let sel_id = TaskId::new("a-0");
    assert!(q.discard(&sel_id).is_some());
    let before = q.view().to_snapshot();
    assert!(q.commit(tok).is_none());
    assert_eq!(q.view().to_snapshot(), before);
    // A committed token cannot commit twice.
    let tok = q
        .select_next(|_, _| true)
        .map(|s| s.token())
        .expect("queued");
    assert!(q.commit(tok).is_some());
    assert!(q.commit(tok).is_none());
}

#[test]
fn unrelated_enqueue_keeps_selection_valid() {
    let mut q = FairTaskQueue::new();
    fill(&mut q, &group("a", 1, None), &sub(), 1);
    let tok = q
        .select_next(|_, _| true)
        .map(|s| s.token())
        .expect("queued");
    fill(&mut q, &group("b", 1, None), &sub(), 5);
    assert_eq!(q.commit(tok).map(|t| t.task_id), Some(TaskId::new("a-0")));
}

#[test]
fn predicate_is_respected_and_sees_one_view() {
    let mut q = FairTaskQueue::new();
    for name in ["a", "b", "c"] {
        fill(&mut q, &group(name, 1, None), &sub(), 2);
    }
    let before = q.view().to_snapshot();
    let mut offered = Vec::new();
    let mut versions = Vec::new();
    let sel = q
        .select_next(|t, v| {
            offered.push(group_of(&t.task_id));
            versions.push(v.version());
            assert_eq!(v.queued_total(), 6);
            group_of(&t.task_id) == "c"
        })
        .map(|s| s.item.task_id.clone());
    assert_eq!(sel, Some(TaskId::new("c-0")));
    assert_eq!(
        offered,
        ["a", "b", "c"],
        "each group's head once, in fair order"
    );
    assert!(versions.windows(2).all(|w| w[0] == w[1]));
    assert!(q.select_next(|_, _| false).is_none());
    assert_eq!(
        q.view().to_snapshot(),
        before,
        "select_next changed nothing"
    );
}

#[test]
fn discard_and_view_accounting() {
    let mut q = FairTaskQueue::new();
    let a = group("a", 1, None);
    let b = group("b", 3, None);
    let big = req(&[("submission", 1), ("local", 2)]);
    q.enqueue([
        task("a-0", &a, &big),
        task("a-1", &a, &sub()),
        task("a-2", &a, &big),
    ]);
    q.enqueue([task("b-0", &b, &sub())]);
    let v = q.view();
    assert_eq!(v.queued_total(), 4);
    assert_eq!(v.peer_demand(&res("submission")), 4);
    assert_eq!(v.peer_demand(&res("local")), 4);
    let ga = v.group(&key("a")).expect("a queued");
    assert_eq!(ga.demand(), &[(res("local"), 4), (res("submission"), 3)]);
    assert_eq!(ga.head_request().amount(&res("local")), 2);
    let sigs: Vec<_> = v.head_signatures().map(|s| (s.groups, s.weight)).collect();
    assert_eq!(sigs.iter().map(|s| s.0).sum::<u32>(), 2);

    // Discard the head: the next task becomes the head, counters follow.
    assert!(q.discard(&TaskId::new("a-0")).is_some());
    assert!(
        q.discard(&TaskId::new("a-0")).is_none(),
        "unknown ids are a no-op"
    );
    let v = q.view();
    assert_eq!(v.queued_total(), 3);
    assert_eq!(v.peer_demand(&res("local")), 2);
    let ga = v.group(&key("a")).expect("a queued");
    assert_eq!(ga.head_request().amount(&res("local")), 0);
    assert_eq!(ga.queued(), 2);

    // discard_where removes matches anywhere.
    let gone = q.discard_where(|t| t.resource_request.amount(&res("local")) > 0);
    assert_eq!(gone.len(), 1);
    assert_eq!(q.view().peer_demand(&res("local")), 0);
    assert!(q
        .view()
        .peer_demand_by_resource()
        .iter()
        .all(|(k, _)| k.as_str() != "local"));

    // Commit the rest; everything returns to zero (idle lanes may be kept, one per group).
    assert_eq!(drain_order(&mut q, 10).len(), 2);
    let v = q.view();
    assert_eq!(v.queued_total(), 0);
    assert_eq!(v.group_count(), 0);
    assert!(v.peer_demand_by_resource().is_empty());
    assert_eq!(v.head_signatures().count(), 0);
    assert!(q.tracked_groups() <= 2);
}

#[test]
fn discarding_from_the_middle_keeps_fifo_and_bounded_memory() {
    let mut q = FairTaskQueue::new();
    let a = group("a", 1, None);
    fill(&mut q, &a, &sub(), 200);
    for i in (1..199).filter(|i| i % 3 != 0) {
        assert!(q.discard(&TaskId::new(format!("a-{i}"))).is_some());
    }
    let mut ids = Vec::new();
    while let Some(tok) = q.select_next(|_, _| true).map(|s| s.token()) {
        ids.push(q.commit(tok).expect("commit").task_id);
    }
    let want: Vec<TaskId> = (0..200)
        .filter(|i| *i == 0 || *i == 199 || i % 3 == 0)
        .map(|i| TaskId::new(format!("a-{i}")))
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn a_group_that_refills_after_each_pick_cannot_starve_peers() {
    let mut q = FairTaskQueue::new();
    let (a, b) = (group("a", 1, None), group("b", 1, None));
    fill(&mut q, &b, &sub(), 50);
    let mut picks = Vec::new();
    for i in 0..20 {
        q.enqueue([task(&format!("a-{i}"), &a, &sub())]);
        let tok = q
            .select_next(|_, _| true)
            .map(|s| s.token())
            .expect("queued");
        picks.push(group_of(&q.commit(tok).expect("commit").task_id));
    }
    let a_picks = picks.iter().filter(|g| *g == "a").count();
    assert!((9..=11).contains(&a_picks), "{picks:?}");
    // Idle tags are forgotten once they no longer matter.
    assert!(q.tracked_groups() <= 2);
}

#[test]
fn group_state_stays_bounded_by_live_groups() {
    let mut q = FairTaskQueue::new();
    let keep = group("keep", 1, None);
    fill(&mut q, &keep, &sub(), 30_000);
    // More distinct groups than the idle-lane bound (4,096): idle lanes are kept for reuse up
    // to the bound, then the ones whose tag no longer matters are freed.
    for i in 0..10_000 {
        let g = group(&format!("g{i}"), 1, None);
        q.enqueue([task(&format!("g{i}-0"), &g, &sub())]);
        for _ in 0..2 {
            let tok = q
                .select_next(|_, _| true)
                .map(|s| s.token())
                .expect("queued");
            q.commit(tok);
        }
    }
    assert!(
        q.tracked_groups() <= 4_096 + 3,
        "tracked {}",
        q.tracked_groups()
    );
}

#[test]
fn membership_stays_exact_across_lazy_index_sweeps() {
    // Commits leave stale index entries behind (swept when the index would grow). Membership
    // must stay exact before, during and after, and re-enqueue must work.
    let mut q = FairTaskQueue::new();
    let (a, b) = (group("a", 1, None), group("b", 3, None));
    let r = sub();
    let ids: Vec<String> = (0..5_000).map(|i| format!("t{i}")).collect();
    q.enqueue(
        ids.iter()
            .enumerate()
            .map(|(i, id)| task(id, if i % 2 == 0 { &a } else { &b }, &r)),
    );
    let mut gone = Vec::new();
    for _ in 0..3_500 {
        let tok = q
            .select_next(|_, _| true)
            .map(|s| s.token())
            .expect("queued");
        gone.push(q.commit(tok).expect("fresh").task_id);
    }
    // Discard a few from the middle of group a's FIFO too.
    let discarded: Vec<TaskId> = (0..10)
        .map(|i| TaskId::new(format!("t{}", 4_000 + 2 * i)))
        .collect();
    for id in &discarded {
        assert!(q.discard(id).is_some(), "{id} is queued");
    }
    assert_eq!(q.len(), 5_000 - 3_500 - 10);
    for id in gone.iter().chain(&discarded) {
        assert!(!q.contains(id) && q.get(id).is_none());
    }
    let live: Vec<TaskId> = ids
        .iter()
        .map(|i| TaskId::new(i.clone()))
        .filter(|i| !gone.contains(i) && !discarded.contains(i))
        .collect();
    assert_eq!(live.len(), q.len());
    for id in &live {
        assert!(q.contains(id) && q.get(id).is_some_and(|t| t.task_id == *id));
    }
    // Duplicates of live ids are refused; committed ids are accepted again.
    assert!(q.enqueue([task(live[0].as_str(), &a, &r)]).is_empty());
    assert_eq!(
        q.enqueue(gone.iter().take(100).map(|id| task(id.as_str(), &b, &r)))
            .len(),
        100
    );
    assert_eq!(q.len(), 5_000 - 3_500 - 10 + 100);
    // Draining resets the index; everything can be enqueued again.
    while let Some(tok) = q.select_next(|_, _| true).map(|s| s.token()) {
        q.commit(tok).expect("fresh");
    }
    assert!(q.is_empty());
    assert_eq!(
        q.enqueue(ids.iter().map(|id| task(id, &a, &r))).len(),
        5_000
    );
}

#[test]
fn the_membership_index_stays_bounded_under_steady_churn() {
    // ~1,000 live tasks, 60,000 enqueue/commit pairs: stale entries are swept whenever the
    // index would grow, so it stays within a small multiple of the live count, and membership
    // stays exact throughout.
    let mut q = FairTaskQueue::new();
    let (a, b) = (group("a", 1, None), group("b", 2, None));
    let r = sub();
    let add = |q: &mut FairTaskQueue<u32>, next: &mut u64, n: usize| {
        let batch: Vec<_> = (0..n)
            .map(|_| {
                *next += 1;
                task(
                    &format!("c{next}"),
                    if next.is_multiple_of(2) { &a } else { &b },
                    &r,
                )
            })
            .collect();
        assert_eq!(q.enqueue(batch).len(), n);
    };
    let mut next = 0u64;
    add(&mut q, &mut next, 1_000);
    let mut max_indexed = 0;
    for i in 0..60_000 {
        let tok = q
            .select_next(|_, _| true)
            .map(|s| s.token())
            .expect("queued");
        let t = q.commit(tok).expect("fresh");
        assert!(
            !q.contains(&t.task_id),
            "committed {} still a member",
            t.task_id
        );
        add(&mut q, &mut next, 1);
        max_indexed = max_indexed.max(q.indexed_ids());
        if i % 997 == 0 {
            assert!(q.contains(&TaskId::new(format!("c{}", next))));
        }
    }
    assert_eq!(q.len(), 1_000);
    assert!(
        max_indexed <= 4 * 1_000 + 1_024,
        "index grew to {max_indexed}"
    );
}
