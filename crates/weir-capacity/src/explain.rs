//! `AsyncCapacityPlan::explain()`: a plain-text table of every plan value with its source.
//!
//! One row per field: `field | value | source | fallback_from | missing_reason`. Configured
//! values carry their `CapacityValue` attribution; runtime rows say `runtime_snapshot` and
//! observed rows say `observed_maxima`. A missing value prints `-` and its reason.

use crate::plan::{AsyncCapacityPlan, PairMap};
use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use weir_contracts::{CapacityValue, ProviderModelStaticCap, RequestAdmissionConfigSnapshot};

/// One row of the explanation: a plan value with its attribution (`-` where not applicable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainRow {
    /// Dotted field name (`configured.buffer_size`).
    pub field: String,
    /// Rendered value (`-` when missing).
    pub value: String,
    /// Where it came from.
    pub source: String,
    /// The source tried first, when the value is a fallback.
    pub fallback_from: String,
    /// Why the value is missing.
    pub missing_reason: String,
}

type Row = ExplainRow;

fn map_text<K: Display, V: Display>(map: &BTreeMap<K, V>) -> String {
    if map.is_empty() {
        return "{}".to_owned();
    }
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(", ")
}

fn opt_text<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn caps_text(caps: &PairMap<weir_contracts::ProviderModelKey, ProviderModelStaticCap>) -> String {
    if caps.is_empty() {
        return "{}".to_owned();
    }
    let parts: Vec<String> = caps
        .iter()
        .map(|(k, c)| {
            let raw: Vec<String> = c
                .raw_caps
                .iter()
                .map(|(a, r)| format!("{a}:{}", opt_text(*r)))
                .collect();
            format!("{k}={} ({} of {})", c.cap, c.merge_rule, raw.join(" "))
        })
        .collect();
    parts.join(", ")
}

/// The config as `(sub-field, value)` rows, so the table stays narrow.
fn config_rows(c: &RequestAdmissionConfigSnapshot) -> Vec<(&'static str, String)> {
    let clamps: BTreeMap<_, String> = c
        .max_limit_clamps
        .iter()
        .map(|(k, v)| (k, opt_text(*v)))
        .collect();
    vec![
        ("cooldown_seconds", c.cooldown_seconds.to_string()),
        (
            "multiplicative_decrease_factor",
            c.multiplicative_decrease_factor.to_string(),
        ),
        (
            "additive_increase_step",
            c.additive_increase_step.to_string(),
        ),
        (
            "successes_until_increase",
            c.successes_until_increase.to_string(),
        ),
        ("startup_ramp_seconds", c.startup_ramp_seconds.to_string()),
        (
            "default_queue_wait_timeout_seconds",
            opt_text(c.default_queue_wait_timeout_seconds),
        ),
        ("initial_limits", map_text(&c.initial_limits)),
        ("max_limit_clamps", map_text(&clamps)),
    ]
}

fn sourced<T>(field: &str, v: &CapacityValue<T>, render: impl Fn(&T) -> String) -> Row {
    Row {
        field: field.to_owned(),
        value: v.value.as_ref().map_or_else(|| "-".to_owned(), render),
        source: v.source.as_str().to_owned(),
        fallback_from: v.fallback_from.clone().unwrap_or_else(|| "-".to_owned()),
        missing_reason: v.missing_reason.clone().unwrap_or_else(|| "-".to_owned()),
    }
}

fn plain(field: &str, value: String, source: &str, missing_reason: &str) -> Row {
    Row {
        field: field.to_owned(),
        value,
        source: source.to_owned(),
        fallback_from: "-".to_owned(),
        missing_reason: missing_reason.to_owned(),
    }
}

/// A runtime-section row: the map, or `-` with "not captured".
fn runtime<V>(
    field: &str,
    map: Option<&BTreeMap<impl Display, V>>,
    fmt: impl Fn(&V) -> String,
) -> Row {
    match map {
        Some(m) => {
            let text: BTreeMap<String, String> =
                m.iter().map(|(k, v)| (k.to_string(), fmt(v))).collect();
            plain(field, map_text(&text), "runtime_snapshot", "-")
        }
        None => plain(field, "-".to_owned(), "runtime_snapshot", "not captured"),
    }
}

impl AsyncCapacityPlan {
    /// A plain-text table of every value, its source, `fallback_from` and `missing_reason`.
    pub fn explain(&self) -> String {
        render(&self.explain_rows())
    }

