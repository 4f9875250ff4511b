//! The admin's review of uploads and the catalogue it builds: the queue of
//! uploads with their candidates, confirming one as a known or a new
//! individual (a sighting, and at once a new gallery entry, no retraining),
//! and the individuals with their photos and sightings.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use flukeid_shared::api::{
    ConfirmRequest, ConfirmResponse, IndividualDetail, IndividualSummary, Sighting, UploadRecord,
    UploadStatus,
};
use serde::Deserialize;

use super::catalog::{ConfirmError, SightingRow, UploadRow, Verdict};
use super::error::{json_body, AppError};
use super::images::{ImageKind, ImageRef};
use super::state::{blocking, AppState};
use super::worker::NewEntry;
use crate::data::NEW_WHALE;
use crate::image_io::{decode_file, DEFAULT_MAX_PIXELS};

/// Query of the upload list.
#[derive(Debug, Deserialize)]
pub struct UploadsQuery {
    /// `pending` (the default), `confirmed` or `all`.
    pub status: Option<String>,
}

/// `GET /api/admin/uploads?status=pending`: the review queue, oldest first.
///
/// # Errors
///
/// 400 for an unknown status.
pub async fn list_uploads(
    State(state): State<Arc<AppState>>,
    Query(query): Query<UploadsQuery>,
) -> Result<Json<Vec<UploadRecord>>, AppError> {
    let status = match query.status.as_deref().unwrap_or("pending") {
        "pending" => Some(UploadStatus::Pending),
        "confirmed" => Some(UploadStatus::Confirmed),
        "all" => None,
        other => {
            return Err(AppError::BadRequest(format!(
                "unknown status {other:?}; use pending, confirmed or all"
            )))
        }
    };
    let catalog = state.catalog.clone();
    let rows = blocking(move || Ok(catalog.uploads(status)?)).await?;
    Ok(Json(rows.into_iter().map(upload_record).collect()))
}

