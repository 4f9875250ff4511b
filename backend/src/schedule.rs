//! The learning-rate schedule: phases of cycles, each cycle a short linear
//! warm-up then a long linear annealing, as in the reference kernel's
//! training (fast.ai's cyclical rates with a 1:20 warm-up and a floor of a
//! tenth of the peak).
//!
//! The schedule is data in the run's config file, not code: the default
//! reproduces the reference (1 epoch with the backbone frozen at `lr`, then
//! 4 one-epoch cycles at `lr/4`, 2 two-epoch cycles at `lr/8` and one
//! two-epoch cycle at `lr/16`, with the backbone's two halves at 1/25 and
//! 1/5 of the head's rate). A schedule may also come from a person's hand
//! in the admin form, so [`Schedule::check`] refuses one whose rates would
//! be negative or not finite.

use serde::{Deserialize, Serialize};

/// A stretch of training with one peak rate and one freezing state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Peak rate as a fraction of the run's base learning rate.
    pub lr_factor: f64,
    pub n_cycles: usize,
    pub epochs_per_cycle: usize,
    /// Train the head alone.
    pub freeze_backbone: bool,
    /// Multipliers for the parameter groups: stem and first half of the
    /// backbone, second half, head.
    pub group_factors: [f64; 3],
    /// Share of a cycle spent warming up; 0 gives a constant rate.
    pub warmup_share: f64,
    /// The rate starts and ends a cycle at peak / `floor_div`.
    pub floor_div: f64,
}

/// The phases, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub phases: Vec<Phase>,
}

/// Why a schedule cannot be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the schedule has no epochs")]
    NoEpochs,
    #[error("schedule.phases[{phase_idx}].{field} must be {expected}, not {got}")]
    OutOfRange {
        phase_idx: usize,
        field: &'static str,
        expected: &'static str,
        got: f64,
    },
}

/// Where in the schedule an epoch falls.
#[derive(Debug, Clone, PartialEq)]
pub struct Position<'a> {
    pub phase: &'a Phase,
    pub phase_idx: usize,
    /// Epoch within its cycle.
    pub cycle_epoch: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::reference()
    }
}

impl Phase {
    fn cyclic(lr_factor: f64, n_cycles: usize, epochs_per_cycle: usize) -> Self {
        Self {
            lr_factor,
            n_cycles,
            epochs_per_cycle,
            freeze_backbone: false,
            group_factors: [1.0 / 25.0, 1.0 / 5.0, 1.0],
            warmup_share: 1.0 / 20.0,
            floor_div: 10.0,
        }
    }

    pub fn n_epochs(&self) -> usize {
        self.n_cycles * self.epochs_per_cycle
    }

    /// The first field whose value makes a rate infinite, negative or
    /// undefined, as `(field, what it must be, value)`.
    fn out_of_range(&self) -> Option<(&'static str, &'static str, f64)> {
        let is_factor = |f: f64| f.is_finite() && f >= 0.0;
        if !(self.lr_factor.is_finite() && self.lr_factor > 0.0) {
            return Some(("lr_factor", "a positive number", self.lr_factor));
        }
        if let Some(&f) = self.group_factors.iter().find(|f| !is_factor(**f)) {
            return Some(("group_factors", "numbers of at least 0", f));
        }
        if !(0.0..1.0).contains(&self.warmup_share) {
            return Some(("warmup_share", "at least 0 and below 1", self.warmup_share));
        }
        if !(self.floor_div.is_finite() && self.floor_div >= 1.0) {
            return Some(("floor_div", "at least 1", self.floor_div));
        }
        None
    }
}

impl Schedule {
    /// The reference kernel's schedule (11 epochs).
    pub fn reference() -> Self {
        let head_only = Phase {
            lr_factor: 1.0,
            n_cycles: 1,
            epochs_per_cycle: 1,
            freeze_backbone: true,
            group_factors: [0.0, 0.0, 1.0],
            warmup_share: 0.0,
            floor_div: 1.0,
        };
        let phases = vec![
            head_only,
            Phase::cyclic(1.0 / 4.0, 4, 1),
            Phase::cyclic(1.0 / 8.0, 2, 2),
            Phase::cyclic(1.0 / 16.0, 1, 2),
        ];
        Self { phases }
    }

