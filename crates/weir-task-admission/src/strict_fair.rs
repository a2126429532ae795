//! `StrictFairTaskAdmissionPolicy`: the admitted-count cap, applied only under peer pressure.

use crate::admission_view::TaskAdmissionView;
use crate::policy::{
    fair_pressure_resources, peer_stats, AdmissionCandidate, LeaseContext, PolicyDetail,
    TaskAdmissionPolicy, TaskAdmissionPolicyDecision,
};
use crate::queue_view::QueueView;
use weir_contracts::TaskAdmissionDenyReason;

/// Admits unless the group is at its `admitted_limit` (active lease count) while a hard-eligible
/// peer's head wants one of the candidate's fair-pressure resources. Stateless.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictFairTaskAdmissionPolicy;

impl TaskAdmissionPolicy for StrictFairTaskAdmissionPolicy {
    fn name(&self) -> &'static str {
        "strict_fair"
    }

    fn evaluate(
        &self,
        candidate: &AdmissionCandidate<'_>,
        queue_view: &QueueView<'_>,
        admission_view: &TaskAdmissionView<'_>,
    ) -> TaskAdmissionPolicyDecision {
        let Some(limit) = candidate.group.admitted_limit else {
            return TaskAdmissionPolicyDecision::allow();
        };
        let running = candidate.running();
        if running < limit {
            return TaskAdmissionPolicyDecision::allow();
        }
        for r in fair_pressure_resources(candidate.request) {
            if peer_stats(candidate.group, r, queue_view, admission_view).groups > 0 {
                return TaskAdmissionPolicyDecision::deny(
                    TaskAdmissionDenyReason::GroupCap,
                    PolicyDetail::GroupCap {
                        admitted_limit: limit,
                        running,
                        resource: r.clone(),
                        admitted: candidate.leased(r),
                        requested: candidate.request.amount(r),
                        strict_share: 0,
                    },
                );
            }
        }
        TaskAdmissionPolicyDecision::allow()
    }

    fn admits_plainly(
        &self,
        candidate: &AdmissionCandidate<'_>,
        queue_view: &QueueView<'_>,
        admission_view: &TaskAdmissionView<'_>,
    ) -> bool {
        // Every allow of this policy is plain and its hooks are the (empty) defaults.
        match candidate.group.admitted_limit {
            None => true,
            Some(limit) if candidate.running() < limit => true,
            Some(_) => self.evaluate(candidate, queue_view, admission_view).allowed,
        }
    }

    fn releases_plainly(&self, _lease: &LeaseContext<'_>) -> bool {
        true
    }
}
