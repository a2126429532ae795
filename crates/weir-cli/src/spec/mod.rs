//! The workflow spec: the JSON contract `weir` reads (also as YAML), its parsing with exact JSON paths, and overrides.
//!
//! Shape and syntax errors come from `serde_path_to_error` (`columns[2].kind: unknown variant ...`);
//! meaning errors (unknown alias, cycle, ...) from [`WorkflowSpec::validate`]; conversion into the
//! runtime's objects from [`WorkflowSpec::build`]. Unknown fields are errors everywhere. Columns,
//! providers and samplers are flat structs tagged by `kind`/`type` (not serde-tagged enums) so that
//! every error, including ones inside them, keeps its exact path.

mod build;
pub mod reference;
mod seed;
mod validate;

pub use build::{BuiltWorkflow, SimulatedEndpoint};
pub use seed::{SeedDatasetSpec, SpecSource, SEED_PATH_FIELD};
pub use validate::SpecNotice;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use weir_runtime::generators::JudgeScore;
use weir_runtime::inference::InferenceParams;
use weir_runtime::provider::SimulatedModelConfig;
use weir_runtime::workflow::{ModelRateLimits, Strategy};

/// Default `max_concurrent_row_groups` when the spec omits it.
pub const DEFAULT_MAX_CONCURRENT_ROW_GROUPS: u32 = 3;
/// Upper bound of the default `buffer_size` (the default is `min(records, this)`).
pub const DEFAULT_BUFFER_SIZE_CAP: u64 = 1000;
/// Default `max_parallel_requests` of a model alias that declares none (weir-capacity's default).
pub const DEFAULT_MAX_PARALLEL_REQUESTS: u32 = weir_capacity::DEFAULT_MAX_PARALLEL_REQUESTS;

/// One problem in a spec: the JSON path (`columns[2].model`) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// JSON path of the offending value (`(root)` for the whole document).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl SpecError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for SpecError {}

/// Every problem found in a spec (never empty), in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    /// The first error.
    pub fn first(&self) -> Option<&SpecError> {
        self.0.first()
    }
}

impl From<SpecError> for SpecErrors {
    fn from(e: SpecError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// A workflow file: what to generate, with which models, on which providers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Workflow name (used for the default output directory `./weir-out/<name>`).
    pub name: String,
    /// One-line description (shown by `weir examples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Records to generate (≥ 1).
    #[schemars(range(min = 1, max = validate::MAX_RECORDS))]
    pub records: u64,
    /// Seed of every sampler and simulated provider (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Rows per row group (≥ 1; default `min(records, 1000)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = validate::MAX_BUFFER_SIZE))]
    pub buffer_size: Option<u64>,
    /// Row groups in flight at once (≥ 1; default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = validate::MAX_CONCURRENT_ROW_GROUPS))]
    pub max_concurrent_row_groups: Option<u32>,
    /// Model providers.
    #[serde(default)]
    pub providers: Vec<ProviderSpec>,
    /// Model aliases: alias → provider/model_id with a static concurrency cap.
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    /// Seed rows (a JSONL or CSV file): its columns come first in every record and every
    /// template may use them (`{{ country }}`). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_dataset: Option<SeedDatasetSpec>,
    /// Output columns, in order (at least one).
    pub columns: Vec<ColumnDef>,
    /// Public request-admission (AIMD) tuning; omitted fields take the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_admission: Option<RequestAdmissionSpec>,
    /// Where the spec was read from (the base of `seed_dataset.path`) and its indexed seed
    /// file; not part of the file.
    #[serde(skip)]
    #[schemars(skip)]
    pub source: SpecSource,
}

/// Provider kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The embedded simulated provider (hidden capacity, latency, faults).
    Simulated,
    /// An OpenAI-compatible HTTP endpoint (`OpenAiCompatibleProvider`).
    Openai,
}

impl ProviderKind {
    /// Snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Simulated => "simulated",
            Self::Openai => "openai",
        }
    }
}

/// One provider. `simulated` uses `models`; `openai` uses `base_url`, `api_key_env`,
/// `timeout_s`, `pool_size`, `max_response_bytes`, `ca_file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Canonical provider name (unique).
    pub name: String,
    /// Provider kind.
    pub kind: ProviderKind,
    /// Simulated model endpoints (kind `simulated`; the runtime's `SimulatedModelConfig` shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<SimulatedModelConfig>>,
    /// Base URL (kind `openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key (kind `openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Per-request timeout in seconds (kind `openai`, > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Connection pool size (kind `openai`, ≥ 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
    /// Largest 2xx response body read, in bytes (kind `openai`; default 32 MiB, 1 KiB–1 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// PEM file of extra trusted certificate authorities (kind `openai`; relative to the
    /// working directory), beside the system's certificate store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Extra HTTP headers sent with every request (kind `openai`): header name → value, e.g.
    /// `{"OpenAI-Organization": "org-…"}`. Names must be valid header names and may not be
    /// `Authorization`, `Content-Type`, `Content-Length`, `Host`, `Transfer-Encoding` or
    /// `Connection` (weir sets those); values are never shown in errors or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_headers: Option<BTreeMap<String, String>>,
}

