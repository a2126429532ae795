//! [`Coordinator`]: one worker's connection to a shared job.
//!
//! The connection is a multiplexed one kept in a slot; a failed call empties the slot and the
//! next call reconnects, so a Redis that went away and came back is picked up without any
//! background task. No lock is held across an `.await`: the connection is cloned out first.

use crate::error::{redact, CoordinatorError};
use crate::job::{JobKeys, JobSpec};
use crate::scripts::Scripts;
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Timing of the claim protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// How long a claim lives without renewal before another worker may take it over.
    pub lease: Duration,
    /// TTL of every key of the job, refreshed by every call (a job nobody touches for this
    /// long disappears; its workers rebuild it from their parts).
    pub key_ttl: Duration,
    /// Bound on connecting (TCP + handshake).
    pub connect_timeout: Duration,
    /// Bound on one call's answer.
    pub response_timeout: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            key_ttl: Duration::from_secs(24 * 3600),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(5),
        }
    }
}

impl CoordinatorConfig {
    /// How often a holder should renew its leases: a third of the lease, so two renewals can
    /// fail before a claim is lost.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }
}

/// The answer to [`Coordinator::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Generate this row group; its lease is held by this worker.
    RowGroup {
        /// The row group.
        row_group: u64,
        /// The worker whose expired (or released) lease this was, for a take-over.
        taken_over_from: Option<String>,
    },
    /// Nothing to claim now, but row groups are leased by workers that may still finish or
    /// die: ask again later.
    Wait {
        /// Leases outstanding.
        leased: u64,
        /// Until the earliest of them expires (unless renewed).
        earliest_expiry: Duration,
    },
    /// Every row group is done.
    JobDone,
}

/// Counts of the job as Redis sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobStatus {
    /// Row groups done.
    pub done: u64,
    /// Row groups leased now.
    pub leased: u64,
    /// Row groups of the job.
    pub total: u64,
}

/// Where a rebuilt job learns which row groups are already done (the durable truth: part files).
pub type DurableDone = Box<dyn Fn() -> Vec<u64> + Send + Sync>;

/// The worker's durable state: a token naming its output directory (the same for every worker
/// sharing it, new when the directory is new) and the row groups done there.
pub struct Durable {
    /// Names the output directory (e.g. a random token stored in it when it was created).
    pub token: String,
    /// The row groups whose parts are there.
    pub done: DurableDone,
}

impl Durable {
    /// Durable state of a directory named `token` whose done row groups `done` lists.
    pub fn new(token: impl Into<String>, done: DurableDone) -> Self {
        Self {
            token: token.into(),
            done,
        }
    }
}

/// One worker's handle on a shared job (see the crate docs for the protocol).
pub struct Coordinator {
    client: redis::Client,
    url: String,
    worker: String,
    job: JobSpec,
    keys: JobKeys,
    config: CoordinatorConfig,
    scripts: Scripts,
    conn: Mutex<Option<MultiplexedConnection>>,
    durable: Durable,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("url", &self.url)
            .field("worker", &self.worker)
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Connects worker `worker` to job `job` at `url` (`redis://HOST:PORT[/DB]`) and makes sure
    /// the job exists there (rebuilding it from `durable` when Redis does not know it).
    /// Fails with [`CoordinatorError::Unavailable`] when Redis cannot be reached now.
    pub async fn connect(
        url: &str,
        worker: &str,
        job: JobSpec,
        config: CoordinatorConfig,
        durable: Durable,
    ) -> Result<Self, CoordinatorError> {
        let shown = redact(url);
        let client = redis::Client::open(url).map_err(|e| CoordinatorError::InvalidUrl {
            url: shown.clone(),
            message: e.to_string(),
        })?;
        let this = Self {
            client,
            url: shown,
            worker: worker.to_owned(),
            keys: job.keys(),
            job,
            config,
            scripts: Scripts::new(),
            conn: Mutex::new(None),
            durable,
        };
        this.ensure_job().await?;
        Ok(this)
    }

    /// The URL (password removed).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The job.
    pub fn job(&self) -> &JobSpec {
        &self.job
    }

    /// The job's keys.
    pub fn keys(&self) -> &JobKeys {
        &self.keys
    }

