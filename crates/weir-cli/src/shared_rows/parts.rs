//! The durable side of a shared job: `OUT/parts/` (one file per finished row group, the truth
//! about what is done), `OUT/parts/job.json` (the job every worker of this directory must be),
//! per-worker files in `OUT/workers/`, and the assembly of `OUT/dataset.jsonl`.
//!
//! A part is written to a temporary file, fsynced, and renamed into place: its presence is the
//! commit. A row group generated twice (a slow worker whose lease was taken over, or Redis
//! came back empty) renames the same bytes over the same name — its content is a pure function
//! of the run's seed and the row-group index — so nothing is duplicated.

use crate::error::CliError;
use crate::outdir::{RunIdentity, LOCK_FILE};
use crate::output::{csv_field, csv_line, DatasetFormat, OrderedRecord, RowGroupShape};
use crate::summary::WorkerSummary;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use weir_runtime::generators::Record;

/// `OUT/parts/`.
pub const PARTS_DIR: &str = "parts";
/// `OUT/parts/job.json`.
pub const JOB_FILE: &str = "job.json";
/// `OUT/workers/`.
pub const WORKERS_DIR: &str = "workers";
/// `OUT/assemble.lock`: held (exclusively) by the worker assembling the dataset.
pub const ASSEMBLE_LOCK: &str = "assemble.lock";

/// `parts/job.json`: the job this directory's parts belong to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedJobFile {
    /// Spec fingerprint (without seed and records).
    pub fingerprint: String,
    /// Seed.
    pub seed: u64,
    /// Records requested.
    pub records: u64,
    /// Dataset format.
    pub format: DatasetFormat,
    /// Rows per row group.
    pub buffer_size: u64,
    /// Names this directory to the coordinator (made when the file is created): a finished
    /// job first seen from a new directory is started over instead of counting as done there.
    pub token: String,
}

/// The shared output directory as one worker holds it: a shared lock on `weir.lock` (a
/// single-process `weir run` takes it exclusively, so the two exclude each other) and an
/// exclusive lock on its own `workers/NAME.lock` (two workers of one name are refused).
#[derive(Debug)]
pub struct PartStore {
    token: String,
    dir: PathBuf,
    parts: PathBuf,
    worker: String,
    format: DatasetFormat,
    columns: Vec<String>,
    shape: RowGroupShape,
    _dir_lock: File,
    _worker_lock: File,
}

impl PartStore {
    /// Opens (creating) `dir` for worker `worker` of the job `identity`; refuses (exit 2) a
    /// directory in use by a single-process run, holding another job's parts or a single-process
    /// run's outputs, or a worker name already running there.
    pub fn open(
        dir: &Path,
        identity: &RunIdentity,
        shape: RowGroupShape,
        columns: Vec<String>,
        worker: &str,
    ) -> Result<Self, CliError> {
        let parts = dir.join(PARTS_DIR);
        let workers = dir.join(WORKERS_DIR);
        for d in [dir, &parts, &workers] {
            std::fs::create_dir_all(d)
                .map_err(|e| CliError::io("cannot create output directory", d, &e))?;
        }
        let dir_lock = lock(&dir.join(LOCK_FILE), true, || {
            format!(
                "{} is in use by a single-process `weir run` (lock {}); wait for it to finish or \
                 choose another --out",
                dir.display(),
                dir.join(LOCK_FILE).display()
            )
        })?;
        let worker_lock = lock(&workers.join(format!("{worker}.lock")), false, || {
            format!(
                "a worker named {worker:?} is already running on {}; give each worker its own \
                 --worker NAME",
                dir.display()
            )
        })?;
        let job_path = parts.join(JOB_FILE);
        let ours = SharedJobFile {
            fingerprint: identity.fingerprint.clone(),
            seed: identity.seed,
            records: identity.records,
            format: identity.format,
            buffer_size: shape.buffer_size,
            token: new_token(dir, worker),
        };
        if !job_path.exists() {
            if dir.join(crate::output::CHECKPOINT_FILE).exists() {
                return Err(CliError::invalid_input(format!(
                    "{} holds a single-process run's outputs (checkpoint.json, no parts/job.json); \
                     resume it without --coordinator, or choose another --out",
                    dir.display()
                )));
            }
            // Create-if-absent with its whole content: write a private file, then hard-link it
            // to the name (fails if another worker got there first; then compare with theirs).
            let tmp = parts.join(format!(".job.json.tmp-{worker}-{}", std::process::id()));
            crate::output::write_json(&tmp, &ours)?;
            let linked = std::fs::hard_link(&tmp, &job_path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CliError::io("cannot create", &job_path, &e)),
            }
        }
        let text = std::fs::read_to_string(&job_path)
            .map_err(|e| CliError::io("cannot read", &job_path, &e))?;
        let theirs: SharedJobFile = serde_json::from_str(&text).map_err(|e| {
            CliError::invalid_input(format!(
                "{} is damaged ({e}); remove the directory to start over",
                job_path.display()
            ))
        })?;
        let differs = differences(&theirs, &ours);
        if !differs.is_empty() {
            return Err(CliError::invalid_input(format!(
                "{} holds the parts of a different shared job: {} differ{}. Start every worker \
                 with the same spec, --seed, --records and --format, or choose another --out",
                dir.display(),
                differs.join(", "),
                if differs.len() == 1 { "s" } else { "" }
            )));
        }
        remove_stale_temporaries(&parts, worker);
        Ok(Self {
            token: theirs.token,
            dir: dir.to_path_buf(),
            parts,
            worker: worker.to_owned(),
            format: identity.format,
            columns,
            shape,
            _dir_lock: dir_lock,
            _worker_lock: worker_lock,
        })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory's token (`parts/job.json`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Row groups of the job.
    pub fn row_groups(&self) -> u64 {
        self.shape.records.div_ceil(self.shape.buffer_size.max(1))
    }

