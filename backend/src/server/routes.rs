//! The URL map and the layers around it: the JSON API under `/api/` (public
//! routes, websockets, and admin routes behind the token), the built front
//! end at `/`, and body limits, timeouts, compression and tracing.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, map_response_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::admin::require_admin;
use super::error::AppError;
use super::identify::{identify, identify_socket};
use super::images::get_image;
use super::map::get_map;
use super::review::{
    confirm_upload, individual_detail, list_individuals, list_uploads, sightings_csv,
};
use super::runs::{list_runs, serve_run, submission, validate_run};
use super::state::AppState;
use super::status::status;
use super::training::{
    lr_find_status, resume_training, start_lr_find, start_training, stop_training, train_socket,
};

/// Longest a public request may take; an identification waits behind at
/// most a few batches.
const PUBLIC_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest an admin request may take: validating or writing a submission
/// embeds the whole data set.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3600);

/// Headroom of the outer body limit over the configured one. Routes that
/// read a body check the configured limit themselves and answer with a
/// precise error; the outer layer refuses at once a body whose declared
/// length is too large, and is the backstop for everything else.
const BODY_LIMIT_SLACK: usize = 64 * 1024;

/// The whole application.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_upload_bytes;
    let api = Router::new()
        .merge(public_routes(limit))
        .route("/ws/identify", get(identify_socket))
        .route("/ws/train", get(train_socket))
        .nest("/admin", admin_routes(state.clone()))
        .fallback(api_not_found);
    let mut app = Router::new().nest("/api", api);
    if let Some(dir) = &state.config.static_dir {
        let index = ServeFile::new(dir.join("index.html"));
        app = app.fallback_service(ServeDir::new(dir).fallback(index));
    }
    app.layer(RequestBodyLimitLayer::new(
        limit.saturating_add(BODY_LIMIT_SLACK),
    ))
    .layer(map_response_with_state(limit, too_large_as_json))
    .layer(CompressionLayer::new())
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(DefaultOnResponse::new().level(Level::DEBUG))
            // Failures are logged by `AppError` itself, and a 503 while
            // nothing serves is not one.
            .on_failure(()),
    )
    .with_state(state)
}

fn public_routes(limit: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/identify",
            post(identify).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/images/{kind}/{name}", get(get_image))
        .route("/map", get(get_map))
        .route("/status", get(status))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            PUBLIC_TIMEOUT,
        ))
}

fn admin_routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/train", post(start_training))
        .route("/train/stop", post(stop_training))
        .route("/lr-find", post(start_lr_find).get(lr_find_status))
        .route("/runs", get(list_runs))
        .route("/runs/{id}/serve", post(serve_run))
        .route("/runs/{id}/resume", post(resume_training))
        .route("/runs/{id}/validate", post(validate_run))
        .route("/runs/{id}/submission.csv", get(submission))
        .route("/uploads", get(list_uploads))
        .route("/uploads/{id}/confirm", post(confirm_upload))
        .route("/individuals", get(list_individuals))
        .route("/individuals/{id}", get(individual_detail))
        .route("/sightings.csv", get(sightings_csv))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            ADMIN_TIMEOUT,
        ))
        .route_layer(from_fn_with_state(state, require_admin))
}

async fn api_not_found() -> AppError {
    AppError::NotFound(
        "no such API route; the routes are listed in the server's documentation".into(),
    )
}

