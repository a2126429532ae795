//! `Engine`: wires a workflow to providers, request admission, the executor and the scheduler.
//!
//! This is the one place the two admission layers meet, and only by composition: the scheduler
//! gets a `ModelFacade` (the executor behind it) and a read-only pressure advisory; the request
//! controller never sees a task. A run ends with a [`RunResult`]: scheduler counters, request
//! attempts by outcome, final snapshots of both ledgers, and the `AsyncCapacityPlan`.

mod advisory;
mod facade;
mod known_limits;

pub use advisory::CooldownAdvisory;
pub use facade::ExecutorFacade;
pub use known_limits::{KnownLimit, LimitSource, LimitWindow};

use crate::executor::{AttemptCounts, ExecutorConfig, ModelRequestExecutor, ModelRoute};
use crate::provider::ModelProvider;
use crate::scheduler::{
    AsyncTaskScheduler, RecordSink, RowGroupMode, SchedulerConfig, SchedulerError, SchedulerReport,
    StopHandle,
};
use crate::workflow::Workflow;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use weir_capacity::{
    AsyncCapacityPlan, AsyncCapacityPlanBuilder, ModelDeclaration, RowGroupSettings,
};
use weir_contracts::{
    CapacitySource, ProviderModelKey, ProviderModelPressureSnapshot, ReleaseReason,
    RequestAdmissionEvent, RequestPressureSnapshot, SchedulerAdmissionEvent, SharedLimitsSnapshot,
};
use weir_request_admission::{
    AdaptiveRequestAdmissionController, BudgetConfig, BudgetLedger, BudgetScopeSnapshot,
    RequestAdmissionConfig, SharedDemand, SharedGate, SharedLimits,
};
use weir_task_admission::TaskAdmissionConfig;
use weir_telemetry::{EventSink, EventStream, MonotonicClock};

/// Every engine-internal setting of a run.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Scheduler settings; `max_concurrent_row_groups` is taken from the workflow.
    pub scheduler: SchedulerConfig,
    /// Task-admission override (default: `submission` = `scheduler.submission_capacity`).
    pub task_admission: Option<TaskAdmissionConfig>,
    /// Request-admission settings (policy, AIMD tuning, clamps).
    pub request_admission: RequestAdmissionConfig,
    /// Executor retries and timeouts.
    pub executor: ExecutorConfig,
    /// Budget ledger settings (burst, token estimates); the limits come from the models.
    pub budgets: BudgetConfig,
}

impl EngineConfig {
    /// Applies the public request-admission tuning (the five supported fields); the result is
    /// validated when the run is prepared.
    pub fn with_request_tuning(
        mut self,
        multiplicative_decrease_factor: f64,
        additive_increase_step: u32,
        successes_until_increase: u32,
        cooldown_seconds: f64,
        startup_ramp_seconds: f64,
    ) -> Self {
        let r = &mut self.request_admission;
        r.multiplicative_decrease_factor = multiplicative_decrease_factor;
        r.additive_increase_step = additive_increase_step;
        r.successes_until_increase = successes_until_increase;
        r.cooldown_seconds = cooldown_seconds;
        r.startup_ramp_seconds = startup_ramp_seconds;
        self
    }

    /// Selects the adaptive request policy by its durable name: `goodput` (default) or `plan_aimd`.
    pub fn with_request_policy(mut self, name: &str) -> Result<Self, EngineError> {
        self.request_admission.policy = match name {
            "goodput" => weir_request_admission::RequestAdmissionPolicy::default(),
            "plan_aimd" => weir_request_admission::RequestAdmissionPolicy::PlanAimd,
            other => {
                return Err(invalid(
                    "request_admission.policy",
                    format!("unknown policy {other:?} (expected \"goodput\" or \"plan_aimd\")"),
                ))
            }
        };
        Ok(self)
    }
}

