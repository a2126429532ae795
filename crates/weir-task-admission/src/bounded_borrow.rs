//! `BoundedBorrowTaskAdmissionPolicy`: strict shares under pressure, bounded borrowing without it.

use crate::admission_view::TaskAdmissionView;
use crate::config::{BoundedBorrowTaskAdmissionPolicyConfig, StrictShareRounding};
use crate::policy::{
    fair_pressure_resources, peer_stats, AdmissionCandidate, DebtChange, LeaseContext, PeerStats,
    PolicyDetail, PolicyStateDelta, TaskAdmissionPolicy, TaskAdmissionPolicyDecision,
};
use crate::queue_view::QueueView;
use weir_contracts::{ContractError, TaskAdmissionDenyReason, TaskGroupSpec};

/// The unrounded strict share as a fraction `(L·w, T)`: `T = w + Σ peer weights`, or `2w` for a
/// solo group (one imagined equal peer).
#[inline]
fn share_fraction(group: &TaskGroupSpec, limit: u32, peers: PeerStats) -> (u64, u64) {
    let w = u64::from(group.weight.max(1));
    let t = if peers.groups == 0 {
        2 * w
    } else {
        w.saturating_add(peers.weight)
    };
    (u64::from(limit) * w, t)
}

/// Strict share of a resource with limit `limit` for `group` against hard-eligible `peers`.
///
/// `L·w / T`, where `T = w + Σ peer weights`, or `2w` for a solo group (one imagined equal peer);
/// rounded per `rounding`, then at least 1, at most `admitted_limit` and at most `L`.
pub fn strict_share(
    group: &TaskGroupSpec,
    limit: u32,
    peers: PeerStats,
    rounding: StrictShareRounding,
) -> u64 {
    if limit == 0 {
        return 0;
    }
    // u64 arithmetic is exact here: `limit · w < 2^64` and `t ≥ w ≥ 1`; it avoids a 128-bit
    // division on the dispatch path.
    let (num, t) = share_fraction(group, limit, peers);
    let raw = match rounding {
        StrictShareRounding::Floor => num / t,
        StrictShareRounding::Ceil => num.div_ceil(t),
    };
    let mut share = raw.max(1);
    if let Some(a) = group.admitted_limit {
        share = share.min(u64::from(a));
    }
    share.min(u64::from(limit))
}

/// `projected ≤ strict_share(..)` without the division (the dispatch path's common question):
/// `x ≤ ⌊n/t⌋ ⇔ x·t ≤ n` and `x ≤ ⌈n/t⌉ ⇔ (x−1)·t < n`, then the share's clamps.
#[inline]
fn within_strict_share(
    projected: u64,
    group: &TaskGroupSpec,
    limit: u32,
    peers: PeerStats,
    rounding: StrictShareRounding,
) -> bool {
    if limit == 0 {
        return projected == 0;
    }
    if projected > u64::from(limit)
        || group
            .admitted_limit
            .is_some_and(|a| projected > u64::from(a))
    {
        return false;
    }
    if projected <= 1 {
        // The share is at least 1.
        return true;
    }
    let (num, t) = share_fraction(group, limit, peers);
    let (x, num, t) = (u128::from(projected), u128::from(num), u128::from(t));
    match rounding {
        StrictShareRounding::Floor => x * t <= num,
        StrictShareRounding::Ceil => (x - 1) * t < num,
    }
}

/// Bounded borrow (reference §4.3, with the liveness rule from `plans/task-admission.md`).
///
/// For a group with an `admitted_limit`, per requested resource `r`:
/// * under peer pressure on `r`: deny `borrow_debt` while the group owes `r`, deny `group_cap`
///   when the admission would exceed its strict share;
/// * without pressure: admit up to the strict share, then borrow above it up to the ceiling
///   (explicit per group/resource, else default, else dynamic `L − reserved − share`), booking
///   the borrowed units as debt.
///
/// A group holding none of `r` is never capped on `r`, so every group can always run one task.
#[derive(Debug, Clone, Default)]
pub struct BoundedBorrowTaskAdmissionPolicy {
    config: BoundedBorrowTaskAdmissionPolicyConfig,
}

