//! `ActiveLeases`: the controller's slab of active lease records and the request shapes they hold.
//!
//! A lease carries only its id, task id and slab index; the record here keeps what the lease
//! holds (group ledger slot, request shape). Request shapes are interned by `Arc` address, with
//! a plain (non-atomic) count of the leases holding each, so issuing and releasing a lease does
//! no reference counting in the common case of many tasks sharing one request `Arc`.

use crate::hash::PtrIndex;
use std::sync::Arc;
use weir_contracts::SchedulerResourceRequest;

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

#[derive(Debug)]
struct Shape {
    request: Arc<SchedulerResourceRequest>,
    leases: u32,
}

/// Shapes no lease holds, kept for reuse until they outnumber this (then swept).
const IDLE_SHAPE_BOUND: usize = 1024;

/// The active-lease slab plus the interned request shapes. Memory is bounded by peak
/// concurrent leases plus [`IDLE_SHAPE_BOUND`] idle shapes.
#[derive(Debug, Default)]
pub(crate) struct ActiveLeases {
    records: Vec<ActiveRecord>,
    free_records: Vec<u32>,
    shapes: Vec<Option<Shape>>,
    free_shapes: Vec<u32>,
    shape_index: PtrIndex,
    idle_shapes: usize,
}

impl ActiveLeases {
    /// Records a new lease; returns its slab index.
    pub(crate) fn insert(
        &mut self,
        counter: u64,
        group_slot: u32,
        request: &Arc<SchedulerResourceRequest>,
    ) -> u32 {
        let shape = self.hold_shape(request);
        let record = ActiveRecord {
            counter,
            group_slot,
            shape,
        };
        match self.free_records.pop() {
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
    pub(crate) fn get(&self, index: u32, counter: u64) -> Option<&ActiveRecord> {
        self.records
            .get(index as usize)
            .filter(|r| r.counter == counter && counter != 0)
    }

    /// Vacates the record at `index`; returns its `(group_slot, shape)`. The shape stays
    /// readable until the next `insert`.
    pub(crate) fn remove(&mut self, index: u32) -> Option<(u32, u32)> {
        let record = self.records.get_mut(index as usize)?;
        if record.counter == 0 {
            return None;
        }
        record.counter = 0;
        let held = (record.group_slot, record.shape);
        self.free_records.push(index);
        if let Some(Some(s)) = self.shapes.get_mut(held.1 as usize) {
            s.leases = s.leases.saturating_sub(1);
            if s.leases == 0 {
                self.idle_shapes += 1;
            }
        }
        Some(held)
    }

    /// The request of shape `shape`.
    pub(crate) fn request(&self, shape: u32) -> Option<&Arc<SchedulerResourceRequest>> {
        self.shapes
            .get(shape as usize)?
            .as_ref()
            .map(|s| &s.request)
    }

    fn hold_shape(&mut self, request: &Arc<SchedulerResourceRequest>) -> u32 {
        let addr = Arc::as_ptr(request) as usize as u64;
        if let Some(&id) = self.shape_index.get(&addr) {
            // The address is authoritative only while the shape holds that very `Arc`.
            if let Some(Some(s)) = self.shapes.get_mut(id as usize) {
                if Arc::ptr_eq(&s.request, request) {
                    if s.leases == 0 {
                        self.idle_shapes = self.idle_shapes.saturating_sub(1);
                    }
                    s.leases += 1;
                    return id;
                }
            }
        }
        if self.idle_shapes > IDLE_SHAPE_BOUND {
            self.sweep_idle_shapes();
        }
        let shape = Shape {
            request: request.clone(),
            leases: 1,
        };
        let id = match self.free_shapes.pop() {
            Some(i) => {
                self.shapes[i as usize] = Some(shape);
                i
            }
            None => {
                self.shapes.push(Some(shape));
                (self.shapes.len() - 1) as u32
            }
        };
        self.shape_index.insert(addr, id);
        id
    }

    fn sweep_idle_shapes(&mut self) {
        for (i, slot) in self.shapes.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|s| s.leases == 0) {
                if let Some(s) = slot.take() {
                    self.shape_index
                        .remove(&(Arc::as_ptr(&s.request) as usize as u64));
                }
                self.free_shapes.push(i as u32);
            }
        }
        self.idle_shapes = 0;
    }
}
