//! The JSON wire form's helpers: structured-key maps as arrays of pairs, non-finite floats as strings.
//!
//! weir's wire form is JSON with stable key order (struct fields in declaration order, maps as
//! `BTreeMap`s). JSON objects only have string keys, so a map whose key is a structured value
//! (`TaskGroupKey`, `RequestResourceKey`, a tuple) is written as an array of `[key, value]` pairs
//! in key order ([`pairs`]). JSON has no NaN or infinity, so a float that may be non-finite is
//! written as the string `"nan"`, `"inf"` or `"-inf"` ([`finite_f64`], [`opt_finite_f64`]).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `#[serde(with = "weir_contracts::json::pairs")]` for a `BTreeMap<K, V>` with structured keys.
pub mod pairs {
    use super::*;
    use std::collections::BTreeMap;

    /// Writes the map as `[[key, value], ...]` in key order.
    pub fn serialize<K, V, S>(map: &BTreeMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize,
        V: Serialize,
        S: Serializer,
    {
        serializer.collect_seq(map.iter())
    }

    /// Reads `[[key, value], ...]`; a repeated key is an error rather than a silent overwrite.
    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let items: Vec<(K, V)> = Vec::deserialize(deserializer)?;
        let mut map = BTreeMap::new();
        for (k, v) in items {
            if map.insert(k, v).is_some() {
                return Err(D::Error::custom("duplicate key in pair list"));
            }
        }
        Ok(map)
    }
}

/// Encodes a float: finite values as numbers, the rest as `"nan"`, `"inf"`, `"-inf"`.
fn encode<S: Serializer>(value: f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(value)
    } else if value.is_nan() {
        serializer.serialize_str("nan")
    } else if value > 0.0 {
        serializer.serialize_str("inf")
    } else {
        serializer.serialize_str("-inf")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireF64 {
    Num(f64),
    Text(String),
}

fn decode<E: serde::de::Error>(wire: WireF64) -> Result<f64, E> {
    match wire {
        WireF64::Num(v) => Ok(v),
        WireF64::Text(t) => match t.as_str() {
            "nan" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(E::custom(format!(
                "expected a number, \"nan\", \"inf\" or \"-inf\", got {other:?}"
            ))),
        },
    }
}

/// `#[serde(with = "weir_contracts::json::finite_f64")]` for an `f64` that may be non-finite.
pub mod finite_f64 {
    use super::*;

    /// Writes finite values as numbers and non-finite ones as strings.
    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        encode(*value, serializer)
    }

    /// Reads a number or one of `"nan"`, `"inf"`, `"-inf"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        decode(WireF64::deserialize(deserializer)?)
    }
}

/// `#[serde(with = "weir_contracts::json::opt_finite_f64")]` for an `Option<f64>`.
pub mod opt_finite_f64 {
    use super::*;

    /// Writes `None` as null, finite values as numbers and non-finite ones as strings.
    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => encode(*v, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads null, a number, or one of `"nan"`, `"inf"`, `"-inf"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        match Option::<WireF64>::deserialize(deserializer)? {
            Some(w) => decode(w).map(Some),
            None => Ok(None),
        }
    }
}

/// Converts any contract value to a `serde_json::Value` (for event snapshots and diagnostics).
///
/// Contract types only use string or pair-encoded map keys, so conversion cannot fail for them;
/// a foreign type that does fail is recorded as a string rather than lost or panicking.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::Value::String(format!("<unserializable: {e}>")))
}
