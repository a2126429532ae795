//! `QueueView`: the queue's incrementally maintained membership and demand facts, lent to policies.
//!
//! The facts are updated on every enqueue / commit / discard, so taking a view is O(1) (a borrow)
//! and a policy never walks queue internals. Head requests are interned into "signatures"
//! (distinct request shapes) with per-signature head counts and weight sums, so a policy asks
//! "which peers' heads want resource r, and with what total weight" in O(signatures), not O(groups).

use crate::hash::PtrIndex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_contracts::{SchedulerResourceKey, SchedulerResourceRequest, TaskGroupKey, TaskGroupSpec};
use weir_fair::hash::FxHashMap;

/// Facts about one group slot (a group with queued work, or an idle group whose tag still matters).
#[derive(Debug, Clone)]
pub(crate) struct GroupFacts {
    /// Most recently enqueued spec of the group (its weight drives ordering).
    pub(crate) spec: Arc<TaskGroupSpec>,
    /// Live queued tasks.
    pub(crate) queued: u32,
    /// Queued tasks per request shape `(sig, count)`, counts > 0 (usually one entry). Demand
    /// is derived from it on read, so a commit adjusts one integer instead of per-resource sums.
    pub(crate) shapes: Vec<(u32, u32)>,
    /// The live head, when the group has queued work.
    pub(crate) head: Option<HeadFacts>,
}

/// The head task of a group, as policies see it.
#[derive(Debug, Clone)]
pub(crate) struct HeadFacts {
    pub(crate) request: Arc<SchedulerResourceRequest>,
    pub(crate) spec: Arc<TaskGroupSpec>,
    pub(crate) sig: u32,
}

/// One distinct request shape among queued tasks.
#[derive(Debug, Clone)]
pub(crate) struct SigFacts {
    pub(crate) request: Arc<SchedulerResourceRequest>,
    /// Queued tasks with this shape (the slot is freed at zero).
    pub(crate) tasks: u32,
    /// Groups whose head has this shape.
    pub(crate) head_groups: u32,
    /// Sum of those heads' group weights.
    pub(crate) head_weight: u64,
}

/// All incremental facts of a queue; `QueueView` borrows this.
#[derive(Debug, Default, Clone)]
pub(crate) struct QueueFacts {
    pub(crate) total: usize,
    pub(crate) version: u64,
    /// Groups with a live head (the sum of every shape's `head_groups`).
    pub(crate) head_groups: u32,
    /// XOR of the slots of groups with a live head: with one such group, its slot.
    pub(crate) head_slots_xor: u64,
    pub(crate) groups: Vec<Option<GroupFacts>>,
    pub(crate) group_index: FxHashMap<TaskGroupKey, u32>,
    /// Address of a group's latest `Arc<TaskGroupSpec>` → slot (hash-free fast path).
    pub(crate) spec_ptr_index: PtrIndex,
    pub(crate) sigs: Vec<Option<SigFacts>>,
    pub(crate) sig_index: FxHashMap<Arc<SchedulerResourceRequest>, u32>,
    pub(crate) free_sigs: Vec<u32>,
    /// The shape the last `intern` returned: a batch of tasks usually shares one request `Arc`,
    /// so most interns are a pointer compare instead of hashing and comparing the request.
    pub(crate) last_sig: u32,
    /// Process-unique id of the owning queue: `(instance, version)` names one queue state.
    /// Kept apart from `version`: read together they were fused into one 16-byte load that
    /// stalled on the 8-byte store of a fresh `version`.
    pub(crate) instance: u64,
}

/// Orders resource keys; a shared `Arc` (the common case: keys cloned from one request) is
/// recognised by address without comparing the text.
#[inline]
pub(crate) fn key_cmp(a: &SchedulerResourceKey, b: &SchedulerResourceKey) -> std::cmp::Ordering {
    if std::ptr::eq(a.as_str(), b.as_str()) {
        std::cmp::Ordering::Equal
    } else {
        a.cmp(b)
    }
}

