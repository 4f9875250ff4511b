//! Training from the admin API: one background job at a time (a training
//! run, a resumed run, or a learning-rate sweep) on a thread of its own,
//! stopped cleanly on request (checkpoint, then end), with its progress
//! fanned out to `/api/ws/train` subscribers.
//!
//! A subscriber first gets the history of the current (or latest) run, then
//! live events. The history and the broadcast sit behind one lock, so an
//! event is either in the history a subscriber got or among the live events
//! it receives, never both and never neither.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use flukeid_shared::api::{
    JobKind, JobStarted, LrFindStatus, LrSweep, RunState, TrainEvent, TrainHistory, TrainingStatus,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use tch::Device;
use tokio::sync::broadcast;

use super::admin::bearer;
use super::catalog::Catalog;
use super::config::DataPaths;
use super::error::{json_body_or_default, AppError};
use super::identify::still_open;
use super::runs::{check_run_id, next_run_id, read_history};
use super::state::{blocking, AppState};
use super::train_config::{check_config, check_sweep, parse_train_config, train_config_from};
use crate::data::DataSet;
use crate::lr_find::{find_lr, LrFindConfig};
use crate::run_dir::append_json_line;
use crate::train::{Outcome, TrainConfig, TrainError, Trainer};

/// Live events kept for slow subscribers.
const FEED_CAPACITY: usize = 1024;

/// How long a training websocket without a token in its URL may take to
/// send one.
const TOKEN_WAIT: Duration = Duration::from_secs(10);

/// The id the learning-rate sweep runs under.
pub const LR_FIND_ID: &str = "lr-find";

/// The background job slot and the training feed.
pub struct Jobs {
    current: Mutex<Option<Job>>,
    pub feed: Arc<Feed>,
    lr_find: Arc<Mutex<LrFindStatus>>,
    context: JobContext,
}

/// What every job needs.
#[derive(Clone)]
pub struct JobContext {
    pub paths: DataPaths,
    pub data: Arc<DataSet>,
    pub catalog: Arc<Catalog>,
    pub device: Device,
}

/// Events of the current run: its history and the live broadcast.
pub struct Feed {
    state: Mutex<FeedState>,
    sender: broadcast::Sender<TrainEvent>,
}

#[derive(Default)]
struct FeedState {
    run_id: Option<String>,
    kind: Option<JobKind>,
    events: Vec<TrainEvent>,
}

struct Job {
    run_id: String,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// What a training job starts from.
enum Start {
    New(Box<TrainConfig>),
    Resume,
}

/// Query of the training websocket.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

/// Body of `POST /api/admin/lr-find`: the sweep's range and a (partial)
/// training config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LrFindBody {
    #[serde(default)]
    config: Option<Value>,
    start_lr: Option<f64>,
    end_lr: Option<f64>,
    n_steps: Option<usize>,
}

impl Jobs {
    pub fn new(context: JobContext) -> Self {
        let idle = LrFindStatus {
            state: RunState::Finished,
            message: "no sweep has run".into(),
            points: vec![],
            suggested_lr: None,
        };
        Self {
            current: Mutex::new(None),
            feed: Arc::new(Feed::new()),
            lr_find: Arc::new(Mutex::new(idle)),
            context,
        }
    }

    /// The running job, if any.
    pub fn status(&self) -> Option<TrainingStatus> {
        let current = self.lock();
        let job = current.as_ref().filter(|job| !job.thread.is_finished())?;
        Some(self.feed.status(&job.run_id))
    }

    /// Asks the running job to stop after its current step.
    ///
    /// # Errors
    ///
    /// 409 when no job runs.
    pub fn stop(&self) -> Result<String, AppError> {
        let current = self.lock();
        let job = current
            .as_ref()
            .filter(|job| !job.thread.is_finished())
            .ok_or_else(|| {
                AppError::Conflict("no training job or learning-rate sweep is running".into())
            })?;
        job.stop.store(true, Ordering::SeqCst);
        Ok(job.run_id.clone())
    }

