//! Integration tests of AsyncCapacityPlan construction, attribution, maxima, JSON and explain().

use std::collections::BTreeMap;
use weir_capacity::*;
use weir_contracts::{
    CapMergeRule, CapacitySource, ProviderModelKey, ProviderModelPressureSnapshot,
    RequestAdmissionConfigSnapshot, RequestDomain, RequestPressureSnapshot, RequestResourceKey,
    SchedulerResourceKey, SchedulingKind, TaskAdmissionSnapshot, TaskGroupKey,
};

fn pm(p: &str, m: &str) -> ProviderModelKey {
    ProviderModelKey::new(p, m).unwrap()
}

fn rk(p: &str, m: &str, d: RequestDomain) -> RequestResourceKey {
    RequestResourceKey::new(p, m, d).unwrap()
}

fn res(name: &str) -> SchedulerResourceKey {
    SchedulerResourceKey::new(name).unwrap()
}

fn group(parts: &[&str]) -> TaskGroupKey {
    TaskGroupKey::new(
        SchedulingKind::Model,
        parts.iter().map(|s| s.to_string()).collect(),
    )
}

fn req_snap(
    key: RequestResourceKey,
    seq: u64,
    effective_max: u32,
    current: u32,
    in_flight: u32,
    waiters: u32,
    blocked: Option<f64>,
) -> RequestPressureSnapshot {
    RequestPressureSnapshot {
        captured_at: seq as f64,
        sequence: seq,
        resource: key,
        effective_max,
        current_limit: current,
        in_flight_count: in_flight,
        active_lease_count: in_flight,
        waiters,
        blocked_until_monotonic: blocked,
        cooldown_remaining_seconds: 0.0,
        rate_limit_ceiling: 0,
        consecutive_rate_limits: 0,
        last_outcome: None,
        leak_diagnostics: BTreeMap::new(),
    }
}

fn pm_snap(
    key: ProviderModelKey,
    seq: u64,
    cap: u32,
    in_flight: u32,
) -> ProviderModelPressureSnapshot {
    ProviderModelPressureSnapshot {
        captured_at: seq as f64,
        sequence: seq,
        provider_model: key,
        static_cap: cap,
        aggregate_in_flight: in_flight,
        max_aggregate_in_flight: in_flight,
        aggregate_active_lease_count: in_flight,
        aggregate_waiters: 0,
        aliases: vec!["main".into()],
        raw_caps: BTreeMap::from([("main".to_string(), cap)]),
        domains: BTreeMap::from([(RequestDomain::Chat, cap)]),
    }
}

fn task_snap(leased: &[(&str, u32)], limits: &[(&str, u32)]) -> TaskAdmissionSnapshot {
    TaskAdmissionSnapshot {
        resource_limits: limits.iter().map(|(k, v)| (res(k), *v)).collect(),
        leased_resources: leased.iter().map(|(k, v)| (res(k), *v)).collect(),
        ..Default::default()
    }
}

fn config(
    initial: &[(RequestResourceKey, u32)],
    clamps: &[(RequestResourceKey, Option<u32>)],
) -> RequestAdmissionConfigSnapshot {
    let initial_limits: BTreeMap<_, _> = initial.iter().cloned().collect();
    let max_limit_clamps: BTreeMap<_, _> = clamps.iter().cloned().collect();
    let mut resources: Vec<_> = initial_limits
        .keys()
        .chain(max_limit_clamps.keys())
        .cloned()
        .collect();
    resources.sort();
    resources.dedup();
    RequestAdmissionConfigSnapshot {
        resources,
        initial_limits,
        max_limit_clamps,
        cooldown_seconds: 2.0,
        multiplicative_decrease_factor: 0.75,
        additive_increase_step: 1,
        successes_until_increase: 25,
        startup_ramp_seconds: 0.0,
        default_queue_wait_timeout_seconds: None,
        policy: "aimd".into(),
    }
}

