//! `OtelMetricsSink` (feature `otel`): admission events of both streams as OpenTelemetry metrics
//! with bounded labels only. Uses the `opentelemetry` API crate; it never configures an SDK,
//! exporter or collector (the embedding application owns that and hands in a `Meter`).
//!
//! Labels are limited to the metric-safe dimensions of the observability plan: event kind,
//! provider name, an allow-listed model label (unlisted models are `other`), request domain,
//! outcome (a closed vocabulary; anything else is `other`) and scheduler resource kind. Raw model
//! ids, run/task/lease/attempt ids, prompts and diagnostics stay out of metrics (trace-only).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `weir.request.admission.wait` (s) | histogram | provider, model, domain |
//! | `weir.request.in_flight` | gauge | provider, model, domain |
//! | `weir.request.limit` | gauge | provider, model, domain |
//! | `weir.request.events` | counter | event_kind, provider, model, domain |
//! | `weir.request.outcomes` | counter | provider, model, domain, outcome |
//! | `weir.scheduler.events` | counter | event_kind, resource_kind |

use crate::sink::EventSink;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use opentelemetry::KeyValue;
use std::collections::BTreeMap;
use weir_contracts::{
    RequestAdmissionEvent, RequestEventPayload, RequestReleaseOutcomeKind, RequestResourceKey,
    SchedulerAdmissionEvent, SchedulerResourceKey,
};

/// Model label of endpoints not on the allow-list.
pub const OTHER_LABEL: &str = "other";

/// Every label key this sink can emit (the test of boundedness checks against it).
pub const LABEL_KEYS: [&str; 6] = [
    "event_kind",
    "provider",
    "model",
    "domain",
    "outcome",
    "resource_kind",
];

/// An `EventSink` of both streams that records bounded-label OpenTelemetry metrics.
pub struct OtelMetricsSink {
    model_labels: BTreeMap<(String, String), String>,
    wait: Histogram<f64>,
    in_flight: Gauge<u64>,
    limit: Gauge<u64>,
    request_events: Counter<u64>,
    outcomes: Counter<u64>,
    scheduler_events: Counter<u64>,
}

impl std::fmt::Debug for OtelMetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelMetricsSink")
            .field("model_labels", &self.model_labels)
            .finish_non_exhaustive()
    }
}

impl OtelMetricsSink {
    /// Creates the instruments on `meter` (from the application's `MeterProvider`).
    pub fn new(meter: &Meter) -> Self {
        Self {
            model_labels: BTreeMap::new(),
            wait: meter
                .f64_histogram("weir.request.admission.wait")
                .with_unit("s")
                .with_description("Time a request attempt waited in request admission")
                .build(),
            in_flight: meter
                .u64_gauge("weir.request.in_flight")
                .with_description("Request leases held on a resource")
                .build(),
            limit: meter
                .u64_gauge("weir.request.limit")
                .with_description("Adaptive request limit of a resource")
                .build(),
            request_events: meter
                .u64_counter("weir.request.events")
                .with_description("Request admission events by kind")
                .build(),
            outcomes: meter
                .u64_counter("weir.request.outcomes")
                .with_description("Released request leases by outcome")
                .build(),
            scheduler_events: meter
                .u64_counter("weir.scheduler.events")
                .with_description("Scheduler admission events by kind")
                .build(),
        }
    }

    /// Allow-lists a metric label for `provider`/`model_id` (other models are labelled `other`).
    pub fn with_model_label(
        mut self,
        provider: impl Into<String>,
        model_id: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        self.model_labels
            .insert((provider.into(), model_id.into()), label.into());
        self
    }

    fn resource_labels(&self, key: Option<&RequestResourceKey>) -> Vec<KeyValue> {
        match key {
            None => vec![
                KeyValue::new("provider", "none"),
                KeyValue::new("model", "none"),
                KeyValue::new("domain", "none"),
            ],
            Some(k) => {
                let model = self
                    .model_labels
                    .get(&(k.provider_name.to_string(), k.model_id.to_string()))
                    .map_or_else(|| OTHER_LABEL.to_owned(), Clone::clone);
                vec![
                    KeyValue::new("provider", k.provider_name.to_string()),
                    KeyValue::new("model", model),
                    KeyValue::new("domain", k.domain.as_str()),
                ]
            }
        }
    }
}

/// A release outcome from the closed vocabulary, else `other`.
fn outcome_label(raw: Option<&str>) -> &'static str {
    raw.and_then(|r| {
        RequestReleaseOutcomeKind::ALL
            .iter()
            .find(|k| k.as_str() == r)
            .map(|k| k.as_str())
    })
    .unwrap_or(OTHER_LABEL)
}

/// The kind of a scheduler resource: the two built-in names, else `other`.
fn resource_kind(key: Option<&SchedulerResourceKey>) -> &'static str {
    match key.map(|k| k.to_string()) {
        None => "none",
        Some(k) if k == SchedulerResourceKey::SUBMISSION => SchedulerResourceKey::SUBMISSION,
        Some(k) if k == SchedulerResourceKey::LOCAL => SchedulerResourceKey::LOCAL,
        Some(_) => OTHER_LABEL,
    }
}

impl EventSink<RequestAdmissionEvent> for OtelMetricsSink {
    fn emit(&self, e: &RequestAdmissionEvent) {
        let labels = self.resource_labels(e.request_resource_key.as_ref());
        let mut with_kind = labels.clone();
        with_kind.push(KeyValue::new("event_kind", e.event_kind().as_str()));
        self.request_events.add(1, &with_kind);
        match &e.payload {
            RequestEventPayload::RequestWaitCompleted(w) => {
                let w = w.wait_seconds;
                if w.is_finite() && w >= 0.0 {
                    self.wait.record(w, &labels);
                }
            }
            RequestEventPayload::RequestLeaseReleased(_) => {
                let mut l = labels.clone();
                l.push(KeyValue::new(
                    "outcome",
                    outcome_label(e.reason_or_outcome.as_deref()),
                ));
                self.outcomes.add(1, &l);
            }
            RequestEventPayload::RequestLimitDecreased(c)
            | RequestEventPayload::RequestLimitIncreased(c) => {
                self.limit.record(u64::from(c.current), &labels);
            }
            _ => {}
        }
        if let Some(s) = &e.pressure_snapshot {
            self.in_flight.record(u64::from(s.in_flight_count), &labels);
            self.limit.record(u64::from(s.current_limit), &labels);
        }
    }
}

impl EventSink<SchedulerAdmissionEvent> for OtelMetricsSink {
    fn emit(&self, e: &SchedulerAdmissionEvent) {
        self.scheduler_events.add(
            1,
            &[
                KeyValue::new("event_kind", e.event_kind().as_str()),
                KeyValue::new(
                    "resource_kind",
                    resource_kind(e.scheduler_resource_key.as_ref()),
                ),
            ],
        );
    }
}