    /// Row-group sizes.
    pub fn shape(&self) -> RowGroupShape {
        self.shape
    }

    /// `parts/rg-0000000007.jsonl`.
    pub fn part_path(&self, row_group: u64) -> PathBuf {
        part_path(&self.parts, row_group, self.format)
    }

    /// Whether row group `row_group`'s part is there.
    pub fn has_part(&self, row_group: u64) -> bool {
        self.part_path(row_group).exists()
    }

    /// The row groups whose parts are there (the durable truth of what is done), ascending.
    pub fn done_row_groups(&self) -> Vec<u64> {
        done_in(&self.parts, self.format, self.row_groups())
    }

    /// Writes one row group's part (temporary file, fsync, rename). Answers `false` when the
    /// part was already there (a duplicate: same bytes renamed over the same name).
    pub fn write_part(&self, row_group: u64, records: &[(u64, Record)]) -> Result<bool, CliError> {
        let dst = self.part_path(row_group);
        let tmp = self.parts.join(format!(
            ".rg-{row_group:010}.tmp-{}-{}",
            self.worker,
            std::process::id()
        ));
        let mut buf = Vec::with_capacity(records.len() * 256);
        for (_, r) in records {
            match self.format {
                DatasetFormat::Jsonl => {
                    serde_json::to_writer(
                        &mut buf,
                        &OrderedRecord {
                            record: r,
                            columns: &self.columns,
                        },
                    )
                    .map_err(|e| CliError::run_failed(format!("cannot encode a row: {e}")))?;
                    buf.push(b'\n');
                }
                DatasetFormat::Csv => {
                    let line = csv_line(
                        Vec::new(),
                        self.columns.iter().map(|c| csv_field(r.get(c))),
                        &dst,
                    )?;
                    buf.extend_from_slice(&line);
                }
            }
        }
        let mut f = File::create(&tmp).map_err(|e| CliError::io("cannot create", &tmp, &e))?;
        f.write_all(&buf)
            .and_then(|()| f.sync_data())
            .map_err(|e| CliError::io("cannot write", &tmp, &e))?;
        drop(f);
        let fresh = !dst.exists();
        std::fs::rename(&tmp, &dst).map_err(|e| CliError::io("cannot rename to", &dst, &e))?;
        sync_dir(&self.parts);
        Ok(fresh)
    }

    /// `workers/NAME.json`: this worker's figures over its sessions (absent: zero).
    pub fn read_worker(&self) -> WorkerSummary {
        read_worker_file(&self.worker_file(&self.worker)).unwrap_or_default()
    }

