//! `{{ name }}` templates over a row's column values: parsing, referenced columns and rendering.
//!
//! A template is literal text with `{{ column }}` references (whitespace inside the braces is
//! allowed). `{{ column.field.sub }}` reads a nested field of a column's JSON object (a
//! structured or judge column); a numeric segment indexes an array (`{{ items.0 }}`). So a
//! column name never contains `.`. Rendering inserts string values raw and every other JSON
//! value as compact JSON. There is no escaping and no expression language: a `{{` always opens
//! a reference.

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
    /// A `{{ column.path }}` reference names a field the column's value does not have.
    MissingField {
        /// The referenced column.
        column: String,
        /// The dotted path inside it (`name`, `product.name`).
        path: String,
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
            Self::MissingField { column, path } => {
                write!(
                    f,
                    "template: column {column:?} has no field {path:?} in this row"
                )
            }
        }
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A column, and the nested field path inside its value (empty: the whole value).
    Column(String, Vec<String>),
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
            let mut segments = name.split('.').map(str::to_string);
            let column = segments.next().unwrap_or_default();
            let path: Vec<String> = segments.collect();
            if column.is_empty() || path.iter().any(String::is_empty) {
                return Err(TemplateError::InvalidReference {
                    reference: name.to_string(),
                });
            }
            parts.push(Part::Column(column, path));
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
            if let Part::Column(name, _) = part {
                if !out.iter().any(|c| c == name) {
                    out.push(name.clone());
                }
            }
        }
        out
    }

    /// Every `{{ column.path }}` reference that reads a nested field, in order: the column and
    /// the path segments (never empty).
    pub fn field_references(&self) -> Vec<(&str, &[String])> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Column(name, path) if !path.is_empty() => {
                    Some((name.as_str(), path.as_slice()))
                }
                _ => None,
            })
            .collect()
    }

    /// Renders against `record`; a referenced column missing from the record is a typed error.
    pub fn render(&self, record: &BTreeMap<String, Value>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Column(name, path) => {
                    let mut value =
                        record
                            .get(name)
                            .ok_or_else(|| TemplateError::MissingColumn {
                                column: name.clone(),
                            })?;
                    for segment in path {
                        value =
                            field(value, segment).ok_or_else(|| TemplateError::MissingField {
                                column: name.clone(),
                                path: path.join("."),
                            })?;
                    }
                    push_value(&mut out, value);
                }
            }
        }
        Ok(out)
    }
}

/// One step into a value: an object's field, or an array's element by decimal index.
fn field<'v>(value: &'v Value, segment: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
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
    fn dotted_references_read_nested_fields() {
        let r = record(&[(
            "product",
            json!({"name": "lamp", "tags": ["a", "b"], "dim": {"h": 2}}),
        )]);
        let t =
            Template::parse("{{ product.name }} {{product.tags.1}} {{ product.dim.h }}").unwrap();
        assert_eq!(t.referenced_columns(), vec!["product".to_string()]);
        assert_eq!(t.field_references().len(), 3);
        assert_eq!(
            t.field_references()[1].1,
            ["tags".to_string(), "1".to_string()]
        );
        assert_eq!(t.render(&r).unwrap(), "lamp b 2");
        assert_eq!(
            render("{{ product.price }}", &r).unwrap_err(),
            TemplateError::MissingField {
                column: "product".into(),
                path: "price".into()
            }
        );
        assert!(render("{{ product.name.x }}", &r).is_err());
        assert!(matches!(
            Template::parse("{{ product..name }}").unwrap_err(),
            TemplateError::InvalidReference { .. }
        ));
        assert!(matches!(
            Template::parse("{{ .name }}").unwrap_err(),
            TemplateError::InvalidReference { .. }
        ));
    }

    #[test]
    fn literal_braces_and_unicode_survive() {
        let r = record(&[("a", json!("é"))]);
        assert_eq!(render("ü { } {{a}}}", &r).unwrap(), "ü { } é}");
    }
}
