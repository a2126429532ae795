//! The scenario catalogue: stable ids, versions, workflow specs (weir-cli's JSON format) on
//! simulated providers, engine settings, and the scenario-specific expectations.
//!
//! Sizes: `smoke` is tiny (the whole catalogue runs in seconds); the full size lasts about a
//! second per run (engine_v2_chain a few seconds) with 5–50 ms latencies, so wall time is real
//! time, not paused time. `--records N` overrides every engine scenario's record count.

use serde_json::{json, Value};
use weir_cli::spec::WorkflowSpec;

/// Suite names, for grouping in reports.
pub mod suite {
    /// The queue/admission microbench.
    pub const MICRO: &str = "micro";
    /// Proof scenarios (heavy-root, hidden waiters, idle proxy, dynamic requests, engine_v2).
    pub const PROOF: &str = "proof";
    /// The end-to-end A/B set.
    pub const E2E: &str = "e2e";
}

/// Every scenario id, in run order.
pub const SCENARIO_IDS: [&str; 12] = [
    "queue_admission",
    "heavy_root",
    "hidden_waiter_proof",
    "idle_utilization",
    "e2e_narrow_serial",
    "e2e_wide_roots",
    "e2e_dual_model_judge",
    "e2e_dynamic_request_count",
    "e2e_cross_provider_cooldown",
    "request_dynamic_calls",
    "engine_v2_chain",
    "goodput",
];

/// Scenarios run only when named (not part of `all`): `shared` and `coordinated` need
/// `redis-server` and run several workers at once (`coordinated`: real `weir` processes).
pub const OPT_IN_SCENARIO_IDS: [&str; 2] = ["shared", "coordinated"];

/// Size and seed of a catalogue build.
#[derive(Debug, Clone, Copy)]
pub struct SizeOptions {
    /// Tiny sizes for the CI smoke.
    pub smoke: bool,
    /// Record count override for every engine scenario.
    pub records: Option<u64>,
    /// Workflow seed (samplers and simulated providers).
    pub seed: u64,
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Stable id (artifact file name, comparison key).
    pub id: &'static str,
    /// Bumped whenever the workload changes meaning.
    pub version: u32,
    /// Suite.
    pub suite: &'static str,
    /// One line: what it shows.
    pub description: &'static str,
    /// The workload.
    pub body: ScenarioBody,
}

/// What a scenario runs.
#[derive(Debug, Clone)]
pub enum ScenarioBody {
    /// The queue/admission microbench (no engine).
    QueueAdmission,
    /// The goodput matrix over HTTP on loopback (`super::goodput`).
    Goodput,
    /// Several workers sharing limits through Redis (`super::shared`).
    Shared,
    /// `weir run --coordinator` processes splitting one job (`super::coordinated`).
    Coordinated,
    /// A full engine run.
    Engine(Box<EngineScenario>),
}

/// An engine run and its expectations.
#[derive(Debug, Clone)]
pub struct EngineScenario {
    /// The workflow, as weir-cli's JSON (kept for the artifact's provider script).
    pub spec_json: Value,
    /// Parsed spec.
    pub spec: WorkflowSpec,
    /// Task-stage submission capacity.
    pub submission_capacity: u32,
    /// Bounded-borrow policy with this default borrow ceiling (`None`: strict fair, the default).
    pub borrow_ceiling: Option<u32>,
    /// Scheduler retries per task.
    pub max_retries: u32,
    /// Stop the run this many seconds after it starts (cancellation path).
    pub stop_after_seconds: Option<f64>,
    /// Output is a pure function of the seed (hash equality is gated).
    pub deterministic_output: bool,
    /// `(root column, downstream column)` for the heavy-root metrics.
    pub heavy_root: Option<(String, String)>,
    /// `(cooling column, free column)`: the free provider must finish first.
    pub cooldown: Option<(String, String)>,
    /// Gate `wall / lower bound ≤ this` (full runs only).
    pub wall_over_bound_max: Option<f64>,
    /// Gate `ready_idle_gap_ms_max ≤ granularity` (full runs only).
    pub gate_ready_idle: bool,
}