/// A plan with every section populated.
fn full_plan() -> AsyncCapacityPlan {
    let chat = rk("openai", "gpt-x", RequestDomain::Chat);
    let emb = rk("openai", "gpt-x", RequestDomain::Embedding);
    let mut tracker = ObservedMaximaTracker::new();
    tracker.observe_row_groups(3);
    tracker.observe_row_groups(1);
    tracker.observe_row_group_target(2);
    tracker.observe_row_group_blocked("queued_task_guardrail");
    tracker.observe_row_group_blocked("queued_task_guardrail");
    tracker.observe_queue(&BTreeMap::from([(
        group(&["openai", "gpt-x", "chat", "col"]),
        7,
    )]));
    tracker.observe_task(&task_snap(&[("submission", 9)], &[]));
    tracker.observe_transport_pool(&BTreeMap::from([(pm("openai", "gpt-x"), 5)]));
    AsyncCapacityPlanBuilder::new()
        .buffer_size(250, CapacitySource::RunConfig)
        .row_groups(RowGroupSettings {
            concurrency: Some(Sourced::new(4, CapacitySource::DatasetBuilder)),
            mode: RowGroupMode::Adaptive,
            initial_target: Some(1),
            max_admitted_rows: Some(8192),
        })
        .submission_capacity(64, CapacitySource::BenchmarkOverride)
        .task_resource_limits(
            BTreeMap::from([(res("local"), 8)]),
            CapacitySource::EngineInternalConfig,
        )
        .model(ModelDeclaration::new("a", "openai", "gpt-x", Some(6)))
        .model(ModelDeclaration::new("b", "openai", "gpt-x", Some(3)))
        .request_admission_config(
            config(&[(chat.clone(), 2)], &[(emb.clone(), Some(1))]),
            CapacitySource::RunConfig,
        )
        .transport_pool_limits(
            BTreeMap::from([(pm("openai", "gpt-x"), 100)]),
            CapacitySource::AdapterConfig,
        )
        .task_snapshot(task_snap(
            &[("submission", 4), ("local", 2)],
            &[("submission", 64)],
        ))
        .request_snapshots(
            vec![
                req_snap(chat.clone(), 10, 3, 2, 2, 4, Some(12.5)),
                req_snap(emb.clone(), 11, 1, 1, 0, 0, None),
            ],
            vec![pm_snap(pm("openai", "gpt-x"), 12, 3, 2)],
        )
        .queued_tasks_now(BTreeMap::from([(group(&["local", "default"]), 1)]))
        .observed(tracker)
        .build()
        .unwrap()
}

#[test]
fn full_plan_round_trips_through_json() {
    let plan = full_plan();
    let json = serde_json::to_string_pretty(&plan).unwrap();
    let back: AsyncCapacityPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    // Structured keys are pair lists; the section/field shape is the plan's.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let caps = &v["configured"]["provider_model_static_caps"];
    assert_eq!(caps["source"], "model_metadata");
    assert_eq!(caps["value"][0][0]["provider_name"], "openai");
    assert_eq!(caps["value"][0][1]["merge_rule"], "min_same_endpoint");
    assert_eq!(v["configured"]["row_group_admission"]["mode"], "adaptive");
    assert_eq!(
        v["runtime_snapshot"]["request_domain_blocked_until"][0][1],
        12.5
    );
    assert!(v["runtime_snapshot"]["request_domain_blocked_until"][1][1].is_null());
    assert_eq!(
        v["observed_maxima"]["task_leases_by_resource"]["submission"],
        9
    );
}

#[test]
fn empty_plan_round_trips_and_keeps_nulls() {
    let plan = AsyncCapacityPlanBuilder::new().build().unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(
        serde_json::from_str::<AsyncCapacityPlan>(&json).unwrap(),
        plan
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["runtime_snapshot"]["request_domain_current_limits"].is_null());
    assert!(v["configured"]["transport_pool_limits"]["value"].is_null());
}

