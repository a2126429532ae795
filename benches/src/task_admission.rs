//! task_admission micro benchmarks for weir-micro: the scheduler's dispatch cycle
//! (`select_next → try_acquire → commit → release`) against a tokio `Semaphore` baseline.

use crate::{measure_ns_per_op, median, Baseline, MicroResult};
use serde_json::json;
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use weir_contracts::{
    SchedulerResourceRequest, SchedulingKind, TaskGroupKey, TaskGroupSpec, TaskId,
};
use weir_task_admission::{
    BoundedBorrowTaskAdmissionPolicyConfig, FairTaskQueue, SchedulableTask, TaskAdmissionConfig,
    TaskAdmissionController, TaskAdmissionDecision, TaskAdmissionLease,
};

/// Task counts of the matrix.
pub const TASKS: [usize; 3] = [1_000, 10_000, 100_000];
/// Group counts of the matrix.
pub const GROUPS: [usize; 4] = [1, 8, 64, 256];
/// Leases held in flight during the cycle (each op releases the oldest one).
pub const IN_FLIGHT: usize = 32;
/// Submission capacity of the benchmarked controller.
pub const CAPACITY: u32 = 1024;

/// A dispatch-cycle workload: `tasks` ready tasks spread round-robin over `groups` groups with
/// weights 1..=4, bounded-borrow policy (the production default), admitted limit 64 per group.
pub struct CycleBench {
    template: Vec<SchedulableTask<u64>>,
    queue: FairTaskQueue<u64>,
    admission: TaskAdmissionController,
    held: VecDeque<TaskAdmissionLease>,
    /// `Some(t)`: acquire with `try_acquire_at(.., t)` (a caller that already holds a
    /// timestamp, e.g. its dispatch event's); `None`: `try_acquire` reads the clock itself.
    caller_timestamp: Option<f64>,
}

impl CycleBench {
    /// Builds the workload (queue empty until [`Self::refill`]).
    pub fn new(tasks: usize, groups: usize) -> Self {
        let specs: Vec<Arc<TaskGroupSpec>> = (0..groups.max(1))
            .map(|g| {
                let key = TaskGroupKey::new(
                    SchedulingKind::Model,
                    vec![
                        "model".into(),
                        "provider".into(),
                        format!("model-{g}"),
                        "chat".into(),
                    ],
                );
                Arc::new(
                    TaskGroupSpec::new(key, (g % 4) as u32 + 1, Some(64))
                        .expect("invariant: benchmark specs are valid"),
                )
            })
            .collect();
        let request = Arc::new(SchedulerResourceRequest::submission());
        let template = (0..tasks)
            .map(|i| {
                SchedulableTask::new(
                    TaskId::new(format!("task-{i:016x}")),
                    i as u64,
                    specs[i % specs.len()].clone(),
                    request.clone(),
                )
            })
            .collect();
        let config = TaskAdmissionConfig::with_submission_capacity(CAPACITY)
            .with_bounded_borrow(BoundedBorrowTaskAdmissionPolicyConfig::default());
        Self {
            template,
            queue: FairTaskQueue::new(),
            admission: TaskAdmissionController::new(config)
                .expect("invariant: benchmark config is valid"),
            held: VecDeque::with_capacity(IN_FLIGHT + 1),
            caller_timestamp: None,
        }
    }

    /// The same workload acquiring with a caller-supplied timestamp (`try_acquire_at`).
    pub fn with_caller_timestamp(mut self) -> Self {
        self.caller_timestamp = Some(self.admission.clock().now());
        self
    }

    /// Tasks in the workload.
    pub fn tasks(&self) -> usize {
        self.template.len()
    }

    /// Re-enqueues every task of the workload (untimed setup).
    pub fn refill(&mut self) {
        self.queue.enqueue(self.template.iter().cloned());
    }

