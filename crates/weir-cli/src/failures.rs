//! The failure report: why rows were dropped or the run stopped, per column × model × cause.
//!
//! The runtime's `SchedulerReport.failures` is the primary source (it carries the first
//! sanitized provider message). When it is empty although cells failed, the groups are derived
//! from the `non_retryable_dropped` events the collector saw, and failing that from the report's
//! `drop_causes`, so a dropped row is never silent. The same groups go to stderr (even with
//! `--quiet`), to `summary.json` (`failures`) and to `report.html`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use weir_runtime::scheduler::{RunFailure, StopReason};

/// One group of failed cells: column × model × cause, with the first sanitized message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// The column whose cells failed (`(unknown)` when only a drop cause was recorded).
    pub column: String,
    /// The model alias its calls went to (`None`: a local column).
    pub model: Option<String>,
    /// Bounded cause label (`non_retryable:client`, `retries_exhausted:server_error`, ...).
    pub cause: String,
    /// Failed cells (or dropped rows, for groups derived from drop causes).
    pub count: u64,
    /// The first failure's sanitized message (`None` when only events were available).
    pub first_message: Option<String>,
    /// The first failure's HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// The first failure's URL path (no host, query or credentials).
    pub url_path: Option<String>,
    /// The provider's error type or code, when it sent one.
    pub provider_error_type: Option<String>,
}

impl From<&RunFailure> for FailureGroup {
    fn from(f: &RunFailure) -> Self {
        Self {
            column: f.column.clone(),
            model: f.model.clone(),
            cause: f.cause.clone(),
            count: f.count,
            first_message: (!f.first_message.is_empty()).then(|| f.first_message.clone()),
            http_status: f.http_status,
            url_path: f.url_path.clone(),
            provider_error_type: f.provider_error_type.clone(),
        }
    }
}

impl FailureGroup {
    fn key(&self) -> (&str, Option<&str>, &str) {
        (&self.column, self.model.as_deref(), &self.cause)
    }

    /// `HTTP 401 /v1/chat/completions invalid_api_key: message` (only the parts known).
    pub fn detail(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(s) = self.http_status {
            parts.push(format!("HTTP {s}"));
        }
        if let Some(p) = &self.url_path {
            parts.push(p.clone());
        }
        if let Some(t) = &self.provider_error_type {
            parts.push(t.clone());
        }
        let head = parts.join(" ");
        match (&self.first_message, head.is_empty()) {
            (Some(m), true) => m.clone(),
            (Some(m), false) => format!("{head}: {m}"),
            (None, false) => head,
            (None, true) => "no provider message recorded".to_string(),
        }
    }
}

/// Groups of failures merged across sessions: counts add up, the first message stays.
pub fn merge(into: &mut Vec<FailureGroup>, more: &[FailureGroup]) {
    for g in more {
        match into.iter_mut().find(|f| f.key() == g.key()) {
            Some(f) => f.count += g.count,
            None => into.push(g.clone()),
        }
    }
}

/// The failure groups of a session: the runtime's own when it has any; else one group per
/// (column, cause) seen in `non_retryable_dropped` events (`event_groups`, with the column's
/// model alias from `model_of`); else one group per drop cause.
pub fn session_groups(
    runtime: &[RunFailure],
    event_groups: &BTreeMap<(String, String), u64>,
    drop_causes: &BTreeMap<String, u64>,
    model_of: impl Fn(&str) -> Option<String>,
) -> Vec<FailureGroup> {
    if !runtime.is_empty() {
        return runtime.iter().map(FailureGroup::from).collect();
    }
    if !event_groups.is_empty() {
        return event_groups
            .iter()
            .map(|((column, cause), count)| FailureGroup {
                column: column.clone(),
                model: model_of(column),
                cause: cause.clone(),
                count: *count,
                ..FailureGroup::default()
            })
            .collect();
    }
    drop_causes
        .iter()
        .map(|(cause, count)| FailureGroup {
            column: "(unknown)".to_string(),
            cause: cause.clone(),
            count: *count,
            ..FailureGroup::default()
        })
        .collect()
}

/// Why the run stopped early, in one sentence (`None` for a run that was not stopped by itself).
pub fn stop_reason_text(reason: &StopReason) -> Option<String> {
    match reason {
        StopReason::Cancelled => None,
        StopReason::EarlyShutdown {
            failure_rate,
            failed,
            outcomes,
            cause,
        } => Some(if *outcomes > 0 {
            format!(
                "early shutdown: {failed} of the last {outcomes} model calls failed ({:.0}%), first cause {cause}",
                failure_rate * 100.0
            )
        } else {
            format!(
                "early shutdown: {:.0}% of the recent task outcomes failed",
                failure_rate * 100.0
            )
        }),
        StopReason::ConfigurationError { message } => {
            Some(format!("configuration error: {message}"))
        }
        StopReason::CircuitOpen { model } => Some(format!(
            "circuit breaker open: the endpoint of model {model:?} kept failing"
        )),
    }
}

/// The text block printed on stderr at the end of a run with failures (empty when none).
pub fn render_text(groups: &[FailureGroup]) -> String {
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from("failures (column × model × cause):\n");
    for g in groups {
        let _ = writeln!(
            out,
            "  {} × {} × {}: {} — {}",
            g.column,
            g.model.as_deref().unwrap_or("(local)"),
            g.cause,
            g.count,
            g.detail()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_groups_win_then_events_then_drop_causes() {
        let rf = RunFailure {
            column: "draft".into(),
            model: Some("writer".into()),
            cause: "non_retryable:auth".into(),
            count: 3,
            first_message: "invalid key".into(),
            http_status: Some(401),
            url_path: Some("/v1/chat/completions".into()),
            provider_error_type: Some("invalid_api_key".into()),
            ..RunFailure::default()
        };
        let ev = BTreeMap::from([(("draft".to_string(), "non_retryable:client".to_string()), 5)]);
        let dc = BTreeMap::from([("validation_failed".to_string(), 2)]);
        let model = |c: &str| (c == "draft").then(|| "writer".to_string());
        let g = session_groups(std::slice::from_ref(&rf), &ev, &dc, model);
        assert_eq!(
            g[0].detail(),
            "HTTP 401 /v1/chat/completions invalid_api_key: invalid key"
        );
        let g = session_groups(&[], &ev, &dc, model);
        assert_eq!((g[0].count, g[0].model.as_deref()), (5, Some("writer")));
        let g = session_groups(&[], &BTreeMap::new(), &dc, model);
        assert_eq!((g[0].column.as_str(), g[0].count), ("(unknown)", 2));
        let mut all = g.clone();
        merge(&mut all, &g);
        assert_eq!(all[0].count, 4);
        assert!(render_text(&all).contains("(unknown) × (local) × validation_failed: 4"));
    }
}
