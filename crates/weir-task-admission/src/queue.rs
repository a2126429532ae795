//! `FairTaskQueue`: ready-work membership and weighted start-time fair ordering across task groups.
//!
//! Ordering: start-time fair queueing (SFQ) over groups with exact integer virtual time, FIFO
//! inside a group, by `weir-fair`'s [`FairOrder`] (the one SFQ core shared with request
//! admission). A group with queued work has a start tag `S`; the queue serves the group with
//! the smallest `(S, −weight, activation_seq)` — `weir-fair`'s one tie-break rule (so among
//! equal start tags the heavier group goes first; weights 2:1 give `a b a a b a a b …`);
//! `F = S + SCALE / weight` is the head's finish tag. Committing a group's head sets
//! `vt = max(vt, S)` and the group's next start tag to `F`. A group that becomes active takes
//! `S = max(vt, F)` where `F` is the finish tag it left with (standard SFQ). Idle groups keep
//! their lane and tag for reuse, up to a bound past which the ones whose tag no longer matters
//! (`F ≤ vt`) are freed; when the queue empties, `vt` rises to every idle tag, so all groups
//! start again on equal footing.
//!
//! Staleness is per group: a [`SelectionToken`] names the selected entry's unique sequence
//! number, and `commit` succeeds exactly when that entry is still its group's head. Enqueues,
//! commits and discards elsewhere do not invalidate it.

use crate::queue_view::{GroupFacts, HeadFacts, QueueFacts, QueueView};
use crate::task::SchedulableTask;
use std::collections::VecDeque;
use std::sync::Arc;
use weir_contracts::{TaskGroupSpec, TaskId};
use weir_fair::hash::{fx_hash_one, FxHashMap};
use weir_fair::{FairOrder, Forgotten};

/// Identifies one selected queue entry; `commit` accepts it only while that entry is still its
/// group's head (the per-group staleness rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SelectionToken {
    slot: u32,
    entry_seq: u64,
}

/// What `select_next` returns: the candidate, the exact view the predicate saw, and the token.
#[derive(Debug, Clone, Copy)]
pub struct QueueSelection<'a, P> {
    /// The selected head task.
    pub item: &'a SchedulableTask<P>,
    /// The view every predicate call of this pass received.
    pub queue_view: QueueView<'a>,
    /// Opaque staleness token to pass to [`FairTaskQueue::commit`].
    pub sequence_version: SelectionToken,
}

impl<P> QueueSelection<'_, P> {
    /// The token to commit with (copy it out before calling `commit`, which needs `&mut` queue).
    pub fn token(&self) -> SelectionToken {
        self.sequence_version
    }
}

#[derive(Debug)]
struct Entry<P> {
    seq: u64,
    sig: u32,
    task: Option<SchedulableTask<P>>,
}

#[derive(Debug)]
struct Lane<P> {
    /// FIFO of entries; the front is always live (tombstones are popped when they surface).
    /// The lane's tags live in the queue's [`FairOrder`], under the same slot.
    entries: VecDeque<Entry<P>>,
    tombstones: usize,
}

/// Weighted fair ready queue over task groups; FIFO within a group. See the module docs.
///
/// A `&mut self` API: the scheduler calls it from its dispatch critical section (wrap it in a
/// `Mutex` to share it). `select_next` takes `&self`, so it cannot change anything.
#[derive(Debug)]
pub struct FairTaskQueue<P> {
    facts: QueueFacts,
    lanes: Vec<Option<Lane<P>>>,
    free_slots: Vec<u32>,
    /// Membership index: 64-bit hash of a task id → its entry `(slot, seq)`. Lazy: `commit`
    /// leaves the entry behind (a *stale* entry, recognisable because `seq` is no longer live),
    /// so the dispatch hot path never hashes or compares a task id. Stale entries are swept when
    /// the table is about to grow (amortized into inserts) and dropped wholesale when the queue
    /// empties.
    index: FxHashMap<u64, (u32, u64)>,
    /// Live ids whose hash collides with a different live id in `index` (exact, rarely used).
    overflow: FxHashMap<TaskId, (u32, u64)>,
    /// Stale entries in `index`.
    stale: usize,
    /// Start-time fair order of the slots (tags, virtual time, the tie-break rule). Idle groups'
    /// lanes are kept (with their tags) so a group that drains and refills costs no key
    /// hashing, until the order forgets them (bounded; it hands back the slots to free).
    fair: FairOrder,
    next_entry: u64,
}

