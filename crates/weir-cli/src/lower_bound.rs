//! The run's lower bound on wall time, and what it rests on (`summary.json`'s `lower_bound`).
//!
//! Per endpoint with successful calls:
//! * **simulated**: the simulated provider's own capacity, latency and rate limits
//!   (`SimulatedModelConfig::lower_bound_seconds`), and any budget below;
//! * **HTTP**: from what the run ended up knowing — each per-minute budget with a limit in
//!   effect (configured in `rate_limits` or learned from `x-ratelimit-*` headers; the runtime's
//!   [`KnownLimit`]) gives `max(0, units − burst) / (limit / 60)` (a bucket that starts full lets
//!   `burst` through at once, so plain `units / rate` could be beaten by a real run), and the
//!   static cap gives `calls × measured mean latency / cap` (never more than `cap` in flight).
//!   With no budget known the endpoint's bound is unknown: the static cap alone says only how
//!   fast the endpoint could go if it served `cap` calls at once, which nothing measured.
//!
//! The run's bound is the max over the endpoints whose bound is known; the binding term names the
//! endpoint, the limit and whether it was configured or learned.

use crate::report::TimeSeries;
use crate::spec::BuiltWorkflow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_runtime::engine::{KnownLimit, LimitSource, LimitWindow};

/// Which limit a bound term comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundLimit {
    /// The simulated endpoint's capacity, latency and rate limits.
    Simulated,
    /// Requests per minute.
    RequestsPerMinute,
    /// Tokens per minute.
    TokensPerMinute,
    /// Input tokens per minute.
    InputTokensPerMinute,
    /// Output tokens per minute.
    OutputTokensPerMinute,
    /// The static concurrency cap (`max_parallel_requests`) × measured mean latency.
    StaticCap,
}

impl BoundLimit {
    fn of(window: LimitWindow) -> Self {
        match window {
            LimitWindow::Requests => Self::RequestsPerMinute,
            LimitWindow::Tokens => Self::TokensPerMinute,
            LimitWindow::InputTokens => Self::InputTokensPerMinute,
            LimitWindow::OutputTokens => Self::OutputTokensPerMinute,
        }
    }
}

/// Where a bound term's limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundSource {
    /// The simulated provider's config.
    Simulated,
    /// The spec (`rate_limits`, `max_parallel_requests`).
    Configured,
    /// The provider's response headers.
    Learned,
}

/// One term of an endpoint's bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundTerm {
    /// `provider/model_id`.
    pub endpoint: String,
    /// Seconds this term alone requires.
    pub seconds: f64,
    /// Which limit.
    pub limit: BoundLimit,
    /// Where the limit came from.
    pub source: BoundSource,
    /// The limit's value: per minute for a budget, the cap for `static_cap`, 0 for `simulated`.
    pub limit_value: f64,
    /// Units it divides: successful calls, or tokens used for a token budget.
    pub units: u64,
    /// Units a full bucket lets through at once (budgets only, else 0).
    #[serde(default)]
    pub burst_units: u64,
    /// Measured mean latency of successful calls, ms (`static_cap` only, else 0).
    #[serde(default)]
    pub mean_latency_ms: f64,
}

/// One endpoint's bound (or why it is unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointBound {
    /// `provider/model_id`.
    pub endpoint: String,
    /// Successful calls.
    pub calls: u64,
    /// Every term computed (empty when unknown).
    pub terms: Vec<BoundTerm>,
    /// Why the bound is unknown (`None` when known).
    pub unknown_reason: Option<String>,
}

impl EndpointBound {
    /// The largest term (`None`: unknown).
    pub fn binding(&self) -> Option<&BoundTerm> {
        if self.unknown_reason.is_some() {
            return None;
        }
        self.terms
            .iter()
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
    }
}

/// The run's lower bound with its reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LowerBound {
    /// Seconds (`None`: unknown for every endpoint, or no calls were seen).
    pub seconds: Option<f64>,
    /// The term that gives it.
    pub binding: Option<BoundTerm>,
    /// Per endpoint with calls, in endpoint order.
    pub endpoints: Vec<EndpointBound>,
    /// One sentence for the report: which limit gives the bound and where it came from, or
    /// why it is unknown.
    pub explanation: String,
}

