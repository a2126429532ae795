//! Artifact writers: one JSON per scenario (schema in `plans/benchmarks.md`), the derived-metric
//! CSVs and `summary.md`; plus summarizing iterations' metrics (also used for merged A/B runs).

use super::gates::Gate;
use super::stats::Summary;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Metric name → summary over the artifact's `iterations[].metrics`.
pub fn summarize(artifact: &Value) -> BTreeMap<String, Summary> {
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for it in artifact["iterations"].as_array().into_iter().flatten() {
        for (k, v) in it["metrics"].as_object().into_iter().flatten() {
            if let Some(x) = v.as_f64() {
                samples.entry(k.clone()).or_default().push(x);
            }
        }
    }
    samples
        .into_iter()
        .filter_map(|(k, v)| Summary::of(&v).map(|s| (k, s)))
        .collect()
}

/// Sets `derived_metrics` from the iterations.
pub fn refresh_derived(artifact: &mut Value) {
    let derived = summarize(artifact);
    artifact["derived_metrics"] = json!(derived);
}

/// UTC date `YYYY-MM-DD` and time of now (no timezone database needed).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Metrics shown in `summary.md` (the CSVs hold all of them).
const SUMMARY_METRICS: &[&str] = &[
    "wall_seconds",
    "lower_bound_seconds",
    "planned_lower_bound_seconds",
    "wall_over_bound",
    "wall_over_planned_bound",
    "ready_idle_gap_ms_max",
    "ready_idle_gap_ms_total",
    "policy_blocked_ms_total",
    "ready_queue_wait_ms_p95",
    "task_admission_wait_ms_p95",
    "ready_to_lease_gap_ms_p95",
    "active_capacity_mean",
    "first_downstream_ready_seconds",
    "first_downstream_dispatch_seconds",
    "initial_idle_gap_ms",
    "downstream_ready_to_dispatch_ms_p95",
    "root_last_completed_seconds",
    "root_over_admission_debt",
    "root_over_admission_peak_excess",
    "cooling_column_end_seconds",
    "free_column_end_seconds",
    "time_to_first_record_seconds",
    "time_to_50pct_records_seconds",
    "row_completion_p95_seconds",
    "request_wait_ms_p95",
    "request_acquire_overhead_ms_p95",
    "request_release_overhead_ms_p95",
    "request_lease_count",
    "outbound_attempts",
    "hidden_scheduler_resource_waiters",
    "events_scheduler",
    "events_request",
    "cpu_seconds",
    "cpu_us_per_event",
];

fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

fn table(out: &mut String, derived: &BTreeMap<String, Summary>, names: &[String]) {
    out.push_str("| metric | mean | p50 | p95 | min | max | stddev | cv |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for name in names {
        if let Some(s) = derived.get(name) {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {:.1}% |",
                fmt_num(s.mean),
                fmt_num(s.p50),
                fmt_num(s.p95),
                fmt_num(s.min),
                fmt_num(s.max),
                fmt_num(s.stddev),
                s.cv() * 100.0
            );
        }
    }
}

