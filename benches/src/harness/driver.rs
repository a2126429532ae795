//! Runs the selected scenarios (warm-ups, measured iterations), builds their artifacts and gates,
//! and writes the outputs.

use super::artifact::{refresh_derived, write_outputs};
use super::coordinated;
use super::gates::{engine_gates, gate, Gate, Status};
use super::goodput;
use super::metrics::{completion_timeline, compute, utilization_timeline, MetricOptions};
use super::queue_mix;
use super::run::{engine_config, run_engine_once};
use super::scenarios::{build, EngineScenario, ScenarioBody, SizeOptions};
use super::shared;
use super::sysinfo::MachineInfo;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Options of `weir-bench run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scenario ids.
    pub scenarios: Vec<&'static str>,
    /// Sizes and seed.
    pub size: SizeOptions,
    /// Measured iterations.
    pub iterations: usize,
    /// Measured rounds of the goodput matrix (default 3, smoke 1: each round runs every cell).
    pub goodput_iterations: usize,
    /// Warm-up iterations (discarded).
    pub warmups: usize,
    /// Output directory.
    pub out: PathBuf,
    /// `single`, `baseline` or `candidate`.
    pub role: String,
    /// SHA of the code being measured.
    pub sha: Option<String>,
    /// SHA of the baseline (A/B runs).
    pub baseline_sha: Option<String>,
    /// Timeline rows kept in iteration 0 (`None`: all); other iterations keep none.
    pub timeline_limit: Option<usize>,
    /// Free-text machine note.
    pub machine_note: Option<String>,
    /// The command line, for the artifact.
    pub command_line: Vec<String>,
}

/// Environment knobs recorded in every artifact.
fn environment() -> Value {
    let keys = [
        "RUST_LOG",
        "RUSTFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "TOKIO_WORKER_THREADS",
    ];
    let mut m = serde_json::Map::new();
    for k in keys {
        if let Ok(v) = std::env::var(k) {
            m.insert(k.into(), json!(v));
        }
    }
    m.insert(
        "profile".into(),
        json!(if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }),
    );
    Value::Object(m)
}

/// The header shared by every artifact of a run.
pub fn header(o: &RunOptions) -> Value {
    json!({
        "artifact_schema_version": super::ARTIFACT_SCHEMA_VERSION,
        "harness_version": super::HARNESS_VERSION,
        "role": o.role,
        "baseline_sha": o.baseline_sha,
        "candidate_sha": o.sha,
        "command_line": o.command_line,
        "machine": MachineInfo::current(o.machine_note.clone()),
        "environment": environment(),
        "smoke": o.size.smoke,
        "iterations": o.iterations,
        "warmups": o.warmups,
        "goodput_rounds": o.scenarios.contains(&"goodput").then_some(o.goodput_iterations),
        "seed": o.size.seed,
        "generated_at": super::artifact::utc_now(),
    })
}

fn inputs(s: &EngineScenario, o: &RunOptions) -> Value {
    let c = engine_config(s);
    json!({
        "records": s.spec.records,
        "buffer_size": s.spec.effective_buffer_size(),
        "max_concurrent_row_groups": s.spec.effective_max_concurrent_row_groups(),
        "submission_capacity": s.submission_capacity,
        "task_admission_policy": if s.borrow_ceiling.is_some() { "bounded_borrow" } else { "strict_fair" },
        "borrow_ceiling": s.borrow_ceiling,
        "scheduler_max_retries": s.max_retries,
        "scheduler_retry_base_delay_ms": c.scheduler.retry.base_delay.as_secs_f64() * 1000.0,
        "executor_max_attempts": c.executor.max_attempts,
        "stop_after_seconds": s.stop_after_seconds,
        "request_latency_ms": s.spec.providers.iter().flat_map(|p| p.models.iter().flatten().map(move |m| json!({
            "endpoint": format!("{}/{}", p.name, m.model_id),
            "latency_ms": m.latency_ms,
            "mean_ms": m.latency_ms.mean_ms(),
        }))).collect::<Vec<_>>(),
        "seed": o.size.seed,
        "warmups": o.warmups,
        "iterations": o.iterations,
        "smoke": o.size.smoke,
    })
}

/// One scenario's artifact and gates.
pub struct ScenarioOutcome {
    /// The JSON artifact.
    pub artifact: Value,
    /// Its gates.
    pub gates: Vec<Gate>,
}

fn run_engine_scenario(
    id: &str,
    s: &EngineScenario,
    o: &RunOptions,
) -> Result<(Vec<Value>, Vec<Gate>, Value), String> {
    for w in 0..o.warmups {
        let r = run_engine_once(s)?;
        eprintln!(
            "weir-bench: {id} warm-up {}/{}: wall {:.3} s",
            w + 1,
            o.warmups,
            r.wall_seconds
        );
    }
    let mut iterations = Vec::new();
    let mut metrics = Vec::new();
    let mut capacity_plan = Value::Null;
    let opts = MetricOptions {
        submission_capacity: s.submission_capacity,
        heavy_root: s.heavy_root.as_ref(),
        cooldown: s.cooldown.as_ref(),
    };
    for i in 0..o.iterations {
        let r = run_engine_once(s)?;
        let m = compute(&r, &opts);
        eprintln!(
            "weir-bench: {id} iteration {}/{}: wall {:.3} s, bound {:.3} s, ready-idle max {:.3} ms",
            i + 1,
            o.iterations,
            r.wall_seconds,
            m.lower_bound.bound_seconds,
            m.values.ready_idle_gap_ms_max
        );
        let rows = r.view.timeline_rows();
        let total = rows.len();
        let keep = match (i, o.timeline_limit) {
            (0, None) => total,
            (0, Some(n)) => n.min(total),
            _ => 0,
        };
        if i == 0 {
            capacity_plan = json!(r.result.capacity_plan);
        }
        iterations.push(json!({
            "index": i,
            "wall_time_seconds": r.wall_seconds,
            "timeline": rows[..keep],
            "timeline_total_rows": total,
            "timeline_truncated": keep < total,
            "completion_timeline": completion_timeline(&r.view),
            "utilization_timeline": utilization_timeline(&r.view, 100),
            "final_task_snapshot": r.result.report.final_task_snapshot,
            "final_request_snapshot": {
                "resources": r.result.final_request_snapshots,
                "endpoints": r.result.final_endpoint_snapshots,
                "release_diagnostics": r.result.request_release_diagnostics.iter().map(|(k, v)| (format!("{k:?}"), *v)).collect::<std::collections::BTreeMap<_, _>>(),
            },
            "endpoints": r.result.endpoints,
            "scheduler_report": {
                "records_written": r.result.report.records_written,
                "rows_dropped": r.result.report.rows_dropped,
                "drop_causes": r.result.report.drop_causes,
                "tasks_completed": r.result.report.tasks_completed,
                "tasks_failed": r.result.report.tasks_failed,
                "tasks_retried": r.result.report.tasks_retried,
                "tasks_cancelled": r.result.report.tasks_cancelled,
                "max_active_task_leases": r.result.report.max_active_task_leases,
                "max_queued_tasks": r.result.report.max_queued_tasks,
                "max_row_groups_in_flight": r.result.report.max_row_groups_in_flight,
                "stopped": r.result.report.stopped.as_ref().map(|s| format!("{s:?}")),
            },
            "output_hashes": m.output_hashes,
            "metrics": m.values,
            "lower_bound": m.lower_bound,
            "facts": m.facts,
        }));
        metrics.push(m);
    }
    let gates = engine_gates(id, s, &metrics, o.size.smoke);
    Ok((iterations, gates, capacity_plan))
}

fn run_queue_scenario(id: &str, o: &RunOptions) -> (Vec<Value>, Vec<Gate>) {
    let mut iterations = Vec::new();
    let mut all_ok = true;
    for i in 0..o.iterations {
        let t = Instant::now();
        let rows = queue_mix::run_matrix(o.size.smoke);
        let wall = t.elapsed().as_secs_f64();
        let mut metrics = serde_json::Map::new();
        metrics.insert("wall_seconds".into(), json!(wall));
        for r in &rows {
            let key = format!("{}.t{}.g{}", r.mix.as_str(), r.tasks, r.groups);
            all_ok &= r.cycle_ns_p50.is_finite() && r.cycle_ns_p50 > 0.0;
            metrics.insert(format!("cycle_ns_p50.{key}"), json!(r.cycle_ns_p50));
            metrics.insert(format!("cycle_ns_p95.{key}"), json!(r.cycle_ns_p95));
            metrics.insert(format!("enqueue_ns.{key}"), json!(r.enqueue_ns_per_task));
            for (phase, v) in [
                ("select", r.phase_ns_p50.select),
                ("acquire", r.phase_ns_p50.acquire),
                ("commit", r.phase_ns_p50.commit),
                ("release", r.phase_ns_p50.release),
            ] {
                metrics.insert(format!("phase_ns_p50.{phase}.{key}"), json!(v));
            }
        }
        if let Some(cpu) = rows.iter().map(|r| r.cpu_seconds).sum::<Option<f64>>() {
            metrics.insert("cpu_seconds".into(), json!(cpu));
        }
        if let Some(rss) = super::sysinfo::peak_rss_mib() {
            metrics.insert("peak_rss_mib".into(), json!(rss));
        }
        eprintln!(
            "weir-bench: {id} iteration {}/{}: {} rows in {wall:.2} s",
            i + 1,
            o.iterations,
            rows.len()
        );
        iterations.push(json!({
            "index": i,
            "wall_time_seconds": wall,
            "rows": rows,
            "metrics": metrics,
        }));
    }
    let gates = vec![gate(
        id,
        "every_cell_measured",
        all_ok,
        true,
        "every tasks × groups × mix cell drained and produced a finite positive cycle cost".into(),
    )];
    (iterations, gates)
}

/// Runs every selected scenario and writes the outputs; returns the gates.
pub fn run(o: &RunOptions) -> Result<Vec<Gate>, String> {
    let head = header(o);
    let mut artifacts = Vec::new();
    let mut gates = Vec::new();
    for id in &o.scenarios {
        let sc = build(id, &o.size)?;
        let started = Instant::now();
        let mut cells_summary = None;
        let (iterations, g, capacity_plan, inputs, provider_script, spec) = match &sc.body {
            ScenarioBody::QueueAdmission => {
                let (it, g) = run_queue_scenario(id, o);
                let inputs = json!({
                    "tasks": queue_mix::matrix(o.size.smoke).iter().map(|x| x.0).collect::<std::collections::BTreeSet<_>>(),
                    "groups": queue_mix::matrix(o.size.smoke).iter().map(|x| x.1).collect::<std::collections::BTreeSet<_>>(),
                    "mixes": queue_mix::ResourceMix::ALL,
                    "submission_capacity": queue_mix::CAPACITY,
                    "resource_limit": queue_mix::RESOURCE_LIMIT,
                    "in_flight_leases": queue_mix::IN_FLIGHT,
                    "batch": queue_mix::BATCH,
                    "policy": "bounded_borrow",
                    "iterations": o.iterations,
                    "smoke": o.size.smoke,
                });
                (it, g, Value::Null, inputs, Value::Null, Value::Null)
            }
            ScenarioBody::Goodput => {
                let (a, g) = goodput::run_matrix(
                    o.size.smoke,
                    o.size.records,
                    o.goodput_iterations,
                    o.size.seed,
                    &o.out,
                    &head,
                )?;
                let it = a["iterations"].as_array().cloned().unwrap_or_default();
                cells_summary = Some(a["cells"].clone());
                (
                    it,
                    g,
                    Value::Null,
                    a["inputs"].clone(),
                    Value::Null,
                    Value::Null,
                )
            }
            ScenarioBody::Shared | ScenarioBody::Coordinated => {
                let (a, g) = if matches!(sc.body, ScenarioBody::Shared) {
                    shared::run(
                        o.size.smoke,
                        o.size.records,
                        o.goodput_iterations,
                        o.size.seed,
                        &o.out,
                    )?
                } else {
                    coordinated::run(o.size.smoke, o.size.records, o.goodput_iterations, &o.out)?
                };
                // Their table is per cell and worker count, not per iteration.
                cells_summary = Some(a["summaries"].clone());
                (
                    Vec::new(),
                    g,
                    Value::Null,
                    a["inputs"].clone(),
                    Value::Null,
                    Value::Null,
                )
            }
            ScenarioBody::Engine(s) => {
                let (it, g, plan) = run_engine_scenario(id, s, o)?;
                let script = json!({
                    "providers": s.spec_json["providers"],
                    "models": s.spec_json["models"],
                });
                (it, g, plan, inputs(s, o), script, s.spec_json.clone())
            }
        };
        let mut artifact = json!({
            "scenario_id": sc.id,
            "artifact_schema_version": super::ARTIFACT_SCHEMA_VERSION,
            "scenario_version": sc.version,
            "harness_version": super::HARNESS_VERSION,
            "suite": sc.suite,
            "description": sc.description,
            "baseline_sha": head["baseline_sha"],
            "candidate_sha": head["candidate_sha"],
            "role": head["role"],
            "command_line": head["command_line"],
            "machine": head["machine"],
            "environment": head["environment"],
            "generated_at": head["generated_at"],
            "inputs": inputs,
            "workflow_spec": spec,
            "provider_script": provider_script,
            "clock_script": {
                "clock": "weir_telemetry::MonotonicClock on tokio's clock, real time (not paused); seconds since the run's origin",
                "retry_schedule": "scheduler TaskRetryConfig (base 250 ms, max 10 s, jitter 0.2, seeded by task id) and executor backoff; simulated latencies drawn from the seeded provider RNG",
                "deterministic_replay": false,
            },
            "capacity_plan": capacity_plan,
            "iterations": iterations,
            "gates": g,
            "scenario_seconds": started.elapsed().as_secs_f64(),
        });
        if let Some(cells) = cells_summary {
            artifact["cells"] = cells;
        }
        refresh_derived(&mut artifact);
        for gate in &g {
            println!("{gate}");
        }
        gates.extend(g);
        artifacts.push(artifact);
    }
    write_outputs(&o.out, &artifacts, &gates, &head)?;
    Ok(gates)
}

/// True when no enforced gate failed.
pub fn all_pass(gates: &[Gate]) -> bool {
    gates.iter().all(|g| g.status != Status::Fail)
}
