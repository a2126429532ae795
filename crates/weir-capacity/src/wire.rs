//! Serde helpers for plan fields the contract helpers do not cover: optional pair-lists and blocked-until maps.
//!
//! The wire rules are those of `weir_contracts::json`: a structured-key map is an array of
//! `[key, value]` pairs in key order, and a float that may be non-finite is a number or one of
//! `"nan"`, `"inf"`, `"-inf"`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use weir_contracts::json::opt_finite_f64;

/// Reads a pair list into a map, rejecting a repeated key.
fn collect_pairs<'de, K: Ord, V, D: Deserializer<'de>>(
    items: Vec<(K, V)>,
) -> Result<BTreeMap<K, V>, D::Error> {
    let mut map = BTreeMap::new();
    for (k, v) in items {
        if map.insert(k, v).is_some() {
            return Err(D::Error::custom("duplicate key in pair list"));
        }
    }
    Ok(map)
}

/// `#[serde(with = "opt_pairs")]` for an `Option<BTreeMap<K, V>>` with structured keys (`null` or pairs).
pub mod opt_pairs {
    use super::*;

    /// Writes `None` as null and a map as `[[key, value], ...]`.
    pub fn serialize<K, V, S>(
        map: &Option<BTreeMap<K, V>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error>
    where
        K: Serialize,
        V: Serialize,
        S: Serializer,
    {
        match map {
            Some(m) => serializer.collect_seq(m.iter()),
            None => serializer.serialize_none(),
        }
    }

    /// Reads null or a pair list.
    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<Option<BTreeMap<K, V>>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        match Option::<Vec<(K, V)>>::deserialize(deserializer)? {
            Some(items) => collect_pairs::<K, V, D>(items).map(Some),
            None => Ok(None),
        }
    }
}

/// An `Option<f64>` that keeps non-finite values on the wire.
#[derive(Serialize, Deserialize)]
struct WireOptF64(#[serde(with = "opt_finite_f64")] Option<f64>);

/// `#[serde(with = "opt_blocked_until")]` for `Option<BTreeMap<K, Option<f64>>>` with structured keys.
pub mod opt_blocked_until {
    use super::*;

    /// Writes `None` as null and a map as `[[key, seconds_or_null], ...]`.
    pub fn serialize<K, S>(
        map: &Option<BTreeMap<K, Option<f64>>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error>
    where
        K: Serialize,
        S: Serializer,
    {
        match map {
            Some(m) => serializer.collect_seq(m.iter().map(|(k, v)| (k, WireOptF64(*v)))),
            None => serializer.serialize_none(),
        }
    }

    /// Reads null or a pair list whose values are null, a number, or a non-finite string.
    pub fn deserialize<'de, K, D>(
        deserializer: D,
    ) -> Result<Option<BTreeMap<K, Option<f64>>>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        D: Deserializer<'de>,
    {
        match Option::<Vec<(K, WireOptF64)>>::deserialize(deserializer)? {
            Some(items) => {
                let items = items.into_iter().map(|(k, v)| (k, v.0)).collect();
                collect_pairs::<K, Option<f64>, D>(items).map(Some)
            }
            None => Ok(None),
        }
    }
}
