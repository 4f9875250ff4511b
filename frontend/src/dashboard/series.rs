//! The training websocket's messages turned into chart series. The first
//! message is the run's history so far ([`TrainHistory`]); plain
//! [`TrainEvent`]s follow. Opening the dashboard mid-run therefore draws
//! the past at once and then keeps drawing.
//!
//! A resumed run repeats the steps after its last checkpoint: a step or
//! epoch that comes again replaces what followed it. When a new job starts
//! on the server, the socket carries on without a fresh history, so the
//! dashboard reconnects to get one ([`Applied::Resync`]).

use flukeid_shared::api::{EpochStats, RunState, StepStats, TrainEvent, TrainHistory};

/// One message of the training websocket.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedMessage {
    History(TrainHistory),
    Event(TrainEvent),
}

/// What applying a message asks of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Updated,
    /// A new job started: reconnect for its history.
    Resync,
}

/// Per-step figures that can be charted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepMetric {
    Loss,
    Accuracy,
    Lr,
    ImagesPerSec,
}

/// Per-epoch figures that can be charted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochMetric {
    TrainLoss,
    ValLoss,
    TrainAccuracy,
    ValAccuracy,
    ValMap5,
}

/// Everything the dashboard knows of the run on the socket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainSeries {
    pub run_id: Option<String>,
    pub steps: Vec<StepStats>,
    pub epochs: Vec<EpochStats>,
    /// The latest change of state and its message.
    pub state: Option<(RunState, String)>,
}

/// Reads one websocket text message.
///
/// # Errors
///
/// A sentence when the text is neither a history nor an event.
pub fn parse_feed(text: &str) -> Result<FeedMessage, String> {
    if let Ok(event) = serde_json::from_str::<TrainEvent>(text) {
        return Ok(FeedMessage::Event(event));
    }
    serde_json::from_str::<TrainHistory>(text)
        .map(FeedMessage::History)
        .map_err(|e| format!("The training feed sent a message this page cannot read ({e})."))
}

/// Whether a run in `state` has ended.
pub fn is_terminal(state: RunState) -> bool {
    matches!(
        state,
        RunState::Finished | RunState::Stopped | RunState::Failed
    )
}

impl TrainSeries {
    /// Applies one message.
    pub fn apply(&mut self, message: FeedMessage) -> Applied {
        match message {
            FeedMessage::History(history) => {
                *self = Self {
                    run_id: history.run_id,
                    ..Self::default()
                };
                for event in history.events {
                    self.push(event);
                }
                Applied::Updated
            }
            FeedMessage::Event(event) => {
                if self.starts_a_new_job(&event) {
                    return Applied::Resync;
                }
                self.push(event);
                Applied::Updated
            }
        }
    }

    /// The latest step, for images per second, the ETA and progress.
    pub fn last_step(&self) -> Option<&StepStats> {
        self.steps.last()
    }

    /// `(global step, value)` for a step metric.
    pub fn step_points(&self, metric: StepMetric) -> Vec<(f64, f64)> {
        self.steps
            .iter()
            .map(|s| (s.global_step as f64, step_value(s, metric)))
            .collect()
    }

    /// `(epoch, value)` for an epoch metric, skipping epochs without it.
    /// Epochs are counted from 1 here, as a person counts them; the server
    /// counts from 0.
    pub fn epoch_points(&self, metric: EpochMetric) -> Vec<(f64, f64)> {
        self.epochs
            .iter()
            .filter_map(|e| epoch_value(e, metric).map(|v| (e.epoch as f64 + 1.0, v)))
            .collect()
    }

    fn push(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Step(step) => {
                self.steps.retain(|s| s.global_step < step.global_step);
                self.steps.push(step);
            }
            TrainEvent::Epoch(epoch) => {
                self.epochs.retain(|e| e.epoch < epoch.epoch);
                self.epochs.push(epoch);
            }
            TrainEvent::State { state, message } => self.state = Some((state, message)),
        }
    }

    /// A job's first event is `Preparing`; after an ended run (or a step
    /// already seen) it means the server started another job.
    fn starts_a_new_job(&self, event: &TrainEvent) -> bool {
        let TrainEvent::State {
            state: RunState::Preparing,
            ..
        } = event
        else {
            return false;
        };
        match &self.state {
            Some((state, _)) => is_terminal(*state),
            None => !self.steps.is_empty(),
        }
    }
}

/// Averages runs of consecutive points so that at most `max_points` are
/// drawn; a long run's chart keeps its shape at a fraction of the cost.
pub fn thin(points: &[(f64, f64)], max_points: usize) -> Vec<(f64, f64)> {
    if points.len() <= max_points || max_points == 0 {
        return points.to_vec();
    }
    let per_bucket = points.len().div_ceil(max_points);
    points
        .chunks(per_bucket)
        .map(|chunk| {
            let n = chunk.len() as f64;
            let (sx, sy) = chunk
                .iter()
                .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
            (sx / n, sy / n)
        })
        .collect()
}

fn step_value(step: &StepStats, metric: StepMetric) -> f64 {
    match metric {
        StepMetric::Loss => step.loss,
        StepMetric::Accuracy => step.accuracy,
        StepMetric::Lr => step.lr,
        StepMetric::ImagesPerSec => step.images_per_sec,
    }
}

