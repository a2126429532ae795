//! Latency distributions of the simulated provider: config shape, validation, mean and sampling.

use super::simulated_config::SimulatedConfigError;
use rand::Rng;
use rand_distr::{Beta, Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A latency distribution in milliseconds, tagged by `dist` in JSON.
///
/// `{"dist": "fixed", "value": 100}`, `{"dist": "uniform", "min": 50, "max": 150}`,
/// `{"dist": "lognormal", "median": 100, "sigma": 0.5}`,
/// `{"dist": "beta", "alpha": 2, "beta": 5, "scale": 400}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyDist {
    /// Always `value` ms.
    Fixed {
        /// Latency in ms (≥ 0).
        value: f64,
    },
    /// Uniform on `[min, max]` ms.
    Uniform {
        /// Lower bound in ms (≥ 0).
        min: f64,
        /// Upper bound in ms (≥ min).
        max: f64,
    },
    /// `median · exp(sigma · Z)` ms with Z standard normal.
    Lognormal {
        /// Median in ms (> 0).
        median: f64,
        /// Shape (≥ 0; 0 is a fixed latency).
        sigma: f64,
    },
    /// `scale · Beta(alpha, beta)` ms: bounded, skewed latencies.
    Beta {
        /// Beta alpha (> 0).
        alpha: f64,
        /// Beta beta (> 0).
        beta: f64,
        /// Upper bound in ms (≥ 0).
        scale: f64,
    },
}

impl LatencyDist {
    /// A fixed latency of `ms` milliseconds.
    pub fn fixed_ms(ms: f64) -> Self {
        Self::Fixed { value: ms }
    }

    /// Checks every parameter; `prefix` is the config field (e.g. `"latency_ms"`).
    pub fn validate(&self, prefix: &str) -> Result<(), SimulatedConfigError> {
        let field = |name: &str| format!("{prefix}.{name}");
        let non_negative = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(SimulatedConfigError::new(
                    field(name),
                    format!("must be a finite number ≥ 0 (got {v})"),
                ))
            }
        };
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(SimulatedConfigError::new(
                    field(name),
                    format!("must be a finite number > 0 (got {v})"),
                ))
            }
        };
        match *self {
            Self::Fixed { value } => non_negative("value", value),
            Self::Uniform { min, max } => {
                non_negative("min", min)?;
                non_negative("max", max)?;
                if min > max {
                    return Err(SimulatedConfigError::new(
                        field("min"),
                        format!("must be ≤ {prefix}.max ({min} > {max})"),
                    ));
                }
                Ok(())
            }
            Self::Lognormal { median, sigma } => {
                positive("median", median)?;
                non_negative("sigma", sigma)
            }
            Self::Beta { alpha, beta, scale } => {
                positive("alpha", alpha)?;
                positive("beta", beta)?;
                non_negative("scale", scale)
            }
        }
    }

    /// Mean latency in ms: fixed `value`; uniform `(min+max)/2`; lognormal `median·exp(σ²/2)`;
    /// beta `scale·α/(α+β)`.
    pub fn mean_ms(&self) -> f64 {
        match *self {
            Self::Fixed { value } => value,
            Self::Uniform { min, max } => (min + max) / 2.0,
            Self::Lognormal { median, sigma } => median * (sigma * sigma / 2.0).exp(),
            Self::Beta { alpha, beta, scale } => scale * alpha / (alpha + beta),
        }
    }

    /// Mean latency as a `Duration` (zero if the config is invalid).
    pub fn mean(&self) -> Duration {
        ms_to_duration(self.mean_ms())
    }
}

/// A validated distribution, ready to draw from.
#[derive(Debug, Clone)]
pub(crate) enum LatencySampler {
    Fixed(f64),
    Uniform(f64, f64),
    Lognormal { median: f64, sigma: f64 },
    Beta { dist: Beta<f64>, scale: f64 },
}

impl LatencySampler {
    /// Builds a sampler from a distribution that must already be valid.
    pub(crate) fn new(dist: &LatencyDist, prefix: &str) -> Result<Self, SimulatedConfigError> {
        dist.validate(prefix)?;
        Ok(match *dist {
            LatencyDist::Fixed { value } => Self::Fixed(value),
            LatencyDist::Uniform { min, max } => Self::Uniform(min, max),
            LatencyDist::Lognormal { median, sigma } => Self::Lognormal { median, sigma },
            LatencyDist::Beta { alpha, beta, scale } => Self::Beta {
                dist: Beta::new(alpha, beta).map_err(|e| {
                    SimulatedConfigError::new(format!("{prefix}.alpha"), e.to_string())
                })?,
                scale,
            },
        })
    }

    /// Draws one latency. `Fixed` draws nothing, so fixed-latency runs keep the RNG stream
    /// for fault injection only.
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let ms = match *self {
            Self::Fixed(v) => v,
            Self::Uniform(min, max) => {
                if max > min {
                    rng.gen_range(min..=max)
                } else {
                    min
                }
            }
            Self::Lognormal { median, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                median * (sigma * z).exp()
            }
            Self::Beta { ref dist, scale } => scale * dist.sample(rng),
        };
        ms_to_duration(ms)
    }
}

/// Milliseconds to a `Duration`; negative or non-finite values become zero, huge ones saturate.
pub(crate) fn ms_to_duration(ms: f64) -> Duration {
    if !ms.is_finite() || ms <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)
}
