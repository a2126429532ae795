//! The queue/admission scenario: the dispatch cycle `select_next → try_acquire → commit → release`
//! over tasks × groups × resource mixes, with p50/p95 cycle cost and a phase breakdown.
//!
//! The `submission_only` mix reuses `weir-micro`'s own workload ([`crate::task_admission::CycleBench`],
//! model groups with admitted limit 64, bounded borrow); the other mixes build the same kind of
//! workload with other group kinds and resource requests. Cost is timed per batch of
//! [`BATCH`] cycles (so the clock read does not dominate) and the p50/p95 are over batches.

use crate::task_admission::CycleBench;
use serde::Serialize;
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use weir_contracts::{
    SchedulerResourceKey, SchedulerResourceRequest, SchedulingKind, TaskGroupKey, TaskGroupSpec,
    TaskId,
};
use weir_task_admission::{
    BoundedBorrowTaskAdmissionPolicyConfig, FairTaskQueue, SchedulableTask, TaskAdmissionConfig,
    TaskAdmissionController, TaskAdmissionDecision, TaskAdmissionLease,
};

/// Cycles per timed batch.
pub const BATCH: usize = 64;
/// Leases held in flight (each cycle releases the oldest once more are held).
pub const IN_FLIGHT: usize = 32;
/// Submission capacity of the benchmarked controller.
pub const CAPACITY: u32 = 1024;
/// Limit of each named resource in the resource-bound mixes.
pub const RESOURCE_LIMIT: u32 = 16;
/// Named resources in the resource-bound mixes (group `g` uses resource `g % 4`).
pub const RESOURCES: usize = 4;

/// Resource mixes of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceMix {
    /// weir-micro's workload: model groups (admitted limit 64), `submission` only.
    SubmissionOnly,
    /// Local groups (no admitted limit), `submission` only.
    LocalOnly,
    /// Model groups, each task also holds one unit of a named resource with limit 16.
    ResourceBound,
    /// Even groups local-only, odd groups resource-bound.
    Mixed,
}

impl ResourceMix {
    /// Every mix.
    pub const ALL: [Self; 4] = [
        Self::SubmissionOnly,
        Self::LocalOnly,
        Self::ResourceBound,
        Self::Mixed,
    ];

    /// Snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubmissionOnly => "submission_only",
            Self::LocalOnly => "local_only",
            Self::ResourceBound => "resource_bound",
            Self::Mixed => "mixed",
        }
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct QueueMixRow {
    /// Resource mix.
    pub mix: ResourceMix,
    /// Tasks enqueued per drain.
    pub tasks: usize,
    /// Groups the tasks are spread over.
    pub groups: usize,
    /// Drains measured.
    pub drains: usize,
    /// Median ns per dispatch cycle (over batches).
    pub cycle_ns_p50: f64,
    /// 95th percentile ns per dispatch cycle (over batches).
    pub cycle_ns_p95: f64,
    /// Bulk enqueue ns per task (median over drains).
    pub enqueue_ns_per_task: f64,
    /// Instrumented phase medians in ns (each phase timed on its own; clock cost included).
    pub phase_ns_p50: PhaseBreakdown,
    /// Process CPU seconds spent on this row.
    pub cpu_seconds: Option<f64>,
}

/// Median ns per phase of the cycle.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseBreakdown {
    /// `select_next`.
    pub select: f64,
    /// `try_acquire`.
    pub acquire: f64,
    /// `commit`.
    pub commit: f64,
    /// `release`.
    pub release: f64,
}

/// A workload whose groups and requests follow one mix.
struct MixBench {
    template: Vec<SchedulableTask<u64>>,
    queue: FairTaskQueue<u64>,
    admission: TaskAdmissionController,
    held: VecDeque<TaskAdmissionLease>,
}

