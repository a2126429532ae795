//! The per-shard timer: its schedule (running, epoch, armed instant), the action a locked
//! operation asks for, and the task that sleeps until the next time-based admission.

use crate::shard::Shard;
use std::sync::Weak;
use tokio::time::Instant;

/// What to do with the timer once the shard lock is released.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerAction {
    #[default]
    None,
    Spawn(u64),
    Notify,
}

/// The timer's schedule (under the shard lock).
#[derive(Debug, Default)]
pub(crate) struct TimerState {
    pub running: bool,
    pub epoch: u64,
    pub armed: Option<Instant>,
}

impl TimerState {
    /// Asks for a wake-up at `next`: spawn the task, re-arm it earlier, or nothing.
    pub fn plan(&mut self, next: Instant) -> TimerAction {
        if !self.running {
            self.epoch += 1;
            self.running = true;
            self.armed = Some(next);
            TimerAction::Spawn(self.epoch)
        } else if self.armed.is_none_or(|a| next < a) {
            self.armed = Some(next);
            TimerAction::Notify
        } else {
            TimerAction::None
        }
    }

    /// The task of `epoch` stopped (or could not start).
    pub fn stopped(&mut self, epoch: u64) {
        if self.epoch == epoch {
            self.running = false;
            self.armed = None;
        }
    }
}

/// The timer task: one tick per wake-up until nothing time-based is pending.
pub(crate) async fn timer_loop(weak: Weak<Shard>, epoch: u64) {
    struct Stopped(Weak<Shard>, u64);
    impl Drop for Stopped {
        fn drop(&mut self) {
            if let Some(shard) = self.0.upgrade() {
                shard.timer_stopped(self.1);
            }
        }
    }
    let _stopped = Stopped(weak.clone(), epoch);
    loop {
        let Some(shard) = weak.upgrade() else {
            return;
        };
        let Some(next) = shard.timer_tick(epoch) else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = shard.timer_notified() => {}
        }
    }
}
