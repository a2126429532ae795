//! `RequestFairQueue`: weighted start-time fair ordering of one provider/model's waiters.
//!
//! Groups (`RequestGroupSpec` keys) are FIFO deques. A group that becomes backlogged gets start
//! tag `max(virtual_time, last_finish)` (so an idle group cannot bank credit and jump ahead);
//! selection takes the eligible group head with the smallest `(start_tag, enqueue_seq)` —
//! weighted order, oldest first on ties; committing advances the group's tag by `1/weight`.
//! Tags are fixed-point `u128` (scale 2^64), so every `u32` weight gets a non-zero step.

use std::collections::VecDeque;
use weir_contracts::{RequestDomain, RequestResourceKey};

const TAG_SCALE: u128 = 1 << 64;

/// One queued waiter as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuedWaiter {
    /// Waiter id (unique per shard).
    pub id: u64,
    /// Slot of the waiter's pending record in the shard.
    pub slot: u32,
    /// Enqueue order (ties).
    pub seq: u64,
    /// Domain of the waiter's resource (eligibility).
    pub domain: RequestDomain,
}

#[derive(Debug)]
struct GroupQueue {
    key: RequestResourceKey,
    weight: u32,
    waiters: VecDeque<QueuedWaiter>,
    /// Start tag of the head while backlogged.
    start_tag: u128,
    /// Finish tag of the last committed waiter.
    last_finish: u128,
}

/// A selection made by [`RequestFairQueue::select_next`]; commit it before the queue changes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestQueueSelection {
    /// The selected waiter.
    pub waiter: QueuedWaiter,
    group: usize,
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
    groups: Vec<GroupQueue>,
    virtual_time: u128,
    next_seq: u64,
    sequence_version: u64,
    len: usize,
}

impl RequestFairQueue {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn view(&self) -> RequestQueueView {
        RequestQueueView {
            queued_total: self.len,
        }
    }

    /// Appends a waiter to its group; returns its enqueue sequence.
    pub fn enqueue(
        &mut self,
        group_key: &RequestResourceKey,
        weight: u32,
        id: u64,
        slot: u32,
        domain: RequestDomain,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let gi = match self.groups.iter().position(|g| &g.key == group_key) {
            Some(i) => i,
            None => {
                self.groups.push(GroupQueue {
                    key: group_key.clone(),
                    weight: weight.max(1),
                    waiters: VecDeque::new(),
                    start_tag: 0,
                    last_finish: 0,
                });
                self.groups.len() - 1
            }
        };
        let vt = self.virtual_time;
        let g = &mut self.groups[gi];
        if g.waiters.is_empty() {
            g.weight = weight.max(1);
            g.start_tag = vt.max(g.last_finish);
        }
        g.waiters.push_back(QueuedWaiter {
            id,
            slot,
            seq,
            domain,
        });
        self.len += 1;
        self.sequence_version += 1;
        seq
    }

    /// The eligible group head that fair order serves next.
    pub fn select_next(
        &self,
        mut is_eligible: impl FnMut(&QueuedWaiter) -> bool,
    ) -> Option<RequestQueueSelection> {
        let mut best: Option<(u128, u64, usize, QueuedWaiter)> = None;
        for (gi, g) in self.groups.iter().enumerate() {
            let Some(head) = g.waiters.front() else {
                continue;
            };
            if best
                .as_ref()
                .is_some_and(|(tag, seq, _, _)| (g.start_tag, head.seq) >= (*tag, *seq))
            {
                continue;
            }
            if is_eligible(head) {
                best = Some((g.start_tag, head.seq, gi, *head));
            }
        }
        best.map(|(_, _, group, waiter)| RequestQueueSelection {
            waiter,
            group,
            sequence_version: self.sequence_version,
        })
    }

    /// Removes the selected waiter; `None` if the queue changed since the selection.
    pub fn commit(&mut self, selection: RequestQueueSelection) -> Option<QueuedWaiter> {
        if selection.sequence_version != self.sequence_version {
            return None;
        }
        let g = self.groups.get_mut(selection.group)?;
        if g.waiters.front().map(|w| w.id) != Some(selection.waiter.id) {
            return None;
        }
        let w = g.waiters.pop_front()?;
        self.virtual_time = self.virtual_time.max(g.start_tag);
        g.last_finish = g.start_tag + TAG_SCALE / u128::from(g.weight);
        g.start_tag = g.last_finish;
        self.len -= 1;
        self.sequence_version += 1;
        Some(w)
    }

    /// Removes a waiter wherever it is (timeout, cancellation); true if it was queued.
    pub fn remove(&mut self, id: u64) -> bool {
        for g in &mut self.groups {
            if let Some(pos) = g.waiters.iter().position(|w| w.id == id) {
                g.waiters.remove(pos);
                self.len -= 1;
                self.sequence_version += 1;
                return true;
            }
        }
        false
    }

    /// Removes every waiter (shutdown), in fair order of groups then FIFO.
    pub fn drain(&mut self) -> Vec<QueuedWaiter> {
        let mut out = Vec::with_capacity(self.len);
        for g in &mut self.groups {
            out.extend(g.waiters.drain(..));
        }
        self.len = 0;
        self.sequence_version += 1;
        out
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
