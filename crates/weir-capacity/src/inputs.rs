//! The read-only inputs of a plan (`CapacityInputs`), its fluent builder and the documented defaults.

use crate::error::CapacityPlanError;
use crate::plan::{AsyncCapacityPlan, RowGroupMode};
use crate::tracker::ObservedMaximaTracker;
use std::collections::BTreeMap;
use weir_contracts::{
    CapacitySource, ProviderModelKey, ProviderModelPressureSnapshot,
    RequestAdmissionConfigSnapshot, RequestPressureSnapshot, SchedulerResourceKey,
    TaskAdmissionSnapshot, TaskGroupKey,
};

/// Documented default record-window size (`RunConfig.buffer_size`).
pub const DEFAULT_BUFFER_SIZE: u32 = 1000;
/// Documented default hard cap on row groups in flight (`max_concurrent_row_groups`).
pub const DEFAULT_ROW_GROUP_CONCURRENCY: u32 = 3;
/// Documented default `submission` capacity (max in-flight tasks).
pub const DEFAULT_SUBMISSION_CAPACITY: u32 = 1024;
/// Model-metadata default `max_parallel_requests` when no alias of an endpoint declares one.
pub const DEFAULT_MAX_PARALLEL_REQUESTS: u32 = 4;
/// Initial adaptive row-group target when adaptive mode is on and none is given.
pub const DEFAULT_ADAPTIVE_ROW_GROUP_INITIAL_TARGET: u32 = 1;

/// A value together with the source that supplied it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: CapacitySource,
}

impl<T> Sourced<T> {
    /// Pairs `value` with `source`.
    pub fn new(value: T, source: CapacitySource) -> Self {
        Self { value, source }
    }
}

/// Row-group admission settings of the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowGroupSettings {
    /// Hard cap on row groups in flight; `None` uses [`DEFAULT_ROW_GROUP_CONCURRENCY`].
    pub concurrency: Option<Sourced<u32>>,
    /// Fixed (default) or adaptive.
    pub mode: RowGroupMode,
    /// Adaptive mode's starting target (clamped to `[1, hard cap]`); ignored in fixed mode.
    pub initial_target: Option<u32>,
    /// Adaptive row guard, if the engine set one.
    pub max_admitted_rows: Option<u64>,
}

/// One model alias as declared in model config: the source of static provider/model caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDeclaration {
    /// User-facing alias.
    pub alias: String,
    /// Canonical provider name.
    pub provider: String,
    /// Canonical model endpoint id (includes the generation kind if the provider treats it as distinct).
    pub model_id: String,
    /// Declared `max_parallel_requests`, if any.
    pub max_parallel_requests: Option<u32>,
}

impl ModelDeclaration {
    /// Declares `alias` → `provider`/`model_id` with an optional cap.
    pub fn new(
        alias: impl Into<String>,
        provider: impl Into<String>,
        model_id: impl Into<String>,
        max_parallel_requests: Option<u32>,
    ) -> Self {
        Self {
            alias: alias.into(),
            provider: provider.into(),
            model_id: model_id.into(),
            max_parallel_requests,
        }
    }
}

/// Everything a plan is built from. All read-only: building a plan never touches a controller.
#[derive(Debug, Clone, Default)]
pub struct CapacityInputs {
    /// Record-window size; `None` uses [`DEFAULT_BUFFER_SIZE`].
    pub buffer_size: Option<Sourced<u32>>,
    /// Row-group admission settings.
    pub row_groups: RowGroupSettings,
    /// `submission` capacity; `None` uses [`DEFAULT_SUBMISSION_CAPACITY`].
    pub submission_capacity: Option<Sourced<u32>>,
    /// Task-stage limits; `None` uses the task snapshot's limits, then `{submission}`.
    pub task_resource_limits: Option<Sourced<BTreeMap<SchedulerResourceKey, u32>>>,
    /// Model alias declarations (static caps are min-merged per endpoint).
    pub models: Vec<ModelDeclaration>,
    /// Request-admission tuning in use, if known.
    pub request_admission_config: Option<Sourced<RequestAdmissionConfigSnapshot>>,
    /// Transport pool size per endpoint, if the adapter exposes it.
    pub transport_pool_limits: Option<Sourced<BTreeMap<ProviderModelKey, u32>>>,
    /// Current task-admission snapshot, if captured.
    pub task_snapshot: Option<TaskAdmissionSnapshot>,
    /// Current request-domain snapshots (`None`: no request admission state captured).
    pub request_snapshots: Option<Vec<RequestPressureSnapshot>>,
    /// Current provider/model aggregate snapshots (`None`: not captured).
    pub provider_model_snapshots: Option<Vec<ProviderModelPressureSnapshot>>,
    /// Queued tasks per group now, if captured.
    pub queued_tasks_now: Option<BTreeMap<TaskGroupKey, u32>>,
    /// Maxima collected during the run.
    pub observed: ObservedMaximaTracker,
}