fn epoch_value(epoch: &EpochStats, metric: EpochMetric) -> Option<f64> {
    match metric {
        EpochMetric::TrainLoss => Some(epoch.train_loss),
        EpochMetric::ValLoss => epoch.val_loss,
        EpochMetric::TrainAccuracy => Some(epoch.train_accuracy),
        EpochMetric::ValAccuracy => epoch.val_accuracy,
        EpochMetric::ValMap5 => epoch.val_map5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(global_step: usize, loss: f64) -> TrainEvent {
        TrainEvent::Step(StepStats {
            epoch: 0,
            step: global_step - 1,
            steps_per_epoch: 100,
            global_step,
            total_steps: 1100,
            loss,
            accuracy: 0.5,
            lr: 1e-4,
            images_per_sec: 40.0,
            eta_secs: 60.0,
        })
    }

    fn epoch(epoch: usize, val_map5: Option<f64>) -> TrainEvent {
        TrainEvent::Epoch(EpochStats {
            epoch,
            n_epochs: 11,
            train_loss: 0.3,
            train_accuracy: 0.8,
            val_loss: None,
            val_accuracy: Some(0.7),
            val_map5,
            secs: 10.0,
        })
    }

    fn state(state: RunState) -> TrainEvent {
        TrainEvent::State {
            state,
            message: String::new(),
        }
    }

    fn history(events: Vec<TrainEvent>) -> FeedMessage {
        FeedMessage::History(TrainHistory {
            run_id: Some("run-0003".into()),
            events,
        })
    }

    #[test]
    fn the_first_message_is_a_history_and_events_follow() {
        let first = concat!(
            r#"{"run_id":"run-0003","events":"#,
            r#"[{"type":"state","state":"training","message":"go"}]}"#
        );
        let mut series = TrainSeries::default();
        assert_eq!(series.apply(parse_feed(first).unwrap()), Applied::Updated);
        assert_eq!(series.run_id.as_deref(), Some("run-0003"));
        assert_eq!(series.state, Some((RunState::Training, "go".into())));
        let next = serde_json::to_string(&step(1, 0.9)).unwrap();
        series.apply(parse_feed(&next).unwrap());
        assert_eq!(series.step_points(StepMetric::Loss), vec![(1.0, 0.9)]);
        assert!(parse_feed(r#"{"type":"bogus"}"#).is_err());
    }

    #[test]
    fn a_history_replaces_what_was_drawn() {
        let mut series = TrainSeries::default();
        series.apply(history(vec![step(1, 0.9), step(2, 0.8)]));
        series.apply(history(vec![step(1, 0.5)]));
        assert_eq!(series.step_points(StepMetric::Loss), vec![(1.0, 0.5)]);
    }

    #[test]
    fn replayed_steps_and_epochs_replace_what_followed_them() {
        let mut series = TrainSeries::default();
        let events = vec![
            step(1, 0.9),
            step(2, 0.8),
            step(3, 0.7),
            epoch(0, Some(0.2)),
            epoch(1, None),
        ];
        series.apply(history(events));
        series.apply(FeedMessage::Event(step(2, 0.6)));
        series.apply(FeedMessage::Event(epoch(1, Some(0.4))));
        assert_eq!(
            series.step_points(StepMetric::Loss),
            vec![(1.0, 0.9), (2.0, 0.6)]
        );
        assert_eq!(
            series.epoch_points(EpochMetric::ValMap5),
            vec![(1.0, 0.2), (2.0, 0.4)]
        );
        assert_eq!(series.epoch_points(EpochMetric::ValLoss), vec![]);
        assert_eq!(series.last_step().unwrap().global_step, 2);
    }

    #[test]
    fn preparing_after_an_ended_run_asks_for_a_resync() {
        let mut series = TrainSeries::default();
        series.apply(history(vec![
            state(RunState::Training),
            step(1, 0.9),
            state(RunState::Finished),
        ]));
        assert_eq!(
            series.apply(FeedMessage::Event(state(RunState::Preparing))),
            Applied::Resync
        );

        let mut fresh = TrainSeries::default();
        fresh.apply(history(vec![]));
        assert_eq!(
            fresh.apply(FeedMessage::Event(state(RunState::Preparing))),
            Applied::Updated
        );
        assert_eq!(
            fresh.apply(FeedMessage::Event(state(RunState::Training))),
            Applied::Updated
        );

        let mut stateless = TrainSeries::default();
        stateless.apply(history(vec![step(5, 0.1)]));
        assert_eq!(
            stateless.apply(FeedMessage::Event(state(RunState::Preparing))),
            Applied::Resync
        );
    }

    #[test]
    fn thinning_averages_buckets_and_leaves_short_series_alone() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, (i * 2) as f64)).collect();
        assert_eq!(thin(&points, 20), points);
        // Buckets of 4, 4 and 2 points.
        assert_eq!(thin(&points, 3), vec![(1.5, 3.0), (5.5, 11.0), (8.5, 17.0)]);
        assert_eq!(thin(&points, 0), points);
    }
}