/// Index of `key` in a key-sorted slice (tiny slices: a linear scan with the address fast path).
#[inline]
pub(crate) fn find_key<T>(
    v: &[(SchedulerResourceKey, T)],
    key: &SchedulerResourceKey,
) -> Result<usize, usize> {
    if v.len() <= 8 {
        for (i, (k, _)) in v.iter().enumerate() {
            match key_cmp(k, key) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Ok(i),
                std::cmp::Ordering::Greater => return Err(i),
            }
        }
        return Err(v.len());
    }
    v.binary_search_by(|(k, _)| key_cmp(k, key))
}

/// The amount `request` asks of `key` (0 when absent).
#[inline]
pub(crate) fn amount_of(request: &SchedulerResourceRequest, key: &SchedulerResourceKey) -> u32 {
    let a = request.amounts();
    find_key(a, key).map_or(0, |i| a[i].1)
}

/// Adds `amount` (signed) to the entry for `key` in a key-sorted vector, dropping zero entries.
pub(crate) fn add_sorted(
    v: &mut Vec<(SchedulerResourceKey, u64)>,
    key: &SchedulerResourceKey,
    delta: i64,
) {
    match find_key(v, key) {
        Ok(i) => {
            let n = v[i].1.saturating_add_signed(delta);
            if n == 0 {
                v.remove(i);
            } else {
                v[i].1 = n;
            }
        }
        Err(i) => {
            if delta > 0 {
                v.insert(i, (key.clone(), delta.unsigned_abs()));
            }
        }
    }
}

impl QueueFacts {
    /// Empty facts with a fresh process-unique instance id.
    pub(crate) fn new() -> Self {
        static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Self::default()
        }
    }

    /// Interns `request`, counting one more queued task with that shape.
    pub(crate) fn intern(&mut self, request: &Arc<SchedulerResourceRequest>) -> u32 {
        // A vacated or reused slot fails the pointer check, so the hint needs no invalidation.
        if let Some(Some(s)) = self.sigs.get_mut(self.last_sig as usize) {
            if Arc::ptr_eq(&s.request, request) {
                s.tasks += 1;
                return self.last_sig;
            }
        }
        if let Some(&id) = self.sig_index.get(request.as_ref()) {
            if let Some(Some(s)) = self.sigs.get_mut(id as usize) {
                s.tasks += 1;
            }
            self.last_sig = id;
            return id;
        }
        let facts = SigFacts {
            request: request.clone(),
            tasks: 1,
            head_groups: 0,
            head_weight: 0,
        };
        let id = match self.free_sigs.pop() {
            Some(id) => {
                self.sigs[id as usize] = Some(facts);
                id
            }
            None => {
                self.sigs.push(Some(facts));
                (self.sigs.len() - 1) as u32
            }
        };
        self.sig_index.insert(request.clone(), id);
        self.last_sig = id;
        id
    }

    /// One fewer queued task with shape `sig`; frees the shape at zero.
    pub(crate) fn release_sig(&mut self, sig: u32) {
        let Some(slot) = self.sigs.get_mut(sig as usize) else {
            return;
        };
        let Some(s) = slot.as_mut() else { return };
        s.tasks = s.tasks.saturating_sub(1);
        if s.tasks == 0 {
            if let Some(s) = slot.take() {
                self.sig_index.remove(s.request.as_ref());
            }
            self.free_sigs.push(sig);
        }
    }

    /// Counts one more (`add`) or one fewer queued task of shape `sig` in group `slot`.
    /// (The global per-shape count is kept by `intern` / `release_sig`.)
    #[inline]
    pub(crate) fn count_shape(&mut self, slot: u32, sig: u32, add: bool) {
        let Some(Some(g)) = self.groups.get_mut(slot as usize) else {
            return;
        };
        match g.shapes.iter().position(|(s, _)| *s == sig) {
            Some(i) if add => g.shapes[i].1 += 1,
            Some(i) => {
                g.shapes[i].1 -= 1;
                if g.shapes[i].1 == 0 {
                    g.shapes.swap_remove(i);
                }
            }
            None if add => g.shapes.push((sig, 1)),
            None => {}
        }
    }

    /// Demand by resource of `count` tasks per shape in `shapes` (sorted by key, non-zero).
    fn demand_of(
        &self,
        shapes: impl Iterator<Item = (u32, u32)>,
    ) -> Vec<(SchedulerResourceKey, u64)> {
        let mut out = Vec::new();
        for (sig, count) in shapes {
            if let Some(Some(s)) = self.sigs.get(sig as usize) {
                for (k, a) in s.request.amounts() {
                    let delta = i64::try_from(u64::from(*a) * u64::from(count)).unwrap_or(i64::MAX);
                    add_sorted(&mut out, k, delta);
                }
            }
        }
        out
    }
}

