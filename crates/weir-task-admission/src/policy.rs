//! The `TaskAdmissionPolicy` trait, its typed decision and state delta, and shared fairness helpers.

use crate::admission_view::{GroupLedgerView, TaskAdmissionView};
use crate::lease::TaskAdmissionLease;
use crate::queue_view::{amount_of, QueueView};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use weir_contracts::{
    SchedulerResourceKey, SchedulerResourceRequest, TaskAdmissionDenyReason, TaskGroupKey,
    TaskGroupSpec,
};

/// What a policy evaluates: the candidate's group, request and (pre-looked-up) group ledger.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionCandidate<'a> {
    /// The candidate's group spec.
    pub group: &'a TaskGroupSpec,
    /// The candidate's resource request.
    pub request: &'a SchedulerResourceRequest,
    /// The group's ledger entry (`None`: the group holds nothing).
    pub ledger: Option<GroupLedgerView<'a>>,
    /// The request's amounts as `(resource index, amount)`, in `request.amounts()` order, when
    /// the controller has them resolved (lets built-in policies skip keyed lookups).
    pub(crate) resolved: Option<&'a [(u32, u32)]>,
}

impl<'a> AdmissionCandidate<'a> {
    /// A candidate without resolved amounts (policies look resources up by key).
    pub fn new(
        group: &'a TaskGroupSpec,
        request: &'a SchedulerResourceRequest,
        ledger: Option<GroupLedgerView<'a>>,
    ) -> Self {
        Self {
            group,
            request,
            ledger,
            resolved: None,
        }
    }

    /// The ledger index of the `i`-th requested resource, when resolved.
    #[inline]
    pub(crate) fn resource_slot(&self, i: usize) -> Option<usize> {
        self.resolved?.get(i).map(|&(idx, _)| idx as usize)
    }

    /// Units of the `i`-th requested resource `r` the group holds (index fast path).
    #[inline]
    pub(crate) fn leased_nth(&self, i: usize, r: &SchedulerResourceKey) -> u64 {
        match (self.resource_slot(i), self.ledger) {
            (Some(idx), Some(l)) => l.ledger.leased.get(idx).copied().unwrap_or(0),
            (None, Some(l)) => l.leased(r),
            (_, None) => 0,
        }
    }

    /// The group's debt for the `i`-th requested resource `r` (index fast path).
    #[inline]
    pub(crate) fn debt_nth(&self, i: usize, r: &SchedulerResourceKey) -> u64 {
        match (self.resource_slot(i), self.ledger) {
            (Some(idx), Some(l)) => l.ledger.debt.get(idx).copied().unwrap_or(0),
            (None, Some(l)) => l.debt(r),
            (_, None) => 0,
        }
    }
}

impl AdmissionCandidate<'_> {
    /// Active leases of the candidate's group.
    pub fn running(&self) -> u32 {
        self.ledger.map_or(0, |l| l.running())
    }

    /// Units of `r` the group holds.
    pub fn leased(&self, r: &SchedulerResourceKey) -> u64 {
        self.ledger.map_or(0, |l| l.leased(r))
    }

    /// The group's debt for `r`.
    pub fn debt(&self, r: &SchedulerResourceKey) -> u64 {
        self.ledger.map_or(0, |l| l.debt(r))
    }
}

/// Typed, allocation-light detail of a decision; rendered to JSON only on demand.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PolicyDetail {
    /// Nothing to add.
    #[default]
    None,
    /// A requested resource is short right now.
    NoCapacity {
        /// The first short resource.
        resource: SchedulerResourceKey,
        /// Units requested.
        requested: u32,
        /// Units free.
        available: u64,
    },
    /// The request can never be admitted (unlimited resource or amount above its limit).
    Unsatisfiable {
        /// The offending field, e.g. `resource_request.amounts.gpu`.
        field: String,
        /// Why.
        message: String,
    },
    /// The group is at its cap (admitted count or strict share) while a peer waits.
    GroupCap {
        /// The group's admitted limit.
        admitted_limit: u32,
        /// Its active leases.
        running: u32,
        /// The pressured resource.
        resource: SchedulerResourceKey,
        /// Units of it the group holds.
        admitted: u64,
        /// Units requested.
        requested: u32,
        /// Strict share of it (0 when the strict-fair rule denied on the lease count).
        strict_share: u64,
    },
    /// The group owes borrowed units, or would exceed its borrow ceiling.
    BorrowDebt {
        /// The resource.
        resource: SchedulerResourceKey,
        /// Current debt.
        debt: u64,
        /// Units requested.
        requested: u32,
        /// Debt this admission would add (0 when denied for outstanding debt under pressure).
        new_debt: u64,
        /// Borrow ceiling (`None` when denied for outstanding debt under pressure).
        ceiling: Option<u64>,
        /// Strict share.
        strict_share: u64,
    },
}