/// A run could not be set up or did not finish.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// A setting or the workflow is invalid; `field` names it.
    InvalidConfig {
        /// Offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The scheduler failed (deadlock, record sink, internal).
    Scheduler(SchedulerError),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig { field, message } => write!(f, "{field}: {message}"),
            Self::Scheduler(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EngineError {}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> EngineError {
    EngineError::InvalidConfig {
        field: field.into(),
        message: message.into(),
    }
}

/// Per-endpoint figures of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSummary {
    /// The endpoint.
    pub endpoint: ProviderModelKey,
    /// Aliases routed to it.
    pub aliases: Vec<String>,
    /// Outbound attempts by outcome.
    pub attempts: AttemptCounts,
    /// Most requests in flight at once (all domains), as kept by the controller.
    pub max_in_flight: u32,
    /// Adaptive limit per domain at the end.
    pub final_limits: BTreeMap<String, u32>,
    /// Effective static cap.
    pub static_cap: u32,
}

/// Everything a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The run id recorded in every correlation.
    pub run_id: String,
    /// Scheduler counters and final task-admission snapshot.
    pub report: SchedulerReport,
    /// All outbound attempts by outcome.
    pub requests: AttemptCounts,
    /// Per endpoint, ordered by endpoint.
    pub endpoints: Vec<EndpointSummary>,
    /// Final request pressure per resource.
    pub final_request_snapshots: Vec<RequestPressureSnapshot>,
    /// Final provider/model aggregates.
    pub final_endpoint_snapshots: Vec<ProviderModelPressureSnapshot>,
    /// Rejected request releases by reason (zero in a clean run).
    pub request_release_diagnostics: BTreeMap<ReleaseReason, u64>,
    /// Request/token budgets per endpoint at the end: configured, learned, effective, waits.
    pub budget_snapshots: Vec<BudgetScopeSnapshot>,
    /// Workers that ran before their task lease, derived from the scheduler events.
    pub hidden_scheduler_resource_waiters: u64,
    /// The shared-limits backend's state at the end (None: no backend configured).
    pub shared_limits: Option<SharedLimitsSnapshot>,
    /// The run's capacity explanation.
    pub capacity_plan: AsyncCapacityPlan,
}

impl RunResult {
    /// Active request leases, waiters and in-flight calls left at the end (all zero when clean).
    pub fn request_leftovers(&self) -> (u64, u64, u64) {
        self.final_request_snapshots
            .iter()
            .fold((0, 0, 0), |(l, w, f), s| {
                (
                    l + u64::from(s.active_lease_count),
                    w + u64::from(s.waiters),
                    f + u64::from(s.in_flight_count),
                )
            })
    }
}

/// Builds a run: workflow + providers by name + settings + event sinks.
pub struct Engine {
    workflow: Arc<Workflow>,
    providers: HashMap<String, Arc<dyn ModelProvider>>,
    config: EngineConfig,
    scheduler_sinks: Vec<Arc<dyn EventSink<SchedulerAdmissionEvent>>>,
    request_sinks: Vec<Arc<dyn EventSink<RequestAdmissionEvent>>>,
    first_row_group: u64,
    run_id: Option<String>,
    progress: Arc<crate::scheduler::RunProgress>,
    feed: Option<crate::scheduler::RowGroupFeed>,
    shared_limits: Option<Arc<dyn SharedLimits>>,
}

impl Engine {
    /// An engine for `workflow`; `providers` are keyed by the provider names its models use.
    pub fn new(
        workflow: Arc<Workflow>,
        providers: impl IntoIterator<Item = (String, Arc<dyn ModelProvider>)>,
    ) -> Self {
        Self {
            workflow,
            providers: providers.into_iter().collect(),
            config: EngineConfig::default(),
            scheduler_sinks: Vec::new(),
            request_sinks: Vec::new(),
            first_row_group: 0,
            run_id: None,
            progress: Arc::default(),
            feed: None,
            shared_limits: None,
        }
    }

    /// Admits every request also under `backend`'s shared limits (several workers of one job);
    /// without it the in-process ledger alone decides.
    pub fn with_shared_limits(mut self, backend: Arc<dyn SharedLimits>) -> Self {
        self.shared_limits = Some(backend);
        self
    }

