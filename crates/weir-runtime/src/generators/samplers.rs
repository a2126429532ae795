//! Seeded samplers: category (optionally weighted), uniform int/float, and UUID v4 text.
//!
//! Every value is drawn from a fresh RNG seeded with the cell's deterministic seed, so the same
//! workflow seed gives the same values whatever order the cells run in.

use super::{CellContext, ColumnGenerator, GenerationError, GeneratorConfigError};
use crate::workflow::Strategy;
use async_trait::async_trait;
use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;
use serde_json::Value;

/// Picks one of `values`, uniformly or by `weights`.
#[derive(Debug, Clone)]
pub struct Category {
    values: Vec<Value>,
    weights: Option<WeightedIndex<f64>>,
}

impl Category {
    /// Uniform choice over `values` (non-empty).
    pub fn new<V: Into<Value>>(
        values: impl IntoIterator<Item = V>,
    ) -> Result<Self, GeneratorConfigError> {
        let values: Vec<Value> = values.into_iter().map(Into::into).collect();
        if values.is_empty() {
            return Err(GeneratorConfigError::new("values", "must be non-empty"));
        }
        Ok(Self {
            values,
            weights: None,
        })
    }

    /// Weighted choice: one finite, non-negative weight per value, not all zero.
    pub fn weighted<V: Into<Value>>(
        values: impl IntoIterator<Item = V>,
        weights: Vec<f64>,
    ) -> Result<Self, GeneratorConfigError> {
        let mut c = Self::new(values)?;
        if weights.len() != c.values.len() {
            return Err(GeneratorConfigError::new(
                "weights",
                format!("expected {} weights, got {}", c.values.len(), weights.len()),
            ));
        }
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(GeneratorConfigError::new(
                "weights",
                "every weight must be finite and non-negative",
            ));
        }
        let index = WeightedIndex::new(&weights)
            .map_err(|e| GeneratorConfigError::new("weights", e.to_string()))?;
        c.weights = Some(index);
        Ok(c)
    }
}

#[async_trait]
impl ColumnGenerator for Category {
    fn runs_inline(&self) -> bool {
        true
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        Vec::new()
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let mut rng = ctx.rng();
        let i = match &self.weights {
            Some(w) => w.sample(&mut rng),
            None => rng.gen_range(0..self.values.len()),
        };
        Ok(self.values[i].clone())
    }
}

/// Uniform integer in `[low, high]` (inclusive).
#[derive(Debug, Clone, Copy)]
pub struct UniformInt {
    low: i64,
    high: i64,
}

impl UniformInt {
    /// Requires `low <= high`.
    pub fn new(low: i64, high: i64) -> Result<Self, GeneratorConfigError> {
        if low > high {
            return Err(GeneratorConfigError::new(
                "low",
                format!("low ({low}) must not exceed high ({high})"),
            ));
        }
        Ok(Self { low, high })
    }
}

#[async_trait]
impl ColumnGenerator for UniformInt {
    fn runs_inline(&self) -> bool {
        true
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        Vec::new()
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        Ok(Value::from(ctx.rng().gen_range(self.low..=self.high)))
    }
}

/// Uniform float in `[low, high)`.
#[derive(Debug, Clone, Copy)]
pub struct UniformFloat {
    low: f64,
    high: f64,
}

impl UniformFloat {
    /// Requires finite bounds with `low < high`.
    pub fn new(low: f64, high: f64) -> Result<Self, GeneratorConfigError> {
        if !low.is_finite() || !high.is_finite() {
            return Err(GeneratorConfigError::new("low", "bounds must be finite"));
        }
        if low >= high {
            return Err(GeneratorConfigError::new(
                "low",
                format!("low ({low}) must be below high ({high})"),
            ));
        }
        Ok(Self { low, high })
    }
}

#[async_trait]
impl ColumnGenerator for UniformFloat {
    fn runs_inline(&self) -> bool {
        true
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        Vec::new()
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let x: f64 = ctx.rng().gen_range(self.low..self.high);
        // A finite float always converts; Null would only appear for NaN/inf, which the bounds exclude.
        Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number))
    }
}

/// A random (seeded) UUID v4 in canonical hyphenated text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Uuid;

#[async_trait]
impl ColumnGenerator for Uuid {
    fn runs_inline(&self) -> bool {
        true
    }

    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }

    fn required_columns(&self) -> Vec<String> {
        Vec::new()
    }

    async fn generate_cell(&self, ctx: &CellContext<'_>) -> Result<Value, GenerationError> {
        let mut b = [0u8; 16];
        ctx.rng().fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(Value::String(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )))
    }
}