impl MixBench {
    fn new(mix: ResourceMix, tasks: usize, groups: usize) -> Self {
        let groups = groups.max(1);
        let resources: Vec<SchedulerResourceKey> = (0..RESOURCES)
            .map(|r| {
                SchedulerResourceKey::new(&format!("res-{r}"))
                    .expect("invariant: constant resource names are valid")
            })
            .collect();
        let mut specs = Vec::with_capacity(groups);
        let mut requests = Vec::with_capacity(groups);
        for g in 0..groups {
            let bound = match mix {
                ResourceMix::SubmissionOnly | ResourceMix::LocalOnly => false,
                ResourceMix::ResourceBound => true,
                ResourceMix::Mixed => g % 2 == 1,
            };
            let local =
                matches!(mix, ResourceMix::LocalOnly) || (mix == ResourceMix::Mixed && !bound);
            let (kind, limit) = if local {
                (SchedulingKind::Local, None)
            } else {
                (SchedulingKind::Model, Some(64))
            };
            let key = TaskGroupKey::new(kind, vec!["bench".into(), format!("group-{g}")]);
            specs.push(Arc::new(
                TaskGroupSpec::new(key, (g % 4) as u32 + 1, limit)
                    .expect("invariant: benchmark specs are valid"),
            ));
            requests.push(Arc::new(if bound {
                SchedulerResourceRequest::new([
                    (SchedulerResourceKey::submission(), 1),
                    (resources[g % RESOURCES].clone(), 1),
                ])
                .expect("invariant: distinct keys, positive amounts")
            } else {
                SchedulerResourceRequest::submission()
            }));
        }
        let template = (0..tasks)
            .map(|i| {
                SchedulableTask::new(
                    TaskId::new(format!("task-{i:016x}")),
                    i as u64,
                    specs[i % groups].clone(),
                    requests[i % groups].clone(),
                )
            })
            .collect();
        let mut config = TaskAdmissionConfig::with_submission_capacity(CAPACITY)
            .with_bounded_borrow(BoundedBorrowTaskAdmissionPolicyConfig::default());
        for r in &resources {
            config = config.with_limit(r.clone(), RESOURCE_LIMIT);
        }
        Self {
            template,
            queue: FairTaskQueue::new(),
            admission: TaskAdmissionController::new(config)
                .expect("invariant: benchmark config is valid"),
            held: VecDeque::with_capacity(IN_FLIGHT + 1),
        }
    }

    fn refill(&mut self) {
        self.queue.enqueue(self.template.iter().cloned());
    }

    /// One dispatch (releasing held leases until something is admissible); false when drained.
    fn cycle(&mut self) -> bool {
        loop {
            if self.queue.is_empty() {
                return false;
            }
            let admission = &mut self.admission;
            if let Some(sel) = self.queue.select_next(|t, v| admission.is_eligible(t, v)) {
                let TaskAdmissionDecision::Lease(lease) =
                    admission.try_acquire(sel.item, &sel.queue_view)
                else {
                    return false;
                };
                let token = sel.token();
                if self.queue.commit(token).is_none() {
                    admission.release(&lease);
                    return false;
                }
                self.held.push_back(lease);
                if self.held.len() > IN_FLIGHT {
                    if let Some(old) = self.held.pop_front() {
                        black_box(admission.release(&old));
                    }
                }
                return true;
            }
            // Nothing admissible: free the oldest lease (a worker finishing) and try again.
            match self.held.pop_front() {
                Some(old) => {
                    self.admission.release(&old);
                }
                None => return false,
            }
        }
    }

    /// One dispatch with each phase timed separately; false when drained.
    fn cycle_phased(&mut self, out: &mut [Vec<f64>; 4]) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let admission = &mut self.admission;
        let t0 = Instant::now();
        let sel = self.queue.select_next(|t, v| admission.is_eligible(t, v));
        let t1 = Instant::now();
        let Some(sel) = sel else {
            return match self.held.pop_front() {
                Some(old) => {
                    admission.release(&old);
                    true
                }
                None => false,
            };
        };
        let decision = admission.try_acquire(sel.item, &sel.queue_view);
        let t2 = Instant::now();
        let TaskAdmissionDecision::Lease(lease) = decision else {
            return false;
        };
        let token = sel.token();
        let t3 = Instant::now();
        let committed = self.queue.commit(token);
        let t4 = Instant::now();
        if committed.is_none() {
            admission.release(&lease);
            return false;
        }
        self.held.push_back(lease);
        out[0].push((t1 - t0).as_nanos() as f64);
        out[1].push((t2 - t1).as_nanos() as f64);
        out[2].push((t4 - t3).as_nanos() as f64);
        if self.held.len() > IN_FLIGHT {
            if let Some(old) = self.held.pop_front() {
                let t5 = Instant::now();
                black_box(admission.release(&old));
                out[3].push(t5.elapsed().as_nanos() as f64);
            }
        }
        true
    }

    fn release_all(&mut self) {
        while let Some(l) = self.held.pop_front() {
            self.admission.release(&l);
        }
    }
}

/// Times `cycle` in batches until it returns false; pushes ns per cycle of each full batch.
fn drain_batched(mut cycle: impl FnMut() -> bool, out: &mut Vec<f64>) -> usize {
    let mut done = 0;
    loop {
        let start = Instant::now();
        let mut n = 0;
        while n < BATCH && cycle() {
            n += 1;
        }
        let elapsed = start.elapsed().as_nanos() as f64;
        done += n;
        if n == BATCH {
            out.push(elapsed / BATCH as f64);
        } else {
            if n > 0 && out.is_empty() {
                out.push(elapsed / n as f64);
            }
            return done;
        }
    }
}

/// A workload `measure` can drain: refill (untimed per cycle, timed per task), dispatch, reset.
trait Drainable {
    fn refill(&mut self);
    fn cycle(&mut self) -> bool;
    fn release_all(&mut self);
}

