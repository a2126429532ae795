//! `FairQueue<K, T>`: keyed FIFO lanes of items served in [`FairOrder`].
//!
//! The generic queue for callers whose items need no index of their own: one lane per group key
//! (looked up with the shared [`FxHashMap`]), FIFO inside a lane, lanes in start-time fair
//! order. Eligibility stays the caller's: [`FairQueue::select`] offers heads in fair order to a
//! predicate and names the first accepted one; [`FairQueue::pop`] serves it.

use crate::hash::FxHashMap;
use crate::order::{FairOrder, Forgotten};
use std::collections::VecDeque;
use std::hash::Hash;

/// A group's lane, as [`FairQueue::select`] names it (valid until the group is forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupSlot(u32);

#[derive(Debug)]
struct Lane<K, T> {
    key: K,
    /// The weight given when the group last became backlogged; it holds until the lane drains.
    weight: u32,
    items: VecDeque<T>,
}

/// Items of groups `K`, FIFO per group, groups in start-time fair order (see the crate docs for
/// the tie-break rule).
#[derive(Debug)]
pub struct FairQueue<K, T> {
    order: FairOrder,
    lanes: Vec<Option<Lane<K, T>>>,
    index: FxHashMap<K, u32>,
    free_slots: Vec<u32>,
    len: usize,
}