    /// Stops the running job and waits for it (checkpoint included).
    pub fn shut_down(&self) {
        let job = self.lock().take();
        if let Some(job) = job {
            job.stop.store(true, Ordering::SeqCst);
            let _ = job.thread.join();
        }
    }

    /// Whether `run_id` is being trained now.
    pub fn is_training(&self, run_id: &str) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|job| job.run_id == run_id && self.feed.is_running(job))
    }

    fn lock(&self) -> MutexGuard<'_, Option<Job>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// 409 while a job runs.
    fn check_idle(&self) -> Result<(), AppError> {
        busy(&self.lock(), &self.feed)
    }

    /// Starts `work` on a thread in the job slot.
    fn spawn(
        &self,
        run_id: String,
        work: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> Result<(), AppError> {
        let mut current = self.lock();
        busy(&current, &self.feed)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("flukeid-{run_id}"))
            .spawn(move || work(&flag))
            .map_err(AppError::internal)?;
        if let Some(finished) = current.replace(Job {
            run_id,
            stop,
            thread,
        }) {
            let _ = finished.thread.join();
        }
        Ok(())
    }
}

/// 409 when `current` holds a running job.
fn busy(current: &Option<Job>, feed: &Feed) -> Result<(), AppError> {
    match current.as_ref().filter(|job| feed.is_running(job)) {
        Some(job) => Err(AppError::Conflict(format!(
            "{} is running; stop it (POST /api/admin/train/stop) or wait for it to end",
            job.run_id
        ))),
        None => Ok(()),
    }
}

