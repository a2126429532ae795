//! `Slab`: a tagged slot arena (O(1) insert/lookup/remove without hashing) for leases and waiters.
//!
//! Each entry carries a tag (a lease counter or waiter id), so a stale slot index whose slot was
//! reused never matches.

/// Slot arena whose entries are addressed by `(slot, tag)`.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: Vec<Option<(u64, T)>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` under `tag`; returns its slot.
    pub fn insert(&mut self, tag: u64, value: T) -> u32 {
        self.len += 1;
        match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = Some((tag, value));
                slot
            }
            None => {
                self.entries.push(Some((tag, value)));
                (self.entries.len() - 1) as u32
            }
        }
    }

    /// The entry at `slot` if it carries `tag`.
    pub fn get(&self, slot: u32, tag: u64) -> Option<&T> {
        match self.entries.get(slot as usize) {
            Some(Some((t, v))) if *t == tag => Some(v),
            _ => None,
        }
    }

    /// Mutable access to the entry at `slot` if it carries `tag`.
    pub fn get_mut(&mut self, slot: u32, tag: u64) -> Option<&mut T> {
        match self.entries.get_mut(slot as usize) {
            Some(Some((t, v))) if *t == tag => Some(v),
            _ => None,
        }
    }

    /// Removes the entry at `slot` if it carries `tag`.
    pub fn remove(&mut self, slot: u32, tag: u64) -> Option<T> {
        let entry = self.entries.get_mut(slot as usize)?;
        if !matches!(entry, Some((t, _)) if *t == tag) {
            return None;
        }
        let (_, value) = entry.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(value)
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Iterates live values.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().flatten().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_slots_do_not_match_old_tags() {
        let mut s = Slab::default();
        let a = s.insert(1, "a");
        assert_eq!(s.remove(a, 1), Some("a"));
        let b = s.insert(2, "b");
        assert_eq!(a, b);
        assert_eq!(s.get(a, 1), None);
        assert_eq!(s.remove(a, 1), None);
        assert_eq!(s.get(b, 2), Some(&"b"));
        assert_eq!(s.len(), 1);
        assert_eq!(s.iter().count(), 1);
    }
}