    /// The live counters the run will update (`PreparedRun::progress` returns the same): hand
    /// them to a progress display before `prepare`, whose sinks then need no per-task event.
    pub fn progress(&self) -> Arc<crate::scheduler::RunProgress> {
        self.progress.clone()
    }

    /// Engine settings.
    pub fn with_config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a scheduler event sink.
    pub fn with_scheduler_sink(
        mut self,
        sink: Arc<dyn EventSink<SchedulerAdmissionEvent>>,
    ) -> Self {
        self.scheduler_sinks.push(sink);
        self
    }

    /// Adds a request event sink.
    pub fn with_request_sink(mut self, sink: Arc<dyn EventSink<RequestAdmissionEvent>>) -> Self {
        self.request_sinks.push(sink);
        self
    }

    /// Resume: row groups before `row_group` were written by an earlier run.
    pub fn starting_at_row_group(mut self, row_group: u64) -> Self {
        self.first_row_group = row_group;
        self
    }

    /// Feed mode: run exactly the row groups `feed` hands over (see
    /// [`crate::scheduler::RowGroupFeed`]); each is written as soon as it completes.
    pub fn with_row_group_feed(mut self, feed: crate::scheduler::RowGroupFeed) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Run id for correlations (default: derived from the workflow name).
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Validates everything and wires the layers; the returned run can be stopped and awaited.
    pub fn prepare(mut self) -> Result<PreparedRun, EngineError> {
        self.workflow
            .validate()
            .map_err(|e| invalid("workflow", e.to_string()))?;
        self.config
            .executor
            .validate()
            .map_err(|(f, m)| invalid(format!("executor.{f}"), m))?;
        let clock = MonotonicClock::start();
        let request_events = EventStream::new(self.request_sinks.clone(), clock);
        let controller = Arc::new(
            AdaptiveRequestAdmissionController::builder()
                .config(self.config.request_admission.clone())
                .events(request_events.clone())
                .build()
                .map_err(|e| invalid(format!("request_admission.{}", e.field), e.message))?,
        );
        let budgets = Arc::new(
            BudgetLedger::new(self.config.budgets)
                .map_err(|e| invalid(format!("budgets.{}", e.field), e.message))?,
        );
        let mut routes = HashMap::new();
        let mut aliases_by_endpoint: BTreeMap<ProviderModelKey, Vec<String>> = BTreeMap::new();
        for (i, m) in self.workflow.models.iter().enumerate() {
            let provider = self.providers.get(&m.provider).ok_or_else(|| {
                invalid(
                    format!("models[{i}].provider"),
                    format!("no provider named {:?}", m.provider),
                )
            })?;
            controller
                .register(&m.provider, &m.model_id, &m.alias, m.cap())
                .map_err(|e| invalid(format!("models[{i}].{}", e.field), e.message))?;
            let endpoint = ProviderModelKey::new(&m.provider, &m.model_id)
                .map_err(|e| invalid(format!("models[{i}].{}", e.field), e.message))?;
            // Aliases of one endpoint share its budgets: the tightest of them.
            budgets
                .register(&endpoint, m.rate_limits.budget_limits())
                .map_err(|e| invalid(format!("models[{i}].rate_limits.{}", e.field), e.message))?;
            aliases_by_endpoint
                .entry(endpoint.clone())
                .or_default()
                .push(m.alias.clone());
            routes.insert(
                m.alias.clone(),
                ModelRoute {
                    provider: provider.clone(),
                    endpoint,
                },
            );
        }
        let mut executor = ModelRequestExecutor::new(
            controller.clone(),
            request_events.clone(),
            self.config.executor,
        );
        if let Some(backend) = &self.shared_limits {
            let endpoints: HashMap<ProviderModelKey, SharedDemand> = aliases_by_endpoint
                .keys()
                .map(|endpoint| {
                    let configured = budgets.configured(endpoint);
                    let static_cap = self
                        .workflow
                        .models
                        .iter()
                        .filter(|m| {
                            *m.provider == *endpoint.provider_name
                                && *m.model_id == *endpoint.model_id
                        })
                        .map(|m| m.cap())
                        .min()
                        .unwrap_or(1);
                    let demand = SharedDemand {
                        static_cap,
                        tokens: 0,
                        requests_per_minute: configured.requests_per_minute,
                        tokens_per_minute: configured.tokens_per_minute,
                    };
                    (endpoint.clone(), demand)
                })
                .collect();
            let gate = Arc::new(SharedGate::new(backend.clone(), request_events));
            executor = executor.with_shared_limits(gate, endpoints);
        }
        let executor = Arc::new(executor.with_budgets(budgets));
        let facade = Arc::new(
            ExecutorFacade::new(executor.clone(), routes)
                .with_attempts_per_call(self.config.executor.max_attempts),
        );
        // No sink of its own: with none attached the scheduler builds no per-task events
        // (building three per task for a hidden-waiter probe was 42 % of a local run's
        // instructions; a worker cannot run without its lease: `Running` owns it).
        let scheduler_events = EventStream::new(self.scheduler_sinks.clone(), clock);
        let scheduler_config = SchedulerConfig {
            max_concurrent_row_groups: self.workflow.max_concurrent_row_groups,
            ..self.config.scheduler.clone()
        };
        let mut scheduler = AsyncTaskScheduler::new(self.workflow.clone(), facade)
            .with_config(scheduler_config.clone())
            .with_events(scheduler_events.clone())
            .with_pressure_advisory(Arc::new(CooldownAdvisory::new(controller.pressure())))
            .with_progress(self.progress.clone())
            .starting_at_row_group(self.first_row_group);
        if let Some(ta) = self.config.task_admission.clone() {
            scheduler = scheduler.with_task_admission(ta);
        }
        if let Some(feed) = self.feed.take() {
            scheduler = scheduler.with_row_group_feed(feed);
        }
        if let Some(id) = &self.run_id {
            scheduler = scheduler.with_run_id(id.clone());
        }
        let run_id = self
            .run_id
            .clone()
            .unwrap_or_else(|| format!("{}-run", self.workflow.name));
        let transport_pools: BTreeMap<ProviderModelKey, u32> = aliases_by_endpoint
            .keys()
            .filter_map(|endpoint| {
                let provider = self.providers.get(endpoint.provider_name.as_ref())?;
                Some((endpoint.clone(), provider.transport_pool_size()?))
            })
            .collect();
        Ok(PreparedRun {
            transport_pools,
            stop: scheduler.stop_handle(),
            scheduler,
            scheduler_config,
            workflow: self.workflow,
            controller,
            executor,
            aliases_by_endpoint,
            run_id,
            task_admission: self.config.task_admission,
            scheduler_events,
        })
    }
}

