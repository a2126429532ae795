//! `Validator`: a full-column check that named columns are present and non-null on every row.
//!
//! Rows that fail are dropped (with a reason naming the first bad column); surviving rows get
//! `true` in the validator's own column. Dropping rather than flagging keeps invalid rows out of
//! every downstream column and out of the output.

use super::{BatchContext, ColumnGenerator, GenerationError, GeneratorConfigError};
use crate::workflow::Strategy;
use async_trait::async_trait;
use serde_json::Value;

/// Drops rows where any of `columns` is missing or null.
#[derive(Debug, Clone)]
pub struct Validator {
    columns: Vec<String>,
}

impl Validator {
    /// Checks `columns` (non-empty).
    pub fn new<S: Into<String>>(
        columns: impl IntoIterator<Item = S>,
    ) -> Result<Self, GeneratorConfigError> {
        let columns: Vec<String> = columns.into_iter().map(Into::into).collect();
        if columns.is_empty() {
            return Err(GeneratorConfigError::new(
                "columns",
                "must name at least one column",
            ));
        }
        Ok(Self { columns })
    }
}

#[async_trait]
impl ColumnGenerator for Validator {
    fn runs_inline(&self) -> bool {
        true
    }

    fn strategy(&self) -> Strategy {
        Strategy::FullColumn
    }

    fn required_columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    async fn generate_full_column(
        &self,
        ctx: &mut BatchContext<'_>,
    ) -> Result<(), GenerationError> {
        let column = ctx.column.to_string();
        for row in ctx.rows.iter_mut() {
            if row.drop_reason.is_some() {
                continue;
            }
            let bad = self
                .columns
                .iter()
                .find(|c| matches!(row.record.get(c.as_str()), None | Some(Value::Null)));
            match bad {
                Some(c) => {
                    row.drop_reason = Some(format!("validation: column {c:?} is missing or null"))
                }
                None => {
                    row.record.insert(column.clone(), Value::Bool(true));
                }
            }
        }
        Ok(())
    }
}