    /// Rewrites `workers/NAME.json` (atomically).
    pub fn write_worker(&self, stats: &WorkerSummary) -> Result<(), CliError> {
        let dst = self.worker_file(&self.worker);
        let tmp = dst.with_extension("json.tmp");
        crate::output::write_json(&tmp, stats)?;
        std::fs::rename(&tmp, &dst).map_err(|e| CliError::io("cannot write", &dst, &e))
    }

    /// Every worker's figures (`workers/*.json`), by name.
    pub fn read_workers(&self) -> BTreeMap<String, WorkerSummary> {
        let mut out = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join(WORKERS_DIR)) else {
            return out;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if let Some(stats) = read_worker_file(&path) {
                out.insert(name.to_owned(), stats);
            }
        }
        out
    }

    /// The worker's own session directory (`workers/NAME/`: its events, summary, report).
    pub fn session_dir(&self) -> PathBuf {
        self.dir.join(WORKERS_DIR).join(&self.worker)
    }

    fn worker_file(&self, name: &str) -> PathBuf {
        self.dir.join(WORKERS_DIR).join(format!("{name}.json"))
    }

    /// When every part is there: writes `dataset.jsonl` (or `.csv`) in row order — under the
    /// exclusive `assemble.lock`, through a temporary file and a rename, so a reader never sees
    /// half a dataset and two workers assembling at once write it once each, identically —
    /// and answers its figures; `None` while parts are missing.
    pub fn assemble(&self) -> Result<Option<Assembled>, CliError> {
        let lock_path = self.dir.join(ASSEMBLE_LOCK);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| CliError::io("cannot open", &lock_path, &e))?;
        lock_file
            .lock()
            .map_err(|e| CliError::io("cannot lock", &lock_path, &e))?;
        let total = self.row_groups();
        if self.done_row_groups().len() as u64 != total {
            return Ok(None);
        }
        let dst = self.dir.join(self.format.file_name());
        let tmp = self
            .dir
            .join(format!(".{}.tmp-{}", self.format.file_name(), self.worker));
        let mut out = std::io::BufWriter::new(
            File::create(&tmp).map_err(|e| CliError::io("cannot create", &tmp, &e))?,
        );
        let mut figures = Assembled::default();
        if self.format == DatasetFormat::Csv {
            let header = csv_line(
                Vec::new(),
                self.columns
                    .iter()
                    .map(|c| std::borrow::Cow::Borrowed(c.as_str())),
                &dst,
            )?;
            out.write_all(&header)
                .map_err(|e| CliError::io("cannot write", &tmp, &e))?;
            figures.bytes += header.len() as u64;
        }
        for rg in 0..total {
            let path = self.part_path(rg);
            let bytes = std::fs::read(&path).map_err(|e| CliError::io("cannot read", &path, &e))?;
            let rows = count_rows(&bytes, self.format, &path)?;
            figures.records += rows;
            figures.rows_dropped += self.shape.size(rg).saturating_sub(rows);
            figures.bytes += bytes.len() as u64;
            out.write_all(&bytes)
                .map_err(|e| CliError::io("cannot write", &tmp, &e))?;
        }
        let f = out
            .into_inner()
            .map_err(|e| CliError::io("cannot write", &tmp, e.error()))?;
        f.sync_data()
            .map_err(|e| CliError::io("cannot sync", &tmp, &e))?;
        drop(f);
        std::fs::rename(&tmp, &dst).map_err(|e| CliError::io("cannot rename to", &dst, &e))?;
        sync_dir(&self.dir);
        Ok(Some(figures))
    }
}

/// What the assembled dataset holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Assembled {
    /// Records written.
    pub records: u64,
    /// Rows dropped (row-group sizes − rows in their parts).
    pub rows_dropped: u64,
    /// Bytes of the dataset file.
    pub bytes: u64,
}

