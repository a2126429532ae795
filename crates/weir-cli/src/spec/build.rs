//! `WorkflowSpec::build`: a validated spec turned into the runtime's objects.
//!
//! Produces a `weir_runtime::workflow::Workflow` (generators built with the runtime's own
//! constructors), one `SimulatedProvider` per simulated provider and one
//! `OpenAiCompatibleProvider` per `openai` provider (its key read from the named environment
//! variable; no network access). Runtime construction errors are mapped back to the JSON path
//! they came from. Build inside a tokio runtime, right before the run: a simulated provider's
//! capacity schedule is measured from its construction.

use super::{
    ColumnDef, ColumnKind, ProviderKind, RequestAdmissionSpec, SamplerType, SpecError, WorkflowSpec,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir_capacity::ModelDeclaration;
use weir_contracts::{Fnv64, ProviderModelKey};
use weir_runtime::engine::{EngineConfig, EngineError};
use weir_runtime::generators::{
    Category, ColumnGenerator, CustomCalls, Embedding, Expression, GeneratorConfigError, LlmJudge,
    LlmStructured, LlmText, UniformFloat, UniformInt, Uuid, Validator,
};
use weir_runtime::provider::openai::{
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT_SECONDS,
};
use weir_runtime::provider::{
    ModelProvider, OpenAiCompatibleProvider, OpenAiProviderConfig, SimulatedModelConfig,
    SimulatedProvider,
};
use weir_runtime::workflow::{ColumnSpec, ModelAlias, ModelRegistry, Workflow, WorkflowError};

/// One simulated endpoint: provider name, its config, and the static cap of its aliases.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedEndpoint {
    /// Provider name.
    pub provider: String,
    /// The model's simulated config.
    pub config: SimulatedModelConfig,
    /// Min `max_parallel_requests` over the aliases bound to it (`None`: no alias uses it).
    pub static_cap: Option<u32>,
}

/// Everything `weir run` needs from a spec, as runtime objects.
#[derive(Debug)]
pub struct BuiltWorkflow {
    /// The workflow (validated by the runtime too).
    pub workflow: Workflow,
    /// Simulated providers by name.
    pub providers: BTreeMap<String, Arc<SimulatedProvider>>,
    /// OpenAI-compatible HTTP providers by name.
    pub http_providers: BTreeMap<String, Arc<OpenAiCompatibleProvider>>,
    /// Model aliases, in spec order.
    pub models: Vec<ModelAlias>,
    /// Request-admission tuning in effect (defaults filled in).
    pub request_admission: RequestAdmissionSpec,
    /// Simulated endpoints by (provider, model_id).
    pub endpoints: BTreeMap<(String, String), SimulatedEndpoint>,
}

impl BuiltWorkflow {
    /// Every provider (simulated and HTTP) keyed by name, as `Engine::new` takes them.
    pub fn engine_providers(&self) -> Vec<(String, Arc<dyn ModelProvider>)> {
        let simulated = self
            .providers
            .iter()
            .map(|(n, p)| (n.clone(), p.clone() as Arc<dyn ModelProvider>));
        let http = self
            .http_providers
            .iter()
            .map(|(n, p)| (n.clone(), p.clone() as Arc<dyn ModelProvider>));
        simulated.chain(http).collect()
    }

    /// The transport pool of every endpoint served by an HTTP provider, for
    /// `AsyncCapacityPlanBuilder::transport_pool_limits` (empty when all providers are simulated).
    pub fn transport_pool_limits(&self) -> BTreeMap<ProviderModelKey, u32> {
        self.models
            .iter()
            .filter_map(|m| {
                let pool = self
                    .http_providers
                    .get(&m.provider)?
                    .transport_pool_size()?;
                let key = ProviderModelKey::new(&m.provider, &m.model_id).ok()?;
                Some((key, pool))
            })
            .collect()
    }

    /// Alias declarations for `weir_capacity::AsyncCapacityPlanBuilder::models`.
    pub fn model_declarations(&self) -> Vec<ModelDeclaration> {
        self.models
            .iter()
            .map(|m| {
                ModelDeclaration::new(
                    &m.alias,
                    &m.provider,
                    &m.model_id,
                    Some(m.max_parallel_requests),
                )
            })
            .collect()
    }