/// Fluent builder over [`CapacityInputs`]; `build()` validates and computes the plan.
#[derive(Debug, Clone, Default)]
pub struct AsyncCapacityPlanBuilder {
    inputs: CapacityInputs,
}

impl AsyncCapacityPlanBuilder {
    /// A builder with no inputs (every value defaulted or missing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the record-window size and its source.
    pub fn buffer_size(mut self, value: u32, source: CapacitySource) -> Self {
        self.inputs.buffer_size = Some(Sourced::new(value, source));
        self
    }

    /// Sets the row-group admission settings.
    pub fn row_groups(mut self, settings: RowGroupSettings) -> Self {
        self.inputs.row_groups = settings;
        self
    }

    /// Sets the `submission` capacity and its source.
    pub fn submission_capacity(mut self, value: u32, source: CapacitySource) -> Self {
        self.inputs.submission_capacity = Some(Sourced::new(value, source));
        self
    }

    /// Sets the task-stage resource limits and their source.
    pub fn task_resource_limits(
        mut self,
        limits: BTreeMap<SchedulerResourceKey, u32>,
        source: CapacitySource,
    ) -> Self {
        self.inputs.task_resource_limits = Some(Sourced::new(limits, source));
        self
    }

    /// Adds one model alias declaration.
    pub fn model(mut self, declaration: ModelDeclaration) -> Self {
        self.inputs.models.push(declaration);
        self
    }

    /// Adds model alias declarations.
    pub fn models(mut self, declarations: impl IntoIterator<Item = ModelDeclaration>) -> Self {
        self.inputs.models.extend(declarations);
        self
    }

    /// Sets the request-admission config snapshot and its source.
    pub fn request_admission_config(
        mut self,
        snapshot: RequestAdmissionConfigSnapshot,
        source: CapacitySource,
    ) -> Self {
        self.inputs.request_admission_config = Some(Sourced::new(snapshot, source));
        self
    }

    /// Sets transport pool limits per endpoint and their source.
    pub fn transport_pool_limits(
        mut self,
        limits: BTreeMap<ProviderModelKey, u32>,
        source: CapacitySource,
    ) -> Self {
        self.inputs.transport_pool_limits = Some(Sourced::new(limits, source));
        self
    }

    /// Sets the current task-admission snapshot.
    pub fn task_snapshot(mut self, snapshot: TaskAdmissionSnapshot) -> Self {
        self.inputs.task_snapshot = Some(snapshot);
        self
    }

    /// Sets the current request-domain and provider/model snapshots.
    pub fn request_snapshots(
        mut self,
        resources: Vec<RequestPressureSnapshot>,
        provider_models: Vec<ProviderModelPressureSnapshot>,
    ) -> Self {
        self.inputs.request_snapshots = Some(resources);
        self.inputs.provider_model_snapshots = Some(provider_models);
        self
    }

    /// Sets the queued tasks per group now.
    pub fn queued_tasks_now(mut self, queued: BTreeMap<TaskGroupKey, u32>) -> Self {
        self.inputs.queued_tasks_now = Some(queued);
        self
    }

    /// Sets the run's observed maxima.
    pub fn observed(mut self, tracker: ObservedMaximaTracker) -> Self {
        self.inputs.observed = tracker;
        self
    }

    /// The collected inputs.
    pub fn into_inputs(self) -> CapacityInputs {
        self.inputs
    }

    /// Validates the inputs and builds the plan.
    pub fn build(&self) -> Result<AsyncCapacityPlan, CapacityPlanError> {
        self.inputs.build()
    }
}
