//! Semantic validation of a parsed [`WorkflowSpec`]: every meaning error with its JSON path.
//!
//! Runs after the shape is known to be right. Checks names (unique, non-empty), references
//! (provider, model alias, model id, column), per-kind required and forbidden fields, sampler and
//! custom-call ranges, the request-admission tuning, the seed dataset (its file, indexed once,
//! and its column names against the declared ones), and dependency cycles. All errors are
//! collected (document order) so one `weir validate` shows every problem at once.

use super::{
    ColumnDef, ColumnKind, ProviderKind, ProviderSpec, SamplerSpec, SamplerType, SpecError,
    SpecErrors, WorkflowSpec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use weir_runtime::provider::{LatencyDist, SimulatedModelConfig};
use weir_runtime::template::Template;
use weir_runtime::workflow::ModelRateLimits;

/// Most records one run may request (row indices, counters and the tracker stay far from
/// overflow; a larger dataset is several runs).
pub const MAX_RECORDS: u64 = 10_000_000_000;
/// Most rows per row group (a row group's rows are held in memory until it is written).
pub const MAX_BUFFER_SIZE: u64 = 1_000_000;
/// Most row groups in flight at once.
pub const MAX_CONCURRENT_ROW_GROUPS: u32 = 1_000;
/// Most rows held in memory at once (`buffer_size × max_concurrent_row_groups`).
pub const MAX_ROWS_IN_MEMORY: u64 = 10_000_000;
/// Largest static cap of a model alias.
pub const MAX_PARALLEL_REQUESTS: u32 = 100_000;
/// Most calls per cell of a `custom` column (each call's reply is kept until the cell ends).
pub const MAX_CALLS_PER_CELL: u32 = 1_000;
/// Longest simulated latency, in ms (1 h): a latency the run can wait out.
pub const MAX_LATENCY_MS: f64 = 3_600_000.0;
/// Largest lognormal `sigma` (its tail is what `MAX_LATENCY_MS` bounds through `median`).
pub const MAX_LOGNORMAL_SIGMA: f64 = 5.0;
/// Largest beta `alpha` / `beta`.
pub const MAX_BETA_SHAPE: f64 = 1e6;
/// Largest simulated hidden capacity.
pub const MAX_SIMULATED_CAPACITY: u32 = 1_000_000;
/// Longest seconds setting of a simulated model (`retry_after_s`) and of the cooldown.
pub const MAX_WAIT_SECONDS: f64 = 3_600.0;
/// Latest capacity-schedule step, in seconds (as request admission bounds its seconds).
pub const MAX_SCHEDULE_SECONDS: f64 = 1e9;
/// Most capacity-schedule steps.
pub const MAX_SCHEDULE_STEPS: usize = 10_000;
/// Largest connection pool of an `openai` provider.
pub const MAX_POOL_SIZE: u32 = 65_536;
/// Largest additive increase step of request admission.
pub const MAX_ADDITIVE_INCREASE_STEP: u32 = 1_000_000;

/// Something a valid spec should know (not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecNotice {
    /// JSON path it concerns.
    pub path: String,
    /// The note.
    pub message: String,
}

impl fmt::Display for SpecNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Notice for an `openai` provider whose key variable is not set where `weir validate` runs
/// (validation never touches the network; `weir run` fails at `api_key_env` without it).
fn api_key_env_unset(var: &str) -> String {
    // The label hides a value that looks like a key (a user who pasted the key itself).
    let label = weir_runtime::provider::openai::redact::env_var_label(var);
    format!("environment variable {label} is not set here; `weir run` needs it")
}

struct Checker {
    errors: Vec<SpecError>,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError::new(path, message));
    }

    /// A count that must be in `[1, max]` when present.
    fn count(&mut self, path: impl Into<String>, v: Option<u64>, max: u64) {
        match v {
            Some(0) => self.err(path, "must be at least 1"),
            Some(n) if n > max => self.err(path, format!("must be at most {max} (got {n})")),
            _ => {}
        }
    }
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = names.into_iter().map(|n| n.as_ref().to_string()).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

