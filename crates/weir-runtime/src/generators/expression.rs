//! `Expression`: a column computed by rendering a `{{ name }}` template over other columns.

use super::{CellContext, ColumnGenerator, GenerationError, GeneratorConfigError};
use crate::template::Template;
use crate::workflow::Strategy;
use async_trait::async_trait;
use serde_json::Value;

/// Renders a template per row; the value is the rendered string.
#[derive(Debug, Clone)]
pub struct Expression {
    template: Template,
}

impl Expression {
    /// Parses the template (typed error for unclosed braces).
    pub fn new(template: &str) -> Result<Self, GeneratorConfigError> {
        Ok(Self {
            template: Template::parse(template)?,
        })
    }
}

#[async_trait]
impl ColumnGenerator for Expression {
    fn runs_inline(&self) -> bool {
        true
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        self.template.referenced_columns()
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        Ok(Value::String(self.template.render(ctx.record)?))
    }
}
