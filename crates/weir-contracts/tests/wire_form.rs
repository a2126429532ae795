//! Wire-form tests: every contract type round-trips through serde_json; kinds use the plan's strings.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use weir_contracts::*;

fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> String {
    let text = serde_json::to_string(value).expect("serialize");
    let back: T = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(&back, value, "round trip changed the value: {text}");
    // Stable: serialising again gives the same bytes.
    assert_eq!(serde_json::to_string(&back).expect("serialize"), text);
    text
}

fn rkey(domain: RequestDomain) -> RequestResourceKey {
    RequestResourceKey::new("sim", "m1", domain).expect("key")
}

fn gkey(name: &str) -> TaskGroupKey {
    TaskGroupKey::new(SchedulingKind::Local, vec!["local".into(), name.into()])
}

#[test]
fn scheduler_event_kinds_are_the_plans_27_strings_in_order() {
    let plan = [
        "scheduler_job_started",
        "scheduler_job_completed",
        "scheduler_health_snapshot",
        "dependency_ready",
        "ready_enqueued",
        "row_group_admitted",
        "row_group_admission_blocked",
        "row_group_admission_target_changed",
        "row_group_checkpointed",
        "selected",
        "queue_empty",
        "admission_blocked",
        "group_capped",
        "request_pressure_advisory_skipped",
        "task_lease_acquired",
        "admission_denied",
        "worker_spawned",
        "worker_spawn_failed",
        "stale_selection",
        "retry_deferred",
        "non_retryable_dropped",
        "cancelled",
        "salvage_redispatched",
        "queue_drained",
        "task_completed",
        "task_lease_released",
        "release_diagnostic",
    ];
    let ours: Vec<String> = SchedulerEventKind::ALL
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .expect("ser")
                .as_str()
                .expect("str")
                .to_owned()
        })
        .collect();
    assert_eq!(ours, plan);
    for k in SchedulerEventKind::ALL {
        assert_eq!(k.as_str(), k.to_string());
        roundtrip(k);
    }
}

#[test]
fn request_event_kinds_are_the_plans_19_strings_in_order() {
    let plan = [
        "request_resource_registered",
        "request_effective_cap_changed",
        "request_queue_formed",
        "request_wait_started",
        "request_wait_completed",
        "request_wait_timeout",
        "request_wait_cancelled",
        "request_acquire_denied",
        "request_lease_acquired",
        "model_request_started",
        "model_request_completed",
        "request_queue_drained",
        "request_rate_limited",
        "request_limit_decreased",
        "request_limit_increased",
        "request_soft_ceiling_recovered",
        "request_fully_recovered",
        "request_lease_released",
        "request_release_diagnostic",
        // weir's additions after the plan's 19 (issue 17).
        "shared_limits_degraded",
        "shared_limits_recovered",
    ];
    let ours: Vec<String> = RequestEventKind::ALL
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .expect("ser")
                .as_str()
                .expect("str")
                .to_owned()
        })
        .collect();
    assert_eq!(ours, plan);
}

#[test]
fn outcome_and_reason_vocabularies_match_the_plan() {
    let outcomes: Vec<&str> = RequestReleaseOutcomeKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        outcomes,
        [
            "success",
            "rate_limited",
            "provider_failure",
            "provider_timeout",
            "local_cancelled",
            "local_timeout",
            "unexpected_exception"
        ]
    );
    let releases: Vec<&str> = ReleaseReason::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        releases,
        [
            "released",
            "duplicate",
            "stale_lease",
            "wrong_controller_generation",
            "unknown_lease"
        ]
    );
    let sources: Vec<&str> = CapacitySource::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        sources,
        [
            "default",
            "run_config",
            "dataset_builder",
            "model_metadata",
            "engine_internal_config",
            "adapter_config",
            "environment",
            "runtime_snapshot",
            "benchmark_override"
        ]
    );
    for k in TaskAdmissionDenyReason::ALL {
        roundtrip(k);
    }
    for k in RequestAdmissionDenyReason::ALL {
        roundtrip(k);
    }
    for k in RequestReleaseOutcomeKind::ALL {
        roundtrip(k);
    }
    for k in ReleaseReason::ALL {
        roundtrip(k);
    }
    for k in CapacitySource::ALL {
        roundtrip(k);
    }
    for d in RequestDomain::ALL {
        roundtrip(&d);
    }
}

