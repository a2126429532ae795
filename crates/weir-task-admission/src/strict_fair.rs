//! `StrictFairTaskAdmissionPolicy`: the admitted-count cap, applied only under peer pressure.

use crate::admission_view::TaskAdmissionView;
use crate::policy::{
    fair_pressure_resources, peer_stats, AdmissionCandidate, PolicyDetail, TaskAdmissionPolicy,
    TaskAdmissionPolicyDecision,
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
}