/// A wired run: take a [`StopHandle`] if needed, then [`run`](Self::run) it.
pub struct PreparedRun {
    transport_pools: BTreeMap<ProviderModelKey, u32>,
    stop: StopHandle,
    scheduler: AsyncTaskScheduler,
    scheduler_config: SchedulerConfig,
    workflow: Arc<Workflow>,
    controller: Arc<AdaptiveRequestAdmissionController>,
    executor: Arc<ModelRequestExecutor>,
    aliases_by_endpoint: BTreeMap<ProviderModelKey, Vec<String>>,
    run_id: String,
    task_admission: Option<TaskAdmissionConfig>,
    scheduler_events: EventStream<SchedulerAdmissionEvent>,
}

impl PreparedRun {
    /// Live counters of the run's completed tasks and cells (for a progress display).
    pub fn progress(&self) -> Arc<crate::scheduler::RunProgress> {
        self.scheduler.progress()
    }

    /// Stops the run gracefully (admission stops; running work gets the configured grace).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The request-admission controller (read its `pressure()` for live progress).
    pub fn controller(&self) -> &Arc<AdaptiveRequestAdmissionController> {
        &self.controller
    }

    /// The executor (live attempt counters).
    pub fn executor(&self) -> &Arc<ModelRequestExecutor> {
        &self.executor
    }