#[test]
fn ids_round_trip_and_are_stable() {
    let t = TaskId::stable("draft", 3, Some(7), "cell");
    assert_eq!(t, TaskId::stable("draft", 3, Some(7), "cell"));
    assert_ne!(t, TaskId::stable("draft", 3, None, "batch"));
    assert!(t.as_str().starts_with("task-") && t.as_str().len() == 21);
    roundtrip(&t);
    let lease = LeaseId::new(ControllerGeneration(4), 17);
    assert_eq!(roundtrip(&lease), "\"4:17\"");
    assert!("4-17".parse::<LeaseId>().is_err());
    let g1 = ControllerGeneration::next();
    assert!(ControllerGeneration::next() > g1);
    roundtrip(&TaskExecutionId::next());
    roundtrip(&RequestAttemptId::next());
    assert_eq!(identity_hash(&["a", "b"]), identity_hash(&["a", "b"]));
    assert_ne!(identity_hash(&["a", "b"]), identity_hash(&["ab"]));
}

#[test]
fn metadata_validates_and_round_trips() {
    let m = SchedulingMetadata::model("sim", "m1", "chat", 8).expect("valid");
    roundtrip(&m);
    roundtrip(&SchedulingMetadata::default());
    roundtrip(&SchedulingMetadata::custom_model("ns", "res", "v1", 2).expect("valid"));
    assert_eq!(
        SchedulingMetadata::default().identity(),
        ["local", "default"]
    );
    assert_eq!(SchedulingMetadata::default().weight(), 1);
    let bad = SchedulingMetadata::new(SchedulingKind::Model, vec!["model".into(), "p".into()], 1);
    assert_eq!(
        bad.unwrap_err().code,
        SchedulingMetadataErrorCode::InvalidIdentity
    );
    let bad = SchedulingMetadata::new(SchedulingKind::Local, vec!["model".into(), "p".into()], 1);
    assert_eq!(
        bad.unwrap_err().code,
        SchedulingMetadataErrorCode::InvalidIdentity
    );
    let bad = SchedulingMetadata::local(" ", 1);
    assert_eq!(
        bad.unwrap_err().code,
        SchedulingMetadataErrorCode::EmptyIdentityPart
    );
    // Deserialisation validates too.
    let bad: Result<SchedulingMetadata, _> =
        serde_json::from_value(json!({"kind": "local", "identity": ["local", "x"], "weight": 0}));
    assert!(bad.is_err());
    let err = SchedulingMetadataError::fatal(
        SchedulingMetadataErrorCode::AmbiguousModelAliases,
        "two endpoints",
    )
    .with_fallback(SchedulingMetadata::custom_model("ns", "r", "1", 1).expect("valid"))
    .with_diagnostic("aliases", "a,b");
    roundtrip(&err);
    assert!(err.to_string().contains("ambiguous_model_aliases"));
}

