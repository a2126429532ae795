//! The capacity plan as table rows (field, value, source, fallback_from, missing_reason).
//!
//! The rows are `AsyncCapacityPlan::explain_rows()` — the same rows as the plan's own text
//! explanation — so the HTML report can never drift from the plan.

use weir_capacity::{AsyncCapacityPlan, ExplainRow};

/// One row of the capacity-plan table.
pub type PlanRow = ExplainRow;

/// The plan's rows, in table order.
pub fn plan_rows(plan: &AsyncCapacityPlan) -> Vec<PlanRow> {
    plan.explain_rows()
}