/// Writes `<id>.json` per artifact, `derived_metrics.csv`, `iterations.csv` and `summary.md`.
pub fn write_outputs(
    out: &Path,
    artifacts: &[Value],
    gates: &[Gate],
    header: &Value,
) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let write = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    let mut derived_csv = String::from("scenario_id,metric,n,mean,p50,p95,min,max,stddev\n");
    let mut iter_csv = String::from("scenario_id,iteration,metric,value\n");
    let mut md = String::new();
    let _ = writeln!(md, "# weir-bench summary\n");
    let _ = writeln!(
        md,
        "- generated: {}\n- artifact schema: `{}`, harness `{}`\n- mode: {}\n- role: {}; sha: `{}`; baseline sha: `{}`\n- iterations: {} measured, {} warm-up; seed {}\n- machine: {} CPUs ({}), load average at start {}, note: {}\n- command: `{}`\n",
        utc_now(),
        super::ARTIFACT_SCHEMA_VERSION,
        super::HARNESS_VERSION,
        if header["smoke"].as_bool() == Some(true) { "smoke (tiny sizes; timing gates reported, not enforced)" } else { "full" },
        header["role"].as_str().unwrap_or("single"),
        header["candidate_sha"].as_str().unwrap_or("unknown"),
        header["baseline_sha"].as_str().unwrap_or("-"),
        header["iterations"],
        header["warmups"],
        header["seed"],
        header["machine"]["cpus"],
        header["machine"]["cpu_model"].as_str().unwrap_or("?"),
        header["machine"]["load_average"],
        header["machine"]["note"].as_str().unwrap_or("-"),
        header["command_line"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    );
    if let Some(rounds) = header["goodput_rounds"].as_u64() {
        let _ = writeln!(
            md,
            "- goodput: {rounds} round(s) of every cell, no warm-up (the iteration counts above are the other scenarios')\n"
        );
    }
    md.push_str("## Gates\n\n```text\n");
    for g in gates {
        let _ = writeln!(md, "{g}");
    }
    md.push_str("```\n\n");
    md.push_str(
        "## Noise note\n\nEvery engine scenario runs in real time on simulated providers (5–150 ms latencies), so wall time \
         includes OS scheduling noise of the machine. `cv` is stddev / mean over measured iterations; a timing \
         difference smaller than about twice the larger cv of the two sides is inside the noise floor and is \
         reported as inconclusive by the A/B comparison. Claims must also hold on the trimmed mean (fastest and \
         slowest iteration removed), which the JSON carries as `trimmed_mean`.\n\n",
    );
    for a in artifacts {
        let id = a["scenario_id"].as_str().unwrap_or("?");
        write(
            &format!("{id}.json"),
            &serde_json::to_string_pretty(a).map_err(|e| e.to_string())?,
        )?;
        let derived = summarize(a);
        for (k, s) in &derived {
            let _ = writeln!(
                derived_csv,
                "{id},{k},{},{},{},{},{},{},{}",
                s.n, s.mean, s.p50, s.p95, s.min, s.max, s.stddev
            );
        }
        for it in a["iterations"].as_array().into_iter().flatten() {
            let idx = it["index"].as_u64().unwrap_or(0);
            for (k, v) in it["metrics"].as_object().into_iter().flatten() {
                let _ = writeln!(iter_csv, "{id},{idx},{k},{v}");
            }
        }
        let _ = writeln!(
            md,
            "## {id} (v{}, {})\n\n{}\n",
            a["scenario_version"],
            a["suite"].as_str().unwrap_or(""),
            a["description"].as_str().unwrap_or("")
        );
        if id == "queue_admission" {
            md.push_str("Dispatch cycle cost (ns per `select_next + try_acquire + commit + release`), mean over iterations of each iteration's p50 / p95 over batches of 64 cycles:\n\n");
            md.push_str("| mix | tasks | groups | p50 ns | p95 ns | p95 cv |\n|---|---:|---:|---:|---:|---:|\n");
            for (k, s) in derived
                .iter()
                .filter(|(k, _)| k.starts_with("cycle_ns_p50."))
            {
                let key = &k["cycle_ns_p50.".len()..];
                let p95 = derived.get(&format!("cycle_ns_p95.{key}"));
                let parts: Vec<&str> = key.split('.').collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.1} | {:.1} | {:.1}% |",
                    parts.first().unwrap_or(&""),
                    parts.get(1).map_or("", |t| t.trim_start_matches('t')),
                    parts.get(2).map_or("", |g| g.trim_start_matches('g')),
                    s.mean,
                    p95.map_or(0.0, |p| p.mean),
                    p95.map_or(0.0, |p| p.cv() * 100.0)
                );
            }
            md.push('\n');
            continue;
        }
        let mut names: Vec<String> = SUMMARY_METRICS.iter().map(|s| (*s).to_owned()).collect();
        names.extend(
            derived
                .keys()
                .filter(|k| k.starts_with("request_utilization."))
                .cloned(),
        );
        table(&mut md, &derived, &names);
        if let Some(b) = a["iterations"][0]["lower_bound"].as_object() {
            let _ = writeln!(
                md,
                "\nLower bound (iteration 0): bottleneck `{}`, realized {:.3} s, planned {:.3} s, critical path {:.3} s.\n",
                b.get("bottleneck_endpoint").and_then(Value::as_str).unwrap_or("-"),
                b.get("bottleneck_realized_seconds").and_then(Value::as_f64).unwrap_or(0.0),
                b.get("bottleneck_planned_seconds").and_then(Value::as_f64).unwrap_or(0.0),
                b.get("critical_path_seconds").and_then(Value::as_f64).unwrap_or(0.0),
            );
        } else {
            md.push('\n');
        }
    }
    write("derived_metrics.csv", &derived_csv)?;
    write("iterations.csv", &iter_csv)?;
    write("summary.md", &md)?;
    Ok(())
}
