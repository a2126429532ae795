//! Proptest state machine over random enqueue/select/acquire/commit/release/discard sequences,
//! plus a weighted-share property with every group backlogged.

mod common;
use common::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use weir_contracts::{
    ReleaseReason, SchedulerResourceKey, SchedulerResourceRequest, TaskAdmissionSnapshot,
    TaskGroupSpec, TaskId,
};
use weir_task_admission::{
    BoundedBorrowTaskAdmissionPolicyConfig, FairTaskQueue, StrictShareRounding,
    TaskAdmissionConfig, TaskAdmissionController, TaskAdmissionDecision, TaskAdmissionLease,
};

const RESOURCES: [&str; 3] = ["submission", "local", "gpu"];

#[derive(Debug, Clone)]
enum Op {
    Enqueue { group: usize, n: usize },
    Dispatch { discard_before_commit: bool },
    Release { pick: usize },
    BadRelease { pick: usize, foreign: bool },
    Discard { pick: usize },
    DiscardGroup { group: usize },
}

#[derive(Debug, Clone)]
struct Setup {
    limits: [u32; 3],
    groups: Vec<(u32, Option<u32>, [u32; 3])>,
    borrow: Option<(bool, bool, Option<u32>)>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        [2u32..6, 2u32..6, 2u32..6],
        prop::collection::vec(
            (
                1u32..5,
                prop::option::of(1u32..4),
                [0u32..3, 0u32..3, 0u32..3],
            ),
            1..5,
        ),
        prop::option::of((any::<bool>(), any::<bool>(), prop::option::of(0u32..3))),
    )
        .prop_map(|(limits, mut groups, borrow)| {
            for g in &mut groups {
                g.2[0] = g.2[0].max(1); // every task holds submission
            }
            Setup {
                limits,
                groups,
                borrow,
            }
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..8, 1usize..4).prop_map(|(group, n)| Op::Enqueue { group, n }),
        4 => any::<bool>().prop_map(|d| Op::Dispatch { discard_before_commit: d }),
        3 => (0usize..64).prop_map(|pick| Op::Release { pick }),
        1 => (0usize..64, any::<bool>()).prop_map(|(pick, foreign)| Op::BadRelease { pick, foreign }),
        1 => (0usize..64).prop_map(|pick| Op::Discard { pick }),
        1 => (0usize..8).prop_map(|group| Op::DiscardGroup { group }),
    ]
}

struct World {
    q: FairTaskQueue<u32>,
    adm: TaskAdmissionController,
    foreign: TaskAdmissionLease,
    groups: Vec<(Arc<TaskGroupSpec>, Arc<SchedulerResourceRequest>)>,
    limits: BTreeMap<SchedulerResourceKey, u32>,
    queued: BTreeSet<TaskId>,
    /// Held leases with the group and request they were issued for (the model's own record).
    active: Vec<(
        TaskAdmissionLease,
        Arc<TaskGroupSpec>,
        Arc<SchedulerResourceRequest>,
    )>,
    released: Vec<TaskAdmissionLease>,
    next_id: usize,
}

fn build(s: &Setup) -> World {
    let mut cfg = TaskAdmissionConfig::with_submission_capacity(s.limits[0])
        .with_limit(res("local"), s.limits[1])
        .with_limit(res("gpu"), s.limits[2]);
    if let Some((repay, floor, ceiling)) = s.borrow {
        cfg = cfg.with_bounded_borrow(BoundedBorrowTaskAdmissionPolicyConfig {
            repay_on_withheld_peer_pressure: repay,
            strict_share_rounding: if floor {
                StrictShareRounding::Floor
            } else {
                StrictShareRounding::Ceil
            },
            default_borrow_ceiling: ceiling,
            ..Default::default()
        });
    }
    let limits = cfg.merged_limits();
    let adm = TaskAdmissionController::new(cfg).expect("valid");
    let mut other = TaskAdmissionController::new(TaskAdmissionConfig::with_submission_capacity(1))
        .expect("valid");
    let mut oq = FairTaskQueue::new();
    fill(&mut oq, &group("x", 1, None), &sub(), 1);
    let foreign = dispatch(&mut oq, &mut other).expect("foreign lease").1;
    let groups = s
        .groups
        .iter()
        .enumerate()
        .map(|(i, (w, cap, amounts))| {
            let pairs: Vec<(&str, u32)> = RESOURCES
                .iter()
                .zip(amounts)
                .filter(|(_, a)| **a > 0)
                .map(|(k, a)| (*k, (*a).min(2)))
                .collect();
            (group(&format!("g{i}"), *w, *cap), req(&pairs))
        })
        .collect();
    World {
        q: FairTaskQueue::new(),
        adm,
        foreign,
        groups,
        limits,
        queued: BTreeSet::new(),
        active: Vec::new(),
        released: Vec::new(),
        next_id: 0,
    }
}