#[test]
fn explicit_inputs_keep_their_sources() {
    let plan = full_plan();
    let c = &plan.configured;
    assert_eq!(
        (c.buffer_size.value, c.buffer_size.source),
        (Some(250), CapacitySource::RunConfig)
    );
    let rg = &c.row_group_admission;
    assert_eq!(rg.row_group_concurrency.value, Some(4));
    assert_eq!(
        rg.row_group_concurrency.source,
        CapacitySource::DatasetBuilder
    );
    assert_eq!(
        (c.submission_capacity.value, c.submission_capacity.source),
        (Some(64), CapacitySource::BenchmarkOverride)
    );
    assert_eq!(
        c.task_resource_limits.source,
        CapacitySource::EngineInternalConfig
    );
    // submission merged in from submission_capacity, like the controller's config merge.
    assert_eq!(
        c.task_resource_limits.value,
        Some(BTreeMap::from([(res("local"), 8), (res("submission"), 64)]))
    );
    assert_eq!(c.request_resources.source, CapacitySource::RuntimeSnapshot);
    assert_eq!(
        c.provider_model_static_caps.source,
        CapacitySource::ModelMetadata
    );
    assert_eq!(
        c.request_domain_initial_limits.source,
        CapacitySource::RunConfig
    );
    assert_eq!(c.request_admission_config.source, CapacitySource::RunConfig);
    assert_eq!(
        c.transport_pool_limits.source,
        CapacitySource::AdapterConfig
    );
    for (name, fallback, missing) in [
        (
            "buffer_size",
            &c.buffer_size.fallback_from,
            &c.buffer_size.missing_reason,
        ),
        (
            "submission",
            &c.submission_capacity.fallback_from,
            &c.submission_capacity.missing_reason,
        ),
        (
            "limits",
            &c.task_resource_limits.fallback_from,
            &c.task_resource_limits.missing_reason,
        ),
        (
            "resources",
            &c.request_resources.fallback_from,
            &c.request_resources.missing_reason,
        ),
        (
            "caps",
            &c.provider_model_static_caps.fallback_from,
            &c.provider_model_static_caps.missing_reason,
        ),
        (
            "initial",
            &c.request_domain_initial_limits.fallback_from,
            &c.request_domain_initial_limits.missing_reason,
        ),
        (
            "config",
            &c.request_admission_config.fallback_from,
            &c.request_admission_config.missing_reason,
        ),
        (
            "transport",
            &c.transport_pool_limits.fallback_from,
            &c.transport_pool_limits.missing_reason,
        ),
    ] {
        assert_eq!(
            (fallback, missing),
            (&None, &None),
            "{name} should be a direct value"
        );
    }
}

#[test]
fn defaults_and_fallbacks_are_attributed() {
    let chat = rk("p", "m", RequestDomain::Chat);
    let plan = AsyncCapacityPlanBuilder::new()
        .request_admission_config(
            config(&[(chat.clone(), 3)], &[]),
            CapacitySource::EngineInternalConfig,
        )
        .task_snapshot(task_snap(&[], &[("submission", 32), ("local", 4)]))
        .request_snapshots(vec![], vec![pm_snap(pm("p", "m"), 1, 5, 0)])
        .build()
        .unwrap();
    let c = &plan.configured;
    assert_eq!(c.buffer_size.value, Some(DEFAULT_BUFFER_SIZE));
    assert_eq!(c.buffer_size.source, CapacitySource::Default);
    assert_eq!(c.buffer_size.fallback_from.as_deref(), Some("run_config"));
    let rg = &c.row_group_admission.row_group_concurrency;
    assert_eq!(
        (rg.value, rg.source),
        (Some(DEFAULT_ROW_GROUP_CONCURRENCY), CapacitySource::Default)
    );
    assert_eq!(rg.fallback_from.as_deref(), Some("dataset_builder"));
    // Fixed mode: the target is the hard cap.
    assert_eq!(c.row_group_admission.mode, RowGroupMode::Fixed);
    assert_eq!(
        c.row_group_admission.target_in_flight,
        Some(DEFAULT_ROW_GROUP_CONCURRENCY)
    );
    assert_eq!(
        c.submission_capacity.value,
        Some(DEFAULT_SUBMISSION_CAPACITY)
    );
    assert_eq!(
        c.submission_capacity.fallback_from.as_deref(),
        Some("run_config")
    );
    // Task limits: the snapshot the controller reported, marked as a fallback from engine config.
    assert_eq!(
        c.task_resource_limits.source,
        CapacitySource::RuntimeSnapshot
    );
    assert_eq!(
        c.task_resource_limits.fallback_from.as_deref(),
        Some("engine_internal_config")
    );
    assert_eq!(
        c.task_resource_limits.value.as_ref().unwrap()[&res("local")],
        4
    );
    // No resources observed: the config's resources, marked as a fallback from runtime snapshots.
    assert_eq!(c.request_resources.value, Some(vec![chat.clone()]));
    assert_eq!(
        c.request_resources.source,
        CapacitySource::EngineInternalConfig
    );
    assert_eq!(
        c.request_resources.fallback_from.as_deref(),
        Some("runtime_snapshot")
    );
    // No model declarations: static caps from the provider/model snapshot.
    assert_eq!(
        c.provider_model_static_caps.source,
        CapacitySource::RuntimeSnapshot
    );
    assert_eq!(
        c.provider_model_static_caps.fallback_from.as_deref(),
        Some("model_metadata")
    );
    assert_eq!(
        c.provider_model_static_caps.value.as_ref().unwrap()[&pm("p", "m")].cap,
        5
    );
    assert_eq!(
        c.request_domain_initial_limits.source,
        CapacitySource::EngineInternalConfig
    );
    assert_eq!(
        c.request_domain_initial_limits.value.as_ref().unwrap()[&chat],
        3
    );

    // Without a task snapshot the engine default {submission} is used.
    let plan = AsyncCapacityPlanBuilder::new()
        .submission_capacity(10, CapacitySource::RunConfig)
        .build()
        .unwrap();
    let limits = &plan.configured.task_resource_limits;
    assert_eq!(
        limits.value,
        Some(BTreeMap::from([(res("submission"), 10)]))
    );
    assert_eq!(limits.source, CapacitySource::Default);
    assert_eq!(
        limits.fallback_from.as_deref(),
        Some("engine_internal_config")
    );
}