impl<P> Default for FairTaskQueue<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// The 64-bit hash a task id is indexed under.
fn real_id_hash(task_id: &TaskId) -> u64 {
    fx_hash_one(task_id)
}

#[cfg(not(test))]
fn id_hash(task_id: &TaskId) -> u64 {
    real_id_hash(task_id)
}

impl<P> FairTaskQueue<P> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            facts: QueueFacts::new(),
            lanes: Vec::new(),
            free_slots: Vec::new(),
            index: FxHashMap::default(),
            overflow: FxHashMap::default(),
            stale: 0,
            fair: FairOrder::new(),
            next_entry: 1,
        }
    }

    /// Live queued tasks.
    pub fn len(&self) -> usize {
        self.facts.total
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.facts.total == 0
    }

    /// True when `task_id` is queued.
    pub fn contains(&self, task_id: &TaskId) -> bool {
        self.locate(task_id, id_hash(task_id)).is_some()
    }

    /// The queued task `task_id`, if any.
    pub fn get(&self, task_id: &TaskId) -> Option<&SchedulableTask<P>> {
        let (slot, seq) = self.locate(task_id, id_hash(task_id))?;
        self.live_task(slot, seq)
    }

    /// Ids held by the membership index: live ones plus committed ones awaiting a sweep
    /// (diagnostic; bounded by a small multiple of the peak live count).
    pub fn indexed_ids(&self) -> usize {
        self.index.len() + self.overflow.len()
    }

    /// The O(1) borrowed view of membership and demand facts.
    pub fn view(&self) -> QueueView<'_> {
        QueueView { facts: &self.facts }
    }

    /// Group slots currently held: groups with queued work plus idle lanes kept for reuse
    /// (bounded; see the module docs).
    pub fn tracked_groups(&self) -> usize {
        self.lanes.iter().filter(|l| l.is_some()).count()
    }

    /// Adds ready tasks; returns the ids accepted, in input order. Idempotent by task id: an id
    /// already queued (or repeated in `items`) is skipped.
    pub fn enqueue(&mut self, items: impl IntoIterator<Item = SchedulableTask<P>>) -> Vec<TaskId> {
        let mut accepted = Vec::new();
        for task in items {
            let hash = id_hash(&task.task_id);
            if self.locate(&task.task_id, hash).is_some() {
                continue;
            }
            let slot = self.group_slot(&task.group);
            let sig = self.facts.intern(&task.resource_request);
            let seq = self.next_entry;
            self.next_entry += 1;
            self.facts.total += 1;
            self.facts.count_shape(slot, sig, true);
            let id = task.task_id.clone();
            self.index_insert(hash, &id, (slot, seq));
            let became_active = !self.fair.is_backlogged(slot);
            {
                let (g, lane) = self.slot_mut(slot);
                g.queued += 1;
                lane.entries.push_back(Entry {
                    seq,
                    sig,
                    task: Some(task),
                });
            }
            if became_active {
                self.activate(slot);
            }
            accepted.push(id);
        }
        if !accepted.is_empty() {
            self.facts.version += 1;
        }
        accepted
    }

    /// Offers each active group's head, in fair order, to `is_eligible` (always with the same
    /// view) and returns the first accepted one. Changes nothing.
    #[inline(always)]
    pub fn select_next<F>(&self, mut is_eligible: F) -> Option<QueueSelection<'_, P>>
    where
        F: FnMut(&SchedulableTask<P>, &QueueView<'_>) -> bool,
    {
        let view = self.view();
        // Fast path: the fair-order minimum is one load; the in-order walk is for rejections.
        let first = self.fair.first()?;
        if let Some(sel) = self.offer(first, view, &mut is_eligible) {
            return Some(sel);
        }
        self.fair
            .iter()
            .skip(1)
            .find_map(|slot| self.offer(slot, view, &mut is_eligible))
    }

    /// `slot`'s head as a selection, when `is_eligible` accepts it.
    #[inline(always)]
    fn offer<'a, F>(
        &'a self,
        slot: u32,
        view: QueueView<'a>,
        is_eligible: &mut F,
    ) -> Option<QueueSelection<'a, P>>
    where
        F: FnMut(&SchedulableTask<P>, &QueueView<'_>) -> bool,
    {
        let entry = self.lanes.get(slot as usize)?.as_ref()?.entries.front()?;
        let task = entry.task.as_ref()?;
        is_eligible(task, &view).then_some(QueueSelection {
            item: task,
            queue_view: view,
            sequence_version: SelectionToken {
                slot,
                entry_seq: entry.seq,
            },
        })
    }

    /// Removes and returns the selected task, advancing fair-queue state; `None` (and no change)
    /// when the selection is stale, i.e. its entry is no longer its group's head.
    #[inline]
    pub fn commit(&mut self, token: SelectionToken) -> Option<SchedulableTask<P>> {
        let lane = self.lanes.get(token.slot as usize)?.as_ref()?;
        if lane.entries.front()?.seq != token.entry_seq {
            return None;
        }
        let slot = token.slot;
        let (weight, entry) = {
            let (g, lane) = self.slot_mut(slot);
            let entry = lane.entries.pop_front();
            g.queued = g.queued.saturating_sub(1);
            Self::pop_tombstones(lane);
            (g.spec.weight, entry)
        };
        // Usually the new head has the same request shape and spec (a FIFO of alike tasks): the
        // head facts then already describe it and need no recount.
        let head_unchanged = self.head_unchanged(slot);
        if !head_unchanged {
            self.clear_head(slot);
        }
        let entry = entry?;
        let task = entry.task?;
        // The index entry goes stale (swept later) unless the id lives in the overflow map.
        if self.overflow.is_empty() || self.overflow.remove(&task.task_id).is_none() {
            self.stale += 1;
        }
        self.facts.total = self.facts.total.saturating_sub(1);
        self.facts.count_shape(slot, entry.sig, false);
        self.facts.release_sig(entry.sig);
        if self.queued(slot) > 0 {
            // Still backlogged: nothing is forgotten.
            self.fair.serve(slot, weight, true);
            if !head_unchanged {
                self.set_head(slot);
            }
        } else {
            self.go_idle(slot);
            let forgotten = self.fair.serve(slot, weight, false);
            self.free_groups(forgotten);
        }
        self.after_removal();
        Some(task)
    }

    /// Removes `task_id` from the queue (no-op for unknown ids); returns the removed task.
    pub fn discard(&mut self, task_id: &TaskId) -> Option<SchedulableTask<P>> {
        let hash = id_hash(task_id);
        let (slot, seq) = self.locate(task_id, hash)?;
        if self.index.get(&hash) == Some(&(slot, seq)) {
            self.index.remove(&hash);
        } else {
            self.overflow.remove(task_id);
        }
        let was_head = {
            let lane = self.lanes.get(slot as usize)?.as_ref()?;
            lane.entries.front().map(|e| e.seq) == Some(seq)
        };
        if was_head {
            self.clear_head(slot);
        }
        let (sig, task, now_empty) = {
            let (g, lane) = self.slot_mut(slot);
            let i = lane
                .entries
                .binary_search_by_key(&seq, |e| e.seq)
                .expect("invariant: indexed task has an entry in its lane");
            let sig = lane.entries[i].sig;
            let task = lane.entries[i].task.take();
            lane.tombstones += 1;
            g.queued = g.queued.saturating_sub(1);
            Self::pop_tombstones(lane);
            if g.queued == 0 {
                lane.entries.clear();
                lane.tombstones = 0;
            } else if lane.tombstones > 16 && lane.tombstones * 2 > lane.entries.len() {
                // Compaction keeps memory within 2x live entries.
                lane.entries.retain(|e| e.task.is_some());
                lane.tombstones = 0;
            }
            (sig, task, g.queued == 0)
        };
        let task = task?;
        self.facts.total = self.facts.total.saturating_sub(1);
        self.facts.count_shape(slot, sig, false);
        self.facts.release_sig(sig);
        if now_empty {
            self.go_idle(slot);
            // The group was not served: it keeps its start tag as the tag it returns with.
            let forgotten = self.fair.withdraw(slot);
            self.free_groups(forgotten);
        } else if was_head {
            self.set_head(slot);
        }
        self.after_removal();
        Some(task)
    }

    /// Removes every queued task matching `pred`; returns them (FIFO per group, groups in slot order).
    pub fn discard_where(
        &mut self,
        mut pred: impl FnMut(&SchedulableTask<P>) -> bool,
    ) -> Vec<SchedulableTask<P>> {
        let ids: Vec<TaskId> = self
            .lanes
            .iter()
            .flatten()
            .flat_map(|l| l.entries.iter())
            .filter_map(|e| e.task.as_ref())
            .filter(|t| pred(t))
            .map(|t| t.task_id.clone())
            .collect();
        ids.iter().filter_map(|id| self.discard(id)).collect()
    }

    // ---- internals ------------------------------------------------------------------------

    /// The live task at `(slot, seq)`, if that entry is still queued.
    fn live_task(&self, slot: u32, seq: u64) -> Option<&SchedulableTask<P>> {
        let lane = self.lanes.get(slot as usize)?.as_ref()?;
        if lane.entries.front()?.seq > seq {
            // The front is always live and sequence numbers grow along a lane: gone already.
            return None;
        }
        let i = lane.entries.binary_search_by_key(&seq, |e| e.seq).ok()?;
        lane.entries[i].task.as_ref()
    }

    /// Where `task_id` (whose hash is `hash`) is queued, if it is.
    fn locate(&self, task_id: &TaskId, hash: u64) -> Option<(u32, u64)> {
        if let Some(&(slot, seq)) = self.index.get(&hash) {
            if self
                .live_task(slot, seq)
                .is_some_and(|t| t.task_id == *task_id)
            {
                return Some((slot, seq));
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get(task_id).copied()
    }

    /// Records a new live entry for `id` (known not to be queued).
    fn index_insert(&mut self, hash: u64, id: &TaskId, at: (u32, u64)) {
        match self.index.get(&hash).copied() {
            Some((slot, seq)) if self.live_task(slot, seq).is_some() => {
                // A different live id has the same 64-bit hash: keep this one exactly.
                self.overflow.insert(id.clone(), at);
            }
            Some(_) => {
                // Reuse the stale entry.
                self.stale = self.stale.saturating_sub(1);
                self.index.insert(hash, at);
            }
            None => {
                if self.index.len() == self.index.capacity() && self.stale * 4 >= self.index.len() {
                    // About to grow with at least a quarter of the entries stale: reclaim them
                    // instead. Sweeps are paid for by inserts, so a commit never walks the table.
                    self.sweep_index();
                }
                self.index.insert(hash, at);
            }
        }
    }

    /// Drops every stale index entry (called when the table would otherwise grow: amortized
    /// O(1) per insert, and the table stays within ~2.7 × the peak live task count).
    fn sweep_index(&mut self) {
        // An index entry is live exactly when its entry has not left the front of its lane:
        // commits pop the front, and `discard` removes its index entry eagerly, so an entry at
        // or behind the front is never a tombstone. Sequence numbers are global and increasing,
        // so an entry of a freed (and reused) slot is older than the new lane's front. The check
        // touches only the lane header, never the entries (no cache miss per index entry).
        let fronts: Vec<u64> = self
            .lanes
            .iter()
            .map(|l| {
                l.as_ref()
                    .and_then(|lane| lane.entries.front())
                    .map_or(u64::MAX, |f| f.seq)
            })
            .collect();
        self.index.retain(|_, &mut (slot, seq)| {
            fronts.get(slot as usize).is_some_and(|&front| front <= seq)
        });
        self.stale = 0;
        // Shrink only a table far above live work: a rehash (and the old table's unmap) on
        // every sweep would cost more than walking the spare buckets.
        let live = 2 * self.facts.total + 1024;
        if self.index.capacity() > 16 * live {
            self.index.shrink_to(live);
        }
    }

    fn queued(&self, slot: u32) -> u32 {
        self.facts
            .groups
            .get(slot as usize)
            .and_then(|g| g.as_ref())
            .map_or(0, |g| g.queued)
    }

    fn slot_mut(&mut self, slot: u32) -> (&mut GroupFacts, &mut Lane<P>) {
        let g = self.facts.groups[slot as usize]
            .as_mut()
            .expect("invariant: live slot has facts");
        let lane = self.lanes[slot as usize]
            .as_mut()
            .expect("invariant: live slot has a lane");
        (g, lane)
    }

    fn pop_tombstones(lane: &mut Lane<P>) {
        while lane.entries.front().is_some_and(|e| e.task.is_none()) {
            lane.entries.pop_front();
            lane.tombstones = lane.tombstones.saturating_sub(1);
        }
    }

    /// The slot of `spec`'s group, created when new; records `spec` as the group's latest spec.
    fn group_slot(&mut self, spec: &Arc<TaskGroupSpec>) -> u32 {
        // Hash-free fast path: the caller reuses the group's current `Arc`.
        if let Some(&slot) = self
            .facts
            .spec_ptr_index
            .get(&(Arc::as_ptr(spec) as usize as u64))
        {
            if let Some(Some(g)) = self.facts.groups.get(slot as usize) {
                if Arc::ptr_eq(&g.spec, spec) {
                    return slot;
                }
            }
        }
        if let Some(&slot) = self.facts.group_index.get(&spec.key) {
            if let Some(Some(g)) = self.facts.groups.get_mut(slot as usize) {
                if !Arc::ptr_eq(&g.spec, spec) {
                    let old = std::mem::replace(&mut g.spec, spec.clone());
                    self.facts
                        .spec_ptr_index
                        .remove(&(Arc::as_ptr(&old) as usize as u64));
                    self.facts
                        .spec_ptr_index
                        .insert(Arc::as_ptr(spec) as usize as u64, slot);
                }
            }
            return slot;
        }
        let facts = GroupFacts {
            spec: spec.clone(),
            queued: 0,
            shapes: Vec::new(),
            head: None,
        };
        let lane = Lane {
            entries: VecDeque::new(),
            tombstones: 0,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.facts.groups[s as usize] = Some(facts);
                self.lanes[s as usize] = Some(lane);
                s
            }
            None => {
                self.facts.groups.push(Some(facts));
                self.lanes.push(Some(lane));
                (self.lanes.len() - 1) as u32
            }
        };
        self.facts.group_index.insert(spec.key.clone(), slot);
        self.facts
            .spec_ptr_index
            .insert(Arc::as_ptr(spec) as usize as u64, slot);
        // A new lane is idle (at the current virtual time) until its first task activates it.
        self.fair.track(slot);
        slot
    }

    fn activate(&mut self, slot: u32) {
        let weight = self.slot_mut(slot).0.spec.weight;
        self.fair.activate(slot, weight);
        self.set_head(slot);
    }

    /// The lane-side half of a group going idle (the fair order's half is `serve`/`withdraw`).
    fn go_idle(&mut self, slot: u32) {
        let (g, lane) = self.slot_mut(slot);
        g.head = None;
        if lane.entries.capacity() > 64 {
            // An idle lane keeps its tag, not a drained backlog's buffer.
            lane.entries = VecDeque::new();
        }
    }

    /// Frees the groups the fair order forgot (idle, tag no longer mattering).
    fn free_groups(&mut self, forgotten: Forgotten) {
        for slot in forgotten {
            self.free_group(slot);
        }
    }

    fn free_group(&mut self, slot: u32) {
        if let Some(g) = self.facts.groups[slot as usize].take() {
            self.facts.group_index.remove(&g.spec.key);
            self.facts
                .spec_ptr_index
                .remove(&(Arc::as_ptr(&g.spec) as usize as u64));
        }
        self.lanes[slot as usize] = None;
        self.free_slots.push(slot);
    }

    /// Bumps the version; when the queue is empty, drops the index (the fair order has put
    /// every group back on equal footing: standard SFQ, an idle system forgets its tags).
    fn after_removal(&mut self) {
        self.facts.version += 1;
        if self.facts.total == 0 {
            // Every index entry is stale now; `clear` keeps the capacity for the next batch.
            self.index.clear();
            self.overflow.clear();
            self.stale = 0;
        }
    }

    fn clear_head(&mut self, slot: u32) {
        let Some(Some(g)) = self.facts.groups.get_mut(slot as usize) else {
            return;
        };
        if let Some(h) = g.head.take() {
            if let Some(Some(s)) = self.facts.sigs.get_mut(h.sig as usize) {
                s.head_groups = s.head_groups.saturating_sub(1);
                self.facts.head_groups = self.facts.head_groups.saturating_sub(1);
                self.facts.head_slots_xor ^= u64::from(slot);
                s.head_weight = s.head_weight.saturating_sub(u64::from(h.spec.weight));
            }
        }
    }

    /// True when the recorded head facts already describe the lane's live front: same interned
    /// request shape and same spec (the common case of a FIFO of alike tasks), so the per-shape
    /// head counts need no update.
    fn head_unchanged(&self, slot: u32) -> bool {
        let Some(Some(lane)) = self.lanes.get(slot as usize) else {
            return false;
        };
        let Some((sig, task)) = lane
            .entries
            .front()
            .and_then(|e| Some((e.sig, e.task.as_ref()?)))
        else {
            return false;
        };
        self.facts
            .groups
            .get(slot as usize)
            .and_then(|g| g.as_ref())
            .and_then(|g| g.head.as_ref())
            .is_some_and(|h| h.sig == sig && Arc::ptr_eq(&h.spec, &task.group))
    }

    fn set_head(&mut self, slot: u32) {
        let Some(Some(lane)) = self.lanes.get(slot as usize) else {
            self.clear_head(slot);
            return;
        };
        if lane.entries.front().and_then(|e| e.task.as_ref()).is_none() {
            self.clear_head(slot);
            return;
        }
        if self.head_unchanged(slot) {
            return;
        }
        self.clear_head(slot);
        let Some(Some(lane)) = self.lanes.get(slot as usize) else {
            return;
        };
        let Some(entry) = lane.entries.front() else {
            return;
        };
        let Some(task) = entry.task.as_ref() else {
            return;
        };
        let head = HeadFacts {
            request: task.resource_request.clone(),
            spec: task.group.clone(),
            sig: entry.sig,
        };
        if let Some(Some(s)) = self.facts.sigs.get_mut(entry.sig as usize) {
            s.head_groups += 1;
            self.facts.head_groups += 1;
            self.facts.head_slots_xor ^= u64::from(slot);
            s.head_weight += u64::from(head.spec.weight);
        }
        if let Some(Some(g)) = self.facts.groups.get_mut(slot as usize) {
            g.head = Some(head);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Test hook: `Some(n)` folds every id hash into `n` buckets, forcing 64-bit collisions.
    static HASH_BUCKETS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
fn id_hash(task_id: &TaskId) -> u64 {
    let h = real_id_hash(task_id);
    HASH_BUCKETS.with(|b| b.get()).map_or(h, |n| h % n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use weir_contracts::{SchedulerResourceRequest, SchedulingKind, TaskGroupKey};

    /// Membership stays exact when ids collide on the full 64-bit hash (the overflow map and
    /// stale-entry reuse paths), checked against a plain set over a scripted op sequence.
    #[test]
    fn membership_is_exact_under_forced_hash_collisions() {
        for buckets in [1u64, 3, 17] {
            HASH_BUCKETS.with(|b| b.set(Some(buckets)));
            let spec = |n: &str| {
                let key = TaskGroupKey::new(SchedulingKind::Local, vec![n.into()]);
                Arc::new(TaskGroupSpec::new(key, 1, None).expect("valid"))
            };
            let (a, b) = (spec("a"), spec("b"));
            let r = Arc::new(SchedulerResourceRequest::submission());
            let mut q: FairTaskQueue<()> = FairTaskQueue::new();
            let mut model = BTreeSet::new();
            let mk = |i: u64, g: &Arc<TaskGroupSpec>| {
                SchedulableTask::new(TaskId::new(format!("t{i}")), (), g.clone(), r.clone())
            };
            // A deterministic LCG drives enqueue / commit / discard.
            let mut x: u64 = 0x9E37_79B9 ^ buckets;
            for _ in 0..4_000 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let i = (x >> 33) % 300;
                match (x >> 20) % 4 {
                    0 | 1 => {
                        let g = if i.is_multiple_of(2) { &a } else { &b };
                        let accepted = q.enqueue([mk(i, g), mk(i, g)]);
                        assert_eq!(accepted.len(), usize::from(model.insert(i)));
                    }
                    2 => {
                        if let Some(tok) = q.select_next(|_, _| true).map(|s| s.token()) {
                            let t = q.commit(tok).expect("fresh selection");
                            let n: u64 = t.task_id.as_str()[1..].parse().expect("numeric id");
                            assert!(model.remove(&n));
                        }
                    }
                    _ => {
                        let id = TaskId::new(format!("t{i}"));
                        assert_eq!(q.discard(&id).is_some(), model.remove(&i));
                    }
                }
                assert_eq!(q.len(), model.len());
                let probe = TaskId::new(format!("t{i}"));
                assert_eq!(q.contains(&probe), model.contains(&i));
                assert_eq!(q.get(&probe).is_some(), model.contains(&i));
            }
            for i in 0..300u64 {
                assert_eq!(
                    q.contains(&TaskId::new(format!("t{i}"))),
                    model.contains(&i)
                );
            }
            HASH_BUCKETS.with(|b| b.set(None));
        }
    }
}