    /// Queued tasks left.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// One op: select_next + try_acquire + commit, and release of the oldest held lease.
    /// Returns false when nothing could be dispatched.
    pub fn cycle(&mut self) -> bool {
        let admission = &mut self.admission;
        let Some(sel) = self.queue.select_next(|t, v| admission.is_eligible(t, v)) else {
            return false;
        };
        let decision = match self.caller_timestamp {
            Some(now) => admission.try_acquire_at(sel.item, &sel.queue_view, now),
            None => admission.try_acquire(sel.item, &sel.queue_view),
        };
        let TaskAdmissionDecision::Lease(lease) = decision else {
            return false;
        };
        let token = sel.token();
        match self.queue.commit(token) {
            Some(task) => {
                black_box(task);
            }
            None => {
                admission.release(&lease);
                return false;
            }
        }
        self.held.push_back(lease);
        if self.held.len() > IN_FLIGHT {
            if let Some(old) = self.held.pop_front() {
                black_box(admission.release(&old));
            }
        }
        true
    }

    /// Releases every held lease (between samples).
    pub fn release_all(&mut self) {
        while let Some(l) = self.held.pop_front() {
            self.admission.release(&l);
        }
    }

    /// The queue's share of an op: `select_next` with an always-true predicate + `commit`
    /// (dropping the task). Returns false when the queue is empty.
    pub fn queue_cycle(&mut self) -> bool {
        let Some(token) = self.queue.select_next(|_, _| true).map(|s| s.token()) else {
            return false;
        };
        black_box(self.queue.commit(token));
        true
    }

    /// The controller's share of an op for template task `i`: `is_eligible` +
    /// `try_acquire_at` + release of the oldest held lease, against the current queue view.
    pub fn controller_cycle(&mut self, i: usize, now: f64) -> bool {
        let Some(item) = self.template.get(i % self.template.len().max(1)) else {
            return false;
        };
        let view = self.queue.view();
        if !black_box(self.admission.is_eligible(item, &view)) {
            return false;
        }
        let TaskAdmissionDecision::Lease(lease) = self.admission.try_acquire_at(item, &view, now)
        else {
            return false;
        };
        self.held.push_back(lease);
        if self.held.len() > IN_FLIGHT {
            if let Some(old) = self.held.pop_front() {
                black_box(self.admission.release(&old));
            }
        }
        true
    }
}

/// ns per op of `samples` full drains of the refilled queue, one `step` per op.
fn drain_samples(
    bench: &mut CycleBench,
    samples: usize,
    step: fn(&mut CycleBench) -> bool,
) -> Vec<f64> {
    let mut per_op = Vec::with_capacity(samples);
    for _ in 0..samples {
        bench.refill();
        let n = bench.queued();
        let start = Instant::now();
        let mut done = 0usize;
        while step(bench) {
            done += 1;
        }
        let elapsed = start.elapsed().as_nanos() as f64;
        assert_eq!(done, n, "every queued task is taken");
        per_op.push(elapsed / done.max(1) as f64);
        bench.release_all();
    }
    per_op
}

/// Median ns of [`CycleBench::queue_cycle`] over `samples` full drains.
pub fn measure_queue_only(bench: &mut CycleBench, samples: usize) -> f64 {
    median(&mut drain_samples(bench, samples, CycleBench::queue_cycle))
}

/// Median ns of [`CycleBench::controller_cycle`] (`ops` per sample) against the view of the
/// full queue.
pub fn measure_controller_only(bench: &mut CycleBench, samples: usize, ops: usize) -> f64 {
    bench.refill();
    let now = bench.admission.clock().now();
    let mut per_op = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        for i in 0..ops {
            assert!(
                bench.controller_cycle(i, now),
                "every candidate is admitted"
            );
        }
        per_op.push(start.elapsed().as_nanos() as f64 / ops.max(1) as f64);
        bench.release_all();
    }
    median(&mut per_op)
}

/// Median ns per dispatch op over `samples` full drains, plus (p10, p90).
pub fn measure_cycle(bench: &mut CycleBench, samples: usize) -> (f64, f64, f64) {
    let mut per_op = drain_samples(bench, samples, CycleBench::cycle);
    let mut sorted = per_op.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (median(&mut per_op), pick(0.1), pick(0.9))
}

/// Median ns of tokio `Semaphore::try_acquire` + release (permit drop).
pub fn tokio_semaphore_baseline(samples: usize, ops: u64) -> f64 {
    let sem = tokio::sync::Semaphore::new(CAPACITY as usize);
    measure_ns_per_op(samples, ops, || {
        if let Ok(permit) = black_box(&sem).try_acquire() {
            drop(black_box(permit));
        }
    })
}