    /// The protocol's timing.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Creates the job in Redis unless it is there, marking the durable done row groups done
    /// (and starts over a finished job first seen from a new, empty directory: its keys
    /// outlived the directory they described). Answers whether it was (re)built by this call.
    pub async fn ensure_job(&self) -> Result<bool, CoordinatorError> {
        let done = (self.durable.done)();
        let mut inv = self.scripts.init.prepare_invoke();
        self.with_keys(&mut inv);
        inv.arg(&self.job.identity)
            .arg(self.job.row_groups)
            .arg(self.ttl_ms())
            .arg(&self.durable.token);
        for rg in done {
            inv.arg(rg);
        }
        let reply = self.call(&inv).await?;
        match int_at(&reply, 0)? {
            1 => Ok(true),
            0 => Ok(false),
            -1 => Err(CoordinatorError::Conflict {
                stored: string_at(&reply, 1).unwrap_or_default(),
                ours: self.job.identity.clone(),
            }),
            other => Err(protocol(format!("INIT answered {other}"))),
        }
    }

    /// Claims a row group: an expired lease first (take-over), else the next one never
    /// claimed; or says to wait, or that the job is done.
    pub async fn claim(&self) -> Result<Claim, CoordinatorError> {
        let reply = self
            .rebuilding(|| {
                let mut inv = self.scripts.claim.prepare_invoke();
                self.with_keys(&mut inv);
                inv.arg(&self.worker)
                    .arg(self.lease_ms())
                    .arg(self.ttl_ms())
                    .arg(self.job.row_groups);
                inv
            })
            .await?;
        match int_at(&reply, 0)? {
            0 => Ok(Claim::RowGroup {
                row_group: uint_at(&reply, 1)?,
                taken_over_from: None,
            }),
            1 => Ok(Claim::RowGroup {
                row_group: uint_at(&reply, 1)?,
                taken_over_from: string_at(&reply, 2).filter(|s| !s.is_empty()),
            }),
            -1 => Ok(Claim::Wait {
                leased: uint_at(&reply, 1)?,
                earliest_expiry: Duration::from_millis(uint_at(&reply, 2)?),
            }),
            -3 => Ok(Claim::JobDone),
            other => Err(protocol(format!("CLAIM answered {other}"))),
        }
    }