/// Successful calls and summed latency (seconds) per (provider, model_id), over domains.
fn calls_by_endpoint(series: &TimeSeries) -> BTreeMap<(String, String), (u64, f64)> {
    let mut out: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for m in &series.models {
        let slot = out
            .entry((m.provider.clone(), m.model_id.clone()))
            .or_default();
        slot.0 += m.succeeded;
        if let Some(l) = m.latency_ms {
            slot.1 += l.mean * l.count as f64 / 1000.0;
        }
    }
    out
}

/// The lower bound of a run of `built`, from the collector's series and the budgets the run
/// knew at its end (`RunResult::known_limits`; empty when the run produced no result).
pub fn lower_bound(
    built: &BuiltWorkflow,
    series: &TimeSeries,
    limits: &[KnownLimit],
) -> LowerBound {
    let mut endpoints = Vec::new();
    for ((provider, model_id), (calls, latency_s)) in calls_by_endpoint(series) {
        if calls == 0 {
            continue;
        }
        let name = format!("{provider}/{model_id}");
        let key = (provider, model_id);
        let mut ep = EndpointBound {
            endpoint: name.clone(),
            calls,
            terms: Vec::new(),
            unknown_reason: None,
        };
        let simulated = built.endpoints.get(&key);
        if let Some(sim) = simulated {
            ep.terms.push(BoundTerm {
                endpoint: name.clone(),
                seconds: sim.config.lower_bound_seconds(calls, sim.static_cap),
                limit: BoundLimit::Simulated,
                source: BoundSource::Simulated,
                limit_value: 0.0,
                units: calls,
                burst_units: 0,
                mean_latency_ms: 0.0,
            });
        }
        // Budgets pace simulated endpoints too (an alias's `rate_limits`).
        for l in limits.iter().filter(|l| {
            l.endpoint.provider_name.as_ref() == key.0 && l.endpoint.model_id.as_ref() == key.1
        }) {
            let units = match l.window {
                LimitWindow::Requests => calls,
                _ => l.used_units,
            };
            let per_second = l.per_minute as f64 / 60.0;
            ep.terms.push(BoundTerm {
                endpoint: name.clone(),
                seconds: units.saturating_sub(l.burst_units) as f64 / per_second,
                limit: BoundLimit::of(l.window),
                source: match l.source {
                    LimitSource::Configured => BoundSource::Configured,
                    LimitSource::Learned => BoundSource::Learned,
                },
                limit_value: l.per_minute as f64,
                units,
                burst_units: l.burst_units,
                mean_latency_ms: 0.0,
            });
        }
        if simulated.is_some() {
            // The simulated term already covers concurrency (min of capacity and cap).
            endpoints.push(ep);
            continue;
        }
        let cap = built
            .models
            .iter()
            .filter(|m| m.provider == key.0 && m.model_id == key.1)
            .map(|m| m.cap())
            .min();
        let cap_term = cap.filter(|_| latency_s > 0.0).map(|cap| BoundTerm {
            endpoint: name.clone(),
            seconds: latency_s / f64::from(cap),
            limit: BoundLimit::StaticCap,
            source: BoundSource::Configured,
            limit_value: f64::from(cap),
            units: calls,
            burst_units: 0,
            mean_latency_ms: latency_s * 1000.0 / calls as f64,
        });
        if ep.terms.is_empty() {
            let alone = cap_term.as_ref().map_or(String::new(), |t| {
                format!(
                    "; its static cap of {} alone would allow {}",
                    t.limit_value,
                    seconds_text(t.seconds)
                )
            });
            ep.unknown_reason = Some(format!(
                "no request or token limit is known for {name} (none configured in rate_limits, \
                 no x-ratelimit-* headers seen){alone}"
            ));
        } else if let Some(t) = cap_term {
            ep.terms.push(t);
        }
        endpoints.push(ep);
    }
    let binding = endpoints
        .iter()
        .filter_map(EndpointBound::binding)
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .cloned();
    let unknown: Vec<&str> = endpoints
        .iter()
        .filter_map(|e| e.unknown_reason.as_deref())
        .collect();
    if built.models.is_empty() {
        return LowerBound {
            seconds: Some(0.0),
            explanation: "The workflow calls no model: no endpoint bounds the run.".to_owned(),
            ..LowerBound::default()
        };
    }
    let explanation = match &binding {
        None if endpoints.is_empty() => "Unknown: no successful provider call was seen.".to_owned(),
        None => format!("Unknown: {}.", unknown.join("; ")),
        Some(t) => {
            let mut s = format!("At least {}: {}", seconds_text(t.seconds), term_text(t));
            if !unknown.is_empty() {
                s.push_str(&format!(" (not counted: {})", unknown.join("; ")));
            }
            s.push('.');
            s
        }
    };
    LowerBound {
        seconds: binding.as_ref().map(|t| t.seconds),
        binding,
        endpoints,
        explanation,
    }
}

