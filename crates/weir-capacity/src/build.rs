//! Plan construction: validates `CapacityInputs` and applies the per-field source precedence.
//!
//! Precedence (capacity-model.md): an explicit input wins, then a runtime snapshot where one
//! exists, then the documented default — each fallback records `fallback_from`. A value with no
//! data and no safe fallback is present with `value: None` and a `missing_reason`, never a zero.

use crate::error::CapacityPlanError;
use crate::inputs::{
    CapacityInputs, ModelDeclaration, Sourced, DEFAULT_ADAPTIVE_ROW_GROUP_INITIAL_TARGET,
    DEFAULT_BUFFER_SIZE, DEFAULT_MAX_PARALLEL_REQUESTS, DEFAULT_ROW_GROUP_CONCURRENCY,
    DEFAULT_SUBMISSION_CAPACITY,
};
use crate::plan::{
    AsyncCapacityConfigured, AsyncCapacityObservedMaxima, AsyncCapacityPlan,
    AsyncCapacityRuntimeSnapshot, PairMap, RowGroupAdmission, RowGroupMode,
};
use crate::tracker::raise;
use std::collections::{BTreeMap, BTreeSet};
use weir_contracts::{
    CapMergeRule, CapacitySource, CapacityValue, ProviderModelKey, ProviderModelStaticCap,
    RequestPressureSnapshot, RequestResourceKey, SchedulerResourceKey,
};

/// Missing reason: no request-domain snapshot and no configured resources.
pub const MISSING_REQUEST_RESOURCES: &str = "request admission has not observed any resources";
/// Missing reason: no model declarations and no provider/model snapshot.
pub const MISSING_STATIC_CAPS: &str = "request admission has no registered models";
/// Missing reason: no configured or observed request-domain limits.
pub const MISSING_DOMAIN_LIMITS: &str = "request admission has not observed any domain limits";
/// Missing reason: no request-admission config snapshot supplied.
pub const MISSING_REQUEST_CONFIG: &str =
    "request admission config is not exposed by the pressure provider";
/// Missing reason: no transport pool limits supplied.
pub const MISSING_TRANSPORT_POOL: &str = "transport pool is adapter-specific";

/// An explicit positive value, or the documented default marked as a fallback from `tried`.
///
/// Returns the chosen number alongside its `CapacityValue` so callers need not unwrap it.
fn positive_or_default(
    input: &Option<Sourced<u32>>,
    field: &str,
    default: u32,
    tried: CapacitySource,
) -> Result<(u32, CapacityValue<u32>), CapacityPlanError> {
    match input {
        Some(s) if s.value == 0 => Err(CapacityPlanError::new(field, "must be at least 1")),
        Some(s) => Ok((s.value, CapacityValue::known(s.value, s.source))),
        None => Ok((
            default,
            CapacityValue::known(default, CapacitySource::Default)
                .with_fallback_from(tried.as_str()),
        )),
    }
}

/// Keeps the freshest (highest-sequence) snapshot per resource, so a stale copy never wins.
fn latest_by_resource(
    snapshots: &[RequestPressureSnapshot],
) -> BTreeMap<RequestResourceKey, &RequestPressureSnapshot> {
    let mut latest: BTreeMap<RequestResourceKey, &RequestPressureSnapshot> = BTreeMap::new();
    for s in snapshots {
        match latest.get(&s.resource) {
            Some(prev) if prev.sequence > s.sequence => {}
            _ => {
                latest.insert(s.resource.clone(), s);
            }
        }
    }
    latest
}

