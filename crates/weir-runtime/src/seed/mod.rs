//! Seed datasets: rows of a JSONL or CSV file that become the first columns of every record.
//!
//! [`SeedDataset::open`] reads the file once, streaming: it checks every record (a typed
//! [`SeedError`] naming the line otherwise) and keeps only an [`index`] of where each record
//! starts (~4 bytes per record), never the rows. Which seed row record `i` gets is
//! [`SeedSampling::seed_row`], a pure function of (row count, run seed, `i`); a row group reads
//! its rows on demand ([`SeedDataset::read_column`]) through [`SeedColumn`], one full-column
//! generator per seed column. So a dataset never depends on scheduling, row-group concurrency,
//! resume or which machine ran a row group.
//!
//! Columns: a CSV file's header, in order; a JSONL file's first object's keys, in order (later
//! objects may leave keys out, which are then `null`, but may not add any). CSV values are
//! strings; JSONL values keep their JSON type.

mod column;
mod index;
mod read;
mod sampling;

pub use column::SeedColumn;
pub use sampling::SeedSampling;

use index::OffsetIndex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The largest seed record (one JSONL line or one CSV record), in bytes: 16 MiB. It bounds
/// what one read holds and what a damaged file (an unclosed CSV quote) can make the index pass
/// buffer.
pub const MAX_SEED_RECORD_BYTES: u64 = 16 << 20;

/// The syntax of a seed file.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedFormat {
    /// One JSON object per line (blank lines are skipped).
    Jsonl,
    /// RFC 4180 CSV with a header row (the `csv` crate).
    Csv,
}

impl SeedFormat {
    /// Snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }
}

impl fmt::Display for SeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a seed file cannot be used; every variant about the contents names its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedError {
    /// The file cannot be opened (missing, a directory, no permission).
    Open {
        /// The operating system's reason.
        message: String,
    },
    /// Reading failed part-way.
    Read {
        /// The line being read.
        line: u64,
        /// The operating system's reason.
        message: String,
    },
    /// The file holds no record (CSV: no row after the header).
    Empty,
    /// A record is longer than [`MAX_SEED_RECORD_BYTES`].
    TooLong {
        /// Where the record starts.
        line: u64,
    },
    /// A JSONL line is not valid JSON.
    BadJson {
        /// The line.
        line: u64,
        /// The parser's reason (with the column).
        message: String,
    },
    /// A JSONL line is valid JSON but not an object.
    NotAnObject {
        /// The line.
        line: u64,
        /// What it is instead (`an array`, `a string`, ...).
        found: &'static str,
    },
    /// A JSONL object repeats a key.
    DuplicateKey {
        /// The line.
        line: u64,
        /// The repeated key.
        key: String,
    },
    /// A JSONL object has a key the first object does not (the first object fixes the columns).
    UnknownKey {
        /// The line.
        line: u64,
        /// The key.
        key: String,
    },
    /// The first JSONL object or the CSV header names no column, or an empty one.
    BadHeader {
        /// The line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A CSV record's field count differs from the header's.
    Ragged {
        /// Where the record starts.
        line: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in this record.
        found: usize,
    },
    /// A CSV record cannot be parsed or is not UTF-8.
    BadCsv {
        /// Where the record starts.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The file changed since it was indexed (its length or modification time differs), so
    /// the index no longer points at its records.
    Changed,
}

impl SeedError {
    /// The 1-based line the error is about, when it is about one.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::Read { line, .. }
            | Self::TooLong { line }
            | Self::BadJson { line, .. }
            | Self::NotAnObject { line, .. }
            | Self::DuplicateKey { line, .. }
            | Self::UnknownKey { line, .. }
            | Self::BadHeader { line, .. }
            | Self::Ragged { line, .. }
            | Self::BadCsv { line, .. } => Some(*line),
            Self::Open { .. } | Self::Empty | Self::Changed => None,
        }
    }
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { message } => write!(f, "cannot open the seed file: {message}"),
            Self::Read { line, message } => write!(f, "line {line}: cannot read: {message}"),
            Self::Empty => f.write_str("the seed file holds no record"),
            Self::TooLong { line } => write!(
                f,
                "line {line}: record longer than {} MiB",
                MAX_SEED_RECORD_BYTES >> 20
            ),
            Self::BadJson { line, message } => write!(f, "line {line}: not valid JSON: {message}"),
            Self::NotAnObject { line, found } => {
                write!(f, "line {line}: expected a JSON object, found {found}")
            }
            Self::DuplicateKey { line, key } => write!(f, "line {line}: key {key:?} repeats"),
            Self::UnknownKey { line, key } => write!(
                f,
                "line {line}: key {key:?} is not a column (the first line's keys are the columns)"
            ),
            Self::BadHeader { line, message } => write!(f, "line {line}: {message}"),
            Self::Ragged {
                line,
                expected,
                found,
            } => write!(
                f,
                "line {line}: {found} field(s), the header has {expected}"
            ),
            Self::BadCsv { line, message } => write!(f, "line {line}: {message}"),
            Self::Changed => f.write_str(
                "the seed file changed since the run indexed it (length or modification time)",
            ),
        }
    }
}

