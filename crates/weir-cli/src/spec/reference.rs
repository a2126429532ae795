//! The spec reference page (`docs/spec.md`, `weir schema --markdown`), rendered from the same
//! JSON Schema `weir schema` prints, so the page cannot drift from the types: a test compares
//! the checked-in page with a fresh rendering.

use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The reference page as Markdown: the workflow file's fields, then one section per type.
pub fn reference_markdown(schema: &Value) -> String {
    let mut out = String::new();
    out.push_str(
        "# Workflow spec reference\n\n\
         Generated from weir's spec types by `weir schema --markdown` (the same source as \
         `weir schema`, the JSON Schema); do not edit by hand. A test fails when this page \
         and the types disagree.\n\n\
         A workflow file is JSON or YAML (`.yaml`/`.yml`). Unknown fields are errors. Bounds and \
         cross-field rules beyond a field's type are checked by `weir validate` (and `weir run`), \
         which names every bad field at once.\n\n",
    );
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let title = schema
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("WorkflowSpec");
    section(&mut out, title, schema);
    for (name, def) in defs {
        section(&mut out, name, def);
    }
    out
}

/// One type: its description, then its fields (objects) or its values (enums).
fn section(out: &mut String, name: &str, def: &Value) {
    let _ = writeln!(out, "## `{name}`\n");
    if let Some(d) = def.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", one_line(d));
    }
    if let Some(props) = def.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = def
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("| field | type | required | meaning |\n|---|---|---|---|\n");
        for (field, p) in props {
            let meaning = p
                .get("description")
                .and_then(Value::as_str)
                .map(one_line)
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{field}` | {} | {} | {}{} |",
                type_of(p),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                cell(&meaning),
                bounds(p),
            );
        }
        out.push('\n');
    }
    let values = variants(def);
    if !values.is_empty() {
        out.push_str("| value | meaning |\n|---|---|\n");
        for (value, meaning) in values {
            let _ = writeln!(out, "| `{value}` | {} |", cell(&meaning));
        }
        out.push('\n');
    }
}

/// An enum's values with their descriptions (`enum`, or `oneOf` of constants).
fn variants(def: &Value) -> Vec<(String, String)> {
    if let Some(values) = def.get("enum").and_then(Value::as_array) {
        return values.iter().map(|v| (plain(v), String::new())).collect();
    }
    def.get("oneOf")
        .and_then(Value::as_array)
        .map(|alts| {
            alts.iter()
                .filter_map(|a| {
                    let value = a.get("const").map(plain).or_else(|| {
                        a.get("enum")
                            .and_then(Value::as_array)
                            .and_then(|e| e.first())
                            .map(plain)
                    })?;
                    let meaning = a
                        .get("description")
                        .and_then(Value::as_str)
                        .map(one_line)
                        .unwrap_or_default();
                    Some((value, meaning))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A field's type in words: a link to its section, `list of …`, `… or null`, a JSON type.
fn type_of(p: &Value) -> String {
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = p.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = alts
                .iter()
                .map(|a| {
                    if a.get("type").and_then(Value::as_str) == Some("null") {
                        "null".to_owned()
                    } else {
                        type_of(a)
                    }
                })
                .collect();
            return parts.join(" or ");
        }
    }
    match p.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let item = p.get("items").map(type_of).unwrap_or_else(|| "any".into());
            format!("list of {item}")
        }
        Some(Value::String(t)) if t == "object" => match p.get("additionalProperties") {
            Some(v @ Value::Object(_)) => format!("map of {}", type_of(v)),
            _ => "object".into(),
        },
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .map(|t| match t.as_str() {
                Some("array") => {
                    let item = p.get("items").map(type_of).unwrap_or_else(|| "any".into());
                    format!("list of {item}")
                }
                _ => plain(t),
            })
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    }
}

/// The schema's own bounds and default, appended to the meaning.
fn bounds(p: &Value) -> String {
    let mut parts = Vec::new();
    for (key, label) in [
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ] {
        if let Some(v) = p.get(key) {
            parts.push(format!("{label} {}", plain(v)));
        }
    }
    if let Some(v) = p.get("default") {
        parts.push(format!("default `{}`", plain(v)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A description on one line (doc comments wrap).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text safe inside a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}
