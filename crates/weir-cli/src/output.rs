//! The run's output directory: `dataset.jsonl`, `events.jsonl`, `capacity-plan.json`,
//! `summary.json`, `report-data.json`, `report.html`.
//!
//! [`RunOutputs::create`] is called only after the spec is valid, so invalid input never leaves a
//! directory behind. The dataset is written in row order even when row groups finish out of
//! order (finished groups wait in memory until every earlier group is written).

use crate::error::CliError;
use crate::outdir::{OutDirLock, RunIdentity};
use crate::report::{CollectorDetail, ReportData, TimelineCollector};
use crate::spec::BuiltWorkflow;
use crate::summary::{CarriedTotals, ModelSummary, Summary};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use weir_contracts::{
    RequestAdmissionEvent, RequestEventKind, SchedulerAdmissionEvent, SchedulerEventKind,
};
use weir_runtime::generators::Record;
use weir_telemetry::{EventSink, JsonlEventSink};

/// `dataset.jsonl` (the default format).
pub const DATASET_FILE: &str = "dataset.jsonl";
/// `dataset.csv` (`--format csv`).
pub const DATASET_CSV_FILE: &str = "dataset.csv";
/// `events.jsonl`.
pub const EVENTS_FILE: &str = "events.jsonl";
/// `capacity-plan.json`.
pub const CAPACITY_PLAN_FILE: &str = "capacity-plan.json";
/// `summary.json`.
pub const SUMMARY_FILE: &str = "summary.json";

/// The dataset's file format (`--format`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    /// `dataset.jsonl`: one JSON object per record, keys in declared column order (default).
    #[default]
    Jsonl,
    /// `dataset.csv`: a header row of the declared columns, then one row per record; strings
    /// as they are, `null` as an empty field, other values as their JSON text.
    Csv,
}

impl DatasetFormat {
    /// The dataset's file name in the output directory.
    pub const fn file_name(self) -> &'static str {
        match self {
            Self::Jsonl => DATASET_FILE,
            Self::Csv => DATASET_CSV_FILE,
        }
    }

    /// The `--format` word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }

    /// True for the default (kept out of `checkpoint.json`, so JSONL checkpoints are unchanged).
    pub fn is_jsonl(&self) -> bool {
        *self == Self::Jsonl
    }
}

/// Which events go to `events.jsonl` (the report's collector sees every stream regardless).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EventsMode {
    /// The notable events only (default): row groups, failures, retries, rate limits, limit
    /// changes, admission timeouts and the run's start and end — a few hundred bytes per
    /// record instead of 12–37 KB, and nothing the report shows is lost (its collector sees
    /// every event in process).
    #[default]
    Notable,
    /// Both streams, every event.
    Full,
    /// Only the request stream, every event.
    Requests,
    /// No `events.jsonl`.
    None,
}

impl EventsMode {
    /// Notable scheduler events (written in `notable` mode).
    pub fn notable_scheduler(kind: SchedulerEventKind) -> bool {
        use SchedulerEventKind as S;
        matches!(
            kind,
            S::RowGroupAdmitted
                | S::RowGroupCheckpointed
                | S::RetryDeferred
                | S::NonRetryableDropped
                | S::SchedulerJobStarted
                | S::SchedulerJobCompleted
        )
    }

    /// Notable request events (written in `notable` mode).
    pub fn notable_request(kind: RequestEventKind) -> bool {
        use RequestEventKind as R;
        matches!(
            kind,
            R::RequestRateLimited
                | R::RequestLimitDecreased
                | R::RequestLimitIncreased
                | R::RequestSoftCeilingRecovered
                | R::RequestFullyRecovered
                | R::RequestEffectiveCapChanged
                | R::RequestResourceRegistered
                | R::RequestWaitTimeout
                | R::SharedLimitsDegraded
                | R::SharedLimitsRecovered
        )
    }
}

/// The JSONL log behind a kind filter (the `notable` mode).
#[derive(Debug)]
struct FilteredSink {
    inner: Arc<JsonlEventSink>,
}

impl EventSink<SchedulerAdmissionEvent> for FilteredSink {
    fn accepts(&self, kind: SchedulerEventKind) -> bool {
        EventsMode::notable_scheduler(kind)
    }

