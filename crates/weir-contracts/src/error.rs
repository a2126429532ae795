//! `ContractError`: the typed error every validating constructor in this crate returns.

use std::fmt;

/// A value failed validation; `field` names the offending field (a JSON-path-like name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    /// The field that failed validation, e.g. `"weight"` or `"amounts.submission"`.
    pub field: String,
    /// What is wrong with it, in plain words.
    pub message: String,
}

impl ContractError {
    /// Builds an error naming `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ContractError {}
