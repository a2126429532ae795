//! Retry paths: salvage of waits, budgeted retries, the circuit breaker, due timers.

use super::*;

impl RunLoop {
    /// Salvages a wait, retries a transient failure within the cell's budget, or drops the
    /// row(s) once the budget is spent. A model that keeps failing opens its circuit.
    pub(super) fn retry_or_fail(
        &mut self,
        r: &Running,
        e: &GenerationError,
        fallback_model: Option<&str>,
    ) -> Result<Terminal, SchedulerError> {
        if let Some(alias) = model_source(e).map(|s| s.alias.clone()) {
            let now = Instant::now();
            let open = self
                .verdicts
                .breaker
                .as_mut()
                .is_some_and(|b| b.record_failure(&alias, now));
            if open && self.phase.is_running() {
                let streak = self
                    .verdicts
                    .breaker
                    .as_ref()
                    .map_or(0, |b| b.consecutive_failures(&alias));
                let cause = format!("circuit_open:{}", e.error_type());
                self.verdicts
                    .failures
                    .record(&r.task.column, fallback_model, &cause, e, 0);
                self.verdicts.last_failure_cause = Some(cause);
                self.execution_event(
                    SchedulerEventKind::NonRetryableDropped,
                    r,
                    Some("circuit_open"),
                    Some(P::NonRetryableDropped(NonRetryableDropped {
                        rows_dropped: 0,
                        provider_status: None,
                        consecutive_failures: Some(streak),
                    })),
                );
                self.report.tasks_failed += 1;
                self.begin_stop(StopReason::CircuitOpen { model: alias });
                return Ok(Terminal::None);
            }
        }
        let decision = self.retries.decide(&r.task_id, e, &self.config.retry);
        let (delay, deferred) = match decision {
            RetryDecision::Exhausted { .. } => {
                let label = format!("retries_exhausted:{}", e.error_type());
                self.fail(r, &label, e.error_type(), Some(e), fallback_model)?;
                return Ok(Terminal::Failed);
            }
            RetryDecision::Salvage { delay, wait } => (
                delay,
                RetryDeferred {
                    salvage: true,
                    wait: Some(wait),
                    ..Default::default()
                },
            ),
            RetryDecision::Retry {
                delay,
                retry,
                spent,
            } => (
                delay,
                RetryDeferred {
                    retry: Some(retry),
                    requests_spent: Some(spent),
                    ..Default::default()
                },
            ),
        };
        if !self.phase.is_running() {
            // Nothing is re-run once the run is stopping; the row stays unwritten, not dropped.
            self.cancelled(r);
            return Ok(Terminal::None);
        }
        self.retries
            .schedule(r.task.clone(), Instant::now() + delay);
        self.report.tasks_retried += 1;
        self.execution_event(
            SchedulerEventKind::RetryDeferred,
            r,
            Some(e.error_type()),
            Some(P::RetryDeferred(RetryDeferred {
                delay_seconds: delay.as_secs_f64(),
                ..deferred
            })),
        );
        Ok(Terminal::None)
    }

    /// Puts retries whose backoff has passed back on the frontier (the salvage path).
    pub(super) fn fire_due_retries(&mut self) -> Result<bool, SchedulerError> {
        if !self.phase.is_running() {
            self.retries.clear_due();
            return Ok(false);
        }
        let now = Instant::now();
        let mut fired = false;
        while let Some(task) = self.retries.pop_due(now) {
            if !self.pipeline.buffers.contains_key(&task.row_group) {
                // Its row group was written meanwhile (the row was dropped): nothing to retry.
                self.retries.forget(&task.id());
                continue;
            }
            let requeued = self
                .tracker
                .requeue(&task)
                .map_err(|e| internal(format!("requeue: {e}")))?;
            if requeued {
                fired = true;
                let ci = self.column_of(&task)?;
                let id = task.id();
                self.events.task(
                    SchedulerEventKind::SalvageRedispatched,
                    &self.columns[ci],
                    &task,
                    &id,
                    TaskEventFields::default(),
                );
            }
        }
        Ok(fired)
    }
}
