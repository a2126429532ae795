//! Which seed row record `i` gets: a pure function of (seed row count, run seed, sampling, i).
//!
//! Nothing here keeps state or reads the file, so a row group computes its seed rows from its
//! own row indices alone, whichever order row groups run in, after a resume, or on another
//! machine. `shuffle` is a keyed permutation of `0..n` per epoch (a cycle-walking Feistel
//! network: no table, O(1) memory for any `n`), `with_replacement` an independent uniform draw
//! per record.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How records are matched to seed rows.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedSampling {
    /// Record `i` gets seed row `i mod n`: the file's order, wrapping around after its last row.
    #[default]
    Ordered,
    /// Every seed row once per `n` records, in an order drawn from the run's `seed`; each
    /// further pass over the file (epoch) is shuffled anew.
    Shuffle,
    /// Each record draws a seed row uniformly from the run's `seed` and its index; rows may
    /// repeat within a pass and some may never appear.
    WithReplacement,
}

impl SeedSampling {
    /// Snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ordered => "ordered",
            Self::Shuffle => "shuffle",
            Self::WithReplacement => "with_replacement",
        }
    }

    /// The seed row (0-based, `< rows`) of record `record` in a run seeded `seed`; 0 when
    /// `rows` is 0 (a seed dataset is never empty, so that case is never asked).
    pub fn seed_row(self, rows: u64, seed: u64, record: u64) -> u64 {
        if rows <= 1 {
            return 0;
        }
        match self {
            Self::Ordered => record % rows,
            Self::Shuffle => {
                let epoch = record / rows;
                permute(rows, mix(seed, epoch, SHUFFLE_TAG), record % rows)
            }
            Self::WithReplacement => {
                let draw = mix(seed, record, DRAW_TAG);
                // Multiply-shift: uniform in 0..rows up to a bias of rows / 2^64.
                ((u128::from(draw) * u128::from(rows)) >> 64) as u64
            }
        }
    }
}

impl fmt::Display for SeedSampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const SHUFFLE_TAG: u64 = 0x7365_6564_5f73_6866; // "seed_shf"
const DRAW_TAG: u64 = 0x7365_6564_5f64_7277; // "seed_drw"
const ROUNDS: u64 = 6;

/// A bijection of `0..n` keyed by `key` (`x < n`, `n ≥ 2`): a balanced Feistel network on the
/// smallest power of four ≥ n, walking the cycle until the value falls inside `0..n` (fewer
/// than four steps on average, since that domain is < 4n).
fn permute(n: u64, key: u64, x: u64) -> u64 {
    let bits = 64 - (n - 1).leading_zeros();
    let half = bits.div_ceil(2);
    // bits ≤ 64, so half ≤ 32 and both shifts stay in range.
    let mask = (1u64 << half) - 1;
    let mut v = x;
    loop {
        let (mut l, mut r) = (v >> half, v & mask);
        for round in 0..ROUNDS {
            let f = mix(key, round, r) & mask;
            (l, r) = (r, l ^ f);
        }
        v = (l << half) | r;
        if v < n {
            return v;
        }
    }
}

/// SplitMix64 over three words: a keyed, well-spread 64-bit hash.
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(b)
        .rotate_left(23)
        ^ c.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn shuffle_is_a_permutation_per_epoch_and_epochs_differ() {
        for n in [2u64, 3, 5, 16, 17, 100, 1000, 1025] {
            let epoch0: Vec<u64> = (0..n)
                .map(|i| SeedSampling::Shuffle.seed_row(n, 9, i))
                .collect();
            let epoch1: Vec<u64> = (n..2 * n)
                .map(|i| SeedSampling::Shuffle.seed_row(n, 9, i))
                .collect();
            let set: BTreeSet<u64> = epoch0.iter().copied().collect();
            assert_eq!(set.len() as u64, n, "n = {n}: every row once");
            assert!(set.iter().all(|r| *r < n));
            let set1: BTreeSet<u64> = epoch1.iter().copied().collect();
            assert_eq!(set1.len() as u64, n);
            if n >= 5 {
                assert_ne!(epoch0, epoch1, "n = {n}: each epoch reshuffles");
                assert_ne!(
                    epoch0,
                    (0..n).collect::<Vec<_>>(),
                    "n = {n}: not the identity"
                );
            }
        }
    }

    #[test]
    fn sampling_depends_only_on_its_inputs() {
        for s in [
            SeedSampling::Ordered,
            SeedSampling::Shuffle,
            SeedSampling::WithReplacement,
        ] {
            let a: Vec<u64> = (0..500).map(|i| s.seed_row(37, 4, i)).collect();
            let b: Vec<u64> = (0..500).rev().map(|i| s.seed_row(37, 4, i)).rev().collect();
            assert_eq!(a, b, "{s}: the same whatever order records are asked in");
            assert!(a.iter().all(|r| *r < 37));
        }
        let a: Vec<u64> = (0..50)
            .map(|i| SeedSampling::Shuffle.seed_row(37, 4, i))
            .collect();
        let b: Vec<u64> = (0..50)
            .map(|i| SeedSampling::Shuffle.seed_row(37, 5, i))
            .collect();
        assert_ne!(a, b, "another seed, another order");
        assert_eq!(SeedSampling::Ordered.seed_row(3, 1, 7), 1);
        assert_eq!(SeedSampling::Shuffle.seed_row(1, 1, 7), 0);
    }

    #[test]
    fn with_replacement_covers_rows_roughly_uniformly_and_repeats() {
        let n = 10u64;
        let mut counts = [0u32; 10];
        for i in 0..10_000 {
            counts[SeedSampling::WithReplacement.seed_row(n, 3, i) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        let first: Vec<u64> = (0..n)
            .map(|i| SeedSampling::WithReplacement.seed_row(n, 3, i))
            .collect();
        let distinct: BTreeSet<u64> = first.iter().copied().collect();
        assert!(
            distinct.len() < 10,
            "ten draws of ten rows repeat one: {first:?}"
        );
    }

    #[test]
    fn permute_handles_the_widest_domains() {
        let n = u64::MAX;
        let a = permute(n, 1, 5);
        assert!(a < n);
        assert_ne!(permute(n, 1, 6), a);
        let n = (1u64 << 40) + 3;
        assert!(permute(n, 2, n - 1) < n);
    }
}