    fn emit(&self, event: &SchedulerAdmissionEvent) {
        if EventsMode::notable_scheduler(event.event_kind()) {
            EventSink::<SchedulerAdmissionEvent>::emit(&*self.inner, event);
        }
    }
}

impl EventSink<RequestAdmissionEvent> for FilteredSink {
    fn accepts(&self, kind: RequestEventKind) -> bool {
        EventsMode::notable_request(kind)
    }

    fn emit(&self, event: &RequestAdmissionEvent) {
        if EventsMode::notable_request(event.event_kind()) {
            EventSink::<RequestAdmissionEvent>::emit(&*self.inner, event);
        }
    }
}

/// `./weir-out/<name>`, with characters unsafe in a path segment replaced by `_`.
pub fn default_out_dir(workflow_name: &str) -> PathBuf {
    let safe: String = workflow_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.is_empty() || safe.chars().all(|c| c == '.') {
        "workflow".to_string()
    } else {
        safe
    };
    PathBuf::from("weir-out").join(safe)
}

/// `checkpoint.json`: how far the dataset got, so the same command can resume.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

/// Progress of a run's dataset, rewritten (atomically, via rename) after row groups are written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Fingerprint of the spec (without seed and records) that produced the dataset.
    pub fingerprint: String,
    /// The run's seed.
    pub seed: u64,
    /// The run's record count.
    pub records: u64,
    /// Row groups fully written, in order.
    pub row_groups_written: u64,
    /// Records in those row groups.
    pub records_written: u64,
    /// Rows dropped in those row groups.
    pub rows_dropped: u64,
    /// Bytes of `dataset.jsonl` that belong to them.
    pub dataset_bytes: u64,
    /// True once every row group is written.
    pub complete: bool,
    /// Counters of every session so far (as of this checkpoint).
    pub carried: CarriedTotals,
    /// The dataset's format (absent: `jsonl`, which every checkpoint before `--format` was).
    #[serde(default, skip_serializing_if = "DatasetFormat::is_jsonl")]
    pub format: DatasetFormat,
}

/// Row-group sizes of a run: `buffer_size` rows each, the last one shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroupShape {
    /// Records requested.
    pub records: u64,
    /// Rows per row group (≥ 1).
    pub buffer_size: u64,
}

impl RowGroupShape {
    /// Rows in row group `rg`.
    pub fn size(&self, rg: u64) -> u64 {
        let start = rg.saturating_mul(self.buffer_size);
        self.records.saturating_sub(start).min(self.buffer_size)
    }
}

/// Writes records in row order: row group `n` is written once groups `0..n` are.
#[derive(Debug)]
struct DatasetState {
    file: BufWriter<File>,
    format: DatasetFormat,
    /// Output key order: the declared columns (keys a record has beyond them follow in name
    /// order; empty = name order, the runtime's `Record` order).
    columns: Vec<String>,
    next_row_group: u64,
    pending: BTreeMap<u64, Vec<Record>>,
    written: u64,
    dropped: u64,
    bytes: u64,
    /// Reused serialization buffer (one allocation per run, not per record).
    line: Vec<u8>,
    /// When the checkpoint was last rewritten.
    last_checkpoint: Option<Instant>,
}

impl DatasetState {
    /// Appends `rows` (JSON lines or CSV rows), counting records and bytes.
    fn write_rows<'r>(
        &mut self,
        rows: impl IntoIterator<Item = &'r Record>,
        path: &Path,
    ) -> Result<(), CliError> {
        for r in rows {
            self.line.clear();
            match self.format {
                DatasetFormat::Jsonl => {
                    let ordered = OrderedRecord {
                        record: r,
                        columns: &self.columns,
                    };
                    serde_json::to_writer(&mut self.line, &ordered).map_err(|e| {
                        CliError::run_failed(format!("cannot write {}: {e}", path.display()))
                    })?;
                    self.line.push(b'\n');
                }
                DatasetFormat::Csv => {
                    let fields = self.columns.iter().map(|c| csv_field(r.get(c)));
                    self.line = csv_line(std::mem::take(&mut self.line), fields, path)?;
                }
            }
            self.append_line(path)?;
            self.written += 1;
        }
        Ok(())
    }

    /// Writes the CSV header (the declared columns) at the start of a fresh `dataset.csv`.
    fn write_csv_header(&mut self, path: &Path) -> Result<(), CliError> {
        let header = self
            .columns
            .iter()
            .map(|c| std::borrow::Cow::Borrowed(c.as_str()));
        self.line = csv_line(std::mem::take(&mut self.line), header, path)?;
        self.append_line(path)
    }

    /// Appends the serialized `line` to the file, counting its bytes.
    fn append_line(&mut self, path: &Path) -> Result<(), CliError> {
        self.file
            .write_all(&self.line)
            .map_err(|e| CliError::io("cannot write", path, &e))?;
        self.bytes += self.line.len() as u64;
        Ok(())
    }
}

