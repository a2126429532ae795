//! `Summary`: the run's headline numbers, saved as `summary.json` (its keys are a contract).

use crate::failures::FailureGroup;
use crate::lower_bound::LowerBound;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Task outcome counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    /// Tasks that completed (`task_completed`).
    pub completed: u64,
    /// Tasks that failed non-retryably and dropped their rows (`non_retryable_dropped`).
    pub failed: u64,
    /// Retryable failures deferred for retry (`retry_deferred`).
    pub retried: u64,
}

/// Provider request attempt counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Provider calls started (`model_request_started`).
    pub attempts: u64,
    /// Calls that succeeded.
    pub succeeded: u64,
    /// Calls rate-limited by the provider (`request_rate_limited`).
    pub rate_limited: u64,
    /// Calls that failed otherwise (5xx, 4xx, malformed, unexpected).
    pub failed: u64,
    /// Calls that timed out (provider or local timeout).
    pub timeouts: u64,
    /// Calls cancelled locally.
    pub cancelled: u64,
}

impl TaskCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &TaskCounts) {
        self.completed += other.completed;
        self.failed += other.failed;
        self.retried += other.retried;
    }
}

impl RequestCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &RequestCounts) {
        self.attempts += other.attempts;
        self.succeeded += other.succeeded;
        self.rate_limited += other.rate_limited;
        self.failed += other.failed;
        self.timeouts += other.timeouts;
        self.cancelled += other.cancelled;
    }
}

/// Figures of the earlier sessions of a resumed run, carried in `checkpoint.json` so the final
/// summary covers the whole dataset, not only the last session. Rewritten with every
/// checkpoint (not only at a clean exit), so the counts survive `kill -9`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CarriedTotals {
    /// Wall seconds spent so far.
    pub wall_seconds: f64,
    /// Task counts so far.
    pub tasks: TaskCounts,
    /// Request counts so far.
    pub requests: RequestCounts,
    /// Failure groups so far.
    #[serde(default)]
    pub failures: Vec<FailureGroup>,
}

impl CarriedTotals {
    /// The summary's cumulative figures after adding these earlier sessions to it (rows
    /// written and dropped come from the dataset itself, which is already cumulative).
    pub fn apply_to(&self, s: &mut Summary) {
        s.wall_seconds += self.wall_seconds;
        s.tasks.add(&self.tasks);
        s.requests.add(&self.requests);
        let mut failures = self.failures.clone();
        crate::failures::merge(&mut failures, &s.failures);
        s.failures = failures;
    }

    /// These totals plus one session's figures so far.
    pub fn plus(&self, wall_seconds: f64, tasks: &TaskCounts, requests: &RequestCounts) -> Self {
        let mut t = self.clone();
        t.wall_seconds += wall_seconds;
        t.tasks.add(tasks);
        t.requests.add(requests);
        t
    }

    /// The totals a summary (already cumulative) carries into the next session.
    pub fn from_summary(s: &Summary) -> Self {
        Self {
            wall_seconds: s.wall_seconds,
            tasks: s.tasks,
            requests: s.requests,
            failures: s.failures.clone(),
        }
    }
}

/// Task-admission ledger at the end of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalTaskSnapshot {
    /// Task leases still held (0 after a clean run).
    pub active_leases: u64,
    /// Tasks still queued.
    pub queued: u64,
}

/// Request-admission ledger at the end of the run (summed over resources).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRequestSnapshot {
    /// Request leases still held.
    pub active_leases: u64,
    /// Queued request waiters.
    pub waiters: u64,
    /// Requests in flight.
    pub in_flight: u64,
}

/// One model alias's request statistics (aliases of one endpoint share the endpoint's numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The endpoint's first declared alias.
    pub alias: String,
    /// Every alias that routes to this endpoint, in declaration order (one row per endpoint,
    /// so calls are never counted once per alias).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Provider name.
    pub provider: String,
    /// Model endpoint id.
    pub model_id: String,
    /// Provider calls started against the endpoint.
    pub attempts: u64,
    /// Of which rate-limited.
    pub rate_limited: u64,
    /// Most requests in flight at once.
    pub max_in_flight: u32,
    /// Adaptive limit at the end of the run (`None`: never observed).
    pub final_limit: Option<u32>,
    /// Static cap (min `max_parallel_requests` over the endpoint's aliases).
    pub static_cap: u32,
}

/// Where task time went, in task-seconds (each task's life split into layers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerAttribution {
    /// Row group admitted → the task's dependencies ready.
    pub dependency_wait: f64,
    /// Ready → selected by the fair queue.
    pub ready_queue_wait: f64,
    /// Selected → task lease acquired.
    pub task_admission_wait: f64,
    /// Waiting for a request lease (no cooldown in effect).
    pub request_admission_wait: f64,
    /// Waiting for a request lease while the resource was cooling down after a rate limit.
    pub cooldown: f64,
    /// Provider call in flight.
    pub provider_execution: f64,
    /// The worker's own code outside model calls: local generators, templates, parsing.
    #[serde(default)]
    pub worker_code: f64,
    /// Waiting out a retry's backoff before the task was re-queued.
    #[serde(default)]
    pub retry_backoff: f64,
    /// Waiting for a request/token budget slot (rate-limit pacing) before asking for a request
    /// lease. No event marks it, so the collector first counts it as worker code; the run moves
    /// the budget ledger's measured waits here ([`Summary::attribute_budget_waits`]).
    #[serde(default)]
    pub budget_wait: f64,
}

