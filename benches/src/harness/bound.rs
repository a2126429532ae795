//! The physical lower bound of an engine run: the bottleneck endpoint and the critical path.
//!
//! * Bottleneck, planned: `max over endpoints of calls × mean latency / min(capacity, static cap)`
//!   with the run's latency-consuming calls (succeeded + failed + timed out) and the configured
//!   mean (weir-cli's `BuiltWorkflow::lower_bound_seconds`).
//! * Bottleneck, realized: the same with the measured `model_request_started →
//!   model_request_completed` durations summed per endpoint (removes sampling noise of the
//!   latency distribution and timer overshoot, which no scheduler can avoid).
//! * Critical path: the longest dependency chain of one row, each model column costing
//!   `min calls per row × mean latency` (sequential calls).
//!
//! `bound = max(bottleneck, critical path)`; `wall_over_bound` uses the realized bottleneck and
//! `wall_over_planned_bound` the planned one.

use super::run::EngineRun;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use weir_cli::spec::ColumnKind;
use weir_contracts::{RequestAttemptId, RequestEventKind};

/// Per-endpoint inputs and bounds.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointBound {
    /// Latency-consuming calls (succeeded + failed + timeouts).
    pub calls: u64,
    /// All outbound attempts (including fast 429s).
    pub attempts: u64,
    /// `min(hidden capacity, static cap)`.
    pub parallel: u32,
    /// Configured mean latency (ms).
    pub mean_latency_ms: f64,
    /// Measured mean duration of completed attempts (ms).
    pub realized_mean_ms: f64,
    /// `calls × mean / parallel` (s).
    pub planned_seconds: f64,
    /// `Σ measured durations / parallel` (s).
    pub realized_seconds: f64,
}

/// The run's lower bound.
#[derive(Debug, Clone, Serialize)]
pub struct LowerBound {
    /// Endpoint `provider/model` → bound.
    pub endpoints: BTreeMap<String, EndpointBound>,
    /// The endpoint with the largest realized bound.
    pub bottleneck_endpoint: Option<String>,
    /// Largest planned endpoint bound (s).
    pub bottleneck_planned_seconds: f64,
    /// Largest realized endpoint bound (s).
    pub bottleneck_realized_seconds: f64,
    /// Critical path of one row (s).
    pub critical_path_seconds: f64,
    /// `max(bottleneck realized, critical path)`.
    pub bound_seconds: f64,
    /// `max(bottleneck planned, critical path)`.
    pub planned_bound_seconds: f64,
}

/// Computes the lower bound of `run`.
pub fn lower_bound(run: &EngineRun) -> LowerBound {
    let built = &run.built.built;
    // Measured durations per endpoint.
    let mut started: HashMap<RequestAttemptId, (String, f64)> = HashMap::new();
    let mut realized: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for e in run.view.request_events() {
        let (Some(id), Some(key)) = (e.request_attempt_id, &e.request_resource_key) else {
            continue;
        };
        match e.event_kind() {
            RequestEventKind::ModelRequestStarted => {
                let name = format!("{}/{}", key.provider_name, key.model_id);
                started.insert(id, (name, e.captured_at_monotonic));
            }
            RequestEventKind::ModelRequestCompleted => {
                if let Some((name, t0)) = started.remove(&id) {
                    let slot = realized.entry(name).or_default();
                    slot.0 += (e.captured_at_monotonic - t0).max(0.0);
                    slot.1 += 1;
                }
            }
            _ => {}
        }
    }
    let mut endpoints = BTreeMap::new();
    for ep in &run.result.endpoints {
        let key = (
            ep.endpoint.provider_name.to_string(),
            ep.endpoint.model_id.to_string(),
        );
        let name = format!("{}/{}", key.0, key.1);
        let Some(sim) = built.endpoints.get(&key) else {
            continue;
        };
        let parallel = sim
            .static_cap
            .map_or(sim.config.capacity, |c| c.min(sim.config.capacity))
            .max(1);
        let calls = ep.attempts.succeeded + ep.attempts.failed + ep.attempts.timeouts;
        let planned = sim.config.lower_bound_seconds(calls, sim.static_cap);
        let (sum, n) = realized.get(&name).copied().unwrap_or((0.0, 0));
        endpoints.insert(
            name,
            EndpointBound {
                calls,
                attempts: ep.attempts.attempts,
                parallel,
                mean_latency_ms: sim.config.latency_ms.mean_ms(),
                realized_mean_ms: if n > 0 { sum * 1000.0 / n as f64 } else { 0.0 },
                planned_seconds: planned,
                realized_seconds: sum / f64::from(parallel),
            },
        );
    }
    let bottleneck_endpoint = endpoints
        .iter()
        .max_by(|a, b| a.1.realized_seconds.total_cmp(&b.1.realized_seconds))
        .map(|(k, _)| k.clone());
    let bottleneck_planned_seconds = endpoints
        .values()
        .map(|e| e.planned_seconds)
        .fold(0.0, f64::max);
    let bottleneck_realized_seconds = endpoints
        .values()
        .map(|e| e.realized_seconds)
        .fold(0.0, f64::max);
    let critical_path_seconds = critical_path(run);
    LowerBound {
        bottleneck_endpoint,
        bottleneck_planned_seconds,
        bottleneck_realized_seconds,
        critical_path_seconds,
        bound_seconds: bottleneck_realized_seconds.max(critical_path_seconds),
        planned_bound_seconds: bottleneck_planned_seconds.max(critical_path_seconds),
        endpoints,
    }
}

/// Longest chain of per-row column costs (s).
fn critical_path(run: &EngineRun) -> f64 {
    let built = &run.built.built;
    let wf = &run.built.workflow;
    let spec = &built_spec_columns(run);
    let mut cost: HashMap<&str, f64> = HashMap::new();
    for col in &wf.columns {
        let def = spec.get(col.name.as_str());
        let calls = match def {
            Some((kind, min_calls)) if kind.uses_model() => *min_calls,
            _ => 0,
        };
        let mean = col
            .generator
            .model_aliases()
            .first()
            .and_then(|alias| wf.models.iter().find(|m| &m.alias == alias))
            .and_then(|m| {
                built
                    .endpoints
                    .get(&(m.provider.clone(), m.model_id.clone()))
            })
            .map_or(0.0, |ep| ep.config.mean_latency_seconds());
        cost.insert(col.name.as_str(), f64::from(calls) * mean);
    }
    // Longest path by relaxation in declaration order, repeated until stable (graphs are tiny).
    let mut finish: HashMap<&str, f64> = HashMap::new();
    for _ in 0..wf.columns.len().max(1) {
        let mut changed = false;
        for col in &wf.columns {
            let start = col
                .dependencies()
                .iter()
                .map(|d| finish.get(d.as_str()).copied().unwrap_or(0.0))
                .fold(0.0, f64::max);
            let end = start + cost.get(col.name.as_str()).copied().unwrap_or(0.0);
            if finish.get(col.name.as_str()).copied() != Some(end) {
                finish.insert(col.name.as_str(), end);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    finish.values().copied().fold(0.0, f64::max)
}

/// Column name → (kind, fewest calls per row) from the scenario's spec.
fn built_spec_columns(run: &EngineRun) -> HashMap<String, (ColumnKind, u32)> {
    run.spec_columns
        .iter()
        .map(|c| {
            let min_calls = match c.kind {
                ColumnKind::Custom => c.calls.map_or(1, |x| x.min),
                k if k.uses_model() => 1,
                _ => 0,
            };
            (c.name.clone(), (c.kind, min_calls))
        })
        .collect()
}
