//! A job's identity and its Redis keys.

use weir_contracts::identity_hash;

/// One shared job: what every worker of it must agree on, and how many row groups it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Short hash of the identity: the keys' hash tag.
    pub id: String,
    /// The identity text stored in Redis and compared by every worker (spec fingerprint, seed,
    /// records, format, row groups).
    pub identity: String,
    /// Row groups of the job (`0..row_groups`).
    pub row_groups: u64,
}

impl JobSpec {
    /// A job from the parts of its identity (e.g. spec fingerprint, seed, records, format)
    /// and its row-group count, which is part of the identity too.
    pub fn new<S: AsRef<str>>(identity_parts: &[S], row_groups: u64) -> Self {
        let mut parts: Vec<String> = identity_parts
            .iter()
            .map(|p| p.as_ref().to_owned())
            .collect();
        parts.push(format!("row_groups={row_groups}"));
        Self {
            id: identity_hash(&parts),
            identity: parts.join(";"),
            row_groups,
        }
    }

    /// The job's Redis keys.
    pub fn keys(&self) -> JobKeys {
        JobKeys::new(&self.id)
    }
}

/// The six keys of one job. They share the hash tag `{id}`, so on Redis Cluster they live in
/// one slot and the multi-key scripts are legal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKeys {
    /// `weir:rg:{id}:meta` (string): the job's identity text; its absence means "rebuild".
    pub meta: String,
    /// `weir:rg:{id}:next` (integer): the next row group never claimed.
    pub next: String,
    /// `weir:rg:{id}:leases` (sorted set): row group → lease expiry, ms of the server's clock.
    pub leases: String,
    /// `weir:rg:{id}:owners` (hash): row group → worker holding its lease.
    pub owners: String,
    /// `weir:rg:{id}:done` (set): row groups whose part is written.
    pub done: String,
    /// `weir:rg:{id}:dirs` (set): tokens of the output directories that joined the job.
    pub dirs: String,
}

impl JobKeys {
    /// The keys of job `id`.
    pub fn new(id: &str) -> Self {
        let key = |what: &str| format!("weir:rg:{{{id}}}:{what}");
        Self {
            meta: key("meta"),
            next: key("next"),
            leases: key("leases"),
            owners: key("owners"),
            done: key("done"),
            dirs: key("dirs"),
        }
    }

    /// All six, in the order the scripts take them.
    pub fn all(&self) -> [&str; 6] {
        [
            &self.meta,
            &self.next,
            &self.leases,
            &self.owners,
            &self.done,
            &self.dirs,
        ]
    }
}
