//! The simulated provider's structured replies: a deterministic JSON value that conforms to a
//! `response_format` schema, derived only from the input's hash.
//!
//! Covered: `type` (object, array, string, integer, number, boolean, null, or a list of them),
//! `enum`, `const`, `properties` (every property is written, required or not), `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `minimum`/`maximum`,
//! `exclusiveMinimum`/`exclusiveMaximum`, `anyOf`/`oneOf` (the first branch), `allOf` (the first
//! branch), local `$ref`s into `$defs`/`definitions`. Other keywords (patterns, formats, `not`)
//! are not honoured: a reply for such a schema may fail validation, which the column then
//! treats like any invalid reply.

use serde_json::{Map, Value};

/// Deepest nesting generated (a recursive schema ends in `null`s past it).
const MAX_DEPTH: usize = 16;
/// Most values in one reply.
const MAX_NODES: usize = 2_000;
/// Longest array generated.
const MAX_ITEMS: u64 = 8;
/// Longest string generated (a larger `minLength` is not met).
const MAX_STRING_CHARS: usize = 4096;

const WORDS: [&str; 16] = [
    "amber", "brook", "cedar", "delta", "ember", "fjord", "grove", "heath", "inlet", "juniper",
    "knoll", "larch", "marsh", "nettle", "oxbow", "pine",
];

/// A value conforming to `schema` (within the covered keywords), a pure function of `seed`.
pub fn conforming_value(schema: &Value, seed: u64) -> Value {
    let mut g = Gen {
        state: seed,
        root: schema,
        nodes_left: MAX_NODES,
    };
    g.value(schema, 0)
}

struct Gen<'s> {
    state: u64,
    root: &'s Value,
    /// Values still allowed (a wide recursive schema would otherwise grow exponentially).
    nodes_left: usize,
}

