//! `FairOrder`: start-time fair queueing over caller-numbered group slots, without the items.
//!
//! The state machine of SFQ with exact integer virtual time `vt`:
//!
//! - a group that becomes backlogged ([`FairOrder::activate`]) takes start tag
//!   `S = max(vt, F)`, where `F` is the tag it left with (a new group left with `vt`);
//! - the backlogged group with the smallest [`FairKey`] is served next;
//! - serving it ([`FairOrder::serve`]) sets `vt = max(vt, S)` and its next start tag to
//!   `F = S + TAG_SCALE / weight`; a group that drains leaves with `F`;
//! - a group emptied without being served ([`FairOrder::withdraw`]) leaves with its `S`;
//! - when no group is backlogged any more (the end of a busy period), `vt` rises to every tag an
//!   idle group holds, so every group starts the next busy period on equal footing.
//!
//! Idle groups keep their tag for reuse, up to a bound past which the ones whose tag no longer
//! matters (`≤ vt`: they would restart at `vt` anyway) are forgotten; the slots forgotten are
//! handed back to the caller, which frees whatever it keeps per slot.

use crate::tag::{start_tag, tag_step, FairKey};
use crate::tournament::{Tournament, TournamentIter};

/// Idle groups kept before a sweep forgets those whose tag no longer matters.
const IDLE_GROUP_BOUND: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    /// No group lives in this slot.
    Untracked,
    /// Tracked, with no queued work: `tag` is the tag it left with.
    Idle,
    /// Queued work: `tag` is the head's start tag, `fin` its finish tag.
    Backlogged,
}

#[derive(Debug, Clone, Copy)]
struct GroupTags {
    /// Start tag while backlogged, the tag it left with while idle.
    tag: u128,
    /// Finish tag of the head while backlogged (`tag + TAG_SCALE / weight`): the next start tag.
    fin: u128,
    /// Activation sequence (the last tie-break) while backlogged.
    act: u32,
    membership: Membership,
}

const UNTRACKED: GroupTags = GroupTags {
    tag: 0,
    fin: 0,
    act: 0,
    membership: Membership::Untracked,
};

/// Slots forgotten by an idle sweep; the caller frees what it keeps for each (usually empty:
/// building it allocates nothing then).
pub type Forgotten = Vec<u32>;

/// Start-time fair order over group slots; see the module docs.
///
/// Slots are the caller's numbering (dense indices into its own per-group arrays): it
/// [`track`](Self::track)s a slot for a new group, reports each change of the group's backlog,
/// and frees its own state for every slot a sweep returns.
#[derive(Debug, Clone)]
pub struct FairOrder {
    groups: Vec<GroupTags>,
    order: Tournament,
    vt: u128,
    /// The largest tag an idle group holds (the end-of-busy-period rise of `vt`).
    max_idle_tag: u128,
    backlogged: usize,
    idle: usize,
    sweep_at: usize,
    /// Next activation sequence; renumbered before it would pass `u32::MAX` (only the order of
    /// backlogged groups' sequences matters), so a key's tie-break fits in 64 bits.
    next_act: u32,
}

impl Default for FairOrder {
    fn default() -> Self {
        Self::new()
    }
}

impl FairOrder {
    /// An empty order at virtual time 0.
    pub fn new() -> Self {
        Self {
            groups: Vec::new(),
            order: Tournament::default(),
            vt: 0,
            max_idle_tag: 0,
            backlogged: 0,
            idle: 0,
            sweep_at: IDLE_GROUP_BOUND,
            next_act: 0,
        }
    }

    /// The current virtual time.
    pub fn virtual_time(&self) -> u128 {
        self.vt
    }

    /// Groups with queued work.
    pub fn backlogged(&self) -> usize {
        self.backlogged
    }

    /// True when `slot` holds a group with queued work.
    #[inline]
    pub fn is_backlogged(&self, slot: u32) -> bool {
        self.groups
            .get(slot as usize)
            .is_some_and(|g| g.membership == Membership::Backlogged)
    }

    /// `slot`'s start tag while backlogged, or the tag it left with while idle.
    pub fn tag(&self, slot: u32) -> Option<u128> {
        self.groups
            .get(slot as usize)
            .filter(|g| g.membership != Membership::Untracked)
            .map(|g| g.tag)
    }

