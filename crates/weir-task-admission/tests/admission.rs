//! TaskAdmissionController and its policies: capacity, caps, borrow debt, releases, explanations.

mod common;
use common::*;
use weir_contracts::{ReleaseReason, TaskAdmissionDenyReason};
use weir_task_admission::{
    BoundedBorrowTaskAdmissionPolicyConfig, FairTaskQueue, PolicyDetail, StrictShareRounding,
    TaskAdmissionConfig, TaskAdmissionController, TaskAdmissionDecision,
};

fn controller(cfg: TaskAdmissionConfig) -> TaskAdmissionController {
    TaskAdmissionController::new(cfg).expect("valid config")
}

#[test]
fn config_validation_names_the_field() {
    let e =
        TaskAdmissionController::new(TaskAdmissionConfig::with_submission_capacity(0)).unwrap_err();
    assert_eq!(e.field, "submission_capacity");
    let e = TaskAdmissionController::new(TaskAdmissionConfig::default().with_limit(res("gpu"), 0))
        .unwrap_err();
    assert_eq!(e.field, "resource_limits.gpu");
    let bad = BoundedBorrowTaskAdmissionPolicyConfig {
        dynamic_borrow_reserve_fraction: 1.5,
        ..Default::default()
    };
    let e = TaskAdmissionController::new(TaskAdmissionConfig::default().with_bounded_borrow(bad))
        .unwrap_err();
    assert_eq!(e.field, "bounded_borrow.dynamic_borrow_reserve_fraction");
    let bad = BoundedBorrowTaskAdmissionPolicyConfig {
        dynamic_borrow_max_reserved_slots: 0,
        ..Default::default()
    };
    let e = TaskAdmissionController::new(TaskAdmissionConfig::default().with_bounded_borrow(bad))
        .unwrap_err();
    assert_eq!(e.field, "bounded_borrow.dynamic_borrow_max_reserved_slots");
    // An explicit submission limit overrides submission_capacity.
    let c = controller(
        TaskAdmissionConfig::with_submission_capacity(5).with_limit(res("submission"), 2),
    );
    assert_eq!(c.view().limit(&res("submission")), Some(2));
}

#[test]
fn unsatisfiable_requests_are_typed_errors_not_silent_denials() {
    let mut adm =
        controller(TaskAdmissionConfig::with_submission_capacity(2).with_limit(res("local"), 1));
    let e = adm.validate_request(&req(&[("gpu", 1)])).unwrap_err();
    assert_eq!(e.field, "resource_request.amounts.gpu");
    let e = adm.validate_request(&req(&[("local", 2)])).unwrap_err();
    assert_eq!(e.field, "resource_request.amounts.local");
    assert!(adm
        .validate_request(&req(&[("local", 1), ("submission", 2)]))
        .is_ok());

    let mut q = FairTaskQueue::new();
    let g = group("a", 1, None);
    q.enqueue([task("t", &g, &req(&[("gpu", 1)]))]);
    assert!(q.select_next(|t, v| adm.is_eligible(t, v)).is_none());
    let summary = adm.explain_blocked(&q.view());
    assert_eq!(summary.unsatisfiable_groups, 1);
    let t = task("t", &g, &req(&[("gpu", 1)]));
    match adm.try_acquire(&t, &q.view()) {
        TaskAdmissionDecision::Denied(d) => {
            assert!(
                matches!(d.detail, PolicyDetail::Unsatisfiable { ref field, .. } if field == "resource_request.amounts.gpu")
            );
        }
        TaskAdmissionDecision::Lease(_) => panic!("unlimited resource admitted"),
    }
}

#[test]
fn capacity_denial_and_release_restore_capacity() {
    let mut adm = controller(TaskAdmissionConfig::with_submission_capacity(2));
    let mut q = FairTaskQueue::new();
    fill(&mut q, &group("a", 1, None), &sub(), 3);
    let (_, l1) = dispatch(&mut q, &mut adm).expect("first");
    let (_, l2) = dispatch(&mut q, &mut adm).expect("second");
    assert!(q.select_next(|t, v| adm.is_eligible(t, v)).is_none());
    let head = task("a-2", &group("a", 1, None), &sub());
    let d = adm.try_acquire(&head, &q.view());
    let denied = d.denied().expect("denied");
    assert_eq!(denied.reason, TaskAdmissionDenyReason::NoCapacity);
    assert_eq!(
        denied.detail.diagnostics()["missing_resources"]["submission"]["available"],
        0
    );
    let summary = adm.explain_blocked(&q.view());
    assert_eq!(summary.queued_count, 1);
    assert_eq!(
        summary.dominant_reason(),
        Some(TaskAdmissionDenyReason::NoCapacity)
    );
    assert_eq!(adm.view().available(&res("submission")), 0);
    assert!(adm.release(&l1).released);
    assert_eq!(adm.view().available(&res("submission")), 1);
    assert!(dispatch(&mut q, &mut adm).is_some());
    assert!(adm.release(&l2).released);
}

