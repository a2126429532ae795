//! The two passes over a seed file: the streaming index pass (checks every record, keeps its
//! start) and reading single records back at their offsets.

use super::index::OffsetIndex;
use super::{SeedDataset, SeedError, SeedFormat, MAX_SEED_RECORD_BYTES};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::rc::Rc;
use weir_contracts::Fnv64;

/// What the index pass found.
pub(super) struct Scan {
    pub columns: Vec<String>,
    pub index: OffsetIndex,
    pub len: u64,
    pub hash: u64,
}

/// A JSON object with its keys in document order (serde_json's `Map` sorts them).
struct OrderedObject(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(OrderedObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// What a JSON text that is not an object is, from its first character.
fn json_kind(text: &[u8]) -> &'static str {
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Parses one JSONL line into its keys and values, in order.
fn parse_object(line_no: u64, text: &[u8]) -> Result<Vec<(String, Value)>, SeedError> {
    match serde_json::from_slice::<OrderedObject>(text) {
        Ok(o) => Ok(o.0),
        Err(e) if e.is_data() => Err(SeedError::NotAnObject {
            line: line_no,
            found: json_kind(text),
        }),
        Err(e) => {
            let full = e.to_string();
            // The position is within the line: keep the column, drop serde_json's "line 1".
            let reason = full
                .rsplit_once(" at line ")
                .map_or(full.as_str(), |(r, _)| r);
            Err(SeedError::BadJson {
                line: line_no,
                message: format!("{reason} at column {}", e.column()),
            })
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn strip_bom(line: &[u8]) -> (&[u8], u64) {
    match line.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, 3),
        None => (line, 0),
    }
}

/// Streams a JSONL file: every non-blank line must be an object whose keys are among the first
/// object's (no repeats); the first object's keys are the columns.
pub(super) fn index_jsonl(file: File) -> Result<Scan, SeedError> {
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut index = OffsetIndex::default();
    let mut hash = Fnv64::new();
    let mut columns: Vec<String> = Vec::new();
    let mut known: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut buf = Vec::new();
    let mut offset = 0u64;
    let mut line_no = 0u64;
    loop {
        buf.clear();
        line_no += 1;
        let n = (&mut reader)
            .take(MAX_SEED_RECORD_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| SeedError::Read {
                line: line_no,
                message: e.to_string(),
            })?;
        if n == 0 {
            break;
        }
        if buf.len() as u64 > MAX_SEED_RECORD_BYTES && buf.last() != Some(&b'\n') {
            return Err(SeedError::TooLong { line: line_no });
        }
        hash.write(&buf);
        let (text, skip) = if offset == 0 {
            strip_bom(&buf)
        } else {
            (&buf[..], 0)
        };
        if !is_blank(text) {
            let object = parse_object(line_no, text)?;
            let mut seen = std::collections::HashSet::with_capacity(object.len());
            for (k, _) in &object {
                if !seen.insert(k.as_str()) {
                    return Err(SeedError::DuplicateKey {
                        line: line_no,
                        key: k.clone(),
                    });
                }
            }
            if index.len() == 0 {
                if object.is_empty() {
                    return Err(SeedError::BadHeader {
                        line: line_no,
                        message: "the first object has no key, so the seed file has no column"
                            .to_string(),
                    });
                }
                if let Some((k, _)) = object.iter().find(|(k, _)| k.trim().is_empty()) {
                    return Err(SeedError::BadHeader {
                        line: line_no,
                        message: format!("empty column name {k:?}"),
                    });
                }
                columns = object.iter().map(|(k, _)| k.clone()).collect();
                known = columns.iter().cloned().collect();
            } else if let Some((k, _)) = object.iter().find(|(k, _)| !known.contains(k)) {
                return Err(SeedError::UnknownKey {
                    line: line_no,
                    key: k.clone(),
                });
            }
            index.push(offset + skip);
        }
        offset += n as u64;
    }
    index.finish(offset);
    index.shrink();
    Ok(Scan {
        columns,
        index,
        len: offset,
        hash: hash.finish(),
    })
}

/// A reader that hashes what it hands out and refuses to run more than
/// [`MAX_SEED_RECORD_BYTES`] (plus the CSV reader's buffer) past the last record's end, so an
/// unclosed quote cannot make the CSV reader buffer the rest of a huge file.
struct Capped<R> {
    inner: R,
    consumed: u64,
    limit: Rc<Cell<u64>>,
    tripped: Rc<Cell<bool>>,
    hash: Fnv64,
    hashed: Rc<Cell<u64>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.limit.get().saturating_sub(self.consumed);
        if room == 0 {
            self.tripped.set(true);
            return Err(io::Error::other("seed record too long"));
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.hash.write(&buf[..n]);
        self.hashed.set(self.hash.finish());
        self.consumed += n as u64;
        Ok(n)
    }
}

/// The CSV reader's own buffer, and the slack it may read ahead of a record.
const CSV_BUFFER: u64 = 1 << 16;

fn csv_line(pos: Option<&csv::Position>) -> u64 {
    pos.map_or(1, csv::Position::line)
}

fn csv_error(e: &csv::Error, tripped: bool, fallback_line: u64) -> SeedError {
    let line = e.position().map_or(fallback_line, csv::Position::line);
    if tripped {
        return SeedError::TooLong { line };
    }
    match e.kind() {
        csv::ErrorKind::Io(io) => SeedError::Read {
            line,
            message: io.to_string(),
        },
        csv::ErrorKind::Utf8 { .. } => SeedError::BadCsv {
            line,
            message: "not valid UTF-8".to_string(),
        },
        _ => SeedError::BadCsv {
            line,
            message: e.to_string(),
        },
    }
}

/// Streams a CSV file: a header of unique, non-empty names, then records of exactly as many
/// UTF-8 fields (blank lines are skipped by the CSV reader).
pub(super) fn index_csv(file: File) -> Result<Scan, SeedError> {
    let limit = Rc::new(Cell::new(MAX_SEED_RECORD_BYTES + CSV_BUFFER));
    let tripped = Rc::new(Cell::new(false));
    let hashed = Rc::new(Cell::new(Fnv64::new().finish()));
    let capped = Capped {
        inner: file,
        consumed: 0,
        limit: limit.clone(),
        tripped: tripped.clone(),
        hash: Fnv64::new(),
        hashed: hashed.clone(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .buffer_capacity(CSV_BUFFER as usize)
        .from_reader(capped);
    let header = reader
        .byte_headers()
        .map_err(|e| csv_error(&e, tripped.get(), 1))?
        .clone();
    let header_line = csv_line(header.position());
    let mut columns = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let name = std::str::from_utf8(name).map_err(|_| SeedError::BadCsv {
            line: header_line,
            message: format!("header field {} is not valid UTF-8", i + 1),
        })?;
        if name.trim().is_empty() {
            if header.len() == 1 {
                // An empty file, or one whose first line is empty.
                return Err(SeedError::Empty);
            }
            return Err(SeedError::BadHeader {
                line: header_line,
                message: format!("header field {} is an empty column name", i + 1),
            });
        }
        if columns.iter().any(|c| c == name) {
            return Err(SeedError::BadHeader {
                line: header_line,
                message: format!("column {name:?} repeats in the header"),
            });
        }
        columns.push(name.to_string());
    }
    if columns.is_empty() {
        return Err(SeedError::Empty);
    }
    let mut index = OffsetIndex::default();
    let mut record = csv::ByteRecord::new();
    loop {
        let next_line = reader.position().line();
        limit.set(reader.position().byte() + MAX_SEED_RECORD_BYTES + CSV_BUFFER);
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e, tripped.get(), next_line)),
        }
        let (start, line) = record
            .position()
            .map_or((reader.position().byte(), next_line), |p| {
                (p.byte(), p.line())
            });
        if reader.position().byte().saturating_sub(start) > MAX_SEED_RECORD_BYTES {
            return Err(SeedError::TooLong { line });
        }
        if record.len() != columns.len() {
            return Err(SeedError::Ragged {
                line,
                expected: columns.len(),
                found: record.len(),
            });
        }
        if let Some(i) = record.iter().position(|f| std::str::from_utf8(f).is_err()) {
            return Err(SeedError::BadCsv {
                line,
                message: format!("field {} is not valid UTF-8", i + 1),
            });
        }
        index.push(start);
    }
    let len = reader.position().byte();
    // Drain whatever the reader did not need (nothing, at EOF) so the hash covers the file.
    let mut rest = reader.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| SeedError::Read {
        line: 0,
        message: e.to_string(),
    })?;
    index.finish(len.max(rest.consumed));
    index.shrink();
    Ok(Scan {
        columns,
        index,
        len: rest.consumed,
        hash: hashed.get(),
    })
}