impl BoundedBorrowTaskAdmissionPolicy {
    /// A policy with a validated config.
    pub fn new(config: BoundedBorrowTaskAdmissionPolicyConfig) -> Result<Self, ContractError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The config.
    pub fn config(&self) -> &BoundedBorrowTaskAdmissionPolicyConfig {
        &self.config
    }

    fn ceiling(
        &self,
        group: &TaskGroupSpec,
        r: &weir_contracts::SchedulerResourceKey,
        limit: u32,
        share: u64,
    ) -> u64 {
        if !self.config.borrow_ceiling_by_group_resource.is_empty() {
            if let Some(c) = self
                .config
                .borrow_ceiling_by_group_resource
                .get(&(group.key.clone(), r.clone()))
            {
                return u64::from(*c);
            }
        }
        if let Some(c) = self.config.default_borrow_ceiling {
            return u64::from(c);
        }
        let l = u64::from(limit);
        let reserved_f = (l as f64 * self.config.dynamic_borrow_reserve_fraction).ceil();
        let reserved =
            (reserved_f as u64).min(u64::from(self.config.dynamic_borrow_max_reserved_slots));
        l.saturating_sub(reserved).saturating_sub(share)
    }
}

impl BoundedBorrowTaskAdmissionPolicy {
    /// The decision rule: `Some(denial)`, or `None` with the units to borrow pushed to `borrow`.
    fn judge(
        &self,
        candidate: &AdmissionCandidate<'_>,
        queue_view: &QueueView<'_>,
        admission_view: &TaskAdmissionView<'_>,
        borrow: &mut Vec<(weir_contracts::SchedulerResourceKey, u32)>,
    ) -> Option<TaskAdmissionPolicyDecision> {
        let admitted_limit = candidate.group.admitted_limit?;
        for (i, (r, amount)) in candidate.request.amounts().iter().enumerate() {
            let admitted = candidate.leased_nth(i, r);
            if admitted == 0 {
                // Liveness: a group holding none of r may always take one task's worth.
                continue;
            }
            let limit = match candidate.resource_slot(i) {
                Some(idx) => admission_view.limit_at(idx),
                None => admission_view.limit(r),
            }
            .unwrap_or(0);
            let peers = peer_stats(candidate.group, r, queue_view, admission_view);
            let pressured =
                peers.groups > 0 && fair_pressure_resources(candidate.request).any(|k| k == r);
            let projected = admitted + u64::from(*amount);
            if !pressured
                && within_strict_share(
                    projected,
                    candidate.group,
                    limit,
                    peers,
                    self.config.strict_share_rounding,
                )
            {
                // The common case: within the share, no debt lookup (and no division) needed.
                continue;
            }
            let share = strict_share(
                candidate.group,
                limit,
                peers,
                self.config.strict_share_rounding,
            );
            let debt = candidate.debt_nth(i, r);
            if pressured {
                if debt > 0 {
                    return Some(TaskAdmissionPolicyDecision::deny(
                        TaskAdmissionDenyReason::BorrowDebt,
                        PolicyDetail::BorrowDebt {
                            resource: r.clone(),
                            debt,
                            requested: *amount,
                            new_debt: 0,
                            ceiling: None,
                            strict_share: share,
                        },
                    ));
                }
                if projected > share {
                    return Some(TaskAdmissionPolicyDecision::deny(
                        TaskAdmissionDenyReason::GroupCap,
                        PolicyDetail::GroupCap {
                            admitted_limit,
                            running: candidate.running(),
                            resource: r.clone(),
                            admitted,
                            requested: *amount,
                            strict_share: share,
                        },
                    ));
                }
                continue;
            }
            if projected <= share {
                continue;
            }
            let new_debt = u64::from(*amount).min(projected - share);
            let ceiling = self.ceiling(candidate.group, r, limit, share);
            if debt + new_debt > ceiling {
                return Some(TaskAdmissionPolicyDecision::deny(
                    TaskAdmissionDenyReason::BorrowDebt,
                    PolicyDetail::BorrowDebt {
                        resource: r.clone(),
                        debt,
                        requested: *amount,
                        new_debt,
                        ceiling: Some(ceiling),
                        strict_share: share,
                    },
                ));
            }
            borrow.push((r.clone(), u32::try_from(new_debt).unwrap_or(u32::MAX)));
        }
        None
    }
}

