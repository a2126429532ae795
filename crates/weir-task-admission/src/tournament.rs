//! `Tournament`: a winner tree over group slots, the fair queue's "which active group is next".
//!
//! Why not a `BTreeSet` or a binary heap: serving a group changes exactly one key, and a winner
//! tree replays exactly one leaf-to-root path of sibling comparisons (branch-free selects, no
//! element moves, keys stored in the nodes), where a B-tree removes and re-inserts a 48-byte key
//! and a heap sifts with data-dependent branches. Reading the minimum is one load. Iterating in
//! order (only needed when the scheduler's predicate rejects the minimum) expands the tree lazily.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A slot's ordering key: smallest start tag first, then smallest `tie` (finish-tag increment
/// in the high half, so heavier groups win equal tags; activation sequence in the low half).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TournamentKey {
    pub(crate) tag: u128,
    pub(crate) tie: u128,
}

impl TournamentKey {
    /// The key of an absent slot: larger than every real key.
    const ABSENT: Self = Self {
        tag: u128::MAX,
        tie: u128::MAX,
    };

    /// A key from a start tag, the finish-tag increment and the activation sequence.
    pub(crate) fn new(tag: u128, increment: u128, act: u64) -> Self {
        // Increments are `SCALE / weight ≤ SCALE < 2^64`, so both halves are exact.
        Self {
            tag,
            tie: (increment.min(u128::from(u64::MAX)) << 64) | u128::from(act),
        }
    }
}

/// Winner tree over slots `0..cap` (`cap` a power of two). Node `i` holds the winning
/// `(key, slot)` of its subtree; `nodes[1]` is the overall winner, `nodes[cap + s]` is slot `s`.
/// Keys live in the nodes, so a replay reads one sibling per level with no indirection.
#[derive(Debug, Clone)]
pub(crate) struct Tournament {
    cap: usize,
    nodes: Vec<(TournamentKey, u32)>,
}

impl Default for Tournament {
    fn default() -> Self {
        Self::with_capacity(1)
    }
}

/// The smaller of two entries; the first on a tie (only absent keys tie). Selected with masks,
/// not a branch: fair order makes the outcome unpredictable, and the compiler turned the plain
/// `if` into jumps that mispredicted on about half the levels.
#[inline]
fn min_entry(a: (TournamentKey, u32), b: (TournamentKey, u32)) -> (TournamentKey, u32) {
    let b_less = (b.0.tag < a.0.tag) | ((b.0.tag == a.0.tag) & (b.0.tie < a.0.tie));
    let m = u128::from(b_less).wrapping_neg();
    let m32 = u32::from(b_less).wrapping_neg();
    (
        TournamentKey {
            tag: (b.0.tag & m) | (a.0.tag & !m),
            tie: (b.0.tie & m) | (a.0.tie & !m),
        },
        (b.1 & m32) | (a.1 & !m32),
    )
}

impl Tournament {
    fn with_capacity(cap: usize) -> Self {
        let cap = cap.next_power_of_two().max(1);
        let mut t = Self {
            cap,
            nodes: vec![(TournamentKey::ABSENT, 0); 2 * cap],
        };
        for s in 0..cap {
            t.nodes[cap + s].1 = s as u32;
        }
        t.rebuild();
        t
    }

    fn rebuild(&mut self) {
        for i in (1..self.cap).rev() {
            self.nodes[i] = min_entry(self.nodes[2 * i], self.nodes[2 * i + 1]);
        }
    }

    /// Sets `slot`'s key (growing the tree when `slot` is beyond it) and replays its path.
    pub(crate) fn set(&mut self, slot: u32, key: TournamentKey) {
        if slot as usize >= self.cap {
            let mut bigger = Self::with_capacity(slot as usize + 1);
            let (old, new) = (self.cap, bigger.cap);
            bigger.nodes[new..new + old].copy_from_slice(&self.nodes[old..2 * old]);
            bigger.rebuild();
            *self = bigger;
        }
        let mut i = self.cap + slot as usize;
        let mut winner = (key, slot);
        self.nodes[i] = winner;
        while i > 1 {
            winner = min_entry(winner, self.nodes[i ^ 1]);
            i /= 2;
            self.nodes[i] = winner;
        }
    }

    /// Marks `slot` absent.
    pub(crate) fn remove(&mut self, slot: u32) {
        if (slot as usize) < self.cap {
            self.set(slot, TournamentKey::ABSENT);
        }
    }

    /// The present slot with the smallest key.
    #[inline]
    pub(crate) fn first(&self) -> Option<u32> {
        let (key, slot) = self.nodes[1];
        (key != TournamentKey::ABSENT).then_some(slot)
    }

    /// Present slots in key order, expanded lazily: O(k log k) for the first k.
    pub(crate) fn iter(&self) -> TournamentIter<'_> {
        let mut frontier = BinaryHeap::new();
        if self.first().is_some() {
            frontier.push(Reverse((self.nodes[1].0, 1usize)));
        }
        TournamentIter {
            tree: self,
            frontier,
        }
    }
}

/// In-order iterator over a [`Tournament`]'s present slots.
#[derive(Debug)]
pub(crate) struct TournamentIter<'a> {
    tree: &'a Tournament,
    frontier: BinaryHeap<Reverse<(TournamentKey, usize)>>,
}

impl Iterator for TournamentIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        // A node's key is its subtree's minimum, so popping nodes in key order and expanding
        // internal ones yields the leaves in key order.
        while let Some(Reverse((_, node))) = self.frontier.pop() {
            if node >= self.tree.cap {
                return Some(self.tree.nodes[node].1);
            }
            for child in [2 * node, 2 * node + 1] {
                let key = self.tree.nodes[child].0;
                if key != TournamentKey::ABSENT {
                    self.frontier.push(Reverse((key, child)));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_present_slots_in_key_order_across_growth() {
        let mut t = Tournament::default();
        let mut x: u64 = 7;
        let mut model = std::collections::BTreeMap::new();
        for step in 0..2_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let slot = ((x >> 33) % 70) as u32;
            if (x >> 20).is_multiple_of(3) {
                t.remove(slot);
                model.retain(|_, s| *s != slot);
            } else {
                let key = TournamentKey::new(u128::from((x >> 40) % 16), 1, step);
                model.retain(|_, s| *s != slot);
                t.set(slot, key);
                model.insert(key, slot);
            }
            let expected: Vec<u32> = model.values().copied().collect();
            assert_eq!(t.first(), expected.first().copied());
            if step % 97 == 0 {
                assert_eq!(t.iter().collect::<Vec<_>>(), expected);
            }
        }
    }
}
