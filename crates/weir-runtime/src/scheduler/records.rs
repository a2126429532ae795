//! Row-group record buffers and `RecordSink`, where checkpointed row groups are written in row order.

use crate::generators::Record;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

/// Receives each completed row group once, in row-group order, with its surviving rows in row order.
pub trait RecordSink: Send {
    /// Writes one row group; `records` are `(global row index, record)` pairs of the rows that
    /// survived, ascending. An error stops the run (records already written stay written).
    fn write_row_group(&mut self, row_group: u64, records: &[(u64, Record)]) -> io::Result<()>;

    /// Flushes buffered output; called once at the end of a run (also after a stop).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Keeps every written record in memory (tests, small runs). Clones share the same storage.
#[derive(Debug, Clone, Default)]
pub struct InMemoryRecordSink {
    rows: Arc<Mutex<Vec<(u64, Record)>>>,
    row_groups: Arc<Mutex<Vec<u64>>>,
}

impl InMemoryRecordSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// `(global row, record)` pairs written so far, in write order.
    pub fn rows(&self) -> Vec<(u64, Record)> {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Row groups written so far, in write order.
    pub fn row_groups(&self) -> Vec<u64> {
        self.row_groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl RecordSink for InMemoryRecordSink {
    fn write_row_group(&mut self, row_group: u64, records: &[(u64, Record)]) -> io::Result<()> {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(records.iter().cloned());
        self.row_groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(row_group);
        Ok(())
    }
}

/// Writes each record as one JSON line (the CLI's `dataset.jsonl`).
pub struct JsonlRecordSink<W: io::Write + Send> {
    out: io::BufWriter<W>,
}

impl<W: io::Write + Send> JsonlRecordSink<W> {
    /// Wraps a writer (buffered).
    pub fn new(out: W) -> Self {
        Self {
            out: io::BufWriter::with_capacity(64 * 1024, out),
        }
    }
}

impl<W: io::Write + Send> RecordSink for JsonlRecordSink<W> {
    fn write_row_group(&mut self, _row_group: u64, records: &[(u64, Record)]) -> io::Result<()> {
        for (_, record) in records {
            serde_json::to_writer(&mut self.out, record)?;
            io::Write::write_all(&mut self.out, b"\n")?;
        }
        io::Write::flush(&mut self.out)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::Write::flush(&mut self.out)
    }
}

/// The live records of one admitted row group.
#[derive(Debug, Clone)]
pub(crate) struct RowGroupBuffer {
    /// Global index of the group's first row.
    pub offset: u64,
    /// One record per row, filled column by column.
    pub rows: Vec<Record>,
}

impl RowGroupBuffer {
    pub(crate) fn new(offset: u64, rows: u64) -> Self {
        Self {
            offset,
            rows: (0..rows).map(|_| Record::new()).collect(),
        }
    }
}
