//! `OtelMetricsSink` through a recording fake `InstrumentProvider` (no SDK): every label key is
//! in the bounded set, no id/prompt/raw model id ever becomes a label value, and thousands of
//! distinct ids produce only a handful of distinct label sets.
#![cfg(feature = "otel")]

use opentelemetry::metrics::{
    Counter, Gauge, Histogram, HistogramBuilder, InstrumentBuilder, InstrumentProvider, Meter,
    SyncInstrument,
};
use opentelemetry::KeyValue;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use weir_contracts::{
    LeaseId, RequestAdmissionEvent, RequestDomain, RequestEventKind, RequestEventPayload,
    RequestPressureSnapshot, RequestResourceKey, RuntimeCorrelation, SchedulerAdmissionEvent,
    SchedulerEventKind, SchedulerResourceKey, TaskId,
};
use weir_telemetry::otel::{OtelMetricsSink, LABEL_KEYS};
use weir_telemetry::EventSink;

type Record = (String, Vec<(String, String)>);

#[derive(Default)]
struct Recorder(Mutex<Vec<Record>>);

struct Instrument {
    name: String,
    rec: Arc<Recorder>,
}

impl<T> SyncInstrument<T> for Instrument {
    fn measure(&self, _value: T, attributes: &[KeyValue]) {
        let labels = attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        self.rec.0.lock().unwrap().push((self.name.clone(), labels));
    }
}

struct Provider(Arc<Recorder>);

impl Provider {
    fn inst(&self, name: &str) -> Arc<Instrument> {
        Arc::new(Instrument {
            name: name.to_owned(),
            rec: self.0.clone(),
        })
    }
}

impl InstrumentProvider for Provider {
    fn u64_counter(&self, b: InstrumentBuilder<'_, Counter<u64>>) -> Counter<u64> {
        Counter::new(self.inst(&b.name))
    }
    fn u64_gauge(&self, b: InstrumentBuilder<'_, Gauge<u64>>) -> Gauge<u64> {
        Gauge::new(self.inst(&b.name))
    }
    fn f64_histogram(&self, b: HistogramBuilder<'_, Histogram<f64>>) -> Histogram<f64> {
        Histogram::new(self.inst(&b.name))
    }
}

fn request_event(kind: RequestEventKind, i: u64, model: &str) -> RequestAdmissionEvent {
    let mut e = RequestAdmissionEvent::new(kind, i as f64);
    e.request_resource_key =
        Some(RequestResourceKey::new("openai", model, RequestDomain::Chat).unwrap());
    e.request_lease_id = Some(LeaseId {
        generation: weir_contracts::ControllerGeneration(7),
        counter: 1_000_000 + i,
    });
    let mut c = RuntimeCorrelation::for_run(format!("run-{i}"));
    c.task_column = Some(format!("column-{i}"));
    e.captured_correlation = Some(c);
    e.reason_or_outcome = Some(if i.is_multiple_of(3) {
        "success".to_owned()
    } else {
        format!("free text with prompt {i}")
    });
    // Payloads are typed: no free-form diagnostic (a prompt, say) can reach a label.
    match &mut e.payload {
        RequestEventPayload::RequestWaitCompleted(w) => w.wait_seconds = 0.5,
        RequestEventPayload::RequestLimitDecreased(c)
        | RequestEventPayload::RequestLimitIncreased(c) => c.current = 12,
        _ => {}
    }
    e.pressure_snapshot = Some(RequestPressureSnapshot {
        captured_at: i as f64,
        sequence: i,
        resource: RequestResourceKey::new("openai", model, RequestDomain::Chat).unwrap(),
        effective_max: 16,
        current_limit: 12,
        in_flight_count: 3,
        active_lease_count: 3,
        waiters: 0,
        blocked_until_monotonic: None,
        cooldown_remaining_seconds: 0.0,
        rate_limit_ceiling: 0,
        consecutive_rate_limits: 0,
        last_outcome: None,
        leak_diagnostics: Default::default(),
    });
    e
}

#[test]
fn no_unbounded_label_is_emitted() {
    let rec = Arc::new(Recorder::default());
    let meter = Meter::new(Arc::new(Provider(rec.clone())));
    let sink =
        OtelMetricsSink::new(&meter).with_model_label("openai", "gpt-4o-2024-08-06", "gpt-4o");
    let kinds = [
        RequestEventKind::RequestWaitCompleted,
        RequestEventKind::RequestLeaseAcquired,
        RequestEventKind::RequestLeaseReleased,
        RequestEventKind::RequestLimitDecreased,
        RequestEventKind::RequestRateLimited,
    ];
    for i in 0..2_000u64 {
        // Half the events use a fresh, never-listed raw model id.
        let model = if i.is_multiple_of(2) {
            "gpt-4o-2024-08-06".to_owned()
        } else {
            format!("ft:custom-model-{i}")
        };
        sink.emit(&request_event(kinds[(i % 5) as usize], i, &model));
        let mut s = SchedulerAdmissionEvent::new(SchedulerEventKind::ALL[(i % 3) as usize], 0.0);
        s.task_id = Some(TaskId::new(format!("task-{i}")));
        let resource = if i.is_multiple_of(2) {
            "submission".to_owned()
        } else {
            format!("res-{i}")
        };
        s.scheduler_resource_key = Some(SchedulerResourceKey::new(&resource).unwrap());
        s.reason_or_result = Some(format!("result {i}"));
        EventSink::<SchedulerAdmissionEvent>::emit(&sink, &s);
    }
    let records = rec.0.lock().unwrap().clone();
    assert!(records.len() > 4_000);
    let allowed: BTreeSet<&str> = LABEL_KEYS.into_iter().collect();
    let mut label_sets = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (name, labels) in &records {
        names.insert(name.clone());
        for (k, v) in labels {
            assert!(allowed.contains(k.as_str()), "unexpected label key {k}");
            for forbidden in [
                "run-",
                "column-",
                "task-",
                "prompt",
                "ft:custom",
                "res-",
                "1000",
                "result",
            ] {
                assert!(!v.contains(forbidden), "{name}: {k}={v} leaks {forbidden}");
            }
        }
        label_sets.insert((name.clone(), labels.clone()));
    }
    // 2,000 distinct ids of every sort collapse into a few label sets.
    assert!(
        label_sets.len() <= 40,
        "{} label sets: {label_sets:?}",
        label_sets.len()
    );
    for expected in [
        "weir.request.admission.wait",
        "weir.request.in_flight",
        "weir.request.limit",
        "weir.request.events",
        "weir.request.outcomes",
        "weir.scheduler.events",
    ] {
        assert!(names.contains(expected), "{expected} never recorded");
    }
    let models: BTreeSet<String> = records
        .iter()
        .flat_map(|(_, l)| {
            l.iter()
                .filter(|(k, _)| k == "model")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(
        models,
        ["gpt-4o".to_owned(), "other".to_owned()]
            .into_iter()
            .collect()
    );
    let outcomes: BTreeSet<String> = records
        .iter()
        .flat_map(|(_, l)| {
            l.iter()
                .filter(|(k, _)| k == "outcome")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(
        outcomes,
        ["other".to_owned(), "success".to_owned()]
            .into_iter()
            .collect()
    );
}
