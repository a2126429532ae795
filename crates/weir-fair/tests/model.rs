//! `FairQueue` against a plain reference model of the documented rule, over random operations.
//!
//! The model is the rule as the crate docs state it, written the obvious way (a scan over every
//! group per pick, a `u64` activation counter, no tournament, no sweeps): any difference in what
//! the queue hands out is a bug in one of them.

use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use weir_fair::{FairOrder, FairQueue, TAG_SCALE};

#[derive(Debug, Clone)]
enum Op {
    /// Push the next item into group `g` with weight `w`.
    Push(u8, u32),
    /// Pop the first head, in fair order, whose group is not masked out by `mask`.
    Pop(u8),
    /// Remove the `n`-th live item (modulo the live count), without serving it.
    Remove(usize),
    /// Remove everything.
    Drain,
}

fn weight() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..5, Just(u32::MAX), Just(7), Just(1_000_003)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..5u8, weight()).prop_map(|(g, w)| Op::Push(g, w)),
        6 => any::<u8>().prop_map(Op::Pop),
        2 => any::<usize>().prop_map(Op::Remove),
        1 => Just(Op::Drain),
    ]
}

#[derive(Debug, Default)]
struct Group {
    tag: u128,
    fin: u128,
    act: u64,
    weight: u32,
    items: VecDeque<u32>,
}

#[derive(Debug, Default)]
struct Model {
    vt: u128,
    max_idle: u128,
    next_act: u64,
    groups: BTreeMap<u8, Group>,
}

fn step(w: u32) -> u128 {
    TAG_SCALE / u128::from(w.max(1))
}

impl Model {
    fn push(&mut self, g: u8, w: u32, item: u32) {
        let vt = self.vt;
        let act = self.next_act;
        let grp = self.groups.entry(g).or_insert_with(|| Group {
            tag: vt,
            fin: vt,
            ..Group::default()
        });
        if grp.items.is_empty() {
            grp.weight = w.max(1);
            grp.tag = vt.max(grp.tag);
            grp.fin = grp.tag.saturating_add(step(grp.weight));
            grp.act = act;
            self.next_act += 1;
        }
        grp.items.push_back(item);
    }

    fn key(g: &Group) -> (u128, Reverse<u32>, u64) {
        (g.tag, Reverse(g.weight), g.act)
    }

    /// Backlogged groups in fair order.
    fn fair_order(&self) -> Vec<u8> {
        let mut v: Vec<(_, u8)> = self
            .groups
            .iter()
            .filter(|(_, g)| !g.items.is_empty())
            .map(|(k, g)| (Self::key(g), *k))
            .collect();
        v.sort();
        v.into_iter().map(|(_, k)| k).collect()
    }

    fn go_idle(&mut self, g: u8, tag: u128) {
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.tag = tag;
        }
        self.max_idle = self.max_idle.max(tag);
        if self.groups.values().all(|g| g.items.is_empty()) {
            self.vt = self.vt.max(self.max_idle);
        }
    }

    fn pop(&mut self, mask: u8) -> Option<u32> {
        let g = self
            .fair_order()
            .into_iter()
            .find(|g| mask & (1 << g) == 0)?;
        let act = self.next_act;
        let grp = self.groups.get_mut(&g)?;
        let item = grp.items.pop_front()?;
        self.vt = self.vt.max(grp.tag);
        if grp.items.is_empty() {
            let fin = grp.fin;
            self.go_idle(g, fin);
        } else {
            grp.tag = grp.fin;
            grp.fin = grp.fin.saturating_add(step(grp.weight));
            grp.act = act;
            self.next_act += 1;
        }
        Some(item)
    }

    fn remove(&mut self, item: u32) -> bool {
        let Some((&g, grp)) = self
            .groups
            .iter_mut()
            .find(|(_, grp)| grp.items.contains(&item))
        else {
            return false;
        };
        grp.items.retain(|&i| i != item);
        if grp.items.is_empty() {
            let tag = grp.tag;
            self.go_idle(g, tag);
        }
        true
    }

    fn drain(&mut self) -> Vec<u32> {
        let mut out = Vec::new();
        for g in self.fair_order() {
            let Some(grp) = self.groups.get_mut(&g) else {
                continue;
            };
            out.extend(grp.items.drain(..));
            let tag = grp.tag;
            self.go_idle(g, tag);
        }
        out
    }

    fn live(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .groups
            .values()
            .flat_map(|g| g.items.iter().copied())
            .collect();
        v.sort_unstable();
        v
    }
}

