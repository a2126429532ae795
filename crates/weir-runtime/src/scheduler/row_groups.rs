//! `RowGroupAdmission`: how many row groups may be in flight (fixed cap or additive-adaptive target).

use super::config::RowGroupMode;

/// Why the next row group was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowGroupBlock {
    /// The hard cap (`max_concurrent_row_groups`) is reached.
    HardCap,
    /// The adaptive soft target is reached.
    SoftTarget,
}

impl RowGroupBlock {
    /// The snake_case reason used in events and the capacity plan.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HardCap => "hard_cap",
            Self::SoftTarget => "soft_target",
        }
    }
}

/// Row-group admission state. Owned by the scheduler loop; no locks.
///
/// A row group is "in flight" from admission until it is checkpointed (written), so completed
/// row groups waiting for an earlier one to be written still hold their slot: memory stays
/// bounded by the cap.
#[derive(Debug, Clone)]
pub struct RowGroupAdmission {
    hard_cap: u32,
    mode: RowGroupMode,
    target: u32,
    in_flight: u32,
    max_in_flight: u32,
    max_target: u32,
}

impl RowGroupAdmission {
    /// A fresh admission state.
    pub fn new(hard_cap: u32, mode: RowGroupMode) -> Self {
        let target = match mode {
            RowGroupMode::Fixed => hard_cap,
            RowGroupMode::Adaptive { initial } => initial.clamp(1, hard_cap.max(1)),
        };
        Self {
            hard_cap,
            mode,
            target,
            in_flight: 0,
            max_in_flight: 0,
            max_target: target,
        }
    }

    /// Admits one row group if allowed; `pressure` is true when local scheduler pressure
    /// (e.g. a backlog of ready tasks) says the adaptive target should not grow.
    pub fn try_admit(&mut self, pressure: bool) -> Result<Option<u32>, RowGroupBlock> {
        if self.in_flight >= self.hard_cap {
            return Err(RowGroupBlock::HardCap);
        }
        let mut target_changed = None;
        if self.in_flight >= self.target {
            match self.mode {
                RowGroupMode::Adaptive { .. } if !pressure && self.target < self.hard_cap => {
                    self.target += 1;
                    self.max_target = self.max_target.max(self.target);
                    target_changed = Some(self.target);
                }
                _ => return Err(RowGroupBlock::SoftTarget),
            }
        }
        self.in_flight += 1;
        self.max_in_flight = self.max_in_flight.max(self.in_flight);
        Ok(target_changed)
    }

    /// A row group was checkpointed (or abandoned): its slot is free.
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Row groups in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Most row groups ever in flight at once.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// Current soft target (equals the hard cap in fixed mode).
    pub fn target(&self) -> u32 {
        self.target
    }

    /// Highest target reached.
    pub fn max_target(&self) -> u32 {
        self.max_target
    }

    /// The hard cap.
    pub fn hard_cap(&self) -> u32 {
        self.hard_cap
    }

    /// The mode.
    pub fn mode(&self) -> RowGroupMode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_mode_caps_and_frees() {
        let mut r = RowGroupAdmission::new(2, RowGroupMode::Fixed);
        assert_eq!(r.try_admit(false), Ok(None));
        assert_eq!(r.try_admit(true), Ok(None));
        assert_eq!(r.try_admit(false), Err(RowGroupBlock::HardCap));
        r.release();
        assert_eq!(r.try_admit(false), Ok(None));
        assert_eq!(r.max_in_flight(), 2);
    }

    #[test]
    fn adaptive_mode_grows_additively_without_pressure_and_never_shrinks() {
        let mut r = RowGroupAdmission::new(3, RowGroupMode::Adaptive { initial: 1 });
        assert_eq!(r.try_admit(false), Ok(None));
        assert_eq!(r.try_admit(true), Err(RowGroupBlock::SoftTarget));
        assert_eq!(r.try_admit(false), Ok(Some(2)));
        assert_eq!(r.try_admit(false), Ok(Some(3)));
        assert_eq!(r.try_admit(false), Err(RowGroupBlock::HardCap));
        r.release();
        r.release();
        assert_eq!(r.target(), 3);
        assert_eq!(r.max_target(), 3);
    }
}
