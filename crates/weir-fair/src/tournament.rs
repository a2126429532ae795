//! `Tournament`: a winner tree over group slots, the fair order's "which backlogged group is next".
//!
//! Why not a `BTreeSet` or a binary heap: serving a group changes exactly one key, and a winner
//! tree replays exactly one leaf-to-root path of sibling comparisons (branch-free selects, no
//! element moves, keys stored in the nodes), where a B-tree removes and re-inserts a 48-byte key
//! and a heap sifts with data-dependent branches. Reading the minimum is one load. Iterating in
//! order (only needed when the scheduler's predicate rejects the minimum) expands the tree lazily.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::tag::FairKey;

/// A tree node: its subtree's winning key and slot, packed into 32 bytes (a `(key, slot)`
/// tuple would pad to 48), so a replay touches fewer cache lines.
#[derive(Debug, Clone, Copy)]
struct Node {
    tag: u128,
    tie: u64,
    slot: u32,
}

impl Node {
    fn key(&self) -> FairKey {
        FairKey::from_parts(self.tag, self.tie)
    }
}

/// Winner tree over slots `0..cap` (`cap` a power of two). Node `i` holds the winning
/// key and slot of its subtree; `nodes[1]` is the overall winner, `nodes[cap + s]` is slot `s`.
/// Keys live in the nodes, so a replay reads one sibling per level with no indirection.
#[derive(Debug, Clone)]
pub(crate) struct Tournament {
    cap: usize,
    nodes: Vec<Node>,
}

impl Default for Tournament {
    fn default() -> Self {
        Self::with_capacity(1)
    }
}

/// The smaller of two nodes; the first on a tie (only absent keys tie). Selected with masks,
/// not a branch: fair order makes the outcome unpredictable, and the compiler turned the plain
/// `if` into jumps that mispredicted on about half the levels.
#[inline]
fn min_node(a: Node, b: Node) -> Node {
    let b_less = (b.tag < a.tag) | ((b.tag == a.tag) & (b.tie < a.tie));
    let m = u128::from(b_less).wrapping_neg();
    let m64 = u64::from(b_less).wrapping_neg();
    let m32 = u32::from(b_less).wrapping_neg();
    Node {
        tag: (b.tag & m) | (a.tag & !m),
        tie: (b.tie & m64) | (a.tie & !m64),
        slot: (b.slot & m32) | (a.slot & !m32),
    }
}

impl Tournament {
    fn with_capacity(cap: usize) -> Self {
        let cap = cap.next_power_of_two().max(1);
        let absent = Node {
            tag: FairKey::ABSENT.start(),
            tie: FairKey::ABSENT.tie(),
            slot: 0,
        };
        let mut t = Self {
            cap,
            nodes: vec![absent; 2 * cap],
        };
        for s in 0..cap {
            t.nodes[cap + s].slot = s as u32;
        }
        t.rebuild();
        t
    }

    fn rebuild(&mut self) {
        for i in (1..self.cap).rev() {
            self.nodes[i] = min_node(self.nodes[2 * i], self.nodes[2 * i + 1]);
        }
    }

    /// Sets `slot`'s key (growing the tree when `slot` is beyond it) and replays its path.
    pub(crate) fn set(&mut self, slot: u32, key: FairKey) {
        if slot as usize >= self.cap {
            let mut bigger = Self::with_capacity(slot as usize + 1);
            let (old, new) = (self.cap, bigger.cap);
            bigger.nodes[new..new + old].copy_from_slice(&self.nodes[old..2 * old]);
            bigger.rebuild();
            *self = bigger;
        }
        let mut i = self.cap + slot as usize;
        let mut winner = Node {
            tag: key.start(),
            tie: key.tie(),
            slot,
        };
        self.nodes[i] = winner;
        while i > 1 {
            winner = min_node(winner, self.nodes[i ^ 1]);
            i /= 2;
            self.nodes[i] = winner;
        }
    }

    /// Marks `slot` absent.
    pub(crate) fn remove(&mut self, slot: u32) {
        if (slot as usize) < self.cap {
            self.set(slot, FairKey::ABSENT);
        }
    }

    /// `slot`'s key, when present.
    pub(crate) fn key(&self, slot: u32) -> Option<FairKey> {
        let key = self.nodes.get(self.cap + slot as usize)?.key();
        ((slot as usize) < self.cap && key != FairKey::ABSENT).then_some(key)
    }

    /// The present slot with the smallest key.
    #[inline]
    pub(crate) fn first(&self) -> Option<u32> {
        let n = self.nodes[1];
        (n.key() != FairKey::ABSENT).then_some(n.slot)
    }

    /// Present slots in key order, expanded lazily: O(k log k) for the first k.
    pub(crate) fn iter(&self) -> TournamentIter<'_> {
        let mut frontier = BinaryHeap::new();
        if self.first().is_some() {
            frontier.push(Reverse((self.nodes[1].key(), 1usize)));
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
    frontier: BinaryHeap<Reverse<(FairKey, usize)>>,
}

impl Iterator for TournamentIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        // A node's key is its subtree's minimum, so popping nodes in key order and expanding
        // internal ones yields the leaves in key order.
        while let Some(Reverse((_, node))) = self.frontier.pop() {
            if node >= self.tree.cap {
                return Some(self.tree.nodes[node].slot);
            }
            for child in [2 * node, 2 * node + 1] {
                let key = self.tree.nodes[child].key();
                if key != FairKey::ABSENT {
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
                let key = FairKey::new(u128::from((x >> 40) % 16), (x % 3) as u32 + 1, step as u32);
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