fn without_diagnostics(mut s: TaskAdmissionSnapshot) -> TaskAdmissionSnapshot {
    s.release_diagnostics.clear();
    s
}

fn check_invariants(w: &World) -> Result<(), TestCaseError> {
    let s = w.adm.snapshot();
    let mut by_res: BTreeMap<SchedulerResourceKey, u32> = BTreeMap::new();
    let mut by_group: BTreeMap<_, BTreeMap<SchedulerResourceKey, u32>> = BTreeMap::new();
    let mut running: BTreeMap<_, u32> = BTreeMap::new();
    for (l, group, resources) in &w.active {
        // The controller's view of the lease agrees with the model's record.
        prop_assert!(w.adm.lease_group(l).is_some_and(|g| g.key == group.key));
        prop_assert!(w.adm.lease_resources(l).is_some_and(|r| r == resources));
        *running.entry(group.key.clone()).or_default() += 1;
        for (k, a) in resources.amounts() {
            *by_res.entry(k.clone()).or_default() += a;
            *by_group
                .entry(group.key.clone())
                .or_default()
                .entry(k.clone())
                .or_default() += a;
        }
    }
    for (k, limit) in &w.limits {
        let leased = s.leased_resources.get(k).copied().unwrap_or(0);
        prop_assert!(leased <= *limit, "{k}: leased {leased} > limit {limit}");
        prop_assert_eq!(s.resources_available.get(k).copied(), Some(limit - leased));
    }
    prop_assert_eq!(
        &s.leased_resources,
        &by_res,
        "ledger equals the sum of active leases"
    );
    prop_assert_eq!(&s.leased_resources_by_group, &by_group);
    prop_assert_eq!(&s.running_counts_by_group, &running);
    prop_assert_eq!(s.active_lease_count, w.active.len() as u64);
    prop_assert_eq!(w.q.len(), w.queued.len());
    prop_assert_eq!(w.q.view().queued_total(), w.queued.len());
    let demand: u64 = w.q.view().groups().map(|g| u64::from(g.queued())).sum();
    prop_assert_eq!(demand as usize, w.queued.len());
    // Demand facts equal a recount over the queued tasks, per group and over all groups.
    let mut by_group_demand: BTreeMap<String, BTreeMap<SchedulerResourceKey, u64>> =
        BTreeMap::new();
    let mut peer: BTreeMap<SchedulerResourceKey, u64> = BTreeMap::new();
    for id in &w.queued {
        let t =
            w.q.get(id)
                .ok_or_else(|| TestCaseError::fail(format!("{id} not queued")))?;
        for (k, a) in t.resource_request.amounts() {
            *by_group_demand
                .entry(t.group.key.label())
                .or_default()
                .entry(k.clone())
                .or_default() += u64::from(*a);
            *peer.entry(k.clone()).or_default() += u64::from(*a);
        }
    }
    let v = w.q.view();
    for g in v.groups() {
        let got: BTreeMap<_, _> = g.demand().into_iter().collect();
        prop_assert_eq!(Some(&got), by_group_demand.get(&g.key().label()));
    }
    let got: BTreeMap<_, _> = v.peer_demand_by_resource().into_iter().collect();
    prop_assert_eq!(&got, &peer);
    for (k, n) in &peer {
        prop_assert_eq!(v.peer_demand(k), *n);
    }
    if w.active.is_empty() {
        prop_assert!(s.leased_resources.is_empty());
        prop_assert!(s.running_counts_by_group.is_empty());
        prop_assert!(
            s.policy_debt_by_group_resource.is_empty(),
            "debt left: {:?}",
            s.policy_debt_by_group_resource
        );
    }
    // At most one lane per group (idle lanes are kept for reuse, never duplicated).
    prop_assert!(w.q.tracked_groups() <= w.groups.len());
    // Membership is exact: every queued id is found, every dispatched one is not.
    for id in &w.queued {
        prop_assert!(w.q.contains(id), "queued {id} not found");
        prop_assert!(w.q.get(id).is_some_and(|t| t.task_id == *id));
    }
    for l in w.active.iter().map(|(l, _, _)| l).chain(&w.released) {
        prop_assert!(!w.q.contains(l.task_id()) || w.queued.contains(l.task_id()));
    }
    // Head-signature aggregates equal a recount over the groups' heads.
    let v = w.q.view();
    let heads: u32 = v.head_signatures().map(|s| s.groups).sum();
    let head_weight: u64 = v.head_signatures().map(|s| s.weight).sum();
    prop_assert_eq!(heads as usize, v.groups().count());
    prop_assert_eq!(v.head_group_count(), heads);
    prop_assert_eq!(
        v.sole_group().map(|g| g.key().clone()),
        (heads == 1)
            .then(|| v.groups().next().map(|g| g.key().clone()))
            .flatten()
    );
    prop_assert_eq!(
        head_weight,
        v.groups()
            .map(|g| u64::from(g.head_spec().weight))
            .sum::<u64>()
    );
    for g in v.groups() {
        prop_assert!(v.head_signatures().any(|s| *s.request == *g.head_request()));
    }
    Ok(())
}

