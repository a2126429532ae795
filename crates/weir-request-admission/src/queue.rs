//! `RequestFairQueue`: weighted start-time fair ordering of one provider/model's waiters.
//!
//! Groups (`RequestGroupSpec` keys) are FIFO lanes of `weir-fair`'s [`FairQueue`], the SFQ core
//! shared with task admission: a group that becomes backlogged gets start tag
//! `max(virtual_time, the tag it left with)` (so an idle group cannot bank credit and jump
//! ahead); selection takes the eligible group head with the smallest start tag, then the heavier
//! group, then the group whose head joined the contention first (`weir-fair`'s one tie-break
//! rule); committing advances the group's tag by `TAG_SCALE / weight` (exact `u128` tags, a
//! non-zero step for every `u32` weight). What stays here is this queue's own rule: a selection
//! commits only while the queue is unchanged since it was made.

use weir_contracts::{RequestDomain, RequestResourceKey};
use weir_fair::{FairQueue, GroupSlot};

/// One queued waiter as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuedWaiter {
    /// Waiter id (unique per shard).
    pub id: u64,
    /// Slot of the waiter's pending record in the shard.
    pub slot: u32,
    /// Domain of the waiter's resource (eligibility).
    pub domain: RequestDomain,
}

/// A selection made by [`RequestFairQueue::select_next`]; commit it before the queue changes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestQueueSelection {
    /// The selected waiter.
    pub waiter: QueuedWaiter,
    group: GroupSlot,
    sequence_version: u64,
}

/// Queue totals (no adaptive state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestQueueView {
    /// Queued waiters of the provider/model.
    pub queued_total: usize,
}

/// Weighted fair waiter queue of one provider/model aggregate.
#[derive(Debug, Default)]
pub(crate) struct RequestFairQueue {
    fair: FairQueue<RequestResourceKey, QueuedWaiter>,
    /// Bumped by every change: a selection made before a change is stale.
    sequence_version: u64,
}

impl RequestFairQueue {
    pub fn is_empty(&self) -> bool {
        self.fair.is_empty()
    }

    pub fn view(&self) -> RequestQueueView {
        RequestQueueView {
            queued_total: self.fair.len(),
        }
    }

    /// Appends a waiter to its group (`weight` applies when the group becomes backlogged).
    pub fn enqueue(
        &mut self,
        group_key: &RequestResourceKey,
        weight: u32,
        id: u64,
        slot: u32,
        domain: RequestDomain,
    ) {
        self.fair
            .push(group_key, weight, QueuedWaiter { id, slot, domain });
        self.sequence_version += 1;
    }

    /// The eligible group head that fair order serves next.
    pub fn select_next(
        &self,
        mut is_eligible: impl FnMut(&QueuedWaiter) -> bool,
    ) -> Option<RequestQueueSelection> {
        let (group, waiter) = self.fair.select(|w| is_eligible(w))?;
        Some(RequestQueueSelection {
            waiter: *waiter,
            group,
            sequence_version: self.sequence_version,
        })
    }

    /// Removes the selected waiter; `None` if the queue changed since the selection.
    pub fn commit(&mut self, selection: RequestQueueSelection) -> Option<QueuedWaiter> {
        if selection.sequence_version != self.sequence_version {
            return None;
        }
        if self.fair.head(selection.group).map(|w| w.id) != Some(selection.waiter.id) {
            return None;
        }
        let w = self.fair.pop(selection.group)?;
        self.sequence_version += 1;
        Some(w)
    }

    /// Removes a waiter wherever it is (timeout, cancellation); true if it was queued.
    pub fn remove(&mut self, id: u64) -> bool {
        let removed = self.fair.remove_first(|w| w.id == id).is_some();
        if removed {
            self.sequence_version += 1;
        }
        removed
    }

    /// Removes every waiter (shutdown), in fair order of groups then FIFO.
    pub fn drain(&mut self) -> Vec<QueuedWaiter> {
        self.sequence_version += 1;
        self.fair.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(d: RequestDomain) -> RequestResourceKey {
        RequestResourceKey::new("p", "m", d).unwrap()
    }

    fn pop_all(q: &mut RequestFairQueue) -> Vec<(RequestDomain, u64)> {
        let mut out = Vec::new();
        while let Some(sel) = q.select_next(|_| true) {
            let w = q.commit(sel).unwrap();
            out.push((w.domain, w.id));
        }
        out
    }

    #[test]
    fn weights_two_to_one_oldest_first_on_ties() {
        let mut q = RequestFairQueue::default();
        let chat = key(RequestDomain::Chat);
        let emb = key(RequestDomain::Embedding);
        for i in 0..6 {
            q.enqueue(&chat, 2, i, 0, RequestDomain::Chat);
        }
        for i in 0..6 {
            q.enqueue(&emb, 1, 100 + i, 0, RequestDomain::Embedding);
        }
        let order: Vec<u64> = pop_all(&mut q).into_iter().map(|(_, id)| id).collect();
        assert_eq!(order, vec![0, 100, 1, 2, 101, 3, 4, 102, 5, 103, 104, 105]);
    }

    #[test]
    fn ineligible_groups_are_skipped_and_stale_commit_fails() {
        let mut q = RequestFairQueue::default();
        q.enqueue(&key(RequestDomain::Chat), 1, 1, 0, RequestDomain::Chat);
        q.enqueue(&key(RequestDomain::Image), 1, 2, 0, RequestDomain::Image);
        let sel = q.select_next(|w| w.domain == RequestDomain::Image).unwrap();
        assert_eq!(sel.waiter.id, 2);
        q.enqueue(&key(RequestDomain::Image), 1, 3, 0, RequestDomain::Image);
        assert!(q.commit(sel).is_none(), "queue changed since selection");
        assert!(q.remove(1));
        assert!(!q.remove(1));
        assert_eq!(q.view().queued_total, 2);
        assert_eq!(pop_all(&mut q).len(), 2);
        assert!(q.is_empty());
    }

    #[test]
    fn idle_group_does_not_bank_credit() {
        let mut q = RequestFairQueue::default();
        let chat = key(RequestDomain::Chat);
        let emb = key(RequestDomain::Embedding);
        // emb is served once, then goes idle while chat is served many times.
        q.enqueue(&emb, 1, 1000, 0, RequestDomain::Embedding);
        assert_eq!(pop_all(&mut q), vec![(RequestDomain::Embedding, 1000)]);
        for i in 0..10 {
            q.enqueue(&chat, 1, i, 0, RequestDomain::Chat);
        }
        for _ in 0..5 {
            let s = q.select_next(|_| true).unwrap();
            q.commit(s).unwrap();
        }
        // emb returns: it alternates with chat instead of taking 5 turns in a row.
        for i in 0..3 {
            q.enqueue(&emb, 1, 2000 + i, 0, RequestDomain::Embedding);
        }
        let order: Vec<RequestDomain> = pop_all(&mut q)
            .into_iter()
            .map(|(d, _)| d)
            .take(4)
            .collect();
        assert_eq!(
            order
                .iter()
                .filter(|d| **d == RequestDomain::Embedding)
                .count(),
            2
        );
    }
}