    /// Lower bound on wall seconds: max over endpoints of `calls × mean latency /
    /// min(capacity, static cap)` (and the rpm bound), given calls per (provider, model_id).
    /// `None` when a called endpoint is not simulated (its latency is unknown).
    pub fn lower_bound_seconds(&self, calls: &BTreeMap<(String, String), u64>) -> Option<f64> {
        let mut best = 0.0f64;
        for (key, n) in calls {
            if *n == 0 {
                continue;
            }
            let ep = self.endpoints.get(key)?;
            best = best.max(ep.config.lower_bound_seconds(*n, ep.static_cap));
        }
        Some(best)
    }
}

impl WorkflowSpec {
    /// The workflow and its generators, built with the runtime's constructors and checked by
    /// the runtime's own `Workflow::validate` (no providers: no clock, key or network needed).
    /// [`WorkflowSpec::validate`] calls this too, so `weir validate` refuses what `weir run`
    /// would refuse.
    pub fn build_workflow(&self) -> Result<(Workflow, Vec<ModelAlias>), SpecError> {
        let models: Vec<ModelAlias> = self
            .models
            .iter()
            .map(|m| {
                ModelAlias::new(&m.alias, &m.provider, &m.model_id, m.cap())
                    .with_rate_limits(m.rate_limits.unwrap_or_default())
                    .with_inference(m.inference.clone().unwrap_or_default())
            })
            .collect();
        let mut workflow = Workflow::new(&self.name, self.records, self.seed)
            .with_buffer_size(self.effective_buffer_size())
            .with_max_concurrent_row_groups(self.effective_max_concurrent_row_groups());
        for m in &models {
            workflow = workflow.with_model(m.clone());
        }
        let registry = workflow.model_registry();
        // Seed columns first, in the file's order: roots every other column may read.
        for seed in self.seed_column_specs()? {
            workflow = workflow.with_column(seed);
        }
        for (i, col) in self.columns.iter().enumerate() {
            let generator = build_generator(&registry, col).map_err(|e| {
                SpecError::new(
                    format!("columns[{i}].{}", field_path(col, &e.field)),
                    e.message,
                )
            })?;
            let mut spec =
                ColumnSpec::new(&col.name, generator).depends_on(col.depends_on.iter().cloned());
            if let Some(s) = col.strategy {
                spec.strategy = s;
            }
            workflow = workflow.with_column(spec);
        }
        workflow.validate().map_err(|e| workflow_error(self, &e))?;
        Ok((workflow, models))
    }

    /// The engine settings of the spec's request-admission tuning, checked by the engine's own
    /// validation (the one `weir run` applies).
    pub fn engine_config(&self) -> Result<EngineConfig, SpecError> {
        let t = self.effective_request_admission();
        let config = EngineConfig::default().with_request_tuning(
            t.multiplicative_decrease_factor,
            t.additive_increase_step,
            t.successes_until_increase,
            t.cooldown_seconds,
            t.startup_ramp_seconds,
        );
        let config = match t.policy {
            Some(p) => config.with_request_policy(p.name()).map_err(|e| match e {
                EngineError::InvalidConfig { field, message } => {
                    SpecError::new(format!("request_admission.{field}"), message)
                }
                other => SpecError::new("request_admission.policy", other.to_string()),
            })?,
            None => config,
        };
        config
            .request_admission
            .validate()
            .map_err(|e| SpecError::new(format!("request_admission.{}", e.field), e.message))?;
        Ok(config)
    }

    /// [`WorkflowSpec::engine_config`] as a check.
    pub(super) fn engine_config_check(&self) -> Result<(), SpecError> {
        self.engine_config().map(|_| ())
    }

    /// Validates, then builds the runtime objects. A provider kind `weir run` cannot use yet
    /// (`openai`) is an error here. Call inside a tokio runtime.
    pub fn build(&self) -> Result<BuiltWorkflow, SpecError> {
        if let Err(errors) = self.validate() {
            return Err(errors
                .0
                .into_iter()
                .next()
                .unwrap_or_else(|| SpecError::new("(root)", "invalid workflow")));
        }
        let (workflow, models) = self.build_workflow()?;

        let mut providers = BTreeMap::new();
        let mut http_providers = BTreeMap::new();
        let mut endpoints = BTreeMap::new();
        for (i, p) in self.providers.iter().enumerate() {
            if p.kind == ProviderKind::Openai {
                let provider = build_openai(p).map_err(|e| {
                    SpecError::new(format!("providers[{i}].{}", e.field), e.message)
                })?;
                http_providers.insert(p.name.clone(), Arc::new(provider));
                continue;
            }
            let configs = p.models.clone().unwrap_or_default();
            for config in &configs {
                let static_cap = self
                    .models
                    .iter()
                    .filter(|m| m.provider == p.name && m.model_id == config.model_id)
                    .map(super::ModelSpec::cap)
                    .min();
                endpoints.insert(
                    (p.name.clone(), config.model_id.clone()),
                    SimulatedEndpoint {
                        provider: p.name.clone(),
                        config: config.clone(),
                        static_cap,
                    },
                );
            }
            let provider =
                SimulatedProvider::new(&p.name, provider_seed(self.seed, &p.name), configs)
                    .map_err(|e| {
                        SpecError::new(format!("providers[{i}].{}", e.field), e.message)
                    })?;
            providers.insert(p.name.clone(), Arc::new(provider));
        }
        Ok(BuiltWorkflow {
            workflow,
            providers,
            http_providers,
            models,
            request_admission: self.effective_request_admission(),
            endpoints,
        })
    }
}

