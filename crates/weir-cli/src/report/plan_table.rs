//! The capacity plan as table rows (field, value, source, fallback_from, missing_reason).
//!
//! Built from `AsyncCapacityPlan`'s public fields (its `explain()` rows are private text), so the
//! HTML report can show a real table with each value's source.

use std::collections::BTreeMap;
use std::fmt::Display;
use weir_capacity::AsyncCapacityPlan;
use weir_contracts::CapacityValue;

/// One row of the capacity-plan table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    /// Dotted field name (`configured.buffer_size`).
    pub field: String,
    /// Rendered value (`-` when missing).
    pub value: String,
    /// Where it came from.
    pub source: String,
    /// The source tried first, when this is a fallback (`-` otherwise).
    pub fallback_from: String,
    /// Why it is missing (`-` otherwise).
    pub missing_reason: String,
}

fn map_text<K: Display, V: Display>(m: &BTreeMap<K, V>) -> String {
    if m.is_empty() {
        return "{}".to_string();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn sourced<T>(field: &str, v: &CapacityValue<T>, render: impl Fn(&T) -> String) -> PlanRow {
    PlanRow {
        field: field.to_string(),
        value: v.value.as_ref().map_or_else(|| "-".to_string(), render),
        source: v.source.as_str().to_string(),
        fallback_from: v.fallback_from.clone().unwrap_or_else(|| "-".to_string()),
        missing_reason: v.missing_reason.clone().unwrap_or_else(|| "-".to_string()),
    }
}

fn plain(field: &str, value: String, source: &str, missing: &str) -> PlanRow {
    PlanRow {
        field: field.to_string(),
        value,
        source: source.to_string(),
        fallback_from: "-".to_string(),
        missing_reason: missing.to_string(),
    }
}

fn runtime<K: Display, V: Display>(field: &str, m: Option<&BTreeMap<K, V>>) -> PlanRow {
    match m {
        Some(m) => plain(field, map_text(m), "runtime_snapshot", "-"),
        None => plain(field, "-".to_string(), "runtime_snapshot", "not captured"),
    }
}

/// Every value of the plan, in the order `explain()` lists them.
pub fn plan_rows(plan: &AsyncCapacityPlan) -> Vec<PlanRow> {
    let c = &plan.configured;
    let rg = &c.row_group_admission;
    let r = &plan.runtime_snapshot;
    let o = &plan.observed_maxima;
    const OBS: &str = "observed_maxima";
    let mut rows = vec![
        sourced("configured.buffer_size", &c.buffer_size, u32::to_string),
        sourced(
            "configured.row_group_admission.row_group_concurrency",
            &rg.row_group_concurrency,
            u32::to_string,
        ),
        plain(
            "configured.row_group_admission.mode",
            rg.mode.as_str().to_string(),
            "-",
            "-",
        ),
        plain(
            "configured.row_group_admission.target_in_flight",
            opt(rg.target_in_flight),
            "-",
            "-",
        ),
        plain(
            "configured.row_group_admission.observed_max_target",
            opt(rg.observed_max_target),
            OBS,
            "-",
        ),
        plain(
            "configured.row_group_admission.blocked_reasons",
            map_text(&rg.blocked_reasons),
            OBS,
            "-",
        ),
        sourced(
            "configured.submission_capacity",
            &c.submission_capacity,
            u32::to_string,
        ),
        sourced(
            "configured.task_resource_limits",
            &c.task_resource_limits,
            map_text,
        ),
        sourced("configured.request_resources", &c.request_resources, |v| {
            if v.is_empty() {
                "[]".to_string()
            } else {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }),
        sourced(
            "configured.provider_model_static_caps",
            &c.provider_model_static_caps,
            |caps| {
                if caps.is_empty() {
                    return "{}".to_string();
                }
                caps.iter()
                    .map(|(k, cap)| {
                        let raw: Vec<String> = cap
                            .raw_caps
                            .iter()
                            .map(|(a, v)| format!("{a}:{}", opt(*v)))
                            .collect();
                        format!("{k}={} ({} of {})", cap.cap, cap.merge_rule, raw.join(" "))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        sourced(
            "configured.request_domain_initial_limits",
            &c.request_domain_initial_limits,
            |m| map_text(m),
        ),
        sourced(
            "configured.request_admission_config",
            &c.request_admission_config,
            |s| {
                format!(
                    "policy={}, decrease={}, step={}, successes={}, cooldown={}s, ramp={}s",
                    s.policy,
                    s.multiplicative_decrease_factor,
                    s.additive_increase_step,
                    s.successes_until_increase,
                    s.cooldown_seconds,
                    s.startup_ramp_seconds
                )
            },
        ),
        sourced(
            "configured.transport_pool_limits",
            &c.transport_pool_limits,
            |m| map_text(m),
        ),
        runtime(
            "runtime_snapshot.request_domain_current_limits",
            r.request_domain_current_limits.as_ref(),
        ),
        runtime(
            "runtime_snapshot.request_domain_effective_max",
            r.request_domain_effective_max.as_ref(),
        ),
        runtime(
            "runtime_snapshot.provider_model_aggregate_in_flight",
            r.provider_model_aggregate_in_flight.as_ref(),
        ),
    ];
    rows.push(plain(
        "observed_maxima.row_groups_in_flight",
        o.row_groups_in_flight.to_string(),
        OBS,
        "-",
    ));
    rows.push(plain(
        "observed_maxima.queued_tasks_by_group",
        map_text(&o.queued_tasks_by_group),
        OBS,
        "-",
    ));
    rows.push(plain(
        "observed_maxima.task_leases_by_resource",
        map_text(&o.task_leases_by_resource),
        OBS,
        "-",
    ));
    rows.push(plain(
        "observed_maxima.request_waiters_by_resource",
        map_text(&o.request_waiters_by_resource),
        OBS,
        "-",
    ));
    rows.push(plain(
        "observed_maxima.request_in_flight_by_resource",
        map_text(&o.request_in_flight_by_resource),
        OBS,
        "-",
    ));
    rows.push(plain(
        "observed_maxima.provider_model_aggregate_in_flight",
        map_text(&o.provider_model_aggregate_in_flight),
        OBS,
        "-",
    ));
    rows.push(plain(
        "observed_maxima.request_domain_current_limits",
        map_text(&o.request_domain_current_limits),
        OBS,
        "-",
    ));
    rows
}
