//! Dispatcher: `select_next → try_acquire → commit → execute`, and execution events.

use super::*;

impl RunLoop {
    /// Dispatches until nothing queued is admissible; returns how many tasks were started.
    pub(super) async fn dispatch(&mut self) -> Result<usize, SchedulerError> {
        let pressured = self.pressured_columns();
        let mut started = 0;
        let mut pass_clock: Option<f64> = None;
        loop {
            if self.queue.is_empty() || !self.phase.is_running() {
                break;
            }
            let mut skipped_for_pressure = false;
            let selection = {
                let admission = &self.admission;
                let column_index = &self.column_index;
                let first = self.queue.select_next(|item, view| {
                    if !admission.is_eligible(item, view) {
                        return false;
                    }
                    let pressed = column_index
                        .get(&item.payload.column)
                        .is_some_and(|&ci| pressured.get(ci).copied().unwrap_or(false));
                    if pressed {
                        skipped_for_pressure = true;
                    }
                    !pressed
                });
                match first {
                    Some(s) => Some(s),
                    // Advisory only: if every admissible candidate is pressured, take one anyway.
                    None if skipped_for_pressure => {
                        skipped_for_pressure = false;
                        self.queue
                            .select_next(|item, view| admission.is_eligible(item, view))
                    }
                    None => None,
                }
            };
            let Some(selection) = selection else {
                break;
            };
            let task_id = selection.item.task_id.clone();
            let task = selection.item.payload.clone();
            let ci = self.column_of(&task)?;
            if skipped_for_pressure {
                self.events.task(
                    SchedulerEventKind::RequestPressureAdvisorySkipped,
                    &self.columns[ci],
                    &task,
                    &task_id,
                    TaskEventFields::default(),
                );
            }
            self.events.task(
                SchedulerEventKind::Selected,
                &self.columns[ci],
                &task,
                &task_id,
                TaskEventFields::default(),
            );
            let token = selection.token();
            // One clock read per pass (not per task): the lease timestamp is diagnostic only,
            // and the read is a third of an admission cycle.
            let acquired_at = *pass_clock.get_or_insert_with(|| self.clock.now());
            let decision =
                self.admission
                    .try_acquire_at(selection.item, &selection.queue_view, acquired_at);
            let lease = match decision {
                TaskAdmissionDecision::Lease(lease) => lease,
                TaskAdmissionDecision::Denied(denied) => {
                    // is_eligible said yes a moment ago on the same state; a denial here means
                    // the policy changed its mind. Report it and stop this pass (no spin).
                    self.events.task(
                        SchedulerEventKind::AdmissionDenied,
                        &self.columns[ci],
                        &task,
                        &task_id,
                        TaskEventFields {
                            reason: Some(denied.reason.as_str()),
                            ..Default::default()
                        },
                    );
                    break;
                }
            };
            let Some(committed) = self.queue.commit(token) else {
                let result = self.admission.release(&lease);
                self.events.task(
                    SchedulerEventKind::StaleSelection,
                    &self.columns[ci],
                    &task,
                    &task_id,
                    TaskEventFields {
                        lease: Some(lease.lease_id()),
                        reason: Some(result.reason.as_str()),
                        ..Default::default()
                    },
                );
                continue;
            };
            let active = self.admission.view().active_lease_count();
            self.report.max_active_task_leases = self.report.max_active_task_leases.max(active);
            if self.queue.is_empty() {
                self.events.run(SchedulerEventKind::QueueDrained, |_| {});
            }
            self.start(committed, lease, ci).await?;
            started += 1;
        }
        Ok(started)
    }

    pub(super) fn pressured_columns(&self) -> Vec<bool> {
        match (&self.advisory, self.config.request_pressure_advisory) {
            (Some(advisory), true) => self
                .columns
                .iter()
                .map(|c| advisory.is_pressured(&c.metadata))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub(super) fn column_of(&self, task: &Task) -> Result<usize, SchedulerError> {
        self.column_index
            .get(&task.column)
            .copied()
            .ok_or_else(|| internal(format!("task of unknown column {:?}", task.column)))
    }

    /// Executes a leased task: inline for local work, otherwise as a spawned worker.
    pub(super) async fn start(
        &mut self,
        item: SchedulableTask<Task>,
        lease: TaskAdmissionLease,
        ci: usize,
    ) -> Result<(), SchedulerError> {
        let execution = TaskExecutionId::next();
        let SchedulableTask {
            task_id,
            payload: task,
            ..
        } = item;
        let col = &self.columns[ci];
        self.events.task(
            SchedulerEventKind::TaskLeaseAcquired,
            col,
            &task,
            &task_id,
            TaskEventFields {
                execution: Some(execution),
                lease: Some(lease.lease_id()),
                ..Default::default()
            },
        );
        let running = Running {
            task,
            task_id,
            column: ci,
            lease,
            execution,
        };
        if col.inline {
            self.emit_spawned(&running, true);
            let ending = match catch_panics(self.run_inline(&running)).await {
                Ok(Ok(out)) => Ending::Output(out),
                Ok(Err(e)) => Ending::Failed(e),
                Err(()) => Ending::Panicked,
            };
            self.finish(running, ending)
        } else {
            let fut = match self.worker_future(&running) {
                Ok(fut) => fut,
                Err(e) => {
                    let released = self.admission.release(&running.lease);
                    self.execution_event(
                        SchedulerEventKind::WorkerSpawnFailed,
                        &running,
                        Some("inputs_unavailable"),
                        None,
                    );
                    // The lease was released: say so, like every other terminal path.
                    self.execution_event(
                        SchedulerEventKind::TaskLeaseReleased,
                        &running,
                        Some(released.reason.as_str()),
                        Some(P::TaskLeaseReleased(TaskLeaseReleased {
                            outcome: Some(TaskTerminalOutcome::WorkerSpawnFailure),
                        })),
                    );
                    return Err(e);
                }
            };
            let handle = self.workers.spawn(fut);
            self.emit_spawned(&running, false);
            self.running.insert(handle.id(), running);
            Ok(())
        }
    }

    /// Emits an event about execution `r`: its task, execution id and lease id.
    pub(super) fn execution_event(
        &self,
        kind: SchedulerEventKind,
        r: &Running,
        reason: Option<&str>,
        payload: Option<P>,
    ) {
        self.events.task(
            kind,
            &self.columns[r.column],
            &r.task,
            &r.task_id,
            TaskEventFields {
                execution: Some(r.execution),
                lease: Some(r.lease.lease_id()),
                reason,
                payload,
            },
        );
    }

    pub(super) fn emit_spawned(&self, r: &Running, inline: bool) {
        self.execution_event(
            SchedulerEventKind::WorkerSpawned,
            r,
            None,
            Some(P::WorkerSpawned(WorkerSpawned { inline })),
        );
    }
}
