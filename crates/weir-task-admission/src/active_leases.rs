//! `ActiveLeases`: the controller's slab of active lease records.
//!
//! A lease carries only its id, task id and slab index; the record here keeps what the lease
//! holds (group ledger slot, request shape), so making and dropping a lease does no reference
//! counting and release is a vector index.

/// One active lease (or a vacant slot: `counter == 0`). Plain data, 16 bytes: a sentinel
/// instead of `Option`, and no owned fields, so vacating and reusing a slot drops nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveRecord {
    /// The lease counter; 0 marks a vacant slot.
    pub(crate) counter: u64,
    /// The group's ledger slot.
    pub(crate) group_slot: u32,
    /// The interned request shape.
    pub(crate) shape: u32,
}

/// The active-lease slab; memory is bounded by peak concurrent leases.
#[derive(Debug, Default)]
pub(crate) struct ActiveLeases {
    records: Vec<ActiveRecord>,
    free: Vec<u32>,
}

impl ActiveLeases {
    /// Records a new lease; returns its slab index.
    #[inline]
    pub(crate) fn insert(&mut self, record: ActiveRecord) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.records[i as usize] = record;
                i
            }
            None => {
                self.records.push(record);
                (self.records.len() - 1) as u32
            }
        }
    }

    /// The record at `index` when it holds lease `counter`.
    #[inline]
    pub(crate) fn get(&self, index: u32, counter: u64) -> Option<ActiveRecord> {
        self.records
            .get(index as usize)
            .copied()
            .filter(|r| r.counter == counter && counter != 0)
    }

    /// Vacates the record at `index` (a no-op for a vacant slot).
    #[inline]
    pub(crate) fn remove(&mut self, index: u32) {
        if let Some(r) = self.records.get_mut(index as usize) {
            if r.counter != 0 {
                r.counter = 0;
                self.free.push(index);
            }
        }
    }
}