impl PolicyDetail {
    /// Sanitized JSON diagnostics.
    pub fn diagnostics(&self) -> BTreeMap<String, Value> {
        let v = match self {
            Self::None => return BTreeMap::new(),
            Self::NoCapacity {
                resource,
                requested,
                available,
            } => {
                json!({"missing_resources": {resource.as_str(): {"requested": requested, "available": available}}})
            }
            Self::Unsatisfiable { field, message } => {
                json!({"unsatisfiable": {"field": field, "message": message}})
            }
            Self::GroupCap {
                admitted_limit,
                running,
                resource,
                admitted,
                requested,
                strict_share,
            } => json!({
                "admitted_limit": admitted_limit, "leased_count": running,
                "resource": resource.as_str(), "admitted": admitted, "requested": requested,
                "strict_share": strict_share,
            }),
            Self::BorrowDebt {
                resource,
                debt,
                requested,
                new_debt,
                ceiling,
                strict_share,
            } => json!({
                "resource": resource.as_str(), "debt": debt, "requested": requested,
                "new_debt": new_debt, "ceiling": ceiling, "strict_share": strict_share,
            }),
        };
        match v {
            Value::Object(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }
}

/// A policy's typed verdict on one candidate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskAdmissionPolicyDecision {
    /// True when the policy admits the candidate.
    pub allowed: bool,
    /// Denial reason (set exactly when `allowed` is false).
    pub reason: Option<TaskAdmissionDenyReason>,
    /// Monotonic seconds after which the verdict may change, when known.
    pub available_after: Option<f64>,
    /// Typed detail.
    pub detail: PolicyDetail,
    /// Units admitted above strict share per resource (bounded borrow); `on_acquire` books them.
    pub borrow: Vec<(SchedulerResourceKey, u32)>,
}

impl TaskAdmissionPolicyDecision {
    /// An allowed decision with nothing borrowed.
    pub fn allow() -> Self {
        Self {
            allowed: true,
            ..Self::default()
        }
    }

    /// A denial.
    pub fn deny(reason: TaskAdmissionDenyReason, detail: PolicyDetail) -> Self {
        Self {
            allowed: false,
            reason: Some(reason),
            available_after: None,
            detail,
            borrow: Vec::new(),
        }
    }
}

/// One signed debt change for a (group, resource) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebtChange {
    /// The group.
    pub group: TaskGroupKey,
    /// The resource.
    pub resource: SchedulerResourceKey,
    /// Signed change; the controller clamps the result at zero.
    pub delta: i64,
}

/// Policy-owned state changes the controller applies atomically with an acquire or release.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyStateDelta {
    /// Borrow-debt increments and repayments.
    pub debt_changes: Vec<DebtChange>,
    /// Named diagnostic counter increments (exposed in `TaskAdmissionView::policy_counters`).
    pub diagnostic_counters: Vec<(String, i64)>,
}

impl PolicyStateDelta {
    /// True when the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.debt_changes.is_empty() && self.diagnostic_counters.is_empty()
    }
}

/// The admission decision rule. `evaluate` is pure; state changes go through deltas.
pub trait TaskAdmissionPolicy: Send + Sync + std::fmt::Debug {
    /// Short stable name for diagnostics.
    fn name(&self) -> &'static str;

    /// Decides on `candidate` given queue and ledger facts. Must not mutate anything.
    fn evaluate(
        &self,
        candidate: &AdmissionCandidate<'_>,
        queue_view: &QueueView<'_>,
        admission_view: &TaskAdmissionView<'_>,
    ) -> TaskAdmissionPolicyDecision;