fn seconds_text(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.2} s")
    }
}

/// What a term says, as a clause.
fn term_text(t: &BoundTerm) -> String {
    let source = match t.source {
        BoundSource::Configured => "configured in rate_limits",
        BoundSource::Learned => "learned from the provider's x-ratelimit-* headers",
        BoundSource::Simulated => "simulated",
    };
    let window = |units: &str, field: &str| {
        format!(
            "{} {units} on {} under {field} = {} ({source}), after a burst of {}",
            t.units, t.endpoint, t.limit_value, t.burst_units
        )
    };
    match t.limit {
        BoundLimit::Simulated => format!(
            "{} calls on {} at its simulated capacity, latency and rate limits",
            t.units, t.endpoint
        ),
        BoundLimit::RequestsPerMinute => window("successful calls", "requests_per_minute"),
        BoundLimit::TokensPerMinute => window("tokens", "tokens_per_minute"),
        BoundLimit::InputTokensPerMinute => window("input tokens", "input_tokens_per_minute"),
        BoundLimit::OutputTokensPerMinute => window("output tokens", "output_tokens_per_minute"),
        BoundLimit::StaticCap => format!(
            "{} calls on {} × {:.0} ms mean latency over its static cap of {} \
             (max_parallel_requests; the known rate limits allow less time)",
            t.units, t.endpoint, t.mean_latency_ms, t.limit_value
        ),
    }
}

