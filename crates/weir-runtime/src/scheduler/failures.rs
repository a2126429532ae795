//! `FailureLog`: a run's failures grouped by column × model × cause, first message kept.

use super::report::RunFailure;
use crate::generators::GenerationError;
use std::collections::HashMap;

/// Longest first message kept (characters); providers' messages are short and sanitized.
const MAX_MESSAGE_CHARS: usize = 300;

/// Groups failures in first-seen order; each group keeps the first failure's details.
#[derive(Debug, Default)]
pub struct FailureLog {
    groups: Vec<RunFailure>,
    index: HashMap<(String, Option<String>, String), usize>,
}

impl FailureLog {
    /// Records one failed execution of `column` with cause label `cause` that dropped
    /// `rows_dropped` rows. `fallback_model` names the model when the error itself does not
    /// (e.g. a judge's unusable answer).
    pub fn record(
        &mut self,
        column: &str,
        fallback_model: Option<&str>,
        cause: &str,
        error: &GenerationError,
        rows_dropped: u64,
    ) {
        let source = model_source(error);
        let model = source
            .map(|s| s.alias.clone())
            .or_else(|| fallback_model.map(str::to_owned));
        let key = (column.to_owned(), model, cause.to_owned());
        if let Some(&i) = self.index.get(&key) {
            self.groups[i].count += 1;
            self.groups[i].rows_dropped += rows_dropped;
            return;
        }
        let message = match source {
            Some(s) => s.message.clone(),
            None => error.to_string(),
        };
        self.index.insert(key.clone(), self.groups.len());
        self.groups.push(RunFailure {
            column: key.0,
            model: key.1,
            cause: key.2,
            count: 1,
            rows_dropped,
            first_message: truncate(&message),
            http_status: source.and_then(|s| s.http_status()),
            url_path: source.and_then(|s| s.url_path().map(str::to_owned)),
            provider_error_type: source.and_then(|s| s.provider_error_type().map(str::to_owned)),
        });
    }

    /// Records a failure that is not an error value (a panic, a validator's drop).
    pub fn record_message(
        &mut self,
        column: &str,
        model: Option<&str>,
        cause: &str,
        message: &str,
        rows_dropped: u64,
    ) {
        let key = (
            column.to_owned(),
            model.map(str::to_owned),
            cause.to_owned(),
        );
        if let Some(&i) = self.index.get(&key) {
            self.groups[i].count += 1;
            self.groups[i].rows_dropped += rows_dropped;
            return;
        }
        self.index.insert(key.clone(), self.groups.len());
        self.groups.push(RunFailure {
            column: key.0,
            model: key.1,
            cause: key.2,
            count: 1,
            rows_dropped,
            first_message: truncate(message),
            ..RunFailure::default()
        });
    }

    /// The groups, in first-seen order.
    pub fn into_groups(self) -> Vec<RunFailure> {
        self.groups
    }

    /// The groups so far.
    pub fn groups(&self) -> &[RunFailure] {
        &self.groups
    }
}

/// The model-call error inside a generation error, when there is one.
pub fn model_source(e: &GenerationError) -> Option<&crate::model_facade::ModelCallError> {
    match e {
        GenerationError::Retryable { source, .. }
        | GenerationError::Admission { source }
        | GenerationError::Cancelled { source }
        | GenerationError::Provider { source } => Some(source),
        _ => None,
    }
}

fn truncate(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message.to_owned();
    }
    let mut out: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_facade::{ModelCallError, ModelCallErrorKind, ProviderDetail};

    #[test]
    fn groups_by_column_model_cause_and_keeps_the_first_message() {
        let mut log = FailureLog::default();
        let e = |msg: &str| -> GenerationError {
            ModelCallError::new(
                "writer",
                ModelCallErrorKind::ProviderFailure {
                    status: Some(401),
                    retryable: false,
                },
                msg,
            )
            .with_provider_detail(ProviderDetail {
                url_path: Some("/v1/chat/completions".into()),
                provider_error_type: None,
            })
            .into()
        };
        log.record(
            "draft",
            None,
            "non_retryable:provider_error",
            &e("first"),
            1,
        );
        log.record(
            "draft",
            None,
            "non_retryable:provider_error",
            &e("second"),
            1,
        );
        log.record("edit", None, "non_retryable:provider_error", &e("third"), 0);
        log.record_message("n", None, "worker_panic", &"x".repeat(400), 1);
        let g = log.into_groups();
        assert_eq!(g.len(), 3);
        assert_eq!((g[0].count, g[0].rows_dropped), (2, 2));
        assert_eq!(g[0].first_message, "first");
        assert_eq!(g[0].model.as_deref(), Some("writer"));
        assert_eq!(g[0].http_status, Some(401));
        assert_eq!(g[0].url_path.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(g[1].column, "edit");
        assert_eq!(g[2].first_message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