impl WorkflowSpec {
    /// Checks the spec's meaning. `Ok` carries notices (e.g. a provider `weir run` cannot use yet).
    pub fn validate(&self) -> Result<Vec<SpecNotice>, SpecErrors> {
        let mut c = Checker { errors: Vec::new() };
        let mut notices = Vec::new();
        if self.name.trim().is_empty() {
            c.err("name", "must be non-empty");
        }
        c.count("records", Some(self.records), MAX_RECORDS);
        c.count("buffer_size", self.buffer_size, MAX_BUFFER_SIZE);
        c.count(
            "max_concurrent_row_groups",
            self.max_concurrent_row_groups.map(u64::from),
            u64::from(MAX_CONCURRENT_ROW_GROUPS),
        );
        let in_memory = self
            .effective_buffer_size()
            .min(self.records.max(1))
            .saturating_mul(u64::from(self.effective_max_concurrent_row_groups()));
        if in_memory > MAX_ROWS_IN_MEMORY && c.errors.is_empty() {
            c.err(
                "max_concurrent_row_groups",
                format!(
                    "buffer_size × max_concurrent_row_groups would hold {in_memory} rows in \
                     memory (at most {MAX_ROWS_IN_MEMORY})"
                ),
            );
        }
        let providers = check_providers(&mut c, &self.providers, &mut notices);
        let aliases = self.check_models(&mut c, &providers);
        // The seed file's columns (`None`: it is unusable, so references cannot be checked).
        let seed_columns = match self.seed() {
            Ok(ds) => Some(ds.map(|d| d.columns().to_vec()).unwrap_or_default()),
            Err(e) => {
                c.errors.push(e);
                None
            }
        };
        self.check_columns(&mut c, &aliases, seed_columns.as_deref());
        if let Some(ra) = &self.request_admission {
            let f = ra.multiplicative_decrease_factor;
            if !(f.is_finite() && f > 0.0 && f < 1.0) {
                c.err(
                    "request_admission.multiplicative_decrease_factor",
                    format!("must be strictly between 0 and 1 (got {f})"),
                );
            }
            c.count(
                "request_admission.additive_increase_step",
                Some(u64::from(ra.additive_increase_step)),
                u64::from(MAX_ADDITIVE_INCREASE_STEP),
            );
            if ra.successes_until_increase == 0 {
                c.err(
                    "request_admission.successes_until_increase",
                    "must be at least 1",
                );
            }
            if !(ra.cooldown_seconds.is_finite()
                && ra.cooldown_seconds > 0.0
                && ra.cooldown_seconds <= MAX_WAIT_SECONDS)
            {
                c.err(
                    "request_admission.cooldown_seconds",
                    format!(
                        "must be a number of seconds in (0, {MAX_WAIT_SECONDS}] (got {})",
                        ra.cooldown_seconds
                    ),
                );
            }
            if !(ra.startup_ramp_seconds.is_finite() && ra.startup_ramp_seconds >= 0.0) {
                c.err(
                    "request_admission.startup_ramp_seconds",
                    format!(
                        "must be a finite number of seconds ≥ 0 (got {})",
                        ra.startup_ramp_seconds
                    ),
                );
            }
        }
        if c.errors.is_empty() {
            // The same engine-side checks `weir run` makes, so validate and run never disagree.
            if let Err(e) = self.engine_config_check() {
                c.errors.push(e);
            }
        }
        if c.errors.is_empty() {
            // Build the workflow and its generators exactly as `weir run` does (no providers,
            // no network): whatever the runtime's constructors refuse is refused here too.
            if let Err(e) = self.build_workflow() {
                c.errors.push(e);
            }
        }
        if c.errors.is_empty() {
            Ok(notices)
        } else {
            Err(SpecErrors(c.errors))
        }
    }

    /// Checks `models`; returns alias → model index for the aliases that are well-formed.
    fn check_models(
        &self,
        c: &mut Checker,
        providers: &BTreeMap<&str, &ProviderSpec>,
    ) -> BTreeMap<String, usize> {
        let mut aliases: BTreeMap<String, usize> = BTreeMap::new();
        for (i, m) in self.models.iter().enumerate() {
            let p = format!("models[{i}]");
            if m.alias.trim().is_empty() {
                c.err(format!("{p}.alias"), "must be non-empty");
            } else if let Some(first) = aliases.get(&m.alias) {
                c.err(
                    format!("{p}.alias"),
                    format!(
                        "duplicate model alias {:?} (first defined at models[{first}])",
                        m.alias
                    ),
                );
            } else {
                aliases.insert(m.alias.clone(), i);
            }
            match providers.get(m.provider.as_str()) {
                None => c.err(
                    format!("{p}.provider"),
                    format!(
                        "unknown provider {:?} (declared providers: {})",
                        m.provider,
                        list(providers.keys())
                    ),
                ),
                Some(prov) => {
                    if let (ProviderKind::Simulated, Some(models)) = (prov.kind, &prov.models) {
                        if !models.iter().any(|sm| sm.model_id == m.model_id) {
                            c.err(
                                format!("{p}.model_id"),
                                format!(
                                    "provider {:?} declares no model {:?} (declared: {})",
                                    m.provider,
                                    m.model_id,
                                    list(models.iter().map(|sm| sm.model_id.as_str()))
                                ),
                            );
                        }
                    }
                }
            }
            if m.model_id.trim().is_empty() {
                c.err(format!("{p}.model_id"), "must be non-empty");
            }
            c.count(
                format!("{p}.max_parallel_requests"),
                m.max_parallel_requests.map(u64::from),
                u64::from(MAX_PARALLEL_REQUESTS),
            );
            if let Some(limits) = &m.rate_limits {
                check_rate_limits(c, &format!("{p}.rate_limits"), limits);
            }
            if let Some(inference) = &m.inference {
                check_inference(c, &format!("{p}.inference"), inference);
            }
        }
        aliases
    }