/// Budget waits per request resource label (task-seconds): per endpoint the longest of its
/// windows' total waits (a reservation waiting on two windows is counted in both, so the sum
/// would overstate it), given to the endpoint's resource with the most successful calls.
pub fn budget_waits(series: &TimeSeries, limits: &[KnownLimit]) -> Vec<(String, f64)> {
    let mut by_endpoint: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for l in limits {
        let slot = by_endpoint
            .entry((
                l.endpoint.provider_name.as_ref(),
                l.endpoint.model_id.as_ref(),
            ))
            .or_default();
        *slot = slot.max(l.wait_seconds);
    }
    by_endpoint
        .into_iter()
        .filter(|(_, s)| *s > 0.0)
        .map(|((provider, model_id), seconds)| {
            let label = series
                .models
                .iter()
                .filter(|m| m.provider == provider && m.model_id == model_id)
                .max_by_key(|m| m.succeeded)
                .map_or_else(|| format!("{provider}/{model_id}"), |m| m.label());
            (label, seconds)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ModelSeries;
    use crate::spec::WorkflowSpec;
    use weir_contracts::ProviderModelKey;

    /// Two HTTP endpoints (`remote/a`, `remote/b`, static cap 4) and one simulated (`sim/s`).
    fn built() -> BuiltWorkflow {
        let spec = WorkflowSpec::from_json(
            &serde_json::json!({
                "name": "lb", "records": 10,
                "providers": [
                    {"name": "remote", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                     // Any variable that is always set: building reads the key, never sends it.
                     "api_key_env": "PATH"},
                    {"name": "sim", "kind": "simulated", "models": [
                        {"model_id": "s", "capacity": 2, "latency_ms": {"dist": "fixed", "value": 100}}]}
                ],
                "models": [
                    {"alias": "a", "provider": "remote", "model_id": "a", "max_parallel_requests": 4},
                    {"alias": "b", "provider": "remote", "model_id": "b", "max_parallel_requests": 4},
                    {"alias": "s", "provider": "sim", "model_id": "s", "max_parallel_requests": 4}
                ],
                "columns": [
                    {"name": "x", "kind": "llm_text", "model": "a", "prompt": "p"},
                    {"name": "y", "kind": "llm_text", "model": "b", "prompt": "p"},
                    {"name": "z", "kind": "llm_text", "model": "s", "prompt": "p"}
                ]
            })
            .to_string(),
        )
        .expect("spec");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async { spec.build() }).expect("built")
    }

    fn series(rows: &[(&str, &str, u64, f64)]) -> TimeSeries {
        TimeSeries {
            models: rows
                .iter()
                .map(|(p, m, calls, mean_ms)| ModelSeries {
                    provider: (*p).to_owned(),
                    model_id: (*m).to_owned(),
                    domain: "chat".to_owned(),
                    succeeded: *calls,
                    latency_ms: Some(crate::report::LatencyPercentiles {
                        count: *calls,
                        mean: *mean_ms,
                        ..Default::default()
                    }),
                    ..ModelSeries::default()
                })
                .collect(),
            ..TimeSeries::default()
        }
    }

    fn tokens(model: &str, per_minute: u64, used: u64, source: LimitSource) -> KnownLimit {
        KnownLimit {
            endpoint: ProviderModelKey::new("remote", model).expect("key"),
            window: LimitWindow::Tokens,
            per_minute,
            source,
            configured_per_minute: None,
            learned_per_minute: Some(per_minute),
            burst_units: 1_000,
            used_units: used,
            waits: 3,
            wait_seconds: 2.5,
        }
    }

    #[test]
    fn a_token_budget_binds_and_an_endpoint_without_budgets_is_named_unknown() {
        let b = built();
        // a: 6,000 tokens/min (100/s), 31,000 used → 300 s; its static-cap term is 100 × 0.2 / 4.
        let s = series(&[("remote", "a", 100, 200.0), ("remote", "b", 50, 10.0)]);
        let lb = lower_bound(&b, &s, &[tokens("a", 6_000, 31_000, LimitSource::Learned)]);
        let t = lb.binding.as_ref().expect("known");
        assert_eq!(
            (t.limit, t.source),
            (BoundLimit::TokensPerMinute, BoundSource::Learned)
        );
        assert!((t.seconds - 300.0).abs() < 1e-9, "{}", t.seconds);
        assert_eq!(lb.seconds, Some(t.seconds));
        let a = &lb.endpoints[0];
        assert_eq!(a.terms.len(), 2, "token and static-cap terms");
        assert!((a.terms[1].seconds - 5.0).abs() < 1e-9);
        assert!(lb.endpoints[1].unknown_reason.is_some());
        assert!(
            lb.explanation
                .contains("not counted: no request or token limit is known for remote/b"),
            "{}",
            lb.explanation
        );
        assert_eq!(
            budget_waits(&s, &[tokens("a", 6_000, 31_000, LimitSource::Learned)]),
            vec![("remote/a/chat".to_owned(), 2.5)]
        );
    }

    #[test]
    fn simulated_endpoints_keep_their_config_bound_and_nothing_known_is_unknown() {
        let b = built();
        // 20 calls × 100 ms over min(capacity 2, cap 4) = 1 s.
        let lb = lower_bound(&b, &series(&[("sim", "s", 20, 100.0)]), &[]);
        let t = lb.binding.as_ref().expect("known");
        assert_eq!(t.limit, BoundLimit::Simulated);
        assert!((t.seconds - 1.0).abs() < 1e-9, "{}", t.seconds);

        let lb = lower_bound(&b, &series(&[("remote", "a", 8, 50.0)]), &[]);
        assert_eq!((lb.seconds, lb.binding), (None, None));
        assert!(lb
            .explanation
            .starts_with("Unknown: no request or token limit is known for remote/a"));
        assert!(
            lb.explanation
                .contains("static cap of 4 alone would allow 0.10 s"),
            "{}",
            lb.explanation
        );

        let lb = lower_bound(&b, &TimeSeries::default(), &[]);
        assert_eq!(lb.seconds, None);
        assert_eq!(
            lb.explanation,
            "Unknown: no successful provider call was seen."
        );
    }
}