/// Min-merges alias declarations into one static cap per endpoint, rejecting inconsistent aliases.
fn merge_static_caps(
    models: &[ModelDeclaration],
) -> Result<BTreeMap<ProviderModelKey, ProviderModelStaticCap>, CapacityPlanError> {
    let mut by_endpoint: BTreeMap<ProviderModelKey, Vec<(String, Option<u32>)>> = BTreeMap::new();
    let mut seen: BTreeMap<&str, &ModelDeclaration> = BTreeMap::new();
    for (i, m) in models.iter().enumerate() {
        if m.alias.trim().is_empty() {
            return Err(CapacityPlanError::new(
                format!("models[{i}].alias"),
                "must be non-empty",
            ));
        }
        let key = ProviderModelKey::new(&m.provider, &m.model_id).map_err(|e| {
            let field = if e.field == "provider_name" {
                "provider"
            } else {
                "model_id"
            };
            CapacityPlanError::new(format!("models[{i}].{field}"), e.message)
        })?;
        if m.max_parallel_requests == Some(0) {
            return Err(CapacityPlanError::new(
                format!("models[{i}].max_parallel_requests"),
                format!(
                    "alias {:?} declares 0; a static cap must be at least 1",
                    m.alias
                ),
            ));
        }
        if let Some(prev) = seen.insert(m.alias.as_str(), m) {
            if prev == m {
                continue; // an identical repeat adds nothing
            }
            return Err(CapacityPlanError::new(
                format!("models[{i}].alias"),
                format!(
                    "alias {:?} is declared twice with different endpoints or caps",
                    m.alias
                ),
            ));
        }
        by_endpoint
            .entry(key)
            .or_default()
            .push((m.alias.clone(), m.max_parallel_requests));
    }
    Ok(by_endpoint
        .into_iter()
        .map(|(key, raw)| {
            let cap = ProviderModelStaticCap::merge(raw.iter().cloned()).unwrap_or_else(|| {
                // No alias declared a cap: the model-metadata default applies; raw caps stay None.
                let raw_caps: BTreeMap<String, Option<u32>> = raw.into_iter().collect();
                ProviderModelStaticCap {
                    cap: DEFAULT_MAX_PARALLEL_REQUESTS,
                    aliases: raw_caps.keys().cloned().collect(),
                    raw_caps,
                    merge_rule: CapMergeRule::MinSameEndpoint,
                }
            });
            (key, cap)
        })
        .collect())
}

impl CapacityInputs {
    /// Validates the inputs and computes the plan; an inconsistent input is a typed error naming it.
    pub fn build(&self) -> Result<AsyncCapacityPlan, CapacityPlanError> {
        let latest = self
            .request_snapshots
            .as_deref()
            .map(latest_by_resource)
            .unwrap_or_default();

        let (_, buffer_size) = positive_or_default(
            &self.buffer_size,
            "buffer_size",
            DEFAULT_BUFFER_SIZE,
            CapacitySource::RunConfig,
        )?;
        let row_group_admission = self.row_group_admission()?;
        let (submission, submission_capacity) = positive_or_default(
            &self.submission_capacity,
            "submission_capacity",
            DEFAULT_SUBMISSION_CAPACITY,
            CapacitySource::RunConfig,
        )?;
        let task_resource_limits = self.task_resource_limits(submission)?;
        let request_resources = self.request_resources(&latest);
        let provider_model_static_caps = self.static_caps()?;
        let request_domain_initial_limits =
            self.request_domain_initial_limits(&latest, &provider_model_static_caps);
        let request_admission_config = match &self.request_admission_config {
            Some(s) => CapacityValue::known(s.value.clone(), s.source),
            None => {
                CapacityValue::missing(CapacitySource::EngineInternalConfig, MISSING_REQUEST_CONFIG)
            }
        };
        let transport_pool_limits = self.transport_pool_limits()?;

        Ok(AsyncCapacityPlan {
            configured: AsyncCapacityConfigured {
                buffer_size,
                row_group_admission,
                submission_capacity,
                task_resource_limits,
                request_resources,
                provider_model_static_caps,
                request_domain_initial_limits,
                request_admission_config,
                transport_pool_limits,
            },
            runtime_snapshot: self.runtime_snapshot(&latest),
            observed_maxima: self.observed_maxima(&latest),
        })
    }