/// A record serialized with its keys in declared column order (then any other keys by name).
pub(crate) struct OrderedRecord<'a> {
    /// The record.
    pub(crate) record: &'a Record,
    /// The declared columns.
    pub(crate) columns: &'a [String],
}

impl serde::Serialize for OrderedRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.record.len()))?;
        for c in self.columns {
            if let Some(v) = self.record.get(c) {
                map.serialize_entry(c, v)?;
            }
        }
        for (k, v) in self.record {
            if !self.columns.contains(k) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// One CSV field: a string as it is, a missing value or `null` empty, anything else (numbers,
/// booleans, nested arrays and objects) as its compact JSON text.
pub(crate) fn csv_field(value: Option<&serde_json::Value>) -> std::borrow::Cow<'_, str> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => std::borrow::Cow::Borrowed(""),
        Some(Value::String(s)) => std::borrow::Cow::Borrowed(s.as_str()),
        Some(other) => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Encodes one CSV row (RFC 4180 quoting, `\n` line end) into `buf`, which comes back holding it.
pub(crate) fn csv_line<'f>(
    buf: Vec<u8>,
    fields: impl Iterator<Item = std::borrow::Cow<'f, str>>,
    path: &Path,
) -> Result<Vec<u8>, CliError> {
    let fail = |e: String| CliError::run_failed(format!("cannot write {}: {e}", path.display()));
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(1024)
        .from_writer(buf);
    w.write_record(fields.map(|f| f.into_owned()))
        .map_err(|e| fail(e.to_string()))?;
    w.into_inner().map_err(|e| fail(e.to_string()))
}

/// How often the checkpoint (and an fsync of the dataset) happens at most: rewriting it after
/// every row group costs an fsync per group, which dominates fast local runs. A kill loses at
/// most this much checkpointed progress (the rows are regenerated identically on resume).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// The open output directory of one run.
#[derive(Debug)]
pub struct RunOutputs {
    dir: PathBuf,
    /// `dir/dataset.jsonl` or `dir/dataset.csv`.
    dataset_path: PathBuf,
    events_mode: EventsMode,
    events: Option<Arc<JsonlEventSink>>,
    collector: Arc<TimelineCollector>,
    identity: RunIdentity,
    shape: Option<RowGroupShape>,
    /// Figures of the earlier sessions (fixed for this session).
    base: CarriedTotals,
    /// Column → model alias, for failure groups derived from events.
    column_models: BTreeMap<String, String>,
    session_started: Instant,
    dataset: Mutex<DatasetState>,
    /// Records written, readable without the dataset lock (progress display).
    written_counter: Arc<std::sync::atomic::AtomicU64>,
    /// The directory's lock, held until the outputs are dropped.
    _lock: Option<OutDirLock>,
}

/// Everything [`RunOutputs::open`] needs besides the directory.
#[derive(Debug)]
pub struct OpenSpec {
    /// Which events go to `events.jsonl`.
    pub events: EventsMode,
    /// The run's identity (recorded in every checkpoint).
    pub identity: RunIdentity,
    /// Row-group sizes (to count dropped rows from what is written).
    pub shape: Option<RowGroupShape>,
    /// Column → model alias.
    pub column_models: BTreeMap<String, String>,
    /// The checkpoint to resume from (`None`: start fresh, discarding earlier outputs).
    pub resume: Option<Checkpoint>,
    /// The directory's lock (taken by the caller before deciding to resume).
    pub lock: Option<OutDirLock>,
    /// How closely the report's collector follows the scheduler stream.
    pub detail: CollectorDetail,
    /// The dataset's format.
    pub format: DatasetFormat,
    /// Output columns in key order: the spec's declared columns (a seed dataset's columns,
    /// once seed datasets exist, go first). Empty: keys in name order.
    pub columns: Vec<String>,
}