/// The baseline for one row, measured right beside it: a ratio then compares two numbers taken
/// seconds apart, so a transient slowdown of the shared machine skews one row, not all of them.
fn row_baseline() -> f64 {
    tokio_semaphore_baseline(15, 200_000)
}

/// Runs this area's micro benchmarks.
pub fn run() -> Vec<MicroResult> {
    let mut out = Vec::new();
    for (name, caller_timestamp) in [
        ("task_admission_dispatch_cycle", false),
        ("task_admission_dispatch_cycle_caller_timestamp", true),
    ] {
        out.extend(run_matrix(name, caller_timestamp));
    }
    out.extend(run_parts());
    out
}

/// Where an op's time goes: the queue's share over the whole matrix and the controller's
/// share at 1 and 256 groups (diagnostic rows; the dispatch-cycle rows are the contract).
fn run_parts() -> Vec<MicroResult> {
    let row = |benchmark: &str, params, ns: f64, op: &str| {
        let baseline = row_baseline();
        let mut extra = serde_json::Map::new();
        extra.insert("op".into(), json!(op));
        MicroResult {
            benchmark: benchmark.into(),
            params,
            ns_per_op_median: ns,
            baseline: Some(Baseline {
                name: "tokio_semaphore_acquire_release".into(),
                ns_per_op_median: baseline,
            }),
            ratio: (baseline > 0.0).then(|| ns / baseline),
            extra,
        }
    };
    let mut out = Vec::new();
    for &tasks in &TASKS {
        for &groups in &GROUPS {
            let mut bench = CycleBench::new(tasks, groups);
            let samples = if tasks >= 100_000 { 9 } else { 51 };
            measure_queue_only(&mut bench, 1);
            let ns = measure_queue_only(&mut bench, samples);
            out.push(row(
                "task_admission_queue_only",
                json!({"tasks": tasks, "groups": groups}),
                ns,
                "select_next (always eligible) + commit",
            ));
        }
    }
    for groups in [1, 256] {
        let mut bench = CycleBench::new(1_000, groups);
        measure_controller_only(&mut bench, 3, 1_000);
        let ns = measure_controller_only(&mut bench, 101, 1_000);
        out.push(row(
            "task_admission_controller_only",
            json!({"tasks": 1_000, "groups": groups}),
            ns,
            "is_eligible + try_acquire_at + release",
        ));
    }
    out
}

fn run_matrix(name: &str, caller_timestamp: bool) -> Vec<MicroResult> {
    let mut out = Vec::new();
    for &tasks in &TASKS {
        for &groups in &GROUPS {
            let mut bench = CycleBench::new(tasks, groups);
            if caller_timestamp {
                bench = bench.with_caller_timestamp();
            }
            let samples = match tasks {
                t if t >= 100_000 => 9,
                t if t >= 10_000 => 21,
                _ => 101,
            };
            // One untimed warm-up drain sizes the maps.
            measure_cycle(&mut bench, 1);
            let baseline = row_baseline();
            let (med, p10, p90) = measure_cycle(&mut bench, samples);
            let mut extra = serde_json::Map::new();
            extra.insert("ns_per_op_p10".into(), json!(p10));
            extra.insert("ns_per_op_p90".into(), json!(p90));
            extra.insert("samples".into(), json!(samples));
            extra.insert("policy".into(), json!("bounded_borrow"));
            extra.insert("in_flight_leases".into(), json!(IN_FLIGHT));
            extra.insert(
                "op".into(),
                json!(if caller_timestamp {
                    "select_next + try_acquire_at + commit + release"
                } else {
                    "select_next + try_acquire + commit + release"
                }),
            );
            out.push(MicroResult {
                benchmark: name.into(),
                params: json!({"tasks": tasks, "groups": groups}),
                ns_per_op_median: med,
                baseline: Some(Baseline {
                    name: "tokio_semaphore_acquire_release".into(),
                    ns_per_op_median: baseline,
                }),
                ratio: (baseline > 0.0).then(|| med / baseline),
                extra,
            });
        }
    }
    out
}