/// An `openai` provider: key from `api_key_env`, `timeout_s` (default 60), `pool_size` (default
/// 256), `max_response_bytes` (default 32 MiB), `ca_file` (read here). Validation already
/// checked the shapes; this reads the environment and the CA file.
fn build_openai(
    p: &super::ProviderSpec,
) -> Result<OpenAiCompatibleProvider, weir_runtime::provider::OpenAiConfigError> {
    let mut config = openai_config(p);
    if let Some(var) = &p.api_key_env {
        config = config.with_api_key_env(var)?;
    }
    OpenAiCompatibleProvider::new(config)
}

/// An `openai` provider's config without its key (validation checks it with the provider's own
/// `validate`; the run adds the key from `api_key_env`).
pub(super) fn openai_config(p: &super::ProviderSpec) -> OpenAiProviderConfig {
    let config = OpenAiProviderConfig::new(&p.name, p.base_url.clone().unwrap_or_default())
        .with_timeout(
            // Validation bounds timeout_s to (0, 86400]; never panic on a bad value anyway.
            Duration::try_from_secs_f64(p.timeout_s.unwrap_or(DEFAULT_TIMEOUT_SECONDS))
                .unwrap_or(Duration::from_secs(60)),
        )
        .with_pool_size(p.pool_size.unwrap_or(DEFAULT_POOL_SIZE))
        .with_max_response_bytes(p.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES));
    let mut config = match &p.ca_file {
        Some(path) => config.with_ca_file(path),
        None => config,
    };
    for (name, value) in p.extra_headers.iter().flatten() {
        config = config.with_extra_header(name, value);
    }
    config
}

/// Each provider gets its own seed stream derived from the workflow seed and its name.
fn provider_seed(seed: u64, provider: &str) -> u64 {
    let mut h = Fnv64::new();
    h.write(&seed.to_le_bytes());
    h.write(provider.as_bytes());
    h.finish()
}

/// A chat column's optional `system_prompt` and `inference`, applied to generator `g`.
macro_rules! chat_settings {
    ($g:expr, $col:expr) => {{
        let mut g = $g;
        if let Some(system) = &$col.system_prompt {
            g = g.with_system_prompt(system)?;
        }
        if let Some(inference) = &$col.inference {
            g = g.with_inference(inference)?;
        }
        g
    }};
}

