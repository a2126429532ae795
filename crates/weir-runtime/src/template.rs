//! `{{ name }}` templates over a row's column values: parsing, referenced columns and rendering.
//!
//! A template is literal text with `{{ column }}` references (whitespace inside the braces is
//! allowed). Rendering inserts string values raw and every other JSON value as compact JSON.
//! There is no escaping and no expression language: a `{{` always opens a reference.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{{` has no matching `}}`; `offset` is the byte offset of the `{{`.
    UnclosedBraces {
        /// Byte offset of the opening braces.
        offset: usize,
    },
    /// `{{ }}` with no column name inside; `offset` is the byte offset of the `{{`.
    EmptyReference {
        /// Byte offset of the opening braces.
        offset: usize,
    },
    /// A reference is not a plain column name (it contains braces or whitespace inside the name).
    InvalidReference {
        /// The text between the braces, trimmed.
        reference: String,
    },
    /// Rendering needed a column the record does not hold.
    MissingColumn {
        /// The referenced column.
        column: String,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnclosedBraces { offset } => {
                write!(f, "template: '{{{{' at byte {offset} has no closing '}}}}'")
            }
            Self::EmptyReference { offset } => {
                write!(f, "template: empty reference at byte {offset}")
            }
            Self::InvalidReference { reference } => {
                write!(f, "template: {reference:?} is not a column name")
            }
            Self::MissingColumn { column } => {
                write!(f, "template: column {column:?} has no value in this row")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Column(String),
}

/// A parsed template: alternating literal text and column references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source`; unclosed or empty references are typed errors.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut consumed = 0usize;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let offset = consumed + open;
            let after_open = &rest[open + 2..];
            let close = after_open
                .find("}}")
                .ok_or(TemplateError::UnclosedBraces { offset })?;
            let name = after_open[..close].trim();
            if name.is_empty() {
                return Err(TemplateError::EmptyReference { offset });
            }
            if name.contains(|c: char| c.is_whitespace() || c == '{' || c == '}') {
                return Err(TemplateError::InvalidReference {
                    reference: name.to_string(),
                });
            }
            parts.push(Part::Column(name.to_string()));
            let advance = open + 2 + close + 2;
            consumed += advance;
            rest = &rest[advance..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    /// The original template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Referenced column names, de-duplicated, in order of first appearance.
    pub fn referenced_columns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for part in &self.parts {
            if let Part::Column(name) = part {
                if !out.iter().any(|c| c == name) {
                    out.push(name.clone());
                }
            }
        }
        out
    }

    /// Renders against `record`; a referenced column missing from the record is a typed error.
    pub fn render(&self, record: &BTreeMap<String, Value>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Column(name) => {
                    let value = record
                        .get(name)
                        .ok_or_else(|| TemplateError::MissingColumn {
                            column: name.clone(),
                        })?;
                    push_value(&mut out, value);
                }
            }
        }
        Ok(out)
    }
}

/// Strings go in raw; every other JSON value as compact JSON text.
fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

/// The columns `template` references (de-duplicated, first-appearance order).
pub fn referenced_columns(template: &str) -> Result<Vec<String>, TemplateError> {
    Ok(Template::parse(template)?.referenced_columns())
}

/// Parses and renders `template` against `record` in one step.
pub fn render(template: &str, record: &BTreeMap<String, Value>) -> Result<String, TemplateError> {
    Template::parse(template)?.render(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn substitutes_with_and_without_whitespace() {
        let r = record(&[("a", json!("x")), ("b", json!(3))]);
        assert_eq!(render("{{a}}-{{ b }}-{{   a\t}}", &r).unwrap(), "x-3-x");
    }

    #[test]
    fn non_strings_are_compact_json() {
        let r = record(&[("o", json!({"k": [1, 2]})), ("n", Value::Null)]);
        assert_eq!(
            render("{{ o }} {{ n }}", &r).unwrap(),
            r#"{"k":[1,2]} null"#
        );
    }

    #[test]
    fn refs_are_deduplicated_in_order() {
        assert_eq!(
            referenced_columns("{{ b }} {{a}} {{ b }}").unwrap(),
            vec!["b".to_string(), "a".to_string()]
        );
        assert!(referenced_columns("plain text").unwrap().is_empty());
    }

    #[test]
    fn typed_errors() {
        assert_eq!(
            Template::parse("ab {{ x").unwrap_err(),
            TemplateError::UnclosedBraces { offset: 3 }
        );
        assert_eq!(
            Template::parse("{{  }}").unwrap_err(),
            TemplateError::EmptyReference { offset: 0 }
        );
        assert!(matches!(
            Template::parse("{{ a b }}").unwrap_err(),
            TemplateError::InvalidReference { .. }
        ));
        assert_eq!(
            render("{{ missing }}", &BTreeMap::new()).unwrap_err(),
            TemplateError::MissingColumn {
                column: "missing".into()
            }
        );
    }

    #[test]
    fn literal_braces_and_unicode_survive() {
        let r = record(&[("a", json!("é"))]);
        assert_eq!(render("ü { } {{a}}}", &r).unwrap(), "ü { } é}");
    }
}