    fn row_group_admission(&self) -> Result<RowGroupAdmission, CapacityPlanError> {
        let settings = &self.row_groups;
        let (hard_cap, row_group_concurrency) = positive_or_default(
            &settings.concurrency,
            "row_group_admission.row_group_concurrency",
            DEFAULT_ROW_GROUP_CONCURRENCY,
            CapacitySource::DatasetBuilder,
        )?;
        if settings.initial_target == Some(0) {
            return Err(CapacityPlanError::new(
                "row_group_admission.initial_target",
                "must be at least 1",
            ));
        }
        if settings.max_admitted_rows == Some(0) {
            return Err(CapacityPlanError::new(
                "row_group_admission.max_admitted_rows",
                "must be at least 1 when set",
            ));
        }
        let tracked = &self.observed;
        let (target_in_flight, observed_max_target) = match settings.mode {
            // Fixed mode: the target is the hard cap and never moves.
            RowGroupMode::Fixed => (Some(hard_cap), Some(hard_cap)),
            RowGroupMode::Adaptive => {
                let initial = settings
                    .initial_target
                    .unwrap_or(DEFAULT_ADAPTIVE_ROW_GROUP_INITIAL_TARGET)
                    .clamp(1, hard_cap);
                let now = tracked.row_group_target_now.unwrap_or(initial);
                let max = tracked.row_group_target_max.unwrap_or(now).max(now);
                (Some(now), Some(max))
            }
        };
        Ok(RowGroupAdmission {
            row_group_concurrency,
            observed_in_flight: tracked.row_groups_in_flight_now,
            mode: settings.mode,
            target_in_flight,
            observed_max_target,
            max_admitted_rows: settings.max_admitted_rows,
            blocked_reasons: tracked.row_group_blocked.clone(),
        })
    }

    fn task_resource_limits(
        &self,
        submission: u32,
    ) -> Result<CapacityValue<BTreeMap<SchedulerResourceKey, u32>>, CapacityPlanError> {
        if let Some(s) = &self.task_resource_limits {
            if let Some((key, _)) = s.value.iter().find(|(_, &v)| v == 0) {
                return Err(CapacityPlanError::new(
                    format!("task_resource_limits.{key}"),
                    "must be at least 1",
                ));
            }
            // Same merge as the controller: an explicit `submission` entry overrides submission_capacity.
            let mut limits = s.value.clone();
            limits
                .entry(SchedulerResourceKey::submission())
                .or_insert(submission);
            return Ok(CapacityValue::known(limits, s.source));
        }
        if let Some(snap) = self
            .task_snapshot
            .as_ref()
            .filter(|s| !s.resource_limits.is_empty())
        {
            return Ok(CapacityValue::known(
                snap.resource_limits.clone(),
                CapacitySource::RuntimeSnapshot,
            )
            .with_fallback_from(CapacitySource::EngineInternalConfig.as_str()));
        }
        let limits = BTreeMap::from([(SchedulerResourceKey::submission(), submission)]);
        Ok(CapacityValue::known(limits, CapacitySource::Default)
            .with_fallback_from(CapacitySource::EngineInternalConfig.as_str()))
    }

    fn request_resources(
        &self,
        latest: &BTreeMap<RequestResourceKey, &RequestPressureSnapshot>,
    ) -> CapacityValue<Vec<RequestResourceKey>> {
        if !latest.is_empty() {
            return CapacityValue::known(
                latest.keys().cloned().collect(),
                CapacitySource::RuntimeSnapshot,
            );
        }
        match &self.request_admission_config {
            Some(cfg) if !cfg.value.resources.is_empty() => {
                let sorted: BTreeSet<RequestResourceKey> =
                    cfg.value.resources.iter().cloned().collect();
                CapacityValue::known(sorted.into_iter().collect(), cfg.source)
                    .with_fallback_from(CapacitySource::RuntimeSnapshot.as_str())
            }
            _ => CapacityValue::missing(CapacitySource::RuntimeSnapshot, MISSING_REQUEST_RESOURCES),
        }
    }

