//! Tag arithmetic of start-time fair queueing and the one tie-break rule ([`FairKey`]).
//!
//! Virtual time and tags are exact fixed-point `u128` numbers: one unit of service to a
//! weight-`w` group advances its tag by [`tag_step`]`(w)` = `TAG_SCALE / w`.

/// Virtual-time scale: `2^16 · 3^6 · 5^4 · 7^2 · 11 · 13 · 17 · 19 · 23` (≈ 1.55e18).
///
/// A pick of a weight-`w` group advances its tag by `TAG_SCALE / w`, which is exact for every
/// weight that divides `TAG_SCALE`: every weight in 1..=28, every power of two up to 65536, 100,
/// 1000 and most capacity-like numbers. Other weights are floored (still non-zero for every
/// `u32` weight: `TAG_SCALE / u32::MAX` ≈ 3.6e8); ordering stays deterministic because all
/// arithmetic is integer. Tags are `u128`, so even weight-1 picks overflow only after ~2e20
/// commits in one busy period (and tags saturate rather than wrap).
pub const TAG_SCALE: u128 = 65_536 * 729 * 625 * 49 * 11 * 13 * 17 * 19 * 23;

/// `TAG_SCALE / w` for small weights, computed at compile time: a commit then needs no 128-bit
/// division (a libcall of ~40 cycles) in the common case. Index 0 holds weight 1's step.
const SMALL_STEPS: [u128; 65] = {
    let mut t = [0u128; 65];
    let mut w = 1;
    while w < 65 {
        t[w] = TAG_SCALE / w as u128;
        w += 1;
    }
    t[0] = TAG_SCALE;
    t
};

/// The tag advance of one pick of a weight-`weight` group: `TAG_SCALE / weight` (weight 0 counts
/// as 1, so no weight can stall virtual time).
#[inline]
pub fn tag_step(weight: u32) -> u128 {
    match SMALL_STEPS.get(weight as usize) {
        Some(&step) => step,
        None => TAG_SCALE / u128::from(weight),
    }
}

/// The start tag of a group that becomes backlogged: `max(virtual_time, finish tag it left
/// with)`. An idle group therefore cannot bank credit: however long it was away, it starts no
/// earlier than the groups that kept being served.
#[inline]
pub fn start_tag(virtual_time: u128, left_with: u128) -> u128 {
    virtual_time.max(left_with)
}

/// A backlogged group's place in fair order; `Ord` is **the** tie-break rule of weir's fair
/// queues:
///
/// 1. the smallest start tag first;
/// 2. on equal tags, the heavier group first (weights 2:1 then give `a b a a b a a b …` from
///    the first pick on, not `b a a b …`);
/// 3. on equal tags and weights, the smaller activation sequence first: the group whose current
///    head joined the contention earlier (by becoming backlogged, or by its previous pick), so
///    equal groups take turns round-robin.
///
/// The key packs the weight's complement and the activation sequence into one `u64`, so a
/// comparison is two integer compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FairKey {
    start: u128,
    tie: u64,
}

impl FairKey {
    /// The key of an absent group: larger than every real key.
    pub(crate) const ABSENT: Self = Self {
        start: u128::MAX,
        tie: u64::MAX,
    };

    /// The key of a group with start tag `start`, weight `weight` (0 counts as 1) and activation
    /// sequence `activation`.
    #[inline]
    pub fn new(start: u128, weight: u32, activation: u32) -> Self {
        Self {
            start,
            tie: (u64::from(u32::MAX - weight.max(1)) << 32) | u64::from(activation),
        }
    }

    /// The start tag.
    pub fn start(&self) -> u128 {
        self.start
    }

    /// The same key with activation sequence `activation` (renumbering keeps relative order).
    #[inline]
    pub(crate) fn with_activation(self, activation: u32) -> Self {
        Self {
            start: self.start,
            tie: (self.tie & !u64::from(u32::MAX)) | u64::from(activation),
        }
    }

    /// The packed tie word (weight complement, activation sequence).
    #[inline]
    pub(crate) fn tie(&self) -> u64 {
        self.tie
    }

    /// A key from its raw parts (the tournament stores them unpacked).
    #[inline]
    pub(crate) fn from_parts(start: u128, tie: u64) -> Self {
        Self { start, tie }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_exact_for_small_and_capacity_like_weights() {
        for w in (1..=28u32).chain([32, 64, 100, 128, 1000, 65_536]) {
            assert_eq!(tag_step(w) * u128::from(w), TAG_SCALE, "weight {w}");
        }
        // The table and the division agree at the seam.
        for w in 60..70u32 {
            assert_eq!(tag_step(w), TAG_SCALE / u128::from(w));
        }
    }

    #[test]
    fn weight_extremes_get_a_nonzero_step() {
        assert_eq!(tag_step(0), TAG_SCALE, "weight 0 counts as 1");
        assert_eq!(tag_step(1), TAG_SCALE);
        let heaviest = tag_step(u32::MAX);
        assert!(heaviest > 0);
        assert_eq!(heaviest, TAG_SCALE / u128::from(u32::MAX));
        // u32::MAX picks of the heaviest group cost no more than one pick of weight 1.
        assert!(heaviest * u128::from(u32::MAX) <= TAG_SCALE);
    }

    #[test]
    fn start_tag_never_banks_credit() {
        // Left long ago with a small finish tag: starts at the current virtual time.
        assert_eq!(start_tag(10 * TAG_SCALE, TAG_SCALE), 10 * TAG_SCALE);
        // Left ahead of virtual time (served past it): keeps its later tag.
        assert_eq!(start_tag(TAG_SCALE, 3 * TAG_SCALE), 3 * TAG_SCALE);
    }

    #[test]
    fn tie_break_rule_orders_tag_then_weight_then_activation() {
        let s = TAG_SCALE;
        // 1. The start tag decides first, whatever the weight and activation.
        assert!(FairKey::new(s, 1, 9) < FairKey::new(s + 1, u32::MAX, 0));
        // 2. Equal tags: the heavier group first, including the extremes 1 and u32::MAX.
        assert!(FairKey::new(s, 2, 9) < FairKey::new(s, 1, 0));
        assert!(FairKey::new(s, u32::MAX, 9) < FairKey::new(s, u32::MAX - 1, 0));
        assert!(FairKey::new(s, u32::MAX, u32::MAX) < FairKey::new(s, 1, 0));
        // 3. Equal tags and weights: the earlier activation first.
        assert!(FairKey::new(s, 3, 4) < FairKey::new(s, 3, 5));
        assert!(FairKey::new(s, 1, 0) < FairKey::new(s, 1, u32::MAX));
        // Weight 0 is weight 1.
        assert_eq!(FairKey::new(s, 0, 7), FairKey::new(s, 1, 7));
        // Every real key sorts before the absent one.
        assert!(FairKey::new(u128::MAX, 1, u32::MAX - 1) < FairKey::ABSENT);
    }

    #[test]
    fn renumbering_keeps_tag_and_weight() {
        let k = FairKey::new(5, 7, 1_000);
        let r = k.with_activation(3);
        assert_eq!(r, FairKey::new(5, 7, 3));
        assert_eq!(FairKey::from_parts(r.start(), r.tie()), r);
    }
}
