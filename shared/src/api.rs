//! Messages the server and the browser exchange, as JSON. Defined once here
//! so both sides agree on every field.

use serde::{Deserialize, Serialize};

/// Progress of a training run, sent per step and per epoch on the training
/// websocket and shown by the terminal progress bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrainEvent {
    /// The run changed state (started, resumed, stopping, finished, failed).
    State { state: RunState, message: String },
    /// One optimizer step.
    Step(StepStats),
    /// The end of an epoch, with validation figures.
    Epoch(EpochStats),
}

/// Life cycle of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Preparing,
    Training,
    Stopping,
    Finished,
    Stopped,
    Failed,
}

/// Figures of one training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub epoch: usize,
    /// Step within the epoch, from 0.
    pub step: usize,
    pub steps_per_epoch: usize,
    /// Steps since the start of the run, from 1.
    pub global_step: usize,
    pub total_steps: usize,
    pub loss: f64,
    /// Share of triplets with the positive closer than the negative.
    pub accuracy: f64,
    /// Learning rate of the head.
    pub lr: f64,
    pub images_per_sec: f64,
    pub eta_secs: f64,
}

/// Figures at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub n_epochs: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// Absent when the validation split has no individual with two images.
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// MAP@5 of validation images against the training gallery.
    pub val_map5: Option<f64>,
    pub secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_json() {
        let event = TrainEvent::State { state: RunState::Training, message: "go".into() };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(json, r#"{"type":"state","state":"training","message":"go"}"#);
        assert_eq!(serde_json::from_str::<TrainEvent>(&json).unwrap(), event);
    }
}
