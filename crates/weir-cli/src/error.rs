//! `CliError`: every way a `weir` command fails, and the process exit codes (0, 2, 3, 4, 130, 143).

use std::fmt;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the input (workflow file, flags, report directory) is invalid.
pub const EXIT_INVALID_INPUT: i32 = 2;
/// Exit code: the run failed or stopped early (also: outputs could not be written).
pub const EXIT_RUN_FAILED: i32 = 3;
/// Exit code: the run finished but dropped rows (not every requested record was written).
pub const EXIT_INCOMPLETE: i32 = 4;
/// Exit code: interrupted (Ctrl-C), as shells report SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit code: terminated (SIGTERM: `docker stop`, `timeout`, schedulers), as shells report it.
pub const EXIT_TERMINATED: i32 = 143;

/// Which exit code a failure maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliErrorKind {
    /// Invalid input: exit 2, and nothing is written.
    InvalidInput,
    /// The run failed or stopped early, or its outputs could not be written: exit 3.
    RunFailed,
    /// Interrupted by the user: exit 130.
    Interrupted,
}

/// A failed command: its kind (exit code) and a one-paragraph message for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The kind, deciding the exit code.
    pub kind: CliErrorKind,
    /// What went wrong (may span several lines, e.g. one per spec error).
    pub message: String,
}

impl CliError {
    /// Invalid input (exit 2).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self {
            kind: CliErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// Run failed or stopped early (exit 3).
    pub fn run_failed(message: impl Into<String>) -> Self {
        Self {
            kind: CliErrorKind::RunFailed,
            message: message.into(),
        }
    }

    /// Interrupted (exit 130).
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self {
            kind: CliErrorKind::Interrupted,
            message: message.into(),
        }
    }

    /// An I/O failure while writing outputs at `path` (exit 3).
    pub fn io(what: &str, path: &std::path::Path, err: &std::io::Error) -> Self {
        Self::run_failed(format!("{what} {}: {err}", path.display()))
    }

    /// The process exit code of this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            CliErrorKind::InvalidInput => EXIT_INVALID_INPUT,
            CliErrorKind::RunFailed => EXIT_RUN_FAILED,
            CliErrorKind::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
