//! `BucketedSeries`: a time series with bounded memory (time buckets that double in width).
//!
//! Points land in buckets of `width` seconds; when there are more than `max_points` buckets the
//! width doubles and neighbours merge, so memory stays O(max_points) however long the run is.
//! Each series picks how a bucket combines its samples: the last value (counters, limits), the
//! maximum (in-flight gauges, so peaks survive downsampling) or the sum (event counts).

/// How samples in one bucket combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Keep the latest sample.
    Last,
    /// Keep the largest sample.
    Max,
    /// Add samples up.
    Sum,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    index: u64,
    t: f64,
    value: f64,
}

/// Initial bucket width in seconds.
const INITIAL_WIDTH: f64 = 0.001;

/// A downsampling time series.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketedSeries {
    aggregate: Aggregate,
    max_points: usize,
    width: f64,
    buckets: Vec<Bucket>,
}

impl BucketedSeries {
    /// An empty series keeping at most `max_points` (≥ 2) points.
    pub fn new(aggregate: Aggregate, max_points: usize) -> Self {
        Self {
            aggregate,
            max_points: max_points.max(2),
            width: INITIAL_WIDTH,
            buckets: Vec::new(),
        }
    }

    /// Adds a sample at `t` seconds (≥ 0). A sample older than the newest bucket merges into it
    /// (the two streams may interleave slightly out of time order).
    pub fn push(&mut self, t: f64, value: f64) {
        if !t.is_finite() || !value.is_finite() {
            return;
        }
        let t = t.max(0.0);
        let index = (t / self.width) as u64;
        match self.buckets.last_mut() {
            Some(last) if last.index >= index => {
                last.value = combine(self.aggregate, last.value, value);
                last.t = last.t.max(t);
            }
            _ => self.buckets.push(Bucket { index, t, value }),
        }
        while self.buckets.len() > self.max_points {
            self.coarsen();
        }
    }

    /// Doubles the bucket width, merging neighbours.
    fn coarsen(&mut self) {
        self.width *= 2.0;
        let mut merged: Vec<Bucket> = Vec::with_capacity(self.buckets.len() / 2 + 1);
        for b in self.buckets.drain(..) {
            let index = b.index / 2;
            match merged.last_mut() {
                Some(last) if last.index == index => {
                    last.value = combine(self.aggregate, last.value, b.value);
                    last.t = last.t.max(b.t);
                }
                _ => merged.push(Bucket { index, ..b }),
            }
        }
        self.buckets = merged;
    }

    /// The points as `(t, value)`, in time order (t = the bucket's latest sample time).
    pub fn points(&self) -> Vec<(f64, f64)> {
        self.buckets.iter().map(|b| (b.t, b.value)).collect()
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no sample was pushed.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

fn combine(aggregate: Aggregate, old: f64, new: f64) -> f64 {
    match aggregate {
        Aggregate::Last => new,
        Aggregate::Max => old.max(new),
        Aggregate::Sum => old + new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_peaks_and_sums() {
        let mut max = BucketedSeries::new(Aggregate::Max, 100);
        let mut sum = BucketedSeries::new(Aggregate::Sum, 100);
        for i in 0..100_000u32 {
            let t = f64::from(i) * 0.003;
            max.push(
                t,
                if i == 55_555 {
                    1000.0
                } else {
                    f64::from(i % 7)
                },
            );
            sum.push(t, 1.0);
        }
        assert!(max.len() <= 100 && max.len() >= 25, "len {}", max.len());
        assert!(max.points().iter().any(|(_, v)| *v == 1000.0));
        let total: f64 = sum.points().iter().map(|(_, v)| v).sum();
        assert_eq!(total, 100_000.0);
        let pts = max.points();
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn last_keeps_latest() {
        let mut s = BucketedSeries::new(Aggregate::Last, 10);
        s.push(0.0001, 1.0);
        s.push(0.0002, 5.0);
        s.push(0.0001, 3.0); // out of order: merges into the newest bucket
        assert_eq!(s.points(), vec![(0.0002, 3.0)]);
    }
}