    /// The explanation's rows, in table order (the CLI report renders them as HTML).
    pub fn explain_rows(&self) -> Vec<ExplainRow> {
        let c = &self.configured;
        let rg = &c.row_group_admission;
        let r = &self.runtime_snapshot;
        let o = &self.observed_maxima;
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
                rg.mode.as_str().to_owned(),
                "-",
                "-",
            ),
            plain(
                "configured.row_group_admission.observed_in_flight",
                opt_text(rg.observed_in_flight),
                OBS,
                if rg.observed_in_flight.is_some() {
                    "-"
                } else {
                    "not observed"
                },
            ),
            plain(
                "configured.row_group_admission.target_in_flight",
                opt_text(rg.target_in_flight),
                "-",
                "-",
            ),
            plain(
                "configured.row_group_admission.observed_max_target",
                opt_text(rg.observed_max_target),
                OBS,
                "-",
            ),
            plain(
                "configured.row_group_admission.max_admitted_rows",
                opt_text(rg.max_admitted_rows),
                "-",
                if rg.max_admitted_rows.is_some() {
                    "-"
                } else {
                    "no row guard"
                },
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
                let keys: Vec<String> = v.iter().map(ToString::to_string).collect();
                if keys.is_empty() {
                    "[]".to_owned()
                } else {
                    keys.join(", ")
                }
            }),
            sourced(
                "configured.provider_model_static_caps",
                &c.provider_model_static_caps,
                caps_text,
            ),
            sourced(
                "configured.request_domain_initial_limits",
                &c.request_domain_initial_limits,
                |m| map_text(m),
            ),
            sourced(
                "configured.request_admission_config",
                &c.request_admission_config,
                |cfg| format!("policy={}", cfg.policy),
            ),
            sourced(
                "configured.transport_pool_limits",
                &c.transport_pool_limits,
                |m| map_text(m),
            ),
            runtime(
                "runtime_snapshot.request_domain_current_limits",
                r.request_domain_current_limits.as_ref(),
                u32::to_string,
            ),
            runtime(
                "runtime_snapshot.request_domain_effective_max",
                r.request_domain_effective_max.as_ref(),
                u32::to_string,
            ),
            runtime(
                "runtime_snapshot.request_domain_blocked_until",
                r.request_domain_blocked_until.as_ref(),
                |v| opt_text(*v),
            ),
            runtime(
                "runtime_snapshot.provider_model_aggregate_in_flight",
                r.provider_model_aggregate_in_flight.as_ref(),
                u32::to_string,
            ),
            plain(
                "observed_maxima.row_groups_in_flight",
                o.row_groups_in_flight.to_string(),
                OBS,
                "-",
            ),
            plain(
                "observed_maxima.queued_tasks_by_group",
                map_text(&o.queued_tasks_by_group),
                OBS,
                "-",
            ),
            plain(
                "observed_maxima.task_leases_by_resource",
                map_text(&o.task_leases_by_resource),
                OBS,
                "-",
            ),
            plain(
                "observed_maxima.request_waiters_by_resource",
                map_text(&o.request_waiters_by_resource),
                OBS,
                "-",
            ),
            plain(
                "observed_maxima.request_in_flight_by_resource",
                map_text(&o.request_in_flight_by_resource),
                OBS,
                "-",
            ),
            plain(
                "observed_maxima.provider_model_aggregate_in_flight",
                map_text(&o.provider_model_aggregate_in_flight),
                OBS,
                "-",
            ),
            plain(
                "observed_maxima.request_domain_current_limits",
                map_text(&o.request_domain_current_limits),
                OBS,
                "-",
            ),
            match &o.transport_pool_utilization {
                Some(m) => plain(
                    "observed_maxima.transport_pool_utilization",
                    map_text(m),
                    OBS,
                    "-",
                ),
                None => plain(
                    "observed_maxima.transport_pool_utilization",
                    "-".to_owned(),
                    OBS,
                    "transport pool utilization is adapter-specific",
                ),
            },
        ];
        if let Some(cfg) = &c.request_admission_config.value {
            let at = rows
                .iter()
                .position(|r| r.field == "configured.request_admission_config")
                .map_or(rows.len(), |i| i + 1);
            let parent = &c.request_admission_config;
            let sub: Vec<Row> = config_rows(cfg)
                .into_iter()
                .map(|(name, value)| {
                    let mut row = sourced(
                        &format!("configured.request_admission_config.{name}"),
                        parent,
                        |_| String::new(),
                    );
                    row.value = value;
                    row
                })
                .collect();
            rows.splice(at..at, sub);
        }
        rows
    }
}

fn render(rows: &[Row]) -> String {
    let header = Row {
        field: "field".to_owned(),
        value: "value".to_owned(),
        source: "source".to_owned(),
        fallback_from: "fallback_from".to_owned(),
        missing_reason: "missing_reason".to_owned(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
    let w = [
        width(|r| &r.field),
        width(|r| &r.value),
        width(|r| &r.source),
        width(|r| &r.fallback_from),
    ];
    let mut out = String::new();
    for (i, r) in all.iter().enumerate() {
        // `write!` to a String cannot fail.
        let _ = writeln!(
            out,
            "{:<w0$} | {:<w1$} | {:<w2$} | {:<w3$} | {}",
            r.field,
            r.value,
            r.source,
            r.fallback_from,
            r.missing_reason,
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
        );
        if i == 0 {
            let total = w.iter().sum::<usize>() + 4 * 3 + "missing_reason".len();
            let _ = writeln!(out, "{}", "-".repeat(total));
        }
    }
    out
}