#[test]
fn bad_releases_change_nothing_and_are_counted() {
    let mut adm = controller(TaskAdmissionConfig::with_submission_capacity(4));
    let mut other = controller(TaskAdmissionConfig::with_submission_capacity(4));
    let mut q = FairTaskQueue::new();
    fill(&mut q, &group("a", 1, None), &sub(), 2);
    let (_, lease) = dispatch(&mut q, &mut adm).expect("admitted");
    let (_, kept) = dispatch(&mut q, &mut adm).expect("admitted");
    let mut q2 = FairTaskQueue::new();
    fill(&mut q2, &group("a", 1, None), &sub(), 1);
    let (_, foreign) = dispatch(&mut q2, &mut other).expect("admitted");

    assert_eq!(adm.release(&lease).reason, ReleaseReason::Released);
    let before = adm.snapshot();
    let dup = adm.release(&lease);
    assert_eq!(
        (dup.released, dup.reason),
        (false, ReleaseReason::Duplicate)
    );
    let wrong = adm.release(&foreign);
    assert_eq!(
        (wrong.released, wrong.reason),
        (false, ReleaseReason::WrongControllerGeneration)
    );
    let mut after = adm.snapshot();
    assert_eq!(
        after.release_diagnostics.remove(&ReleaseReason::Duplicate),
        Some(1)
    );
    assert_eq!(
        after
            .release_diagnostics
            .remove(&ReleaseReason::WrongControllerGeneration),
        Some(1)
    );
    assert_eq!(after, before);
    assert_eq!(adm.view().release_diagnostic(ReleaseReason::Duplicate), 1);
    assert!(adm.release(&kept).released);
    let s = adm.snapshot();
    assert!(s.leased_resources.is_empty() && s.running_counts_by_group.is_empty());
    assert_eq!(s.active_lease_count, 0);
}

#[test]
fn strict_fair_group_cap_applies_only_under_peer_pressure() {
    let mut adm =
        controller(TaskAdmissionConfig::with_submission_capacity(10).with_limit(res("local"), 1));
    let a = group("a", 1, Some(1));
    let mut q = FairTaskQueue::new();
    fill(&mut q, &a, &sub(), 3);
    // Alone, the cap does not bind: a runs twice although admitted_limit = 1.
    let (_, _l1) = dispatch(&mut q, &mut adm).expect("a-0");
    let (_, _l2) = dispatch(&mut q, &mut adm).expect("a-1 (no peer)");
    // A hard-eligible peer wanting the same resource makes the cap bind.
    let b = group("b", 1, None);
    fill(&mut q, &b, &sub(), 1);
    let a2 = task("a-2", &a, &sub());
    let d = adm.try_acquire(&a2, &q.view());
    assert_eq!(
        d.denied().map(|d| d.reason),
        Some(TaskAdmissionDenyReason::GroupCap)
    );
    let sel = q
        .select_next(|t, v| adm.is_eligible(t, v))
        .map(|s| s.item.task_id.to_string());
    assert_eq!(sel.as_deref(), Some("b-0"));
    let summary = adm.explain_blocked(&q.view());
    assert_eq!(
        summary
            .dominant_denial_reasons
            .get(&TaskAdmissionDenyReason::GroupCap),
        Some(&1)
    );
    // A peer that cannot run (its resource is exhausted) exerts no pressure.
    let (_, _lb) = dispatch(&mut q, &mut adm).expect("b-0");
    let c = group("c", 1, None);
    let mut local_holder = FairTaskQueue::new();
    fill(&mut local_holder, &c, &req(&[("local", 1)]), 1);
    let (_, _lc) = dispatch(&mut local_holder, &mut adm).expect("takes local");
    q.enqueue([task("c-9", &c, &req(&[("local", 1), ("submission", 1)]))]);
    assert!(
        adm.try_acquire(&a2, &q.view()).is_lease(),
        "blocked peer is no pressure"
    );
}

