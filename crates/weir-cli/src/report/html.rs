//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no network).

use super::plan_table::plan_rows;
use super::svg::{escape, stacked_area, stacked_bar, unbroken, Line, LineChart, Markers, Segment};
use super::ReportData;
use std::fmt::Write as _;

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:820px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.sub{color:#5b6475;margin:0 0 16px}
.status{display:inline-block;padding:2px 10px;border-radius:10px;font-size:12px;font-weight:600;background:#e3f4e8;color:#17663a}
.status.bad{background:#fbe5e5;color:#8c1d1d}
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:16px 0}
.tile{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px}
.tile b{display:block;font-size:20px}.tile span{color:#5b6475;font-size:12px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px;margin:10px 0;overflow-x:auto}
svg.chart{max-width:100%;height:auto;display:block}
svg .chart-title{font-size:14px;font-weight:600;fill:#1d2330}
svg .legend{font-size:12px;fill:#333}
svg .tick{font-size:11px;fill:#5b6475}
svg .axis-label{font-size:12px;fill:#333}
svg .grid{stroke:#e6e9ee;stroke-width:1}
svg .axis{stroke:#8a93a3;stroke-width:1}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #dde1e7;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
td code{font-size:12px;white-space:nowrap}
td code.brk{white-space:normal}
.nw{white-space:nowrap}
.table-wrap{overflow-x:auto}
.verdict{font-size:16px;background:#fff;border-left:4px solid #4e79a7;padding:8px 12px;margin:12px 0}
.muted{color:#8a93a3}
"#;

const LAYER_COLORS: [&str; 9] = [
    "#8e9aaf", "#4e79a7", "#59a14f", "#f28e2b", "#e15759", "#76b7b2", "#bab0ac", "#edc948",
    "#b07aa1",
];

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn tile(out: &mut String, value: &str, label: &str) {
    let _ = write!(
        out,
        r#"<div class="tile"><b>{}</b><span>{}</span></div>"#,
        escape(value),
        escape(label)
    );
}

/// A cumulative series starting at (0, 0): the first point is the first checkpoint, and the
/// line would otherwise start in mid-air.
fn from_origin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    match points.first() {
        Some((t, _)) if *t > 0.0 => std::iter::once((0.0, 0.0))
            .chain(points.iter().copied())
            .collect(),
        _ => points.to_vec(),
    }
}

/// Which limit gives the lower bound and whether it was configured or learned, or why it is
/// unknown (reports saved before the explanation existed show nothing).
fn lower_bound_note(out: &mut String, data: &ReportData) {
    let text = &data.summary.lower_bound.explanation;
    if !text.is_empty() {
        let _ = write!(out, r#"<p class="sub">Lower bound: {}</p>"#, escape(text));
    }
}

/// Why the run stopped and which cells failed (column × model × cause, first message).
fn failures_section(out: &mut String, data: &ReportData) {
    let s = &data.summary;
    if s.stop_reason.is_none() && s.failures.is_empty() && s.rows_unfinished == 0 {
        return;
    }
    out.push_str("<h2>Failures</h2>");
    if let Some(why) = &s.stop_reason {
        let _ = write!(out, r#"<p class="sub">Stopped: {}</p>"#, escape(why));
    }
    if s.rows_unfinished > 0 {
        let _ = write!(
            out,
            r#"<p class="sub">{} requested row(s) were neither written nor dropped: their row groups never finished.</p>"#,
            s.rows_unfinished
        );
    }
    if s.failures.is_empty() {
        return;
    }
    out.push_str("<table><tr><th>column</th><th>model</th><th>cause</th><th>count</th><th>first message</th></tr>");
    for g in &s.failures {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            unbroken(&g.column),
            unbroken(g.model.as_deref().unwrap_or("(local)")),
            escape(&g.cause),
            g.count,
            escape(&g.detail())
        );
    }
    out.push_str("</table>");
}

/// The shared-limits backend of a `--shared-limits` run (nothing without one).
fn shared_limits_section(out: &mut String, s: &crate::summary::Summary) {
    let Some(sh) = &s.shared_limits else {
        return;
    };
    let _ = write!(
        out,
        r#"<h2>Shared limits</h2><p class="muted">Backend {} (scope {}, worker {}): mode at the end <b>{}</b>; when the store is lost: {} (share {}). {} admissions ({} local while the store was lost), {} refusals, {:.2} store round trips per request (+{} renewals), {} losses, {} recoveries, {} leases restored by renewal, {} left to expire.</p>"#,
        escape(&sh.backend),
        escape(&sh.scope),
        escape(&sh.worker),
        sh.mode.as_str(),
        sh.fallback.as_str(),
        num(sh.fallback_share),
        sh.admissions,
        sh.fallback_admissions,
        sh.refusals,
        sh.round_trips_per_request,
        sh.renewal_round_trips,
        sh.degraded,
        sh.recoveries,
        sh.leases_restored,
        sh.left_to_expire
    );
    out.push_str("<div class=\"table-wrap\"><table><tr><th>provider / model</th><th>static cap</th><th>shared cap</th><th>peak shared in flight</th><th>requests / min</th><th>tokens / min</th></tr>");
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |x| x.to_string());
    for e in &sh.endpoints {
        let _ = write!(
            out,
            r#"<tr><td>{} / {}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            unbroken(&e.endpoint.provider_name),
            unbroken(&e.endpoint.model_id),
            e.static_cap,
            e.learned_cap
                .map_or_else(|| "static".to_string(), |c| c.to_string()),
            e.max_shared_in_flight,
            opt(e.requests_per_minute),
            opt(e.tokens_per_minute)
        );
    }
    out.push_str("</table></div>");
}

/// Renders the whole report page.
pub fn render_html(data: &ReportData) -> String {
    let s = &data.summary;
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>weir report: {}</title><style>{CSS}</style></head><body><main>"#,
        escape(&data.workflow)
    );
    let bad = if data.status == "completed" {
        ""
    } else {
        " bad"
    };
    let _ = write!(
        out,
        r#"<h1>{} <span class="status{bad}">{}</span></h1>"#,
        escape(&data.workflow),
        escape(&data.status.replace('_', " "))
    );
    if let Some(d) = &data.description {
        let _ = write!(out, r#"<p class="sub">{}</p>"#, escape(d));
    }
    if let Some(v) = &s.verdict {
        let _ = write!(out, r#"<p class="verdict">{}</p>"#, escape(v));
    }

    out.push_str(r#"<div class="tiles">"#);
    tile(
        &mut out,
        &format!("{} / {}", s.records_written, s.records_requested),
        "records written / requested",
    );
    tile(&mut out, &format!("{} s", num(s.wall_seconds)), "wall time");
    tile(
        &mut out,
        &s.lower_bound_seconds
            .map_or_else(|| "unknown".to_string(), |b| format!("{} s", num(b))),
        "lower bound on wall time",
    );
    let efficiency = match s.lower_bound_seconds {
        Some(b) if s.wall_seconds > 0.0 && b > 0.0 => format!("{:.0}%", b / s.wall_seconds * 100.0),
        _ => "–".to_string(),
    };
    tile(&mut out, &efficiency, "lower bound / wall time");
    tile(&mut out, &s.requests.attempts.to_string(), "provider calls");
    tile(
        &mut out,
        &s.requests.rate_limited.to_string(),
        "rate limited (429)",
    );
    tile(&mut out, &s.rows_dropped.to_string(), "rows dropped");
    tile(
        &mut out,
        &s.hidden_scheduler_resource_waiters.to_string(),
        "hidden scheduler waiters",
    );
    out.push_str("</div>");
    lower_bound_note(&mut out, data);
    failures_section(&mut out, data);

    let x_max = data.series.duration_seconds.max(s.wall_seconds);
    out.push_str("<h2>Progress</h2>");
    let records = LineChart {
        title: "Records completed over time".to_string(),
        x_label: "seconds since start".to_string(),
        y_label: "records".to_string(),
        lines: vec![
            Line {
                label: "records completed".to_string(),
                color: "#4e79a7",
                points: from_origin(&data.series.records_completed),
                dashed: false,
                step: true,
            },
            Line {
                label: "requested".to_string(),
                color: "#8a93a3",
                points: vec![
                    (0.0, s.records_requested as f64),
                    (x_max, s.records_requested as f64),
                ],
                dashed: true,
                step: false,
            },
        ],
        markers: None,
        x_max,
    };
    let _ = write!(out, r#"<div class="card">{}</div>"#, records.render());
    let row_groups = LineChart {
        title: "Row groups in flight".to_string(),
        x_label: "seconds since start".to_string(),
        y_label: "row groups".to_string(),
        lines: vec![Line {
            label: "row groups in flight".to_string(),
            color: "#59a14f",
            points: data.series.row_groups_in_flight.clone(),
            dashed: false,
            step: true,
        }],
        markers: None,
        x_max,
    };
    let _ = write!(out, r#"<div class="card">{}</div>"#, row_groups.render());

    out.push_str("<h2>Models: in flight vs adaptive limit vs static cap</h2>");
    if data.series.models.is_empty() {
        out.push_str(r#"<p class="muted">No request events were recorded.</p>"#);
    }
    for m in &data.series.models {
        let cap = m.static_cap.or_else(|| {
            s.per_model
                .iter()
                .filter(|pm| pm.provider == m.provider && pm.model_id == m.model_id)
                .map(|pm| pm.static_cap)
                .min()
        });
        let mut lines = vec![
            Line {
                label: "in flight (bucket max)".to_string(),
                color: "#4e79a7",
                points: m.in_flight.clone(),
                dashed: false,
                step: true,
            },
            Line {
                label: "adaptive limit".to_string(),
                color: "#f28e2b",
                points: m.limit.clone(),
                dashed: false,
                step: true,
            },
        ];
        if let Some(cap) = cap {
            lines.push(Line {
                label: "static cap".to_string(),
                color: "#8a93a3",
                points: vec![(0.0, f64::from(cap)), (x_max, f64::from(cap))],
                dashed: true,
                step: false,
            });
        }
        let chart = LineChart {
            title: format!(
                "{} — {} calls, {} × 429, peak {} in flight",
                m.label(),
                m.attempts,
                m.rate_limited_total,
                m.max_in_flight
            ),
            x_label: "seconds since start".to_string(),
            y_label: "requests".to_string(),
            lines,
            markers: Some(Markers {
                label: "429".to_string(),
                color: "#e15759",
                points: m.rate_limited.clone(),
            }),
            x_max,
        };
        let _ = write!(out, r#"<div class="card">{}</div>"#, chart.render());
    }

    out.push_str("<h2>Where task time went</h2>");
    if s.layer_attribution.total() <= 0.0 {
        out.push_str(r#"<p class="sub">Not tracked for this run: the workflow has no model column, so there is no admission layer to attribute (per-task transitions are followed only for workflows that call a model; <code>WEIR_COLLECTOR=full</code> forces it).</p>"#);
    }
    let segments: Vec<Segment> = s
        .layer_attribution
        .entries()
        .iter()
        .zip(LAYER_COLORS)
        .map(|((label, value), color)| Segment {
            label: label.replace('_', " "),
            color,
            value: *value,
        })
        .collect();
    let _ = write!(
        out,
        r#"<div class="card">{}</div>"#,
        stacked_bar("Layer attribution (task-seconds)", "task-s", &segments)
    );
    if !data.series.layers_over_time.is_empty() {
        let layers: Vec<(String, &'static str)> = s
            .layer_attribution
            .entries()
            .iter()
            .zip(LAYER_COLORS)
            // The layers the collector follows over time (budget waits are measured by the
            // budget ledger as a total only).
            .take(super::layer_timeline::LAYERS)
            .map(|((label, _), color)| match *label {
                // Budget waits are inside this band over time (no event separates them).
                "worker_code" if s.layer_attribution.budget_wait > 0.0 => {
                    ("worker code + budget wait".to_owned(), color)
                }
                _ => (label.replace('_', " "), color),
            })
            .collect();
        let points: Vec<(f64, Vec<f64>)> = data
            .series
            .layers_over_time
            .iter()
            .map(|(t, v)| (*t, v.to_vec()))
            .collect();
        let _ = write!(
            out,
            r#"<div class="card">{}</div>"#,
            stacked_area(
                "Tasks in each layer over time (average per bucket)",
                "tasks",
                &layers,
                &points,
                x_max
            )
        );
    }
    out.push_str(r#"<p class="muted">Each task's life is split by the events it produced: dependency wait (its row group admitted, upstream columns not done), ready queue wait, task admission wait, request admission wait (waiting for a request lease), cooldown (the same, while the endpoint cooled down after a rate limit), provider execution (a call in flight), worker code (the task's own code outside model calls: local generators, templates, parsing, spawn and release), retry backoff, and budget wait (waiting for a request/token budget slot before asking for a request lease; no event marks it, so it is taken from the budget ledger's measured waits as a total, and the chart over time still shows it as worker code).</p>"#);

    let measured: Vec<_> = data
        .series
        .models
        .iter()
        .filter_map(|m| m.latency_ms.map(|l| (m, l)))
        .collect();
    if !measured.is_empty() {
        out.push_str("<h2>Provider latency (successful calls)</h2><div class=\"table-wrap\"><table><tr><th>resource</th><th>calls</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>");
        for (m, l) in measured {
            let _ = write!(
                out,
                r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                escape(&m.label()),
                l.count,
                num(l.p50),
                num(l.p90),
                num(l.p99),
                num(l.max)
            );
        }
        out.push_str("</table></div>");
    }

    out.push_str("<h2>Per model endpoint</h2><div class=\"table-wrap\"><table><tr><th>aliases</th><th>provider / model</th><th>calls</th><th>429</th><th>peak in flight</th><th>final limit</th><th>static cap</th></tr>");
    for m in &s.per_model {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{} / {}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            unbroken(&if m.aliases.is_empty() {
                m.alias.clone()
            } else {
                m.aliases.join(", ")
            }),
            unbroken(&m.provider),
            unbroken(&m.model_id),
            m.attempts,
            m.rate_limited,
            m.max_in_flight,
            m.final_limit
                .map_or_else(|| "-".to_string(), |l| l.to_string()),
            m.static_cap
        );
    }
    out.push_str("</table></div>");
    shared_limits_section(&mut out, s);

    out.push_str("<h2>Tasks and requests</h2><table><tr><th>tasks completed</th><th>failed</th><th>retried</th><th>calls</th><th>succeeded</th><th>429</th><th>failed</th><th>timeouts</th><th>cancelled</th></tr>");
    let _ = write!(
        out,
        r#"<tr><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr></table>"#,
        s.tasks.completed,
        s.tasks.failed,
        s.tasks.retried,
        s.requests.attempts,
        s.requests.succeeded,
        s.requests.rate_limited,
        s.requests.failed,
        s.requests.timeouts,
        s.requests.cancelled
    );
    let _ = write!(
        out,
        r#"<p class="muted">End of run: {} task leases held, {} tasks queued; {} request leases held, {} waiters, {} in flight.</p>"#,
        s.final_task_snapshot.active_leases,
        s.final_task_snapshot.queued,
        s.final_request_snapshot.active_leases,
        s.final_request_snapshot.waiters,
        s.final_request_snapshot.in_flight
    );

    out.push_str("<h2>Capacity plan</h2>");
    match &data.capacity_plan {
        None => out.push_str(r#"<p class="muted">No capacity plan was recorded.</p>"#),
        Some(plan) => {
            out.push_str(r#"<div class="table-wrap"><table><tr><th>field</th><th>value</th><th>source</th><th>fallback from</th><th>missing reason</th></tr>"#);
            for row in plan_rows(plan) {
                let _ = write!(
                    out,
                    r#"<tr><td><code class="brk">{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                    unbroken(&row.field),
                    unbroken(&row.value),
                    unbroken(&row.source),
                    unbroken(&row.fallback_from),
                    escape(&row.missing_reason)
                );
            }
            out.push_str("</table></div>");
        }
    }
    out.push_str(r#"<p class="muted">Generated by weir. Re-render with <code>weir report DIR</code>.</p></main></body></html>"#);
    out
}
