//! Terminal paths: every execution ends in `finish` (lease first), then success, drop or stop.

use super::*;

/// What the run has concluded about its failures: the report groups, the early-shutdown
/// window, the circuit breaker and which models ever answered (for fail fast).
pub(super) struct Verdicts {
    /// Early-shutdown window of model-task outcomes (None = disabled).
    pub(super) failure_window: Option<FailureWindow>,
    /// Failures by column × model × cause.
    pub(super) failures: FailureLog,
    /// Circuit breaker per model alias (None = disabled).
    pub(super) breaker: Option<CircuitBreaker>,
    /// Model aliases that answered at least one call in this run.
    pub(super) answered: HashSet<String>,
    /// The cause label of the latest terminal failure (for the early-shutdown reason).
    pub(super) last_failure_cause: Option<String>,
}

impl Verdicts {
    /// Fresh verdicts for a run with `config`.
    pub(super) fn new(config: &SchedulerConfig) -> Self {
        Self {
            failure_window: config.early_shutdown.map(FailureWindow::new),
            failures: FailureLog::default(),
            breaker: config.circuit_breaker.map(CircuitBreaker::new),
            answered: HashSet::new(),
            last_failure_cause: None,
        }
    }
}

impl RunLoop {
    /// The one terminal path of every execution: release the lease first, then record the outcome.
    pub(super) fn finish(&mut self, r: Running, ending: Ending) -> Result<(), SchedulerError> {
        let released = self.admission.release(&r.lease);
        // The plan's terminal-path vocabulary (task-admission.md, "Lease Lifecycle").
        let mut terminal_outcome = match &ending {
            Ending::Output(_) => TaskTerminalOutcome::Success,
            Ending::Failed(e) if e.is_retryable() => TaskTerminalOutcome::RetryableFailure,
            Ending::Failed(_) | Ending::Panicked => TaskTerminalOutcome::NonRetryableFailure,
            Ending::Aborted => TaskTerminalOutcome::Cancellation,
        };
        if !released.released {
            self.execution_event(
                SchedulerEventKind::ReleaseDiagnostic,
                &r,
                Some(released.reason.as_str()),
                None,
            );
        }
        // A task whose row group was already written (every row it could add to was dropped
        // while it ran) has nothing left to record: its result is moot.
        let group_live = self.pipeline.buffers.contains_key(&r.task.row_group);
        let outcome: Result<Terminal, SchedulerError> = if !group_live {
            self.retries.forget(&r.task_id);
            self.report.tasks_cancelled += 1;
            self.execution_event(SchedulerEventKind::Cancelled, &r, Some("row_dropped"), None);
            terminal_outcome = TaskTerminalOutcome::Cancellation;
            Ok(Terminal::None)
        } else {
            match ending {
                Ending::Output(out) => self.complete(&r, out).map(|()| Terminal::Succeeded),
                Ending::Failed(e) => self.on_failure(&r, &e),
                Ending::Panicked => {
                    self.report.worker_panics += 1;
                    let model = self.columns[r.column].single_model().map(str::to_owned);
                    self.fail(&r, "worker_panic", "worker_panic", None, model.as_deref())
                        .map(|()| Terminal::Failed)
                }
                Ending::Aborted => {
                    self.cancelled(&r);
                    Ok(Terminal::None)
                }
            }
        };
        // The lease event is emitted whatever happened above, so the log never shows a lease
        // that was released without its `task_lease_released`.
        self.execution_event(
            SchedulerEventKind::TaskLeaseReleased,
            &r,
            Some(released.reason.as_str()),
            Some(P::TaskLeaseReleased(TaskLeaseReleased {
                outcome: Some(terminal_outcome),
            })),
        );
        let terminal = outcome?;
        // Only model-call outcomes feed early shutdown: local samplers always succeed and
        // would hide a run whose every model call fails.
        if terminal != Terminal::None && self.columns[r.column].model_backed {
            if let Some(window) = &mut self.verdicts.failure_window {
                if window.record(terminal == Terminal::Failed) && self.phase.is_running() {
                    let reason = StopReason::EarlyShutdown {
                        failure_rate: window.failure_rate(),
                        failed: window.failures() as u64,
                        outcomes: window.outcomes() as u64,
                        cause: self.verdicts.last_failure_cause.clone().unwrap_or_default(),
                    };
                    self.begin_stop(reason);
                }
            }
        }
        Ok(())
    }

