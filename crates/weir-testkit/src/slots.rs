//! `Slots`: the server's hidden capacity — a count of requests in service against a capacity
//! that may step over time, with a FIFO of waiters for the queueing mode.
//!
//! A released slot goes to the oldest waiter still listening; a waiter that stopped listening
//! (its connection dropped) is skipped, and a slot handed to it after it left comes back when
//! the undelivered permit drops. A capacity step-up admits waiters at the next release.

use crate::config::LoopbackConfig;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;
use tokio::time::Instant;

#[derive(Debug, Default)]
struct SlotState {
    active: u32,
    waiters: VecDeque<oneshot::Sender<Permit>>,
}

/// Hidden capacity with an optional schedule.
#[derive(Debug)]
pub(crate) struct Slots {
    config: LoopbackConfig,
    started: Instant,
    state: Mutex<SlotState>,
}

/// One held slot; dropping it frees the slot (or hands it to the next waiter).
#[derive(Debug)]
pub(crate) struct Permit {
    slots: Arc<Slots>,
    armed: bool,
}

impl Slots {
    /// Slots for `config` (its `capacity` and `capacity_schedule`), the schedule starting now.
    pub fn new(config: &LoopbackConfig) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            started: Instant::now(),
            state: Mutex::new(SlotState::default()),
        })
    }

    fn capacity(&self) -> u32 {
        self.config
            .capacity_at_elapsed(self.started.elapsed())
            .unwrap_or(u32::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot now, if one is free and nobody queues ahead.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let cap = self.capacity();
        let mut st = self.lock();
        (st.active < cap && st.waiters.is_empty()).then(|| {
            st.active += 1;
            Permit {
                slots: self.clone(),
                armed: true,
            }
        })
    }

    /// A slot, waiting in FIFO order behind earlier waiters (`None` if the server shut down).
    pub async fn acquire_queued(self: &Arc<Self>) -> Option<Permit> {
        let rx = {
            let cap = self.capacity();
            let mut st = self.lock();
            if st.active < cap && st.waiters.is_empty() {
                st.active += 1;
                return Some(Permit {
                    slots: self.clone(),
                    armed: true,
                });
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            rx
        };
        rx.await.ok()
    }

    fn release(self: &Arc<Self>) {
        let cap = self.capacity();
        let mut st = self.lock();
        st.active = st.active.saturating_sub(1);
        while st.active < cap {
            let Some(tx) = st.waiters.pop_front() else {
                break;
            };
            st.active += 1;
            let permit = Permit {
                slots: self.clone(),
                armed: true,
            };
            if let Err(mut undelivered) = tx.send(permit) {
                // The waiter left: take the slot back without re-entering this lock.
                undelivered.armed = false;
                st.active -= 1;
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.slots.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn queue_hands_slots_over_in_fifo_order_and_skips_leavers() {
        let slots = Slots::new(&LoopbackConfig::new().capacity(1));
        let first = slots.try_acquire().expect("free");
        assert!(slots.try_acquire().is_none());
        let s2 = slots.clone();
        let leaver = tokio::spawn(async move { s2.acquire_queued().await.map(|_| ()) });
        let s3 = slots.clone();
        let stayer = tokio::spawn(async move { s3.acquire_queued().await });
        tokio::task::yield_now().await;
        leaver.abort();
        let _ = leaver.await;
        drop(first);
        let second = stayer.await.expect("joined").expect("slot");
        assert_eq!(slots.lock().active, 1);
        drop(second);
        assert_eq!(slots.lock().active, 0);
        assert!(slots.lock().waiters.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_steps_down_and_up_on_schedule() {
        let config = LoopbackConfig::new()
            .capacity(2)
            .capacity_at(Duration::from_secs(4), 1)
            .capacity_at(Duration::from_secs(8), 3);
        let slots = Slots::new(&config);
        let held: Vec<_> = (0..3).filter_map(|_| slots.try_acquire()).collect();
        assert_eq!(held.len(), 2);
        drop(held);
        tokio::time::advance(Duration::from_secs(4)).await;
        let held: Vec<_> = (0..3).filter_map(|_| slots.try_acquire()).collect();
        assert_eq!(held.len(), 1);
        drop(held);
        tokio::time::advance(Duration::from_secs(4)).await;
        let held: Vec<_> = (0..5).filter_map(|_| slots.try_acquire()).collect();
        assert_eq!(held.len(), 3);
    }
}
