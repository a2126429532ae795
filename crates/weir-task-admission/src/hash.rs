//! `PtrIndex`: `Arc` address → slot, the hash-free fast path of the queue's group and shape lookups.
//!
//! Its map (like every map of this crate) uses the one fast hasher of the admission crates,
//! `weir-fair`'s re-export of `rustc-hash`'s FxHash: keys are produced by weir itself (not by an
//! adversary), so a cheap non-cryptographic hash is safe and keeps the dispatch cycle short.

use weir_fair::hash::FxHashMap;

/// Slots of the direct-mapped cache in front of a [`PtrIndex`] (a power of two; sized so a few
/// hundred live groups rarely collide).
const PTR_CACHE_WAYS: usize = 1024;

/// `Arc` address → slot: a hash map with a small direct-mapped cache in front.
///
/// The cache holds a consistent subset of the map (insert writes both, remove clears both), so
/// a cache hit is authoritative; the common lookup (a handful of hot groups) is then one load and
/// one compare instead of a hash-table probe.
#[derive(Debug, Clone)]
pub(crate) struct PtrIndex {
    map: FxHashMap<u64, u32>,
    /// Boxed: 16 KiB inline would make every move of the owning queue or controller a memcpy.
    cache: Box<[(u64, u32)]>,
}

impl Default for PtrIndex {
    fn default() -> Self {
        Self {
            map: FxHashMap::default(),
            cache: vec![(0, 0); PTR_CACHE_WAYS].into_boxed_slice(),
        }
    }
}

#[inline]
fn way(addr: u64) -> usize {
    // Allocations are 16-byte aligned; mix in higher bits so neighbours spread.
    ((addr >> 4) ^ (addr >> 11)) as usize % PTR_CACHE_WAYS
}

impl PtrIndex {
    /// The slot recorded for `addr`.
    #[inline]
    pub(crate) fn get(&self, addr: &u64) -> Option<&u32> {
        let e = &self.cache[way(*addr)];
        if e.0 == *addr && *addr != 0 {
            return Some(&e.1);
        }
        self.map.get(addr)
    }

    /// Records `addr → slot`.
    pub(crate) fn insert(&mut self, addr: u64, slot: u32) -> Option<u32> {
        self.cache[way(addr)] = (addr, slot);
        self.map.insert(addr, slot)
    }

    /// Forgets `addr`.
    pub(crate) fn remove(&mut self, addr: &u64) -> Option<u32> {
        let w = way(*addr);
        if self.cache[w].0 == *addr {
            self.cache[w] = (0, 0);
        }
        self.map.remove(addr)
    }
}
