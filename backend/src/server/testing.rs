//! Fixtures for the server's unit tests: a tiny data set in the Kaggle
//! layout, a run with a randomly initialised model, images (good, broken
//! and hostile) and multipart bodies built by hand.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, Response, StatusCode};
use axum::Router;
use flukeid_shared::api::ModelStatus;
use image::{ImageFormat, RgbImage};
use tch::nn::VarStore;
use tch::Device;
use tower::ServiceExt;

use super::catalog::Catalog;
use super::config::{DataPaths, ServerConfig};
use super::{build_app, AppHandle};
use crate::model::{save_model, Backbone, EmbeddingNet, ModelConfig};
use crate::run_dir::write_json_atomic;
use crate::train::TrainConfig;

pub const TOKEN: &str = "test-token";
pub const BOUNDARY: &str = "flukeid-test-boundary";

/// A JPEG of `width x height` with a gradient.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(
        &RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90])),
        ImageFormat::Jpeg,
    )
}

pub fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .expect("encoding to memory works");
    bytes
}

/// A PNG of one pixel whose header claims `width x height`: decoding it
/// would allocate `3 * width * height` bytes.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = encode(&RgbImage::new(1, 1), ImageFormat::Png);
    // The IHDR chunk follows the 8-byte signature: length (4), "IHDR" (4),
    // width (4), height (4), five more bytes, then the CRC of type and data.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// CRC-32 as PNG defines it (reflected polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Writes a data set of four photos of two individuals into `dir`.
pub fn write_data_set(dir: &Path) {
    std::fs::create_dir_all(dir.join("train")).unwrap();
    let mut csv = String::from("Image,Id\n");
    for (idx, id) in ["w_aaaaaaa", "w_aaaaaaa", "w_bbbbbbb", "new_whale"]
        .iter()
        .enumerate()
    {
        let name = format!("{idx}.jpg");
        std::fs::write(
            dir.join("train").join(&name),
            jpeg(120 + 10 * idx as u32, 60),
        )
        .unwrap();
        csv.push_str(&format!("{name},{id}\n"));
    }
    std::fs::write(dir.join("train.csv"), csv).unwrap();
}

/// A run with a randomly initialised EfficientNet-Lite0 on 64x32 crops,
/// recorded as the serving run.
pub fn write_serving_run(dir: &Path, run_id: &str) {
    let paths = DataPaths::new(dir);
    let run_dir = paths.run(run_id);
    std::fs::create_dir_all(&run_dir).unwrap();
    let model = ModelConfig {
        backbone: Backbone::EfficientnetLite0,
        crop_width: 64,
        crop_height: 32,
        embedding_size: 16,
        hidden_size: 32,
        ..ModelConfig::default()
    };
    let config = TrainConfig {
        model: model.clone(),
        pretrained: false,
        ..TrainConfig::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let _net = EmbeddingNet::new(&vs.root(), &model);
    save_model(&vs, &model, &run_dir).unwrap();
    write_json_atomic(&run_dir.join("config.json"), &config).unwrap();
    let catalog = Catalog::open(&paths.catalog()).unwrap();
    catalog
        .insert_run(run_id, flukeid_shared::api::RunState::Finished, "")
        .unwrap();
    catalog.set_serving_run(run_id).unwrap();
}

/// The app over `dir` with the test token and an upload limit.
pub async fn app(dir: &Path, max_upload_bytes: usize) -> (Router, AppHandle) {
    let config = ServerConfig {
        admin_token: Some(TOKEN.into()),
        max_upload_bytes,
        ..ServerConfig::new(dir)
    };
    build_app(config).await.unwrap()
}

/// Waits until the worker serves, or panics after a minute.
pub async fn until_ready(app: &Router) {
    for _ in 0..600 {
        let (status, body) = send(app, get("/api/status")).await;
        assert_eq!(status, StatusCode::OK);
        let status: flukeid_shared::api::StatusResponse = serde_json::from_slice(&body).unwrap();
        match status.model {
            ModelStatus::Ready { .. } => return,
            ModelStatus::Failed { message, .. } => panic!("loading failed: {message}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the serving run did not load within a minute");
}

/// A multipart body of `(name, bytes)` fields.
pub fn form(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in fields {
        let disposition = format!("form-data; name=\"{name}\"; filename=\"{name}.bin\"");
        let head = format!("--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n");
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn identify_request(fields: &[(&str, &[u8])]) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/identify")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(form(fields)))
        .unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::builder().uri(uri).body(Body::empty()).unwrap()
}

/// An admin request with `token` (none when `None`) and a JSON body.
pub fn admin(method: Method, uri: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Sends a request through the router and returns status and body.
pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response: Response<Body> = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body.to_vec())
}

/// The `error` message of a JSON error body.
pub fn error_message(body: &[u8]) -> String {
    let error: flukeid_shared::api::ApiError = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not a JSON error: {}", String::from_utf8_lossy(body)));
    error.error
}