    /// A failed execution: stop on a configuration failure, salvage a wait, retry within the
    /// cell's budget, or drop the row(s).
    pub(super) fn on_failure(
        &mut self,
        r: &Running,
        e: &GenerationError,
    ) -> Result<Terminal, SchedulerError> {
        let fallback_model = self.columns[r.column].single_model().map(str::to_owned);
        if let Some(source) = model_source(e) {
            let answered = self.verdicts.answered.contains(&source.alias);
            if self.config.fail_fast
                && (is_configuration_failure(source) || is_unreachable_endpoint(source, answered))
            {
                let cause = format!("configuration:{}", e.error_type());
                self.record_failure_event(r, &cause, e, 0, fallback_model.as_deref());
                if self.phase.is_running() {
                    let message = format!(
                        "column {:?}, model {:?}: {}",
                        r.task.column, source.alias, source.message
                    );
                    self.begin_stop(StopReason::ConfigurationError { message });
                }
                return Ok(Terminal::Failed);
            }
        }
        match e.class() {
            GenerationErrorClass::NonRetryable => {
                let label = format!("non_retryable:{}", e.error_type());
                self.fail(
                    r,
                    &label,
                    e.error_type(),
                    Some(e),
                    fallback_model.as_deref(),
                )
                .map(|()| Terminal::Failed)
            }
            GenerationErrorClass::Cancelled if !self.phase.is_running() => {
                self.cancelled(r);
                Ok(Terminal::None)
            }
            GenerationErrorClass::Admission
                if model_source(e).and_then(|s| s.kind.admission_reason())
                    == Some(RequestAdmissionDenyReason::Shutdown) =>
            {
                if !self.phase.is_running() {
                    self.cancelled(r);
                    Ok(Terminal::None)
                } else {
                    self.fail(
                        r,
                        "admission_shutdown",
                        "request_admission",
                        Some(e),
                        fallback_model.as_deref(),
                    )
                    .map(|()| Terminal::Failed)
                }
            }
            // Rate limits and admission waits (salvaged), transient provider failures and
            // stray cancellations (budgeted).
            _ => self.retry_or_fail(r, e, fallback_model.as_deref()),
        }
    }

    pub(super) fn complete(
        &mut self,
        r: &Running,
        out: WorkerOutput,
    ) -> Result<(), SchedulerError> {
        let col = &self.columns[r.column];
        let rg = r.task.row_group;
        let mut validation_drops: Vec<String> = Vec::new();
        match out {
            WorkerOutput::Cell(value) => {
                if let (Some(row), Some(buffer)) =
                    (r.task.row_index, self.pipeline.buffers.get_mut(&rg))
                {
                    if let Some(record) = buffer.rows.get_mut(row as usize) {
                        record.insert(col.name.to_string(), value);
                    }
                }
            }
            WorkerOutput::Batch(rows) => {
                for row in rows {
                    if let Some(reason) = row.drop_reason {
                        let cause = DropCause::ValidationFailed {
                            column: col.name.to_string(),
                            reason: reason.clone(),
                        };
                        let newly = self
                            .tracker
                            .drop_row(rg, row.row_index, cause)
                            .map_err(|e| internal(format!("drop row: {e}")))?;
                        if newly {
                            validation_drops.push(reason);
                        }
                        continue;
                    }
                    let value = row.record.get(col.name.as_ref()).cloned();
                    if let (Some(value), Some(buffer)) = (value, self.pipeline.buffers.get_mut(&rg))
                    {
                        if let Some(record) = buffer.rows.get_mut(row.row_index as usize) {
                            record.insert(col.name.to_string(), value);
                        }
                    }
                }
            }
        }
        for reason in validation_drops {
            self.count_drops("validation_failed", 1);
            self.verdicts.failures.record_message(
                &r.task.column,
                None,
                "validation_failed",
                &reason,
                1,
            );
        }
        self.tracker
            .mark_complete(&r.task)
            .map_err(|e| internal(format!("mark complete: {e}")))?;
        self.retries.forget(&r.task_id);
        self.report.tasks_completed += 1;
        let cells = match r.task.row_index {
            Some(_) => 1,
            None => self
                .pipeline
                .buffers
                .get(&r.task.row_group)
                .map_or(1, |b| b.rows.len() as u64),
        };
        self.events.progress.record(cells);
        // Local columns call no model: skip the clock read on the hot path.
        let models = &self.columns[r.column].models;
        let now = (!models.is_empty()).then(Instant::now);
        for alias in models {
            let Some(now) = now else { break };
            if let Some(breaker) = &mut self.verdicts.breaker {
                breaker.record_success(alias, now);
            }
            if !self.verdicts.answered.contains(alias) {
                self.verdicts.answered.insert(alias.clone());
            }
        }
        self.execution_event(SchedulerEventKind::TaskCompleted, r, None, None);
        Ok(())
    }

