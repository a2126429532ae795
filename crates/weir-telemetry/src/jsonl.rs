//! `JsonlEventSink`: both streams' events as JSON lines appended to a file, buffered, never fatal.
//!
//! Each line is one event object with `"stream": "scheduler" | "request"` first, then the event's
//! fields in declaration order. Writing is buffered (64 KiB `BufWriter`, one reused line buffer so
//! a line is written whole). By default the emitting thread serializes into that buffer
//! ([`JsonlWriteMode::Inline`]): measured on a 2-core box it costs the producer less than handing
//! a cloned event to a writer thread. [`JsonlWriteMode::Background`] moves serialization and file
//! I/O to a writer thread, for logs on storage that can stall. The first write error disables the
//! sink, is kept for [`JsonlEventSink::error`] and is logged once; it never reaches the run.

use crate::event::AdmissionEvent;
use crate::sink::EventSink;
use serde::Serialize;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use weir_contracts::{RequestAdmissionEvent, SchedulerAdmissionEvent};

/// Buffer size of the file writer (one `write` syscall per this many bytes of events).
const BUFFER_BYTES: usize = 64 * 1024;

/// Where the file writing happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JsonlWriteMode {
    /// Serialize on the emitting thread, under a mutex, into a 64 KiB `BufWriter` (one `write`
    /// syscall per 64 KiB). The cheapest per event; a stalled disk stalls the emitter at a buffer
    /// boundary.
    #[default]
    Inline,
    /// A writer thread fed by an unbounded channel: the emitting thread clones the event and sends
    /// it; serialization and file I/O happen off the caller's thread. Unbounded so an emitter (a
    /// tokio worker) never blocks on the disk; memory grows only while the disk lags.
    Background,
}

/// The file could not be opened for appending.
#[derive(Debug)]
pub struct JsonlOpenError {
    /// The path that failed.
    pub path: PathBuf,
    /// The OS error.
    pub source: io::Error,
}

