//! Scheduler inputs: task groups, scheduler resource keys and per-task resource requests.

use crate::error::ContractError;
use crate::metadata::{SchedulingKind, SchedulingMetadata};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Scheduler-internal fairness group: ordered by `(kind, identity)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskGroupKey {
    /// Resource kind the group came from.
    pub kind: SchedulingKind,
    /// Identity parts (resource identity plus scheduler flow identity such as the output column).
    pub identity: Arc<[String]>,
}

impl TaskGroupKey {
    /// Builds a key.
    pub fn new(kind: SchedulingKind, identity: Vec<String>) -> Self {
        Self {
            kind,
            identity: identity.into(),
        }
    }

    /// The group key of a metadata declaration (no flow identity appended).
    pub fn from_metadata(metadata: &SchedulingMetadata) -> Self {
        Self::new(metadata.kind(), metadata.identity().to_vec())
    }

    /// `kind:identity/joined/by/slash`, the bounded human label used in capacity plans.
    pub fn label(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.identity.join("/"))
    }
}

impl fmt::Display for TaskGroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// A task group with its static positive weight and optional per-group admitted cap.
///
/// Weights are integers so virtual-time fair queueing is exact (the reference uses floats).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawTaskGroupSpec")]
pub struct TaskGroupSpec {
    /// The group key.
    pub key: TaskGroupKey,
    /// Positive static weight.
    pub weight: u32,
    /// Cap on this group's concurrently admitted tasks, enforced only under peer pressure.
    pub admitted_limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaskGroupSpec {
    key: TaskGroupKey,
    weight: u32,
    admitted_limit: Option<u32>,
}

impl TryFrom<RawTaskGroupSpec> for TaskGroupSpec {
    type Error = ContractError;
    fn try_from(raw: RawTaskGroupSpec) -> Result<Self, ContractError> {
        Self::new(raw.key, raw.weight, raw.admitted_limit)
    }
}

impl TaskGroupSpec {
    /// Validates: weight ≥ 1, admitted_limit ≥ 1 when present.
    pub fn new(
        key: TaskGroupKey,
        weight: u32,
        admitted_limit: Option<u32>,
    ) -> Result<Self, ContractError> {
        if weight == 0 {
            return Err(ContractError::new("weight", "must be a positive integer"));
        }
        if admitted_limit == Some(0) {
            return Err(ContractError::new(
                "admitted_limit",
                "must be a positive integer when set",
            ));
        }
        Ok(Self {
            key,
            weight,
            admitted_limit,
        })
    }
}

/// A scheduler-owned task-stage resource (`submission`, `local`, ...). Not a provider request key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchedulerResourceKey(Arc<str>);

impl SchedulerResourceKey {
    /// Name of the resource every task holds one unit of: bounds scheduler-spawned work.
    pub const SUBMISSION: &'static str = "submission";
    /// Name of the local-work resource.
    pub const LOCAL: &'static str = "local";

    /// Validates a non-empty name.
    pub fn new(name: &str) -> Result<Self, ContractError> {
        if name.trim().is_empty() {
            return Err(ContractError::new(
                "scheduler_resource_key",
                "must be a non-empty string",
            ));
        }
        Ok(Self(Arc::from(name)))
    }

    /// The `submission` resource.
    pub fn submission() -> Self {
        Self(Arc::from(Self::SUBMISSION))
    }

    /// The `local` resource.
    pub fn local() -> Self {
        Self(Arc::from(Self::LOCAL))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchedulerResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SchedulerResourceKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SchedulerResourceKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Task-stage resources one task holds while it runs: positive amounts per key, sorted by key.
///
/// Stored as a small sorted vector (tasks usually name one or two resources); written on the
/// wire as a JSON object `{key: amount}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchedulerResourceRequest {
    amounts: Vec<(SchedulerResourceKey, u32)>,
}

impl SchedulerResourceRequest {
    /// Validates: at least one resource, every amount ≥ 1, no key repeated.
    ///
    /// An empty request would hold nothing and so bypass every task-stage limit.
    pub fn new(
        amounts: impl IntoIterator<Item = (SchedulerResourceKey, u32)>,
    ) -> Result<Self, ContractError> {
        let mut v: Vec<(SchedulerResourceKey, u32)> = amounts.into_iter().collect();
        if v.is_empty() {
            return Err(ContractError::new(
                "amounts",
                "must name at least one scheduler resource",
            ));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        for w in v.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(ContractError::new(
                    format!("amounts.{}", w[0].0),
                    "resource named twice",
                ));
            }
        }
        if let Some((k, _)) = v.iter().find(|(_, a)| *a == 0) {
            return Err(ContractError::new(
                format!("amounts.{k}"),
                "amount must be a positive integer",
            ));
        }
        Ok(Self { amounts: v })
    }

    /// One unit of `submission`: the request of an ordinary task.
    pub fn submission() -> Self {
        Self {
            amounts: vec![(SchedulerResourceKey::submission(), 1)],
        }
    }

    /// `(key, amount)` pairs sorted by key.
    pub fn amounts(&self) -> &[(SchedulerResourceKey, u32)] {
        &self.amounts
    }

    /// The amount of `key`, zero if not requested.
    pub fn amount(&self, key: &SchedulerResourceKey) -> u32 {
        self.amounts
            .binary_search_by(|(k, _)| k.cmp(key))
            .map(|i| self.amounts[i].1)
            .unwrap_or(0)
    }

    /// Always false for a validated request (kept for symmetry with `amounts()`).
    pub fn is_empty(&self) -> bool {
        self.amounts.is_empty()
    }
}

impl Default for SchedulerResourceRequest {
    fn default() -> Self {
        Self::submission()
    }
}

impl Serialize for SchedulerResourceRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.amounts.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for SchedulerResourceRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let m = BTreeMap::<SchedulerResourceKey, u32>::deserialize(deserializer)?;
        Self::new(m).map_err(serde::de::Error::custom)
    }
}