impl LayerAttribution {
    /// The layers as (key, task-seconds), in display order (`budget_wait` last: the first
    /// eight are the ones the collector follows over time).
    pub fn entries(&self) -> [(&'static str, f64); 9] {
        [
            ("dependency_wait", self.dependency_wait),
            ("ready_queue_wait", self.ready_queue_wait),
            ("task_admission_wait", self.task_admission_wait),
            ("request_admission_wait", self.request_admission_wait),
            ("cooldown", self.cooldown),
            ("provider_execution", self.provider_execution),
            ("worker_code", self.worker_code),
            ("retry_backoff", self.retry_backoff),
            ("budget_wait", self.budget_wait),
        ]
    }

    /// Sum over layers.
    pub fn total(&self) -> f64 {
        self.entries().iter().map(|(_, v)| v).sum()
    }
}

/// Task-seconds one request resource (provider/model/domain) accounts for, by request layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceLayerSeconds {
    /// Waiting for a request lease (no cooldown).
    pub request_admission_wait: f64,
    /// Waiting while the resource cooled down after a rate limit.
    pub cooldown: f64,
    /// Provider calls in flight.
    pub provider_execution: f64,
    /// Waiting for a budget slot of the resource's endpoint.
    #[serde(default)]
    pub budget_wait: f64,
}

impl ResourceLayerSeconds {
    /// Seconds of `layer` (one of this struct's keys; 0 for any other layer).
    pub fn of(&self, layer: &str) -> f64 {
        match layer {
            "request_admission_wait" => self.request_admission_wait,
            "cooldown" => self.cooldown,
            "provider_execution" => self.provider_execution,
            "budget_wait" => self.budget_wait,
            _ => 0.0,
        }
    }
}

/// What a layer key means, for the verdict sentence.
pub fn layer_phrase(layer: &str) -> &'static str {
    match layer {
        "dependency_wait" => "waiting for upstream columns",
        "ready_queue_wait" => "ready but queued for a task slot",
        "task_admission_wait" => "in task admission",
        "request_admission_wait" => "waiting for a request lease",
        "cooldown" => "waiting out rate-limit cooldowns",
        "provider_execution" => "in provider calls",
        "worker_code" => "in local worker code",
        "budget_wait" => "paced by request/token budgets (rate limits)",
        _ => "in retry backoff",
    }
}

/// One sentence naming the bottleneck: the largest layer other than dependency wait (waiting
/// for upstream columns is a consequence of the bottleneck, not a cause), its share of the
/// task time outside dependency wait, and for a request layer the resource that accounts for
/// most of it.
pub fn verdict(
    layers: &LayerAttribution,
    by_resource: &BTreeMap<String, ResourceLayerSeconds>,
) -> Option<String> {
    let active = layers.total() - layers.dependency_wait;
    if active <= 0.0 || !active.is_finite() {
        return None;
    }
    let (layer, seconds) = layers
        .entries()
        .into_iter()
        .filter(|(k, _)| *k != "dependency_wait")
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let mut sentence = format!(
        "Bottleneck: tasks were {} for {:.0} % of their time outside dependency waits",
        layer_phrase(layer),
        seconds / active * 100.0
    );
    let top = by_resource
        .iter()
        .map(|(label, r)| (label, r.of(layer)))
        .filter(|(_, s)| *s > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((label, s)) = top {
        sentence.push_str(&format!(
            ", most of it on {label} ({:.0} %)",
            s / active * 100.0
        ));
    }
    sentence.push('.');
    Some(sentence)
}

/// The run's headline numbers (`summary.json`). Keys are a contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Records the workflow asked for.
    pub records_requested: u64,
    /// Records written to `dataset.jsonl`.
    pub records_written: u64,
    /// Rows dropped (non-retryable failures, validators) in the row groups that were finished
    /// and written; counted from the dataset itself (group size − rows written).
    pub rows_dropped: u64,
    /// Requested rows neither written nor dropped: their row groups never finished because the
    /// run stopped (early shutdown, configuration error, interrupt). Their failed cells are in
    /// `tasks.failed` and `failures`.
    #[serde(default)]
    pub rows_unfinished: u64,
    /// Why the run stopped before its end, when it did (`None` for a run that finished).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Failed cells per column × model × cause, with the first sanitized provider message.
    #[serde(default)]
    pub failures: Vec<FailureGroup>,
    /// Wall-clock seconds of the run.
    pub wall_seconds: f64,
    /// Task outcome counts.
    pub tasks: TaskCounts,
    /// Provider request counts.
    pub requests: RequestCounts,
    /// Task-admission ledger at the end.
    pub final_task_snapshot: FinalTaskSnapshot,
    /// Request-admission ledger at the end.
    pub final_request_snapshot: FinalRequestSnapshot,
    /// Workers that waited for a scheduler resource after spawn (must be 0).
    pub hidden_scheduler_resource_waiters: u64,
    /// Per model alias.
    pub per_model: Vec<ModelSummary>,
    /// Lower bound on wall seconds (`lower_bound.seconds`): max over endpoints of the
    /// simulated bound, or for HTTP endpoints of the known budgets' and the static cap's
    /// terms; `None` when unknown.
    pub lower_bound_seconds: Option<f64>,
    /// What the lower bound rests on: the binding limit (configured or learned), every
    /// endpoint's terms, or why it is unknown.
    #[serde(default)]
    pub lower_bound: LowerBound,
    /// Task-seconds per layer.
    pub layer_attribution: LayerAttribution,
    /// Request-layer task-seconds per request resource (`provider/model/domain`).
    #[serde(default)]
    pub layer_attribution_by_resource: BTreeMap<String, ResourceLayerSeconds>,
    /// One sentence naming the bottleneck layer (and resource) with its share of task time.
    #[serde(default)]
    pub verdict: Option<String>,
    /// Shared row groups (`--coordinator`): what each worker did, by worker name (absent for a
    /// single-process run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workers: BTreeMap<String, WorkerSummary>,
    /// The shared-limits backend at the end (`weir run --shared-limits`): mode, fallback,
    /// learned cap, Redis round trips per request, losses and recoveries. Absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_limits: Option<weir_contracts::SharedLimitsSnapshot>,
}

