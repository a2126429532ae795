//! The run's output directory: `dataset.jsonl`, `events.jsonl`, `capacity-plan.json`,
//! `summary.json`, `report-data.json`, `report.html`.
//!
//! [`RunOutputs::create`] is called only after the spec is valid, so invalid input never leaves a
//! directory behind. The dataset is written in row order even when row groups finish out of
//! order (finished groups wait in memory until every earlier group is written).

use crate::error::CliError;
use crate::report::{ReportData, TimelineCollector};
use crate::spec::BuiltWorkflow;
use crate::summary::{ModelSummary, Summary};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use weir_contracts::{RequestAdmissionEvent, SchedulerAdmissionEvent};
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
    /// Both streams.
    #[default]
    Full,
    /// Only the request stream.
    Requests,
    /// No `events.jsonl`.
    None,
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

/// Progress of a run's dataset, rewritten after every row group (atomically, via rename).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Fingerprint of the spec (after overrides) that produced the dataset.
    pub fingerprint: String,
    /// Row groups fully written, in order.
    pub row_groups_written: u64,
    /// Records in those row groups.
    pub records_written: u64,
    /// Bytes of `dataset.jsonl` that belong to them.
    pub dataset_bytes: u64,
    /// True once every row group is written.
    pub complete: bool,
    /// Figures of the sessions that produced the checkpointed part (absent in old checkpoints).
    #[serde(default)]
    pub carried: crate::summary::CarriedTotals,
}

