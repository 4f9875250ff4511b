//! Training runs from the admin API: the list, making a run the serving
//! run, validating it (and calibrating `dcut`), and its Kaggle submission.
//!
//! Run folders live in `runs/` under ids `run-0001`, `run-0002`, ...; what
//! a run is made of on disk is [`crate::run_dir`]'s business. Training
//! itself is in [`super::training`].

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use flukeid_shared::api::{
    DcutScore, JobStarted, RunSummary, TrainEvent, ValidateRequest, ValidateResponse,
};

use super::catalog::{Catalog, RunRow};
use super::config::DataPaths;
use super::error::{json_body_or_default, AppError};
use super::images::is_plain_name;
use super::state::{blocking, AppState};
use super::worker::LoadRequest;
use crate::model::{Backbone, CONFIG_FILE, WEIGHTS_FILE};
use crate::run_dir::{read_json, RunDir};
use crate::train::{TrainConfig, TrainState};
use crate::workflow::{self, Calibration, RunModel, WorkflowError};

/// `GET /api/admin/runs`: every run, oldest first.
///
/// # Errors
///
/// 500 when the catalogue cannot be read.
pub async fn list_runs(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Vec<RunSummary>>, AppError> {
    let serving = state.worker.view().serving.map(|s| s.run_id);
    let (catalog, paths) = (state.catalog.clone(), state.paths.clone());
    let runs = blocking(move || {
        let rows = catalog.runs()?;
        Ok(rows
            .into_iter()
            .map(|row| summarise(&paths, row, serving.as_deref()))
            .collect())
    })
    .await?;
    Ok(Json(runs))
}

/// `POST /api/admin/runs/{id}/serve`: loads the run's model and gallery in
/// the background and swaps them in when ready.
///
/// # Errors
///
/// 404 for an unknown run, 409 while it trains or when it has no weights.
pub async fn serve_run(
    State(state): State<Arc<AppState>>,
    UrlPath(run_id): UrlPath<String>,
) -> Result<(StatusCode, Json<JobStarted>), AppError> {
    find_run(&state, &run_id).await?;
    let run_dir = check_servable(&state, &run_id)?;
    state.worker.load(LoadRequest {
        run_id: run_id.clone(),
        run_dir,
        data: state.data.clone(),
    });
    let message = format!("loading {run_id}; GET /api/status shows when it serves");
    Ok((StatusCode::ACCEPTED, Json(JobStarted { run_id, message })))
}

/// `POST /api/admin/runs/{id}/validate`: MAP@5 on the run's validation
/// split at one `dcut`, or a sweep that stores the best `dcut` (and serves
/// with it at once when the run is serving).
///
/// # Errors
///
/// 404 for an unknown run, 409 without weights or validation images,
/// 400/422 for a bad body.
pub async fn validate_run(
    State(state): State<Arc<AppState>>,
    UrlPath(run_id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<ValidateResponse>, AppError> {
    let request: ValidateRequest = json_body_or_default(&body)?;
    check_validate_request(&request)?;
    find_run(&state, &run_id).await?;
    let run_dir = check_servable(&state, &run_id)?;

    let (data, device) = (state.data.clone(), state.config.device);
    let sweep = request.sweep.map(|s| (s.lo, s.hi, s.n));
    let (table, calibrated) = blocking(move || {
        let model = RunModel::open(&run_dir, device).map_err(workflow_error)?;
        let table = workflow::validate(&model, &data, request.dcut, sweep, &mut |_, _| {})
            .map_err(workflow_error)?;
        Ok((table, sweep.and_then(|_| model.calibrated_dcut())))
    })
    .await?;
    if let Some(dcut) = calibrated {
        state.worker.set_dcut(&run_id, dcut);
    }
    let table = table
        .into_iter()
        .map(|e| DcutScore {
            dcut: e.dcut,
            map5: e.map5,
            new_whale_first: e.new_whale_first,
        })
        .collect();
    Ok(Json(ValidateResponse {
        run_id,
        table,
        calibrated_dcut: calibrated,
    }))
}

/// `GET /api/admin/runs/{id}/submission.csv`: the run's predictions for the
/// test images, written when missing or older than the weights or the
/// calibration.
///
/// # Errors
///
/// 404 for an unknown run, 409 without weights or test images.
pub async fn submission(
    State(state): State<Arc<AppState>>,
    UrlPath(run_id): UrlPath<String>,
) -> Result<Response, AppError> {
    find_run(&state, &run_id).await?;
    let run_dir = check_servable(&state, &run_id)?;
    let (data, device) = (state.data.clone(), state.config.device);
    let csv = blocking(move || {
        let out = run_dir.join("submission.csv");
        if !is_fresh(
            &out,
            &[
                &run_dir.join(WEIGHTS_FILE),
                &run_dir.join("calibration.json"),
            ],
        ) {
            let model = RunModel::open(&run_dir, device).map_err(workflow_error)?;
            let dcut = model.calibrated_dcut().unwrap_or(model.config.dcut);
            workflow::submit(&model, &data, dcut, &out, &mut |_, _| {}).map_err(workflow_error)?;
        }
        std::fs::read(&out).map_err(AppError::internal)
    })
    .await?;
    let disposition = format!("attachment; filename=\"{run_id}-submission.csv\"");
    let headers = [
        (header::CONTENT_TYPE, "text/csv".to_string()),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, csv).into_response())
}

/// The run's row.
///
/// # Errors
///
/// 400 for an id that is not a plain name, 404 for an unknown run.
pub async fn find_run(state: &Arc<AppState>, run_id: &str) -> Result<RunRow, AppError> {
    check_run_id(run_id)?;
    let catalog = state.catalog.clone();
    let id = run_id.to_string();
    blocking(move || catalog.run(&id).map_err(AppError::from))
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "there is no run {run_id}; GET /api/admin/runs lists them"
            ))
        })
}