    /// Adds `rows` dropped rows under `label`, when they are dropped (not when written), so
    /// a stopped run's report agrees with its `non_retryable_dropped` events.
    pub(super) fn count_drops(&mut self, label: &str, rows: u64) {
        if rows == 0 {
            return;
        }
        self.report.rows_dropped += rows;
        *self.report.drop_causes.entry(label.to_owned()).or_default() += rows;
    }

    /// A failure for good: drops the task's row (or row group), counts and records it.
    pub(super) fn fail(
        &mut self,
        r: &Running,
        label: &str,
        error_type: &str,
        error: Option<&GenerationError>,
        fallback_model: Option<&str>,
    ) -> Result<(), SchedulerError> {
        let cause = DropCause::NonRetryableFailure {
            column: r.task.column.to_string(),
            error_type: error_type.to_owned(),
        };
        let newly = self
            .tracker
            .mark_failed(&r.task, cause.clone())
            .map_err(|e| internal(format!("mark failed: {e}")))?;
        self.count_drops(&drop_label(&cause), newly);
        self.retries.forget(&r.task_id);
        match error {
            Some(e) => self.record_failure_event(r, label, e, newly, fallback_model),
            None => {
                self.report.tasks_failed += 1;
                self.verdicts.last_failure_cause = Some(label.to_owned());
                self.verdicts.failures.record_message(
                    &r.task.column,
                    fallback_model,
                    label,
                    label,
                    newly,
                );
                self.execution_event(
                    SchedulerEventKind::NonRetryableDropped,
                    r,
                    Some(label),
                    Some(P::NonRetryableDropped(NonRetryableDropped {
                        rows_dropped: newly,
                        ..Default::default()
                    })),
                );
            }
        }
        Ok(())
    }

    /// Counts a failed execution, adds it to the failure report and emits its event.
    pub(super) fn record_failure_event(
        &mut self,
        r: &Running,
        label: &str,
        e: &GenerationError,
        rows_dropped: u64,
        fallback_model: Option<&str>,
    ) {
        self.report.tasks_failed += 1;
        self.verdicts.last_failure_cause = Some(label.to_owned());
        self.verdicts
            .failures
            .record(&r.task.column, fallback_model, label, e, rows_dropped);
        let dropped = NonRetryableDropped {
            rows_dropped,
            provider_status: model_source(e).and_then(|s| s.http_status()),
            consecutive_failures: None,
        };
        self.execution_event(
            SchedulerEventKind::NonRetryableDropped,
            r,
            Some(label),
            Some(P::NonRetryableDropped(dropped)),
        );
    }

    pub(super) fn cancelled(&mut self, r: &Running) {
        self.report.tasks_cancelled += 1;
        self.execution_event(SchedulerEventKind::Cancelled, r, None, None);
    }
}
