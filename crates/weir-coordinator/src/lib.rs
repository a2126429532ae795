//! weir-coordinator: shared row groups — several `weir run` processes, on one machine or many,
//! generate ONE dataset by claiming its row groups from Redis.
//!
//! ```toml
//! [dependencies]
//! weir-coordinator = { path = "…/crates/weir-coordinator" }
//! tokio = { version = "1", features = ["time"] }
//! ```
//!
//! ```rust,no_run
//! // `no_run`: `demo` needs a Redis server (weir-testkit's `RedisServer` starts one in tests);
//! // the example is built, and `demo` is only defined, never called.
//! use std::time::Duration;
//! use weir_coordinator::{Claim, Coordinator, CoordinatorConfig, Durable, JobSpec};
//!
//! # async fn demo() -> Result<(), weir_coordinator::CoordinatorError> {
//! // Every worker of the job builds the same identity (spec fingerprint, seed, records …).
//! let job = JobSpec::new(&["spec=3f2a", "seed=7", "records=1000"], 10);
//! let config = CoordinatorConfig { lease: Duration::from_secs(30), ..Default::default() };
//! // The output directory's token and the row groups already durable there (part files):
//! // what Redis is rebuilt from when it lost the job.
//! let durable = Durable::new("dir-token-1", Box::new(|| Vec::<u64>::new()));
//! let coordinator =
//!     Coordinator::connect("redis://127.0.0.1:6380/0", "worker-a", job, config, durable)
//!         .await?;
//! loop {
//!     match coordinator.claim().await? {
//!         Claim::RowGroup { row_group, .. } => {
//!             // … generate it, renewing the lease every `config.renew_every()` …
//!             coordinator.renew(&[row_group]).await?;
//!             // … write its part durably, then:
//!             coordinator.complete(row_group).await?;
//!         }
//!         Claim::Wait { earliest_expiry, .. } => {
//!             tokio::time::sleep(earliest_expiry.min(Duration::from_secs(1))).await
//!         }
//!         Claim::JobDone => break,
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! **The protocol** (atomic Lua scripts, see `scripts.rs`): a job has six keys sharing the hash
//! tag `{job id}` ([`JobKeys`]). A claim takes an expired lease first (a dead or stopped
//! worker's row group: take-over), else the next row group never claimed and not done. A
//! holder renews its leases every third of the lease; a lease not renewed in time is taken over
//! by the next claim. Completing marks the row group done. Time is the Redis server's.
//!
//! **Redis is not the record of what is done.** Redis may lose everything (a restart without
//! persistence, an eviction, the keys' TTL). Every script then answers "job unknown", and the
//! client rebuilds the job from the caller's durable state ([`DurableDone`]: the row groups
//! whose part files exist) before going on. A row group generated twice because its claim was
//! lost is harmless when, as in weir, its content is a pure function of the run's seed and the
//! row-group index and its part is written by an atomic rename.
//!
//! Must never know: the runtime, generators, files. It hands out row-group numbers.

mod client;
mod error;
mod job;
mod scripts;

pub use client::{Claim, Coordinator, CoordinatorConfig, Durable, DurableDone, JobStatus};
pub use error::CoordinatorError;
pub use job::{JobKeys, JobSpec};
