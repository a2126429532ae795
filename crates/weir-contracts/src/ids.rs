//! Identifiers: stable task ids, controller generations, lease ids, execution and attempt ids.

use crate::error::ContractError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Stable identity of one unit of scheduler work (a cell, a full-column batch, a root task).
///
/// Derived deterministically from the task's coordinates, so the same work always has the same id
/// and duplicate frontier reads cannot create duplicate queue membership.
///
/// Stored as a `SmolStr`: ids up to 23 bytes (every `stable` id is 21) live inline, so cloning
/// one into a lease or an event is a 24-byte copy, never an allocation; longer ids share one
/// reference-counted buffer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(SmolStr);

impl TaskId {
    /// Wraps an already-formed id (for tests and callers that own their own id scheme).
    pub fn new(id: impl AsRef<str>) -> Self {
        Self(SmolStr::new(id))
    }

    /// `"task-"` + 16 hex digits of FNV-1a 64 over `column NUL row_group NUL row_index NUL task_type`.
    ///
    /// The reference uses SHA-1 here; any stable 64-bit hash serves, and FNV needs no dependency.
    pub fn stable(column: &str, row_group: u64, row_index: Option<u64>, task_type: &str) -> Self {
        let mut h = Fnv64::new();
        h.write(column.as_bytes());
        h.write(&[0]);
        write_decimal(&mut h, row_group);
        h.write(&[0]);
        match row_index {
            Some(i) => write_decimal(&mut h, i),
            None => h.write(b"none"),
        }
        h.write(&[0]);
        h.write(task_type.as_bytes());
        // No allocation: 21 ASCII bytes fit `SmolStr`'s inline buffer (this runs once per task).
        let mut id = [0u8; 21];
        id[..5].copy_from_slice(b"task-");
        let hash = h.finish();
        for (i, shift) in (0..16).rev().enumerate() {
            let nibble = ((hash >> (shift * 4)) & 0xf) as u8;
            id[5 + i] = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
        }
        Self(SmolStr::new(String::from_utf8_lossy(&id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Feeds `n`'s decimal digits to `h` without allocating (same bytes as `n.to_string()`).
fn write_decimal(h: &mut Fnv64, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    h.write(&buf[i..]);
}

/// 64-bit FNV-1a: a tiny stable hash for ids and identity hashes (not for security).
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    /// A fresh hasher at the FNV offset basis.
    pub const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub const fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

/// 16 hex digits of FNV-1a 64 over `parts` joined by NUL: the scheduling-group identity hash.
pub fn identity_hash<S: AsRef<str>>(parts: &[S]) -> String {
    let mut h = Fnv64::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.write(&[0]);
        }
        h.write(p.as_ref().as_bytes());
    }
    format!("{:016x}", h.finish())
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Identity of one controller instance; a lease from another generation is rejected on release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ControllerGeneration(pub u64);

impl ControllerGeneration {
    /// A process-unique generation for a newly built controller.
    pub fn next() -> Self {
        Self(NEXT_GENERATION.fetch_add(1, Ordering::Relaxed))
    }
}

/// A task or request lease id: the issuing controller's generation plus a per-controller counter.
///
/// Written on the wire as `"<generation>:<counter>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId {
    /// Generation of the controller that issued the lease.
    pub generation: ControllerGeneration,
    /// Per-controller, strictly increasing counter.
    pub counter: u64,
}

impl LeaseId {
    /// Builds a lease id.
    pub const fn new(generation: ControllerGeneration, counter: u64) -> Self {
        Self {
            generation,
            counter,
        }
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.generation.0, self.counter)
    }
}

impl FromStr for LeaseId {
    type Err = ContractError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ContractError::new(
                "lease_id",
                format!("expected \"<generation>:<counter>\", got {s:?}"),
            )
        };
        let (g, c) = s.split_once(':').ok_or_else(bad)?;
        let generation = g.parse().map_err(|_| bad())?;
        let counter = c.parse().map_err(|_| bad())?;
        Ok(Self::new(ControllerGeneration(generation), counter))
    }
}

impl Serialize for LeaseId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LeaseId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! counter_id {
    ($(#[$doc:meta])* $name:ident, $counter:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        static $counter: AtomicU64 = AtomicU64::new(1);

        impl $name {
            /// A process-unique id.
            pub fn next() -> Self {
                Self($counter.fetch_add(1, Ordering::Relaxed))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

counter_id!(
    /// One execution of a task by a worker (a retried task gets a new execution id).
    TaskExecutionId,
    NEXT_TASK_EXECUTION
);
counter_id!(
    /// One concrete outbound model-call attempt (each retry is a new attempt).
    RequestAttemptId,
    NEXT_REQUEST_ATTEMPT
);