impl Drainable for CycleBench {
    fn refill(&mut self) {
        CycleBench::refill(self);
    }
    fn cycle(&mut self) -> bool {
        CycleBench::cycle(self)
    }
    fn release_all(&mut self) {
        CycleBench::release_all(self);
    }
}

impl Drainable for MixBench {
    fn refill(&mut self) {
        MixBench::refill(self);
    }
    fn cycle(&mut self) -> bool {
        MixBench::cycle(self)
    }
    fn release_all(&mut self) {
        MixBench::release_all(self);
    }
}

/// One warm-up drain, then `drains` measured ones: batched cycle times into `per_cycle`, the
/// refill cost per task into `enqueue`.
fn measure_drains(
    bench: &mut impl Drainable,
    drains: usize,
    tasks: usize,
    per_cycle: &mut Vec<f64>,
    enqueue: &mut Vec<f64>,
) {
    for d in 0..=drains {
        let t = Instant::now();
        bench.refill();
        let e = t.elapsed().as_nanos() as f64 / tasks.max(1) as f64;
        let mut sink = Vec::new();
        drain_batched(|| bench.cycle(), if d == 0 { &mut sink } else { per_cycle });
        bench.release_all();
        if d > 0 {
            enqueue.push(e);
        }
    }
}

/// Drains per row: enough batches for a stable p95, fewer for big task counts.
fn drains_for(tasks: usize, smoke: bool) -> usize {
    match (smoke, tasks) {
        (true, _) => 2,
        (false, t) if t >= 100_000 => 3,
        (false, t) if t >= 10_000 => 7,
        _ => 31,
    }
}

/// Measures one row of the matrix.
pub fn measure(mix: ResourceMix, tasks: usize, groups: usize, smoke: bool) -> QueueMixRow {
    let cpu0 = super::sysinfo::process_cpu_seconds();
    let drains = drains_for(tasks, smoke);
    let mut per_cycle = Vec::new();
    let mut enqueue = Vec::with_capacity(drains);
    let mut phases: [Vec<f64>; 4] = Default::default();
    if mix == ResourceMix::SubmissionOnly {
        // weir-micro's workload, unchanged.
        let mut bench = CycleBench::new(tasks, groups);
        measure_drains(&mut bench, drains, tasks, &mut per_cycle, &mut enqueue);
        // The phase breakdown needs the queue itself: measure it on the equivalent MixBench.
        let mut phased = MixBench::new(mix, tasks, groups);
        phased.refill();
        while phased.cycle_phased(&mut phases) {}
    } else {
        let mut bench = MixBench::new(mix, tasks, groups);
        measure_drains(&mut bench, drains, tasks, &mut per_cycle, &mut enqueue);
        bench.refill();
        while bench.cycle_phased(&mut phases) {}
        bench.release_all();
    }
    let p = super::stats::percentile;
    QueueMixRow {
        mix,
        tasks,
        groups,
        drains,
        cycle_ns_p50: p(&per_cycle, 0.5),
        cycle_ns_p95: p(&per_cycle, 0.95),
        enqueue_ns_per_task: p(&enqueue, 0.5),
        phase_ns_p50: PhaseBreakdown {
            select: p(&phases[0], 0.5),
            acquire: p(&phases[1], 0.5),
            commit: p(&phases[2], 0.5),
            release: p(&phases[3], 0.5),
        },
        cpu_seconds: match (cpu0, super::sysinfo::process_cpu_seconds()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        },
    }
}

/// Task counts of the full matrix.
pub const TASKS: [usize; 3] = [1_000, 10_000, 100_000];
/// Group counts of the full matrix.
pub const GROUPS: [usize; 4] = [1, 8, 64, 256];

/// The (tasks, groups) pairs to run: the full matrix, or a tiny slice for the smoke.
pub fn matrix(smoke: bool) -> Vec<(usize, usize)> {
    if smoke {
        vec![(1_000, 1), (1_000, 8), (1_000, 64)]
    } else {
        TASKS
            .iter()
            .flat_map(|&t| GROUPS.iter().map(move |&g| (t, g)))
            .collect()
    }
}

/// Runs every mix over the matrix.
pub fn run_matrix(smoke: bool) -> Vec<QueueMixRow> {
    let mut rows = Vec::new();
    for (tasks, groups) in matrix(smoke) {
        for mix in ResourceMix::ALL {
            rows.push(measure(mix, tasks, groups, smoke));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mix_drains_every_task() {
        for mix in ResourceMix::ALL {
            let mut b = MixBench::new(mix, 500, 8);
            b.refill();
            let mut n = 0;
            while b.cycle() {
                n += 1;
            }
            assert_eq!(n, 500, "{mix:?}");
            b.release_all();
            assert_eq!(b.admission.snapshot().active_lease_count, 0);
        }
    }
}
