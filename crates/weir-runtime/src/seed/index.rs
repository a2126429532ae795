//! `OffsetIndex`: where each seed record starts in the file, at ~4 bytes per record.
//!
//! Offsets only grow, so the high 32 bits change at most once per 4 GiB of file: each record
//! keeps its low 32 bits (`Vec<u32>`), and a short list records the record at which the high
//! part changes (one entry per 4 GiB). A 10 GB file of 100 M lines is 400 MB of index, not
//! 800 MB of `u64`s, and never any of the rows themselves.

/// Start offsets of every record, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    low: Vec<u32>,
    /// `(first record, high 32 bits)`, ascending; the first entry (if any) is for record 0.
    high: Vec<(u64, u32)>,
    /// Byte length of the file (the end of the last record).
    end: u64,
}

impl OffsetIndex {
    /// Appends the next record's start (offsets must not decrease).
    pub(crate) fn push(&mut self, offset: u64) {
        let hi = (offset >> 32) as u32;
        if self.high.last().map(|(_, h)| *h) != Some(hi) {
            self.high.push((self.low.len() as u64, hi));
        }
        self.low.push(offset as u32);
    }

    /// Sets the end of the last record (the file length).
    pub(crate) fn finish(&mut self, end: u64) {
        self.end = end;
    }

    /// Number of records.
    pub(crate) fn len(&self) -> u64 {
        self.low.len() as u64
    }

    /// Bytes of memory the index holds (for the plans' bound and a test).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.low.capacity() * 4 + self.high.capacity() * 16
    }

    /// Releases spare capacity once the index is complete.
    pub(crate) fn shrink(&mut self) {
        self.low.shrink_to_fit();
        self.high.shrink_to_fit();
    }

    /// Where record `i` starts (`None` past the end).
    pub(crate) fn start(&self, i: u64) -> Option<u64> {
        let low = *self.low.get(usize::try_from(i).ok()?)?;
        let at = self.high.partition_point(|(first, _)| *first <= i);
        let hi = self.high.get(at.checked_sub(1)?)?.1;
        Some((u64::from(hi) << 32) | u64::from(low))
    }

    /// The byte range `[start, end)` of record `i`: up to the next record's start (blank lines
    /// between records included) or the end of the file.
    pub(crate) fn span(&self, i: u64) -> Option<(u64, u64)> {
        let start = self.start(i)?;
        let end = match i.checked_add(1).and_then(|n| self.start(n)) {
            Some(next) => next,
            None => self.end,
        };
        Some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_past_4_gib_round_trip() {
        let mut ix = OffsetIndex::default();
        let offsets = [
            0u64,
            10,
            u32::MAX as u64,
            (1 << 32) + 5,
            (1 << 33) + 1,
            (1 << 33) + 9,
        ];
        for o in offsets {
            ix.push(o);
        }
        ix.finish((1 << 33) + 20);
        assert_eq!(ix.len(), 6);
        for (i, o) in offsets.iter().enumerate() {
            assert_eq!(ix.start(i as u64), Some(*o));
        }
        assert_eq!(ix.span(5), Some(((1 << 33) + 9, (1 << 33) + 20)));
        assert_eq!(ix.span(0), Some((0, 10)));
        assert_eq!(ix.start(6), None);
        assert_eq!(ix.high.len(), 3);
    }

    #[test]
    fn a_million_records_take_four_bytes_each() {
        let mut ix = OffsetIndex::default();
        for i in 0..1_000_000u64 {
            ix.push(i * 100);
        }
        ix.shrink();
        assert!(ix.heap_bytes() <= 4_000_000 + 64, "{}", ix.heap_bytes());
    }
}