    fn static_caps(
        &self,
    ) -> Result<CapacityValue<PairMap<ProviderModelKey, ProviderModelStaticCap>>, CapacityPlanError>
    {
        if !self.models.is_empty() {
            let caps = merge_static_caps(&self.models)?;
            return Ok(CapacityValue::known(
                caps.into(),
                CapacitySource::ModelMetadata,
            ));
        }
        let snapshots = self.provider_model_snapshots.as_deref().unwrap_or_default();
        if snapshots.is_empty() {
            return Ok(CapacityValue::missing(
                CapacitySource::ModelMetadata,
                MISSING_STATIC_CAPS,
            ));
        }
        let caps = snapshots
            .iter()
            .map(|s| {
                let cap = ProviderModelStaticCap {
                    cap: s.static_cap,
                    aliases: s.aliases.clone(),
                    raw_caps: s
                        .raw_caps
                        .iter()
                        .map(|(a, &c)| (a.clone(), Some(c)))
                        .collect(),
                    merge_rule: CapMergeRule::MinSameEndpoint,
                };
                (s.provider_model.clone(), cap)
            })
            .collect::<BTreeMap<_, _>>();
        Ok(
            CapacityValue::known(caps.into(), CapacitySource::RuntimeSnapshot)
                .with_fallback_from(CapacitySource::ModelMetadata.as_str()),
        )
    }

    /// Initial limit per domain: `max(1, min(configured, effective_max))`, or `effective_max` if unconfigured.
    ///
    /// An observed domain's effective max comes from its snapshot; an unobserved one is computed
    /// like the controller does: `max(1, min(static cap, clamp))`, with an unknown endpoint at 1,
    /// so request config can lower a domain under the static cap but never raise it.
    fn request_domain_initial_limits(
        &self,
        latest: &BTreeMap<RequestResourceKey, &RequestPressureSnapshot>,
        static_caps: &CapacityValue<PairMap<ProviderModelKey, ProviderModelStaticCap>>,
    ) -> CapacityValue<PairMap<RequestResourceKey, u32>> {
        let config = self.request_admission_config.as_ref().map(|s| &s.value);
        let mut keys: BTreeSet<&RequestResourceKey> = latest.keys().collect();
        if let Some(cfg) = config {
            keys.extend(cfg.resources.iter());
            keys.extend(cfg.initial_limits.keys());
            keys.extend(cfg.max_limit_clamps.keys());
        }
        let effective_max = |key: &RequestResourceKey| -> u32 {
            if let Some(s) = latest.get(key) {
                return s.effective_max;
            }
            let cap = static_caps
                .value
                .as_ref()
                .and_then(|caps| caps.get(&key.provider_model()))
                .map_or(1, |c| c.cap);
            let clamp = config
                .and_then(|c| c.max_limit_clamps.get(key).copied().flatten())
                .unwrap_or(cap);
            cap.min(clamp).max(1)
        };
        let limits: BTreeMap<RequestResourceKey, u32> = keys
            .into_iter()
            .map(|key| {
                let max = effective_max(key);
                let initial = match config.and_then(|c| c.initial_limits.get(key)) {
                    Some(&configured) => configured.min(max).max(1),
                    None => max,
                };
                (key.clone(), initial)
            })
            .collect();
        let source = self
            .request_admission_config
            .as_ref()
            .map_or(CapacitySource::RuntimeSnapshot, |s| s.source);
        if limits.is_empty() {
            CapacityValue::missing(source, MISSING_DOMAIN_LIMITS)
        } else {
            CapacityValue::known(limits.into(), source)
        }
    }