    /// A cheap pre-check on the dispatch path. `true` promises that `evaluate` would return a
    /// plain allow (allowed, nothing borrowed, no detail, no `available_after`) *and* that
    /// `on_acquire` would return an empty delta for it, so the controller builds no decision
    /// and skips the hook. The default (`false`) always takes the full path; an override must
    /// follow the same rule as `evaluate`.
    fn admits_plainly(
        &self,
        _candidate: &AdmissionCandidate<'_>,
        _queue_view: &QueueView<'_>,
        _admission_view: &TaskAdmissionView<'_>,
    ) -> bool {
        false
    }

    /// `true` promises that `on_release` would return an empty delta for `lease`, so the
    /// controller skips the call. The default (`false`) always calls it.
    fn releases_plainly(&self, _lease: &LeaseContext<'_>) -> bool {
        false
    }

    /// State change to apply with a new lease (`decision` is the allowing verdict).
    fn on_acquire(
        &self,
        _lease: &LeaseContext<'_>,
        _decision: &TaskAdmissionPolicyDecision,
    ) -> PolicyStateDelta {
        PolicyStateDelta::default()
    }

    /// State change to apply with a successful release. `lease.ledger` and `admission_view`
    /// show the ledger after the lease's units were returned (so a policy can skip empty
    /// repayments).
    fn on_release(
        &self,
        _lease: &LeaseContext<'_>,
        _admission_view: &TaskAdmissionView<'_>,
    ) -> PolicyStateDelta {
        PolicyStateDelta::default()
    }
}

/// A lease as a policy hook sees it: the lease, the group and resources the controller holds
/// for it, and the group's ledger entry.
#[derive(Debug, Clone, Copy)]
pub struct LeaseContext<'a> {
    /// The lease.
    pub lease: &'a TaskAdmissionLease,
    /// Its group.
    pub group: &'a TaskGroupSpec,
    /// Its resources.
    pub resources: &'a SchedulerResourceRequest,
    /// The group's ledger entry (after the acquire or release).
    pub ledger: Option<GroupLedgerView<'a>>,
}

/// Resources that count for fair pressure: every key but `submission`, unless that is all there is.
pub fn fair_pressure_resources(
    request: &SchedulerResourceRequest,
) -> impl Iterator<Item = &SchedulerResourceKey> {
    let only_submission = request
        .amounts()
        .iter()
        .all(|(k, _)| k.as_str() == SchedulerResourceKey::SUBMISSION);
    request
        .amounts()
        .iter()
        .map(|(k, _)| k)
        .filter(move |k| only_submission || k.as_str() != SchedulerResourceKey::SUBMISSION)
}

/// Peers (other groups) whose head requests a resource and could be admitted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerStats {
    /// Such groups.
    pub groups: u32,
    /// Their weight sum.
    pub weight: u64,
}

/// Hard-eligible peers (other groups with queued heads) that request `resource`.
///
/// O(head signatures · resources): heads are aggregated by request shape in the queue view, so
/// this does not walk groups. The candidate's own group is subtracted.
pub fn peer_stats(
    group: &TaskGroupSpec,
    resource: &SchedulerResourceKey,
    queue_view: &QueueView<'_>,
    admission_view: &TaskAdmissionView<'_>,
) -> PeerStats {
    let mut stats = PeerStats::default();
    // Fast path: no queued head, or the only one is the candidate's own group's.
    match queue_view.facts.head_groups {
        0 => return stats,
        1 if queue_view
            .sole_group()
            .is_some_and(|g| std::ptr::eq(g.spec(), group) || g.spec().key == group.key) =>
        {
            return stats
        }
        _ => {}
    }
    let mut own: Option<(u32, u64)> = None;
    let mut own_looked_up = false;
    for sig in queue_view.head_signatures() {
        if amount_of(sig.request, resource) == 0 || !admission_view.hard_eligible(sig.request) {
            continue;
        }
        let mut groups = sig.groups;
        let mut weight = sig.weight;
        if !own_looked_up {
            own_looked_up = true;
            own = queue_view
                .group_of_spec(group)
                .map(|g| (g.head_sig(), u64::from(g.head_spec().weight)));
        }
        if let Some((own_sig, own_weight)) = own {
            if own_sig == sig.id {
                groups = groups.saturating_sub(1);
                weight = weight.saturating_sub(own_weight);
            }
        }
        stats.groups += groups;
        stats.weight += weight;
    }
    stats
}
