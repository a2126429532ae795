//! Fast, deterministic hashers for the crate's internal maps (task ids, group keys, lease counters).
//!
//! Keys are produced by weir itself (not by an adversary), so a cheap non-cryptographic hash is
//! safe and keeps the dispatch cycle short; std's SipHash costs several times more per lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x517c_c1b7_2722_0a95;

/// A word-at-a-time multiplicative hasher (FxHash's mixing) for string-bearing keys.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // One extra round spreads the last word's bits into the high bits hashbrown uses.
        (self.0 ^ (self.0 >> 29)).wrapping_mul(K)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
}

/// A multiplicative hasher for `u64` keys (lease counters).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing spreads sequential counters over all buckets.
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// HashMap with the word-at-a-time hasher.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// HashMap keyed by u64 ids.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

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
    map: IdMap<u32>,
    /// Boxed: 16 KiB inline would make every move of the owning queue or controller a memcpy.
    cache: Box<[(u64, u32)]>,
}

impl Default for PtrIndex {
    fn default() -> Self {
        Self {
            map: IdMap::default(),
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
