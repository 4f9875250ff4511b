//! Messages the server and the browser exchange, as JSON. Defined once here
//! so both sides agree on every field.
//!
//! Besides the types, one piece of pure logic lives here because both sides
//! show it: how a distance becomes a readable confidence ([`confidence`]);
//! and one piece of data, the reference learning-rate schedule as JSON
//! ([`REFERENCE_SCHEDULE_JSON`]), which the browser shows.
//! Routes and status codes are the server's business, not this module's.

use serde::{Deserialize, Serialize};

use crate::crop::{BoundingBox, CropGeometry};

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

/// The body of every error answer: a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// The answer to an identification: the stored upload and up to five
/// candidates, nearest first. Also pushed to identification websockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentifyResponse {
    pub upload_id: i64,
    /// The run whose model and gallery answered.
    pub run_id: String,
    /// The tag the client sent with the photo, to group a batch upload.
    pub batch: Option<String>,
    pub candidates: Vec<CandidateMatch>,
    /// `new_whale` ranks first: the photo matches no known individual well.
    pub probably_new: bool,
}

/// One individual proposed for a photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateMatch {
    /// An individual's id, or `new_whale`.
    pub label: String,
    /// Embedding distance to the nearest gallery image of the individual
    /// (`dcut` for `new_whale`).
    pub distance: f32,
    /// From 0 to 1; see [`confidence`].
    pub confidence: f32,
    /// URLs of up to three gallery photos of the individual.
    pub photos: Vec<String>,
}

/// Where the server stands: the serving model, its loading, and training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub model: ModelStatus,
    /// Absent until a run's model and gallery are loaded.
    pub serving: Option<ServingInfo>,
    /// Absent when no training job or learning-rate sweep runs.
    pub training: Option<TrainingStatus>,
}

/// Life cycle of the serving model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ModelStatus {
    /// No run has been made the serving run.
    Idle,
    /// The model of `run_id` is embedding its gallery.
    Loading {
        run_id: String,
        done: usize,
        total: usize,
    },
    Ready {
        run_id: String,
    },
    Failed {
        run_id: String,
        message: String,
    },
}

/// The run that answers identifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingInfo {
    pub run_id: String,
    pub backbone: String,
    /// The geometry a browser must crop with to send a `crop`.
    pub geometry: CropGeometry,
    pub dcut: f32,
    pub gallery_size: usize,
    /// Distinct individuals in the gallery, `new_whale` not counted.
    pub n_individuals: usize,
}

/// What the one background job (training or a learning-rate sweep) is
/// doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingStatus {
    pub run_id: String,
    pub kind: JobKind,
    pub state: RunState,
    pub last_step: Option<StepStats>,
    pub last_epoch: Option<EpochStats>,
}

/// The kinds of background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Train,
    LrFind,
}

/// The first message of the training websocket: every event of the
/// current (or latest) run so far. Plain [`TrainEvent`]s follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainHistory {
    pub run_id: Option<String>,
    pub events: Vec<TrainEvent>,
}

/// The answer to starting something that goes on in the background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStarted {
    pub run_id: String,
    pub message: String,
}

/// A training run as the admin list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub state: RunState,
    pub message: String,
    pub backbone: Option<String>,
    pub geometry: Option<CropGeometry>,
    pub epochs_done: usize,
    pub n_epochs: Option<usize>,
    /// Validation MAP@5 after the last epoch.
    pub val_map5: Option<f64>,
    /// The `dcut` stored by a validation sweep.
    pub calibrated_dcut: Option<f32>,
    /// Whether the run has weights to embed with.
    pub has_model: bool,
    pub serving: bool,
}

/// Options of run validation: one `dcut`, or a sweep that stores the best.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    pub dcut: Option<f32>,
    pub sweep: Option<DcutSweep>,
}

/// `n` values of `dcut` evenly spaced from `lo` to `hi`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DcutSweep {
    pub lo: f32,
    pub hi: f32,
    pub n: usize,
}

/// Validation MAP@5 at each `dcut` tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateResponse {
    pub run_id: String,
    pub table: Vec<DcutScore>,
    /// The `dcut` a sweep stored in the run.
    pub calibrated_dcut: Option<f32>,
}

/// MAP@5 at one `dcut`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DcutScore {
    pub dcut: f32,
    pub map5: f64,
    /// Share of queries whose first guess is `new_whale`.
    pub new_whale_first: f64,
}

/// Options of the learning-rate sweep; the training config is sent beside
/// them as `config`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSweep {
    pub start_lr: f64,
    pub end_lr: f64,
    pub n_steps: usize,
}

/// Progress and outcome of the latest learning-rate sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFindStatus {
    pub state: RunState,
    pub message: String,
    /// `(learning rate, smoothed loss)` per step.
    pub points: Vec<(f64, f64)>,
    pub suggested_lr: Option<f64>,
}