impl RunOutputs {
    /// Creates `dir` (and parents), `dataset.jsonl`, and `events.jsonl` unless `events` is `None`
    /// (no lock, no identity: for tests and tools).
    pub fn create(dir: &Path, events: EventsMode) -> Result<Self, CliError> {
        Self::open(
            dir,
            OpenSpec {
                events,
                identity: RunIdentity {
                    fingerprint: String::new(),
                    seed: 0,
                    records: 0,
                    format: DatasetFormat::Jsonl,
                },
                shape: None,
                column_models: BTreeMap::new(),
                resume: None,
                lock: None,
                detail: CollectorDetail::Full,
                format: DatasetFormat::Jsonl,
                columns: Vec::new(),
            },
        )
    }

    /// Opens the output directory. With `resume`, the dataset is cut back to the checkpointed
    /// length and appended to, and the event log is appended to; otherwise every earlier output
    /// is discarded.
    pub fn open(dir: &Path, o: OpenSpec) -> Result<Self, CliError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::io("cannot create output directory", dir, &e))?;
        let dataset_path = dir.join(o.format.file_name());
        let file = match &o.resume {
            Some(cp) => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&dataset_path)
                    .map_err(|e| CliError::io("cannot reopen", &dataset_path, &e))?;
                // Anything after the last checkpointed row group is a partial write: drop it.
                f.set_len(cp.dataset_bytes)
                    .map_err(|e| CliError::io("cannot truncate", &dataset_path, &e))?;
                drop(f);
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&dataset_path)
                    .map_err(|e| CliError::io("cannot reopen", &dataset_path, &e))?
            }
            None => {
                // A fresh run: outputs of an earlier run no longer describe the dataset.
                for stale in [
                    DATASET_FILE,
                    DATASET_CSV_FILE,
                    CHECKPOINT_FILE,
                    SUMMARY_FILE,
                    CAPACITY_PLAN_FILE,
                    crate::report::REPORT_DATA_FILE,
                    crate::report::REPORT_HTML_FILE,
                ] {
                    let p = dir.join(stale);
                    if p.exists() {
                        std::fs::remove_file(&p)
                            .map_err(|e| CliError::io("cannot remove", &p, &e))?;
                    }
                }
                File::create(&dataset_path)
                    .map_err(|e| CliError::io("cannot create", &dataset_path, &e))?
            }
        };
        let events_path = dir.join(EVENTS_FILE);
        let sink = match o.events {
            EventsMode::None => {
                if o.resume.is_none() && events_path.exists() {
                    std::fs::remove_file(&events_path)
                        .map_err(|e| CliError::io("cannot remove", &events_path, &e))?;
                }
                None
            }
            EventsMode::Notable | EventsMode::Full | EventsMode::Requests => {
                // JsonlEventSink appends: a fresh run truncates first, a resumed one keeps the log.
                if o.resume.is_none() {
                    File::create(&events_path)
                        .map_err(|e| CliError::io("cannot create", &events_path, &e))?;
                }
                Some(Arc::new(
                    JsonlEventSink::open(&events_path)
                        .map_err(|e| CliError::run_failed(e.to_string()))?,
                ))
            }
        };
        let (next_row_group, written, dropped, bytes) =
            o.resume.as_ref().map_or((0, 0, 0, 0), |cp| {
                (
                    cp.row_groups_written,
                    cp.records_written,
                    cp.rows_dropped,
                    cp.dataset_bytes,
                )
            });
        let fresh = o.resume.is_none();
        let mut dataset = DatasetState {
            file: BufWriter::with_capacity(256 * 1024, file),
            format: o.format,
            columns: o.columns,
            next_row_group,
            pending: BTreeMap::new(),
            written,
            dropped,
            bytes,
            line: Vec::with_capacity(1024),
            last_checkpoint: None,
        };
        if fresh && o.format == DatasetFormat::Csv {
            // The header is part of the checkpointed bytes, so a resume never writes it twice.
            dataset.write_csv_header(&dataset_path)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            dataset_path,
            events_mode: o.events,
            events: sink,
            collector: Arc::new(TimelineCollector::with_detail(
                crate::report::DEFAULT_MAX_POINTS,
                o.detail,
            )),
            identity: o.identity,
            shape: o.shape,
            base: o.resume.map(|cp| cp.carried).unwrap_or_default(),
            column_models: o.column_models,
            session_started: Instant::now(),
            written_counter: Arc::new(std::sync::atomic::AtomicU64::new(written)),
            dataset: Mutex::new(dataset),
            _lock: o.lock,
        })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The report's event collector (also among the sinks below).
    pub fn collector(&self) -> &Arc<TimelineCollector> {
        &self.collector
    }

    /// Sinks for the scheduler stream: the collector, plus the JSONL log in `full` and
    /// `notable` modes (filtered in the latter).
    pub fn scheduler_sinks(&self) -> Vec<Arc<dyn EventSink<SchedulerAdmissionEvent>>> {
        let mut v: Vec<Arc<dyn EventSink<SchedulerAdmissionEvent>>> = vec![self.collector.clone()];
        match (self.events_mode, &self.events) {
            (EventsMode::Full, Some(sink)) => v.push(sink.clone()),
            (EventsMode::Notable, Some(sink)) => v.push(Arc::new(FilteredSink {
                inner: sink.clone(),
            })),
            _ => {}
        }
        v
    }

    /// Sinks for the request stream: the collector, plus the JSONL log unless events are off
    /// (filtered in `notable` mode).
    pub fn request_sinks(&self) -> Vec<Arc<dyn EventSink<RequestAdmissionEvent>>> {
        let mut v: Vec<Arc<dyn EventSink<RequestAdmissionEvent>>> = vec![self.collector.clone()];
        match (self.events_mode, &self.events) {
            (EventsMode::Full | EventsMode::Requests, Some(sink)) => v.push(sink.clone()),
            (EventsMode::Notable, Some(sink)) => v.push(Arc::new(FilteredSink {
                inner: sink.clone(),
            })),
            _ => {}
        }
        v
    }

    /// Hands over the surviving records of one checkpointed row group (in row order within it).
    /// Groups may arrive in any order; each group must be handed over exactly once (empty when
    /// every row was dropped) for later groups to be written.
    pub fn write_row_group(&self, row_group: u64, records: Vec<Record>) -> Result<(), CliError> {
        self.write_group(row_group, records.len() as u64, GroupRows::Owned(records))
    }

    /// Like [`RunOutputs::write_row_group`], borrowing the rows (no copy when the group is the
    /// next one to write, which is the scheduler's order).
    pub fn write_row_group_ref(
        &self,
        row_group: u64,
        records: &[(u64, Record)],
    ) -> Result<(), CliError> {
        self.write_group(
            row_group,
            records.len() as u64,
            GroupRows::Borrowed(records),
        )
    }

    fn write_group(&self, row_group: u64, n: u64, rows: GroupRows<'_>) -> Result<(), CliError> {
        let path = self.dataset_path.clone();
        let mut d = self.dataset.lock().unwrap_or_else(PoisonError::into_inner);
        if row_group == d.next_row_group {
            match rows {
                GroupRows::Owned(v) => d.write_rows(&v, &path)?,
                GroupRows::Borrowed(v) => d.write_rows(v.iter().map(|(_, r)| r), &path)?,
            }
            self.group_done(&mut d, row_group, n);
        } else {
            let owned = match rows {
                GroupRows::Owned(v) => v,
                GroupRows::Borrowed(v) => v.iter().map(|(_, r)| r.clone()).collect(),
            };
            d.pending.insert(row_group, owned);
        }
        loop {
            let next = d.next_row_group;
            let Some(rows) = d.pending.remove(&next) else {
                break;
            };
            d.write_rows(&rows, &path)?;
            self.group_done(&mut d, next, rows.len() as u64);
        }
        self.written_counter
            .store(d.written, std::sync::atomic::Ordering::Relaxed);
        let due = d
            .last_checkpoint
            .is_none_or(|at| at.elapsed() >= CHECKPOINT_INTERVAL);
        if due {
            self.sync_and_checkpoint(&mut d, false)?;
        }
        Ok(())
    }

    /// Counts a written group's dropped rows and advances to the next group.
    fn group_done(&self, d: &mut DatasetState, row_group: u64, surviving: u64) {
        if let Some(shape) = self.shape {
            d.dropped += shape.size(row_group).saturating_sub(surviving);
        }
        d.next_row_group = row_group + 1;
    }

    /// Flushes and fsyncs the dataset, then rewrites the checkpoint (which must never claim
    /// bytes the disk does not have yet) with this session's counters so far.
    fn sync_and_checkpoint(&self, d: &mut DatasetState, complete: bool) -> Result<(), CliError> {
        let path = self.dataset_path.clone();
        d.file
            .flush()
            .map_err(|e| CliError::io("cannot write", &path, &e))?;
        d.file
            .get_ref()
            .sync_data()
            .map_err(|e| CliError::io("cannot sync", &path, &e))?;
        let counts = self.collector.counts();
        let mut carried = self.base.plus(
            self.session_started.elapsed().as_secs_f64(),
            &counts.tasks,
            &counts.requests,
        );
        let groups =
            crate::failures::session_groups(&[], &counts.failed_cells, &BTreeMap::new(), |c| {
                self.column_models.get(c).cloned()
            });
        crate::failures::merge(&mut carried.failures, &groups);
        let cp = self.checkpoint_of(d, complete, carried);
        self.write_checkpoint(&cp)?;
        d.last_checkpoint = Some(Instant::now());
        Ok(())
    }

    /// The checkpoint describing the dataset as written so far.
    fn checkpoint_of(
        &self,
        d: &DatasetState,
        complete: bool,
        carried: CarriedTotals,
    ) -> Checkpoint {
        Checkpoint {
            fingerprint: self.identity.fingerprint.clone(),
            seed: self.identity.seed,
            records: self.identity.records,
            row_groups_written: d.next_row_group,
            records_written: d.written,
            rows_dropped: d.dropped,
            dataset_bytes: d.bytes,
            complete,
            carried,
            format: self.identity.format,
        }
    }

    /// Atomically replaces `checkpoint.json`.
    fn write_checkpoint(&self, cp: &Checkpoint) -> Result<(), CliError> {
        let tmp = self.dir.join("checkpoint.json.tmp");
        write_json(&tmp, cp)?;
        let dst = self.dir.join(CHECKPOINT_FILE);
        std::fs::rename(&tmp, &dst).map_err(|e| CliError::io("cannot write", &dst, &e))
    }

    /// Earlier sessions' figures (zero for a fresh run).
    pub fn carried(&self) -> &CarriedTotals {
        &self.base
    }

    /// Rewrites the checkpoint with the session's final, cumulative figures; `complete` once
    /// every row group is written.
    pub fn final_checkpoint(&self, totals: CarriedTotals, complete: bool) -> Result<(), CliError> {
        let path = self.dataset_path.clone();
        let mut d = self.dataset.lock().unwrap_or_else(PoisonError::into_inner);
        d.file
            .flush()
            .map_err(|e| CliError::io("cannot write", &path, &e))?;
        d.file
            .get_ref()
            .sync_data()
            .map_err(|e| CliError::io("cannot sync", &path, &e))?;
        let cp = self.checkpoint_of(&d, complete, totals);
        drop(d);
        self.write_checkpoint(&cp)
    }

    /// A shared counter of records written (for live progress).
    pub fn written_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.written_counter.clone()
    }

    /// Row groups written so far (in order).
    pub fn row_groups_written(&self) -> u64 {
        self.dataset
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_row_group
    }

    /// Records written to `dataset.jsonl` so far.
    pub fn records_written(&self) -> u64 {
        self.dataset
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .written
    }

    /// Rows dropped in the written row groups (all sessions).
    pub fn rows_dropped(&self) -> u64 {
        self.dataset
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped
    }

    /// Flushes the dataset and event log and writes `capacity-plan.json`, `summary.json`,
    /// `report-data.json` and `report.html`. `summary.records_written` and `rows_dropped` are
    /// set from the dataset. Row groups still pending (a gap left by a group never handed over)
    /// are not written: they follow a group that is missing, so resuming regenerates them.
    pub fn finish(self, mut data: ReportData) -> Result<ReportData, CliError> {
        let path = self.dataset_path.clone();
        {
            let mut d = self.dataset.lock().unwrap_or_else(PoisonError::into_inner);
            d.pending.clear();
            d.file
                .flush()
                .map_err(|e| CliError::io("cannot write", &path, &e))?;
            data.summary.records_written = d.written;
            if self.shape.is_some() {
                data.summary.rows_dropped = d.dropped;
                data.summary.rows_unfinished = data
                    .summary
                    .records_requested
                    .saturating_sub(d.written + d.dropped);
            }
        }
        if let Some(sink) = &self.events {
            sink.close()
                .map_err(|e| CliError::run_failed(e.to_string()))?;
        }
        if let Some(plan) = &data.capacity_plan {
            write_json(&self.dir.join(CAPACITY_PLAN_FILE), plan)?;
        }
        write_json(&self.dir.join(SUMMARY_FILE), &data.summary)?;
        data.write(&self.dir)?;
        Ok(data)
    }
}

