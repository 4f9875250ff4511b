//! `flukeid serve` end to end: a real server on 127.0.0.1:0 over a small
//! synthetic data set, driven through HTTP and websockets as the browser
//! and an admin would drive it. Training is real (EfficientNet-Lite0 from
//! its ImageNet weights, on small crops, for two short epochs), so these
//! tests need the converted weights that `scripts/setup.sh` installs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flukeid::server::{AppHandle, ServerConfig};
use flukeid::synth::{generate, SynthConfig};
use flukeid_shared::api::{
    CandidateMatch, ConfirmResponse, IdentifyResponse, IndividualDetail, JobStarted, LrFindStatus,
    MapResponse, ModelStatus, RunState, RunSummary, StatusResponse, TrainEvent, TrainHistory,
    ValidateResponse,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{prepare_data, read_csv, require_lite0_weights, second_shot, DataSetup};

/// Concurrent identifications of the load test.
const N_CONCURRENT: usize = 50;

/// Most the server's memory may grow over the load test: 50 photos of a
/// few hundred kilobytes, decoded, cropped and embedded, with room for the
/// allocator to keep what it freed.
const MAX_RSS_GROWTH_MB: f64 = 400.0;

/// A server running on a loopback port, with the data folder it owns.
struct TestServer {
    base: String,
    addr: SocketAddr,
    handle: AppHandle,
    client: reqwest::Client,
    data_dir: PathBuf,
}

impl TestServer {
    async fn start(data_dir: &Path, admin_token: Option<&str>) -> Self {
        let config = ServerConfig {
            admin_token: admin_token.map(str::to_string),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerConfig::new(data_dir)
        };
        let (addr, handle) = flukeid::server::spawn(config)
            .await
            .expect("the server starts");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        Self {
            base: format!("http://{addr}"),
            addr,
            handle,
            client,
            data_dir: data_dir.to_path_buf(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token(&self) -> &str {
        self.handle.admin_token()
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap();
        json_body(response, StatusCode::OK).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
        want: StatusCode,
    ) -> T {
        let request = self
            .client
            .post(self.url(path))
            .bearer_auth(self.token())
            .json(&body);
        json_body(request.send().await.unwrap(), want).await
    }

    async fn status(&self) -> StatusResponse {
        self.get("/api/status").await
    }

    /// Identifies a photo of the data set, with its box when it has one.
    async fn identify(
        &self,
        split: &str,
        image: &str,
        bbox: Option<[f64; 4]>,
        batch: &str,
    ) -> IdentifyResponse {
        let bytes = std::fs::read(self.data_dir.join(split).join(image)).unwrap();
        let mut form = Form::new()
            .part("photo", Part::bytes(bytes).file_name(image.to_string()))
            .text("batch", batch.to_string());
        if let Some(bbox) = bbox {
            form = form.text("box", box_json(bbox));
        }
        let response = self
            .client
            .post(self.url("/api/identify"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        json_body(response, StatusCode::OK).await
    }

    async fn stop(self) {
        self.handle.finish().await;
    }
}

fn box_json([x0, y0, x1, y1]: [f64; 4]) -> String {
    json!({"x0": x0, "y0": y0, "x1": x1, "y1": y1}).to_string()
}

async fn json_body<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    want: StatusCode,
) -> T {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, want, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Resident memory of this process (the server runs inside it), in MB.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024.0
}

/// A small, quick training run: Lite0 on 96x32 crops, two epochs of at most
/// 14 steps of four triplets.
fn quick_config() -> serde_json::Value {
    json!({
        "model": {"backbone": "efficientnet_lite0", "crop_width": 96, "crop_height": 32},
        "batch_size": 4,
        "n_epochs": 2,
        "max_steps_per_epoch": 14,
        "checkpoint_every": 0,
        "eval_batch_size": 32,
        "mixed_precision": false,
        "lr": 1e-3,
    })
}

async fn until<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(300), socket.next())
            .await
            .expect("a message within five minutes")
            .expect("the socket stays open")
            .expect("a readable message");
        if let Message::Text(text) = message {
            return text.to_string();
        }
    }
}

/// Joins the training websocket once a few steps are done, stops the run
/// and resumes it, and checks that history and live events together hold
/// every step of the run exactly once, across the stop.
async fn follow_training(server: &TestServer, run_id: &str) {
    until("a few training steps", Duration::from_secs(300), || async {
        let status = server.status().await;
        status
            .training
            .and_then(|t| t.last_step)
            .is_some_and(|s| s.global_step >= 3)
    })
    .await;
    let url = format!("ws://{}/api/ws/train?token={}", server.addr, server.token());
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let history: TrainHistory = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(history.run_id.as_deref(), Some(run_id));
    let mut steps: Vec<usize> = step_numbers(&history.events);
    assert!(
        steps.len() >= 3,
        "history holds the steps so far: {steps:?}"
    );

    let _: JobStarted = server
        .post("/api/admin/train/stop", json!({}), StatusCode::ACCEPTED)
        .await;
    let mut live = read_until_end(&mut socket).await;
    assert_eq!(
        last_state(&live),
        Some(RunState::Stopped),
        "the stop is clean"
    );
    let runs: Vec<RunSummary> = server.get("/api/admin/runs").await;
    assert_eq!(runs[0].state, RunState::Stopped);

    let path = format!("/api/admin/runs/{run_id}/resume");
    let _: JobStarted = server.post(&path, json!({}), StatusCode::ACCEPTED).await;
    live.extend(read_until_end(&mut socket).await);
    assert_eq!(
        last_state(&live),
        Some(RunState::Finished),
        "the resumed run finishes"
    );
    assert!(
        live.iter().any(|e| matches!(e, TrainEvent::Epoch(_))),
        "live epochs arrive"
    );

    steps.extend(step_numbers(&live));
    let total = live.iter().rev().find_map(|e| {
        if let TrainEvent::Step(s) = e {
            Some(s.total_steps)
        } else {
            None
        }
    });
    assert_eq!(
        steps,
        (1..=total.unwrap()).collect::<Vec<_>>(),
        "every step once, in order"
    );
}

/// Live events up to the next end of the run (stopped, finished, failed).
async fn read_until_end(socket: &mut Socket) -> Vec<TrainEvent> {
    let mut events = Vec::new();
    loop {
        let event: TrainEvent = serde_json::from_str(&next_text(socket).await).unwrap();
        let end = matches!(
            &event,
            TrainEvent::State {
                state: RunState::Stopped | RunState::Finished | RunState::Failed,
                ..
            }
        );
        events.push(event);
        if end {
            return events;
        }
    }
}

fn last_state(events: &[TrainEvent]) -> Option<RunState> {
    events.iter().rev().find_map(|e| {
        if let TrainEvent::State { state, .. } = e {
            Some(*state)
        } else {
            None
        }
    })
}

fn step_numbers(events: &[TrainEvent]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| {
            if let TrainEvent::Step(s) = e {
                Some(s.global_step)
            } else {
                None
            }
        })
        .collect()
}

/// Training websockets refuse a wrong token and accept one sent as the
/// first message.
async fn check_training_socket_tokens(server: &TestServer) {
    let wrong = format!("ws://{}/api/ws/train?token=nope", server.addr);
    match tokio_tungstenite::connect_async(wrong).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("a wrong token must be refused, got {other:?}"),
    }
    let url = format!("ws://{}/api/ws/train", server.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
        .send(Message::Text(
            json!({"token": server.token()}).to_string().into(),
        ))
        .await
        .unwrap();
    let history: TrainHistory = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert!(!history.events.is_empty());
}

/// A short learning-rate sweep in the job slot, polled until it ends.
async fn find_learning_rate(server: &TestServer) {
    let body = json!({"config": quick_config(), "start_lr": 1e-5, "end_lr": 1.0, "n_steps": 6});
    let _: JobStarted = server
        .post("/api/admin/lr-find", body, StatusCode::ACCEPTED)
        .await;
    until(
        "the learning-rate sweep",
        Duration::from_secs(300),
        || async {
            let status: LrFindStatus = server.get("/api/admin/lr-find").await;
            matches!(status.state, RunState::Finished | RunState::Failed)
        },
    )
    .await;
    let status: LrFindStatus = server.get("/api/admin/lr-find").await;
    assert_eq!(status.state, RunState::Finished, "{}", status.message);
    assert!(!status.points.is_empty() && status.suggested_lr.is_some());
}

/// Identifies every held-out photo of a known individual and returns the
/// share whose individual is among the five candidates.
async fn top5_hit_rate(server: &TestServer, data: &DataSetup) -> f64 {
    let mut hits = 0;
    for (image, truth) in &data.known_tests {
        let answer = server
            .identify("test", image, data.boxes.get(image).copied(), "held-out")
            .await;
        assert!(answer.candidates.len() <= 5);
        hits += usize::from(answer.candidates.iter().any(|c| &c.label == truth));
    }
    hits as f64 / data.known_tests.len() as f64
}

/// Confirms a photo of the newcomer as a new individual and identifies a
/// second shot of the same fluke; returns the new id and that answer.
async fn discover_newcomer(server: &TestServer, data: &DataSetup) -> (String, IdentifyResponse) {
    let first = &data.newcomer_photos[0];
    let bbox = data.boxes.get(first).copied();
    let upload = server.identify("train", first, bbox, "newcomer").await;
    let path = format!("/api/admin/uploads/{}/confirm", upload.upload_id);
    let confirmed: ConfirmResponse = server
        .post(&path, json!({"new_individual": true}), StatusCode::OK)
        .await;
    assert!(confirmed.added_to_gallery);
    let again = server
        .client
        .post(server.url(&path))
        .bearer_auth(server.token());
    let again = again
        .json(&json!({"new_individual": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let photo = std::fs::read(server.data_dir.join("train").join(first)).unwrap();
    let (second, second_box) = second_shot(&photo, bbox.expect("synthetic photos have boxes"));
    let form = Form::new()
        .part("photo", Part::bytes(second).file_name("second.jpg"))
        .text("box", box_json(second_box));
    let response = server
        .client
        .post(server.url("/api/identify"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (
        confirmed.individual,
        json_body(response, StatusCode::OK).await,
    )
}

/// Sends `N_CONCURRENT` identifications at once and checks that all are
/// answered and memory stays bounded.
async fn load_test(server: &TestServer, data: &DataSetup) {
    let before = rss_mb();
    let started = Instant::now();
    let requests = (0..N_CONCURRENT).map(|idx| {
        let (image, _) = &data.known_tests[idx % data.known_tests.len()];
        server.identify("test", image, data.boxes.get(image).copied(), "load")
    });
    let answers = futures_util::future::join_all(requests).await;
    let secs = started.elapsed().as_secs_f64();
    let after = rss_mb();
    eprintln!(
        "load test: {N_CONCURRENT} identifications in {secs:.1} s; \
         RSS {before:.0} -> {after:.0} MB"
    );
    assert_eq!(answers.len(), N_CONCURRENT);
    assert!(answers.iter().all(|a| !a.candidates.is_empty()));
    assert!(
        after - before < MAX_RSS_GROWTH_MB,
        "RSS grew from {before:.0} to {after:.0} MB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trained_server_identifies_whales_end_to_end() {
    require_lite0_weights();
    let dir = tempfile::tempdir().unwrap();
    let data = prepare_data(dir.path());
    let clock = Instant::now();
    let server = TestServer::start(dir.path(), Some("admin-secret")).await;
    assert_eq!(server.status().await.model, ModelStatus::Idle);

    // Train through the admin API, following it on the websocket.
    let started: JobStarted = server
        .post("/api/admin/train", quick_config(), StatusCode::ACCEPTED)
        .await;
    let conflict = server
        .client
        .post(server.url("/api/admin/train"))
        .bearer_auth(server.token())
        .json(&quick_config())
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    follow_training(&server, &started.run_id).await;
    check_training_socket_tokens(&server).await;
    eprintln!("trained in {:.1} s", clock.elapsed().as_secs_f64());
    find_learning_rate(&server).await;

    let runs: Vec<RunSummary> = server.get("/api/admin/runs").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].state, runs[0].has_model, runs[0].epochs_done),
        (RunState::Finished, true, 2)
    );

    // Calibrate dcut, then serve the run.
    let path = format!("/api/admin/runs/{}/validate", started.run_id);
    let sweep = json!({"sweep": {"lo": 1.0, "hi": 60.0, "n": 15}});
    let validated: ValidateResponse = server.post(&path, sweep, StatusCode::OK).await;
    assert_eq!(validated.table.len(), 15);
    let path = format!("/api/admin/runs/{}/serve", started.run_id);
    let _: JobStarted = server.post(&path, json!({}), StatusCode::ACCEPTED).await;
    until("the serving run", Duration::from_secs(300), || async {
        matches!(server.status().await.model, ModelStatus::Ready { .. })
    })
    .await;
    let serving = server.status().await.serving.expect("a run serves");
    assert_eq!(serving.dcut, validated.calibrated_dcut.unwrap());
    eprintln!("serving after {:.1} s", clock.elapsed().as_secs_f64());

    // Held-out photos of known individuals, streamed to a subscriber too
    // (which asks for compression, as browsers do).
    let url = format!("ws://{}/api/ws/identify?batch=held-out", server.addr);
    let mut request = url.into_client_request().unwrap();
    let encodings = "gzip, deflate, br".parse().unwrap();
    request.headers_mut().insert("accept-encoding", encodings);
    let (mut results, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hit_rate = top5_hit_rate(&server, &data).await;
    let chance = 5.0 / (data.n_gallery_individuals + 1) as f64;
    eprintln!(
        "top-5 hit rate {hit_rate:.2} on {} photos (chance {chance:.2})",
        data.known_tests.len()
    );
    assert!(
        hit_rate > 0.5 && hit_rate > 2.5 * chance,
        "top-5 hit rate {hit_rate:.2}, chance {chance:.2}"
    );
    for _ in 0..data.known_tests.len() {
        let pushed: IdentifyResponse =
            serde_json::from_str(&next_text(&mut results).await).unwrap();
        assert_eq!(pushed.batch.as_deref(), Some("held-out"));
    }

    // An individual the gallery never saw: confirm one photo, find the next.
    let (newcomer, answer) = discover_newcomer(&server, &data).await;
    // The first individual proposed; `new_whale` may rank above it when
    // the second shot lies beyond the calibrated dcut.
    let individuals: Vec<&CandidateMatch> = answer
        .candidates
        .iter()
        .filter(|c| c.label != "new_whale")
        .collect();
    let labels: Vec<&str> = individuals.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels.first(),
        Some(&newcomer.as_str()),
        "the newcomer comes back first: {labels:?}"
    );
    eprintln!(
        "second shot: {:?}",
        answer
            .candidates
            .iter()
            .map(|c| (&c.label, c.distance))
            .collect::<Vec<_>>()
    );
    assert!(individuals[0].photos[0].starts_with("/api/images/uploads/"));
    let detail: IndividualDetail = server
        .get(&format!("/api/admin/individuals/{newcomer}"))
        .await;
    assert_eq!(detail.sightings.len(), 1);
    let photo = server
        .client
        .get(server.url(&detail.photos[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), StatusCode::OK);

    load_test(&server, &data).await;
    check_outputs(&server, &started.run_id, serving.gallery_size + 1).await;
    eprintln!("end to end in {:.1} s", clock.elapsed().as_secs_f64());
    server.stop().await;
}

/// The map, the sightings and the submission.
async fn check_outputs(server: &TestServer, run_id: &str, gallery_size: usize) {
    let map: MapResponse = server.get("/api/map").await;
    assert_eq!(map.points.len(), gallery_size);
    assert!(map
        .points
        .iter()
        .all(|p| p.x.is_finite() && p.y.is_finite()));

    let sightings = server
        .client
        .get(server.url("/api/admin/sightings.csv"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(sightings.text().await.unwrap().lines().count(), 2);

    let path = format!("/api/admin/runs/{run_id}/submission.csv");
    let response = server
        .client
        .get(server.url(&path))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let n_test = read_csv(&server.data_dir.join("test_truth.csv")).len();
    assert_eq!(text.lines().count(), n_test + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_generated_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    generate(&SynthConfig {
        out: dir.path().to_path_buf(),
        n_individuals: 2,
        seed: 3,
    })
    .unwrap();
    let server = TestServer::start(dir.path(), None).await;
    let token = server.token().to_string();
    assert!(token.len() >= 32);
    let wrong = server
        .client
        .get(server.url("/api/admin/runs"))
        .bearer_auth("not-it")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let runs: Vec<RunSummary> = server.get("/api/admin/runs").await;
    assert!(runs.is_empty());
    server.stop().await;

    let again = TestServer::start(dir.path(), None).await;
    assert_eq!(again.token(), token, "the token survives a restart");
    again.stop().await;
}
