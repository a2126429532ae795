//! `seed_dataset`: the spec's seed file, where it is (relative to the spec file), and the one
//! indexed [`SeedDataset`] every check and the run share.
//!
//! Indexing reads the whole file, so it happens once per process per (file, format): the
//! result (or its error) is cached in the spec's [`SpecSource`], which `validate`, `build` and
//! the run's output columns all read.

use super::{SpecError, WorkflowSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use weir_runtime::seed::{SeedColumn, SeedDataset, SeedError, SeedFormat, SeedSampling};
use weir_runtime::workflow::ColumnSpec;

/// JSON path of the seed file field (every seed file error is reported there).
pub const SEED_PATH_FIELD: &str = "seed_dataset.path";

/// A file of seed rows: its columns come first in every record, usable in every template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedDatasetSpec {
    /// The seed file, relative to the spec file's directory (or absolute). Read once to check
    /// every record and index where each starts (about 4 bytes of memory per record, never the
    /// rows); a record is at most 16 MiB. Columns: a CSV file's header, a JSONL file's first
    /// object's keys, in that order; they come first in the output and may not share a name
    /// with a declared column.
    pub path: String,
    /// `jsonl` (one JSON object per line; later lines may omit keys, which are then null, but
    /// not add any) or `csv` (a header row; values are strings).
    pub format: SeedFormat,
    /// Which seed row record `i` gets, from the run's `seed` and `i` alone: `ordered` (default;
    /// row `i mod rows`, wrapping around), `shuffle` (every row once per pass over the file,
    /// each pass in a new order) or `with_replacement` (an independent uniform draw per record).
    #[serde(default)]
    pub sampling: SeedSampling,
}

type Cached = (PathBuf, SeedFormat, Result<Arc<SeedDataset>, SeedError>);

/// Where a spec was read from (the base of its relative paths) and its indexed seed file. Not
/// part of the spec: never serialized, and any two are equal (a spec's identity is its text).
#[derive(Debug, Clone, Default)]
pub struct SpecSource {
    dir: Option<PathBuf>,
    seed: Arc<Mutex<Option<Cached>>>,
}

impl PartialEq for SpecSource {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl SpecSource {
    /// A source in `dir` (relative seed paths resolve against it).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            seed: Arc::default(),
        }
    }

    /// The directory relative paths resolve against (`None`: the working directory).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl WorkflowSpec {
    /// The same spec, its relative paths resolved against `dir` (the spec file's directory).
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.source = SpecSource::in_dir(dir);
        self
    }

    /// Where `seed_dataset.path` points (relative to the spec file's directory).
    pub fn seed_path(&self) -> Option<PathBuf> {
        let seed = self.seed_dataset.as_ref()?;
        let path = Path::new(&seed.path);
        Some(match self.source.dir() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        })
    }

    /// The indexed seed file (`Ok(None)` without `seed_dataset`), opened once and cached; an
    /// error is at `seed_dataset.path` and names the file and the line.
    pub fn seed(&self) -> Result<Option<Arc<SeedDataset>>, SpecError> {
        let (Some(spec), Some(path)) = (&self.seed_dataset, self.seed_path()) else {
            return Ok(None);
        };
        let result = {
            let mut cache = self
                .source
                .seed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match cache.as_ref() {
                Some((p, f, r)) if *p == path && *f == spec.format => r.clone(),
                _ => {
                    let r = SeedDataset::open(&path, spec.format).map(Arc::new);
                    *cache = Some((path.clone(), spec.format, r.clone()));
                    r
                }
            }
        };
        result
            .map(Some)
            .map_err(|e| SpecError::new(SEED_PATH_FIELD, format!("{}: {e}", spec.path)))
    }

    /// The seed file's column names, in its order (empty without one or when it is unusable).
    pub fn seed_columns(&self) -> Vec<String> {
        match self.seed() {
            Ok(Some(ds)) => ds.columns().to_vec(),
            _ => Vec::new(),
        }
    }

    /// One full-column generator per seed column, in the file's order (they go first).
    pub(super) fn seed_column_specs(&self) -> Result<Vec<ColumnSpec>, SpecError> {
        let (Some(spec), Some(ds)) = (&self.seed_dataset, self.seed()?) else {
            return Ok(Vec::new());
        };
        Ok(
            SeedColumn::all(&ds, spec.sampling, self.seed, self.effective_buffer_size())
                .into_iter()
                .map(|(name, g)| ColumnSpec::new(name, Arc::new(g)))
                .collect(),
        )
    }
}