fn step(w: &mut World, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Enqueue { group, n } => {
            let (g, r) = w.groups[group % w.groups.len()].clone();
            let items: Vec<_> = (0..*n)
                .map(|_| {
                    w.next_id += 1;
                    task(&format!("t{}", w.next_id), &g, &r)
                })
                .collect();
            // Re-offer an already queued id too: it must be ignored.
            let dup = w.queued.iter().next().cloned();
            let mut all = items.clone();
            if let Some(d) = dup {
                all.push(task(d.as_str(), &g, &r));
            }
            let accepted = w.q.enqueue(all);
            prop_assert_eq!(accepted.len(), *n);
            w.queued.extend(accepted);
        }
        Op::Dispatch {
            discard_before_commit,
        } => {
            let before_q = w.q.view().to_snapshot();
            let before_a = w.adm.snapshot();
            let picked =
                w.q.select_next(|t, v| w.adm.is_eligible(t, v))
                    .map(|s| (s.item.clone(), s.token()));
            prop_assert_eq!(
                w.q.view().to_snapshot(),
                before_q,
                "select_next changed the queue"
            );
            prop_assert_eq!(w.adm.snapshot(), before_a, "is_eligible changed the ledger");
            let Some((item, tok)) = picked else {
                // Blocked: the explanation accounts for every queued task.
                let s = w.adm.explain_blocked(&w.q.view());
                prop_assert_eq!(s.queued_count, w.queued.len());
                prop_assert_eq!(
                    s.blocked_tasks_by_reason.values().sum::<u64>() as usize,
                    w.queued.len()
                );
                return Ok(());
            };
            let decision = w.adm.try_acquire(&item, &w.q.view());
            let TaskAdmissionDecision::Lease(lease) = decision else {
                return Err(TestCaseError::fail(format!(
                    "eligible selection denied: {decision:?}"
                )));
            };
            if *discard_before_commit {
                prop_assert!(w.q.discard(&item.task_id).is_some());
                w.queued.remove(&item.task_id);
                prop_assert!(w.q.commit(tok).is_none(), "stale selection committed");
                prop_assert!(w.adm.release(&lease).released);
                w.released.push(lease);
            } else {
                let t = w.q.commit(tok);
                prop_assert_eq!(t.map(|t| t.task_id), Some(item.task_id.clone()));
                w.queued.remove(&item.task_id);
                w.active
                    .push((lease, item.group.clone(), item.resource_request.clone()));
            }
        }
        Op::Release { pick } => {
            if !w.active.is_empty() {
                let (l, _, _) = w.active.remove(pick % w.active.len());
                prop_assert!(w.adm.release(&l).released);
                prop_assert!(
                    w.adm.lease_group(&l).is_none(),
                    "a released lease holds nothing"
                );
                w.released.push(l);
            }
        }
        Op::BadRelease { pick, foreign } => {
            let (lease, want) = if *foreign || w.released.is_empty() {
                (w.foreign.clone(), ReleaseReason::WrongControllerGeneration)
            } else {
                (
                    w.released[pick % w.released.len()].clone(),
                    ReleaseReason::Duplicate,
                )
            };
            let before = w.adm.snapshot();
            let r = w.adm.release(&lease);
            prop_assert_eq!((r.released, r.reason), (false, want));
            let after = w.adm.snapshot();
            prop_assert_eq!(
                without_diagnostics(after.clone()),
                without_diagnostics(before.clone())
            );
            let n =
                |s: &TaskAdmissionSnapshot| s.release_diagnostics.get(&want).copied().unwrap_or(0);
            prop_assert_eq!(n(&after), n(&before) + 1);
        }
        Op::Discard { pick } => {
            if let Some(id) = w.queued.iter().nth(pick % w.queued.len().max(1)).cloned() {
                prop_assert!(w.q.discard(&id).is_some());
                w.queued.remove(&id);
            }
        }
        Op::DiscardGroup { group } => {
            let key = w.groups[group % w.groups.len()].0.key.clone();
            let gone = w.q.discard_where(|t| t.group.key == key);
            for t in gone {
                prop_assert!(w.queued.remove(&t.task_id));
            }
        }
    }
    Ok(())
}