/// Removes the half-written parts a killed process of this worker name left behind (no live
/// process has the name: its lock is ours). Other workers' temporaries are theirs to clean.
fn remove_stale_temporaries(parts: &Path, worker: &str) {
    let Ok(entries) = std::fs::read_dir(parts) else {
        return;
    };
    let mark = format!(".tmp-{worker}-");
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".rg-") && name.contains(&mark) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn part_path(parts: &Path, row_group: u64, format: DatasetFormat) -> PathBuf {
    parts.join(format!("rg-{row_group:010}.{}", format.as_str()))
}

fn done_in(parts: &Path, format: DatasetFormat, total: u64) -> Vec<u64> {
    let mut done = Vec::new();
    let Ok(entries) = std::fs::read_dir(parts) else {
        return done;
    };
    let suffix = format!(".{}", format.as_str());
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name
            .strip_prefix("rg-")
            .and_then(|n| n.strip_suffix(suffix.as_str()))
        else {
            continue;
        };
        if let Ok(rg) = num.parse::<u64>() {
            if rg < total {
                done.push(rg);
            }
        }
    }
    done.sort_unstable();
    done
}

/// Rows in a part: JSON lines, or CSV records (a quoted field may hold newlines).
fn count_rows(bytes: &[u8], format: DatasetFormat, path: &Path) -> Result<u64, CliError> {
    match format {
        DatasetFormat::Jsonl => Ok(bytes.iter().filter(|b| **b == b'\n').count() as u64),
        DatasetFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(bytes);
            let mut n = 0;
            for r in reader.records() {
                r.map_err(|e| CliError::run_failed(format!("{} is damaged: {e}", path.display())))?;
                n += 1;
            }
            Ok(n)
        }
    }
}

fn read_worker_file(path: &Path) -> Option<WorkerSummary> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Fsyncs a directory so a rename in it survives a crash (best effort: not every platform
/// lets a directory be opened).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Opens and locks `path` (shared or exclusive), writing this process's pid into it when
/// exclusive; `busy` words the refusal (exit 2).
fn lock(path: &Path, shared: bool, busy: impl Fn() -> String) -> Result<File, CliError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| CliError::io("cannot open", path, &e))?;
    let got = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match got {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(CliError::invalid_input(busy())),
        Err(TryLockError::Error(e)) => return Err(CliError::io("cannot lock", path, &e)),
    }
    if !shared {
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
    }
    Ok(file)
}

/// A token unique to this directory's creation (time, process, worker, path).
fn new_token(dir: &Path, worker: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    weir_contracts::identity_hash(&[
        nanos.to_string(),
        std::process::id().to_string(),
        worker.to_owned(),
        dir.display().to_string(),
    ])
}