    pub fn n_epochs(&self) -> usize {
        self.phases.iter().map(Phase::n_epochs).sum()
    }

    /// Checks what deserialising cannot: that there is an epoch to train
    /// and that every phase gives finite, non-negative rates.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::NoEpochs`], or the first phase field out of range.
    pub fn check(&self) -> Result<(), ScheduleError> {
        if self.n_epochs() == 0 {
            return Err(ScheduleError::NoEpochs);
        }
        for (phase_idx, phase) in self.phases.iter().enumerate() {
            if let Some((field, expected, got)) = phase.out_of_range() {
                return Err(ScheduleError::OutOfRange {
                    phase_idx,
                    field,
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }

    /// The first `n_epochs` epochs of this schedule, for short runs; a
    /// phase cut short keeps only its whole cycles, or one shortened cycle.
    pub fn truncated(&self, n_epochs: usize) -> Self {
        let mut left = n_epochs;
        let mut phases = Vec::new();
        for phase in &self.phases {
            if left == 0 {
                break;
            }
            let mut phase = phase.clone();
            if phase.n_epochs() > left {
                let n_cycles = left / phase.epochs_per_cycle;
                if n_cycles == 0 {
                    phase.epochs_per_cycle = left;
                    phase.n_cycles = 1;
                } else {
                    phase.n_cycles = n_cycles;
                }
            }
            left -= phase.n_epochs().min(left);
            phases.push(phase);
        }
        Self { phases }
    }

    /// The phase that `epoch` (from 0) belongs to, or `None` past the end.
    pub fn position(&self, epoch: usize) -> Option<Position<'_>> {
        let mut first = 0;
        for (phase_idx, phase) in self.phases.iter().enumerate() {
            if epoch < first + phase.n_epochs() {
                let cycle_epoch = (epoch - first) % phase.epochs_per_cycle;
                return Some(Position {
                    phase,
                    phase_idx,
                    cycle_epoch,
                });
            }
            first += phase.n_epochs();
        }
        None
    }

    /// Learning rate of each group at `step` (from 0) of `epoch`, with
    /// `steps_per_epoch` steps an epoch.
    pub fn lrs(&self, base_lr: f64, epoch: usize, step: usize, steps_per_epoch: usize) -> [f64; 3] {
        let Some(position) = self.position(epoch) else {
            return [0.0; 3];
        };
        let phase = position.phase;
        let cycle_len = (phase.epochs_per_cycle * steps_per_epoch).max(1);
        let cycle_step = position.cycle_epoch * steps_per_epoch + step;
        let peak = base_lr * phase.lr_factor;
        let lr = peak * cycle_shape(phase, cycle_step, cycle_len);
        phase.group_factors.map(|factor| lr * factor)
    }
}

/// Fraction of the peak at `cycle_step` of `cycle_len`: up from the floor
/// over the warm-up, then linearly back down to the floor.
fn cycle_shape(phase: &Phase, cycle_step: usize, cycle_len: usize) -> f64 {
    let floor = 1.0 / phase.floor_div;
    let warmup = (cycle_len as f64 * phase.warmup_share).floor();
    let t = cycle_step as f64;
    let pct = if warmup <= 0.0 || t > warmup {
        if phase.warmup_share == 0.0 {
            1.0
        } else {
            1.0 - (t - warmup) / (cycle_len as f64 - warmup)
        }
    } else {
        t / warmup
    };
    floor + (1.0 - floor) * pct
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_schedule_has_eleven_epochs_in_four_phases() {
        let schedule = Schedule::reference();
        assert_eq!(schedule.n_epochs(), 11);
        assert!(schedule.position(0).unwrap().phase.freeze_backbone);
        assert_eq!(schedule.position(1).unwrap().phase_idx, 1);
        assert_eq!(schedule.position(5).unwrap().phase_idx, 2);
        assert_eq!(schedule.position(6).unwrap().cycle_epoch, 1);
        assert_eq!(schedule.position(9).unwrap().phase_idx, 3);
        assert!(schedule.position(11).is_none());
    }

    #[test]
    fn frozen_phase_is_constant_for_the_head_only() {
        let schedule = Schedule::reference();
        for step in [0, 50, 99] {
            assert_eq!(schedule.lrs(1e-3, 0, step, 100), [0.0, 0.0, 1e-3]);
        }
    }

    #[test]
    fn cycle_warms_up_then_anneals_to_a_tenth() {
        // Phase 2, one-epoch cycles of 100 steps: warm-up over 5 steps from
        // lr/4/10 to lr/4, then linear down to lr/40 at the end.
        let schedule = Schedule::reference();
        let head = |step| schedule.lrs(1.0, 1, step, 100)[2];
        assert!((head(0) - 0.025).abs() < 1e-12);
        assert!((head(5) - 0.25).abs() < 1e-12);
        assert!((head(100) - 0.025).abs() < 1e-12);
        assert!(head(3) < head(5) && head(50) < head(5) && head(50) > head(90));
        let groups = schedule.lrs(1.0, 1, 5, 100);
        assert!((groups[0] - 0.25 / 25.0).abs() < 1e-12);
        assert!((groups[1] - 0.25 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn two_epoch_cycles_span_both_epochs() {
        // Phase 3 starts at epoch 5: the cycle's second epoch continues the
        // annealing rather than restarting it.
        let schedule = Schedule::reference();
        let end_of_first = schedule.lrs(1.0, 5, 99, 100)[2];
        let start_of_second = schedule.lrs(1.0, 6, 0, 100)[2];
        assert!(start_of_second < end_of_first);
        // The next cycle starts at the floor and peaks after its warm-up
        // (a twentieth of 200 steps).
        assert!(schedule.lrs(1.0, 7, 0, 100)[2] < start_of_second);
        assert!(schedule.lrs(1.0, 7, 10, 100)[2] > start_of_second);
    }

    #[test]
    fn truncation_keeps_the_first_epochs() {
        let schedule = Schedule::reference();
        assert_eq!(schedule.truncated(3).n_epochs(), 3);
        assert!(schedule.truncated(1).phases[0].freeze_backbone);
        assert_eq!(schedule.truncated(6).phases[2].epochs_per_cycle, 1);
        assert_eq!(schedule.truncated(40), schedule);
    }

    #[test]
    fn the_shared_reference_text_is_the_reference_schedule() {
        let text = flukeid_shared::api::REFERENCE_SCHEDULE_JSON;
        let parsed: Schedule = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, Schedule::reference());
    }

    #[test]
    fn check_names_the_first_bad_phase_field() {
        assert_eq!(Schedule::reference().check(), Ok(()));
        assert_eq!(
            Schedule { phases: vec![] }.check(),
            Err(ScheduleError::NoEpochs)
        );

        let mut schedule = Schedule::reference();
        schedule.phases[2].floor_div = 0.0;
        let err = schedule.check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "schedule.phases[2].floor_div must be at least 1, not 0"
        );

        let mut schedule = Schedule::reference();
        schedule.phases[1].group_factors[0] = -0.5;
        let err = schedule.check().unwrap_err().to_string();
        assert!(err.contains("phases[1].group_factors"), "{err}");

        schedule.phases[1].group_factors[0] = 0.5;
        schedule.phases[1].warmup_share = 1.0;
        let err = schedule.check().unwrap_err().to_string();
        assert!(err.contains("phases[1].warmup_share"), "{err}");
    }

    #[test]
    fn schedule_round_trips_through_json() {
        let schedule = Schedule::reference();
        let json = serde_json::to_string(&schedule).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), schedule);
    }
}
