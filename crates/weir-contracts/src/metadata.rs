//! `SchedulingMetadata`: the generator-facing static resource declaration, and its typed error.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What kind of resource a generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulingKind {
    /// Local code, no model calls.
    Local,
    /// One concrete provider/model/generation endpoint.
    Model,
    /// Plugin or custom code with its own resource identity (zero, one or many model calls).
    CustomModel,
}

impl SchedulingKind {
    /// The plan's snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Model => "model",
            Self::CustomModel => "custom_model",
        }
    }

    /// How many identity parts this kind requires (including the leading kind tag).
    pub const fn identity_len(self) -> usize {
        match self {
            Self::Local => 2,
            Self::Model | Self::CustomModel => 4,
        }
    }
}

impl fmt::Display for SchedulingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why metadata could not be used as declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulingMetadataErrorCode {
    /// The identity tuple has the wrong length or tag for its kind.
    InvalidIdentity,
    /// An identity part is empty.
    EmptyIdentityPart,
    /// Weight is zero.
    NonPositiveWeight,
    /// Model aliases resolve to more than one concrete endpoint.
    AmbiguousModelAliases,
    /// A model alias is not known to the registry.
    UnknownModelAlias,
}

impl SchedulingMetadataErrorCode {
    /// The snake_case code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidIdentity => "invalid_identity",
            Self::EmptyIdentityPart => "empty_identity_part",
            Self::NonPositiveWeight => "non_positive_weight",
            Self::AmbiguousModelAliases => "ambiguous_model_aliases",
            Self::UnknownModelAlias => "unknown_model_alias",
        }
    }
}

/// Typed failure of metadata resolution; with a `fallback` the resolver may continue (with diagnostics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulingMetadataError {
    /// Machine-readable code.
    pub code: SchedulingMetadataErrorCode,
    /// Human-readable message (no prompts, row data or secrets).
    pub message: String,
    /// Safe metadata to continue with, if partial resolution is safe.
    pub fallback: Option<SchedulingMetadata>,
    /// Sanitized diagnostic fields.
    pub diagnostics: BTreeMap<String, String>,
}

impl SchedulingMetadataError {
    /// A fatal error (no fallback).
    pub fn fatal(code: SchedulingMetadataErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            fallback: None,
            diagnostics: BTreeMap::new(),
        }
    }

    /// Attaches a fallback, making the error recoverable.
    pub fn with_fallback(mut self, fallback: SchedulingMetadata) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Adds one diagnostic field.
    pub fn with_diagnostic(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.diagnostics.insert(key.into(), value.into());
        self
    }
}

impl fmt::Display for SchedulingMetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scheduling metadata {}: {}",
            self.code.as_str(),
            self.message
        )
    }
}

impl std::error::Error for SchedulingMetadataError {}

/// A generator's static resource declaration: kind, deterministic identity tuple, positive weight.
///
/// Identity shapes (the first part always repeats the kind):
/// `local` → `("local", resource_name)`; `model` → `("model", provider, canonical_model_id,
/// generation_kind)`; `custom_model` → `("custom_model", namespace, resource_name, version)`.
/// Built only through [`SchedulingMetadata::new`] (or the shape helpers), so every value is valid;
/// deserialization validates too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawSchedulingMetadata")]
pub struct SchedulingMetadata {
    kind: SchedulingKind,
    identity: Vec<String>,
    weight: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedulingMetadata {
    kind: SchedulingKind,
    identity: Vec<String>,
    weight: u32,
}

impl TryFrom<RawSchedulingMetadata> for SchedulingMetadata {
    type Error = SchedulingMetadataError;

    fn try_from(raw: RawSchedulingMetadata) -> Result<Self, Self::Error> {
        Self::new(raw.kind, raw.identity, raw.weight)
    }
}

impl SchedulingMetadata {
    /// Validates and builds metadata; invalid identity or zero weight is a fatal error.
    pub fn new(
        kind: SchedulingKind,
        identity: Vec<String>,
        weight: u32,
    ) -> Result<Self, SchedulingMetadataError> {
        if weight == 0 {
            return Err(SchedulingMetadataError::fatal(
                SchedulingMetadataErrorCode::NonPositiveWeight,
                "weight must be a positive integer",
            ));
        }
        if identity.len() != kind.identity_len() || identity[0] != kind.as_str() {
            return Err(SchedulingMetadataError::fatal(
                SchedulingMetadataErrorCode::InvalidIdentity,
                format!(
                    "identity for kind {kind} must have {} parts starting with {:?}, got {identity:?}",
                    kind.identity_len(),
                    kind.as_str()
                ),
            ));
        }
        if let Some(pos) = identity.iter().position(|p| p.trim().is_empty()) {
            return Err(SchedulingMetadataError::fatal(
                SchedulingMetadataErrorCode::EmptyIdentityPart,
                format!("identity part {pos} is empty"),
            ));
        }
        Ok(Self {
            kind,
            identity,
            weight,
        })
    }

    /// `local/("local", resource_name)/weight`.
    pub fn local(resource_name: &str, weight: u32) -> Result<Self, SchedulingMetadataError> {
        Self::new(
            SchedulingKind::Local,
            vec!["local".into(), resource_name.into()],
            weight,
        )
    }

    /// The documented default for generators that declare nothing: `local/("local","default")/1`.
    pub fn default_local() -> Self {
        Self {
            kind: SchedulingKind::Local,
            identity: vec!["local".into(), "default".into()],
            weight: 1,
        }
    }

    /// `model/("model", provider, model_id, generation_kind)/weight`.
    pub fn model(
        provider: &str,
        model_id: &str,
        generation_kind: &str,
        weight: u32,
    ) -> Result<Self, SchedulingMetadataError> {
        Self::new(
            SchedulingKind::Model,
            vec![
                "model".into(),
                provider.into(),
                model_id.into(),
                generation_kind.into(),
            ],
            weight,
        )
    }

    /// `custom_model/("custom_model", namespace, resource_name, version)/weight`.
    pub fn custom_model(
        namespace: &str,
        resource_name: &str,
        version: &str,
        weight: u32,
    ) -> Result<Self, SchedulingMetadataError> {
        Self::new(
            SchedulingKind::CustomModel,
            vec![
                "custom_model".into(),
                namespace.into(),
                resource_name.into(),
                version.into(),
            ],
            weight,
        )
    }

    /// The kind.
    pub fn kind(&self) -> SchedulingKind {
        self.kind
    }

    /// The identity tuple.
    pub fn identity(&self) -> &[String] {
        &self.identity
    }

    /// The positive weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

impl Default for SchedulingMetadata {
    fn default() -> Self {
        Self::default_local()
    }
}