fn borrow_cfg(cap: u32, repay_group_level: bool) -> TaskAdmissionConfig {
    TaskAdmissionConfig::with_submission_capacity(cap).with_bounded_borrow(
        BoundedBorrowTaskAdmissionPolicyConfig {
            repay_on_withheld_peer_pressure: repay_group_level,
            ..Default::default()
        },
    )
}

#[test]
fn bounded_borrow_debt_blocks_under_pressure_and_is_repaid() {
    let mut adm = controller(borrow_cfg(4, true));
    let a = group("a", 1, Some(4));
    let b = group("b", 1, Some(4));
    let mut q = FairTaskQueue::new();
    fill(&mut q, &a, &sub(), 6);
    // Solo group: strict share ceil(4·1/2) = 2, dynamic ceiling 4 − 0 − 2 = 2: it fills all 4 slots.
    let mut leases: Vec<_> = (0..4)
        .map(|_| dispatch(&mut q, &mut adm).expect("solo a").1)
        .collect();
    assert_eq!(leases[2].borrowed(), &[(res("submission"), 1)]);
    assert_eq!(adm.view().debt(&key("a"), &res("submission")), 2);
    assert!(
        q.select_next(|t, v| adm.is_eligible(t, v)).is_none(),
        "full"
    );
    // A peer arrives; a releases one lease: debt is repaid by the released unit (group level).
    fill(&mut q, &b, &sub(), 2);
    assert!(adm.release(&leases.remove(0)).released);
    assert_eq!(adm.view().debt(&key("a"), &res("submission")), 1);
    // a still owes and b is eligible: a gets nothing more, b runs.
    let a_head = q.view().group(&key("a")).map(|g| g.queued());
    assert_eq!(a_head, Some(2));
    let a_next = task("a-4", &a, &sub());
    let d = adm.try_acquire(&a_next, &q.view());
    assert_eq!(
        d.denied().map(|d| d.reason),
        Some(TaskAdmissionDenyReason::BorrowDebt)
    );
    let summary = adm.explain_blocked(&q.view());
    assert_eq!(
        summary
            .dominant_denial_reasons
            .get(&TaskAdmissionDenyReason::BorrowDebt),
        Some(&1)
    );
    let (t, lb) = dispatch(&mut q, &mut adm).expect("b runs");
    assert_eq!(group_of(&t.task_id), "b");
    // Everything released: every counter returns to zero.
    for l in leases.drain(..) {
        assert!(adm.release(&l).released);
    }
    assert!(adm.release(&lb).released);
    let s = adm.snapshot();
    assert!(s.policy_debt_by_group_resource.is_empty(), "{s:?}");
    assert!(s.leased_resources.is_empty() && s.running_counts_by_group.is_empty());
}

#[test]
fn lease_level_repayment_repays_only_what_a_lease_borrowed() {
    let mut adm = controller(borrow_cfg(4, false));
    let a = group("a", 1, Some(4));
    let mut q = FairTaskQueue::new();
    fill(&mut q, &a, &sub(), 4);
    let leases: Vec<_> = (0..4)
        .map(|_| dispatch(&mut q, &mut adm).expect("solo a").1)
        .collect();
    assert_eq!(adm.view().debt(&key("a"), &res("submission")), 2);
    assert!(adm.release(&leases[0]).released); // borrowed nothing
    assert_eq!(adm.view().debt(&key("a"), &res("submission")), 2);
    assert!(adm.release(&leases[3]).released); // borrowed one
    assert_eq!(adm.view().debt(&key("a"), &res("submission")), 1);
    assert!(adm.release(&leases[2]).released);
    assert!(adm.release(&leases[1]).released);
    assert!(adm.snapshot().policy_debt_by_group_resource.is_empty());
}

