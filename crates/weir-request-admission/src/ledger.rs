//! The active-lease ledger of one endpoint: the lease slab, lease ids, the released-id history
//! that tells `duplicate` from `stale_lease`, and the endpoint's aggregate in-flight counters.
//! It knows leases and domains, never how a limit is derived.

use crate::slab::Slab;
use std::collections::VecDeque;
use tokio::time::Instant;
use weir_contracts::{ReleaseReason, RequestDomain};

/// How many released lease ids each shard remembers to tell `duplicate` from `stale_lease`.
pub(crate) const RELEASED_LEASE_HISTORY_LIMIT: usize = 8192;

/// Bits of a lease counter that hold the shard-local counter (the rest is the shard index).
const LOCAL_COUNTER_BITS: u32 = 40;

/// One active lease.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveLease {
    pub domain: RequestDomain,
}

/// A lease admitted under the lock, not yet turned into the caller's lease value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    pub counter: u64,
    pub slot: u32,
    /// The domain limit at admission.
    pub limit: u32,
    /// The domain's in-flight count right after this admission (itself included).
    pub in_flight: u32,
    pub effective_max: u32,
    pub acquired_at: Instant,
}

/// Leases of one endpoint.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Shard index (the high bits of every lease counter it issues).
    shard_index: u64,
    pub leases: Slab<ActiveLease>,
    next_local: u64,
    released: VecDeque<u64>,
    /// Leases in flight over all domains.
    pub in_flight: u32,
    /// Most requests in flight at once over the shard's life (observed maxima for reports).
    pub max_in_flight: u32,
}

impl Ledger {
    /// An empty ledger for shard `shard_index`.
    pub fn new(shard_index: u64) -> Self {
        Self {
            shard_index,
            leases: Slab::default(),
            next_local: 1,
            released: VecDeque::new(),
            in_flight: 0,
            max_in_flight: 0,
        }
    }

    /// Records a new lease of `domain`; returns its `(counter, slot)`.
    pub fn issue(&mut self, domain: RequestDomain) -> (u64, u32) {
        let local = self.next_local;
        self.next_local += 1;
        let counter = (self.shard_index << LOCAL_COUNTER_BITS) | local;
        let slot = self.leases.insert(counter, ActiveLease { domain });
        self.in_flight += 1;
        self.max_in_flight = self.max_in_flight.max(self.in_flight);
        (counter, slot)
    }

    /// Takes back a lease issued by mistake (never released, not remembered).
    pub fn undo(&mut self, slot: u32, counter: u64) {
        let _ = self.leases.remove(slot, counter);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Releases an active lease exactly once; false when it is not active.
    pub fn retire(&mut self, slot: u32, counter: u64) -> bool {
        if self.leases.remove(slot, counter).is_none() {
            return false;
        }
        if self.released.len() >= RELEASED_LEASE_HISTORY_LIMIT {
            self.released.pop_front();
        }
        self.released.push_back(counter);
        self.in_flight = self.in_flight.saturating_sub(1);
        true
    }

    /// Classifies a release of a lease that is not active here.
    pub fn classify_inactive(&self, index: u64, counter: u64) -> ReleaseReason {
        let local = counter & ((1u64 << LOCAL_COUNTER_BITS) - 1);
        if counter >> LOCAL_COUNTER_BITS != index || local == 0 || local >= self.next_local {
            ReleaseReason::UnknownLease
        } else if self.released.contains(&counter) {
            ReleaseReason::Duplicate
        } else {
            ReleaseReason::StaleLease
        }
    }
}
