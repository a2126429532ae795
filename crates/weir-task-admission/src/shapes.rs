//! `ShapeTable`: the controller's interned request shapes, resolved to resource indices.
//!
//! Many tasks share one `Arc<SchedulerResourceRequest>`. The table maps that `Arc`'s address to
//! a shape holding the request's amounts as `(resource index, amount)` pairs, resolved once, so
//! the hard check and the ledger updates on the dispatch path index arrays instead of searching
//! keys. A shape counts the leases holding it with a plain integer, so leases need no `Arc`.
//! Only satisfiable requests are interned (every resource limited, every amount within it).

use crate::admission_view::LedgerState;
use crate::hash::PtrIndex;
use std::sync::Arc;
use weir_contracts::SchedulerResourceRequest;

#[derive(Debug)]
struct Shape {
    request: Arc<SchedulerResourceRequest>,
    /// `(resource index, amount)` per requested resource.
    resolved: Box<[(u32, u32)]>,
    leases: u32,
}

/// Shapes no lease holds, kept for reuse until they outnumber this (then swept).
const IDLE_SHAPE_BOUND: usize = 1024;

/// Interned, resolved request shapes. Memory is bounded by shapes held by active leases plus
/// [`IDLE_SHAPE_BOUND`] idle ones.
#[derive(Debug, Default)]
pub(crate) struct ShapeTable {
    shapes: Vec<Option<Shape>>,
    free: Vec<u32>,
    index: PtrIndex,
    idle: usize,
}

impl ShapeTable {
    /// The shape interned for this very `Arc`, if any.
    #[inline]
    pub(crate) fn find(&self, request: &Arc<SchedulerResourceRequest>) -> Option<u32> {
        let id = *self.index.get(&(Arc::as_ptr(request) as usize as u64))?;
        // The address is authoritative only while the shape holds that very `Arc`.
        let s = self.shapes.get(id as usize)?.as_ref()?;
        Arc::ptr_eq(&s.request, request).then_some(id)
    }

    /// The resolved amounts of shape `id`.
    #[inline]
    pub(crate) fn resolved(&self, id: u32) -> &[(u32, u32)] {
        self.shapes
            .get(id as usize)
            .and_then(|s| s.as_ref())
            .map_or(&[], |s| &s.resolved)
    }

    /// The request of shape `id`.
    pub(crate) fn request(&self, id: u32) -> Option<&Arc<SchedulerResourceRequest>> {
        self.shapes.get(id as usize)?.as_ref().map(|s| &s.request)
    }

    /// Counts one more lease on shape `id` (found by [`Self::find`] since the last change);
    /// returns it, or `None` when `id` is vacant.
    #[inline]
    pub(crate) fn hold_id(&mut self, id: u32) -> Option<u32> {
        let s = self.shapes.get_mut(id as usize)?.as_mut()?;
        if s.leases == 0 {
            self.idle = self.idle.saturating_sub(1);
        }
        s.leases += 1;
        Some(id)
    }

    /// Counts one more lease on `request`'s shape, interning it first when new. `None` when the
    /// request names a resource without a limit (callers check satisfiability before).
    pub(crate) fn hold(
        &mut self,
        request: &Arc<SchedulerResourceRequest>,
        ledger: &mut LedgerState,
    ) -> Option<u32> {
        if let Some(id) = self.find(request) {
            return self.hold_id(id);
        }
        let resolved = request
            .amounts()
            .iter()
            .map(|(k, a)| ledger.resource_index(k).map(|i| (i as u32, *a)))
            .collect::<Option<Box<[_]>>>()?;
        for ((k, _), (i, _)) in request.amounts().iter().zip(resolved.iter()) {
            if let Some(r) = ledger.resources.get_mut(*i as usize) {
                // Equal text, other allocation: adopt the request's key `Arc`, so policies'
                // lookups by this request's keys hit the address fast path, not a text compare.
                if !std::ptr::eq(r.key.as_str(), k.as_str()) {
                    r.key = k.clone();
                }
            }
        }
        if self.idle > IDLE_SHAPE_BOUND {
            self.sweep_idle();
        }
        let shape = Shape {
            request: request.clone(),
            resolved,
            leases: 1,
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.shapes[i as usize] = Some(shape);
                i
            }
            None => {
                self.shapes.push(Some(shape));
                (self.shapes.len() - 1) as u32
            }
        };
        self.index.insert(Arc::as_ptr(request) as usize as u64, id);
        Some(id)
    }

    /// One fewer lease on shape `id` (the shape stays readable until a later `hold`).
    pub(crate) fn release(&mut self, id: u32) {
        if let Some(Some(s)) = self.shapes.get_mut(id as usize) {
            s.leases = s.leases.saturating_sub(1);
            if s.leases == 0 {
                self.idle += 1;
            }
        }
    }

    fn sweep_idle(&mut self) {
        for (i, slot) in self.shapes.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|s| s.leases == 0) {
                if let Some(s) = slot.take() {
                    self.index
                        .remove(&(Arc::as_ptr(&s.request) as usize as u64));
                }
                self.free.push(i as u32);
            }
        }
        self.idle = 0;
    }
}