/// `POST /api/admin/uploads/{id}/confirm` with `{"individual": "w_..."}` or
/// `{"new_individual": true}`: records the sighting, then adds the photo to
/// the live gallery.
///
/// # Errors
///
/// 404 for an unknown upload or individual, 409 for an upload already
/// confirmed, 400/422 for a bad body.
pub async fn confirm_upload(
    State(state): State<Arc<AppState>>,
    UrlPath(upload_id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<ConfirmResponse>, AppError> {
    let upload_id = parse_upload_id(&upload_id)?;
    let request: ConfirmRequest = json_body(&body)?;
    let verdict = verdict(request)?;

    let catalog = state.catalog.clone();
    let (confirmed, upload) = blocking(move || {
        let confirmed = catalog
            .confirm(upload_id, &verdict)
            .map_err(confirm_error)?;
        let upload = catalog
            .upload(upload_id)?
            .expect("a confirmed upload exists");
        Ok((confirmed, upload))
    })
    .await?;
    tracing::info!(
        upload_id,
        individual = confirmed.individual,
        "upload confirmed"
    );

    let added_to_gallery = add_to_gallery(&state, &confirmed.individual, upload).await;
    Ok(Json(ConfirmResponse {
        upload_id,
        individual: confirmed.individual,
        sighting_id: confirmed.sighting_id,
        added_to_gallery,
    }))
}

/// `GET /api/admin/individuals`.
///
/// # Errors
///
/// 500 when the catalogue cannot be read.
pub async fn list_individuals(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Vec<IndividualSummary>>, AppError> {
    let catalog = state.catalog.clone();
    Ok(Json(blocking(move || Ok(catalog.individuals()?)).await?))
}

/// `GET /api/admin/individuals/{id}`: photos and sightings.
///
/// # Errors
///
/// 404 for an unknown individual.
pub async fn individual_detail(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<IndividualDetail>, AppError> {
    let catalog = state.catalog.clone();
    let key = id.clone();
    let found = blocking(move || {
        let Some(images) = catalog.individual_images(&key)? else {
            return Ok(None);
        };
        Ok(Some((images, catalog.sightings(Some(&key))?)))
    })
    .await?;
    let (images, sightings) =
        found.ok_or_else(|| AppError::NotFound(format!("there is no individual {id}")))?;
    let sightings: Vec<Sighting> = sightings.into_iter().map(sighting).collect();
    let photos = images
        .iter()
        .map(ImageRef::url)
        .chain(sightings.iter().map(|s| s.image.clone()))
        .collect();
    Ok(Json(IndividualDetail {
        id,
        photos,
        sightings,
    }))
}

/// `GET /api/admin/sightings.csv`: every sighting, oldest first, with the
/// time in UTC.
///
/// # Errors
///
/// 500 when the catalogue cannot be read.
pub async fn sightings_csv(State(state): State<Arc<AppState>>) -> Result<Response, AppError> {
    let catalog = state.catalog.clone();
    let rows = blocking(move || Ok(catalog.sightings(None)?)).await?;
    let mut csv = String::from("sighting_id,individual,upload_id,image,sighted_at\n");
    for row in rows {
        let image = ImageRef::new(ImageKind::Uploads, row.file).url();
        let (id, individual, upload_id, when) =
            (row.id, row.individual, row.upload_id, row.sighted_utc);
        csv.push_str(&format!("{id},{individual},{upload_id},{image},{when}\n"));
    }
    let headers = [
        (header::CONTENT_TYPE, "text/csv"),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"sightings.csv\"",
        ),
    ];
    Ok((headers, csv).into_response())
}

fn parse_upload_id(text: &str) -> Result<i64, AppError> {
    text.parse()
        .map_err(|_| AppError::NotFound(format!("there is no upload {text:?}")))
}

fn verdict(request: ConfirmRequest) -> Result<Verdict, AppError> {
    match (request.individual, request.new_individual) {
        (Some(id), false) if id == NEW_WHALE => Err(AppError::Unprocessable(
            "new_whale is not an individual; send {\"new_individual\": true} to add one".into(),
        )),
        (Some(id), false) => Ok(Verdict::Known(id)),
        (None, true) => Ok(Verdict::NewIndividual),
        _ => Err(AppError::Unprocessable(
            "send {\"individual\": \"w_...\"} or {\"new_individual\": true}, not both".into(),
        )),
    }
}

fn confirm_error(error: ConfirmError) -> AppError {
    match error {
        ConfirmError::UnknownUpload { .. } | ConfirmError::UnknownIndividual { .. } => {
            AppError::NotFound(error.to_string())
        }
        ConfirmError::AlreadyConfirmed { .. } => AppError::Conflict(error.to_string()),
        ConfirmError::Catalog(source) => AppError::from(source),
    }
}

/// Sends the confirmed photo to the worker; `false` when it could not be
/// added now (it joins the gallery when the next serving run loads).
async fn add_to_gallery(state: &Arc<AppState>, individual: &str, upload: UploadRow) -> bool {
    let path = state.paths.uploads().join(&upload.file);
    let photo =
        match blocking(move || decode_file(&path, DEFAULT_MAX_PIXELS).map_err(AppError::internal))
            .await
        {
            Ok(photo) => photo,
            Err(error) => {
                tracing::warn!("cannot read upload {} for the gallery: {error}", upload.id);
                return false;
            }
        };
    let image = ImageRef::new(ImageKind::Uploads, upload.file);
    let entry = NewEntry {
        label: individual.to_string(),
        image,
        photo,
        bbox: upload.bbox,
    };
    state.worker.add(entry).await
}

fn upload_record(row: UploadRow) -> UploadRecord {
    UploadRecord {
        id: row.id,
        image: ImageRef::new(ImageKind::Uploads, row.file).url(),
        created_at: row.created_at,
        status: row.status,
        bbox: row.bbox,
        is_crop: row.is_crop,
        run_id: row.run_id,
        candidates: row.candidates,
        individual: row.individual,
    }
}

fn sighting(row: SightingRow) -> Sighting {
    Sighting {
        id: row.id,
        individual: row.individual,
        upload_id: row.upload_id,
        image: ImageRef::new(ImageKind::Uploads, row.file).url(),
        sighted_at: row.sighted_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_is_one_individual_or_a_new_one() {
        let known = ConfirmRequest {
            individual: Some("w_1".into()),
            new_individual: false,
        };
        assert_eq!(verdict(known).unwrap(), Verdict::Known("w_1".into()));
        let new = ConfirmRequest {
            individual: None,
            new_individual: true,
        };
        assert_eq!(verdict(new).unwrap(), Verdict::NewIndividual);
        assert!(verdict(ConfirmRequest {
            individual: Some("w_1".into()),
            new_individual: true
        })
        .is_err());
        assert!(verdict(ConfirmRequest::default()).is_err());
        assert!(verdict(ConfirmRequest {
            individual: Some(NEW_WHALE.into()),
            new_individual: false
        })
        .is_err());
    }
}