/// A model alias: the name columns use, bound to a provider's model endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The alias (unique).
    pub alias: String,
    /// Name of a declared provider.
    pub provider: String,
    /// Model endpoint id declared by that provider.
    pub model_id: String,
    /// Static cap on concurrent requests (≥ 1; default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = validate::MAX_PARALLEL_REQUESTS))]
    pub max_parallel_requests: Option<u32>,
    /// Request and token budgets of the endpoint, per minute (`requests_per_minute`,
    /// `tokens_per_minute`, `input_tokens_per_minute`, `output_tokens_per_minute`; each
    /// optional, an integer in 1..=10⁹). Aliases of one endpoint share the tightest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<ModelRateLimits>,
    /// Default inference parameters of every chat call through this alias (`temperature`,
    /// `top_p`, `max_tokens`, `stop`, `seed`, `extra_body`; each optional, sent exactly as
    /// given). A column's `inference` overrides them field by field. Unknown keys are errors:
    /// put provider-specific ones in `extra_body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceParams>,
}

impl ModelSpec {
    /// The static cap in effect (declared, or the default).
    pub fn cap(&self) -> u32 {
        self.max_parallel_requests
            .unwrap_or(DEFAULT_MAX_PARALLEL_REQUESTS)
    }
}

/// Column kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// A seeded sampler (`sampler`).
    Sampler,
    /// A `{{ name }}` template over other columns (`template`).
    Expression,
    /// One chat call per row (`model`, `prompt`).
    LlmText,
    /// A structured chat call per row for named integer scores (`model`, `prompt`, optional
    /// `scores`): one output field per score.
    LlmJudge,
    /// A chat call per row whose reply must be JSON matching `schema` (`model`, `prompt`,
    /// `schema`); the value is the parsed object.
    LlmStructured,
    /// One embedding call per row (`model`, `input`).
    Embedding,
    /// A data-dependent number of chat calls per row (`model`, `calls`, optional `prompt`).
    Custom,
    /// A full-column check that `columns` are present and non-null; bad rows are dropped.
    Validator,
}

impl ColumnKind {
    /// Snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sampler => "sampler",
            Self::Expression => "expression",
            Self::LlmText => "llm_text",
            Self::LlmJudge => "llm_judge",
            Self::LlmStructured => "llm_structured",
            Self::Embedding => "embedding",
            Self::Custom => "custom",
            Self::Validator => "validator",
        }
    }

    /// The only strategy the built-in generator of this kind supports.
    pub const fn strategy(self) -> Strategy {
        match self {
            Self::Validator => Strategy::FullColumn,
            _ => Strategy::Cell,
        }
    }

    /// True for kinds that call a model.
    pub const fn uses_model(self) -> bool {
        matches!(
            self,
            Self::LlmText | Self::LlmJudge | Self::LlmStructured | Self::Embedding | Self::Custom
        )
    }

    /// True for kinds that make one templated chat call per row (they take `system_prompt`
    /// and `inference`).
    pub const fn is_chat(self) -> bool {
        matches!(self, Self::LlmText | Self::LlmJudge | Self::LlmStructured)
    }
}

/// One output column. Which optional fields apply depends on `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    /// Column name (unique).
    pub name: String,
    /// What the column is for (free text for readers of the spec; the run ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Column kind.
    pub kind: ColumnKind,
    /// `cell` or `full_column` (default: the kind's only strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Explicit dependencies, in addition to `{{ name }}` references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Sampler settings (kind `sampler`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<SamplerSpec>,
    /// Template (kind `expression`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Model alias (kinds `llm_text`, `llm_structured`, `llm_judge`, `embedding`, `custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Prompt template (kinds `llm_text`, `llm_structured`, `llm_judge`; optional for `custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// System prompt template, sent as a `system` message before the prompt (kinds
    /// `llm_text`, `llm_structured`, `llm_judge`; optional; `{{ column }}` references allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Inference parameters of this column's calls, overriding the model alias's `inference`
    /// field by field (`extra_body` merges key by key). Kinds `llm_text`, `llm_structured`,
    /// `llm_judge`; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceParams>,
    /// JSON Schema of the reply (kind `llm_structured`, required): an object schema
    /// (`"type": "object"`), sent as `response_format: {"type": "json_schema", …}`. The value
    /// is the parsed reply, a nested object under the column's name; later templates read its
    /// fields as `{{ column.field }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub schema: Option<Value>,
    /// Named scores a judge asks for (kind `llm_judge`, optional; 1–64, unique names): the
    /// value is an object with one integer field per score (`{{ column.clarity }}`). Without
    /// `scores`, the judge asks for one `score` in 1..=10 and the value is that integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<JudgeScore>>,
    /// How many times an invalid structured reply (not JSON, or breaking the schema) is asked
    /// again before the row is dropped with cause `invalid_structured_output` (kinds
    /// `llm_structured`, `llm_judge`; 0–10, default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10))]
    pub invalid_output_retries: Option<u32>,
    /// Embedding input template (kind `embedding`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Calls per row (kind `custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<CallsSpec>,
    /// Columns to check (kind `validator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