    /// Runs to the end or a stop, writing row groups to `sink`.
    pub async fn run(self, sink: &mut dyn RecordSink) -> Result<RunResult, EngineError> {
        let outcome = self.scheduler.run(sink).await;
        // Nobody may wait on request admission once the scheduler is done.
        self.controller.shutdown();
        self.scheduler_events.flush();
        let outcome = outcome.map_err(EngineError::Scheduler)?;
        let pressure = self.controller.pressure();
        let final_request_snapshots = pressure.snapshots();
        let final_endpoint_snapshots = pressure.global_snapshots();
        let counts = self.executor.attempt_counts();
        let mut requests = AttemptCounts::default();
        for c in counts.values() {
            requests.add(c);
        }
        let endpoints = self
            .aliases_by_endpoint
            .iter()
            .map(|(endpoint, aliases)| {
                let global = final_endpoint_snapshots
                    .iter()
                    .find(|g| &g.provider_model == endpoint);
                EndpointSummary {
                    endpoint: endpoint.clone(),
                    aliases: aliases.clone(),
                    attempts: counts.get(endpoint).copied().unwrap_or_default(),
                    max_in_flight: global.map_or(0, |g| g.max_aggregate_in_flight),
                    final_limits: global
                        .map(|g| {
                            g.domains
                                .iter()
                                .map(|(d, l)| (d.as_str().to_owned(), *l))
                                .collect()
                        })
                        .unwrap_or_default(),
                    static_cap: global.map_or(0, |g| g.static_cap),
                }
            })
            .collect();
        let mut observed = outcome.observed;
        observed.observe_request(&final_request_snapshots, &final_endpoint_snapshots);
        let report = outcome.report;
        let submission = self
            .task_admission
            .as_ref()
            .map_or(self.scheduler_config.submission_capacity, |t| {
                t.submission_capacity
            });
        let mut plan = AsyncCapacityPlanBuilder::new();
        if !self.transport_pools.is_empty() {
            plan = plan
                .transport_pool_limits(self.transport_pools.clone(), CapacitySource::AdapterConfig);
        }
        let capacity_plan = plan
            .buffer_size(
                u32::try_from(self.workflow.buffer_size).unwrap_or(u32::MAX),
                CapacitySource::RunConfig,
            )
            .row_groups(RowGroupSettings {
                concurrency: Some(weir_capacity::Sourced::new(
                    self.scheduler_config.max_concurrent_row_groups,
                    CapacitySource::RunConfig,
                )),
                mode: match self.scheduler_config.row_group_mode {
                    RowGroupMode::Fixed => weir_capacity::RowGroupMode::Fixed,
                    RowGroupMode::Adaptive { .. } => weir_capacity::RowGroupMode::Adaptive,
                },
                initial_target: match self.scheduler_config.row_group_mode {
                    RowGroupMode::Fixed => None,
                    RowGroupMode::Adaptive { initial } => Some(initial),
                },
                max_admitted_rows: None,
            })
            .submission_capacity(submission, CapacitySource::EngineInternalConfig)
            .task_resource_limits(
                report.final_task_snapshot.resource_limits.clone(),
                CapacitySource::EngineInternalConfig,
            )
            .models(
                self.workflow.models.iter().map(|m| {
                    ModelDeclaration::new(&m.alias, &m.provider, &m.model_id, Some(m.cap()))
                }),
            )
            .request_admission_config(
                pressure.config_snapshot(),
                CapacitySource::EngineInternalConfig,
            )
            .task_snapshot(report.final_task_snapshot.clone())
            .request_snapshots(
                final_request_snapshots.clone(),
                final_endpoint_snapshots.clone(),
            )
            .observed(observed)
            .build()
            .map_err(|e| invalid(format!("capacity_plan.{}", e.field), e.message))?;
        Ok(RunResult {
            run_id: self.run_id,
            hidden_scheduler_resource_waiters: report.hidden_scheduler_resource_waiters,
            request_release_diagnostics: pressure.release_diagnostics(),
            budget_snapshots: self.executor.budgets().snapshots(),
            shared_limits: self.executor.shared_limits().map(|g| g.snapshot()),
            report,
            requests,
            endpoints,
            final_request_snapshots,
            final_endpoint_snapshots,
            capacity_plan,
        })
    }
}
