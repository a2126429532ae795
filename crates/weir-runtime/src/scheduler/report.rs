//! What a scheduler run returns: `SchedulerReport`, why it stopped, and `SchedulerError`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use weir_contracts::TaskAdmissionSnapshot;

/// Why a run ended before every row group was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// A caller asked the run to stop (e.g. Ctrl-C).
    Cancelled,
    /// The sliding-window failure rate crossed its threshold.
    EarlyShutdown {
        /// Failure share of the window when the run stopped.
        failure_rate: f64,
        /// Failed model-task outcomes in the window.
        #[serde(default)]
        failed: u64,
        /// Model-task outcomes in the window.
        #[serde(default)]
        outcomes: u64,
        /// The cause label of the failure that tripped the window (details in `failures`).
        #[serde(default)]
        cause: String,
    },
    /// A failure that no retry can fix (bad key, unknown model, wrong URL, TLS): the run
    /// stopped at once instead of spending its budget; the failure is in `failures`.
    ConfigurationError {
        /// The failure that stopped the run (sanitized).
        message: String,
    },
    /// A provider kept failing past its circuit breaker (the failure is in `failures`).
    CircuitOpen {
        /// The model alias whose endpoint kept failing.
        model: String,
    },
}

/// One group of failures of a run: a column × model × cause, with the first sanitized message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    /// The column whose cells failed.
    pub column: String,
    /// The model alias the failing calls went to (`None`: a local column).
    pub model: Option<String>,
    /// The bounded cause label (e.g. `non_retryable:client`, `retries_exhausted:server_error`).
    pub cause: String,
    /// Failed task executions of this group (cells, or row groups for full-column tasks).
    pub count: u64,
    /// Rows these failures dropped (0 when the run stopped instead, e.g. a configuration error).
    #[serde(default)]
    pub rows_dropped: u64,
    /// The first failure's sanitized message (never a body, prompt or secret).
    pub first_message: String,
    /// The first failure's HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// The first failure's URL path (no host, query or credentials), when there was one.
    pub url_path: Option<String>,
    /// The provider's informative error type or code, when it sent one.
    pub provider_error_type: Option<String>,
}

/// Counters and final state of one scheduler run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerReport {
    /// Records written to the record sink.
    pub records_written: u64,
    /// Rows dropped, in total.
    pub rows_dropped: u64,
    /// Rows dropped by cause (bounded labels such as `non_retryable:bad_output`).
    pub drop_causes: BTreeMap<String, u64>,
    /// Row groups written, in order.
    pub row_groups_written: u64,
    /// First row group of this run (non-zero when resuming).
    pub first_row_group: u64,
    /// Task executions that completed successfully.
    pub tasks_completed: u64,
    /// Task executions that failed for good (their row or row group was dropped).
    pub tasks_failed: u64,
    /// Task executions deferred for a retry.
    pub tasks_retried: u64,
    /// Task executions cancelled (stop or abort).
    pub tasks_cancelled: u64,
    /// Worker panics caught (each also counted in `tasks_failed`).
    pub worker_panics: u64,
    /// Most task leases held at once.
    pub max_active_task_leases: u64,
    /// Most row groups in flight at once.
    pub max_row_groups_in_flight: u32,
    /// Most queued ready tasks at once.
    pub max_queued_tasks: u64,
    /// Workers observed running before their task lease (always 0 by construction; checked).
    pub hidden_scheduler_resource_waiters: u64,
    /// Why the run stopped early, if it did.
    pub stopped: Option<StopReason>,
    /// Failures by column × model × cause, in first-seen order (empty in a clean run).
    #[serde(default)]
    pub failures: Vec<RunFailure>,
    /// Wall time of the run (seconds on the scheduler clock).
    pub wall_seconds: f64,
    /// Task-admission ledger at the end (every count zero after a clean run).
    pub final_task_snapshot: TaskAdmissionSnapshot,
    /// Queued tasks left at the end.
    pub queued_at_end: u64,
}

/// A run could not start or could not continue.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerError {
    /// Configuration or workflow is invalid (field named).
    InvalidConfig {
        /// The offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Queued work can never be admitted and nothing else can change that: a typed error
    /// instead of a hang.
    Deadlock {
        /// Queued tasks.
        queued: usize,
        /// The explanation (dominant denial reasons).
        explanation: String,
    },
    /// The record sink failed.
    RecordSink {
        /// The I/O error text.
        message: String,
    },
    /// An internal invariant broke (a bug); the run stopped cleanly instead of panicking.
    Internal {
        /// What broke.
        message: String,
    },
}

impl fmt::Display for SchedulerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig { field, message } => {
                write!(f, "invalid configuration: {field}: {message}")
            }
            Self::Deadlock {
                queued,
                explanation,
            } => {
                write!(f, "scheduler deadlock: {queued} queued task(s) can never be admitted ({explanation})")
            }
            Self::RecordSink { message } => write!(f, "record sink failed: {message}"),
            Self::Internal { message } => write!(f, "internal scheduler error: {message}"),
        }
    }
}

impl std::error::Error for SchedulerError {}
