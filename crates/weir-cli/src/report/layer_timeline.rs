//! `LayerTimeline`: task time per layer over the run, in aligned time buckets (bounded memory),
//! so the report can draw where task time went *when* — a stacked area of how many tasks were
//! in each layer, on average, in each bucket.
//!
//! Intervals are split exactly across the buckets they overlap. When there are more than
//! `max_buckets`, the bucket width doubles and neighbours are added together, as in
//! `BucketedSeries`, but for all layers at once so the stack stays aligned.

/// Layers in display order (the keys of `LayerAttribution::entries`).
pub const LAYERS: usize = 8;

/// First bucket width in seconds.
const INITIAL_WIDTH: f64 = 0.01;

/// Task-seconds per layer in aligned, doubling time buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTimeline {
    width: f64,
    max_buckets: usize,
    buckets: Vec<[f64; LAYERS]>,
}

impl LayerTimeline {
    /// An empty timeline keeping at most `max_buckets` (≥ 2) buckets.
    pub fn new(max_buckets: usize) -> Self {
        Self {
            width: INITIAL_WIDTH,
            max_buckets: max_buckets.max(2),
            buckets: Vec::new(),
        }
    }

    /// Charges the interval `[from, to)` (seconds) to `layer`.
    pub fn add(&mut self, layer: usize, from: f64, to: f64) {
        if layer >= LAYERS || !from.is_finite() || !to.is_finite() || to <= from {
            return;
        }
        let (from, to) = (from.max(0.0), to.max(0.0));
        while (to / self.width) as usize >= self.max_buckets {
            self.coarsen();
        }
        let last = (to / self.width) as usize;
        if self.buckets.len() <= last {
            self.buckets.resize(last + 1, [0.0; LAYERS]);
        }
        let mut i = (from / self.width) as usize;
        while i <= last {
            let start = (i as f64 * self.width).max(from);
            let end = ((i + 1) as f64 * self.width).min(to);
            if end > start {
                self.buckets[i][layer] += end - start;
            }
            i += 1;
        }
    }

    fn coarsen(&mut self) {
        self.width *= 2.0;
        let merged = self
            .buckets
            .chunks(2)
            .map(|pair| {
                let mut sum = [0.0; LAYERS];
                for b in pair {
                    for (s, v) in sum.iter_mut().zip(b) {
                        *s += v;
                    }
                }
                sum
            })
            .collect();
        self.buckets = merged;
    }

    /// `(bucket start, average tasks in each layer during the bucket)`.
    pub fn points(&self) -> Vec<(f64, [f64; LAYERS])> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut avg = *b;
                for v in &mut avg {
                    *v /= self.width;
                }
                (i as f64 * self.width, avg)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_across_buckets_and_survive_coarsening() {
        let mut t = LayerTimeline::new(4);
        t.add(0, 0.0, 0.015); // 1.5 buckets of 10 ms
        t.add(5, 0.01, 0.02);
        let p = t.points();
        assert!((p[0].1[0] - 1.0).abs() < 1e-9);
        assert!((p[1].1[0] - 0.5).abs() < 1e-9 && (p[1].1[5] - 1.0).abs() < 1e-9);
        // A late interval doubles the width until it fits; totals are kept.
        t.add(7, 0.1, 0.12);
        let total: f64 = t
            .points()
            .iter()
            .map(|(_, v)| v.iter().sum::<f64>() * t.width)
            .sum();
        assert!((total - (0.015 + 0.01 + 0.02)).abs() < 1e-9, "{total}");
        assert!(t.points().len() <= 4);
    }
}