/// Reads single records of an indexed seed file back, checking it has not changed.
pub(super) struct RecordReader<'a> {
    dataset: &'a SeedDataset,
    file: File,
    buf: Vec<u8>,
}

impl<'a> RecordReader<'a> {
    pub(super) fn open(dataset: &'a SeedDataset) -> Result<Self, SeedError> {
        let file = File::open(&dataset.path).map_err(|e| SeedError::Open {
            message: e.to_string(),
        })?;
        let meta = file.metadata().map_err(|e| SeedError::Open {
            message: e.to_string(),
        })?;
        if meta.len() != dataset.file_len || meta.modified().ok() != dataset.modified {
            return Err(SeedError::Changed);
        }
        Ok(Self {
            dataset,
            file,
            buf: Vec::new(),
        })
    }

    /// The raw bytes of record `row` (at most one record long).
    fn bytes(&mut self, row: u64) -> Result<&[u8], SeedError> {
        let (start, end) = self.dataset.index.span(row).ok_or(SeedError::Changed)?;
        let len = end
            .saturating_sub(start)
            .min(MAX_SEED_RECORD_BYTES + CSV_BUFFER);
        let read_err = |e: io::Error| SeedError::Read {
            line: 0,
            message: format!("record {row}: {e}"),
        };
        self.file.seek(SeekFrom::Start(start)).map_err(read_err)?;
        self.buf.clear();
        (&mut self.file)
            .take(len)
            .read_to_end(&mut self.buf)
            .map_err(read_err)?;
        Ok(&self.buf)
    }

