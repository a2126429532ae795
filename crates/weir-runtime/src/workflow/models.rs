//! Model aliases and the `ModelRegistry`: alias → provider/model endpoint, and alias-set metadata.
//!
//! The registry is the one place that turns model aliases into scheduling metadata, so the alias
//! merge rules live here: aliases are canonicalized (sorted, de-duplicated); aliases that resolve
//! to the same provider/model endpoint merge with the static-cap *min* rule; an alias set spanning
//! several endpoints falls back to deterministic `custom_model` metadata with diagnostics.
//! An alias may carry request/token budgets ([`ModelRateLimits`]); the engine merges the budgets
//! of one endpoint's aliases by the tightest rule into its budget ledger.

use crate::inference::InferenceParams;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_contracts::{
    identity_hash, SchedulingMetadata, SchedulingMetadataError, SchedulingMetadataErrorCode,
};
use weir_request_admission::BudgetLimits;

/// Configured request/token budgets of an alias, per minute (each optional): the workflow's
/// form of request admission's `BudgetLimits` (the spec's `rate_limits` object).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRateLimits {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Input tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_per_minute: Option<u64>,
    /// Output tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_minute: Option<u64>,
}

impl ModelRateLimits {
    /// Largest accepted per-minute limit (the budget ledger's bound).
    pub const MAX_PER_MINUTE: u64 = BudgetLimits::MAX_PER_MINUTE;

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_none())
    }

    /// The four fields by their spec names.
    pub fn fields(&self) -> [(&'static str, Option<u64>); 4] {
        [
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
            ("input_tokens_per_minute", self.input_tokens_per_minute),
            ("output_tokens_per_minute", self.output_tokens_per_minute),
        ]
    }

    /// The same limits with `requests_per_minute`.
    pub fn with_requests_per_minute(mut self, rpm: u64) -> Self {
        self.requests_per_minute = Some(rpm);
        self
    }

    /// The same limits with `tokens_per_minute`.
    pub fn with_tokens_per_minute(mut self, tpm: u64) -> Self {
        self.tokens_per_minute = Some(tpm);
        self
    }

    /// The ledger's form.
    pub fn budget_limits(&self) -> BudgetLimits {
        BudgetLimits {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            input_tokens_per_minute: self.input_tokens_per_minute,
            output_tokens_per_minute: self.output_tokens_per_minute,
        }
    }
}

/// One user-facing model alias bound to a concrete provider/model endpoint and its static cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelAlias {
    /// The name generators use.
    pub alias: String,
    /// Canonical provider name.
    pub provider: String,
    /// Canonical model id at that provider.
    pub model_id: String,
    /// Static cap on concurrent requests (clamped to ≥ 1 when used).
    pub max_parallel_requests: u32,
    /// Configured request/token budgets per minute (all optional; none = only what response
    /// headers teach).
    #[serde(default, skip_serializing_if = "ModelRateLimits::is_empty")]
    pub rate_limits: ModelRateLimits,
    /// Default inference parameters of every chat call through this alias (a column's
    /// `inference` overrides them field by field).
    #[serde(default, skip_serializing_if = "InferenceParams::is_empty")]
    pub inference: InferenceParams,
}

impl ModelAlias {
    /// Builds an alias.
    pub fn new(alias: &str, provider: &str, model_id: &str, max_parallel_requests: u32) -> Self {
        Self {
            alias: alias.to_string(),
            provider: provider.to_string(),
            model_id: model_id.to_string(),
            max_parallel_requests,
            rate_limits: ModelRateLimits::default(),
            inference: InferenceParams::default(),
        }
    }

    /// The same alias with default inference parameters.
    pub fn with_inference(mut self, inference: InferenceParams) -> Self {
        self.inference = inference;
        self
    }

    /// The same alias with configured budgets.
    pub fn with_rate_limits(mut self, rate_limits: ModelRateLimits) -> Self {
        self.rate_limits = rate_limits;
        self
    }

    /// `max_parallel_requests` clamped to at least 1.
    pub fn cap(&self) -> u32 {
        self.max_parallel_requests.max(1)
    }
}

/// Alias lookup; built from a workflow's `models` (the first definition of an alias wins —
/// workflow validation rejects duplicates).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelRegistry {
    aliases: BTreeMap<String, ModelAlias>,
}

impl ModelRegistry {
    /// Builds a registry from alias definitions.
    pub fn new(models: impl IntoIterator<Item = ModelAlias>) -> Self {
        let mut aliases = BTreeMap::new();
        for m in models {
            aliases.entry(m.alias.clone()).or_insert(m);
        }
        Self { aliases }
    }

    /// The definition of `alias`.
    pub fn get(&self, alias: &str) -> Option<&ModelAlias> {
        self.aliases.get(alias)
    }

    /// Every alias, sorted by name.
    pub fn aliases(&self) -> impl Iterator<Item = &ModelAlias> {
        self.aliases.values()
    }