impl Checkpoint {
    /// Reads `dir/checkpoint.json`, if present and readable.
    pub fn load(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Writes records in row order: row group `n` is written once groups `0..n` are.
#[derive(Debug)]
struct DatasetState {
    file: BufWriter<File>,
    next_row_group: u64,
    pending: BTreeMap<u64, Vec<Record>>,
    written: u64,
    bytes: u64,
}

impl DatasetState {
    /// Appends `rows` as JSON lines, counting records and bytes.
    fn write_rows(&mut self, rows: &[Record], path: &Path) -> Result<(), CliError> {
        for r in rows {
            let mut line = serde_json::to_vec(r).map_err(|e| {
                CliError::run_failed(format!("cannot write {}: {e}", path.display()))
            })?;
            line.push(b'\n');
            self.file
                .write_all(&line)
                .map_err(|e| CliError::io("cannot write", path, &e))?;
            self.bytes += line.len() as u64;
        }
        self.written += rows.len() as u64;
        Ok(())
    }
}

/// The open output directory of one run.
#[derive(Debug)]
pub struct RunOutputs {
    dir: PathBuf,
    events_mode: EventsMode,
    events: Option<Arc<JsonlEventSink>>,
    collector: Arc<TimelineCollector>,
    fingerprint: String,
    /// Earlier sessions' figures, rewritten into every checkpoint of this session.
    carried: Mutex<crate::summary::CarriedTotals>,
    dataset: Mutex<DatasetState>,
    /// Records written, readable without the dataset lock (progress display).
    written_counter: Arc<std::sync::atomic::AtomicU64>,
}

impl RunOutputs {
    /// Creates `dir` (and parents), `dataset.jsonl`, and `events.jsonl` unless `events` is `None`.
    pub fn create(dir: &Path, events: EventsMode) -> Result<Self, CliError> {
        Self::open(dir, events, String::new(), None)
    }

    /// Opens the output directory of a run whose spec has `fingerprint`. With `resume`, the
    /// dataset is cut back to the checkpointed length and appended to, and the event log is
    /// appended to; otherwise both start fresh.
    pub fn open(
        dir: &Path,
        events: EventsMode,
        fingerprint: String,
        resume: Option<&Checkpoint>,
    ) -> Result<Self, CliError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::io("cannot create output directory", dir, &e))?;
        let dataset_path = dir.join(DATASET_FILE);
        let file = match resume {
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
                // A fresh run: a checkpoint left by an earlier run no longer describes the
                // dataset, so it must not survive into this one.
                let cp = dir.join(CHECKPOINT_FILE);
                if cp.exists() {
                    std::fs::remove_file(&cp)
                        .map_err(|e| CliError::io("cannot remove", &cp, &e))?;
                }
                File::create(&dataset_path)
                    .map_err(|e| CliError::io("cannot create", &dataset_path, &e))?
            }
        };
        let events_path = dir.join(EVENTS_FILE);
        let sink = match events {
            EventsMode::None => None,
            EventsMode::Full | EventsMode::Requests => {
                // JsonlEventSink appends: a fresh run truncates first, a resumed one keeps the log.
                if resume.is_none() {
                    File::create(&events_path)
                        .map_err(|e| CliError::io("cannot create", &events_path, &e))?;
                }
                Some(Arc::new(
                    JsonlEventSink::open(&events_path)
                        .map_err(|e| CliError::run_failed(e.to_string()))?,
                ))
            }
        };
        let (next_row_group, written, bytes) = resume.map_or((0, 0, 0), |cp| {
            (cp.row_groups_written, cp.records_written, cp.dataset_bytes)
        });
        Ok(Self {
            dir: dir.to_path_buf(),
            events_mode: events,
            events: sink,
            collector: Arc::new(TimelineCollector::default()),
            fingerprint,
            carried: Mutex::new(resume.map(|cp| cp.carried).unwrap_or_default()),
            written_counter: Arc::new(std::sync::atomic::AtomicU64::new(written)),
            dataset: Mutex::new(DatasetState {
                file: BufWriter::new(file),
                next_row_group,
                pending: BTreeMap::new(),
                written,
                bytes,
            }),
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

    /// Sinks for the scheduler stream: the collector, plus the JSONL log in `full` mode.
    pub fn scheduler_sinks(&self) -> Vec<Arc<dyn EventSink<SchedulerAdmissionEvent>>> {
        let mut v: Vec<Arc<dyn EventSink<SchedulerAdmissionEvent>>> = vec![self.collector.clone()];
        if let (EventsMode::Full, Some(sink)) = (self.events_mode, &self.events) {
            v.push(sink.clone());
        }
        v
    }

    /// Sinks for the request stream: the collector, plus the JSONL log unless events are off.
    pub fn request_sinks(&self) -> Vec<Arc<dyn EventSink<RequestAdmissionEvent>>> {
        let mut v: Vec<Arc<dyn EventSink<RequestAdmissionEvent>>> = vec![self.collector.clone()];
        if let Some(sink) = &self.events {
            v.push(sink.clone());
        }
        v
    }

    /// Hands over the surviving records of one checkpointed row group (in row order within it).
    /// Groups may arrive in any order; each group must be handed over exactly once (empty when
    /// every row was dropped) for later groups to be written.
    pub fn write_row_group(&self, row_group: u64, records: Vec<Record>) -> Result<(), CliError> {
        let path = self.dir.join(DATASET_FILE);
        let mut d = self.dataset.lock().unwrap_or_else(PoisonError::into_inner);
        d.pending.insert(row_group, records);
        let mut wrote = false;
        loop {
            let next = d.next_row_group;
            let Some(rows) = d.pending.remove(&next) else {
                break;
            };
            d.write_rows(&rows, &path)?;
            self.written_counter
                .store(d.written, std::sync::atomic::Ordering::Relaxed);
            d.next_row_group += 1;
            wrote = true;
        }
        if wrote {
            d.file
                .flush()
                .map_err(|e| CliError::io("cannot write", &path, &e))?;
            // The checkpoint must never claim bytes the disk does not have yet.
            d.file
                .get_ref()
                .sync_data()
                .map_err(|e| CliError::io("cannot sync", &path, &e))?;
            let cp = self.checkpoint_of(&d, false, self.carried());
            drop(d);
            self.write_checkpoint(&cp)?;
        }
        Ok(())
    }

    /// The checkpoint describing the dataset as written so far.
    fn checkpoint_of(
        &self,
        d: &DatasetState,
        complete: bool,
        carried: crate::summary::CarriedTotals,
    ) -> Checkpoint {
        Checkpoint {
            fingerprint: self.fingerprint.clone(),
            row_groups_written: d.next_row_group,
            records_written: d.written,
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
    pub fn carried(&self) -> crate::summary::CarriedTotals {
        *self.carried.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records this run's cumulative figures (after a session ends) and rewrites the checkpoint.
    pub fn carry_forward(&self, totals: crate::summary::CarriedTotals) -> Result<(), CliError> {
        *self.carried.lock().unwrap_or_else(PoisonError::into_inner) = totals;
        let d = self.dataset.lock().unwrap_or_else(PoisonError::into_inner);
        let cp = self.checkpoint_of(&d, false, totals);
        drop(d);
        self.write_checkpoint(&cp)
    }

    /// Marks the checkpoint complete (every row group written).
    pub fn mark_complete(&self) -> Result<(), CliError> {
        let d = self.dataset.lock().unwrap_or_else(PoisonError::into_inner);
        let cp = self.checkpoint_of(&d, true, self.carried());
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

    /// Flushes the dataset and event log and writes `capacity-plan.json`, `summary.json`,
    /// `report-data.json` and `report.html`. `summary.records_written` is set from the dataset.
    /// Row groups still pending (a gap left by a group never handed over) are written last, in order.
    pub fn finish(self, mut data: ReportData) -> Result<ReportData, CliError> {
        let path = self.dir.join(DATASET_FILE);
        {
            let mut d = self.dataset.lock().unwrap_or_else(PoisonError::into_inner);
            let pending = std::mem::take(&mut d.pending);
            for rows in pending.into_values() {
                d.write_rows(&rows, &path)?;
            }
            d.file
                .flush()
                .map_err(|e| CliError::io("cannot write", &path, &e))?;
            data.summary.records_written = d.written;
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

/// Pretty-prints `value` as JSON to `path`.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::run_failed(format!("cannot serialize {}: {e}", path.display())))?;
    std::fs::write(path, text + "\n").map_err(|e| CliError::io("cannot write", path, &e))
}

/// A summary with everything the workflow and the event collector know filled in: records
/// requested, per-model rows (alias, provider, model, static cap + the collector's counters),
/// task/request counts, rows dropped, records completed, layer attribution, and the lower bound
/// from the calls that succeeded. The engine still sets `wall_seconds`, the final snapshots,
/// `hidden_scheduler_resource_waiters` (and `records_written` is set by [`RunOutputs::finish`]).
pub fn summary_from(built: &BuiltWorkflow, collector: &TimelineCollector) -> Summary {
    let counts = collector.counts();
    let series = collector.series();
    let mut s = Summary::new(built.workflow.records);
    s.records_written = counts.records_completed;
    s.rows_dropped = counts.rows_dropped;
    s.tasks = counts.tasks;
    s.requests = counts.requests;
    s.layer_attribution = counts.layers;
    s.verdict = crate::summary::verdict(&counts.layers, &counts.layers_by_resource);
    s.layer_attribution_by_resource = counts.layers_by_resource;
    let mut calls: BTreeMap<(String, String), u64> = BTreeMap::new();
    for m in &series.models {
        *calls
            .entry((m.provider.clone(), m.model_id.clone()))
            .or_default() += m.succeeded;
    }
    // No request events at all for a workflow with models: the bound is unknown, not zero.
    s.lower_bound_seconds = if calls.is_empty() && !built.models.is_empty() {
        None
    } else {
        built.lower_bound_seconds(&calls)
    };
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