/// The body limit layer answers 413 in plain text; say it in JSON like
/// every other error.
async fn too_large_as_json(State(limit): State<usize>, response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    let message = format!("the request body is larger than the limit of {limit} bytes");
    AppError::PayloadTooLarge(message).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;
    use crate::server::testing::{
        admin, app, error_message, get, identify_request, jpeg, png_bomb, send, until_ready,
        write_data_set, write_serving_run, TOKEN,
    };

    const LIMIT: usize = 256 * 1024;

    async fn no_model_app() -> (tempfile::TempDir, Router) {
        let dir = tempfile::tempdir().unwrap();
        write_data_set(dir.path());
        let (app, _) = app(dir.path(), LIMIT).await;
        (dir, app)
    }

    /// Sends an identification and returns its status and error message.
    async fn refused(app: &Router, fields: &[(&str, &[u8])]) -> (StatusCode, String) {
        let (status, body) = send(app, identify_request(fields)).await;
        (status, error_message(&body))
    }

    #[tokio::test]
    async fn bad_photos_get_specific_errors_and_nothing_is_stored() {
        let (dir, app) = no_model_app().await;
        let photo = jpeg(200, 100);
        let photo = photo.as_slice();
        let half = &photo[..photo.len() / 2];
        let outside: &[u8] = br#"{"x0":10,"y0":10,"x1":400,"y1":50}"#;
        let tiny: &[u8] = br#"{"x0":0,"y0":0,"x1":1,"y1":1}"#;
        type Fields<'a> = Vec<(&'a str, &'a [u8])>;
        let cases: Vec<(Fields, StatusCode, &str)> = vec![
            (
                vec![("photo", b"".as_slice())],
                StatusCode::UNPROCESSABLE_ENTITY,
                "empty",
            ),
            (
                vec![("photo", b"Image,Id\nx.jpg,w_1\n".as_slice())],
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not a JPEG or PNG",
            ),
            (
                vec![("photo", half)],
                StatusCode::UNPROCESSABLE_ENTITY,
                "truncated",
            ),
            (vec![("box", tiny)], StatusCode::BAD_REQUEST, "no photo"),
            (
                vec![("photo", photo), ("photo", photo)],
                StatusCode::BAD_REQUEST,
                "one photo",
            ),
            (
                vec![("picture", photo)],
                StatusCode::BAD_REQUEST,
                "unexpected field \"picture\"",
            ),
            (
                vec![("photo", photo), ("box", b"{x0: 1}".as_slice())],
                StatusCode::UNPROCESSABLE_ENTITY,
                "box must be JSON",
            ),
            (
                vec![("photo", photo), ("box", outside)],
                StatusCode::UNPROCESSABLE_ENTITY,
                "box (10, 10, 400, 50) lies outside the 200x100 image",
            ),
            (
                vec![("crop", photo), ("box", tiny)],
                StatusCode::BAD_REQUEST,
                "box only with a photo",
            ),
            (
                vec![("photo", photo), ("batch", b"../x".as_slice())],
                StatusCode::BAD_REQUEST,
                "batch must be",
            ),
        ];
        for (fields, want_status, want_message) in cases {
            let (status, message) = refused(&app, &fields).await;
            assert_eq!(status, want_status, "{message}");
            assert!(
                message.contains(want_message),
                "{message:?} lacks {want_message:?}"
            );
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .unwrap()
                .count(),
            0
        );
        let (_, body) = send(
            &app,
            admin(
                Method::GET,
                "/api/admin/uploads?status=all",
                Some(TOKEN),
                "",
            ),
        )
        .await;
        assert_eq!(body, b"[]");
    }

    #[tokio::test]
    async fn bombs_and_oversized_bodies_are_refused_before_decoding() {
        let (_dir, app) = no_model_app().await;
        let (status, message) = refused(&app, &[("photo", &png_bomb(50_000, 50_000))]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(message.contains("50000x50000"), "{message}");

        let huge = vec![0xFFu8; LIMIT + 1];
        let (status, message) = refused(&app, &[("photo", &huge)]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{message}");
        assert!(message.contains(&LIMIT.to_string()), "{message}");

        // A declared length over the limit is refused before reading.
        let mut request = identify_request(&[("photo", &vec![0u8; 2 * LIMIT])]);
        let length = axum::http::HeaderValue::from(2 * LIMIT + 500);
        request.headers_mut().insert(header::CONTENT_LENGTH, length);
        let (status, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(error_message(&body).contains("larger than the limit"));
    }

    #[tokio::test]
    async fn without_a_serving_run_identification_says_what_to_do() {
        let (_dir, app) = no_model_app().await;
        let (status, message) = refused(&app, &[("photo", &jpeg(200, 100))]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            message,
            "no model is serving yet; train a run and make it the serving run"
        );
        let (status, _) = send(&app, get("/api/map")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, body) = send(&app, get("/api/status")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&body).contains(r#""model":{"state":"idle"}"#));
    }

    #[tokio::test]
    async fn admin_routes_want_the_exact_token() {
        let (_dir, app) = no_model_app().await;
        for token in [None, Some("wrong"), Some("test-toke")] {
            let (status, body) = send(&app, admin(Method::GET, "/api/admin/runs", token, "")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
            assert!(error_message(&body).contains("Bearer"));
            let (status, _) =
                send(&app, admin(Method::POST, "/api/admin/train", token, "{}")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let (status, body) =
            send(&app, admin(Method::GET, "/api/admin/runs", Some(TOKEN), "")).await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, b"[]".as_slice())
        );
    }

    #[tokio::test]
    async fn bad_admin_requests_get_readable_errors() {
        let (_dir, app) = no_model_app().await;
        let cases = [
            (
                Method::POST,
                "/api/admin/train",
                "{\"batch_size\": ",
                StatusCode::BAD_REQUEST,
                "not valid JSON",
            ),
            (
                Method::POST,
                "/api/admin/train",
                r#"{"bach_size": 4}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "no field bach_size",
            ),
            (
                Method::POST,
                "/api/admin/train",
                r#"{"model": {"crop_width": "wide"}}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "not valid",
            ),
            (
                Method::POST,
                "/api/admin/runs/run-0042/serve",
                "",
                StatusCode::NOT_FOUND,
                "no run run-0042",
            ),
            (
                Method::POST,
                "/api/admin/runs/run-0042/validate",
                r#"{"sweep": {"lo": 3, "hi": 1, "n": 5}}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "0 < lo <= hi",
            ),
            (
                Method::GET,
                "/api/admin/runs/run-0042/submission.csv",
                "",
                StatusCode::NOT_FOUND,
                "no run",
            ),
            (
                Method::POST,
                "/api/admin/uploads/17/confirm",
                r#"{"new_individual": true}"#,
                StatusCode::NOT_FOUND,
                "no upload 17",
            ),
            (
                Method::POST,
                "/api/admin/uploads/x/confirm",
                r#"{"new_individual": true}"#,
                StatusCode::NOT_FOUND,
                "no upload",
            ),
            (
                Method::POST,
                "/api/admin/uploads/1/confirm",
                r#"{"individual": 7}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "does not fit",
            ),
            (
                Method::GET,
                "/api/admin/individuals/w_zzzzzzz",
                "",
                StatusCode::NOT_FOUND,
                "no individual w_zzzzzzz",
            ),
            (
                Method::GET,
                "/api/admin/uploads?status=maybe",
                "",
                StatusCode::BAD_REQUEST,
                "unknown status",
            ),
            (
                Method::POST,
                "/api/admin/train/stop",
                "",
                StatusCode::CONFLICT,
                "no training job",
            ),
        ];
        for (method, uri, body, want_status, want_message) in cases {
            let (status, response) = send(&app, admin(method, uri, Some(TOKEN), body)).await;
            let message = error_message(&response);
            assert_eq!(status, want_status, "{uri}: {message}");
            assert!(
                message.contains(want_message),
                "{uri}: {message:?} lacks {want_message:?}"
            );
        }
    }

    #[tokio::test]
    async fn images_are_served_from_inside_the_data_folder_only() {
        let (_dir, app) = no_model_app().await;
        let (status, body) = send(&app, get("/api/images/train/0.jpg")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with(&[0xFF, 0xD8]));
        for (uri, want) in [
            ("/api/images/train/..", StatusCode::BAD_REQUEST),
            ("/api/images/train/..%2Ftrain.csv", StatusCode::BAD_REQUEST),
            ("/api/images/train/%2Fetc%2Fpasswd", StatusCode::BAD_REQUEST),
            ("/api/images/secrets/0.jpg", StatusCode::NOT_FOUND),
            ("/api/images/train/9.jpg", StatusCode::NOT_FOUND),
            ("/api/images/../train.csv", StatusCode::NOT_FOUND),
            ("/api/nothing-here", StatusCode::NOT_FOUND),
        ] {
            let (status, body) = send(&app, get(uri)).await;
            assert_eq!(status, want, "{uri}");
            error_message(&body);
        }
    }

    #[tokio::test]
    async fn the_front_end_is_served_at_the_root_with_its_own_routes() {
        let dir = tempfile::tempdir().unwrap();
        write_data_set(dir.path());
        let site = dir.path().join("site");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(site.join("index.html"), "<h1>flukeid</h1>").unwrap();
        std::fs::write(site.join("app.js"), "start()").unwrap();
        let config = crate::server::ServerConfig {
            static_dir: Some(site),
            ..crate::server::ServerConfig::new(dir.path())
        };
        let (app, _) = crate::server::build_app(config).await.unwrap();
        for (uri, want) in [
            ("/", "<h1>flukeid</h1>"),
            ("/app.js", "start()"),
            ("/review", "<h1>flukeid</h1>"),
        ] {
            let (status, body) = send(&app, get(uri)).await;
            assert_eq!(
                (status, body.as_slice()),
                (StatusCode::OK, want.as_bytes()),
                "{uri}"
            );
        }
        let (status, body) = send(&app, get("/api/unknown")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(error_message(&body).contains("no such API route"));
    }

    #[tokio::test]
    async fn a_serving_run_identifies_and_checks_crop_sizes() {
        let dir = tempfile::tempdir().unwrap();
        write_data_set(dir.path());
        write_serving_run(dir.path(), "run-0001");
        let (app, _) = app(dir.path(), LIMIT).await;
        until_ready(&app).await;

        let wrong_size =
            crate::server::testing::encode(&image::RgbImage::new(65, 32), image::ImageFormat::Png);
        let (status, message) = refused(&app, &[("crop", &wrong_size)]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("expects 64x32 crops"), "{message}");

        let (status, body) = send(&app, identify_request(&[("photo", &jpeg(200, 100))])).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let answer: flukeid_shared::api::IdentifyResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer.run_id, "run-0001");
        assert!(!answer.candidates.is_empty());
        assert!(answer
            .candidates
            .iter()
            .all(|c| (0.0..=1.0).contains(&c.confidence)));
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .unwrap()
                .count(),
            1
        );

        let (status, body) = send(&app, get("/api/map")).await;
        assert_eq!(status, StatusCode::OK);
        let map: flukeid_shared::api::MapResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(map.points.len(), 4);
    }
}
