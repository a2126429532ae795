//! The one fast hasher of weir's admission crates: `rustc-hash`'s FxHash, re-exported.
//!
//! Keys of these maps (task ids, group keys, provider/model names, pointer addresses, counters)
//! come from weir itself, not from an adversary, so a cheap non-cryptographic hash is safe; std's
//! SipHash costs several times more per lookup on the dispatch path. `rustc-hash` is rustc's own
//! map hasher, well kept and widely used, so weir carries no hand-written copy of it.

pub use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet, FxHasher};

use std::hash::{BuildHasher, Hash};

/// The 64-bit FxHash of `value` (what a [`FxHashMap`] hashes it to).
#[inline]
pub fn fx_hash_one<T: Hash + ?Sized>(value: &T) -> u64 {
    FxBuildHasher.hash_one(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_deterministic_and_match_the_map_hasher() {
        assert_eq!(fx_hash_one("task-1"), fx_hash_one(&String::from("task-1")));
        assert_ne!(fx_hash_one("task-1"), fx_hash_one("task-2"));
        let mut m: FxHashMap<&str, u32> = FxHashMap::default();
        m.insert("a", 1);
        assert_eq!(m.get("a"), Some(&1));
        let s: FxHashSet<u64> = (0..100).collect();
        assert_eq!(s.len(), 100);
    }
}