    fn check_columns(
        &self,
        c: &mut Checker,
        aliases: &BTreeMap<String, usize>,
        seed_columns: Option<&[String]>,
    ) {
        if self.columns.is_empty() {
            c.err("columns", "a workflow needs at least one column");
            return;
        }
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, col) in self.columns.iter().enumerate() {
            if col.name.trim().is_empty() {
                c.err(format!("columns[{i}].name"), "must be non-empty");
            } else if let Some(first) = index.get(col.name.as_str()) {
                c.err(
                    format!("columns[{i}].name"),
                    format!(
                        "duplicate column name {:?} (first defined at columns[{first}])",
                        col.name
                    ),
                );
            } else {
                if col.name.contains('.') {
                    c.err(
                        format!("columns[{i}].name"),
                        format!(
                            "{:?} may not contain '.' (templates read {{{{ column.field }}}} as a \
                             nested field)",
                            col.name
                        ),
                    );
                }
                index.insert(col.name.as_str(), i);
            }
            if seed_columns.is_some_and(|seed| seed.contains(&col.name)) {
                c.err(
                    format!("columns[{i}].name"),
                    format!(
                        "column {:?} is also a column of the seed dataset ({})",
                        col.name,
                        super::SEED_PATH_FIELD
                    ),
                );
            }
        }
        // Every name a reference may use: the seed file's columns, then the declared ones.
        let mut known: Vec<&str> = seed_columns
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect();
        for name in index.keys() {
            if !known.contains(name) {
                known.push(name);
            }
        }
        // upstream[i] = indices column i reads (only resolvable references).
        let mut upstream: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); self.columns.len()];
        let mut refs_ok = true;
        let mut template_ok = true;
        for (i, col) in self.columns.iter().enumerate() {
            let p = format!("columns[{i}]");
            check_kind_fields(c, &p, col);
            if let Some(s) = col.strategy {
                if s != col.kind.strategy() {
                    c.err(
                        format!("{p}.strategy"),
                        format!(
                            "kind {:?} supports only the {:?} strategy (got {:?})",
                            col.kind.as_str(),
                            col.kind.strategy().as_str(),
                            s.as_str()
                        ),
                    );
                }
            }
            if col.kind.uses_model() {
                if let Some(alias) = &col.model {
                    if !aliases.contains_key(alias) {
                        c.err(
                            format!("{p}.model"),
                            format!(
                                "unknown model alias {alias:?} (declared aliases: {})",
                                list(aliases.keys())
                            ),
                        );
                    }
                }
            }
            if let (ColumnKind::Custom, Some(calls)) = (col.kind, &col.calls) {
                if calls.max > MAX_CALLS_PER_CELL {
                    c.err(
                        format!("{p}.calls.max"),
                        format!(
                            "must be at most {MAX_CALLS_PER_CELL} calls per cell (got {})",
                            calls.max
                        ),
                    );
                } else if calls.min > calls.max {
                    c.err(
                        format!("{p}.calls.min"),
                        format!("min ({}) must not exceed max ({})", calls.min, calls.max),
                    );
                }
            }
            if let (ColumnKind::Sampler, Some(s)) = (col.kind, &col.sampler) {
                check_sampler(c, &format!("{p}.sampler"), s);
            }
            let mut reference =
                |c: &mut Checker, path: String, name: &str, how: &str| match index.get(name) {
                    Some(j) => {
                        upstream[i].insert(*j);
                    }
                    // A seed column is a root: no edge, no cycle through it.
                    None if seed_columns.is_some_and(|seed| seed.iter().any(|s| s == name)) => {}
                    // The seed file is unusable (reported at seed_dataset.path): the name may
                    // be one of its columns.
                    None if seed_columns.is_none() => refs_ok = false,
                    None => {
                        refs_ok = false;
                        c.err(
                            path,
                            format!("unknown column {name:?}{how} (columns: {})", list(&known)),
                        );
                    }
                };
            for (field, text) in [
                ("template", &col.template),
                ("prompt", &col.prompt),
                ("system_prompt", &col.system_prompt),
                ("input", &col.input),
            ] {
                let Some(text) = text else { continue };
                match Template::parse(text) {
                    Ok(t) => {
                        for name in t.referenced_columns() {
                            let how = format!(" referenced as {{{{ {name} }}}}");
                            reference(c, format!("{p}.{field}"), &name, &how);
                        }
                        for (name, path) in t.field_references() {
                            let Some(source) = index.get(name).map(|j| &self.columns[*j]) else {
                                continue;
                            };
                            if let Some(problem) = nested_field_problem(source, &path[0]) {
                                c.err(format!("{p}.{field}"), problem);
                            }
                        }
                    }
                    Err(e) => {
                        template_ok = false;
                        c.err(format!("{p}.{field}"), e.to_string());
                    }
                }
            }
            for (j, dep) in col.depends_on.iter().enumerate() {
                reference(c, format!("{p}.depends_on[{j}]"), dep, "");
            }
            if let (ColumnKind::Validator, Some(cols)) = (col.kind, &col.columns) {
                for (j, name) in cols.iter().enumerate() {
                    reference(c, format!("{p}.columns[{j}]"), name, "");
                }
            }
        }
        if refs_ok && template_ok {
            if let Some(cycle) = find_cycle(&upstream) {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|i| self.columns[*i].name.as_str())
                    .collect();
                let first = cycle.first().copied().unwrap_or(0);
                c.err(
                    format!("columns[{first}]"),
                    format!(
                        "dependency cycle: {} -> {}",
                        names.join(" -> "),
                        names.first().copied().unwrap_or_default()
                    ),
                );
            }
        }
    }
}