/// Sampler types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SamplerType {
    /// One of `values`, optionally by `weights`.
    Category,
    /// Integer in `[low, high]` (inclusive).
    UniformInt,
    /// Float in `[low, high)`.
    UniformFloat,
    /// UUID v4 text.
    Uuid,
}

impl SamplerType {
    /// Snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Category => "category",
            Self::UniformInt => "uniform_int",
            Self::UniformFloat => "uniform_float",
            Self::Uuid => "uuid",
        }
    }
}

/// Sampler settings; which fields apply depends on `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplerSpec {
    /// Sampler type.
    #[serde(rename = "type")]
    pub kind: SamplerType,
    /// Category values (non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    /// Category weights (one per value, finite, ≥ 0, not all 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
    /// Lower bound (integer for `uniform_int`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<serde_json::Number>,
    /// Upper bound (integer for `uniform_int`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<serde_json::Number>,
}

/// How many chat calls a `custom` column makes per row: drawn from the cell seed in `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallsSpec {
    /// Fewest calls.
    pub min: u32,
    /// Most calls (≥ min).
    #[schemars(range(max = validate::MAX_CALLS_PER_CELL))]
    pub max: u32,
}

/// The public request-admission tuning: the five AIMD fields (same shape and defaults as
/// weir-request-admission's `RequestAdmissionTuningConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RequestAdmissionSpec {
    /// Multiplicative decrease factor, 0 < x < 1 (default 0.75).
    pub multiplicative_decrease_factor: f64,
    /// Additive increase step, ≥ 1 (default 1).
    pub additive_increase_step: u32,
    /// Successes before an increase, ≥ 1 (default 25).
    pub successes_until_increase: u32,
    /// Cooldown when a rate limit has no Retry-After, > 0 seconds (default 2.0).
    pub cooldown_seconds: f64,
    /// Startup ramp, ≥ 0 seconds (default 0 = off).
    pub startup_ramp_seconds: f64,
    /// Optional (weir extension): the adaptive policy, `goodput` (default) or `plan_aimd` (the
    /// seed plan's exact AIMD, for comparison).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<RequestPolicySpec>,
}

/// The adaptive request policy named in a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestPolicySpec {
    /// weir's default goodput policy.
    Goodput,
    /// The seed plan's exact AIMD.
    PlanAimd,
}

impl RequestPolicySpec {
    /// The durable policy name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Goodput => "goodput",
            Self::PlanAimd => "plan_aimd",
        }
    }
}

impl Default for RequestAdmissionSpec {
    fn default() -> Self {
        Self {
            multiplicative_decrease_factor: 0.75,
            additive_increase_step: 1,
            successes_until_increase: 25,
            cooldown_seconds: 2.0,
            startup_ramp_seconds: 0.0,
            policy: None,
        }
    }
}

/// The syntax a workflow file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpecSyntax {
    /// JSON (`.json`, and any file that is not `.yaml`/`.yml`).
    #[default]
    Json,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
}

impl SpecSyntax {
    /// The syntax a file's extension says: `.yaml`/`.yml` (any case) are YAML, the rest JSON.
    pub fn of_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") => {
                Self::Yaml
            }
            _ => Self::Json,
        }
    }
}