/// Read-only, O(1)-to-take view of a queue's membership and demand facts (policy input).
///
/// Borrowed from the queue: it cannot outlive a mutation, so it is always consistent.
#[derive(Debug, Clone, Copy)]
pub struct QueueView<'a> {
    pub(crate) facts: &'a QueueFacts,
}

/// One group with queued work, as seen through a [`QueueView`].
#[derive(Debug, Clone, Copy)]
pub struct QueueGroupView<'a> {
    queue: &'a QueueFacts,
    facts: &'a GroupFacts,
    head: &'a HeadFacts,
}

impl<'a> QueueGroupView<'a> {
    /// The group key.
    pub fn key(&self) -> &'a TaskGroupKey {
        &self.facts.spec.key
    }

    /// The group's most recently enqueued spec (its weight drives queue order).
    pub fn spec(&self) -> &'a TaskGroupSpec {
        &self.facts.spec
    }

    /// Live queued tasks in the group (> 0).
    pub fn queued(&self) -> u32 {
        self.facts.queued
    }

    /// Queued demand by resource (sorted by key, non-zero). Computed from per-shape counts:
    /// O(shapes · resources) of the group.
    pub fn demand(&self) -> Vec<(SchedulerResourceKey, u64)> {
        self.queue.demand_of(self.facts.shapes.iter().copied())
    }

    /// The head (first candidate) task's resource request.
    pub fn head_request(&self) -> &'a SchedulerResourceRequest {
        &self.head.request
    }

    /// The head task's own group spec.
    pub fn head_spec(&self) -> &'a TaskGroupSpec {
        &self.head.spec
    }

    pub(crate) fn head_sig(&self) -> u32 {
        self.head.sig
    }
}

/// One distinct head request shape: how many groups' heads have it and their weight sum.
#[derive(Debug, Clone, Copy)]
pub struct HeadSignature<'a> {
    /// The request shape.
    pub request: &'a SchedulerResourceRequest,
    /// Groups whose head has exactly this request.
    pub groups: u32,
    /// Sum of those heads' group weights.
    pub weight: u64,
    pub(crate) id: u32,
}

impl<'a> QueueView<'a> {
    /// Live queued tasks.
    pub fn queued_total(&self) -> usize {
        self.facts.total
    }

    /// Groups with a queued head (O(1); equals [`Self::group_count`]).
    pub fn head_group_count(&self) -> u32 {
        self.facts.head_groups
    }

