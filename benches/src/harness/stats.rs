//! Summary statistics over measured iterations: mean, p50, p95, min, max, stddev, trimmed mean.

use serde::Serialize;

/// Summary of one metric over iterations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (nearest-rank on the sorted samples, averaged for even counts).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Sample standard deviation (n − 1; 0 for one sample).
    pub stddev: f64,
    /// Mean after dropping the smallest and the largest sample (the mean when n < 3).
    pub trimmed_mean: f64,
}

impl Summary {
    /// Summary of `samples` (`None` when empty or when any sample is not finite).
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let trimmed_mean = if n >= 3 {
            s[1..n - 1].iter().sum::<f64>() / (n - 2) as f64
        } else {
            mean
        };
        Some(Self {
            n,
            mean,
            p50: percentile_sorted(&s, 0.5),
            p95: percentile_sorted(&s, 0.95),
            min: s[0],
            max: s[n - 1],
            stddev: var.sqrt(),
            trimmed_mean,
        })
    }

    /// Coefficient of variation (stddev / |mean|; 0 when the mean is 0).
    pub fn cv(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.stddev / self.mean.abs()
        }
    }
}

/// Percentile `q` in [0, 1] of already sorted samples: the median averages the middle pair,
/// other quantiles take the nearest rank `ceil(q·n)`.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if (q - 0.5).abs() < f64::EPSILON {
        return if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
    }
    let rank = (q * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Percentile `q` of unsorted samples (0 for none).
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    percentile_sorted(&s, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("finite");
        assert_eq!((s.n, s.mean, s.p50, s.min, s.max), (5, 3.0, 3.0, 1.0, 5.0));
        assert_eq!(s.p95, 5.0);
        assert_eq!(s.trimmed_mean, 3.0);
        assert!((s.stddev - 2.5f64.sqrt()).abs() < 1e-12);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[f64::NAN]).is_none());
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
    }
}