#[test]
fn aliases_of_one_endpoint_min_merge_and_are_all_recorded() {
    let plan = AsyncCapacityPlanBuilder::new()
        .models([
            ModelDeclaration::new("fast", "openai", "gpt-x", Some(8)),
            ModelDeclaration::new("careful", "openai", "gpt-x", Some(2)),
            ModelDeclaration::new("plain", "openai", "gpt-x", None),
            ModelDeclaration::new("fast", "openai", "gpt-x", Some(8)), // identical repeat: ignored
            ModelDeclaration::new("emb", "openai", "embed-y", Some(5)),
            ModelDeclaration::new("nocap", "local", "llama", None),
        ])
        .build()
        .unwrap();
    let caps = plan.configured.provider_model_static_caps.value.unwrap();
    assert_eq!(caps.len(), 3);
    let gx = &caps[&pm("openai", "gpt-x")];
    assert_eq!(gx.cap, 2);
    assert_eq!(gx.aliases, vec!["careful", "fast", "plain"]);
    assert_eq!(
        gx.raw_caps,
        BTreeMap::from([
            ("careful".to_string(), Some(2)),
            ("fast".to_string(), Some(8)),
            ("plain".to_string(), None),
        ])
    );
    assert_eq!(gx.merge_rule, CapMergeRule::MinSameEndpoint);
    assert_eq!(caps[&pm("openai", "embed-y")].cap, 5);
    // No alias declared a cap: the model-metadata default, with the raw None recorded.
    let nocap = &caps[&pm("local", "llama")];
    assert_eq!(nocap.cap, DEFAULT_MAX_PARALLEL_REQUESTS);
    assert_eq!(
        nocap.raw_caps,
        BTreeMap::from([("nocap".to_string(), None)])
    );
}

#[test]
fn unavailable_values_are_missing_with_a_reason_not_zero() {
    let plan = AsyncCapacityPlanBuilder::new().build().unwrap();
    let c = &plan.configured;
    assert_eq!(c.request_resources.value, None);
    assert_eq!(
        c.request_resources.missing_reason.as_deref(),
        Some(MISSING_REQUEST_RESOURCES)
    );
    assert_eq!(c.provider_model_static_caps.value, None);
    assert_eq!(
        c.provider_model_static_caps.missing_reason.as_deref(),
        Some(MISSING_STATIC_CAPS)
    );
    assert_eq!(c.request_domain_initial_limits.value, None);
    assert_eq!(
        c.request_domain_initial_limits.missing_reason.as_deref(),
        Some(MISSING_DOMAIN_LIMITS)
    );
    assert_eq!(c.request_admission_config.value, None);
    assert_eq!(
        c.request_admission_config.missing_reason.as_deref(),
        Some(MISSING_REQUEST_CONFIG)
    );
    assert_eq!(c.transport_pool_limits.value, None);
    assert_eq!(
        c.transport_pool_limits.source,
        CapacitySource::AdapterConfig
    );
    assert_eq!(
        c.transport_pool_limits.missing_reason.as_deref(),
        Some(MISSING_TRANSPORT_POOL)
    );
    assert_eq!(c.row_group_admission.observed_in_flight, None);
    assert_eq!(
        plan.runtime_snapshot,
        AsyncCapacityRuntimeSnapshot::default()
    );
    assert_eq!(plan.observed_maxima.transport_pool_utilization, None);
    // Known values never carry a missing reason.
    assert_eq!(c.buffer_size.missing_reason, None);
}