impl WorkflowSpec {
    /// The JSON Schema of a workflow file (`weir schema`), generated from these types: every
    /// field's doc comment is its `description`; `deny_unknown_fields` is
    /// `additionalProperties: false`. Bounds and cross-field rules beyond the types are checked
    /// by [`WorkflowSpec::validate`] and named in the descriptions.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(WorkflowSpec)).unwrap_or_default()
    }

    /// The spec reference page (`docs/spec.md`, `weir schema --markdown`), rendered from
    /// [`json_schema`](Self::json_schema).
    pub fn reference_markdown() -> String {
        reference::reference_markdown(&Self::json_schema())
    }

    /// Parses JSON text; a syntax or shape error names its JSON path. Does not validate meaning.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            shape_error(&path, &message)
        })
    }

    /// Parses YAML text into the same types as [`WorkflowSpec::from_json`]: a syntax or shape
    /// error names the same JSON path (`models[1].rate_limits.rpm`) and the YAML file's line and
    /// column. Does not validate meaning.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        let de = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let message = yaml_message(&path, &e.inner().to_string());
            shape_error(&path, &message)
        })
    }

    /// Parses text of the given syntax (no meaning checks).
    pub fn parse(text: &str, syntax: SpecSyntax) -> Result<Self, SpecError> {
        match syntax {
            SpecSyntax::Json => Self::from_json(text),
            SpecSyntax::Yaml => Self::from_yaml(text),
        }
    }

    /// Parses and validates JSON text: every problem found, or the notices of a valid spec.
    pub fn parse_and_validate(text: &str) -> Result<(Self, Vec<SpecNotice>), SpecErrors> {
        Self::parse_and_validate_as(text, SpecSyntax::Json)
    }

    /// Parses text of the given syntax and validates it: every problem found, or the notices.
    pub fn parse_and_validate_as(
        text: &str,
        syntax: SpecSyntax,
    ) -> Result<(Self, Vec<SpecNotice>), SpecErrors> {
        let spec = Self::parse(text, syntax)?;
        let notices = spec.validate()?;
        Ok((spec, notices))
    }

    /// Reads, parses (JSON, or YAML for `.yaml`/`.yml`) and validates a workflow file.
    pub fn load(path: &Path) -> Result<(Self, Vec<SpecNotice>), SpecErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpecError::new("(file)", format!("cannot read {}: {e}", path.display()))
        })?;
        // Paths inside the spec (`seed_dataset.path`) are relative to the spec file.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let spec = Self::parse(&text, SpecSyntax::of_path(path))?.with_base_dir(dir);
        let notices = spec.validate()?;
        Ok((spec, notices))
    }

    /// Applies `--records` / `--seed` overrides (a default `buffer_size` follows the new records).
    pub fn with_overrides(mut self, records: Option<u64>, seed: Option<u64>) -> Self {
        if let Some(r) = records {
            self.records = r;
        }
        if let Some(s) = seed {
            self.seed = s;
        }
        self
    }

    /// Rows per row group in effect: declared, or `min(records, 1000)` (at least 1).
    pub fn effective_buffer_size(&self) -> u64 {
        self.buffer_size
            .unwrap_or_else(|| self.records.clamp(1, DEFAULT_BUFFER_SIZE_CAP))
    }

    /// Row groups in flight in effect: declared, or 3.
    pub fn effective_max_concurrent_row_groups(&self) -> u32 {
        self.max_concurrent_row_groups
            .unwrap_or(DEFAULT_MAX_CONCURRENT_ROW_GROUPS)
    }

    /// Request-admission tuning in effect: declared, or the defaults.
    pub fn effective_request_admission(&self) -> RequestAdmissionSpec {
        self.request_admission.unwrap_or_default()
    }
}

/// serde_norway prefixes its messages with its own path (`models[1].rate_limits: unknown
/// field ...`); the path is reported separately (and exactly, by serde_path_to_error), so the
/// prefix goes. Its position reads `at line L column C`, as serde_json's does.
fn yaml_message(path: &str, message: &str) -> String {
    // Its path may stop short of serde_path_to_error's (`models[1].rate_limits` for the unknown
    // key `rpm` inside it), so any leading `P: ` where P begins the exact path is dropped.
    match message.split_once(": ") {
        Some((prefix, rest))
            if !prefix.is_empty() && !prefix.contains(' ') && path.starts_with(prefix) =>
        {
            rest.to_string()
        }
        _ => message.to_string(),
    }
}

/// Turns a serde error at `path` into a `SpecError`; "missing field `x`" moves onto the field's
/// own path so the message names what is missing where it belongs.
fn shape_error(path: &str, message: &str) -> SpecError {
    // `?` marks a key serde could not read (a syntax error): keep the readable prefix.
    let trimmed = path.trim_end_matches('?').trim_end_matches('.');
    let base = if trimmed.is_empty() {
        None
    } else {
        Some(trimmed.to_string())
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some(field) = rest.split('`').next() {
            let full = match &base {
                Some(b) => format!("{b}.{field}"),
                None => field.to_string(),
            };
            let tail = rest
                .split_once(" at line ")
                .map(|(_, pos)| format!(" (line {pos})"));
            return SpecError::new(
                full,
                format!("required field is missing{}", tail.unwrap_or_default()),
            );
        }
    }
    SpecError::new(
        base.unwrap_or_else(|| "(root)".to_string()),
        message.to_string(),
    )
}