/// Checks that a run id can name a folder.
///
/// # Errors
///
/// 400 otherwise.
pub fn check_run_id(run_id: &str) -> Result<(), AppError> {
    if !is_plain_name(run_id) {
        return Err(AppError::BadRequest(format!(
            "{run_id:?} is not a run id like run-0001"
        )));
    }
    Ok(())
}

/// The next free run id, after every id in the catalogue and on disk.
///
/// # Errors
///
/// 500 when the catalogue cannot be read.
pub fn next_run_id(paths: &DataPaths, catalog: &Catalog) -> Result<String, AppError> {
    let on_disk = runs_on_disk(&paths.runs()).into_iter().map(|(id, _)| id);
    let known = catalog.runs()?.into_iter().map(|row| row.id);
    let highest = on_disk
        .chain(known)
        .filter_map(|id| id.strip_prefix("run-").and_then(|n| n.parse::<u32>().ok()))
        .max()
        .unwrap_or(0);
    Ok(format!("run-{:04}", highest + 1))
}

/// Run folders in `runs/` (those with a config), and whether each finished.
pub fn runs_on_disk(runs_dir: &Path) -> Vec<(String, bool)> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut runs: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("config.json").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_plain_name(name))
        .map(|name| {
            let state: Option<TrainState> =
                read_json(&RunDir::new(&runs_dir.join(&name)).state()).ok();
            let finished = state.is_some_and(|s| s.finished);
            (name, finished)
        })
        .collect();
    runs.sort();
    runs
}