#[test]
fn domain_initial_limits_are_clamped_under_the_static_cap() {
    let chat = rk("openai", "gpt-x", RequestDomain::Chat);
    let emb = rk("openai", "gpt-x", RequestDomain::Embedding);
    let img = rk("openai", "gpt-x", RequestDomain::Image);
    let unknown = rk("other", "m", RequestDomain::Chat);
    let observed = rk("openai", "gpt-x", RequestDomain::Healthcheck);
    let plan = AsyncCapacityPlanBuilder::new()
        .model(ModelDeclaration::new("a", "openai", "gpt-x", Some(4)))
        .request_admission_config(
            config(
                &[
                    (chat.clone(), 50),
                    (emb.clone(), 0),
                    (unknown.clone(), 9),
                    (observed.clone(), 6),
                ],
                &[(img.clone(), Some(2))],
            ),
            CapacitySource::RunConfig,
        )
        .request_snapshots(
            vec![req_snap(observed.clone(), 1, 3, 3, 0, 0, None)],
            vec![],
        )
        .build()
        .unwrap();
    let limits = plan.configured.request_domain_initial_limits.value.unwrap();
    assert_eq!(
        limits[&chat], 4,
        "config may not raise a domain above the static cap"
    );
    assert_eq!(limits[&emb], 1, "initial limit is at least 1");
    assert_eq!(limits[&img], 2, "a clamp lowers the effective max");
    assert_eq!(
        limits[&unknown], 1,
        "an unregistered endpoint's cap is 1, as in the controller"
    );
    assert_eq!(
        limits[&observed], 3,
        "an observed domain uses its snapshot's effective max"
    );
}

#[test]
fn observed_maxima_keep_the_max_and_fall_back_to_the_current_snapshot() {
    let chat = rk("p", "m", RequestDomain::Chat);
    let emb = rk("p", "m", RequestDomain::Embedding);
    let g = group(&["p", "m", "chat", "col"]);
    let mut t = ObservedMaximaTracker::new();
    t.observe_task(&task_snap(&[("submission", 5)], &[]));
    t.observe_task(&task_snap(&[("submission", 2), ("local", 1)], &[]));
    t.observe_request(
        &[req_snap(chat.clone(), 2, 8, 6, 5, 9, None)],
        &[pm_snap(pm("p", "m"), 2, 8, 5)],
    );
    // An older snapshot arriving late can only fail to raise a maximum.
    t.observe_request(
        &[req_snap(chat.clone(), 1, 8, 2, 1, 0, None)],
        &[pm_snap(pm("p", "m"), 1, 8, 1)],
    );
    t.observe_queue(&BTreeMap::from([(g.clone(), 3)]));
    t.observe_queue(&BTreeMap::from([(g.clone(), 1)]));
    t.observe_row_groups(2);
    t.observe_row_groups(5);
    t.observe_row_groups(0);

    let plan = AsyncCapacityPlanBuilder::new()
        .task_snapshot(task_snap(&[("submission", 1), ("extra", 7)], &[]))
        .request_snapshots(
            vec![
                req_snap(chat.clone(), 3, 8, 4, 0, 0, None),
                req_snap(emb.clone(), 3, 2, 2, 1, 6, None),
            ],
            vec![pm_snap(pm("p", "m"), 3, 8, 1)],
        )
        .observed(t)
        .build()
        .unwrap();
    let o = &plan.observed_maxima;
    assert_eq!(o.row_groups_in_flight, 5);
    assert_eq!(
        plan.configured.row_group_admission.observed_in_flight,
        Some(0)
    );
    assert_eq!(o.queued_tasks_by_group, BTreeMap::from([(g.label(), 3)]));
    assert_eq!(
        o.task_leases_by_resource,
        BTreeMap::from([(res("extra"), 7), (res("local"), 1), (res("submission"), 5)])
    );
    // Tracked resources keep their maxima; the untracked embedding domain comes from the snapshot.
    assert_eq!(
        o.request_waiters_by_resource,
        BTreeMap::from([(chat.clone(), 9), (emb.clone(), 6)])
    );
    assert_eq!(
        o.request_in_flight_by_resource,
        BTreeMap::from([(chat.clone(), 5), (emb.clone(), 1)])
    );
    assert_eq!(
        o.request_domain_current_limits,
        BTreeMap::from([(chat.clone(), 6), (emb.clone(), 2)])
    );
    assert_eq!(
        o.provider_model_aggregate_in_flight,
        BTreeMap::from([(pm("p", "m"), 5)])
    );
    // Runtime section is the current snapshot, not the maxima.
    let rt = &plan.runtime_snapshot;
    assert_eq!(rt.request_domain_current_limits.as_ref().unwrap()[&chat], 4);
    assert_eq!(
        rt.provider_model_aggregate_in_flight.as_ref().unwrap()[&pm("p", "m")],
        1
    );

    // An empty tracker: every map is exactly the current snapshot.
    let plan = AsyncCapacityPlanBuilder::new()
        .task_snapshot(task_snap(&[("submission", 3)], &[]))
        .request_snapshots(vec![req_snap(chat.clone(), 1, 4, 4, 2, 1, None)], vec![])
        .queued_tasks_now(BTreeMap::from([(g.clone(), 4)]))
        .build()
        .unwrap();
    let o = &plan.observed_maxima;
    assert_eq!(
        o.task_leases_by_resource,
        BTreeMap::from([(res("submission"), 3)])
    );
    assert_eq!(
        o.request_in_flight_by_resource,
        BTreeMap::from([(chat.clone(), 2)])
    );
    assert_eq!(o.request_waiters_by_resource, BTreeMap::from([(chat, 1)]));
    assert_eq!(
        o.queued_tasks_by_group,
        BTreeMap::from([("model:p/m/chat/col".to_string(), 4)])
    );
}