/// One worker of a shared job (`summary.json` `workers.NAME`), over all its sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerSummary {
    /// Row groups whose part this worker wrote first.
    pub row_groups_completed: u64,
    /// Records in those row groups.
    pub records_written: u64,
    /// Row groups it generated although their part was already there (a lost claim: its
    /// lease was taken over, or Redis came back empty); their rows are not duplicated.
    pub row_groups_duplicated: u64,
    /// Row groups it took over from another worker's expired or released lease.
    pub row_groups_taken_over: u64,
    /// Sessions (processes) of this worker.
    pub sessions: u64,
    /// Wall seconds of its sessions.
    pub wall_seconds: f64,
    /// Times the coordinator became unreachable during its sessions.
    pub coordinator_outages: u64,
    /// Seconds it spent without the coordinator.
    pub coordinator_outage_seconds: f64,
    /// Task counts of its sessions.
    pub tasks: TaskCounts,
    /// Request counts of its sessions.
    pub requests: RequestCounts,
}

impl Summary {
    /// An all-zero summary for `records_requested` records (fill the rest from the run).
    pub fn new(records_requested: u64) -> Self {
        Self {
            records_requested,
            ..Self::default()
        }
    }

    /// Moves budget waits (per request resource label, task-seconds) out of `worker_code`,
    /// where the collector had to count them, into `budget_wait`, and re-derives the verdict.
    /// Never moves more than the worker code there was.
    pub fn attribute_budget_waits(&mut self, waits: &[(String, f64)]) {
        let mut left = self.layer_attribution.worker_code;
        for (label, seconds) in waits {
            let moved = seconds.max(0.0).min(left);
            if moved <= 0.0 {
                continue;
            }
            left -= moved;
            self.layer_attribution.budget_wait += moved;
            self.layer_attribution_by_resource
                .entry(label.clone())
                .or_default()
                .budget_wait += moved;
        }
        self.layer_attribution.worker_code = left;
        self.verdict = verdict(&self.layer_attribution, &self.layer_attribution_by_resource);
    }

    /// Sets `lower_bound` and its `lower_bound_seconds`.
    pub fn set_lower_bound(&mut self, bound: LowerBound) {
        self.lower_bound_seconds = bound.seconds;
        self.lower_bound = bound;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_names_the_largest_active_layer_and_its_resource() {
        let layers = LayerAttribution {
            dependency_wait: 100.0,
            request_admission_wait: 30.0,
            provider_execution: 10.0,
            worker_code: 10.0,
            ..LayerAttribution::default()
        };
        let mut by = BTreeMap::new();
        by.insert(
            "sim/judge/chat".to_owned(),
            ResourceLayerSeconds {
                request_admission_wait: 20.0,
                ..ResourceLayerSeconds::default()
            },
        );
        by.insert(
            "sim/writer/chat".to_owned(),
            ResourceLayerSeconds {
                request_admission_wait: 10.0,
                provider_execution: 10.0,
                ..ResourceLayerSeconds::default()
            },
        );
        assert_eq!(
            verdict(&layers, &by).as_deref(),
            Some("Bottleneck: tasks were waiting for a request lease for 60 % of their time outside dependency waits, most of it on sim/judge/chat (40 %).")
        );
        assert_eq!(verdict(&LayerAttribution::default(), &by), None);
    }
}
