//! `CapacityPlanError`: the typed error plan construction returns for inconsistent inputs.

use std::fmt;

/// A capacity input is inconsistent; `field` names it (e.g. `"buffer_size"`, `"models[1].max_parallel_requests"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityPlanError {
    /// The offending input field.
    pub field: String,
    /// What is wrong with it, in plain words.
    pub message: String,
}

impl CapacityPlanError {
    /// Builds an error naming `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for CapacityPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for CapacityPlanError {}