#[test]
fn strict_share_caps_under_pressure_and_single_group_stays_live() {
    // Pressure: a (w1) and b (w1) share 4 slots: a may hold 2.
    let mut adm = controller(
        TaskAdmissionConfig::with_submission_capacity(4).with_bounded_borrow(
            BoundedBorrowTaskAdmissionPolicyConfig {
                strict_share_rounding: StrictShareRounding::Floor,
                default_borrow_ceiling: Some(0),
                ..Default::default()
            },
        ),
    );
    let (a, b) = (group("a", 1, Some(4)), group("b", 1, Some(4)));
    let mut q = FairTaskQueue::new();
    fill(&mut q, &a, &sub(), 5);
    fill(&mut q, &b, &sub(), 5);
    let mut leases = Vec::new();
    for _ in 0..4 {
        leases.push(dispatch(&mut q, &mut adm).expect("admitted"));
    }
    let by_group = |g: &str| {
        leases
            .iter()
            .filter(|(t, _)| group_of(&t.task_id) == g)
            .count()
    };
    assert_eq!((by_group("a"), by_group("b")), (2, 2));
    // Single group with a zero borrow ceiling and a request above its share still runs.
    let mut solo = controller(
        TaskAdmissionConfig::with_submission_capacity(4).with_bounded_borrow(
            BoundedBorrowTaskAdmissionPolicyConfig {
                default_borrow_ceiling: Some(0),
                ..Default::default()
            },
        ),
    );
    let mut q = FairTaskQueue::new();
    fill(
        &mut q,
        &group("s", 1, Some(1)),
        &req(&[("submission", 3)]),
        2,
    );
    let (_, l) =
        dispatch(&mut q, &mut solo).expect("a group holding nothing may always run one task");
    assert!(q.select_next(|t, v| solo.is_eligible(t, v)).is_none());
    assert!(solo.release(&l).released);
    assert!(dispatch(&mut q, &mut solo).is_some());
}

#[test]
fn explain_blocked_counts_tasks_behind_denied_heads() {
    let mut adm = controller(TaskAdmissionConfig::with_submission_capacity(1));
    let mut q = FairTaskQueue::new();
    fill(&mut q, &group("a", 1, None), &sub(), 3);
    fill(&mut q, &group("b", 1, None), &sub(), 2);
    let (_, l) = dispatch(&mut q, &mut adm).expect("one slot");
    let s = adm.explain_blocked(&q.view());
    assert_eq!(s.queued_count, 4);
    assert_eq!(
        s.dominant_denial_reasons
            .get(&TaskAdmissionDenyReason::NoCapacity),
        Some(&2)
    );
    assert_eq!(
        s.blocked_tasks_by_reason
            .get(&TaskAdmissionDenyReason::NoCapacity),
        Some(&4)
    );
    assert_eq!(s.available_after, None);
    assert_eq!(s.snapshot.active_lease_count, 1);
    assert_eq!(s.diagnostics.len(), 2);
    assert!(s
        .diagnostics
        .values()
        .all(|h| h.reason == TaskAdmissionDenyReason::NoCapacity));
    assert_eq!(s.diagnostics.values().map(|h| h.queued).sum::<u32>(), 4);
    assert!(adm.release(&l).released);
    assert!(adm
        .explain_blocked(&q.view())
        .dominant_denial_reasons
        .is_empty());
}

#[test]
fn controller_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<TaskAdmissionController>();
    assert_send::<FairTaskQueue<u32>>();
}

#[test]
fn try_acquire_at_uses_the_callers_timestamp_and_leases_like_try_acquire() {
    let mut adm = controller(TaskAdmissionConfig::with_submission_capacity(2));
    let q: FairTaskQueue<u32> = FairTaskQueue::new();
    let g = group("a", 1, None);
    let a = adm
        .try_acquire_at(&task("t1", &g, &sub()), &q.view(), 12.5)
        .into_lease()
        .expect("capacity");
    assert_eq!(a.acquired_at(), 12.5);
    let b = adm
        .try_acquire(&task("t2", &g, &sub()), &q.view())
        .into_lease()
        .expect("capacity");
    assert!(b.acquired_at() >= 0.0 && b.acquired_at() <= adm.clock().now());
    // Same ledger effect and the same release rules.
    assert!(adm
        .try_acquire_at(&task("t3", &g, &sub()), &q.view(), 13.0)
        .denied()
        .is_some_and(|d| d.reason == TaskAdmissionDenyReason::NoCapacity));
    assert!(adm.release(&a).released);
    assert_eq!(adm.release(&a).reason, ReleaseReason::Duplicate);
    assert!(adm.release(&b).released);
    assert_eq!(adm.snapshot().active_lease_count, 0);
}
