//! A/B comparison: merges per-iteration artifacts of each side (the runs were interleaved
//! A B A B by `cargo xtask bench --baseline … --candidate …`), writes each side's merged
//! artifacts and summary, and a comparison report saying which commit won each metric, with the
//! A/B gates (≤ 5 % mean wall regression on neutral scenarios, ≤ 10 % p95 admission-cycle
//! regression, output-hash equality).

use super::artifact::{refresh_derived, summarize, write_outputs};
use super::gates::{gate, Gate, Status};
use super::stats::Summary;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Neutral-scenario mean wall regression allowed.
pub const WALL_REGRESSION: f64 = 0.05;
/// p95 admission-cycle regression allowed.
pub const CYCLE_P95_REGRESSION: f64 = 0.10;

/// Reads every `*.json` artifact under `dir` (recursively) and merges iterations per scenario.
pub fn load_side(dir: &Path) -> Result<BTreeMap<String, Value>, String> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    let mut merged: BTreeMap<String, Value> = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(id) = v["scenario_id"].as_str().map(str::to_owned) else {
            continue;
        };
        match merged.get_mut(&id) {
            None => {
                merged.insert(id, v);
            }
            Some(base) => {
                let n = base["iterations"].as_array().map_or(0, Vec::len);
                let mut add: Vec<Value> = v["iterations"].as_array().cloned().unwrap_or_default();
                for (k, it) in add.iter_mut().enumerate() {
                    it["index"] = json!(n + k);
                    // Only the first iteration of a merged side keeps its timeline.
                    if let Some(t) = it.get_mut("timeline") {
                        *t = json!([]);
                        it["timeline_truncated"] = json!(true);
                    }
                }
                if let Some(arr) = base["iterations"].as_array_mut() {
                    arr.extend(add);
                }
                if let (Some(bg), Some(vg)) = (base["gates"].as_array_mut(), v["gates"].as_array())
                {
                    bg.extend(vg.iter().cloned());
                }
            }
        }
    }
    for v in merged.values_mut() {
        refresh_derived(v);
        v["iterations_merged_from_interleaved_runs"] = json!(true);
    }
    if merged.is_empty() {
        return Err(format!("no weir-bench artifacts under {}", dir.display()));
    }
    Ok(merged)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in rd.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().and_then(|e| e.to_str()) == Some("json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Whether lower values win (`Some(true)`), higher win (`Some(false)`), or no winner (`None`).
pub fn direction(metric: &str) -> Option<bool> {
    const NEUTRAL: [&str; 12] = [
        "records_written",
        "rows_dropped",
        "request_lease_count",
        "outbound_attempts",
        "events_scheduler",
        "events_request",
        "task_executions",
        "lower_bound_seconds",
        "planned_lower_bound_seconds",
        "critical_path_seconds",
        "hidden_scheduler_resource_waiters",
        "root_last_completed_seconds",
    ];
    if NEUTRAL.contains(&metric) || metric.ends_with("_end_seconds") {
        return None;
    }
    if metric.starts_with("request_utilization.")
        || metric == "active_capacity_mean"
        || metric == "active_capacity_integral"
    {
        return Some(false);
    }
    Some(true)
}

/// One metric of one scenario, both sides.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Scenario.
    pub scenario: String,
    /// Metric.
    pub metric: String,
    /// Baseline summary.
    pub baseline: Summary,
    /// Candidate summary.
    pub candidate: Summary,
    /// `(candidate − baseline) / baseline` of the means.
    pub delta: f64,
    /// `baseline`, `candidate`, `tie`, `inconclusive` or `-` (no direction).
    pub winner: String,
}

fn winner(metric: &str, b: &Summary, c: &Summary) -> (f64, String) {
    let delta = if b.mean == 0.0 {
        0.0
    } else {
        (c.mean - b.mean) / b.mean.abs()
    };
    let Some(lower_better) = direction(metric) else {
        return (delta, "-".into());
    };
    let noise = 2.0 * b.cv().max(c.cv());
    let trimmed = if b.trimmed_mean == 0.0 {
        0.0
    } else {
        (c.trimmed_mean - b.trimmed_mean) / b.trimmed_mean.abs()
    };
    let w = if b.mean == c.mean {
        "tie".to_owned()
    } else if delta.abs() <= noise || delta.signum() != trimmed.signum() {
        "inconclusive".to_owned()
    } else if (delta < 0.0) == lower_better {
        "candidate".to_owned()
    } else {
        "baseline".to_owned()
    };
    (delta, w)
}

