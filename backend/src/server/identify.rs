//! Identification, the public feature: `POST /api/identify` takes a photo
//! (with an optional box) or a crop the browser made, and answers with the
//! candidates; `/api/ws/identify` pushes every answer to subscribers as it
//! is ready, so a batch upload streams its results.
//!
//! Input is checked before anything else happens: the body's size, the
//! form's fields, the image's bytes (the pixel count before decoding), and
//! the box against the decoded image. Nothing is stored unless the photo is
//! identified. The model itself is the worker's ([`super::worker`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use flukeid_shared::api::{CandidateMatch, IdentifyResponse};
use flukeid_shared::crop::{BoundingBox, CropGeometry};
use image::{ImageFormat, RgbImage};
use serde::Deserialize;
use tokio::sync::broadcast;

use super::error::AppError;
use super::images::is_plain_name;
use super::state::{blocking, AppState};
use super::uploads::{keep_upload, UploadFacts};
use super::worker::{Match, WorkerError};
use crate::crop::crop_photo;
use crate::data::NEW_WHALE;
use crate::image_io::{decode_bytes, ImageError};

/// The fields of an identification form.
#[derive(Debug, Default)]
struct Form {
    image: Option<(Field, Bytes)>,
    bbox: Option<String>,
    batch: Option<String>,
}

/// Which image field was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Photo,
    Crop,
}

/// A decoded upload, cropped when a run is serving.
struct Prepared {
    bytes: Bytes,
    format: ImageFormat,
    bbox: Option<BoundingBox>,
    is_crop: bool,
    crop: Option<RgbImage>,
}

/// Query of the identification websocket.
#[derive(Debug, Deserialize)]
pub struct SubscribeQuery {
    /// Only results sent with this batch tag.
    pub batch: Option<String>,
}

/// How the form is described in error messages.
const FORM_HELP: &str = "send a multipart form with a `photo` field (JPEG or PNG) and an \
    optional `box` field ({\"x0\":..,\"y0\":..,\"x1\":..,\"y1\":..} in source pixels), or a \
    `crop` field; an optional `batch` field tags the result";

/// `POST /api/identify`.
///
/// # Errors
///
/// 4xx for a bad form, image or box; 503 while no model serves.
pub async fn identify(
    State(state): State<Arc<AppState>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<IdentifyResponse>, AppError> {
    let multipart =
        multipart.map_err(|e| AppError::BadRequest(format!("{}; {FORM_HELP}", e.body_text())))?;
    let limit = state.config.max_upload_bytes;
    let form = read_form(multipart, limit).await?;
    let batch = form.batch.clone();

    let serving = state.worker.view().serving;
    let geometry = serving.as_ref().map(|s| s.geometry);
    let max_pixels = state.config.max_pixels;
    let prepared = blocking(move || prepare(form, max_pixels, geometry)).await?;
    let Some(crop) = prepared.crop.clone() else {
        // Nothing was serving when the photo was read.
        let changed = AppError::from(WorkerError::GeometryChanged);
        return Err(state.worker.require_serving().err().unwrap_or(changed));
    };

    let found = state.worker.identify(crop).await?;
    let upload_id = store(&state, &prepared, &found.run_id, &found.candidates).await?;
    let response = answer(upload_id, found, batch);
    let _ = state.identified.send(Arc::new(response.clone()));
    tracing::debug!(upload_id, response.probably_new, "identified");
    Ok(Json(response))
}

fn answer(upload_id: i64, found: Match, batch: Option<String>) -> IdentifyResponse {
    let probably_new = found
        .candidates
        .first()
        .is_some_and(|c| c.label == NEW_WHALE);
    IdentifyResponse {
        upload_id,
        run_id: found.run_id,
        batch,
        candidates: found.candidates,
        probably_new,
    }
}

/// `GET /api/ws/identify[?batch=TAG]`: every identification result (of one
/// batch, when asked) as JSON text messages.
pub async fn identify_socket(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SubscribeQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let results = state.identified.subscribe();
    upgrade.on_upgrade(move |socket| push_results(socket, results, query.batch, state))
}

async fn push_results(
    mut socket: WebSocket,
    mut results: broadcast::Receiver<Arc<IdentifyResponse>>,
    batch: Option<String>,
    state: Arc<AppState>,
) {
    loop {
        tokio::select! {
            result = results.recv() => match result {
                Ok(result) if batch.is_none() || result.batch == batch => {
                    let json = serde_json::to_string(&*result).expect("results serialise");
                    if socket.send(Message::Text(json.into())).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("an identification subscriber missed {n} results");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => if !still_open(&incoming) { break },
            () = state.shutdown_requested() => break,
        }
    }
}

/// Whether a websocket read leaves the socket open: a message other than
/// a close frame.
pub fn still_open(incoming: &Option<Result<Message, axum::Error>>) -> bool {
    matches!(incoming, Some(Ok(message)) if !matches!(message, Message::Close(_)))
}

async fn read_form(mut multipart: Multipart, limit: usize) -> Result<Form, AppError> {
    let mut form = Form::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| form_error(e, limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "photo" | "crop" => {
                let kind = if name == "crop" {
                    Field::Crop
                } else {
                    Field::Photo
                };
                let bytes = field.bytes().await.map_err(|e| form_error(e, limit))?;
                set_once(&mut form.image, (kind, bytes), "photo or crop")?;
            }
            "box" => {
                let text = field.text().await.map_err(|e| form_error(e, limit))?;
                set_once(&mut form.bbox, text, "box")?;
            }
            "batch" => {
                let text = field.text().await.map_err(|e| form_error(e, limit))?;
                set_once(&mut form.batch, check_batch(text)?, "batch")?;
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unexpected field {other:?}; {FORM_HELP}"
                )))
            }
        }
    }
    if form.image.is_none() {
        return Err(AppError::BadRequest(format!(
            "no photo in the form; {FORM_HELP}"
        )));
    }
    Ok(form)
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &str) -> Result<(), AppError> {
    if slot.replace(value).is_some() {
        return Err(AppError::BadRequest(format!("send one {what} per request")));
    }
    Ok(())
}