#[test]
fn runtime_snapshot_uses_the_freshest_snapshot_per_resource() {
    let chat = rk("p", "m", RequestDomain::Chat);
    let plan = AsyncCapacityPlanBuilder::new()
        .request_snapshots(
            vec![
                req_snap(chat.clone(), 9, 4, 3, 0, 0, Some(1.0)),
                req_snap(chat.clone(), 4, 4, 1, 0, 0, None),
            ],
            vec![
                pm_snap(pm("p", "m"), 7, 4, 2),
                pm_snap(pm("p", "m"), 3, 4, 0),
            ],
        )
        .build()
        .unwrap();
    let rt = &plan.runtime_snapshot;
    assert_eq!(rt.request_domain_current_limits.as_ref().unwrap()[&chat], 3);
    assert_eq!(
        rt.request_domain_blocked_until.as_ref().unwrap()[&chat],
        Some(1.0)
    );
    assert_eq!(
        rt.provider_model_aggregate_in_flight.as_ref().unwrap()[&pm("p", "m")],
        2
    );
}

#[test]
fn adaptive_row_groups_report_target_and_blocked_reasons() {
    let plan = full_plan();
    let rg = &plan.configured.row_group_admission;
    assert_eq!(rg.mode, RowGroupMode::Adaptive);
    assert_eq!(rg.target_in_flight, Some(2));
    assert_eq!(rg.observed_max_target, Some(2));
    assert_eq!(rg.observed_in_flight, Some(1));
    assert_eq!(rg.max_admitted_rows, Some(8192));
    assert_eq!(
        rg.blocked_reasons,
        BTreeMap::from([("queued_task_guardrail".to_string(), 2)])
    );

    // Without target observations the initial target is clamped to [1, hard cap].
    let plan = AsyncCapacityPlanBuilder::new()
        .row_groups(RowGroupSettings {
            concurrency: Some(Sourced::new(3, CapacitySource::RunConfig)),
            mode: RowGroupMode::Adaptive,
            initial_target: Some(10),
            max_admitted_rows: None,
        })
        .build()
        .unwrap();
    assert_eq!(
        plan.configured.row_group_admission.target_in_flight,
        Some(3)
    );
}