/// Every event in a run's `history.jsonl`; unreadable lines are skipped.
pub fn read_history(run_dir: &Path) -> Vec<TrainEvent> {
    let Ok(text) = std::fs::read_to_string(RunDir::new(run_dir).history()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A backbone's name as the JSON API spells it.
pub fn backbone_name(backbone: Backbone) -> String {
    serde_json::to_value(backbone)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn summarise(paths: &DataPaths, row: RunRow, serving: Option<&str>) -> RunSummary {
    let run = RunDir::new(&paths.run(&row.id));
    let config: Option<TrainConfig> = read_json(&run.config()).ok();
    let state: Option<TrainState> = read_json(&run.state()).ok();
    let calibration: Option<Calibration> = read_json(&run.calibration()).ok();
    let val_map5 = read_history(&run.root)
        .into_iter()
        .rev()
        .find_map(|event| match event {
            TrainEvent::Epoch(epoch) => Some(epoch.val_map5),
            _ => None,
        });
    RunSummary {
        serving: serving == Some(row.id.as_str()),
        id: row.id,
        created_at: row.created_at,
        state: row.state,
        message: row.message,
        backbone: config.as_ref().map(|c| backbone_name(c.model.backbone)),
        geometry: config.as_ref().map(TrainConfig::geometry),
        epochs_done: state.map_or(0, |s| s.epoch),
        n_epochs: config.map(|c| c.schedule.n_epochs()),
        val_map5: val_map5.flatten(),
        calibrated_dcut: calibration.map(|c| c.dcut),
        has_model: has_model(&run.root),
    }
}

fn has_model(run_dir: &Path) -> bool {
    run_dir.join(CONFIG_FILE).is_file() && run_dir.join(WEIGHTS_FILE).is_file()
}

/// The run's folder, when it has weights and is not training.
fn check_servable(state: &AppState, run_id: &str) -> Result<std::path::PathBuf, AppError> {
    if state.jobs.is_training(run_id) {
        return Err(AppError::Conflict(format!(
            "{run_id} is still training; stop it or wait for it to end"
        )));
    }
    let run_dir = state.paths.run(run_id);
    if !has_model(&run_dir) {
        return Err(AppError::Conflict(format!(
            "{run_id} has no saved model yet (weights are saved at the end of each epoch)"
        )));
    }
    Ok(run_dir)
}

fn check_validate_request(request: &ValidateRequest) -> Result<(), AppError> {
    if let Some(dcut) = request.dcut.filter(|d| !(d.is_finite() && *d > 0.0)) {
        return Err(AppError::Unprocessable(format!(
            "dcut must be a positive number, not {dcut}"
        )));
    }
    if let Some(sweep) = request.sweep {
        let ordered =
            sweep.lo.is_finite() && sweep.hi.is_finite() && 0.0 < sweep.lo && sweep.lo <= sweep.hi;
        if !ordered || sweep.n == 0 || sweep.n > 1000 {
            return Err(AppError::Unprocessable(
                "the sweep needs 0 < lo <= hi and between 1 and 1000 values (n)".into(),
            ));
        }
    }
    Ok(())
}

fn workflow_error(error: WorkflowError) -> AppError {
    match error {
        WorkflowError::Empty { .. } | WorkflowError::SampleMismatch { .. } => {
            AppError::Conflict(error.to_string())
        }
        other => AppError::internal(other),
    }
}

/// Whether `out` exists and is newer than each of `inputs` that exists.
fn is_fresh(out: &Path, inputs: &[&Path]) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(written) = modified(out) else {
        return false;
    };
    inputs
        .iter()
        .filter_map(|path| modified(path))
        .all(|input: SystemTime| input <= written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_count_up_past_disk_and_catalogue() {
        use flukeid_shared::api::RunState;
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths::new(dir.path());
        let catalog = Catalog::in_memory().unwrap();
        assert_eq!(next_run_id(&paths, &catalog).unwrap(), "run-0001");
        catalog
            .insert_run("run-0003", RunState::Finished, "")
            .unwrap();
        std::fs::create_dir_all(paths.run("run-0007")).unwrap();
        std::fs::write(paths.run("run-0007").join("config.json"), "{}").unwrap();
        assert_eq!(next_run_id(&paths, &catalog).unwrap(), "run-0008");
        assert_eq!(
            runs_on_disk(&paths.runs()),
            vec![("run-0007".to_string(), false)]
        );
    }

    #[test]
    fn sweeps_must_be_ordered_and_bounded() {
        let sweep = |lo, hi, n| ValidateRequest {
            dcut: None,
            sweep: Some(flukeid_shared::api::DcutSweep { lo, hi, n }),
        };
        assert!(check_validate_request(&sweep(0.5, 4.0, 20)).is_ok());
        assert!(check_validate_request(&sweep(4.0, 0.5, 20)).is_err());
        assert!(check_validate_request(&sweep(0.5, 4.0, 0)).is_err());
        assert!(check_validate_request(&ValidateRequest {
            dcut: Some(-1.0),
            sweep: None
        })
        .is_err());
    }

    #[test]
    fn backbones_are_named_as_in_configs() {
        assert_eq!(
            backbone_name(Backbone::EfficientnetLite0),
            "efficientnet_lite0"
        );
    }
}