impl<K, T> Default for FairQueue<K, T> {
    fn default() -> Self {
        Self {
            order: FairOrder::new(),
            lanes: Vec::new(),
            index: FxHashMap::default(),
            free_slots: Vec::new(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, T> FairQueue<K, T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queued items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Groups with queued items.
    pub fn backlogged_groups(&self) -> usize {
        self.order.backlogged()
    }

    /// Appends `item` to `key`'s lane. `weight` (0 counts as 1) applies when the group becomes
    /// backlogged with this item; a group already backlogged keeps its weight until it drains.
    pub fn push(&mut self, key: &K, weight: u32, item: T) -> GroupSlot {
        let slot = match self.index.get(key) {
            Some(&slot) => slot,
            None => self.new_lane(key),
        };
        let Some(Some(lane)) = self.lanes.get_mut(slot as usize) else {
            // Invariant: an indexed slot has a lane.
            return GroupSlot(slot);
        };
        let becomes_backlogged = lane.items.is_empty();
        if becomes_backlogged {
            lane.weight = weight.max(1);
        }
        lane.items.push_back(item);
        self.len += 1;
        if becomes_backlogged {
            self.order.activate(slot, lane.weight);
        }
        GroupSlot(slot)
    }

    /// The first group head, in fair order, that `is_eligible` accepts (offered each backlogged
    /// head at most once). Changes nothing.
    pub fn select(&self, mut is_eligible: impl FnMut(&T) -> bool) -> Option<(GroupSlot, &T)> {
        let mut offer = |slot: u32| {
            let head = self.head(GroupSlot(slot))?;
            is_eligible(head).then_some((GroupSlot(slot), head))
        };
        // Fast path: the fair-order minimum is one load; the in-order walk (which allocates its
        // frontier) is only for a rejected minimum.
        let first = self.order.first()?;
        if let Some(sel) = offer(first) {
            return Some(sel);
        }
        self.order.iter().skip(1).find_map(offer)
    }

    /// The head of `slot`'s lane.
    pub fn head(&self, slot: GroupSlot) -> Option<&T> {
        self.lane(slot.0)?.items.front()
    }

    /// Serves `slot`'s head: removes and returns it and advances the group's tag.
    pub fn pop(&mut self, slot: GroupSlot) -> Option<T> {
        let Some(Some(lane)) = self.lanes.get_mut(slot.0 as usize) else {
            return None;
        };
        let item = lane.items.pop_front()?;
        self.len -= 1;
        let (weight, more) = (lane.weight, !lane.items.is_empty());
        let forgotten = self.order.serve(slot.0, weight, more);
        self.free(forgotten);
        Some(item)
    }

    /// Removes the first item (groups in slot order, FIFO inside) that `pred` matches, without
    /// serving it: a group it empties leaves with its start tag.
    pub fn remove_first(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        let (slot, pos) = self.lanes.iter().enumerate().find_map(|(slot, lane)| {
            let pos = lane.as_ref()?.items.iter().position(&mut pred)?;
            Some((slot as u32, pos))
        })?;
        let lane = self.lanes.get_mut(slot as usize)?.as_mut()?;
        let item = lane.items.remove(pos)?;
        self.len -= 1;
        if lane.items.is_empty() {
            let forgotten = self.order.withdraw(slot);
            self.free(forgotten);
        }
        Some(item)
    }

    /// Removes every item, groups in fair order, FIFO inside each, without serving any.
    pub fn drain(&mut self) -> Vec<T> {
        let slots: Vec<u32> = self.order.iter().collect();
        let mut out = Vec::with_capacity(self.len);
        for slot in slots {
            if let Some(Some(lane)) = self.lanes.get_mut(slot as usize) {
                out.extend(lane.items.drain(..));
            }
            let forgotten = self.order.withdraw(slot);
            self.free(forgotten);
        }
        self.len = 0;
        out
    }

    fn lane(&self, slot: u32) -> Option<&Lane<K, T>> {
        self.lanes.get(slot as usize)?.as_ref()
    }

    fn new_lane(&mut self, key: &K) -> u32 {
        let lane = Lane {
            key: key.clone(),
            weight: 1,
            items: VecDeque::new(),
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.lanes[s as usize] = Some(lane);
                s
            }
            None => {
                self.lanes.push(Some(lane));
                (self.lanes.len() - 1) as u32
            }
        };
        self.index.insert(key.clone(), slot);
        self.order.track(slot);
        slot
    }

    /// Frees the lanes of groups the order forgot (idle, tag no longer mattering).
    fn free(&mut self, forgotten: Forgotten) {
        for slot in forgotten {
            if let Some(lane) = self.lanes.get_mut(slot as usize).and_then(Option::take) {
                self.index.remove(&lane.key);
                self.free_slots.push(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop_all<K: Hash + Eq + Clone, T>(q: &mut FairQueue<K, T>) -> Vec<T> {
        let mut out = Vec::new();
        while let Some((slot, _)) = q.select(|_| true) {
            out.extend(q.pop(slot));
        }
        out
    }

    #[test]
    fn weights_two_to_one_heavier_first_on_ties() {
        let mut q = FairQueue::new();
        // The light group is enqueued first: the tie at tag 0 still goes to the heavy one.
        for i in 0..4 {
            q.push(&"b", 1, ("b", i));
        }
        for i in 0..6 {
            q.push(&"a", 2, ("a", i));
        }
        let order: String = pop_all(&mut q).iter().map(|(g, _)| *g).collect();
        assert_eq!(order, "abaabaabab");
        assert!(q.is_empty());
    }

    #[test]
    fn equal_groups_take_turns_fifo_inside() {
        let mut q = FairQueue::new();
        for g in ["x", "y", "z"] {
            for i in 0..2 {
                q.push(&g, 1, (g, i));
            }
        }
        assert_eq!(
            pop_all(&mut q),
            [("x", 0), ("y", 0), ("z", 0), ("x", 1), ("y", 1), ("z", 1)]
        );
    }

    #[test]
    fn select_respects_eligibility_and_changes_nothing() {
        let mut q = FairQueue::new();
        q.push(&1u8, 1, 10u32);
        q.push(&2u8, 1, 20u32);
        let mut offered = Vec::new();
        let sel = q.select(|&x| {
            offered.push(x);
            x == 20
        });
        assert_eq!(sel.map(|(_, &x)| x), Some(20));
        assert_eq!(offered, [10, 20], "heads in fair order, each once");
        assert!(q.select(|_| false).is_none());
        assert_eq!(q.len(), 2);
        let (slot, _) = q.select(|&x| x == 20).expect("eligible");
        assert_eq!(q.pop(slot), Some(20));
        assert_eq!(q.pop(slot), None, "the lane is empty");
    }

    #[test]
    fn remove_and_drain() {
        let mut q = FairQueue::new();
        for i in 0..3 {
            q.push(&"a", 1, i);
            q.push(&"b", 1, 10 + i);
        }
        assert_eq!(q.remove_first(|&x| x == 11), Some(11));
        assert_eq!(q.remove_first(|&x| x == 11), None);
        assert_eq!(q.len(), 5);
        assert_eq!(q.backlogged_groups(), 2);
        assert_eq!(q.drain(), [0, 1, 2, 10, 12]);
        assert!(q.is_empty() && q.backlogged_groups() == 0);
        assert!(q.select(|_| true).is_none());
    }

    #[test]
    fn the_weight_holds_until_the_lane_drains() {
        let mut q = FairQueue::new();
        q.push(&"a", 1, "a0");
        for item in ["a1", "a2", "a3"] {
            q.push(&"a", 9, item); // already backlogged: still weight 1
        }
        for item in ["b0", "b1", "b2", "b3"] {
            q.push(&"b", 1, item);
        }
        // (Weight 9 would serve a2 and a3 back to back before b2.)
        assert_eq!(
            pop_all(&mut q),
            ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]
        );
    }
}