impl std::error::Error for SeedError {}

/// An indexed seed file: its columns, how many records it holds and where each starts.
pub struct SeedDataset {
    path: PathBuf,
    format: SeedFormat,
    columns: Vec<String>,
    positions: HashMap<String, usize>,
    index: OffsetIndex,
    file_len: u64,
    modified: Option<SystemTime>,
    content_hash: u64,
}

impl fmt::Debug for SeedDataset {
    // Never the index: it holds one entry per record (a spec's Debug would print millions).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedDataset")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("columns", &self.columns)
            .field("rows", &self.index.len())
            .field("content_hash", &format_args!("{:016x}", self.content_hash))
            .finish_non_exhaustive()
    }
}

impl SeedDataset {
    /// Reads and checks the whole file once (streaming; memory: the index, ~4 bytes per
    /// record, plus one record), keeping where each record starts.
    pub fn open(path: &Path, format: SeedFormat) -> Result<Self, SeedError> {
        let file = std::fs::File::open(path).map_err(|e| SeedError::Open {
            message: e.to_string(),
        })?;
        let meta = file.metadata().map_err(|e| SeedError::Open {
            message: e.to_string(),
        })?;
        if meta.is_dir() {
            return Err(SeedError::Open {
                message: "it is a directory".to_string(),
            });
        }
        let scan = match format {
            SeedFormat::Jsonl => read::index_jsonl(file)?,
            SeedFormat::Csv => read::index_csv(file)?,
        };
        if scan.index.len() == 0 {
            return Err(SeedError::Empty);
        }
        let positions = scan
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            format,
            columns: scan.columns,
            positions,
            index: scan.index,
            file_len: scan.len,
            modified: meta.modified().ok(),
            content_hash: scan.hash,
        })
    }

    /// The file it reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its syntax.
    pub fn format(&self) -> SeedFormat {
        self.format
    }

    /// Column names, in the file's order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of records (seed rows).
    pub fn rows(&self) -> u64 {
        self.index.len()
    }

    /// FNV-1a of the file's bytes at indexing time (a resume checks the file is the same).
    pub fn content_hash(&self) -> u64 {
        self.content_hash
    }

    /// Bytes of memory the record index holds.
    pub fn index_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    /// The value of column `column` (a position in [`columns`](Self::columns)) in each of the
    /// seed rows `rows` (in that order; rows may repeat). Reads each distinct row once, in file
    /// order; blocking I/O (call it off the async runtime's threads).
    pub fn read_column(&self, rows: &[u64], column: usize) -> Result<Vec<Value>, SeedError> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|i| rows[*i]);
        let mut out = vec![Value::Null; rows.len()];
        let mut reader = read::RecordReader::open(self)?;
        let mut last: Option<(u64, Value)> = None;
        for i in order {
            let row = rows[i];
            let value = match &last {
                Some((r, v)) if *r == row => v.clone(),
                _ => {
                    let v = reader.value(row, column)?;
                    last = Some((row, v.clone()));
                    v
                }
            };
            out[i] = value;
        }
        Ok(out)
    }

    /// Every column of seed row `row`, in column order (for tests and tools; a run reads
    /// columns through [`read_column`](Self::read_column)).
    pub fn read_row(&self, row: u64) -> Result<Vec<Value>, SeedError> {
        read::RecordReader::open(self)?.row(row)
    }

    fn position(&self, column: &str) -> Option<usize> {
        self.positions.get(column).copied()
    }
}

#[cfg(test)]
mod tests;