    /// Starts tracking a new, idle group in `slot` (it left with the current virtual time).
    pub fn track(&mut self, slot: u32) {
        let i = slot as usize;
        if i >= self.groups.len() {
            self.groups.resize(i + 1, UNTRACKED);
        }
        let g = &mut self.groups[i];
        match g.membership {
            Membership::Backlogged => return,
            Membership::Idle => {}
            Membership::Untracked => self.idle += 1,
        }
        *g = GroupTags {
            tag: self.vt,
            fin: self.vt,
            act: 0,
            membership: Membership::Idle,
        };
    }

    /// The backlogged group served next (the smallest [`FairKey`]).
    #[inline]
    pub fn first(&self) -> Option<u32> {
        self.order.first()
    }

    /// Backlogged groups in fair order, expanded lazily (cheap for the first few).
    pub fn iter(&self) -> FairOrderIter<'_> {
        FairOrderIter {
            inner: self.order.iter(),
        }
    }

    /// `slot`'s group became backlogged (weight `weight`): it takes start tag
    /// `max(vt, tag it left with)`. No-op unless the group is tracked and idle.
    pub fn activate(&mut self, slot: u32, weight: u32) {
        if !self
            .groups
            .get(slot as usize)
            .is_some_and(|g| g.membership == Membership::Idle)
        {
            return;
        }
        let act = self.take_act();
        let vt = self.vt;
        let g = &mut self.groups[slot as usize];
        let tag = start_tag(vt, g.tag);
        g.tag = tag;
        g.fin = tag.saturating_add(tag_step(weight));
        g.act = act;
        g.membership = Membership::Backlogged;
        self.idle = self.idle.saturating_sub(1);
        self.backlogged += 1;
        self.order.set(slot, FairKey::new(tag, weight, act));
    }

    /// `slot`'s head was served: `vt = max(vt, S)`; the group's next start tag is the head's
    /// finish tag. `still_backlogged`: the group has more work (else it goes idle with that
    /// finish tag); `weight` is the weight its next head's finish tag is computed with.
    #[inline]
    pub fn serve(&mut self, slot: u32, weight: u32, still_backlogged: bool) -> Forgotten {
        let Some(&GroupTags {
            tag,
            fin,
            membership: Membership::Backlogged,
            ..
        }) = self.groups.get(slot as usize)
        else {
            return Forgotten::new();
        };
        self.vt = self.vt.max(tag);
        if still_backlogged {
            let act = self.take_act();
            let g = &mut self.groups[slot as usize];
            g.tag = fin;
            g.fin = fin.saturating_add(tag_step(weight));
            g.act = act;
            self.order.set(slot, FairKey::new(fin, weight, act));
            Forgotten::new()
        } else {
            self.go_idle(slot, fin)
        }
    }

    /// `slot`'s group lost all its work without being served (discarded, timed out): it leaves
    /// with its start tag, as if it had never been backlogged since.
    pub fn withdraw(&mut self, slot: u32) -> Forgotten {
        match self.groups.get(slot as usize) {
            Some(&GroupTags {
                tag,
                membership: Membership::Backlogged,
                ..
            }) => self.go_idle(slot, tag),
            _ => Forgotten::new(),
        }
    }

    fn go_idle(&mut self, slot: u32, tag: u128) -> Forgotten {
        self.order.remove(slot);
        let g = &mut self.groups[slot as usize];
        g.tag = tag;
        g.membership = Membership::Idle;
        self.backlogged = self.backlogged.saturating_sub(1);
        self.max_idle_tag = self.max_idle_tag.max(tag);
        self.idle += 1;
        let forgotten = if self.idle > self.sweep_at {
            self.sweep_idle()
        } else {
            Forgotten::new()
        };
        if self.backlogged == 0 {
            // End of the busy period: every idle tag is now ≤ vt, so every group restarts at
            // the same tag (standard SFQ: an idle system forgets its tags).
            self.vt = self.vt.max(self.max_idle_tag);
        }
        forgotten
    }

    /// Forgets idle groups whose tag no longer matters (`≤ vt`). The next sweep waits until idle
    /// groups double, so sweeps stay amortized O(1) even when most idle tags still matter.
    fn sweep_idle(&mut self) -> Forgotten {
        let vt = self.vt;
        let mut forgotten = Forgotten::new();
        for (i, g) in self.groups.iter_mut().enumerate() {
            if g.membership == Membership::Idle && g.tag <= vt {
                *g = UNTRACKED;
                forgotten.push(i as u32);
            }
        }
        self.idle = self.idle.saturating_sub(forgotten.len());
        self.sweep_at = IDLE_GROUP_BOUND.max(2 * self.idle);
        forgotten
    }

    /// A fresh activation sequence, larger than every backlogged group's.
    #[inline]
    fn take_act(&mut self) -> u32 {
        if self.next_act == u32::MAX {
            self.renumber_acts();
        }
        let act = self.next_act;
        self.next_act += 1;
        act
    }

    /// Renumbers backlogged groups' activation sequences `0..n` in their current order (keys
    /// keep their relative order, so the winner cannot change). Runs once per ~4e9 activations.
    fn renumber_acts(&mut self) {
        let mut backlogged: Vec<(u32, u32)> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.membership == Membership::Backlogged)
            .map(|(i, g)| (g.act, i as u32))
            .collect();
        backlogged.sort_unstable();
        for (n, &(_, slot)) in backlogged.iter().enumerate() {
            let n = n as u32;
            if let Some(key) = self.order.key(slot) {
                self.groups[slot as usize].act = n;
                self.order.set(slot, key.with_activation(n));
            }
        }
        self.next_act = backlogged.len() as u32;
    }

    /// Test hook: starts the activation counter at `next` (to exercise renumbering).
    #[cfg(test)]
    pub(crate) fn set_next_act(&mut self, next: u32) {
        self.next_act = next;
    }

    /// Test hook: the activation counter.
    #[cfg(test)]
    pub(crate) fn next_act(&self) -> u32 {
        self.next_act
    }
}