    /// Renews this worker's leases on `held`, taking back any that nobody owns (after a
    /// rebuild); answers the row groups lost (done, or now leased by another worker).
    pub async fn renew(&self, held: &[u64]) -> Result<Vec<u64>, CoordinatorError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self
            .rebuilding(|| {
                let mut inv = self.scripts.renew.prepare_invoke();
                self.with_keys(&mut inv);
                inv.arg(&self.worker)
                    .arg(self.lease_ms())
                    .arg(self.ttl_ms());
                for rg in held {
                    inv.arg(*rg);
                }
                inv
            })
            .await?;
        (1..reply.len()).map(|i| uint_at(&reply, i)).collect()
    }

    /// Marks `row_group` done (its part is durable); answers how many are done.
    pub async fn complete(&self, row_group: u64) -> Result<u64, CoordinatorError> {
        let reply = self
            .rebuilding(|| {
                let mut inv = self.scripts.complete.prepare_invoke();
                self.with_keys(&mut inv);
                inv.arg(self.ttl_ms()).arg(row_group);
                inv
            })
            .await?;
        uint_at(&reply, 1)
    }

    /// Gives back this worker's claims on `row_groups` (a stopping worker), so another worker
    /// takes them over at once instead of after the lease.
    pub async fn release(&self, row_groups: &[u64]) -> Result<(), CoordinatorError> {
        if row_groups.is_empty() {
            return Ok(());
        }
        self.rebuilding(|| {
            let mut inv = self.scripts.release.prepare_invoke();
            self.with_keys(&mut inv);
            inv.arg(&self.worker).arg(self.ttl_ms());
            for rg in row_groups {
                inv.arg(*rg);
            }
            inv
        })
        .await
        .map(|_| ())
    }

    /// The job's counts as Redis sees them.
    pub async fn status(&self) -> Result<JobStatus, CoordinatorError> {
        let reply = self
            .rebuilding(|| {
                let mut inv = self.scripts.status.prepare_invoke();
                self.with_keys(&mut inv);
                inv
            })
            .await?;
        Ok(JobStatus {
            done: uint_at(&reply, 1)?,
            leased: uint_at(&reply, 2)?,
            total: self.job.row_groups,
        })
    }

    /// Runs a script; when it answers "job unknown" (`-2`), rebuilds the job and runs it again.
    async fn rebuilding<'s>(
        &'s self,
        make: impl Fn() -> redis::ScriptInvocation<'s>,
    ) -> Result<Vec<Value>, CoordinatorError> {
        for _ in 0..3 {
            let reply = self.call(&make()).await?;
            if int_at(&reply, 0)? != -2 {
                return Ok(reply);
            }
            self.ensure_job().await?;
        }
        Err(protocol(
            "the job disappeared again right after being rebuilt".to_owned(),
        ))
    }

    /// One script call, bounded by the response timeout. A cached connection that fails is
    /// replaced and the call tried once more (after a Redis restart every cached connection is
    /// dead, and that alone should not look like an outage).
    async fn call(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<Value>, CoordinatorError> {
        let (mut conn, cached) = self.connection().await?;
        match self.call_on(&mut conn, inv).await {
            Err(e) if cached && e.is_unavailable() => {
                let (mut fresh, _) = self.connection().await?;
                self.call_on(&mut fresh, inv).await
            }
            other => other,
        }
    }

    async fn call_on(
        &self,
        conn: &mut MultiplexedConnection,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<Value>, CoordinatorError> {
        let answer = tokio::time::timeout(
            self.config.response_timeout,
            inv.invoke_async::<Value>(conn),
        )
        .await;
        match answer {
            Ok(Ok(Value::Array(items))) => Ok(items),
            Ok(Ok(other)) => Err(protocol(format!("unexpected reply {other:?}"))),
            Ok(Err(e)) if is_connection_error(&e) => {
                self.forget_connection();
                Err(self.unavailable(e.to_string()))
            }
            Ok(Err(e)) => Err(protocol(e.to_string())),
            Err(_) => {
                self.forget_connection();
                Err(self.unavailable(format!(
                    "no answer within {:?}",
                    self.config.response_timeout
                )))
            }
        }
    }

    /// The cached connection (`true`), or a new one (`false`).
    async fn connection(&self) -> Result<(MultiplexedConnection, bool), CoordinatorError> {
        if let Some(c) = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok((c, true));
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.config.connect_timeout)
            .set_response_timeout(self.config.response_timeout);
        let connecting = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let conn = tokio::time::timeout(self.config.connect_timeout * 2, connecting)
            .await
            .map_err(|_| self.unavailable("connecting timed out".to_owned()))?
            .map_err(|e| self.unavailable(e.to_string()))?;
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
        Ok((conn, false))
    }

    fn forget_connection(&self) {
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn unavailable(&self, message: String) -> CoordinatorError {
        CoordinatorError::Unavailable {
            url: self.url.clone(),
            message,
        }
    }

    fn with_keys(&self, inv: &mut redis::ScriptInvocation<'_>) {
        for k in self.keys.all() {
            inv.key(k);
        }
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.config.key_ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Errors after which the connection is not trusted any more (and Redis may be down).
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        // A restarting server answers LOADING or refuses writes for a moment.
        || matches!(e.kind(), redis::ErrorKind::BusyLoadingError | redis::ErrorKind::TryAgain)
}

fn protocol(message: String) -> CoordinatorError {
    CoordinatorError::Protocol { message }
}

fn int_at(reply: &[Value], i: usize) -> Result<i64, CoordinatorError> {
    match reply.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        other => Err(protocol(format!(
            "expected an integer at {i}, got {other:?}"
        ))),
    }
}

fn uint_at(reply: &[Value], i: usize) -> Result<u64, CoordinatorError> {
    let n = int_at(reply, i)?;
    u64::try_from(n).map_err(|_| protocol(format!("negative count {n} at {i}")))
}

fn string_at(reply: &[Value], i: usize) -> Option<String> {
    match reply.get(i) {
        Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    }
}
