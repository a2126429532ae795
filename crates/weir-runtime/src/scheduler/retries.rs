//! `RetryBook`: one retry budget per cell, salvage of rate-limit/admission waits, due timers.

use super::backoff::retry_delay;
use super::config::TaskRetryConfig;
use crate::completion::Task;
use crate::generators::{GenerationError, RetryableCause};
use crate::model_facade::ModelCallErrorKind;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;
use tokio::time::Instant;
use weir_contracts::TaskId;

/// A retry waiting for its backoff to pass.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct DueRetry {
    at: Instant,
    seq: u64,
    task: Task,
}

/// What one cell has used so far.
#[derive(Debug, Default, Clone, Copy)]
struct CellRetries {
    /// Requests spent on transient, non-wait failures (counted against the budget).
    spent: u32,
    /// Budgeted re-runs so far.
    retries: u32,
    /// Salvage waits so far (rate limits, admission waits): unbudgeted, they only set the backoff.
    waits: u32,
}

/// What to do with a retryable failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RetryDecision {
    /// A rate limit or admission wait: wait `delay` and run again; spends no budget.
    Salvage {
        /// Backoff before the task is ready again.
        delay: Duration,
        /// How many waits this cell has had (1-based).
        wait: u32,
    },
    /// A transient failure with budget left: run again after `delay`.
    Retry {
        /// Backoff before the task is ready again.
        delay: Duration,
        /// Budgeted re-run number (1-based).
        retry: u32,
        /// Requests the cell has spent on transient failures so far.
        spent: u32,
    },
    /// The cell's budget is spent: drop its row(s).
    Exhausted {
        /// Requests the cell spent on transient failures.
        spent: u32,
    },
}

/// Retry state of the run: per-cell budgets and the timers of deferred tasks.
#[derive(Default)]
pub(crate) struct RetryBook {
    due: BinaryHeap<Reverse<DueRetry>>,
    seq: u64,
    cells: HashMap<TaskId, CellRetries>,
}

/// True when `e` means "wait and try again" (salvage) rather than a failure of the call.
pub(crate) fn is_wait(e: &GenerationError) -> bool {
    match e {
        GenerationError::Retryable {
            cause: RetryableCause::RateLimited,
            ..
        } => true,
        GenerationError::Admission { source } => source.is_wait(),
        _ => false,
    }
}

impl RetryBook {
    /// Decides the fate of task `id`'s retryable (or waiting) failure `e` and books it.
    pub(crate) fn decide(
        &mut self,
        id: &TaskId,
        e: &GenerationError,
        config: &TaskRetryConfig,
    ) -> RetryDecision {
        let cell = self.cells.entry(id.clone()).or_default();
        if is_wait(e) {
            cell.waits = cell.waits.saturating_add(1);
            let wait = cell.waits;
            return RetryDecision::Salvage {
                delay: retry_delay(config, wait, retry_after_of(e), id.as_str()),
                wait,
            };
        }
        let cost = match e {
            GenerationError::Retryable { source, .. } => source.attempts.max(1),
            _ => 1,
        };
        cell.spent = cell.spent.saturating_add(cost);
        let budget = config.max_retries.saturating_add(1);
        if cell.spent >= budget {
            return RetryDecision::Exhausted { spent: cell.spent };
        }
        cell.retries += 1;
        RetryDecision::Retry {
            delay: retry_delay(config, cell.retries, None, id.as_str()),
            retry: cell.retries,
            spent: cell.spent,
        }
    }

    /// Makes `task` ready again at `at`.
    pub(crate) fn schedule(&mut self, task: Task, at: Instant) {
        self.seq += 1;
        self.due.push(Reverse(DueRetry {
            at,
            seq: self.seq,
            task,
        }));
    }

    /// The earliest due time, if any retry is waiting.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse(d)| d.at)
    }

    /// Takes the next retry due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Task> {
        if self.next_due().is_some_and(|at| at <= now) {
            self.due.pop().map(|Reverse(d)| d.task)
        } else {
            None
        }
    }

    /// Forgets a cell's budget (it completed or failed for good).
    pub(crate) fn forget(&mut self, id: &TaskId) {
        self.cells.remove(id);
    }

    /// Drops every pending timer (the run is stopping).
    pub(crate) fn clear_due(&mut self) {
        self.due.clear();
    }

    /// Retries waiting for their timer.
    pub(crate) fn pending(&self) -> usize {
        self.due.len()
    }
}

/// The provider's Retry-After of a rate-limit failure (bounded to an hour).
fn retry_after_of(e: &GenerationError) -> Option<Duration> {
    match e {
        GenerationError::Retryable { source, .. } => match &source.kind {
            ModelCallErrorKind::RateLimited {
                retry_after_seconds: Some(s),
            } if s.is_finite() && *s > 0.0 => Some(Duration::from_secs_f64(s.min(3600.0))),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_facade::ModelCallError;

    fn server_error(attempts: u32) -> GenerationError {
        ModelCallError::new(
            "m",
            ModelCallErrorKind::ProviderFailure {
                status: Some(500),
                retryable: true,
            },
            "boom",
        )
        .with_attempts(attempts)
        .into()
    }

    #[test]
    fn in_place_attempts_count_against_the_cell_budget_and_waits_do_not() {
        let config = TaskRetryConfig::default(); // budget 4 requests
        let mut book = RetryBook::default();
        let id = TaskId::stable("c", 0, Some(0), "cell");
        // The executor already made 4 attempts: nothing left for the scheduler.
        assert_eq!(
            book.decide(&id, &server_error(4), &config),
            RetryDecision::Exhausted { spent: 4 }
        );
        // A facade that does not retry in place: 4 tries in all.
        let id = TaskId::stable("c", 0, Some(1), "cell");
        for retry in 1..=3 {
            assert!(matches!(
                book.decide(&id, &server_error(0), &config),
                RetryDecision::Retry { retry: r, .. } if r == retry
            ));
        }
        assert!(matches!(
            book.decide(&id, &server_error(0), &config),
            RetryDecision::Exhausted { spent: 4 }
        ));
        // Rate limits never exhaust anything.
        let id = TaskId::stable("c", 0, Some(2), "cell");
        let limited: GenerationError = ModelCallError::rate_limited("m", Some(2.0)).into();
        for _ in 0..100 {
            assert!(matches!(
                book.decide(&id, &limited, &config),
                RetryDecision::Salvage { delay, .. } if delay >= Duration::from_secs(2)
            ));
        }
    }
}