#[test]
fn inconsistent_inputs_are_typed_errors_naming_the_field() {
    let cases: Vec<(AsyncCapacityPlanBuilder, &str)> = vec![
        (
            AsyncCapacityPlanBuilder::new().buffer_size(0, CapacitySource::RunConfig),
            "buffer_size",
        ),
        (
            AsyncCapacityPlanBuilder::new().submission_capacity(0, CapacitySource::RunConfig),
            "submission_capacity",
        ),
        (
            AsyncCapacityPlanBuilder::new().row_groups(RowGroupSettings {
                concurrency: Some(Sourced::new(0, CapacitySource::DatasetBuilder)),
                ..Default::default()
            }),
            "row_group_admission.row_group_concurrency",
        ),
        (
            AsyncCapacityPlanBuilder::new().row_groups(RowGroupSettings {
                mode: RowGroupMode::Adaptive,
                initial_target: Some(0),
                ..Default::default()
            }),
            "row_group_admission.initial_target",
        ),
        (
            AsyncCapacityPlanBuilder::new().row_groups(RowGroupSettings {
                max_admitted_rows: Some(0),
                ..Default::default()
            }),
            "row_group_admission.max_admitted_rows",
        ),
        (
            AsyncCapacityPlanBuilder::new().task_resource_limits(
                BTreeMap::from([(res("local"), 0)]),
                CapacitySource::EngineInternalConfig,
            ),
            "task_resource_limits.local",
        ),
        (
            AsyncCapacityPlanBuilder::new()
                .model(ModelDeclaration::new("ok", "p", "m", Some(1)))
                .model(ModelDeclaration::new("zero", "p", "m", Some(0))),
            "models[1].max_parallel_requests",
        ),
        (
            AsyncCapacityPlanBuilder::new()
                .model(ModelDeclaration::new("a", "p", "m", Some(1)))
                .model(ModelDeclaration::new("a", "p", "other", Some(1))),
            "models[1].alias",
        ),
        (
            AsyncCapacityPlanBuilder::new().model(ModelDeclaration::new(" ", "p", "m", None)),
            "models[0].alias",
        ),
        (
            AsyncCapacityPlanBuilder::new().model(ModelDeclaration::new("a", "", "m", None)),
            "models[0].provider",
        ),
        (
            AsyncCapacityPlanBuilder::new().model(ModelDeclaration::new("a", "p", "", None)),
            "models[0].model_id",
        ),
        (
            AsyncCapacityPlanBuilder::new().transport_pool_limits(
                BTreeMap::from([(pm("p", "m"), 0)]),
                CapacitySource::AdapterConfig,
            ),
            "transport_pool_limits.p/m",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().expect_err(field);
        assert_eq!(err.field, field, "{err}");
        assert!(!err.message.is_empty());
        assert!(err.to_string().starts_with(field));
    }
}

/// Every leaf field name of the plan's JSON form, as `section.field` (row-group fields nested).
fn field_paths(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for (section, fields) in v.as_object().unwrap() {
        for (name, value) in fields.as_object().unwrap() {
            if name == "row_group_admission" {
                for sub in value.as_object().unwrap().keys() {
                    out.push(format!("{section}.{name}.{sub}"));
                }
            } else {
                out.push(format!("{section}.{name}"));
            }
        }
    }
    out
}

#[test]
fn explain_mentions_every_field_with_its_attribution() {
    for plan in [
        full_plan(),
        AsyncCapacityPlanBuilder::new().build().unwrap(),
    ] {
        let text = plan.explain();
        let paths = field_paths(&serde_json::to_value(&plan).unwrap());
        assert_eq!(paths.len(), 8 + 7 + 4 + 8, "plan shape changed: {paths:?}");
        for path in &paths {
            assert!(
                text.contains(path.as_str()),
                "explain() lacks {path}:\n{text}"
            );
        }
        assert!(text.contains("fallback_from") && text.contains("missing_reason"));
    }
    let empty = AsyncCapacityPlanBuilder::new().build().unwrap().explain();
    for reason in [
        MISSING_TRANSPORT_POOL,
        MISSING_STATIC_CAPS,
        MISSING_REQUEST_CONFIG,
        "run_config",
    ] {
        assert!(empty.contains(reason), "explain() lacks {reason}:\n{empty}");
    }
    let full = full_plan().explain();
    assert!(
        full.contains("openai/gpt-x=3 (min_same_endpoint of a:6 b:3)"),
        "{full}"
    );
    assert!(full.contains("benchmark_override"));
}

#[test]
fn non_finite_blocked_until_survives_json() {
    let chat = rk("p", "m", RequestDomain::Chat);
    let plan = AsyncCapacityPlanBuilder::new()
        .request_snapshots(
            vec![req_snap(chat.clone(), 1, 1, 1, 0, 0, Some(f64::INFINITY))],
            vec![],
        )
        .build()
        .unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains("\"inf\""), "{json}");
    let back: AsyncCapacityPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back.runtime_snapshot.request_domain_blocked_until.unwrap()[&chat],
        Some(f64::INFINITY)
    );
}
