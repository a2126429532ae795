//! The output directory's safety rules: one run at a time (an exclusive lock naming its holder's
//! pid), and resume only what the very same run started.
//!
//! Decision for `weir run` on an existing `--out` (see [`decide`]):
//! * no `checkpoint.json` and no (or an empty) dataset file: a fresh run;
//! * a checkpoint of the same spec fingerprint, seed and record count: resume after its last row
//!   group, or — when it is complete — say so and change nothing;
//! * anything else (another spec, seed or record count; a damaged checkpoint; a dataset shorter
//!   than its checkpoint; a dataset without a checkpoint): refuse with exit 2 naming what differs,
//!   unless `--fresh`, which discards the old outputs and starts over.

use crate::error::CliError;
use crate::output::{Checkpoint, DatasetFormat, CHECKPOINT_FILE};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `weir.lock`: held (exclusively) by the process writing the directory; contains its pid.
pub const LOCK_FILE: &str = "weir.lock";

/// What makes two runs "the same run" for resuming: the spec (without seed and records), the
/// seed, the record count and the dataset's format (a CSV dataset is never resumed as JSONL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    /// Fingerprint of the spec with `seed` and `records` left out.
    pub fingerprint: String,
    /// The seed in effect.
    pub seed: u64,
    /// Records requested.
    pub records: u64,
    /// The dataset's format (`--format`).
    pub format: DatasetFormat,
}

/// The exclusive lock on an output directory; released when dropped or when the process ends
/// (also on `kill -9`: the OS drops the lock with the file descriptor).
#[derive(Debug)]
pub struct OutDirLock {
    _file: File,
    path: PathBuf,
}

impl OutDirLock {
    /// Creates `dir` if needed and takes its lock, writing this process's pid into the lock file.
    /// A directory locked by another process is refused (exit 2) naming the holder's pid.
    pub fn acquire(dir: &Path) -> Result<Self, CliError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::io("cannot create output directory", dir, &e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| CliError::io("cannot open", &path, &e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "another process (pid not yet written)".to_string(),
                    pid => format!("process {pid}"),
                };
                return Err(CliError::invalid_input(format!(
                    "{} is in use by {holder} (lock {}); wait for it to finish or choose another --out",
                    dir.display(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(CliError::io("cannot lock", &path, &e)),
        }
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())?;
            f.flush()
        };
        write_pid(&mut file).map_err(|e| CliError::io("cannot write", &path, &e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What `weir run` does with an output directory.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start from row group 0 (earlier outputs, if any, are discarded).
    Fresh,
    /// Continue after the checkpoint's last row group.
    Resume(Checkpoint),
    /// The checkpoint says the same run already finished: nothing to do.
    AlreadyComplete(Checkpoint),
}

/// Reads `dir/checkpoint.json`: `Ok(None)` when absent; an error naming the file when it is
/// empty, truncated or unparsable.
pub fn read_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, CliError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::io("cannot read", &path, &e)),
    };
    if text.trim().is_empty() {
        return Err(damaged(&path, "the file is empty"));
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| damaged(&path, &e.to_string()))
}

fn damaged(path: &Path, what: &str) -> CliError {
    CliError::invalid_input(format!(
        "{} is damaged ({what}); the run cannot resume from it. Pass --fresh to discard the \
         directory's outputs and start over",
        path.display()
    ))
}

/// Decides between a fresh run, a resume, and "already complete"; refuses (exit 2) whatever
/// would silently destroy or mix outputs. `fresh` (`--fresh`) always starts over.
pub fn decide(dir: &Path, identity: &RunIdentity, fresh: bool) -> Result<Decision, CliError> {
    if fresh {
        return Ok(Decision::Fresh);
    }
    let dataset = dir.join(identity.format.file_name());
    let dataset_len = match std::fs::metadata(&dataset) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(CliError::io("cannot read", &dataset, &e)),
    };
    let Some(cp) = read_checkpoint(dir)? else {
        return match dataset_len {
            None | Some(0) => Ok(Decision::Fresh),
            Some(n) => Err(CliError::invalid_input(format!(
                "{} already holds a dataset ({n} bytes) but no {CHECKPOINT_FILE}, so it cannot \
                 be resumed; pass --fresh to overwrite it, or choose another --out",
                dir.display()
            ))),
        };
    };
    let mut differs: Vec<String> = Vec::new();
    if cp.seed != identity.seed {
        differs.push(format!(
            "seed (checkpoint {}, this run {})",
            cp.seed, identity.seed
        ));
    }
    if cp.records != identity.records {
        differs.push(format!(
            "records (checkpoint {}, this run {})",
            cp.records, identity.records
        ));
    }
    if cp.format != identity.format {
        differs.push(format!(
            "format (checkpoint {}, this run {})",
            cp.format.as_str(),
            identity.format.as_str()
        ));
    }
    if cp.fingerprint != identity.fingerprint {
        differs.push(format!(
            "workflow spec (fingerprint {} in the checkpoint, {} now)",
            cp.fingerprint, identity.fingerprint
        ));
    }
    if !differs.is_empty() {
        return Err(CliError::invalid_input(format!(
            "{} holds the outputs of a different run: {} differ{}. Resume with the same \
             settings, pass --fresh to discard them and start over, or choose another --out",
            dir.display(),
            differs.join(", "),
            if differs.len() == 1 { "s" } else { "" }
        )));
    }
    if dataset_len.unwrap_or(0) < cp.dataset_bytes {
        return Err(CliError::invalid_input(format!(
            "{} is shorter ({} bytes) than its checkpoint says ({} bytes): the dataset was \
             truncated or replaced. Pass --fresh to start over",
            dataset.display(),
            dataset_len.unwrap_or(0),
            cp.dataset_bytes
        )));
    }
    Ok(if cp.complete {
        Decision::AlreadyComplete(cp)
    } else {
        Decision::Resume(cp)
    })
}