fn differences(theirs: &SharedJobFile, ours: &SharedJobFile) -> Vec<String> {
    let mut d = Vec::new();
    if theirs.seed != ours.seed {
        d.push(format!(
            "seed (parts {}, this worker {})",
            theirs.seed, ours.seed
        ));
    }
    if theirs.records != ours.records {
        d.push(format!(
            "records (parts {}, this worker {})",
            theirs.records, ours.records
        ));
    }
    if theirs.format != ours.format {
        d.push(format!(
            "format (parts {}, this worker {})",
            theirs.format.as_str(),
            ours.format.as_str()
        ));
    }
    if theirs.buffer_size != ours.buffer_size {
        d.push(format!(
            "buffer_size (parts {}, this worker {})",
            theirs.buffer_size, ours.buffer_size
        ));
    }
    if theirs.fingerprint != ours.fingerprint {
        d.push(format!(
            "workflow spec (fingerprint {} in the parts, {} now)",
            theirs.fingerprint, ours.fingerprint
        ));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(seed: u64, format: DatasetFormat) -> RunIdentity {
        RunIdentity {
            fingerprint: "f".into(),
            seed,
            records: 5,
            format,
        }
    }

    fn shape() -> RowGroupShape {
        RowGroupShape {
            records: 5,
            buffer_size: 2,
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-parts-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn rows(rg: u64, n: u64) -> Vec<(u64, Record)> {
        (0..n)
            .map(|i| {
                let row = rg * 2 + i;
                let mut r = Record::new();
                r.insert("b".into(), json!(format!("x, \"{row}\"\nnext")));
                r.insert("a".into(), json!(row));
                (row, r)
            })
            .collect()
    }

    fn open(
        dir: &Path,
        seed: u64,
        format: DatasetFormat,
        worker: &str,
    ) -> Result<PartStore, CliError> {
        PartStore::open(
            dir,
            &identity(seed, format),
            shape(),
            vec!["a".into(), "b".into()],
            worker,
        )
    }

    #[test]
    fn parts_are_idempotent_and_assemble_in_row_order_once_all_are_there() {
        for format in [DatasetFormat::Jsonl, DatasetFormat::Csv] {
            let dir = scratch(format.as_str());
            let a = open(&dir, 1, format, "a").expect("open a");
            let b = open(&dir, 1, format, "b").expect("open b (same job)");
            assert_eq!(a.row_groups(), 3);
            // Out of order, by two workers, one of them twice (a lost claim).
            assert!(b.write_part(2, &rows(2, 1)).expect("part 2"));
            assert!(a.write_part(0, &rows(0, 2)).expect("part 0"));
            assert_eq!(a.assemble().expect("assemble"), None, "part 1 is missing");
            let first = std::fs::read(a.part_path(0)).expect("part");
            assert!(!b.write_part(0, &rows(0, 2)).expect("again"), "a duplicate");
            assert_eq!(std::fs::read(a.part_path(0)).expect("part"), first);
            // Row group 1 lost a row (dropped).
            assert!(b.write_part(1, &rows(1, 1)).expect("part 1"));
            assert_eq!(a.done_row_groups(), [0, 1, 2]);
            let got = b.assemble().expect("assemble").expect("complete");
            assert_eq!((got.records, got.rows_dropped), (4, 1));
            let text = std::fs::read_to_string(dir.join(format.file_name())).expect("dataset");
            assert_eq!(got.bytes, text.len() as u64);
            match format {
                DatasetFormat::Jsonl => {
                    let firsts: Vec<&str> = text.lines().map(|l| &l[..8]).collect();
                    assert_eq!(
                        firsts,
                        [r#"{"a":0,""#, r#"{"a":1,""#, r#"{"a":2,""#, r#"{"a":4,""#]
                    );
                }
                DatasetFormat::Csv => {
                    let mut r = csv::Reader::from_reader(text.as_bytes());
                    assert_eq!(
                        r.headers().expect("header").iter().collect::<Vec<_>>(),
                        ["a", "b"]
                    );
                    let a_col: Vec<String> =
                        r.records().map(|x| x.expect("row")[0].to_owned()).collect();
                    assert_eq!(a_col, ["0", "1", "2", "4"]);
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn another_job_a_worker_name_in_use_and_a_single_process_directory_are_refused() {
        let dir = scratch("refuse");
        let a = open(&dir, 1, DatasetFormat::Jsonl, "a").expect("open");
        let other = open(&dir, 2, DatasetFormat::Csv, "b").expect_err("another job");
        let text = other.to_string();
        assert!(text.contains("seed (parts 1, this worker 2)"), "{text}");
        assert!(
            text.contains("format (parts jsonl, this worker csv)"),
            "{text}"
        );
        let twin = open(&dir, 1, DatasetFormat::Jsonl, "a").expect_err("same name");
        assert!(twin.to_string().contains("already running"), "{twin}");
        drop(a);
        // A half-written part of a killed `a` is removed when `a` comes back; b's is kept.
        let stale = dir.join(PARTS_DIR).join(".rg-0000000001.tmp-a-999");
        let theirs = dir.join(PARTS_DIR).join(".rg-0000000001.tmp-b-998");
        std::fs::write(&stale, "half").expect("stale");
        std::fs::write(&theirs, "half").expect("theirs");
        let a = open(&dir, 1, DatasetFormat::Jsonl, "a").expect("reopen");
        assert!(!stale.exists() && theirs.exists());
        assert_eq!(a.done_row_groups(), Vec::<u64>::new());
        drop(a);
        let single = scratch("single");
        std::fs::create_dir_all(&single).expect("dir");
        std::fs::write(single.join(crate::output::CHECKPOINT_FILE), "{}").expect("cp");
        let refused = open(&single, 1, DatasetFormat::Jsonl, "a").expect_err("single-process");
        assert!(refused.to_string().contains("single-process"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&single);
    }
}