    /// Scheduling metadata for a generator that calls `aliases` in `generation_kind`
    /// (`"chat"`, `"embedding"`, ...).
    ///
    /// * no aliases → the default local metadata;
    /// * an unknown alias → fatal `unknown_model_alias` (no fallback);
    /// * one endpoint → `model(provider, model_id, kind, weight = max(1, min cap))`;
    /// * several endpoints → `ambiguous_model_aliases` with a deterministic `custom_model`
    ///   fallback (`namespace`, `alias-set-<hash>`, `v1`, weight = Σ per-endpoint min caps).
    pub fn metadata_for(
        &self,
        aliases: &[String],
        generation_kind: &str,
        namespace: &str,
    ) -> Result<SchedulingMetadata, SchedulingMetadataError> {
        let mut canonical: Vec<&str> = aliases
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .collect();
        canonical.sort_unstable();
        canonical.dedup();
        if canonical.is_empty() {
            return Ok(SchedulingMetadata::default_local());
        }
        // endpoint (provider, model_id) -> min cap over the aliases resolving to it
        let mut endpoints: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        let mut raw_caps: Vec<String> = Vec::new();
        for alias in &canonical {
            let def = self.aliases.get(*alias).ok_or_else(|| {
                SchedulingMetadataError::fatal(
                    SchedulingMetadataErrorCode::UnknownModelAlias,
                    format!("model alias {alias:?} is not registered"),
                )
                .with_diagnostic("alias", *alias)
            })?;
            raw_caps.push(format!("{alias}={}", def.max_parallel_requests));
            let cap = endpoints
                .entry((def.provider.as_str(), def.model_id.as_str()))
                .or_insert(u32::MAX);
            *cap = (*cap).min(def.cap());
        }
        if let [((provider, model_id), cap)] = endpoints.iter().collect::<Vec<_>>()[..] {
            return SchedulingMetadata::model(provider, model_id, generation_kind, (*cap).max(1));
        }
        let weight = endpoints
            .values()
            .fold(0u32, |acc, cap| acc.saturating_add(*cap))
            .max(1);
        let resource = format!("alias-set-{}", identity_hash(&canonical));
        let fallback = SchedulingMetadata::custom_model(namespace, &resource, "v1", weight)?;
        let endpoint_list: Vec<String> = endpoints
            .keys()
            .map(|(p, m)| format!("{p}/{m}/{generation_kind}"))
            .collect();
        Err(SchedulingMetadataError::fatal(
            SchedulingMetadataErrorCode::AmbiguousModelAliases,
            format!(
                "{} aliases resolve to {} distinct endpoints",
                canonical.len(),
                endpoint_list.len()
            ),
        )
        .with_fallback(fallback)
        .with_diagnostic("aliases", canonical.join(","))
        .with_diagnostic("endpoints", endpoint_list.join(","))
        .with_diagnostic("raw_caps", raw_caps.join(","))
        .with_diagnostic("fallback_reason", "multi_endpoint_alias_set"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_contracts::SchedulingKind;

    fn registry() -> ModelRegistry {
        ModelRegistry::new([
            ModelAlias::new("a", "p", "m1", 8),
            ModelAlias::new("b", "p", "m1", 3),
            ModelAlias::new("c", "p", "m2", 0),
        ])
    }

    #[test]
    fn same_endpoint_merges_with_min() {
        let meta = registry()
            .metadata_for(&["b".into(), "a".into(), "a".into()], "chat", "ns")
            .unwrap();
        assert_eq!(meta.identity(), ["model", "p", "m1", "chat"]);
        assert_eq!(meta.weight(), 3);
    }

    #[test]
    fn zero_cap_clamps_to_one() {
        let meta = registry()
            .metadata_for(&["c".into()], "chat", "ns")
            .unwrap();
        assert_eq!(meta.weight(), 1);
    }

    #[test]
    fn multi_endpoint_falls_back_deterministically() {
        let r = registry();
        let e1 = r
            .metadata_for(&["a".into(), "c".into()], "chat", "ns")
            .unwrap_err();
        let e2 = r
            .metadata_for(&["c".into(), "a".into()], "chat", "ns")
            .unwrap_err();
        assert_eq!(e1, e2);
        assert_eq!(e1.code, SchedulingMetadataErrorCode::AmbiguousModelAliases);
        let fb = e1.fallback.unwrap();
        assert_eq!(fb.kind(), SchedulingKind::CustomModel);
        assert_eq!(fb.weight(), 9);
        assert_eq!(
            e1.diagnostics["fallback_reason"],
            "multi_endpoint_alias_set"
        );
    }

    #[test]
    fn rate_limits_default_to_none_and_round_trip() {
        let a = ModelAlias::new("a", "p", "m", 2);
        assert!(a.rate_limits.is_empty());
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("rate_limits"));
        let b = a.with_rate_limits(ModelRateLimits::default().with_requests_per_minute(60));
        let back: ModelAlias = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back.rate_limits.requests_per_minute, Some(60));
    }

    #[test]
    fn unknown_alias_is_fatal() {
        let e = registry()
            .metadata_for(&["zzz".into()], "chat", "ns")
            .unwrap_err();
        assert_eq!(e.code, SchedulingMetadataErrorCode::UnknownModelAlias);
        assert!(e.fallback.is_none());
    }
}
