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

/// `dataset.jsonl`.
pub const DATASET_FILE: &str = "dataset.jsonl";
/// `events.jsonl`.
pub const EVENTS_FILE: &str = "events.jsonl";
/// `capacity-plan.json`.
pub const CAPACITY_PLAN_FILE: &str = "capacity-plan.json";
/// `summary.json`.
pub const SUMMARY_FILE: &str = "summary.json";

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
    /// Appends `rows` as JSON lines, counting records and bytes.
    fn write_rows<'r>(
        &mut self,
        rows: impl IntoIterator<Item = &'r Record>,
        path: &Path,
    ) -> Result<(), CliError> {
        for r in rows {
            self.line.clear();
            serde_json::to_writer(&mut self.line, r).map_err(|e| {
                CliError::run_failed(format!("cannot write {}: {e}", path.display()))
            })?;
            self.line.push(b'\n');
            self.file
                .write_all(&self.line)
                .map_err(|e| CliError::io("cannot write", path, &e))?;
            self.bytes += self.line.len() as u64;
            self.written += 1;
        }
        Ok(())
    }
}

/// How often the checkpoint (and an fsync of the dataset) happens at most: rewriting it after
/// every row group costs an fsync per group, which dominates fast local runs. A kill loses at
/// most this much checkpointed progress (the rows are regenerated identically on resume).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// The open output directory of one run.
#[derive(Debug)]
pub struct RunOutputs {
    dir: PathBuf,
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
                },
                shape: None,
                column_models: BTreeMap::new(),
                resume: None,
                lock: None,
                detail: CollectorDetail::Full,
            },
        )
    }

    /// Opens the output directory. With `resume`, the dataset is cut back to the checkpointed
    /// length and appended to, and the event log is appended to; otherwise every earlier output
    /// is discarded.
    pub fn open(dir: &Path, o: OpenSpec) -> Result<Self, CliError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::io("cannot create output directory", dir, &e))?;
        let dataset_path = dir.join(DATASET_FILE);
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
        Ok(Self {
            dir: dir.to_path_buf(),
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
            dataset: Mutex::new(DatasetState {
                file: BufWriter::with_capacity(256 * 1024, file),
                next_row_group,
                pending: BTreeMap::new(),
                written,
                dropped,
                bytes,
                line: Vec::with_capacity(1024),
                last_checkpoint: None,
            }),
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
        let path = self.dir.join(DATASET_FILE);
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
        let path = self.dir.join(DATASET_FILE);
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
        let path = self.dir.join(DATASET_FILE);
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
        let path = self.dir.join(DATASET_FILE);
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