impl<'s> Gen<'s> {
    /// splitmix64: a new pseudo-random word per draw.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn resolve(&self, schema: &'s Value) -> &'s Value {
        let mut s = schema;
        for _ in 0..MAX_DEPTH {
            let Some(r) = s.get("$ref").and_then(Value::as_str) else {
                break;
            };
            match r.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                Some(target) => s = target,
                None => break,
            }
        }
        s
    }

    fn value(&mut self, schema: &'s Value, depth: usize) -> Value {
        let schema = self.resolve(schema);
        if depth > MAX_DEPTH || self.nodes_left == 0 {
            return Value::Null;
        }
        self.nodes_left -= 1;
        if let Some(c) = schema.get("const") {
            return c.clone();
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !options.is_empty() {
                let i = (self.next() % options.len() as u64) as usize;
                return options[i].clone();
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(first) = schema
                .get(key)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                return self.value(first, depth + 1);
            }
        }
        let kind = match schema.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null"),
            _ if schema.get("properties").is_some() => "object",
            _ if schema.get("items").is_some() => "array",
            _ => "string",
        };
        match kind {
            "object" => self.object(schema, depth),
            "array" => self.array(schema, depth),
            "integer" => self.integer(schema),
            "number" => self.number(schema),
            "boolean" => Value::Bool(self.next() & 1 == 1),
            "null" => Value::Null,
            _ => self.string(schema),
        }
    }

    fn object(&mut self, schema: &'s Value, depth: usize) -> Value {
        let mut out = Map::new();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                let v = self.value(sub, depth + 1);
                out.insert(name.clone(), v);
            }
        }
        Value::Object(out)
    }

    fn array(&mut self, schema: &'s Value, depth: usize) -> Value {
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1);
        let min = min.min(MAX_ITEMS);
        let max = schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(min.max(3))
            .min(MAX_ITEMS)
            .max(min);
        // Bounded whatever the schema asks (a `minItems` past the cap gives a reply the column
        // then refuses, rather than a huge allocation).
        let len = (min + self.next() % (max - min + 1)).min(MAX_ITEMS);
        let items = schema
            .get("items")
            .filter(|i| i.is_object())
            .unwrap_or(&NO_SCHEMA);
        Value::Array((0..len).map(|_| self.value(items, depth + 1)).collect())
    }

    fn integer(&mut self, schema: &Value) -> Value {
        let num = |k: &str| schema.get(k).and_then(Value::as_f64);
        let mut lo = num("minimum").map_or(0, |m| m.ceil() as i64);
        let mut hi = num("maximum").map_or(lo.saturating_add(99), |m| m.floor() as i64);
        if let Some(x) = num("exclusiveMinimum") {
            lo = lo.max(x.floor() as i64 + 1);
        }
        if let Some(x) = num("exclusiveMaximum") {
            hi = hi.min(x.ceil() as i64 - 1);
        }
        if hi < lo {
            return Value::from(lo);
        }
        let span = (hi as i128 - lo as i128 + 1) as u128;
        let v = lo as i128 + (u128::from(self.next()) % span) as i128;
        Value::from(v as i64)
    }

    fn number(&mut self, schema: &Value) -> Value {
        let num = |k: &str| schema.get(k).and_then(Value::as_f64);
        let lo = num("minimum").or(num("exclusiveMinimum")).unwrap_or(0.0);
        let hi = num("maximum")
            .or(num("exclusiveMaximum"))
            .unwrap_or(lo + 100.0);
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        // Kept strictly inside (lo, hi) so exclusive bounds hold; two decimals for readability.
        let v = lo + (hi - lo) * (0.05 + 0.9 * u);
        let v = (v * 100.0).round() / 100.0;
        let v = if v <= lo || v >= hi {
            (lo + hi) / 2.0
        } else {
            v
        };
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }

    fn string(&mut self, schema: &Value) -> Value {
        let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|m| m as usize);
        let mut s = String::new();
        let words = 1 + self.next() % 3;
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[(self.next() % 16) as usize]);
        }
        let have = s.chars().count();
        if have < min {
            s.extend(std::iter::repeat_n(
                'a',
                min.min(MAX_STRING_CHARS) - have.min(min),
            ));
        }
        if let Some(max) = max {
            s = s.chars().take(max.max(min)).collect();
        }
        Value::String(s)
    }
}

/// An absent item schema: anything goes, a string is written.
static NO_SCHEMA: Value = Value::Null;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extreme_bounds_stay_small_and_never_panic() {
        for schema in [
            json!({"type": "array", "minItems": u64::MAX, "maxItems": u64::MAX}),
            json!({"type": "array", "maxItems": u64::MAX}),
            json!({"type": "string", "minLength": u64::MAX}),
            json!({"type": "integer", "minimum": -1e308, "maximum": 1e308}),
            json!({"type": "number", "minimum": -1e308, "maximum": 1e308}),
            json!({"$ref": "#"}),
            json!({"type": "object", "properties": {"a": {"$ref": "#"}}}),
            json!({"type": "object", "properties": {
                "a": {"$ref": "#"}, "b": {"$ref": "#"}, "c": {"$ref": "#"}, "d": {"$ref": "#"}
            }}),
        ] {
            let v = conforming_value(&schema, 3);
            assert!(v.to_string().len() < 100_000, "{schema}");
        }
    }

    #[test]
    fn values_conform_and_are_deterministic() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 3, "maxLength": 12},
                "price": {"type": "number", "minimum": 1, "exclusiveMaximum": 5},
                "stock": {"type": "integer", "minimum": -2, "maximum": 2},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
                "dim": {"$ref": "#/$defs/dim"},
                "ok": {"type": ["boolean", "null"]}
            },
            "required": ["name"],
            "$defs": {"dim": {"type": "object", "properties": {"h": {"type": "integer"}}}}
        });
        let validator = jsonschema::validator_for(&schema).unwrap();
        for seed in 0..200 {
            let v = conforming_value(&schema, seed);
            assert!(validator.is_valid(&v), "{v}");
            assert_eq!(v, conforming_value(&schema, seed));
        }
    }
}