/// Compares the two sides and writes `comparison.md`, `comparison.csv`, `comparison.json` and each
/// side's merged artifacts under `out/{baseline,candidate}/`. Returns the A/B gates.
pub fn compare(
    baseline_dir: &Path,
    candidate_dir: &Path,
    out: &Path,
    shas: (&str, &str),
) -> Result<Vec<Gate>, String> {
    let base = load_side(baseline_dir)?;
    let cand = load_side(candidate_dir)?;
    for (side, arts) in [("baseline", &base), ("candidate", &cand)] {
        let all: Vec<Value> = arts.values().cloned().collect();
        let gates: Vec<Gate> = all
            .iter()
            .flat_map(|a| a["gates"].as_array().cloned().unwrap_or_default())
            .filter_map(|g| serde_json::from_value::<Gate>(g).ok())
            .collect();
        let mut header = all.first().cloned().unwrap_or(Value::Null);
        header["iterations"] = json!(all
            .first()
            .and_then(|a| a["iterations"].as_array())
            .map_or(0, Vec::len));
        header["warmups"] = json!("see xtask");
        header["seed"] = all
            .first()
            .map_or(Value::Null, |a| a["inputs"]["seed"].clone());
        header["smoke"] = all
            .first()
            .map_or(Value::Null, |a| a["inputs"]["smoke"].clone());
        write_outputs(&out.join(side), &all, &dedup(gates), &header)?;
    }
    let mut rows = Vec::new();
    let mut gates = Vec::new();
    for (id, b) in &base {
        let Some(c) = cand.get(id) else {
            gates.push(gate(
                id,
                "ab_scenario_present",
                false,
                true,
                "missing on the candidate side".into(),
            ));
            continue;
        };
        let (bs, cs) = (summarize(b), summarize(c));
        // Timing gates of tiny smoke runs are reported, not enforced (as in single runs).
        let timing_enforced = b["inputs"]["smoke"] != json!(true);
        for (metric, bsum) in &bs {
            if let Some(csum) = cs.get(metric) {
                let (delta, w) = winner(metric, bsum, csum);
                rows.push(Row {
                    scenario: id.clone(),
                    metric: metric.clone(),
                    baseline: *bsum,
                    candidate: *csum,
                    delta,
                    winner: w,
                });
            }
        }
        if id == "queue_admission" {
            let mut worst: Option<(String, f64, f64)> = None;
            let mut regress = Vec::new();
            for (metric, bsum) in bs.iter().filter(|(k, _)| k.starts_with("cycle_ns_p95.")) {
                let Some(csum) = cs.get(metric) else { continue };
                let d = (csum.mean - bsum.mean) / bsum.mean;
                let dt = (csum.trimmed_mean - bsum.trimmed_mean) / bsum.trimmed_mean;
                let better = match &worst {
                    Some(w) => d > w.1,
                    None => true,
                };
                if better {
                    worst = Some((metric.clone(), d, dt));
                }
                let noise = 2.0 * bsum.cv().max(csum.cv());
                if d > CYCLE_P95_REGRESSION && dt > CYCLE_P95_REGRESSION && d > noise {
                    regress.push(format!("{metric} {:+.1}%", d * 100.0));
                }
            }
            let detail = match (&worst, regress.is_empty()) {
                (Some((m, d, _)), true) => format!(
                    "no cell regresses > {:.0}% on mean, trimmed mean and beyond 2×cv noise; largest mean change {m} {:+.1}%",
                    CYCLE_P95_REGRESSION * 100.0,
                    d * 100.0
                ),
                (_, false) => format!(
                    "p95 admission-cycle regressions > {:.0}% (mean, trimmed mean, beyond 2×cv noise): {}",
                    CYCLE_P95_REGRESSION * 100.0,
                    regress.join(", ")
                ),
                (None, true) => "no cycle rows".into(),
            };
            gates.push(gate(
                id,
                "ab_p95_admission_cycle_regression",
                regress.is_empty(),
                timing_enforced,
                detail,
            ));
            continue;
        }
        if let (Some(bw), Some(cw)) = (bs.get("wall_seconds"), cs.get("wall_seconds")) {
            let d = (cw.mean - bw.mean) / bw.mean;
            let dt = (cw.trimmed_mean - bw.trimmed_mean) / bw.trimmed_mean;
            let noise = 2.0 * bw.cv().max(cw.cv());
            let fail = d > WALL_REGRESSION && dt > WALL_REGRESSION && d > noise;
            gates.push(gate(
                id,
                "ab_wall_regression",
                !fail,
                timing_enforced,
                format!(
                    "mean wall {:.3} s → {:.3} s ({:+.1}%, trimmed {:+.1}%, noise ±{:.1}%) ≤ +{:.0}%",
                    bw.mean, cw.mean, d * 100.0, dt * 100.0, noise * 100.0, WALL_REGRESSION * 100.0
                ),
            ));
        }
        let deterministic = b["gates"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|g| g["name"] == "output_hash_equality");
        if deterministic {
            let h = |a: &Value| {
                let mut v: Vec<String> = a["iterations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|it| it["output_hashes"]["records"].as_str().map(str::to_owned))
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            let (hb, hc) = (h(b), h(c));
            gates.push(gate(
                id,
                "ab_output_hash_equality",
                hb.len() == 1 && hb == hc,
                true,
                format!("baseline {} / candidate {}", hb.join(","), hc.join(",")),
            ));
        }
    }
    write_report(out, &rows, &gates, shas)?;
    Ok(gates)
}

fn dedup(gates: Vec<Gate>) -> Vec<Gate> {
    let mut by: BTreeMap<(String, String), Gate> = BTreeMap::new();
    for g in gates {
        let key = (g.scenario.clone(), g.name.clone());
        match by.get(&key) {
            Some(prev) if rank(prev.status) >= rank(g.status) => {}
            _ => {
                by.insert(key, g);
            }
        }
    }
    by.into_values().collect()
}

fn rank(s: Status) -> u8 {
    match s {
        Status::Pass => 0,
        Status::Warn => 1,
        Status::Fail => 2,
    }
}

fn write_report(
    out: &Path,
    rows: &[Row],
    gates: &[Gate],
    shas: (&str, &str),
) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut md = String::new();
    let _ = writeln!(md, "# weir-bench A/B comparison\n\n- baseline (A): `{}`\n- candidate (B): `{}`\n- runs interleaved A B A B on the same machine; winner = side with the better mean when the difference exceeds 2× the larger cv and the trimmed means agree, else `inconclusive`.\n", shas.0, shas.1);
    md.push_str("## A/B gates\n\n```text\n");
    for g in gates {
        let _ = writeln!(md, "{g}");
    }
    md.push_str("```\n\n## Winners by metric\n\n");
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *tally.entry(r.winner.as_str()).or_default() += 1;
    }
    let _ = writeln!(
        md,
        "Tally: {}\n",
        tally
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    md.push_str("| scenario | metric | baseline mean | candidate mean | Δ | cv A | cv B | winner |\n|---|---|---:|---:|---:|---:|---:|---|\n");
    let mut csv = String::from(
        "scenario_id,metric,baseline_mean,candidate_mean,delta,baseline_cv,candidate_cv,winner\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{}",
            r.scenario,
            r.metric,
            r.baseline.mean,
            r.candidate.mean,
            r.delta,
            r.baseline.cv(),
            r.candidate.cv(),
            r.winner
        );
        if r.winner == "-" {
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:+.1}% | {:.1}% | {:.1}% | {} |",
            r.scenario,
            r.metric,
            r.baseline.mean,
            r.candidate.mean,
            r.delta * 100.0,
            r.baseline.cv() * 100.0,
            r.candidate.cv() * 100.0,
            r.winner
        );
    }
    let write = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write("comparison.md", &md)?;
    write("comparison.csv", &csv)?;
    write(
        "comparison.json",
        &serde_json::to_string_pretty(
            &json!({"baseline_sha": shas.0, "candidate_sha": shas.1, "gates": gates, "rows": rows}),
        )
        .map_err(|e| e.to_string())?,
    )?;
    Ok(())
}