/// Checks `providers`; returns name → provider for the well-named ones.
fn check_providers<'a>(
    c: &mut Checker,
    providers: &'a [ProviderSpec],
    notices: &mut Vec<SpecNotice>,
) -> BTreeMap<&'a str, &'a ProviderSpec> {
    let mut by_name: BTreeMap<&str, &ProviderSpec> = BTreeMap::new();
    let mut first_at: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, prov) in providers.iter().enumerate() {
        let p = format!("providers[{i}]");
        if prov.name.trim().is_empty() {
            c.err(format!("{p}.name"), "must be non-empty");
        } else if let Some(first) = first_at.get(prov.name.as_str()) {
            c.err(
                format!("{p}.name"),
                format!(
                    "duplicate provider name {:?} (first defined at providers[{first}])",
                    prov.name
                ),
            );
        } else {
            first_at.insert(prov.name.as_str(), i);
            by_name.insert(prov.name.as_str(), prov);
        }
        let kind = prov.kind.as_str();
        let forbid = |c: &mut Checker, field: &str, present: bool| {
            if present {
                c.err(
                    format!("{p}.{field}"),
                    format!("not used by providers of kind {kind:?}"),
                );
            }
        };
        match prov.kind {
            ProviderKind::Simulated => {
                forbid(c, "base_url", prov.base_url.is_some());
                forbid(c, "api_key_env", prov.api_key_env.is_some());
                forbid(c, "timeout_s", prov.timeout_s.is_some());
                forbid(c, "pool_size", prov.pool_size.is_some());
                forbid(c, "max_response_bytes", prov.max_response_bytes.is_some());
                forbid(c, "ca_file", prov.ca_file.is_some());
                forbid(c, "extra_headers", prov.extra_headers.is_some());
                match &prov.models {
                    None => c.err(
                        format!("{p}.models"),
                        "required for providers of kind \"simulated\"",
                    ),
                    Some(models) if models.is_empty() => {
                        c.err(format!("{p}.models"), "must declare at least one model")
                    }
                    Some(models) => {
                        for (j, m) in models.iter().enumerate() {
                            if let Err(e) = m.validate() {
                                c.err(format!("{p}.models[{j}].{}", e.field), e.message);
                            } else {
                                check_simulated_bounds(c, &format!("{p}.models[{j}]"), m);
                            }
                            if let Some(k) =
                                models[..j].iter().position(|o| o.model_id == m.model_id)
                            {
                                c.err(
                                    format!("{p}.models[{j}].model_id"),
                                    format!(
                                        "duplicate model_id {:?} (first at {p}.models[{k}])",
                                        m.model_id
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            ProviderKind::Openai => {
                forbid(c, "models", prov.models.is_some());
                match &prov.base_url {
                    None => c.err(
                        format!("{p}.base_url"),
                        "required for providers of kind \"openai\"",
                    ),
                    Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => c.err(
                        format!("{p}.base_url"),
                        format!("must start with http:// or https:// (got {u:?})"),
                    ),
                    Some(_) => {}
                }
                if let Some(n) = prov.pool_size {
                    if n > MAX_POOL_SIZE {
                        c.err(
                            format!("{p}.pool_size"),
                            format!("must be at most {MAX_POOL_SIZE} (got {n})"),
                        );
                    }
                }
                // The provider's own config check (URL syntax, timeout, pool), the one
                // `weir run` applies when it builds the provider; the key is not read here.
                for (name, value) in prov.extra_headers.iter().flatten() {
                    if let Err(e) = weir_runtime::provider::openai::extra_header(name, value) {
                        c.err(format!("{p}.extra_headers.{name}"), e.message);
                    }
                }
                if prov.base_url.is_some() {
                    match super::build::openai_config(prov).validate() {
                        // Reported per header above.
                        Err(e) if e.field == "extra_headers" => {}
                        Err(e) => c.err(format!("{p}.{}", e.field), e.message),
                        Ok(()) => {}
                    }
                }
                match &prov.api_key_env {
                    None => c.err(
                        format!("{p}.api_key_env"),
                        "required for providers of kind \"openai\"",
                    ),
                    Some(v) if v.trim().is_empty() => {
                        c.err(format!("{p}.api_key_env"), "must be non-empty")
                    }
                    Some(_) => {}
                }
                if let Some(t) = prov.timeout_s {
                    if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
                        c.err(
                            format!("{p}.timeout_s"),
                            format!("must be a number of seconds in (0, 86400] (got {t})"),
                        );
                    }
                }
                if prov.pool_size == Some(0) {
                    c.err(format!("{p}.pool_size"), "must be at least 1");
                }
                if let Some(n) = prov.max_response_bytes {
                    use weir_runtime::provider::openai::{
                        MAX_MAX_RESPONSE_BYTES as MAX, MIN_MAX_RESPONSE_BYTES as MIN,
                    };
                    if !(MIN..=MAX).contains(&n) {
                        c.err(
                            format!("{p}.max_response_bytes"),
                            format!("must be a number of bytes in [{MIN}, {MAX}] (got {n})"),
                        );
                    }
                }
                if let Some(path) = &prov.ca_file {
                    // The same check `weir run` makes when it builds the client.
                    if path.trim().is_empty() {
                        c.err(format!("{p}.ca_file"), "must be non-empty");
                    } else if let Err(e) =
                        weir_runtime::provider::openai::load_ca_file(std::path::Path::new(path))
                    {
                        c.err(format!("{p}.ca_file"), e.message);
                    }
                }
                if let Some(var) = prov.api_key_env.as_deref().filter(|v| !v.trim().is_empty()) {
                    if std::env::var_os(var).is_none() {
                        notices.push(SpecNotice {
                            path: format!("{p}.api_key_env"),
                            message: api_key_env_unset(var),
                        });
                    }
                }
            }
        }
    }
    by_name
}

/// Every configured budget is an integer in `1..=ModelRateLimits::MAX_PER_MINUTE` (one error
/// per bad field, so `weir validate` shows them all).
fn check_rate_limits(c: &mut Checker, p: &str, limits: &ModelRateLimits) {
    for (field, value) in limits.fields() {
        if let Some(v) = value {
            if v == 0 || v > ModelRateLimits::MAX_PER_MINUTE {
                c.err(
                    format!("{p}.{field}"),
                    format!(
                        "must be an integer in 1..={} per minute (got {v})",
                        ModelRateLimits::MAX_PER_MINUTE
                    ),
                );
            }
        }
    }
}

/// Bounds of a simulated model the runtime's own check leaves open: latencies the run can wait
/// out (≤ 1 h), shapes the samplers handle, capacities and schedules it can hold.
fn check_simulated_bounds(c: &mut Checker, p: &str, m: &SimulatedModelConfig) {
    let lat = format!("{p}.latency_ms");
    let over = |v: f64| v > MAX_LATENCY_MS;
    match m.latency_ms {
        LatencyDist::Fixed { value } if over(value) => c.err(
            format!("{lat}.value"),
            format!("must be at most {MAX_LATENCY_MS} ms (1 h) (got {value})"),
        ),
        LatencyDist::Uniform { max, .. } if over(max) => c.err(
            format!("{lat}.max"),
            format!("must be at most {MAX_LATENCY_MS} ms (1 h) (got {max})"),
        ),
        LatencyDist::Lognormal { sigma, .. } if sigma > MAX_LOGNORMAL_SIGMA => c.err(
            format!("{lat}.sigma"),
            format!("must be at most {MAX_LOGNORMAL_SIGMA} (got {sigma})"),
        ),
        // The 99.9th percentile (z ≈ 3.09) must be a latency the run can wait out.
        LatencyDist::Lognormal { median, sigma } if over(median * (3.09 * sigma).exp()) => c.err(
            format!("{lat}.median"),
            format!(
                "median·exp(3.09·sigma), the 99.9th percentile, must be at most {MAX_LATENCY_MS} ms (1 h) (got {})",
                median * (3.09 * sigma).exp()
            ),
        ),
        LatencyDist::Beta { alpha, beta, .. } if alpha > MAX_BETA_SHAPE || beta > MAX_BETA_SHAPE => {
            c.err(
                format!("{lat}.alpha"),
                format!("alpha and beta must be at most {MAX_BETA_SHAPE} (got {alpha}, {beta})"),
            )
        }
        LatencyDist::Beta { scale, .. } if over(scale) => c.err(
            format!("{lat}.scale"),
            format!("must be at most {MAX_LATENCY_MS} ms (1 h) (got {scale})"),
        ),
        _ => {}
    }
    if let Some(s) = m.retry_after_s {
        if s > MAX_WAIT_SECONDS {
            c.err(
                format!("{p}.retry_after_s"),
                format!("must be at most {MAX_WAIT_SECONDS} s (got {s})"),
            );
        }
    }
    if m.capacity > MAX_SIMULATED_CAPACITY {
        c.err(
            format!("{p}.capacity"),
            format!(
                "must be at most {MAX_SIMULATED_CAPACITY} (got {})",
                m.capacity
            ),
        );
    }
    if m.capacity_schedule.len() > MAX_SCHEDULE_STEPS {
        c.err(
            format!("{p}.capacity_schedule"),
            format!("must have at most {MAX_SCHEDULE_STEPS} steps"),
        );
    }
    for (i, step) in m.capacity_schedule.iter().enumerate() {
        if step.at_s > MAX_SCHEDULE_SECONDS {
            c.err(
                format!("{p}.capacity_schedule[{i}].at_s"),
                format!(
                    "must be at most {MAX_SCHEDULE_SECONDS:e} s (got {})",
                    step.at_s
                ),
            );
        }
        if step.capacity > MAX_SIMULATED_CAPACITY {
            c.err(
                format!("{p}.capacity_schedule[{i}].capacity"),
                format!(
                    "must be at most {MAX_SIMULATED_CAPACITY} (got {})",
                    step.capacity
                ),
            );
        }
    }
}

/// Required and forbidden fields per column kind.
fn check_kind_fields(c: &mut Checker, p: &str, col: &ColumnDef) {
    let kind = col.kind.as_str();
    let present = [
        ("sampler", col.sampler.is_some()),
        ("template", col.template.is_some()),
        ("model", col.model.is_some()),
        ("prompt", col.prompt.is_some()),
        ("input", col.input.is_some()),
        ("calls", col.calls.is_some()),
        ("columns", col.columns.is_some()),
        ("system_prompt", col.system_prompt.is_some()),
        ("inference", col.inference.is_some()),
        ("schema", col.schema.is_some()),
        ("scores", col.scores.is_some()),
        (
            "invalid_output_retries",
            col.invalid_output_retries.is_some(),
        ),
    ];
    let (required, optional): (&[&str], &[&str]) = match col.kind {
        ColumnKind::Sampler => (&["sampler"], &[]),
        ColumnKind::Expression => (&["template"], &[]),
        ColumnKind::LlmText => (&["model", "prompt"], &["system_prompt", "inference"]),
        ColumnKind::LlmStructured => (
            &["model", "prompt", "schema"],
            &["system_prompt", "inference", "invalid_output_retries"],
        ),
        ColumnKind::LlmJudge => (
            &["model", "prompt"],
            &[
                "system_prompt",
                "inference",
                "scores",
                "invalid_output_retries",
            ],
        ),
        ColumnKind::Embedding => (&["model", "input"], &[]),
        ColumnKind::Custom => (&["model", "calls"], &["prompt"]),
        ColumnKind::Validator => (&["columns"], &[]),
    };
    for (field, is_present) in present {
        let needed = required.contains(&field);
        if needed && !is_present {
            c.err(
                format!("{p}.{field}"),
                format!("required for columns of kind {kind:?}"),
            );
        } else if is_present && !needed && !optional.contains(&field) {
            c.err(
                format!("{p}.{field}"),
                format!("not used by columns of kind {kind:?}"),
            );
        }
    }
    if let Some(m) = &col.model {
        if m.trim().is_empty() {
            c.err(format!("{p}.model"), "must be non-empty");
        }
    }
    if let (ColumnKind::Validator, Some(cols)) = (col.kind, &col.columns) {
        if cols.is_empty() {
            c.err(format!("{p}.columns"), "must name at least one column");
        }
    }
    check_structured_fields(c, p, col);
}

/// Why `{{ source.field }}` is refused before the run: a structured column whose schema lists
/// no such property (unless the schema says it is open: `additionalProperties` other than
/// `false`, or `patternProperties`; an absent `additionalProperties` counts as closed here, as
/// a field the schema never names is almost surely a typo), a judge with no such score, or a
/// judge without `scores` (its value is a bare integer). Other kinds are only known at run time.
fn nested_field_problem(source: &ColumnDef, field: &str) -> Option<String> {
    let name = &source.name;
    match source.kind {
        ColumnKind::LlmStructured => {
            let schema = source.schema.as_ref()?.as_object()?;
            let open = schema.contains_key("patternProperties")
                || schema
                    .get("additionalProperties")
                    .is_some_and(|a| a.as_bool() != Some(false));
            let props = schema.get("properties").and_then(|p| p.as_object());
            let known = props.is_some_and(|p| p.contains_key(field));
            (!known && !open).then(|| {
                format!(
                    "column {name:?} has no field {field:?} (its schema's properties: {})",
                    list(props.into_iter().flat_map(|p| p.keys()))
                )
            })
        }
        ColumnKind::LlmJudge => match &source.scores {
            None => Some(format!(
                "column {name:?} is a judge without `scores`: its value is one integer, with no \
                 field {field:?} (declare `scores` to get one field per score)"
            )),
            Some(scores) => (!scores.iter().any(|s| s.name == field)).then(|| {
                format!(
                    "judge column {name:?} has no score {field:?} (its scores: {})",
                    list(scores.iter().map(|s| s.name.as_str()))
                )
            }),
        },
        _ => None,
    }
}

/// The structured-output and chat settings of a column, every problem at once (the runtime's
/// constructors check the same, one at a time).
fn check_structured_fields(c: &mut Checker, p: &str, col: &ColumnDef) {
    use weir_runtime::generators::structured::{validate_scores, MAX_INVALID_OUTPUT_RETRIES};
    use weir_runtime::generators::ReplySchema;
    if let Some(inference) = &col.inference {
        check_inference(c, &format!("{p}.inference"), inference);
    }
    if let (ColumnKind::LlmStructured, Some(schema)) = (col.kind, &col.schema) {
        if let Err(e) = ReplySchema::compile(schema.clone()) {
            c.err(format!("{p}.schema"), e.message);
        }
    }
    if let (ColumnKind::LlmJudge, Some(scores)) = (col.kind, &col.scores) {
        for e in validate_scores(scores) {
            c.err(format!("{p}.{}", e.field), e.message);
        }
    }
    if let Some(n) = col.invalid_output_retries {
        if n > MAX_INVALID_OUTPUT_RETRIES {
            c.err(
                format!("{p}.invalid_output_retries"),
                format!("must be in 0..={MAX_INVALID_OUTPUT_RETRIES} (got {n})"),
            );
        }
    }
}

/// An `inference` object (a model's or a column's): each bad field at its own path.
fn check_inference(c: &mut Checker, p: &str, inference: &weir_runtime::inference::InferenceParams) {
    for e in inference.validate() {
        c.err(format!("{p}.{}", e.field), e.message);
    }
}

fn check_sampler(c: &mut Checker, p: &str, s: &SamplerSpec) {
    let t = s.kind.as_str();
    let forbid = |c: &mut Checker, field: &str, present: bool| {
        if present {
            c.err(
                format!("{p}.{field}"),
                format!("not used by samplers of type {t:?}"),
            );
        }
    };
    let require = |c: &mut Checker, field: &str, present: bool| {
        if !present {
            c.err(
                format!("{p}.{field}"),
                format!("required for samplers of type {t:?}"),
            );
        }
    };
    match s.kind {
        SamplerType::Category => {
            forbid(c, "low", s.low.is_some());
            forbid(c, "high", s.high.is_some());
            require(c, "values", s.values.is_some());
            let n = s.values.as_ref().map_or(0, Vec::len);
            if s.values.is_some() && n == 0 {
                c.err(format!("{p}.values"), "must list at least one value");
            }
            if let Some(w) = &s.weights {
                if s.values.is_some() && w.len() != n {
                    c.err(
                        format!("{p}.weights"),
                        format!("expected {n} weights (one per value), got {}", w.len()),
                    );
                }
                if let Some(k) = w.iter().position(|x| !x.is_finite() || *x < 0.0) {
                    c.err(
                        format!("{p}.weights[{k}]"),
                        format!("must be finite and ≥ 0 (got {})", w[k]),
                    );
                } else if !w.is_empty() && w.iter().all(|x| *x == 0.0) {
                    c.err(format!("{p}.weights"), "must not all be zero");
                } else if !w.iter().sum::<f64>().is_finite() {
                    // The weighted sampler adds them up: an infinite total panics it.
                    c.err(
                        format!("{p}.weights"),
                        "must have a finite sum (scale the weights down)",
                    );
                }
            }
        }
        SamplerType::UniformInt => {
            forbid(c, "values", s.values.is_some());
            forbid(c, "weights", s.weights.is_some());
            require(c, "low", s.low.is_some());
            require(c, "high", s.high.is_some());
            let int = |c: &mut Checker, field: &str, v: &Option<serde_json::Number>| {
                let n = v.as_ref()?;
                let i = n.as_i64();
                if i.is_none() {
                    c.err(
                        format!("{p}.{field}"),
                        format!("must be an integer in the i64 range (got {n})"),
                    );
                }
                i
            };
            if let (Some(lo), Some(hi)) = (int(c, "low", &s.low), int(c, "high", &s.high)) {
                if lo > hi {
                    c.err(
                        format!("{p}.low"),
                        format!("low ({lo}) must not exceed high ({hi})"),
                    );
                }
            }
        }
        SamplerType::UniformFloat => {
            forbid(c, "values", s.values.is_some());
            forbid(c, "weights", s.weights.is_some());
            require(c, "low", s.low.is_some());
            require(c, "high", s.high.is_some());
            let lo = s.low.as_ref().and_then(serde_json::Number::as_f64);
            let hi = s.high.as_ref().and_then(serde_json::Number::as_f64);
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo >= hi {
                    c.err(
                        format!("{p}.low"),
                        format!("low ({lo}) must be below high ({hi})"),
                    );
                } else if !(hi - lo).is_finite() {
                    // The sampler draws low + (high − low)·u: an infinite width panics it.
                    c.err(
                        format!("{p}.high"),
                        format!("high − low must be finite (got {lo} .. {hi})"),
                    );
                }
            }
        }
        SamplerType::Uuid => {
            forbid(c, "values", s.values.is_some());
            forbid(c, "weights", s.weights.is_some());
            forbid(c, "low", s.low.is_some());
            forbid(c, "high", s.high.is_some());
        }
    }
}

/// One dependency cycle (indices, rotated to start at its smallest), if the graph has any.
fn find_cycle(upstream: &[BTreeSet<usize>]) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the current path, 2 = done. Iterative DFS over upstream edges.
    let n = upstream.len();
    let mut state = vec![0u8; n];
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        let mut path: Vec<usize> = vec![start];
        let mut iters: Vec<std::collections::btree_set::Iter<'_, usize>> =
            vec![upstream[start].iter()];
        state[start] = 1;
        while let Some(it) = iters.last_mut() {
            match it.next() {
                Some(&next) => match state[next] {
                    0 => {
                        state[next] = 1;
                        path.push(next);
                        iters.push(upstream[next].iter());
                    }
                    1 => {
                        let at = path.iter().position(|v| *v == next).unwrap_or(0);
                        // path[at..] follows "reads" edges; reverse so each column is read by the next.
                        let mut cycle: Vec<usize> = path[at..].iter().rev().copied().collect();
                        let min_at = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, v)| **v)
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min_at);
                        return Some(cycle);
                    }
                    _ => {}
                },
                None => {
                    iters.pop();
                    if let Some(v) = path.pop() {
                        state[v] = 2;
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::find_cycle;
    use std::collections::BTreeSet;

    #[test]
    fn finds_cycles_and_accepts_dags() {
        let g = |edges: &[&[usize]]| -> Vec<BTreeSet<usize>> {
            edges.iter().map(|e| e.iter().copied().collect()).collect()
        };
        assert_eq!(find_cycle(&g(&[&[], &[0], &[0, 1]])), None);
        // 0 reads 2, 2 reads 1, 1 reads 0: data flows 0 -> 1 -> 2 -> 0.
        assert_eq!(find_cycle(&g(&[&[2], &[0], &[1]])), Some(vec![0, 1, 2]));
        assert_eq!(find_cycle(&g(&[&[0]])), Some(vec![0]));
    }

    fn openai_spec(extra: serde_json::Value) -> String {
        let mut provider = serde_json::json!({
            "name": "remote", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "WEIR_SPEC_TEST_KEY_SURELY_UNSET"
        });
        for (k, v) in extra.as_object().expect("object") {
            provider[k] = v.clone();
        }
        serde_json::json!({
            "name": "s", "records": 1, "seed": 1,
            "providers": [provider],
            "models": [{"alias": "w", "provider": "remote", "model_id": "m1"}],
            "columns": [{"name": "t", "kind": "llm_text", "model": "w", "prompt": "hi"}]
        })
        .to_string()
    }

    fn errors_of(text: &str) -> Vec<String> {
        match crate::spec::WorkflowSpec::parse_and_validate(text) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect()
            }
        }
    }

    #[test]
    fn openai_max_response_bytes_and_ca_file_are_checked_at_their_paths() {
        let ok = serde_json::json!({"max_response_bytes": 1_048_576});
        assert!(errors_of(&openai_spec(ok)).is_empty());
        let small = errors_of(&openai_spec(serde_json::json!({"max_response_bytes": 10})));
        assert!(
            small
                .iter()
                .any(|e| e.starts_with("providers[0].max_response_bytes")),
            "{small:?}"
        );
        let missing = errors_of(&openai_spec(
            serde_json::json!({"ca_file": "/surely/not/here/ca.pem"}),
        ));
        assert!(
            missing
                .iter()
                .any(|e| e.starts_with("providers[0].ca_file")
                    && e.contains("/surely/not/here/ca.pem")),
            "{missing:?}"
        );
        // A key pasted into api_key_env is never echoed by the notice.
        let pasted = "sk-live-0123456789abcdefXYZ";
        let (_, notices) = crate::spec::WorkflowSpec::parse_and_validate(&openai_spec(
            serde_json::json!({"api_key_env": pasted}),
        ))
        .expect("valid shape");
        assert!(!notices.is_empty());
        assert!(
            notices.iter().all(|n| !n.message.contains(pasted)),
            "{notices:?}"
        );
    }
}