/// Rows of one group, owned (API callers) or borrowed (the scheduler's sink).
enum GroupRows<'a> {
    Owned(Vec<Record>),
    Borrowed(&'a [(u64, Record)]),
}

/// Pretty-prints `value` as JSON to `path`.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::run_failed(format!("cannot serialize {}: {e}", path.display())))?;
    std::fs::write(path, text + "\n").map_err(|e| CliError::io("cannot write", path, &e))
}

/// A summary with everything the workflow and the event collector know filled in: records
/// requested, per-model rows (alias, provider, model, static cap + the collector's counters),
/// task/request counts, rows dropped, records completed, layer attribution, and the lower bound
/// from the calls that succeeded (without budgets: `run` recomputes it with the budgets the run
/// knew at its end). The engine still sets `wall_seconds`, the final snapshots,
/// `hidden_scheduler_resource_waiters` (and `records_written` is set by [`RunOutputs::finish`]).
pub fn summary_from(built: &BuiltWorkflow, collector: &TimelineCollector) -> Summary {
    let counts = collector.counts();
    let series = collector.series();
    let mut s = Summary::new(built.workflow.records);
    s.records_written = counts.records_completed;
    s.tasks = counts.tasks;
    s.requests = counts.requests;
    s.layer_attribution = counts.layers;
    s.verdict = crate::summary::verdict(&counts.layers, &counts.layers_by_resource);
    s.layer_attribution_by_resource = counts.layers_by_resource;
    // Budgets known at the end of the run are added by the caller that has the run's result.
    s.set_lower_bound(crate::lower_bound::lower_bound(built, &series, &[]));
    for (i, alias) in built.models.iter().enumerate() {
        let same_endpoint = |m: &&weir_runtime::workflow::ModelAlias| {
            m.provider == alias.provider && m.model_id == alias.model_id
        };
        if built.models[..i].iter().any(|m| same_endpoint(&m)) {
            // One row per endpoint: its later aliases are listed on the first one's row.
            continue;
        }
        let static_cap = built
            .models
            .iter()
            .filter(same_endpoint)
            .map(|m| m.cap())
            .min()
            .unwrap_or_else(|| alias.cap());
        let mut row = ModelSummary {
            alias: alias.alias.clone(),
            aliases: built
                .models
                .iter()
                .filter(same_endpoint)
                .map(|m| m.alias.clone())
                .collect(),
            provider: alias.provider.clone(),
            model_id: alias.model_id.clone(),
            static_cap,
            ..ModelSummary::default()
        };
        for m in series
            .models
            .iter()
            .filter(|m| m.provider == alias.provider && m.model_id == alias.model_id)
        {
            row.attempts += m.attempts;
            row.rate_limited += m.rate_limited_total;
            row.max_in_flight = row.max_in_flight.max(m.max_in_flight);
            row.final_limit = match (row.final_limit, m.final_limit) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        s.per_model.push(row);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(i: u64) -> Record {
        let mut r = Record::new();
        r.insert("zeta".into(), json!(i));
        r.insert("alpha".into(), json!(format!("a, \"quoted\"\nline {i}")));
        r.insert("nested".into(), json!({"k": [i, null]}));
        r.insert("empty".into(), serde_json::Value::Null);
        r
    }

    fn open(dir: &Path, format: DatasetFormat, resume: Option<Checkpoint>) -> RunOutputs {
        let lock = OutDirLock::acquire(dir).expect("lock");
        RunOutputs::open(
            dir,
            OpenSpec {
                events: EventsMode::None,
                identity: RunIdentity {
                    fingerprint: "f".into(),
                    seed: 1,
                    records: 4,
                    format,
                },
                shape: Some(RowGroupShape {
                    records: 4,
                    buffer_size: 2,
                }),
                column_models: BTreeMap::new(),
                resume,
                lock: Some(lock),
                detail: CollectorDetail::Coarse,
                format,
                columns: vec![
                    "zeta".into(),
                    "alpha".into(),
                    "nested".into(),
                    "empty".into(),
                ],
            },
        )
        .expect("open")
    }

    fn scratch(tag: &str) -> PathBuf {
        // Unique per call: two tests writing the same format at once must not share a directory.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("weir-output-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// One session writing both row groups, or two sessions split at the checkpoint: the same
    /// bytes (the CSV header is written once, by the fresh session).
    fn written_in(format: DatasetFormat, sessions: usize) -> Vec<u8> {
        let dir = scratch(&format!("{}-{sessions}", format.as_str()));
        let o = open(&dir, format, None);
        o.write_row_group(0, vec![record(0), record(1)])
            .expect("group 0");
        if sessions == 2 {
            o.final_checkpoint(CarriedTotals::default(), false)
                .expect("checkpoint");
            drop(o);
            let cp = crate::outdir::read_checkpoint(&dir)
                .expect("readable")
                .expect("present");
            assert_eq!(cp.format, format);
            assert_eq!(cp.row_groups_written, 1);
            let o = open(&dir, format, Some(cp));
            o.write_row_group(1, vec![record(2), record(3)])
                .expect("group 1");
            o.final_checkpoint(CarriedTotals::default(), true)
                .expect("checkpoint");
        } else {
            o.write_row_group(1, vec![record(2), record(3)])
                .expect("group 1");
            o.final_checkpoint(CarriedTotals::default(), true)
                .expect("checkpoint");
        }
        let bytes = std::fs::read(dir.join(format.file_name())).expect("dataset");
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    }

    #[test]
    fn jsonl_keys_follow_the_declared_columns() {
        let bytes = written_in(DatasetFormat::Jsonl, 1);
        let text = String::from_utf8(bytes).expect("utf8");
        let first = text.lines().next().expect("a line");
        assert_eq!(
            first,
            r#"{"zeta":0,"alpha":"a, \"quoted\"\nline 0","nested":{"k":[0,null]},"empty":null}"#
        );
        assert_eq!(text.lines().count(), 4);
    }

    #[test]
    fn csv_has_the_declared_header_and_json_text_for_nested_values() {
        let bytes = written_in(DatasetFormat::Csv, 1);
        let mut rows = csv::Reader::from_reader(bytes.as_slice());
        let header: Vec<String> = rows
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header, ["zeta", "alpha", "nested", "empty"]);
        let rows: Vec<csv::StringRecord> = rows.records().map(|r| r.expect("row")).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(&rows[1][0], "1");
        assert_eq!(&rows[1][1], "a, \"quoted\"\nline 1");
        assert_eq!(&rows[1][2], r#"{"k":[1,null]}"#);
        assert_eq!(&rows[1][3], "");
    }

    #[test]
    fn resumed_datasets_are_byte_identical_in_both_formats() {
        for format in [DatasetFormat::Jsonl, DatasetFormat::Csv] {
            assert_eq!(
                written_in(format, 1),
                written_in(format, 2),
                "{}",
                format.as_str()
            );
        }
    }

    #[test]
    fn jsonl_checkpoints_keep_their_old_shape() {
        let cp = Checkpoint {
            fingerprint: "f".into(),
            seed: 0,
            records: 1,
            row_groups_written: 0,
            records_written: 0,
            rows_dropped: 0,
            dataset_bytes: 0,
            complete: false,
            carried: CarriedTotals::default(),
            format: DatasetFormat::Jsonl,
        };
        let text = serde_json::to_string(&cp).expect("serializes");
        assert!(!text.contains("format"), "{text}");
        let back: Checkpoint = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, cp);
    }
}