/// `PROPTEST_CASES` when set (CI and developers scale the search), else this test's default.
fn cases_or(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases_or(500), ..ProptestConfig::default() })]

    #[test]
    fn fair_queue_hands_out_what_the_rule_says(ops in prop::collection::vec(op(), 1..120)) {
        let mut q: FairQueue<u8, (u8, u32)> = FairQueue::new();
        let mut m = Model::default();
        let mut next = 0u32;
        for op in &ops {
            match *op {
                Op::Push(g, w) => {
                    q.push(&g, w, (g, next));
                    m.push(g, w, next);
                    next += 1;
                }
                Op::Pop(mask) => {
                    let got = q
                        .select(|&(g, _)| mask & (1 << g) == 0)
                        .map(|(slot, _)| slot)
                        .and_then(|slot| q.pop(slot))
                        .map(|(_, i)| i);
                    prop_assert_eq!(got, m.pop(mask));
                }
                Op::Remove(n) => {
                    let live = m.live();
                    if !live.is_empty() {
                        let item = live[n % live.len()];
                        prop_assert!(m.remove(item));
                        prop_assert_eq!(q.remove_first(|&(_, i)| i == item).map(|(_, i)| i), Some(item));
                    }
                }
                Op::Drain => {
                    let got: Vec<u32> = q.drain().into_iter().map(|(_, i)| i).collect();
                    prop_assert_eq!(got, m.drain());
                }
            }
            prop_assert_eq!(q.len(), m.live().len());
            prop_assert_eq!(q.is_empty(), m.live().is_empty());
        }
        let got: Vec<u32> = q.drain().into_iter().map(|(_, i)| i).collect();
        prop_assert_eq!(got, m.drain());
    }

    #[test]
    fn backlogged_groups_get_their_weighted_share_and_returners_bank_nothing(
        weights in prop::collection::vec(prop_oneof![1u32..6, Just(u32::MAX)], 2..6),
        picks in 50usize..400,
        away in 0usize..4,
    ) {
        // Every group but `away` (when it is one) stays backlogged; `away` leaves after its
        // first pick and returns halfway.
        let away = (away < weights.len()).then_some(away as u32);
        let mut o = FairOrder::new();
        for (s, &w) in weights.iter().enumerate() {
            o.track(s as u32);
            o.activate(s as u32, w);
        }
        let mut counts = vec![0u64; weights.len()];
        let mut returned = false;
        for k in 0..picks {
            if !returned && k == picks / 2 {
                if let Some(a) = away {
                    if !o.is_backlogged(a) {
                        let left_with = o.tag(a).expect("tracked");
                        o.activate(a, weights[a as usize]);
                        // No credit for the time away: it starts no earlier than virtual time.
                        prop_assert_eq!(o.tag(a), Some(o.virtual_time().max(left_with)));
                        returned = true;
                    }
                }
            }
            let s = o.first().expect("some group is backlogged");
            // Fair order serves the smallest start tag.
            for t in o.iter() {
                prop_assert!(o.tag(t) >= o.tag(s));
            }
            counts[s as usize] += 1;
            let leaves = Some(s) == away && !returned;
            o.serve(s, weights[s as usize], !leaves);
        }
        // Groups backlogged throughout: each one's picks stay within a few picks of its share
        // of the picks made while they all were (a fluid-model lag bound of SFQ).
        let steady: Vec<usize> = (0..weights.len()).filter(|&i| Some(i as u32) != away).collect();
        let steady_total: u64 = steady.iter().map(|&i| counts[i]).sum();
        let weight_total: f64 = steady.iter().map(|&i| f64::from(weights[i])).sum();
        for &i in &steady {
            let share = steady_total as f64 * f64::from(weights[i]) / weight_total;
            prop_assert!(
                (counts[i] as f64 - share).abs() <= weights.len() as f64 + 1.0 + share * 1e-9,
                "group {} (weight {}): {} picks vs share {:.2} ({:?})", i, weights[i], counts[i], share, counts
            );
        }
    }
}