/// The reference learning-rate schedule as the training config spells it
/// (`"schedule"` in the body of `POST /api/admin/train`): one epoch with the
/// backbone frozen, then cycles at a quarter, an eighth and a sixteenth of
/// the base rate.
///
/// The server builds this schedule in code and a backend test checks that
/// this text parses to it; the text lives here because the browser shows
/// it as the shape of a schedule and cannot link the backend. A copy in
/// the front end would be checked by nothing.
pub const REFERENCE_SCHEDULE_JSON: &str = r#"{"phases": [
  {"lr_factor": 1.0, "n_cycles": 1, "epochs_per_cycle": 1, "freeze_backbone": true,
   "group_factors": [0.0, 0.0, 1.0], "warmup_share": 0.0, "floor_div": 1.0},
  {"lr_factor": 0.25, "n_cycles": 4, "epochs_per_cycle": 1, "freeze_backbone": false,
   "group_factors": [0.04, 0.2, 1.0], "warmup_share": 0.05, "floor_div": 10.0},
  {"lr_factor": 0.125, "n_cycles": 2, "epochs_per_cycle": 2, "freeze_backbone": false,
   "group_factors": [0.04, 0.2, 1.0], "warmup_share": 0.05, "floor_div": 10.0},
  {"lr_factor": 0.0625, "n_cycles": 1, "epochs_per_cycle": 2, "freeze_backbone": false,
   "group_factors": [0.04, 0.2, 1.0], "warmup_share": 0.05, "floor_div": 10.0}
]}"#;

/// Whether a person has looked at an upload yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    Pending,
    Confirmed,
}

/// An uploaded photo with the candidates it was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: i64,
    /// URL of the stored photo (or crop).
    pub image: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub status: UploadStatus,
    /// The box sent with the photo; absent for a whole photo or a crop.
    #[serde(rename = "box")]
    pub bbox: Option<BoundingBox>,
    /// Whether the upload was a crop made by the browser.
    pub is_crop: bool,
    pub run_id: String,
    pub candidates: Vec<CandidateMatch>,
    /// The individual it was confirmed as.
    pub individual: Option<String>,
}

/// A person's verdict on an upload: a known individual, or a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub individual: Option<String>,
    #[serde(default)]
    pub new_individual: bool,
}

/// What confirming recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmResponse {
    pub upload_id: i64,
    pub individual: String,
    pub sighting_id: i64,
    /// Whether the photo joined the live gallery at once; otherwise it joins
    /// when the next serving run loads.
    pub added_to_gallery: bool,
}

/// An individual in the catalogue list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndividualSummary {
    pub id: String,
    /// Photos from the training set and confirmed uploads.
    pub n_photos: usize,
    pub n_sightings: usize,
    /// Seconds since the Unix epoch of the latest sighting.
    pub last_seen: Option<i64>,
}

/// One individual with its photos and sightings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndividualDetail {
    pub id: String,
    /// URLs, training photos first.
    pub photos: Vec<String>,
    /// Oldest first.
    pub sightings: Vec<Sighting>,
}

/// A confirmed upload of an individual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub id: i64,
    pub individual: String,
    pub upload_id: i64,
    pub image: String,
    /// Seconds since the Unix epoch.
    pub sighted_at: i64,
}

/// The gallery projected to two dimensions, for a map of individuals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapResponse {
    pub run_id: String,
    pub points: Vec<MapPoint>,
}

/// One gallery image on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapPoint {
    pub x: f32,
    pub y: f32,
    pub label: String,
    /// URL of the image.
    pub image: String,
}

/// A readable score from 0 to 1 for a known individual at `distance`:
/// 1 at distance 0, falling linearly to 0.5 at `dcut` (where the ranking
/// rule puts `new_whale`) and to 0 at twice `dcut`. Linear rather than a
/// logistic curve so that a person can read the distance back from it.
pub fn confidence(distance: f32, dcut: f32) -> f32 {
    if dcut.is_nan() || dcut <= 0.0 || !distance.is_finite() {
        return 0.0;
    }
    (1.0 - distance / (2.0 * dcut)).clamp(0.0, 1.0)
}

/// The score of `new_whale`: the complement of the nearest known
/// individual's [`confidence`], or 1 when no known individual is near.
pub fn new_whale_confidence(nearest_known: Option<f32>, dcut: f32) -> f32 {
    nearest_known.map_or(1.0, |distance| 1.0 - confidence(distance, dcut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_one_half_at_dcut_and_clamped() {
        assert_eq!(confidence(0.0, 2.0), 1.0);
        assert_eq!(confidence(2.0, 2.0), 0.5);
        assert_eq!(confidence(3.0, 2.0), 0.25);
        assert_eq!(confidence(9.0, 2.0), 0.0);
        assert_eq!(confidence(f32::NAN, 2.0), 0.0);
        assert_eq!(confidence(1.0, 0.0), 0.0);
    }

    #[test]
    fn new_whale_confidence_mirrors_the_nearest_known_individual() {
        assert_eq!(new_whale_confidence(Some(3.0), 2.0), 0.75);
        assert_eq!(new_whale_confidence(Some(0.0), 2.0), 0.0);
        assert_eq!(new_whale_confidence(None, 2.0), 1.0);
    }

    #[test]
    fn model_status_and_uploads_serialise_as_the_browser_reads_them() {
        let status = ModelStatus::Loading {
            run_id: "run-0001".into(),
            done: 3,
            total: 9,
        };
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(
            json,
            r#"{"state":"loading","run_id":"run-0001","done":3,"total":9}"#
        );

        let confirm: ConfirmRequest = serde_json::from_str(r#"{"new_individual":true}"#).unwrap();
        assert!(confirm.new_individual && confirm.individual.is_none());
        assert!(serde_json::from_str::<ConfirmRequest>(r#"{"individul":"w_1"}"#).is_err());
    }

    #[test]
    fn events_are_tagged_json() {
        let event = TrainEvent::State {
            state: RunState::Training,
            message: "go".into(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"type":"state","state":"training","message":"go"}"#
        );
        assert_eq!(serde_json::from_str::<TrainEvent>(&json).unwrap(), event);
    }
}