fn build_generator(
    registry: &ModelRegistry,
    col: &ColumnDef,
) -> Result<Arc<dyn ColumnGenerator>, GeneratorConfigError> {
    let missing = |field: &str| GeneratorConfigError::new(field, "required field is missing");
    let model = || col.model.as_deref().ok_or_else(|| missing("model"));
    let prompt = || col.prompt.as_deref().ok_or_else(|| missing("prompt"));
    Ok(match col.kind {
        ColumnKind::Sampler => {
            let s = col.sampler.as_ref().ok_or_else(|| missing("sampler"))?;
            match s.kind {
                SamplerType::Category => {
                    let values = s.values.clone().unwrap_or_default();
                    match &s.weights {
                        Some(w) => Arc::new(Category::weighted(values, w.clone())?),
                        None => Arc::new(Category::new(values)?),
                    }
                }
                SamplerType::UniformInt => {
                    let int = |f: &'static str, v: &Option<serde_json::Number>| {
                        v.as_ref()
                            .and_then(serde_json::Number::as_i64)
                            .ok_or_else(|| GeneratorConfigError::new(f, "must be an integer"))
                    };
                    Arc::new(UniformInt::new(int("low", &s.low)?, int("high", &s.high)?)?)
                }
                SamplerType::UniformFloat => {
                    let num = |f: &'static str, v: &Option<serde_json::Number>| {
                        v.as_ref()
                            .and_then(serde_json::Number::as_f64)
                            .ok_or_else(|| GeneratorConfigError::new(f, "must be a number"))
                    };
                    Arc::new(UniformFloat::new(
                        num("low", &s.low)?,
                        num("high", &s.high)?,
                    )?)
                }
                SamplerType::Uuid => Arc::new(Uuid),
            }
        }
        ColumnKind::Expression => Arc::new(Expression::new(
            col.template.as_deref().ok_or_else(|| missing("template"))?,
        )?),
        ColumnKind::LlmText => {
            let g = LlmText::new(registry, model()?, prompt()?)?;
            Arc::new(chat_settings!(g, col))
        }
        ColumnKind::LlmStructured => {
            let schema = col.schema.clone().ok_or_else(|| missing("schema"))?;
            let mut g = LlmStructured::new(registry, model()?, prompt()?, &col.name, schema)?;
            if let Some(n) = col.invalid_output_retries {
                g = g.with_invalid_output_retries(n)?;
            }
            Arc::new(chat_settings!(g, col))
        }
        ColumnKind::LlmJudge => {
            let mut g = match &col.scores {
                Some(scores) => {
                    LlmJudge::with_scores(registry, model()?, prompt()?, scores.clone())?
                }
                None => LlmJudge::new(registry, model()?, prompt()?)?,
            };
            if let Some(n) = col.invalid_output_retries {
                g = g.with_invalid_output_retries(n)?;
            }
            Arc::new(chat_settings!(g, col))
        }
        ColumnKind::Embedding => Arc::new(Embedding::new(
            registry,
            model()?,
            col.input.as_deref().ok_or_else(|| missing("input"))?,
        )?),
        ColumnKind::Custom => {
            let calls = col.calls.ok_or_else(|| missing("calls"))?;
            // Without a prompt, each call names the column: dependencies come from depends_on.
            let default_prompt = format!("custom call for column {}", col.name);
            let prompt = col.prompt.as_deref().unwrap_or(&default_prompt);
            Arc::new(CustomCalls::new(
                registry,
                model()?,
                prompt,
                calls.min,
                calls.max,
            )?)
        }
        ColumnKind::Validator => Arc::new(Validator::new(col.columns.clone().unwrap_or_default())?),
    })
}

/// Maps a runtime generator field name onto the column's JSON field.
fn field_path(col: &ColumnDef, field: &str) -> String {
    match (col.kind, field) {
        (ColumnKind::Sampler, f) => format!("sampler.{f}"),
        (_, "model_alias") => "model".to_string(),
        (ColumnKind::Custom, "min" | "max") => format!("calls.{field}"),
        (ColumnKind::Expression, "template") => "template".to_string(),
        (ColumnKind::Embedding, "template") => "input".to_string(),
        (
            ColumnKind::LlmText
            | ColumnKind::LlmJudge
            | ColumnKind::LlmStructured
            | ColumnKind::Custom,
            "template",
        ) => "prompt".to_string(),
        (_, f) => f.to_string(),
    }
}

/// Maps a runtime workflow error back onto the spec's JSON path.
fn workflow_error(spec: &WorkflowSpec, e: &WorkflowError) -> SpecError {
    let col = |name: &str| {
        spec.columns
            .iter()
            .position(|c| c.name == name)
            .map_or_else(|| "columns".to_string(), |i| format!("columns[{i}]"))
    };
    let path = match e {
        WorkflowError::ZeroRecords => "records".to_string(),
        WorkflowError::ZeroBufferSize => "buffer_size".to_string(),
        WorkflowError::ZeroMaxConcurrentRowGroups => "max_concurrent_row_groups".to_string(),
        WorkflowError::NoColumns => "columns".to_string(),
        WorkflowError::EmptyColumnName { position } => format!("columns[{position}].name"),
        WorkflowError::DuplicateColumn { column } => format!("{}.name", col(column)),
        WorkflowError::DuplicateModelAlias { .. } => "models".to_string(),
        WorkflowError::UnknownModelAlias { column, .. } => format!("{}.model", col(column)),
        WorkflowError::UnknownColumn { column, .. } => col(column),
        WorkflowError::StrategyMismatch { column, .. } => format!("{}.strategy", col(column)),
        WorkflowError::Cycle { columns } => columns
            .first()
            .map_or_else(|| "columns".to_string(), |c| col(c)),
    };
    SpecError::new(path, e.to_string())
}