/// Backlogged group slots in fair order (see [`FairOrder::iter`]).
#[derive(Debug)]
pub struct FairOrderIter<'a> {
    inner: TournamentIter<'a>,
}

impl Iterator for FairOrderIter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        self.inner.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag::TAG_SCALE;

    /// Serves the first backlogged group `n` times (every group stays backlogged).
    fn serve_n(o: &mut FairOrder, weights: &[u32], n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                let s = o.first().expect("backlogged");
                o.serve(s, weights[s as usize], true);
                s
            })
            .collect()
    }

    #[test]
    fn first_pick_goes_to_the_heavier_group_then_weights_share() {
        let weights = [1, 2];
        let mut o = FairOrder::new();
        for s in 0..2 {
            o.track(s);
            o.activate(s, weights[s as usize]);
        }
        assert_eq!(serve_n(&mut o, &weights, 9), [1, 0, 1, 1, 0, 1, 1, 0, 1]);
    }

    #[test]
    fn tags_advance_by_scale_over_weight() {
        let mut o = FairOrder::new();
        o.track(0);
        o.activate(0, 4);
        assert_eq!(o.tag(0), Some(0));
        o.serve(0, 4, true);
        assert_eq!(o.tag(0), Some(TAG_SCALE / 4));
        assert_eq!(o.virtual_time(), 0, "vt is the served start tag");
        o.serve(0, 4, true);
        assert_eq!(o.virtual_time(), TAG_SCALE / 4);
        // The weight passed at serve time prices the next head (a weight change takes effect
        // from the group's next pick on).
        o.serve(0, 1, true);
        assert_eq!(o.tag(0), Some(3 * TAG_SCALE / 4));
        o.serve(0, 1, false);
        assert_eq!(
            o.tag(0),
            Some(3 * TAG_SCALE / 4 + TAG_SCALE),
            "left with its finish tag"
        );
        assert_eq!(
            o.virtual_time(),
            3 * TAG_SCALE / 4 + TAG_SCALE,
            "busy period over"
        );
    }

    #[test]
    fn weight_extremes_1_and_u32_max() {
        let weights = [1, u32::MAX];
        let mut o = FairOrder::new();
        for s in 0..2 {
            o.track(s);
            o.activate(s, weights[s as usize]);
        }
        // The heavy group wins the tie, then is served until its tag passes the light one's
        // (u32::MAX picks fit in one weight-1 step; we check a long prefix).
        let order = serve_n(&mut o, &weights, 10_000);
        assert_eq!(order[0], 1);
        assert_eq!(order[1], 0, "weight 1 starts at 0 and is served second");
        assert!(order[2..].iter().all(|&s| s == 1));
        assert_eq!(o.tag(1), Some(9_999 * tag_step(u32::MAX)));
    }

    #[test]
    fn an_idle_group_cannot_bank_credit() {
        let weights = [1, 1];
        let mut o = FairOrder::new();
        o.track(0);
        o.track(1);
        o.activate(0, 1);
        o.activate(1, 1);
        // Group 1 leaves after one pick; group 0 is served on alone for a long time.
        assert_eq!(serve_n(&mut o, &weights, 2), [0, 1]);
        o.withdraw(1);
        for _ in 0..100 {
            let s = o.first().expect("group 0");
            assert_eq!(s, 0);
            o.serve(0, 1, true);
        }
        // Back again: it starts at vt, level with group 0, not 100 picks behind it.
        o.activate(1, 1);
        assert_eq!(o.tag(1), Some(o.virtual_time()));
        let order = serve_n(&mut o, &weights, 6);
        assert_eq!(order.iter().filter(|&&s| s == 1).count(), 3, "{order:?}");
    }

    #[test]
    fn withdrawn_group_returns_with_its_start_tag_and_a_busy_period_end_levels_all() {
        let mut o = FairOrder::new();
        for s in 0..3 {
            o.track(s);
            o.activate(s, 1);
        }
        o.serve(0, 1, true);
        o.serve(1, 1, false); // leaves with finish tag TAG_SCALE
        o.withdraw(2); // never served: leaves with start tag 0
        assert_eq!(o.tag(1), Some(TAG_SCALE));
        assert_eq!(o.tag(2), Some(0));
        o.activate(2, 1);
        assert_eq!(o.tag(2), Some(0), "vt is still 0");
        o.withdraw(2);
        o.serve(0, 1, false); // group 0 leaves at 2·SCALE: the busy period ends
        assert_eq!(o.backlogged(), 0);
        assert_eq!(
            o.virtual_time(),
            2 * TAG_SCALE,
            "vt rose to the largest idle tag"
        );
        for s in 0..3 {
            o.activate(s, 1);
            assert_eq!(o.tag(s), Some(2 * TAG_SCALE));
        }
    }

    #[test]
    fn idle_groups_are_forgotten_past_the_bound_only_when_their_tag_no_longer_matters() {
        let mut o = FairOrder::new();
        o.track(0);
        o.activate(0, 1);
        let mut forgotten = 0;
        for s in 1..=(IDLE_GROUP_BOUND as u32 + 10) {
            o.track(s);
            o.activate(s, 1);
            // Two picks per new group: its own (it starts at vt) and group 0's, which moves vt
            // past the tags earlier visitors left with.
            for _ in 0..2 {
                let f = o.first().expect("backlogged");
                forgotten += o.serve(f, 1, f == 0).len();
            }
        }
        assert!(forgotten > 0, "a sweep ran");
        let tracked = (0..=(IDLE_GROUP_BOUND as u32 + 10))
            .filter(|&s| o.tag(s).is_some())
            .count();
        assert!(tracked <= IDLE_GROUP_BOUND + 1, "tracked {tracked}");
        assert!(o.is_backlogged(0));
    }

    #[test]
    fn activation_renumbering_preserves_the_order() {
        // Moved here from weir-task-admission's queue (the counter now lives in FairOrder):
        // groups join and drain at different times, so activations interleave.
        let run = |start_act: u32| {
            let mut o = FairOrder::new();
            o.set_next_act(start_act);
            let mut queued = [0u32; 5];
            let mut order = Vec::new();
            for round in 0..40u32 {
                for k in 0..(round % 4 + 1) {
                    let s = (round + k) % 5;
                    if queued[s as usize] == 0 {
                        o.track(s);
                        o.activate(s, s % 3 + 1);
                    }
                    queued[s as usize] += 1;
                }
                for _ in 0..(round % 3 + 1) {
                    if let Some(s) = o.first() {
                        queued[s as usize] -= 1;
                        o.serve(s, s % 3 + 1, queued[s as usize] > 0);
                        order.push(s);
                    }
                }
            }
            while let Some(s) = o.first() {
                queued[s as usize] -= 1;
                o.serve(s, s % 3 + 1, queued[s as usize] > 0);
                order.push(s);
            }
            (order, o.next_act())
        };
        let (plain, _) = run(0);
        let (renumbered, next_act) = run(u32::MAX - 3);
        assert!(next_act < 1_000, "the counter was renumbered");
        assert_eq!(plain, renumbered);
    }
}