impl Feed {
    fn new() -> Self {
        Self {
            state: Mutex::new(FeedState::default()),
            sender: broadcast::channel(FEED_CAPACITY).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the history of a run afresh, from `events`.
    pub fn begin(&self, run_id: &str, kind: Option<JobKind>, events: Vec<TrainEvent>) {
        let mut state = self.lock();
        *state = FeedState {
            run_id: Some(run_id.to_string()),
            kind,
            events,
        };
    }

    /// Appends an event and sends it to subscribers.
    pub fn push(&self, event: TrainEvent) {
        let mut state = self.lock();
        state.events.push(event.clone());
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    /// The history so far and a receiver of everything after it.
    pub fn subscribe(&self) -> (TrainHistory, broadcast::Receiver<TrainEvent>) {
        let state = self.lock();
        let receiver = self.sender.subscribe();
        (
            TrainHistory {
                run_id: state.run_id.clone(),
                events: state.events.clone(),
            },
            receiver,
        )
    }

    /// Whether `job` still runs: its thread is alive and, for training,
    /// its run has not yet reported its end (the thread outlives that
    /// event by a moment, and the run's files are complete by then).
    fn is_running(&self, job: &Job) -> bool {
        if job.thread.is_finished() {
            return false;
        }
        let state = self.lock();
        let ended = state.run_id.as_deref() == Some(job.run_id.as_str())
            && state
                .events
                .iter()
                .rev()
                .find_map(|event| match event {
                    TrainEvent::State { state, .. } => Some(*state),
                    _ => None,
                })
                .is_some_and(|state| {
                    matches!(
                        state,
                        RunState::Finished | RunState::Stopped | RunState::Failed
                    )
                });
        !ended
    }

    fn status(&self, run_id: &str) -> TrainingStatus {
        let state = self.lock();
        let events = state.events.iter().rev();
        let mut status = TrainingStatus {
            run_id: run_id.to_string(),
            kind: state.kind.unwrap_or(JobKind::Train),
            state: RunState::Preparing,
            last_step: None,
            last_epoch: None,
        };
        let mut seen_state = false;
        for event in events {
            match event {
                TrainEvent::Step(step) if status.last_step.is_none() => {
                    status.last_step = Some(step.clone())
                }
                TrainEvent::Epoch(epoch) if status.last_epoch.is_none() => {
                    status.last_epoch = Some(epoch.clone())
                }
                TrainEvent::State { state, .. } if !seen_state => {
                    (status.state, seen_state) = (*state, true)
                }
                _ => {}
            }
        }
        status
    }
}

impl JobContext {
    /// Records an event: in the feed, in the run's state when it is a
    /// change of state, and in `history.jsonl` when `to_file` (the trainer
    /// writes its own events there).
    fn record(&self, feed: &Feed, run_id: &str, event: TrainEvent, to_file: bool) {
        if let TrainEvent::State { state, message } = &event {
            if let Err(error) = self.catalog.set_run_state(run_id, *state, message) {
                tracing::error!("cannot record the state of {run_id}: {error}");
            }
        }
        if to_file {
            let history = self.paths.run(run_id).join("history.jsonl");
            if let Err(error) = append_json_line(&history, &event) {
                tracing::warn!("{error}");
            }
        }
        feed.push(event);
    }
}

/// `POST /api/admin/train`: starts a run from a (partial) training config.
///
/// # Errors
///
/// 400/422 for a bad config, 409 while another job runs.
pub async fn start_training(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<JobStarted>), AppError> {
    let config = parse_train_config(&body)?;
    check_config(&config)?;
    state.jobs.check_idle()?;
    let context = state.jobs.context.clone();
    let run_id = blocking(move || {
        let run_id = next_run_id(&context.paths, &context.catalog)?;
        context
            .catalog
            .insert_run(&run_id, RunState::Preparing, "queued")?;
        Ok(run_id)
    })
    .await?;
    if let Err(error) = launch_training(&state, run_id.clone(), Start::New(Box::new(config))) {
        // Another job started in between: the run never began.
        let (catalog, id, message) = (state.catalog.clone(), run_id.clone(), error.to_string());
        blocking(move || Ok(catalog.set_run_state(&id, RunState::Failed, &message)?)).await?;
        return Err(error);
    }
    let message = format!("training {run_id}; follow it on /api/ws/train");
    Ok((StatusCode::ACCEPTED, Json(JobStarted { run_id, message })))
}

/// `POST /api/admin/runs/{id}/resume`: goes on training a stopped run from
/// its last checkpoint.
///
/// # Errors
///
/// 404 for an unknown run, 409 for a finished run or while a job runs.
pub async fn resume_training(
    State(state): State<Arc<AppState>>,
    UrlPath(run_id): UrlPath<String>,
) -> Result<(StatusCode, Json<JobStarted>), AppError> {
    let run = super::runs::find_run(&state, &run_id).await?;
    if run.state == RunState::Finished {
        return Err(AppError::Conflict(format!(
            "{run_id} has finished; start a new run instead"
        )));
    }
    launch_training(&state, run_id.clone(), Start::Resume)?;
    let message = format!("resuming {run_id}; follow it on /api/ws/train");
    Ok((StatusCode::ACCEPTED, Json(JobStarted { run_id, message })))
}

/// `POST /api/admin/train/stop`: stops the running job after its current
/// step; training writes a checkpoint first.
///
/// # Errors
///
/// 409 when nothing runs.
pub async fn stop_training(
    State(state): State<Arc<AppState>>,
) -> Result<(StatusCode, Json<JobStarted>), AppError> {
    let run_id = state.jobs.stop()?;
    if run_id != LR_FIND_ID {
        let message = "stopping after the current step; a checkpoint is written first".to_string();
        let event = TrainEvent::State {
            state: RunState::Stopping,
            message: message.clone(),
        };
        let (context, feed) = (state.jobs.context.clone(), state.jobs.feed.clone());
        let id = run_id.clone();
        blocking(move || {
            context.record(&feed, &id, event, true);
            Ok(())
        })
        .await?;
    }
    let message = format!("{run_id} is stopping");
    Ok((StatusCode::ACCEPTED, Json(JobStarted { run_id, message })))
}

/// `POST /api/admin/lr-find`: sweeps the learning rate in the background.
///
/// # Errors
///
/// 400/422 for a bad body, 409 while another job runs.
pub async fn start_lr_find(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<JobStarted>), AppError> {
    let body: LrFindBody = json_body_or_default(&body)?;
    let config = train_config_from(body.config.unwrap_or_else(|| Value::Object(Map::new())))?;
    check_config(&config)?;
    let defaults = LrFindConfig::default();
    let sweep = LrSweep {
        start_lr: body.start_lr.unwrap_or(defaults.start_lr),
        end_lr: body.end_lr.unwrap_or(defaults.end_lr),
        n_steps: body.n_steps.unwrap_or(defaults.n_steps),
    };
    check_sweep(&sweep)?;
    state.jobs.check_idle()?;
    launch_lr_find(&state, config, sweep)?;
    let message = "sweeping; GET /api/admin/lr-find shows the curve".to_string();
    Ok((
        StatusCode::ACCEPTED,
        Json(JobStarted {
            run_id: LR_FIND_ID.into(),
            message,
        }),
    ))
}

/// `GET /api/admin/lr-find`: the latest sweep's curve and suggestion.
pub async fn lr_find_status(State(state): State<Arc<AppState>>) -> Json<LrFindStatus> {
    let status = state
        .jobs
        .lr_find
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Json(status)
}

/// `GET /api/ws/train`: the current run's history, then live events. The
/// admin token comes as `?token=`, a bearer header, or the first message.
///
/// # Errors
///
/// 401 for a wrong token in the URL or header.
pub async fn train_socket(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let presented = query.token.as_deref().or_else(|| bearer(&headers));
    let authorised = match presented {
        Some(token) if state.token.matches(token) => true,
        Some(_) => return Err(AppError::Unauthorized),
        None => false,
    };
    Ok(upgrade.on_upgrade(move |socket| stream_training(socket, state, authorised)))
}

async fn stream_training(mut socket: WebSocket, state: Arc<AppState>, authorised: bool) {
    if !authorised && !token_message(&mut socket, &state).await {
        let reason = "send the admin token as the first message or as ?token=";
        let frame = CloseFrame {
            code: 1008,
            reason: reason.into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
        return;
    }
    let (history, mut events) = state.jobs.feed.subscribe();
    if send_json(&mut socket, &history).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => if send_json(&mut socket, &event).await.is_err() { break },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("a training subscriber missed {n} events");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => if !still_open(&incoming) { break },
            () = state.shutdown_requested() => break,
        }
    }
}

/// Reads the token from the first message: the bare token or
/// `{"token": "..."}`.
async fn token_message(socket: &mut WebSocket, state: &AppState) -> bool {
    let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(TOKEN_WAIT, socket.recv()).await
    else {
        return false;
    };
    let text = text.as_str().trim();
    let token = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.to_string());
    state.token.matches(&token)
}

async fn send_json<T: serde::Serialize>(
    socket: &mut WebSocket,
    value: &T,
) -> Result<(), axum::Error> {
    let json = serde_json::to_string(value).expect("feed messages serialise");
    socket.send(Message::Text(json.into())).await
}

fn launch_training(state: &Arc<AppState>, run_id: String, start: Start) -> Result<(), AppError> {
    check_run_id(&run_id)?;
    let (context, feed) = (state.jobs.context.clone(), state.jobs.feed.clone());
    let id = run_id.clone();
    state.jobs.spawn(run_id, move |stop| {
        train_job(&context, &feed, &id, start, stop)
    })
}

fn train_job(context: &JobContext, feed: &Feed, run_id: &str, start: Start, stop: &AtomicBool) {
    let run_dir = context.paths.run(run_id);
    let history = match start {
        Start::New(_) => Vec::new(),
        Start::Resume => read_history(&run_dir),
    };
    feed.begin(run_id, Some(JobKind::Train), history);
    if let Err(error) = std::fs::create_dir_all(&run_dir) {
        let message = format!("cannot create {}: {error}", run_dir.display());
        return context.record(feed, run_id, failed(message), false);
    }
    let message = "decoding crops and building the model".to_string();
    context.record(
        feed,
        run_id,
        TrainEvent::State {
            state: RunState::Preparing,
            message,
        },
        true,
    );

    match run_trainer(context, feed, run_id, &run_dir, start, stop) {
        Ok(Outcome::Finished) => tracing::info!(run_id, "training finished"),
        Ok(Outcome::Stopped) => tracing::info!(run_id, "training stopped"),
        Err(error) => {
            tracing::error!(run_id, "training failed: {error}");
            context.record(feed, run_id, failed(error.to_string()), true);
        }
    }
}

fn run_trainer(
    context: &JobContext,
    feed: &Feed,
    run_id: &str,
    run_dir: &Path,
    start: Start,
    stop: &AtomicBool,
) -> Result<Outcome, TrainError> {
    let mut trainer = match start {
        Start::New(config) => Trainer::start(*config, &context.data, run_dir, context.device)?,
        Start::Resume => Trainer::resume(&context.data, run_dir, context.device)?,
    };
    for (image, reason) in &trainer.skipped {
        tracing::warn!(run_id, "skipped {image}: {reason}");
    }
    // The trainer appends its own events to history.jsonl.
    trainer.run(
        &mut |event| context.record(feed, run_id, event.clone(), false),
        stop,
    )
}

fn launch_lr_find(
    state: &Arc<AppState>,
    config: TrainConfig,
    sweep: LrSweep,
) -> Result<(), AppError> {
    let context = state.jobs.context.clone();
    let (feed, status) = (state.jobs.feed.clone(), state.jobs.lr_find.clone());
    // Reset before the thread starts, so that a client polling at once never
    // reads the previous sweep's outcome.
    set_lr_status(
        &status,
        RunState::Preparing,
        "decoding crops and building the model",
    );
    let thread_status = status.clone();
    let spawned = state.jobs.spawn(LR_FIND_ID.into(), move |stop| {
        feed.begin(LR_FIND_ID, Some(JobKind::LrFind), Vec::new());
        lr_find_job(&context, config, sweep, &thread_status, stop);
    });
    if let Err(error) = &spawned {
        set_lr_status(&status, RunState::Failed, &error.to_string());
    }
    spawned
}

fn lr_find_job(
    context: &JobContext,
    config: TrainConfig,
    sweep: LrSweep,
    status: &Mutex<LrFindStatus>,
    stop: &AtomicBool,
) {
    let out = context.paths.lr_find();
    let mut trainer = match Trainer::prepare(config, &context.data, &out, context.device) {
        Ok(trainer) => trainer,
        Err(error) => return set_lr_status(status, RunState::Failed, &error.to_string()),
    };
    set_lr_status(status, RunState::Training, "sweeping");
    let config = LrFindConfig {
        start_lr: sweep.start_lr,
        end_lr: sweep.end_lr,
        n_steps: sweep.n_steps,
        ..LrFindConfig::default()
    };
    let mut on_point = |lr, loss| {
        status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .points
            .push((lr, loss))
    };
    match find_lr(&mut trainer, &config, &out, &mut on_point, stop) {
        Ok(result) => {
            let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
            status.suggested_lr = Some(result.suggested_lr);
            status.state = RunState::Finished;
            status.message = format!("suggested learning rate {:.1e}", result.suggested_lr);
        }
        Err(error) => set_lr_status(status, RunState::Failed, &error.to_string()),
    }
}

fn set_lr_status(status: &Mutex<LrFindStatus>, state: RunState, message: &str) {
    let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
    status.state = state;
    status.message = message.to_string();
    if state == RunState::Preparing {
        status.suggested_lr = None;
        status.points.clear();
    }
}

fn failed(message: String) -> TrainEvent {
    TrainEvent::State {
        state: RunState::Failed,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_gets_each_event_once() {
        let feed = Feed::new();
        feed.begin("run-0001", Some(JobKind::Train), Vec::new());
        let state = |message: &str| TrainEvent::State {
            state: RunState::Training,
            message: message.into(),
        };
        feed.push(state("a"));
        let (history, mut live) = feed.subscribe();
        feed.push(state("b"));
        assert_eq!(history.events, vec![state("a")]);
        assert_eq!(live.try_recv().unwrap(), state("b"));
        assert!(live.try_recv().is_err());
        assert_eq!(feed.status("run-0001").state, RunState::Training);
    }
}