#[test]
fn scheduler_inputs_validate_and_round_trip() {
    let spec = TaskGroupSpec::new(gkey("x"), 2, Some(4)).expect("valid");
    roundtrip(&spec);
    assert_eq!(
        TaskGroupSpec::new(gkey("x"), 0, None).unwrap_err().field,
        "weight"
    );
    assert_eq!(
        TaskGroupSpec::new(gkey("x"), 1, Some(0)).unwrap_err().field,
        "admitted_limit"
    );
    let bad: Result<TaskGroupSpec, _> = serde_json::from_value(json!({
        "key": {"kind": "local", "identity": ["local", "x"]}, "weight": 0, "admitted_limit": null}));
    assert!(bad.is_err());

    let req = SchedulerResourceRequest::new([
        (SchedulerResourceKey::local(), 2),
        (SchedulerResourceKey::submission(), 1),
    ])
    .expect("valid");
    assert_eq!(roundtrip(&req), r#"{"local":2,"submission":1}"#);
    assert_eq!(req.amount(&SchedulerResourceKey::local()), 2);
    assert_eq!(
        req.amount(&SchedulerResourceKey::new("gpu").expect("key")),
        0
    );
    let err = SchedulerResourceRequest::new([(SchedulerResourceKey::local(), 0)]).unwrap_err();
    assert_eq!(err.field, "amounts.local");
    let err = SchedulerResourceRequest::new([
        (SchedulerResourceKey::local(), 1),
        (SchedulerResourceKey::local(), 1),
    ])
    .unwrap_err();
    assert_eq!(err.field, "amounts.local");
    assert!(SchedulerResourceKey::new("").is_err());
    assert_eq!(
        SchedulerResourceRequest::new([]).unwrap_err().field,
        "amounts"
    );
    assert!(serde_json::from_str::<SchedulerResourceRequest>("{}").is_err());
    assert_eq!(
        SchedulerResourceRequest::default(),
        SchedulerResourceRequest::submission()
    );
}

#[test]
fn request_identity_round_trips() {
    let pm = ProviderModelKey::new("sim", "m1").expect("valid");
    roundtrip(&pm);
    assert!(ProviderModelKey::new("", "m1").is_err());
    assert_eq!(
        ProviderModelKey::new("p", " ").unwrap_err().field,
        "model_id"
    );
    let k = rkey(RequestDomain::Embedding);
    assert_eq!(k.provider_model(), pm);
    roundtrip(&k);
    roundtrip(&RequestGroupSpec::new(k.clone(), 2).expect("valid"));
    assert!(RequestGroupSpec::new(k, 0).is_err());
    let ctx = RequestEventContext {
        captured_correlation: Some(Arc::new(RuntimeCorrelation {
            run_id: "r".into(),
            row_group: Some(1),
            task_column: Some("draft".into()),
            task_type: Some("cell".into()),
            scheduling_group_kind: Some("model".into()),
            scheduling_group_identity_hash: Some(identity_hash(&["model", "sim"])),
            task_execution_id: Some(TaskExecutionId(5)),
        })),
        task_execution_id: Some(TaskExecutionId(5)),
        request_attempt_id: Some(RequestAttemptId(9)),
    };
    roundtrip(&ctx);
    roundtrip(&RuntimeCorrelation::for_run("run-1"));
}

#[test]
fn outcomes_round_trip_with_non_finite_floats_as_strings() {
    let mut o = RequestReleaseOutcome::rate_limited(Some(f64::INFINITY));
    o.diagnostics.insert("status".into(), json!(429));
    let text = serde_json::to_string(&o).expect("ser");
    assert!(text.contains(r#""retry_after_seconds":"inf""#), "{text}");
    let back: RequestReleaseOutcome = serde_json::from_str(&text).expect("de");
    assert_eq!(back.retry_after_seconds, Some(f64::INFINITY));
    roundtrip(&RequestReleaseOutcome::rate_limited(Some(0.5)));
    roundtrip(&RequestReleaseOutcome::success());
    let nan = RequestReleaseOutcome::rate_limited(Some(f64::NAN));
    let text = serde_json::to_string(&nan).expect("ser");
    assert!(text.contains(r#""nan""#));
    roundtrip(&ReleaseResult::released());
    let dup = ReleaseResult::rejected(ReleaseReason::Duplicate);
    assert!(!dup.released);
    roundtrip(&dup);
}

#[test]
fn events_round_trip() {
    let mut e = SchedulerAdmissionEvent::new(SchedulerEventKind::TaskLeaseAcquired, 1.25);
    e.sequence = 3;
    e.task_id = Some(TaskId::stable("a", 0, Some(0), "cell"));
    e.task_lease_id = Some(LeaseId::new(ControllerGeneration(1), 2));
    e.scheduler_resource_key = Some(SchedulerResourceKey::submission());
    e.captured_correlation = Some(RuntimeCorrelation::for_run("r"));
    e.snapshot = Some(Box::new(TaskAdmissionSnapshot {
        active_lease_count: 3,
        ..Default::default()
    }));
    let text = roundtrip(&e);
    assert!(text.starts_with(
        r#"{"event_kind":"task_lease_acquired","captured_at_monotonic":1.25,"sequence":3"#
    ));
    assert!(text.ends_with(r#""diagnostics":{}}"#), "{text}");

    let mut r = RequestAdmissionEvent::new(RequestEventKind::RequestLeaseAcquired, 2.0);
    r.request_resource_key = Some(rkey(RequestDomain::Chat));
    r.request_group_key = Some(rkey(RequestDomain::Chat));
    r.request_lease_id = Some(LeaseId::new(ControllerGeneration(2), 1));
    r.request_attempt_id = Some(RequestAttemptId(4));
    r.reason_or_outcome = Some("success".into());
    r.pressure_snapshot = Some(RequestPressureSnapshot {
        captured_at: 2.0,
        sequence: 9,
        resource: rkey(RequestDomain::Chat),
        effective_max: 8,
        current_limit: 4,
        in_flight_count: 1,
        active_lease_count: 1,
        waiters: 0,
        blocked_until_monotonic: None,
        cooldown_remaining_seconds: 0.0,
        rate_limit_ceiling: 0,
        consecutive_rate_limits: 0,
        last_outcome: Some(RequestReleaseOutcomeKind::Success),
        leak_diagnostics: BTreeMap::new(),
    });
    roundtrip(&r);
}

/// One payload with data per scheduler kind, and the `diagnostics` object it is written as.
fn scheduler_samples() -> Vec<(SchedulerEventPayload, serde_json::Value)> {
    use weir_contracts::payload::*;
    use SchedulerEventPayload as P;
    let mut by_reason = BTreeMap::new();
    by_reason.insert(TaskAdmissionDenyReason::GroupCap, 2);
    let blocked = AdmissionBlocked {
        queued: 5,
        blocked_tasks_by_reason: by_reason,
    };
    let mut out = vec![
        (
            P::SchedulerJobStarted(SchedulerJobStarted {
                records: 100,
                row_groups: 4,
                first_row_group: 1,
            }),
            json!({"records": 100, "row_groups": 4, "first_row_group": 1}),
        ),
        (
            P::SchedulerJobCompleted(SchedulerJobCompleted {
                records_written: 99,
                rows_dropped: 1,
            }),
            json!({"records_written": 99, "rows_dropped": 1}),
        ),
        (
            P::SchedulerHealthSnapshot(SchedulerHealthSnapshot {
                queued: 3,
                running_workers: 2,
                deferred_tasks: 1,
            }),
            json!({"queued": 3, "running_workers": 2, "deferred_tasks": 1}),
        ),
        (
            P::RowGroupAdmitted(RowGroupAdmitted {
                row_group: 3,
                rows: 100,
                in_flight: 2,
            }),
            json!({"row_group": 3, "rows": 100, "in_flight": 2}),
        ),
        (
            P::RowGroupAdmissionBlocked(RowGroupAdmissionBlocked {
                in_flight: Some(3),
                target: Some(3),
                completed_unwritten: None,
            }),
            json!({"in_flight": 3, "target": 3}),
        ),
        (
            P::RowGroupAdmissionTargetChanged(RowGroupAdmissionTargetChanged { target: 2 }),
            json!({"target": 2}),
        ),
        (
            P::RowGroupCheckpointed(RowGroupCheckpointed {
                row_group: 3,
                surviving_rows: 24,
                dropped_rows: 1,
                records_written: 72,
            }),
            json!({"row_group": 3, "surviving_rows": 24, "dropped_rows": 1, "records_written": 72}),
        ),
        (
            P::AdmissionBlocked(blocked.clone()),
            json!({"queued": 5, "blocked_tasks_by_reason": {"group_cap": 2}}),
        ),
        (
            P::GroupCapped(blocked),
            json!({"queued": 5, "blocked_tasks_by_reason": {"group_cap": 2}}),
        ),
        (
            P::WorkerSpawned(WorkerSpawned { inline: true }),
            json!({"inline": true}),
        ),
        (
            P::RetryDeferred(RetryDeferred {
                delay_seconds: 0.5,
                salvage: true,
                wait: Some(2),
                retry: None,
                requests_spent: None,
            }),
            json!({"delay_seconds": 0.5, "salvage": true, "wait": 2}),
        ),
        (
            P::NonRetryableDropped(NonRetryableDropped {
                rows_dropped: 1,
                provider_status: Some(400),
                consecutive_failures: None,
            }),
            json!({"rows_dropped": 1, "provider_status": 400}),
        ),
        (
            P::TaskLeaseReleased(TaskLeaseReleased {
                outcome: Some(TaskTerminalOutcome::Success),
            }),
            json!({"outcome": "success"}),
        ),
    ];
    let with_data: Vec<SchedulerEventKind> = out.iter().map(|(p, _)| p.kind()).collect();
    for kind in SchedulerEventKind::ALL {
        if !with_data.contains(kind) {
            out.push((SchedulerEventPayload::default_for(*kind), json!({})));
        }
    }
    out
}

/// One payload with data per request kind, and the `diagnostics` object it is written as.
fn request_samples() -> Vec<(RequestEventPayload, serde_json::Value)> {
    use weir_contracts::payload::*;
    use RequestEventPayload as P;
    let change = LimitChanged {
        previous: 8,
        current: 6,
        policy: Some("goodput".into()),
        cause: Some(LimitChangeCause::LatencySaturation),
    };
    let change_json =
        json!({"previous": 8, "current": 6, "policy": "goodput", "cause": "latency_saturation"});
    let denied = RequestDenied {
        last_denial: Some(RequestAdmissionDenyReason::NoCapacity),
    };
    let denied_json = json!({"last_denial": "no_capacity"});
    let mut out = vec![
        (
            P::RequestResourceRegistered(RequestResourceRegistered {
                alias: "writer".into(),
                provider_model: "sim/m1".into(),
                max_parallel_requests: 8,
            }),
            json!({"alias": "writer", "provider_model": "sim/m1", "max_parallel_requests": 8}),
        ),
        (
            P::RequestEffectiveCapChanged(RequestEffectiveCapChanged {
                previous: 8,
                current: 4,
            }),
            json!({"previous": 8, "current": 4}),
        ),
        (
            P::RequestWaitCompleted(RequestWaitCompleted { wait_seconds: 0.25 }),
            json!({"wait_seconds": 0.25}),
        ),
        (P::RequestWaitTimeout(denied.clone()), denied_json.clone()),
        (P::RequestWaitCancelled(denied.clone()), denied_json.clone()),
        (P::RequestAcquireDenied(denied), denied_json),
        (
            P::ModelRequestCompleted(RequestOutcome {
                provider_status: Some(200),
            }),
            json!({"provider_status": 200}),
        ),
        (
            P::RequestRateLimited(RequestRateLimited {
                cooldown_seconds: Some(2.0),
                classification: Some(RateLimitClassification::Concurrency),
                rate_limit_signal: Some(RateLimitSignal::Concurrency),
                retry_after_seconds: Some(1.5),
            }),
            json!({"cooldown_seconds": 2.0, "classification": "concurrency",
                   "rate_limit_signal": "concurrency", "retry_after_seconds": 1.5}),
        ),
        (
            P::RequestLimitDecreased(change.clone()),
            change_json.clone(),
        ),
        (P::RequestLimitIncreased(change), change_json),
        (
            P::RequestSoftCeilingRecovered(RequestSoftCeilingRecovered {
                rate_limit_ceiling: 4,
            }),
            json!({"rate_limit_ceiling": 4}),
        ),
        (
            P::RequestLeaseReleased(RequestOutcome {
                provider_status: Some(429),
            }),
            json!({"provider_status": 429}),
        ),
    ];
    let mode = weir_contracts::payload::SharedLimitsModeChanged {
        previous: weir_contracts::SharedLimitsMode::Shared,
        current: weir_contracts::SharedLimitsMode::LocalShare,
        reason: Some("connection refused".into()),
    };
    let mode_json =
        json!({"previous": "shared", "current": "local_share", "reason": "connection refused"});
    out.push((P::SharedLimitsDegraded(mode.clone()), mode_json.clone()));
    out.push((P::SharedLimitsRecovered(mode), mode_json));
    let with_data: Vec<RequestEventKind> = out.iter().map(|(p, _)| p.kind()).collect();
    for kind in RequestEventKind::ALL {
        if !with_data.contains(kind) {
            out.push((RequestEventPayload::default_for(*kind), json!({})));
        }
    }
    out
}

#[test]
fn every_scheduler_payload_round_trips_in_the_plans_wire_form() {
    let samples = scheduler_samples();
    assert_eq!(samples.len(), SchedulerEventKind::ALL.len());
    for (payload, diagnostics) in samples {
        let kind = payload.kind();
        let e = SchedulerAdmissionEvent::with_payload(payload, 1.0);
        let text = roundtrip(&e);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["event_kind"], kind.as_str(), "{text}");
        assert_eq!(v["diagnostics"], diagnostics, "{kind}: {text}");
        assert_eq!(e.event_kind(), kind);
    }
}

#[test]
fn every_request_payload_round_trips_in_the_plans_wire_form() {
    let samples = request_samples();
    assert_eq!(samples.len(), RequestEventKind::ALL.len());
    for (payload, diagnostics) in samples {
        let kind = payload.kind();
        let e = RequestAdmissionEvent::with_payload(payload, 1.0);
        let text = roundtrip(&e);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["event_kind"], kind.as_str(), "{text}");
        assert_eq!(v["diagnostics"], diagnostics, "{kind}: {text}");
        assert_eq!(e.event_kind(), kind);
    }
}

#[test]
fn events_read_back_without_diagnostics_and_with_unknown_keys() {
    let bare = r#"{"event_kind":"selected","captured_at_monotonic":1.0,"sequence":1}"#;
    let e: SchedulerAdmissionEvent = serde_json::from_str(bare).expect("no diagnostics");
    assert_eq!(e.event_kind(), SchedulerEventKind::Selected);
    let extra = r#"{"event_kind":"row_group_admitted","captured_at_monotonic":1.0,"sequence":1,
        "diagnostics":{"row_group":2,"rows":10,"in_flight":1,"later_field":true}}"#;
    let e: SchedulerAdmissionEvent = serde_json::from_str(extra).expect("unknown key ignored");
    assert!(matches!(
        e.payload,
        SchedulerEventPayload::RowGroupAdmitted(ref a) if a.row_group == 2 && a.in_flight == 1
    ));
    let wrong = r#"{"event_kind":"row_group_admitted","captured_at_monotonic":1.0,"sequence":1,
        "diagnostics":{"row_group":"two"}}"#;
    let err = serde_json::from_str::<SchedulerAdmissionEvent>(wrong).expect_err("typed");
    assert!(err.to_string().contains("row_group_admitted"), "{err}");
}

#[test]
fn terminal_outcomes_use_the_plans_vocabulary() {
    let names: Vec<&str> = TaskTerminalOutcome::ALL
        .iter()
        .map(|o| o.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "success",
            "retryable_failure",
            "non_retryable_failure",
            "cancellation",
            "worker_spawn_failure"
        ]
    );
    assert_eq!(
        TaskTerminalOutcome::from_name("success"),
        Some(TaskTerminalOutcome::Success)
    );
    assert_eq!(TaskTerminalOutcome::from_name("completed"), None);
}

#[test]
fn capacity_and_snapshots_round_trip() {
    let v: CapacityValue<u32> = CapacityValue::known(8, CapacitySource::RunConfig);
    roundtrip(&v);
    let m: CapacityValue<u32> =
        CapacityValue::missing(CapacitySource::RuntimeSnapshot, "not observed")
            .with_fallback_from("run_config");
    roundtrip(&m);
    let cap = ProviderModelStaticCap::merge([
        ("a".into(), Some(8)),
        ("b".into(), Some(4)),
        ("c".into(), None),
    ])
    .expect("has a cap");
    assert_eq!(cap.cap, 4);
    assert_eq!(cap.aliases, ["a", "b", "c"]);
    roundtrip(&cap);
    assert!(ProviderModelStaticCap::merge([("a".into(), None)]).is_none());

    let cfg = RequestAdmissionConfigSnapshot {
        resources: vec![rkey(RequestDomain::Chat)],
        initial_limits: BTreeMap::from([(rkey(RequestDomain::Chat), 4)]),
        max_limit_clamps: BTreeMap::from([(rkey(RequestDomain::Chat), None)]),
        cooldown_seconds: 2.0,
        multiplicative_decrease_factor: 0.75,
        additive_increase_step: 1,
        successes_until_increase: 25,
        startup_ramp_seconds: 0.0,
        default_queue_wait_timeout_seconds: None,
        policy: "plan_aimd".into(),
    };
    let text = roundtrip(&cfg);
    assert!(
        text.contains(
            r#""initial_limits":[[{"provider_name":"sim","model_id":"m1","domain":"chat"},4]]"#
        ),
        "{text}"
    );

    let mut snap = TaskAdmissionSnapshot::default();
    snap.resource_limits
        .insert(SchedulerResourceKey::submission(), 4);
    snap.leased_resources_by_group.insert(
        gkey("x"),
        BTreeMap::from([(SchedulerResourceKey::submission(), 1)]),
    );
    snap.running_counts_by_group.insert(gkey("x"), 1);
    snap.policy_debt_by_group_resource
        .insert((gkey("x"), SchedulerResourceKey::submission()), 2);
    snap.release_diagnostics.insert(ReleaseReason::Duplicate, 1);
    roundtrip(&snap);

    let p = RequestPressureSnapshot {
        captured_at: 1.0,
        sequence: 2,
        resource: rkey(RequestDomain::Chat),
        effective_max: 8,
        current_limit: 6,
        in_flight_count: 3,
        active_lease_count: 3,
        waiters: 1,
        blocked_until_monotonic: Some(3.5),
        cooldown_remaining_seconds: 2.5,
        rate_limit_ceiling: 8,
        consecutive_rate_limits: 1,
        last_outcome: Some(RequestReleaseOutcomeKind::RateLimited),
        leak_diagnostics: BTreeMap::new(),
    };
    roundtrip(&p);
    let g = ProviderModelPressureSnapshot {
        captured_at: 1.0,
        sequence: 2,
        provider_model: ProviderModelKey::new("sim", "m1").expect("valid"),
        static_cap: 8,
        aggregate_in_flight: 3,
        max_aggregate_in_flight: 5,
        aggregate_active_lease_count: 3,
        aggregate_waiters: 0,
        aliases: vec!["writer".into()],
        raw_caps: BTreeMap::from([("writer".into(), 8)]),
        domains: BTreeMap::from([(RequestDomain::Chat, 6)]),
    };
    roundtrip(&g);
}

#[test]
fn stable_task_ids_hash_the_decimal_coordinates() {
    // The id is FNV-1a over `column NUL row_group NUL row_index NUL task_type` in decimal text.
    let mut h = Fnv64::new();
    h.write(b"draft\x0012\x00305\x00cell");
    assert_eq!(
        TaskId::stable("draft", 12, Some(305), "cell").as_str(),
        format!("task-{:016x}", h.finish())
    );
    let mut h = Fnv64::new();
    h.write(b"v\x000\x00none\x00batch");
    assert_eq!(
        TaskId::stable("v", 0, None, "batch").as_str(),
        format!("task-{:016x}", h.finish())
    );
}

#[test]
fn release_diagnostics_serialize_as_a_map() {
    let ok = ReleaseResult::released();
    let v = serde_json::to_value(&ok).expect("ser");
    assert_eq!(v["diagnostics"], json!({}));
    let mut dup = ReleaseResult::rejected(ReleaseReason::Duplicate);
    dup.diagnostics.insert("lease_id".into(), "g1:7".into());
    let v = serde_json::to_value(&dup).expect("ser");
    assert_eq!(v["diagnostics"], json!({"lease_id": "g1:7"}));
    let back: ReleaseResult = serde_json::from_value(v).expect("de");
    assert_eq!(back, dup);
    assert_eq!(
        back.diagnostics.get("lease_id").map(String::as_str),
        Some("g1:7")
    );
    assert_eq!(back.diagnostics.len(), 1);
    let empty: ReleaseResult =
        serde_json::from_value(json!({"released": true, "reason": "released", "diagnostics": {}}))
            .expect("de");
    assert_eq!(empty, ok);
}