fn check_batch(tag: String) -> Result<String, AppError> {
    if tag.len() > 64 || !is_plain_name(&tag) {
        return Err(AppError::BadRequest(
            "batch must be at most 64 letters, digits, '.', '_' or '-'".into(),
        ));
    }
    Ok(tag)
}

fn form_error(error: MultipartError, limit: usize) -> AppError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return AppError::PayloadTooLarge(format!(
            "the upload is larger than the limit of {limit} bytes; send a smaller photo or a crop"
        ));
    }
    AppError::BadRequest(format!(
        "the form could not be read ({}); {FORM_HELP}",
        error.body_text()
    ))
}

/// Decodes the image, checks the box against it, and crops it with the
/// serving geometry when there is one.
fn prepare(
    form: Form,
    max_pixels: u64,
    geometry: Option<CropGeometry>,
) -> Result<Prepared, AppError> {
    let (field, bytes) = form.image.expect("read_form checked the image");
    let is_crop = field == Field::Crop;
    let name = if is_crop {
        "the uploaded crop"
    } else {
        "the uploaded photo"
    };
    let image = decode_bytes(&bytes, name, max_pixels).map_err(image_error)?;
    let format = image::guess_format(&bytes).map_err(AppError::internal)?;
    let bbox = match (form.bbox, is_crop) {
        (Some(_), true) => {
            return Err(AppError::BadRequest(
                "send a box only with a photo; a crop is used whole".into(),
            ))
        }
        (Some(text), false) => Some(parse_box(&text, &image)?),
        (None, _) => None,
    };
    let crop = geometry
        .map(|g| cut(&image, bbox, is_crop, &g))
        .transpose()?;
    Ok(Prepared {
        bytes,
        format,
        bbox,
        is_crop,
        crop,
    })
}

fn parse_box(text: &str, image: &RgbImage) -> Result<BoundingBox, AppError> {
    let bbox: BoundingBox = serde_json::from_str(text).map_err(|e| {
        AppError::Unprocessable(format!(
            "box must be JSON like {{\"x0\":10,\"y0\":20,\"x1\":300,\"y1\":120}} \
             in source pixels ({e})"
        ))
    })?;
    let (width, height) = image.dimensions();
    bbox.validate(width, height)
        .map_err(|e| AppError::Unprocessable(e.to_string()))?;
    Ok(bbox)
}

/// The crop the network sees: a browser's crop as it is (it must have the
/// serving run's size), or the photo cut with the shared geometry.
fn cut(
    image: &RgbImage,
    bbox: Option<BoundingBox>,
    is_crop: bool,
    geometry: &CropGeometry,
) -> Result<RgbImage, AppError> {
    if is_crop {
        let (w, h) = image.dimensions();
        if (w, h) != (geometry.width, geometry.height) {
            return Err(AppError::Unprocessable(format!(
                "the crop is {w}x{h} pixels; the serving run expects {}x{} crops",
                geometry.width, geometry.height
            )));
        }
        return Ok(image.clone());
    }
    let crop =
        crop_photo(image, bbox, geometry).map_err(|e| AppError::Unprocessable(e.to_string()))?;
    Ok(crop.image)
}

fn image_error(error: ImageError) -> AppError {
    let message = error.to_string();
    match error {
        ImageError::NotAnImage { .. } => AppError::UnsupportedMediaType(message),
        ImageError::TooLarge { .. } => AppError::PayloadTooLarge(message),
        ImageError::Empty { .. } | ImageError::Corrupt { .. } => AppError::Unprocessable(message),
        ImageError::Read { .. } => AppError::internal(error),
    }
}

async fn store(
    state: &Arc<AppState>,
    prepared: &Prepared,
    run_id: &str,
    candidates: &[CandidateMatch],
) -> Result<i64, AppError> {
    let facts = UploadFacts {
        bbox: prepared.bbox,
        is_crop: prepared.is_crop,
        run_id: run_id.to_string(),
        candidates: candidates.to_vec(),
    };
    let (dir, catalog) = (state.paths.uploads(), state.catalog.clone());
    let (bytes, format) = (prepared.bytes.clone(), prepared.format);
    blocking(move || {
        let (id, _) =
            keep_upload(&dir, &catalog, &bytes, format, facts).map_err(AppError::internal)?;
        Ok(id)
    })
    .await
}