    /// Every column of record `row`, in column order.
    pub(super) fn row(&mut self, row: u64) -> Result<Vec<Value>, SeedError> {
        let width = self.dataset.columns.len();
        match self.dataset.format {
            SeedFormat::Jsonl => {
                let bytes = self.bytes(row)?;
                let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
                let object = parse_object(0, line).map_err(|_| SeedError::Changed)?;
                let mut out = vec![Value::Null; width];
                for (k, v) in object {
                    let i = self.dataset.position(&k).ok_or(SeedError::Changed)?;
                    out[i] = v;
                }
                Ok(out)
            }
            SeedFormat::Csv => {
                let bytes = self.bytes(row)?;
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(bytes);
                let mut record = csv::StringRecord::new();
                match reader.read_record(&mut record) {
                    Ok(true) if record.len() == width => Ok(record
                        .iter()
                        .map(|f| Value::String(f.to_string()))
                        .collect()),
                    _ => Err(SeedError::Changed),
                }
            }
        }
    }

    /// Column `column` of record `row`.
    pub(super) fn value(&mut self, row: u64, column: usize) -> Result<Value, SeedError> {
        let mut values = self.row(row)?;
        if column >= values.len() {
            return Ok(Value::Null);
        }
        Ok(values.swap_remove(column))
    }
}