/// `PROPTEST_CASES` when set (CI and developers scale the search), else this test's default.
fn cases_or(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_or(1000), ..ProptestConfig::default() })]

    #[test]
    fn ledger_and_queue_invariants_hold_after_every_step(s in setup(), ops in prop::collection::vec(op(), 1..40)) {
        let mut w = build(&s);
        for op in &ops {
            step(&mut w, op)?;
            check_invariants(&w)?;
        }
        // Release everything: every counter returns to zero.
        for (l, _, _) in std::mem::take(&mut w.active) {
            prop_assert!(w.adm.release(&l).released);
        }
        check_invariants(&w)?;
        let snap = w.adm.snapshot();
        prop_assert!(snap.leased_resources.is_empty() && snap.policy_debt_by_group_resource.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_or(200), ..ProptestConfig::default() })]

    #[test]
    fn backlogged_groups_get_their_weighted_share(weights in prop::collection::vec(1u32..6, 2..6), steps in 50usize..300) {
        let mut q = FairTaskQueue::new();
        let mut adm = TaskAdmissionController::new(TaskAdmissionConfig::with_submission_capacity(3)).expect("valid");
        let total: u32 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            fill(&mut q, &group(&format!("g{i}"), *w, None), &sub(), steps + 1);
        }
        let mut counts = vec![0usize; weights.len()];
        let mut held = std::collections::VecDeque::new();
        for k in 1..=steps {
            let (t, lease) = dispatch(&mut q, &mut adm).expect("backlogged and capacity free");
            let g: usize = group_of(&t.task_id)[1..].parse().expect("g<i>");
            counts[g] += 1;
            held.push_back(lease);
            if held.len() == 3 {
                let l = held.pop_front().expect("held");
                prop_assert!(adm.release(&l).released);
            }
            for (i, w) in weights.iter().enumerate() {
                let share = k as f64 * f64::from(*w) / f64::from(total);
                let lag = counts[i] as f64 - share;
                prop_assert!(lag.abs() <= weights.len() as f64, "step {k} group {i}: {} vs {share:.2}", counts[i]);
            }
        }
    }
}
