//! Request-side identity: provider/model keys, request domains, request resources and groups.

use crate::correlation::RuntimeCorrelation;
use crate::error::ContractError;
use crate::ids::{RequestAttemptId, TaskExecutionId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The aggregate request-capacity key: canonical provider name + canonical model endpoint id.
///
/// Names are `Arc<str>` so keys clone cheaply on the admission hot path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProviderModelKey {
    /// Canonical provider name (never an alias).
    pub provider_name: Arc<str>,
    /// Canonical model endpoint id (never a user alias).
    pub model_id: Arc<str>,
}

impl ProviderModelKey {
    /// Validates non-empty names.
    pub fn new(provider_name: &str, model_id: &str) -> Result<Self, ContractError> {
        if provider_name.trim().is_empty() {
            return Err(ContractError::new("provider_name", "must be non-empty"));
        }
        if model_id.trim().is_empty() {
            return Err(ContractError::new("model_id", "must be non-empty"));
        }
        Ok(Self {
            provider_name: Arc::from(provider_name),
            model_id: Arc::from(model_id),
        })
    }

    /// The request resource of this endpoint in `domain`.
    pub fn with_domain(&self, domain: RequestDomain) -> RequestResourceKey {
        RequestResourceKey {
            provider_name: self.provider_name.clone(),
            model_id: self.model_id.clone(),
            domain,
        }
    }
}

impl fmt::Display for ProviderModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider_name, self.model_id)
    }
}

/// The durable request-domain vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestDomain {
    /// Chat / text completion calls.
    Chat,
    /// Embedding calls.
    Embedding,
    /// Image generation calls.
    Image,
    /// Health-check calls.
    Healthcheck,
}

impl RequestDomain {
    /// Every domain, in plan order.
    pub const ALL: [RequestDomain; 4] =
        [Self::Chat, Self::Embedding, Self::Image, Self::Healthcheck];

    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embedding => "embedding",
            Self::Image => "image",
            Self::Healthcheck => "healthcheck",
        }
    }
}

impl fmt::Display for RequestDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A concrete provider/model/domain request resource: the key of one adaptive (AIMD) limit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestResourceKey {
    /// Canonical provider name.
    pub provider_name: Arc<str>,
    /// Canonical model endpoint id.
    pub model_id: Arc<str>,
    /// Request domain.
    pub domain: RequestDomain,
}

impl RequestResourceKey {
    /// Validates non-empty names.
    pub fn new(
        provider_name: &str,
        model_id: &str,
        domain: RequestDomain,
    ) -> Result<Self, ContractError> {
        Ok(ProviderModelKey::new(provider_name, model_id)?.with_domain(domain))
    }

    /// The aggregate key (drops the domain).
    pub fn provider_model(&self) -> ProviderModelKey {
        ProviderModelKey {
            provider_name: self.provider_name.clone(),
            model_id: self.model_id.clone(),
        }
    }
}

impl fmt::Display for RequestResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.provider_name, self.model_id, self.domain
        )
    }
}

/// Request fairness group: in V1 the key is the request resource; weight is positive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestGroupSpec {
    /// Group key (V1: the request resource).
    pub key: RequestResourceKey,
    /// Positive static weight.
    pub weight: u32,
}

impl RequestGroupSpec {
    /// Validates weight ≥ 1.
    pub fn new(key: RequestResourceKey, weight: u32) -> Result<Self, ContractError> {
        if weight == 0 {
            return Err(ContractError::new("weight", "must be a positive integer"));
        }
        Ok(Self { key, weight })
    }

    /// The V1 group of a resource: key = resource, weight 1.
    pub fn for_resource(key: RequestResourceKey) -> Self {
        Self { key, weight: 1 }
    }
}

/// Opaque, telemetry-only context the executor attaches to a request item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEventContext {
    /// Correlation captured when the attempt was built (shared, cheap to clone).
    pub captured_correlation: Option<Arc<RuntimeCorrelation>>,
    /// The task execution that made the call, if any.
    pub task_execution_id: Option<TaskExecutionId>,
    /// The concrete attempt.
    pub request_attempt_id: Option<RequestAttemptId>,
}