    /// The only group with a queued head, when exactly one has (O(1)).
    pub fn sole_group(&self) -> Option<QueueGroupView<'a>> {
        if self.facts.head_groups != 1 {
            return None;
        }
        let g = self
            .facts
            .groups
            .get(usize::try_from(self.facts.head_slots_xor).ok()?)?
            .as_ref()?;
        let head = g.head.as_ref()?;
        Some(QueueGroupView {
            queue: self.facts,
            facts: g,
            head,
        })
    }

    /// Groups with queued work.
    pub fn group_count(&self) -> usize {
        self.groups().count()
    }

    /// Mutation counter of the queue (diagnostic; commit staleness is per group, see the crate docs).
    pub fn version(&self) -> u64 {
        self.facts.version
    }

    /// Groups with queued work, in slot order (deterministic for a given history).
    pub fn groups(&self) -> impl Iterator<Item = QueueGroupView<'a>> + 'a {
        self.facts.groups.iter().filter_map(|g| {
            let g = g.as_ref()?;
            let head = g.head.as_ref()?;
            Some(QueueGroupView {
                queue: self.facts,
                facts: g,
                head,
            })
        })
    }

    /// The group `key`, if it has queued work.
    pub fn group(&self, key: &TaskGroupKey) -> Option<QueueGroupView<'a>> {
        let slot = *self.facts.group_index.get(key)?;
        let g = self.facts.groups.get(slot as usize)?.as_ref()?;
        let head = g.head.as_ref()?;
        Some(QueueGroupView {
            queue: self.facts,
            facts: g,
            head,
        })
    }

    /// The group of `spec` (pointer fast path when the queue holds that same `Arc`, else by key).
    pub fn group_of_spec(&self, spec: &TaskGroupSpec) -> Option<QueueGroupView<'a>> {
        let addr = spec as *const TaskGroupSpec as usize as u64;
        if let Some(&slot) = self.facts.spec_ptr_index.get(&addr) {
            if let Some(Some(g)) = self.facts.groups.get(slot as usize) {
                if std::ptr::eq(Arc::as_ptr(&g.spec), spec) {
                    let head = g.head.as_ref()?;
                    return Some(QueueGroupView {
                        queue: self.facts,
                        facts: g,
                        head,
                    });
                }
            }
        }
        self.group(&spec.key)
    }

    /// Queued count of `key` (0 when absent).
    pub fn queued_in_group(&self, key: &TaskGroupKey) -> u32 {
        self.group(key).map_or(0, |g| g.queued())
    }

    /// Summed queued demand for `resource` over every queued task (all groups): O(shapes).
    pub fn peer_demand(&self, resource: &SchedulerResourceKey) -> u64 {
        self.facts
            .sigs
            .iter()
            .flatten()
            .map(|s| u64::from(amount_of(&s.request, resource)) * u64::from(s.tasks))
            .sum()
    }

    /// Summed queued demand by resource over every queued task (sorted by key, non-zero).
    pub fn peer_demand_by_resource(&self) -> Vec<(SchedulerResourceKey, u64)> {
        let shapes = self
            .facts
            .sigs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u32, s.tasks)));
        self.facts.demand_of(shapes)
    }

    /// Distinct head request shapes with their head-group counts and weight sums.
    pub fn head_signatures(&self) -> impl Iterator<Item = HeadSignature<'a>> + 'a {
        self.facts.sigs.iter().enumerate().filter_map(|(i, s)| {
            let s = s.as_ref()?;
            (s.head_groups > 0).then_some(HeadSignature {
                request: &s.request,
                groups: s.head_groups,
                weight: s.head_weight,
                id: i as u32,
            })
        })
    }

    /// An owned, serializable copy of the view (O(groups · resources); for diagnostics only).
    pub fn to_snapshot(&self) -> QueueViewSnapshot {
        let mut s = QueueViewSnapshot {
            queued_total: self.facts.total,
            ..QueueViewSnapshot::default()
        };
        for g in self.groups() {
            let label = g.key().label();
            s.queued_by_group.insert(label.clone(), g.queued());
            s.queued_resource_demand_by_group.insert(
                label.clone(),
                g.demand()
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
            );
            s.first_candidate_resources_by_group.insert(
                label,
                g.head_request()
                    .amounts()
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
            );
        }
        s.queued_peer_demand_by_resource = self
            .peer_demand_by_resource()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        s
    }
}

/// Owned, JSON-ready copy of a [`QueueView`] (group keys rendered as their labels).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueViewSnapshot {
    /// Live queued tasks.
    pub queued_total: usize,
    /// Queued tasks per group label.
    pub queued_by_group: BTreeMap<String, u32>,
    /// Queued demand per group label and resource.
    pub queued_resource_demand_by_group: BTreeMap<String, BTreeMap<String, u64>>,
    /// Head request per group label.
    pub first_candidate_resources_by_group: BTreeMap<String, BTreeMap<String, u32>>,
    /// Queued demand per resource over all groups.
    pub queued_peer_demand_by_resource: BTreeMap<String, u64>,
}
