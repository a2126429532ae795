//! Idle: what the loop waits for (a pure query), what it reports about it, and its timers.

use super::*;
use weir_task_admission::TaskAdmissionBlockSummary;

/// What an idle pass found: when to wake, and why nothing could be dispatched.
pub(super) enum Idle {
    /// Sleep until `until` (or a worker finishing, or the caller's stop).
    Wait {
        /// The next timer (retry due, `available_after`, health tick, stop grace).
        until: Option<Instant>,
        /// Why queued work is not admissible, when some is queued and the run is running.
        blocked: Option<TaskAdmissionBlockSummary>,
        /// The run is running and nothing is queued.
        queue_empty: bool,
    },
    /// Queued work can never be admitted and nothing (worker, timer) can change that.
    Deadlock {
        /// Why it is blocked.
        blocked: TaskAdmissionBlockSummary,
    },
    /// Nothing queued, running or due, yet row groups are unwritten (a bug).
    Stuck {
        /// Row groups not written.
        unwritten: u64,
    },
}

impl Idle {
    /// The wake time, or the typed error that replaces sleeping forever.
    pub(super) fn wake_at(self) -> Result<Option<Instant>, SchedulerError> {
        match self {
            Self::Wait { until, .. } => Ok(until),
            Self::Deadlock { blocked } => Err(SchedulerError::Deadlock {
                queued: blocked.queued_count,
                explanation: blocked
                    .blocked_tasks_by_reason
                    .iter()
                    .map(|(k, v)| format!("{}: {v}", k.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            Self::Stuck { unwritten } => Err(internal(format!(
                "nothing queued, running or due, yet {unwritten} row group(s) are unwritten"
            ))),
        }
    }
}

impl RunLoop {
    /// What to wait for when a pass made no progress. A pure query: no event, no state change.
    pub(super) fn idle(&self) -> Idle {
        let mut wake: Option<Instant> = self.retries.next_due();
        let mut earlier = |t: Instant| {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        };
        if let Some(t) = self.next_health {
            earlier(t);
        }
        if let Some(t) = self.phase.grace_deadline() {
            earlier(t);
        }
        if !self.phase.is_running() {
            return Idle::Wait {
                until: wake,
                blocked: None,
                queue_empty: false,
            };
        }
        if self.queue.is_empty() {
            // In feed mode an idle run waits for the feed (its next group or its end).
            if self.workers.is_empty() && wake.is_none() && self.pipeline.feed.is_none() {
                return Idle::Stuck {
                    unwritten: self.pipeline.total_row_groups - self.pipeline.next_to_write,
                };
            }
            return Idle::Wait {
                until: wake,
                blocked: None,
                queue_empty: true,
            };
        }
        let blocked = self.admission.explain_blocked(&self.queue.view());
        if let Some(after) = blocked.available_after {
            earlier(self.clock.origin() + Duration::from_secs_f64(after.max(0.0)));
        }
        if self.workers.is_empty() && wake.is_none() {
            return Idle::Deadlock { blocked };
        }
        Idle::Wait {
            until: wake,
            blocked: Some(blocked),
            queue_empty: false,
        }
    }

    /// Emits what an idle pass found (`group_capped` / `admission_blocked` / `queue_empty`).
    pub(super) fn report_idle(&self, idle: &Idle) {
        let (blocked, queue_empty) = match idle {
            Idle::Wait {
                blocked,
                queue_empty,
                ..
            } => (blocked.as_ref(), *queue_empty),
            Idle::Deadlock { blocked } => (Some(blocked), false),
            Idle::Stuck { .. } => (None, true),
        };
        if queue_empty {
            self.events.run(SchedulerEventKind::QueueEmpty, |_| {});
        }
        let Some(summary) = blocked else {
            return;
        };
        let group_capped = summary.dominant_reason() == Some(TaskAdmissionDenyReason::GroupCap);
        let kind = if group_capped {
            SchedulerEventKind::GroupCapped
        } else {
            SchedulerEventKind::AdmissionBlocked
        };
        self.events.run(kind, |e| {
            e.reason_or_result = summary.dominant_reason().map(|r| r.as_str().to_owned());
            let blocked = AdmissionBlocked {
                queued: summary.queued_count as u64,
                blocked_tasks_by_reason: summary.blocked_tasks_by_reason.clone(),
            };
            e.payload = if group_capped {
                P::GroupCapped(blocked)
            } else {
                P::AdmissionBlocked(blocked)
            };
        });
    }

    /// A timer fired: the stop grace ended (abort and drain) and/or a health snapshot is due.
    pub(super) fn on_timer(&mut self) {
        let now = Instant::now();
        if self.phase.grace_over(now) {
            if let Some(reason) = self.phase.stop_reason().cloned() {
                // Grace is over: abort what is still running; the aborts come back as
                // cancellations and release their leases.
                self.workers.abort_all();
                self.phase = Phase::Draining { reason };
            }
        }
        if let (Some(at), Some(every)) = (self.next_health, self.config.health_snapshot_interval) {
            if at <= now {
                self.next_health = Some(now + every);
                let snapshot = self.admission.snapshot();
                let queued = self.queue.len();
                let running = self.running.len();
                let deferred = self.retries.pending();
                self.events
                    .run(SchedulerEventKind::SchedulerHealthSnapshot, |e| {
                        e.snapshot = Some(Box::new(snapshot));
                        e.payload = P::SchedulerHealthSnapshot(SchedulerHealthSnapshot {
                            queued: queued as u64,
                            running_workers: running as u64,
                            deferred_tasks: deferred as u64,
                        });
                    });
            }
        }
    }
}
