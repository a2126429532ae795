//! Shared builders for the task-admission integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use weir_contracts::{
    SchedulerResourceKey, SchedulerResourceRequest, SchedulingKind, TaskGroupKey, TaskGroupSpec,
    TaskId,
};
use weir_task_admission::{
    FairTaskQueue, SchedulableTask, TaskAdmissionController, TaskAdmissionDecision,
};

pub type Task = SchedulableTask<u32>;

pub fn key(name: &str) -> TaskGroupKey {
    TaskGroupKey::new(SchedulingKind::Local, vec!["local".into(), name.into()])
}

pub fn group(name: &str, weight: u32, admitted_limit: Option<u32>) -> Arc<TaskGroupSpec> {
    Arc::new(TaskGroupSpec::new(key(name), weight, admitted_limit).expect("valid spec"))
}

pub fn res(name: &str) -> SchedulerResourceKey {
    SchedulerResourceKey::new(name).expect("valid key")
}

pub fn req(pairs: &[(&str, u32)]) -> Arc<SchedulerResourceRequest> {
    Arc::new(
        SchedulerResourceRequest::new(pairs.iter().map(|(k, a)| (res(k), *a)))
            .expect("valid request"),
    )
}

pub fn sub() -> Arc<SchedulerResourceRequest> {
    Arc::new(SchedulerResourceRequest::submission())
}

pub fn task(id: &str, g: &Arc<TaskGroupSpec>, r: &Arc<SchedulerResourceRequest>) -> Task {
    SchedulableTask::new(TaskId::new(id), 0, g.clone(), r.clone())
}

/// Enqueues `n` tasks named `{group}-{i}`.
pub fn fill(
    q: &mut FairTaskQueue<u32>,
    g: &Arc<TaskGroupSpec>,
    r: &Arc<SchedulerResourceRequest>,
    n: usize,
) {
    let name = g.key.identity[1].clone();
    q.enqueue((0..n).map(|i| task(&format!("{name}-{i}"), g, r)));
}

/// Group name of a task id `{group}-{i}`.
pub fn group_of(id: &TaskId) -> String {
    id.as_str()
        .rsplit_once('-')
        .map(|(g, _)| g.to_string())
        .unwrap_or_default()
}

/// Drains the queue with select → commit (no admission); returns group names in order.
pub fn drain_order(q: &mut FairTaskQueue<u32>, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < max {
        let Some(tok) = q.select_next(|_, _| true).map(|s| s.token()) else {
            break;
        };
        let t = q.commit(tok).expect("fresh selection commits");
        out.push(group_of(&t.task_id));
    }
    out
}

/// One full dispatch step; returns the committed task and its lease.
pub fn dispatch(
    q: &mut FairTaskQueue<u32>,
    adm: &mut TaskAdmissionController,
) -> Option<(Task, weir_task_admission::TaskAdmissionLease)> {
    let sel = q.select_next(|t, v| adm.is_eligible(t, v))?;
    let lease = match adm.try_acquire(sel.item, &sel.queue_view) {
        TaskAdmissionDecision::Lease(l) => l,
        TaskAdmissionDecision::Denied(d) => panic!("eligible candidate denied: {d:?}"),
    };
    let tok = sel.token();
    let t = q.commit(tok).expect("fresh selection commits");
    Some((t, lease))
}