fn parse(spec_json: &Value) -> Result<WorkflowSpec, String> {
    let spec = WorkflowSpec::from_json(&spec_json.to_string()).map_err(|e| e.to_string())?;
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

fn engine(spec_json: Value) -> Result<EngineScenario, String> {
    Ok(EngineScenario {
        spec: parse(&spec_json)?,
        spec_json,
        submission_capacity: 1024,
        borrow_ceiling: None,
        max_retries: 3,
        stop_after_seconds: None,
        deterministic_output: true,
        heavy_root: None,
        cooldown: None,
        wall_over_bound_max: None,
        gate_ready_idle: true,
    })
}

/// `records` for this size: the override, else `smoke` or `full`.
fn n(o: &SizeOptions, smoke: u64, full: u64) -> u64 {
    o.records.unwrap_or(if o.smoke { smoke } else { full })
}

fn sim_model(id: &str, capacity: u32, latency: Value) -> Value {
    json!({"model_id": id, "capacity": capacity, "latency_ms": latency})
}

/// Builds the scenario `id` (see [`SCENARIO_IDS`]).
pub fn build(id: &str, o: &SizeOptions) -> Result<Scenario, String> {
    let seed = o.seed;
    let (version, suite, description, body) = match id {
        "queue_admission" => (
            1,
            suite::MICRO,
            "select_next → try_acquire → commit → release over tasks × groups × resource mixes",
            ScenarioBody::QueueAdmission,
        ),
        "goodput" => (
            1,
            suite::E2E,
            "endpoint behaviours (concurrency caps, Retry-After forms, buckets, windows, sporadic 429s, queueing) over HTTP on loopback: wall over floor, 429 share, limits",
            ScenarioBody::Goodput,
        ),
        "shared" => (
            1,
            suite::E2E,
            "1-4 workers sharing one endpoint's limits through Redis (hidden capacity 24; a request bucket): wall over the 1-worker floor, 429 share, per-worker share, Redis round trips per request",
            ScenarioBody::Shared,
        ),
        "coordinated" => (
            1,
            suite::E2E,
            "1 and 3 `weir run --coordinator` processes splitting one job's row groups and sharing one endpoint's limits (hidden capacity 24) through Redis: wall over one plain process, 429 share, row-group shares, same dataset",
            ScenarioBody::Coordinated,
        ),
        "heavy_root" => {
            let records = n(o, 32, 200);
            let mut s = engine(json!({
                "name": "heavy_root", "records": records, "seed": seed,
                "buffer_size": records, "max_concurrent_row_groups": 1,
                "providers": [{"name": "sim", "kind": "simulated", "models": [
                    sim_model("slow-m", 16, json!({"dist": "lognormal", "median": 150, "sigma": 0.3})),
                    sim_model("fast-m", 16, json!({"dist": "fixed", "value": 5})),
                ]}],
                "models": [
                    {"alias": "slow", "provider": "sim", "model_id": "slow-m", "max_parallel_requests": 16},
                    {"alias": "fast", "provider": "sim", "model_id": "fast-m", "max_parallel_requests": 16}
                ],
                "columns": [
                    {"name": "root", "kind": "llm_text", "model": "slow", "prompt": "Write a root document."},
                    {"name": "down", "kind": "llm_text", "model": "fast", "prompt": "Summarize {{ root }}"}
                ]
            }))?;
            s.submission_capacity = 16;
            s.borrow_ceiling = Some(4);
            s.heavy_root = Some(("root".into(), "down".into()));
            (
                1,
                suite::E2E,
                "slow root (no upstream) → fast downstream on 16 task slots, bounded borrow (ceiling 4)",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "hidden_waiter_proof" => {
            let records = n(o, 40, 240);
            let mut s = engine(json!({
                "name": "hidden_waiter_proof", "records": records, "seed": seed,
                "buffer_size": 20, "max_concurrent_row_groups": 4,
                "providers": [{"name": "sim", "kind": "simulated", "models": [
                    {"model_id": "m1", "capacity": 6, "latency_ms": {"dist": "uniform", "min": 5, "max": 25},
                     "retry_after_s": 0.05, "error_rate": 0.08, "timeout_rate": 0.04}
                ]}],
                "models": [{"alias": "w", "provider": "sim", "model_id": "m1", "max_parallel_requests": 8}],
                "columns": [
                    {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b", "c"]}},
                    {"name": "draft", "kind": "llm_text", "model": "w", "prompt": "Write {{ topic }}"},
                    {"name": "edit", "kind": "llm_text", "model": "w", "prompt": "Edit {{ draft }}"},
                    {"name": "ok", "kind": "validator", "columns": ["draft", "edit"]}
                ]
            }))?;
            // Success, retry (salvage), non-retryable drop after spent retries, and a stop
            // (cancellation) part-way through.
            s.max_retries = 1;
            s.deterministic_output = false;
            s.stop_after_seconds = Some(if o.smoke { 0.15 } else { 0.8 });
            s.gate_ready_idle = false;
            (
                1,
                suite::PROOF,
                "faults (429, 5xx, timeouts), retries, drops and a mid-run stop: no worker before its lease",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "idle_utilization" => {
            let records = n(o, 40, 300);
            let mut s = engine(json!({
                "name": "idle_utilization", "records": records, "seed": seed,
                "buffer_size": 50, "max_concurrent_row_groups": 4,
                "providers": [{"name": "pool", "kind": "simulated", "models": [
                    sim_model("a", 8, json!({"dist": "uniform", "min": 10, "max": 30})),
                    sim_model("b", 8, json!({"dist": "uniform", "min": 10, "max": 30})),
                ]}],
                "models": [
                    {"alias": "a", "provider": "pool", "model_id": "a", "max_parallel_requests": 8},
                    {"alias": "b", "provider": "pool", "model_id": "b", "max_parallel_requests": 8}
                ],
                "columns": [
                    {"name": "k", "kind": "sampler", "sampler": {"type": "uniform_int", "low": 0, "high": 99}},
                    {"name": "first", "kind": "llm_text", "model": "a", "prompt": "First {{ k }}"},
                    {"name": "second", "kind": "llm_text", "model": "b", "prompt": "Then {{ first }}"}
                ]
            }))?;
            s.submission_capacity = 12;
            s.heavy_root = Some(("first".into(), "second".into()));
            (
                1,
                suite::PROOF,
                "two mock endpoint pools behind 12 task slots: utilization and ready-idle gaps",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "e2e_narrow_serial" => {
            let records = n(o, 24, 200);
            let s = engine(json!({
                "name": "e2e_narrow_serial", "records": records, "seed": seed,
                "buffer_size": 50, "max_concurrent_row_groups": 2,
                "providers": [{"name": "sim", "kind": "simulated", "models": [
                    sim_model("m1", 8, json!({"dist": "lognormal", "median": 20, "sigma": 0.3}))
                ]}],
                "models": [{"alias": "writer", "provider": "sim", "model_id": "m1", "max_parallel_requests": 8}],
                "columns": [
                    {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b", "c"]}},
                    {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "Write {{ topic }}"},
                    {"name": "edit", "kind": "llm_text", "model": "writer", "prompt": "Edit {{ draft }}"},
                    {"name": "title", "kind": "expression", "template": "{{ topic }}/{{ edit }}"}
                ]
            }))?;
            (
                1,
                suite::E2E,
                "sampler → draft → edit → expression on one model (cap 8)",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "e2e_wide_roots" => {
            let records = n(o, 40, 400);
            let mut cols = Vec::new();
            for i in 0..4 {
                cols.push(json!({"name": format!("c{i}"), "kind": "llm_text", "model": "w", "prompt": format!("root {i}")}));
            }
            let s = engine(json!({
                "name": "e2e_wide_roots", "records": records, "seed": seed,
                "buffer_size": 100, "max_concurrent_row_groups": 2,
                "providers": [{"name": "sim", "kind": "simulated", "models": [
                    sim_model("m1", 32, json!({"dist": "uniform", "min": 10, "max": 30}))
                ]}],
                "models": [{"alias": "w", "provider": "sim", "model_id": "m1", "max_parallel_requests": 32}],
                "columns": cols
            }))?;
            (
                1,
                suite::E2E,
                "four independent root model columns on one model (cap 32)",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "e2e_dual_model_judge" => {
            let records = n(o, 30, 300);
            let s = engine(json!({
                "name": "e2e_dual_model_judge", "records": records, "seed": seed,
                "buffer_size": 50, "max_concurrent_row_groups": 3,
                "providers": [{"name": "sim", "kind": "simulated", "models": [
                    sim_model("writer-m", 16, json!({"dist": "beta", "alpha": 2, "beta": 3, "scale": 100})),
                    sim_model("judge-m", 8, json!({"dist": "fixed", "value": 20}))
                ]}],
                "models": [
                    {"alias": "writer", "provider": "sim", "model_id": "writer-m", "max_parallel_requests": 16},
                    {"alias": "judge", "provider": "sim", "model_id": "judge-m", "max_parallel_requests": 8}
                ],
                "columns": [
                    {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["x", "y"]}},
                    {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "About {{ topic }}"},
                    {"name": "score", "kind": "llm_judge", "model": "judge", "prompt": "Rate {{ draft }}"}
                ]
            }))?;
            (
                1,
                suite::E2E,
                "generate (cap 16) then judge (cap 8) on two models",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "e2e_dynamic_request_count" => {
            let records = n(o, 30, 300);
            let s = engine(json!({
                "name": "e2e_dynamic_request_count", "records": records, "seed": seed,
                "buffer_size": 50, "max_concurrent_row_groups": 3,
                "providers": [{"name": "sim", "kind": "simulated", "models": [
                    sim_model("m1", 16, json!({"dist": "fixed", "value": 30}))
                ]}],
                "models": [{"alias": "w", "provider": "sim", "model_id": "m1", "max_parallel_requests": 16}],
                "columns": [
                    {"name": "n", "kind": "sampler", "sampler": {"type": "uniform_int", "low": 0, "high": 9}},
                    {"name": "extra", "kind": "custom", "model": "w", "prompt": "more {{ n }}", "calls": {"min": 0, "max": 3}}
                ]
            }))?;
            (
                1,
                suite::E2E,
                "custom generator making 0–3 model calls per row (data-dependent)",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "e2e_cross_provider_cooldown" => {
            let records = n(o, 40, 200);
            let mut s = engine(json!({
                "name": "e2e_cross_provider_cooldown", "records": records, "seed": seed,
                "buffer_size": records, "max_concurrent_row_groups": 1,
                "providers": [
                    {"name": "prov-a", "kind": "simulated", "models": [
                        {"model_id": "ma", "capacity": 4, "latency_ms": {"dist": "fixed", "value": 20}, "retry_after_s": 0.3}
                    ]},
                    {"name": "prov-b", "kind": "simulated", "models": [
                        sim_model("mb", 16, json!({"dist": "fixed", "value": 30}))
                    ]}
                ],
                "models": [
                    {"alias": "a", "provider": "prov-a", "model_id": "ma", "max_parallel_requests": 16},
                    {"alias": "b", "provider": "prov-b", "model_id": "mb", "max_parallel_requests": 16}
                ],
                "columns": [
                    {"name": "ca", "kind": "llm_text", "model": "a", "prompt": "a"},
                    {"name": "cb", "kind": "llm_text", "model": "b", "prompt": "b"}
                ]
            }))?;
            // Provider A's hidden capacity (4) is below its declared cap (16): 429 storms and
            // cooldowns. Retries are generous so no row is dropped (the output stays a pure
            // function of the seed).
            s.max_retries = 50;
            s.cooldown = Some(("ca".into(), "cb".into()));
            s.gate_ready_idle = false;
            (
                1,
                suite::E2E,
                "provider A rate-limited / cooling down while provider B has ready independent work",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "request_dynamic_calls" => {
            let records = n(o, 30, 300);
            let s = engine(json!({
                "name": "request_dynamic_calls", "records": records, "seed": seed,
                "buffer_size": 50, "max_concurrent_row_groups": 3,
                "providers": [{"name": "sim", "kind": "simulated", "models": [
                    sim_model("m1", 16, json!({"dist": "fixed", "value": 10}))
                ]}],
                "models": [{"alias": "w", "provider": "sim", "model_id": "m1", "max_parallel_requests": 16}],
                "columns": [
                    {"name": "n", "kind": "sampler", "sampler": {"type": "uniform_int", "low": 0, "high": 9}},
                    {"name": "zero", "kind": "custom", "model": "w", "prompt": "z {{ n }}", "calls": {"min": 0, "max": 0}},
                    {"name": "one", "kind": "custom", "model": "w", "prompt": "o {{ n }}", "calls": {"min": 1, "max": 1}},
                    {"name": "many", "kind": "custom", "model": "w", "prompt": "m {{ one }}", "calls": {"min": 2, "max": 6}},
                    {"name": "branch", "kind": "custom", "model": "w", "prompt": "b {{ n }} {{ zero }}", "calls": {"min": 0, "max": 3}}
                ]
            }))?;
            (
                1,
                suite::PROOF,
                "custom generators with zero, one, many and branch-dependent calls per task",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        "engine_v2_chain" => {
            let records = n(o, 24, 240);
            let mut s = engine(json!({
                "name": "engine_v2_chain", "records": records, "seed": seed,
                "buffer_size": 40, "max_concurrent_row_groups": 8,
                "providers": [{"name": "sim", "kind": "simulated", "models": [
                    sim_model("alpha-m", 16, json!({"dist": "beta", "alpha": 2, "beta": 5, "scale": 140})),
                    sim_model("beta-m", 3, json!({"dist": "beta", "alpha": 2, "beta": 2, "scale": 60})),
                    sim_model("gamma-m", 8, json!({"dist": "beta", "alpha": 2, "beta": 3, "scale": 87.5}))
                ]}],
                "models": [
                    {"alias": "alpha", "provider": "sim", "model_id": "alpha-m", "max_parallel_requests": 16},
                    {"alias": "beta", "provider": "sim", "model_id": "beta-m", "max_parallel_requests": 3},
                    {"alias": "gamma", "provider": "sim", "model_id": "gamma-m", "max_parallel_requests": 8}
                ],
                "columns": [
                    {"name": "subject", "kind": "sampler", "sampler": {"type": "category", "values": ["math", "code", "prose", "law"]}},
                    {"name": "question", "kind": "llm_text", "model": "alpha", "prompt": "Ask about {{ subject }}"},
                    {"name": "answers", "kind": "custom", "model": "beta", "prompt": "Answer {{ question }}", "calls": {"min": 2, "max": 2}},
                    {"name": "critique", "kind": "llm_text", "model": "gamma", "prompt": "Critique {{ answers }}"},
                    {"name": "valid", "kind": "validator", "columns": ["question", "answers", "critique"]}
                ]
            }))?;
            s.wall_over_bound_max = Some(1.05);
            (
                1,
                suite::PROOF,
                "sampler → α (cap 16) → β ×2 calls (cap 3) → γ (cap 8) → validator; beta latencies",
                ScenarioBody::Engine(Box::new(s)),
            )
        }
        other => {
            return Err(format!(
                "unknown scenario {other:?}; known: {}",
                SCENARIO_IDS.join(", ")
            ))
        }
    };
    let id = SCENARIO_IDS
        .iter()
        .chain(OPT_IN_SCENARIO_IDS.iter())
        .copied()
        .find(|x| *x == id)
        .ok_or_else(|| format!("unknown scenario {id:?}"))?;
    Ok(Scenario {
        id,
        version,
        suite,
        description,
        body,
    })
}

/// Resolves `--scenario` (`all`, one id, or a comma-separated list).
pub fn select(arg: &str) -> Result<Vec<&'static str>, String> {
    if arg == "all" {
        return Ok(SCENARIO_IDS.to_vec());
    }
    arg.split(',')
        .map(|s| {
            SCENARIO_IDS
                .iter()
                .chain(OPT_IN_SCENARIO_IDS.iter())
                .copied()
                .find(|x| *x == s.trim())
                .ok_or_else(|| {
                    format!(
                        "unknown scenario {s:?}; known: all, {}",
                        SCENARIO_IDS.join(", ")
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_builds_at_both_sizes() {
        for smoke in [true, false] {
            let o = SizeOptions {
                smoke,
                records: None,
                seed: 1,
            };
            for id in SCENARIO_IDS {
                let s = build(id, &o).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(s.id, id);
            }
        }
        assert!(select("nope").is_err());
        assert_eq!(select("shared"), Ok(vec!["shared"]));
        assert_eq!(select("coordinated"), Ok(vec!["coordinated"]));
        assert!(!select("all").unwrap_or_default().contains(&"coordinated"));
        assert!(!select("all").unwrap_or_default().contains(&"shared"));
        assert_eq!(select("all").map(|v| v.len()), Ok(SCENARIO_IDS.len()));
    }
}