impl fmt::Display for JsonlOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot open event log {} for appending: {}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for JsonlOpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The write error that disabled a [`JsonlEventSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlWriteError {
    /// The event log's path.
    pub path: PathBuf,
    /// The I/O error kind.
    pub kind: io::ErrorKind,
    /// The I/O error text.
    pub message: String,
}

impl fmt::Display for JsonlWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "writing event log {} failed: {}",
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for JsonlWriteError {}

/// One line: the stream name, then the event's own fields (flattened, in declaration order).
#[derive(Serialize)]
struct Line<'a, E> {
    stream: &'static str,
    #[serde(flatten)]
    event: &'a E,
}

/// State shared by the sink handle and its writer (thread or inline).
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    failed: AtomicBool,
    reported: AtomicBool,
    closed: AtomicBool,
    error: Mutex<Option<JsonlWriteError>>,
    lines: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn fail(&self, err: &io::Error) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(JsonlWriteError {
                path: self.path.clone(),
                kind: err.kind(),
                message: err.to_string(),
            });
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Logs the first error once, from whichever thread notices it first.
    fn report_once(&self) {
        if self.failed.load(Ordering::Acquire) && !self.reported.swap(true, Ordering::AcqRel) {
            let error = self
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(error) = error {
                tracing::warn!(
                    path = %error.path.display(),
                    error = %error.message,
                    "JSONL event sink disabled after a write error; further events are dropped"
                );
            }
        }
    }

    fn error(&self) -> Option<JsonlWriteError> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The file side: a buffered writer plus a reusable line buffer (so a line is written whole).
struct LineWriter {
    out: BufWriter<File>,
    scratch: Vec<u8>,
    shared: Arc<Shared>,
}

impl LineWriter {
    fn write<E: Serialize>(&mut self, stream: &'static str, event: &E) {
        if self.shared.failed.load(Ordering::Acquire) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.scratch.clear();
        if let Err(err) = serde_json::to_writer(&mut self.scratch, &Line { stream, event }) {
            // An unserializable event costs that event only, not the sink.
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(stream, error = %err, "event could not be serialized; dropped");
            return;
        }
        self.scratch.push(b'\n');
        match self.out.write_all(&self.scratch) {
            Ok(()) => {
                self.shared.lines.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.fail(&err);
            }
        }
    }

    fn flush(&mut self) {
        if self.shared.failed.load(Ordering::Acquire) {
            return;
        }
        if let Err(err) = self.out.flush() {
            self.shared.fail(&err);
        }
    }
}

enum Msg {
    Scheduler(SchedulerAdmissionEvent),
    Request(RequestAdmissionEvent),
    Flush(mpsc::SyncSender<()>),
    Close,
}

enum Backend {
    Inline(Mutex<LineWriter>),
    Background {
        tx: mpsc::Sender<Msg>,
        worker: Mutex<Option<JoinHandle<()>>>,
    },
}

/// Appends both streams' events to a JSONL file; attach one `Arc` to either stream or both.
///
/// Flushed on [`EventSink::flush`], on [`JsonlEventSink::close`] and on drop. See
/// [`JsonlWriteMode`] for where the writing happens.
pub struct JsonlEventSink {
    shared: Arc<Shared>,
    backend: Backend,
}

impl fmt::Debug for JsonlEventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlEventSink")
            .field("path", &self.shared.path)
            .field(
                "mode",
                &match self.backend {
                    Backend::Inline(_) => JsonlWriteMode::Inline,
                    Backend::Background { .. } => JsonlWriteMode::Background,
                },
            )
            .field("failed", &self.shared.failed.load(Ordering::Relaxed))
            .finish()
    }
}

impl JsonlEventSink {
    /// Opens `path` for appending (creating it), writing inline ([`JsonlWriteMode::Inline`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JsonlOpenError> {
        Self::open_with(path, JsonlWriteMode::default())
    }

    /// Opens `path` for appending (creating it) with the given write mode.
    pub fn open_with(path: impl AsRef<Path>, mode: JsonlWriteMode) -> Result<Self, JsonlOpenError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| JsonlOpenError {
                path: path.clone(),
                source,
            })?;
        let shared = Arc::new(Shared {
            path: path.clone(),
            failed: AtomicBool::new(false),
            reported: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            error: Mutex::new(None),
            lines: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let writer = LineWriter {
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            scratch: Vec::with_capacity(1024),
            shared: Arc::clone(&shared),
        };
        let backend = match mode {
            JsonlWriteMode::Inline => Backend::Inline(Mutex::new(writer)),
            JsonlWriteMode::Background => {
                let (tx, rx) = mpsc::channel();
                let worker = std::thread::Builder::new()
                    .name("weir-jsonl-events".into())
                    .spawn(move || run_writer(writer, rx))
                    .map_err(|source| JsonlOpenError {
                        path: path.clone(),
                        source,
                    })?;
                Backend::Background {
                    tx,
                    worker: Mutex::new(Some(worker)),
                }
            }
        };
        Ok(Self { shared, backend })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The write error that disabled the sink, if any.
    pub fn error(&self) -> Option<JsonlWriteError> {
        self.shared.report_once();
        self.shared.error()
    }

    /// Whether a write error has disabled the sink.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Lines handed to the file buffer so far (a later write error can still lose buffered ones).
    pub fn lines_written(&self) -> u64 {
        self.shared.lines.load(Ordering::Relaxed)
    }

    /// Events not written: after a write error, after close, or unserializable.
    pub fn events_dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Flushes and stops writing; later events are dropped. Idempotent.
    ///
    /// Returns the write error that disabled the sink, if one happened (now or earlier).
    pub fn close(&self) -> Result<(), JsonlWriteError> {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            match &self.backend {
                Backend::Inline(writer) => {
                    writer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .flush();
                }
                Backend::Background { tx, worker } => {
                    // A send error means the writer already exited; joining still works.
                    let _ = tx.send(Msg::Close);
                    let handle = worker.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(handle) = handle {
                        let _ = handle.join();
                    }
                }
            }
        }
        self.shared.report_once();
        match self.shared.error() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn accept(&self, to_msg: impl FnOnce() -> Msg, inline: impl FnOnce(&mut LineWriter)) {
        if self.shared.closed.load(Ordering::Acquire) || self.shared.failed.load(Ordering::Acquire)
        {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.shared.report_once();
            return;
        }
        match &self.backend {
            Backend::Inline(writer) => {
                let mut w = writer.lock().unwrap_or_else(PoisonError::into_inner);
                // `close` may have flushed between the check above and this lock: a line written
                // now would sit in the buffer after `close` returned Ok.
                if self.shared.closed.load(Ordering::Acquire) {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                inline(&mut w);
                drop(w);
                self.shared.report_once();
            }
            Backend::Background { tx, .. } => {
                if tx.send(to_msg()).is_err() {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn flush_now(&self) {
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        match &self.backend {
            Backend::Inline(writer) => {
                writer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .flush();
            }
            Backend::Background { tx, .. } => {
                let (ack_tx, ack_rx) = mpsc::sync_channel(1);
                if tx.send(Msg::Flush(ack_tx)).is_ok() {
                    // An error means the writer is gone; nothing left to wait for.
                    let _ = ack_rx.recv();
                }
            }
        }
        self.shared.report_once();
    }
}

fn run_writer(mut writer: LineWriter, rx: mpsc::Receiver<Msg>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Scheduler(event) => writer.write(SchedulerAdmissionEvent::STREAM, &event),
            Msg::Request(event) => writer.write(RequestAdmissionEvent::STREAM, &event),
            Msg::Flush(ack) => {
                writer.flush();
                let _ = ack.send(());
            }
            Msg::Close => break,
        }
    }
    writer.flush();
}

impl Drop for JsonlEventSink {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl EventSink<SchedulerAdmissionEvent> for JsonlEventSink {
    fn emit(&self, event: &SchedulerAdmissionEvent) {
        self.accept(
            || Msg::Scheduler(event.clone()),
            |w| w.write(SchedulerAdmissionEvent::STREAM, event),
        );
    }

    fn flush(&self) {
        self.flush_now();
    }
}

impl EventSink<RequestAdmissionEvent> for JsonlEventSink {
    fn emit(&self, event: &RequestAdmissionEvent) {
        self.accept(
            || Msg::Request(event.clone()),
            |w| w.write(RequestAdmissionEvent::STREAM, event),
        );
    }

    fn flush(&self) {
        self.flush_now();
    }
}