    fn transport_pool_limits(
        &self,
    ) -> Result<CapacityValue<PairMap<ProviderModelKey, u32>>, CapacityPlanError> {
        match &self.transport_pool_limits {
            Some(s) => {
                if let Some((key, _)) = s.value.iter().find(|(_, &v)| v == 0) {
                    return Err(CapacityPlanError::new(
                        format!("transport_pool_limits.{key}"),
                        "must be at least 1",
                    ));
                }
                Ok(CapacityValue::known(s.value.clone().into(), s.source))
            }
            None => Ok(CapacityValue::missing(
                CapacitySource::AdapterConfig,
                MISSING_TRANSPORT_POOL,
            )),
        }
    }

    fn runtime_snapshot(
        &self,
        latest: &BTreeMap<RequestResourceKey, &RequestPressureSnapshot>,
    ) -> AsyncCapacityRuntimeSnapshot {
        let captured = self.request_snapshots.is_some();
        let per_domain = |f: fn(&RequestPressureSnapshot) -> u32| {
            captured.then(|| latest.iter().map(|(k, s)| (k.clone(), f(s))).collect())
        };
        AsyncCapacityRuntimeSnapshot {
            request_domain_current_limits: per_domain(|s| s.current_limit),
            request_domain_effective_max: per_domain(|s| s.effective_max),
            request_domain_blocked_until: captured.then(|| {
                latest
                    .iter()
                    .map(|(k, s)| (k.clone(), s.blocked_until_monotonic))
                    .collect()
            }),
            provider_model_aggregate_in_flight: self.provider_model_snapshots.as_ref().map(|v| {
                let mut freshest: BTreeMap<ProviderModelKey, (u64, u32)> = BTreeMap::new();
                for s in v {
                    let entry = freshest
                        .entry(s.provider_model.clone())
                        .or_insert((s.sequence, s.aggregate_in_flight));
                    if s.sequence >= entry.0 {
                        *entry = (s.sequence, s.aggregate_in_flight);
                    }
                }
                freshest.into_iter().map(|(k, (_, n))| (k, n)).collect()
            }),
        }
    }

    /// Tracked maxima max-merged with the current snapshot (so an untracked map equals the snapshot).
    fn observed_maxima(
        &self,
        latest: &BTreeMap<RequestResourceKey, &RequestPressureSnapshot>,
    ) -> AsyncCapacityObservedMaxima {
        let t = &self.observed;

        let mut queued = t.queued_tasks_by_group.clone();
        for (group, &n) in self.queued_tasks_now.iter().flatten() {
            raise(&mut queued, group, n);
        }
        let mut queued_tasks_by_group = BTreeMap::new();
        for (group, n) in queued {
            raise(&mut queued_tasks_by_group, &group.label(), n);
        }

        let mut task_leases_by_resource = t.task_leases_by_resource.clone();
        for (r, &n) in self.task_snapshot.iter().flat_map(|s| &s.leased_resources) {
            raise(&mut task_leases_by_resource, r, n);
        }

        let mut waiters = t.request_waiters_by_resource.clone();
        let mut in_flight = t.request_in_flight_by_resource.clone();
        let mut limits = t.request_domain_current_limits.clone();
        for (k, s) in latest {
            raise(&mut waiters, k, s.waiters);
            raise(&mut in_flight, k, s.in_flight_count);
            raise(&mut limits, k, s.current_limit);
        }

        let mut aggregate = t.provider_model_aggregate_in_flight.clone();
        for s in self.provider_model_snapshots.iter().flatten() {
            raise(&mut aggregate, &s.provider_model, s.aggregate_in_flight);
        }

        AsyncCapacityObservedMaxima {
            row_groups_in_flight: t.row_groups_in_flight,
            queued_tasks_by_group,
            task_leases_by_resource,
            request_waiters_by_resource: waiters,
            request_in_flight_by_resource: in_flight,
            provider_model_aggregate_in_flight: aggregate,
            request_domain_current_limits: limits,
            transport_pool_utilization: t.transport_pool_utilization.clone(),
        }
    }
}