impl TaskAdmissionPolicy for BoundedBorrowTaskAdmissionPolicy {
    fn name(&self) -> &'static str {
        "bounded_borrow"
    }

    fn evaluate(
        &self,
        candidate: &AdmissionCandidate<'_>,
        queue_view: &QueueView<'_>,
        admission_view: &TaskAdmissionView<'_>,
    ) -> TaskAdmissionPolicyDecision {
        let mut borrow = Vec::new();
        match self.judge(candidate, queue_view, admission_view, &mut borrow) {
            Some(denied) => denied,
            None => TaskAdmissionPolicyDecision {
                borrow,
                ..TaskAdmissionPolicyDecision::allow()
            },
        }
    }

    fn admits_plainly(
        &self,
        candidate: &AdmissionCandidate<'_>,
        queue_view: &QueueView<'_>,
        admission_view: &TaskAdmissionView<'_>,
    ) -> bool {
        // The same rule as `evaluate`; `on_acquire` books only borrowed units.
        let mut borrow = Vec::new();
        self.judge(candidate, queue_view, admission_view, &mut borrow)
            .is_none()
            && borrow.is_empty()
    }

    fn releases_plainly(&self, lease: &LeaseContext<'_>) -> bool {
        // `on_release` repays only a group that owes.
        !lease.ledger.is_some_and(|g| g.owes())
    }

    fn on_acquire(
        &self,
        lease: &LeaseContext<'_>,
        decision: &TaskAdmissionPolicyDecision,
    ) -> PolicyStateDelta {
        PolicyStateDelta {
            debt_changes: decision
                .borrow
                .iter()
                .map(|(r, n)| DebtChange {
                    group: lease.group.key.clone(),
                    resource: r.clone(),
                    delta: i64::from(*n),
                })
                .collect(),
            diagnostic_counters: Vec::new(),
        }
    }

    fn on_release(
        &self,
        lease: &LeaseContext<'_>,
        _admission_view: &TaskAdmissionView<'_>,
    ) -> PolicyStateDelta {
        let owes = lease.ledger.is_some_and(|g| g.owes());
        if !owes {
            return PolicyStateDelta::default();
        }
        let repaid: &[(weir_contracts::SchedulerResourceKey, u32)] =
            if self.config.repay_on_withheld_peer_pressure {
                lease.resources.amounts()
            } else {
                lease.lease.borrowed()
            };
        PolicyStateDelta {
            debt_changes: repaid
                .iter()
                .map(|(r, n)| DebtChange {
                    group: lease.group.key.clone(),
                    resource: r.clone(),
                    delta: -i64::from(*n),
                })
                .collect(),
            diagnostic_counters: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_contracts::{SchedulingKind, TaskGroupKey};

    /// The division-free check answers exactly `projected <= strict_share(..)`.
    #[test]
    fn within_strict_share_agrees_with_strict_share() {
        let key = TaskGroupKey::new(SchedulingKind::Local, vec!["g".into()]);
        for weight in [1u32, 2, 3, 7] {
            for admitted_limit in [None, Some(1), Some(5), Some(64)] {
                let group = TaskGroupSpec::new(key.clone(), weight, admitted_limit).expect("valid");
                for limit in [0u32, 1, 2, 7, 64, 1024] {
                    for (groups, peer_weight) in [(0u32, 0u64), (1, 1), (1, 4), (3, 9), (255, 640)]
                    {
                        let peers = PeerStats {
                            groups,
                            weight: peer_weight,
                        };
                        for rounding in [StrictShareRounding::Floor, StrictShareRounding::Ceil] {
                            let share = strict_share(&group, limit, peers, rounding);
                            for projected in 0..=u64::from(limit) + 3 {
                                assert_eq!(
                                    within_strict_share(projected, &group, limit, peers, rounding),
                                    projected <= share,
                                    "w={weight} cap={admitted_limit:?} L={limit} peers={groups}/{peer_weight} {rounding:?} x={projected}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
