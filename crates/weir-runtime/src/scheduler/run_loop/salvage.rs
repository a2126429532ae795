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
                    Some(BTreeMap::from([
                        ("rows_dropped".to_owned(), json!(0)),
                        ("consecutive_failures".to_owned(), json!(streak)),
                    ])),
                );
                self.report.tasks_failed += 1;
                self.begin_stop(StopReason::CircuitOpen { model: alias });
                return Ok(Terminal::None);
            }
        }
        let decision = self.retries.decide(&r.task_id, e, &self.config.retry);
        let (delay, diagnostics) = match decision {
            RetryDecision::Exhausted { .. } => {
                let label = format!("retries_exhausted:{}", e.error_type());
                self.fail(r, &label, e.error_type(), Some(e), fallback_model)?;
                return Ok(Terminal::Failed);
            }
            RetryDecision::Salvage { delay, wait } => (
                delay,
                BTreeMap::from([
                    ("salvage".to_owned(), json!(true)),
                    ("wait".to_owned(), json!(wait)),
                ]),
            ),
            RetryDecision::Retry {
                delay,
                retry,
                spent,
            } => (
                delay,
                BTreeMap::from([
                    ("retry".to_owned(), json!(retry)),
                    ("requests_spent".to_owned(), json!(spent)),
                ]),
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
        let mut diagnostics = diagnostics;
        diagnostics.insert("delay_seconds".to_owned(), json!(delay.as_secs_f64()));
        self.execution_event(
            SchedulerEventKind::RetryDeferred,
            r,
            Some(e.error_type()),
            Some(diagnostics),
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
