//! Starting and stopping the server: [`build_app`] opens the data set and
//! the catalogue, resolves the admin token, starts the model worker (and
//! loads the recorded serving run), and returns the router; [`serve`] binds
//! it to the configured address and runs until a signal or
//! [`AppHandle::shutdown`], then stops training cleanly.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use super::admin::{AdminToken, TokenSource};
use super::catalog::Catalog;
use super::config::{DataPaths, ServerConfig};
use super::error::ServerError;
use super::routes::router;
use super::runs::{read_history, runs_on_disk};
use super::state::{AppState, Parts};
use super::training::{JobContext, Jobs};
use super::worker::{LoadRequest, Worker};
use crate::data::DataSet;

/// A handle on a built app: its admin token, and shutting it down.
#[derive(Clone)]
pub struct AppHandle {
    state: Arc<AppState>,
}

impl AppHandle {
    /// The admin token in use (configured, saved, or generated at first
    /// start).
    pub fn admin_token(&self) -> &str {
        self.state.token.as_str()
    }

    /// Asks the server to stop gracefully; [`serve`] returns soon after.
    pub fn shutdown(&self) {
        self.state.request_shutdown();
    }

    /// Resolves once [`AppHandle::shutdown`] has been called.
    pub async fn shutdown_requested(&self) {
        self.state.shutdown_requested().await;
    }

    /// Stops the training job (it writes a checkpoint first) and the model
    /// worker, and waits for both.
    pub async fn finish(&self) {
        self.shutdown();
        let state = self.state.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            state.jobs.shut_down();
            state.worker.stop();
        });
        if let Err(error) = stopped.await {
            tracing::error!("stopping the background threads failed: {error}");
        }
    }
}

/// Opens everything the server needs and returns the router with a handle.
///
/// # Errors
///
/// [`ServerError`] when the data set, the catalogue or the admin token
/// cannot be opened.
pub async fn build_app(config: ServerConfig) -> Result<(Router, AppHandle), ServerError> {
    let state = tokio::task::spawn_blocking(move || open_state(config))
        .await
        .expect("opening the server state does not panic")?;
    let state = Arc::new(state);
    Ok((router(state.clone()), AppHandle { state }))
}

/// Serves until Ctrl-C, SIGTERM or [`AppHandle::shutdown`], calling
/// `on_ready` with the bound address and the admin token once listening.
///
/// # Errors
///
/// [`ServerError`] when the app cannot be built or the address bound.
pub async fn serve(
    config: ServerConfig,
    on_ready: impl FnOnce(SocketAddr, &str),
) -> Result<(), ServerError> {
    let addr = config.addr;
    let (app, handle) = build_app(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    tracing::info!("listening on http://{local}");
    on_ready(local, handle.admin_token());

    let signal_handle = handle.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop_signal(&signal_handle).await })
        .await;
    tracing::info!("shutting down");
    handle.finish().await;
    served.map_err(ServerError::Serve)
}

/// Builds the app, binds it to the configured address and serves it on a
/// background task until [`AppHandle::shutdown`]; for tests and benchmarks
/// that need a real server on a free loopback port.
///
/// # Errors
///
/// [`ServerError`] when the app cannot be built or the address bound.
pub async fn spawn(config: ServerConfig) -> Result<(SocketAddr, AppHandle), ServerError> {
    let addr = config.addr;
    let (app, handle) = build_app(config).await?;
    let bind = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    let stop = handle.clone();
    tokio::spawn(async move {
        let shutdown = async move { stop.shutdown_requested().await };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("the server stopped: {error}");
        }
    });
    Ok((local, handle))
}

async fn stop_signal(handle: &AppHandle) {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {error}");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate() => {}
        () = handle.shutdown_requested() => {}
    }
    handle.shutdown();
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut stream) => {
            stream.recv().await;
        }
        Err(error) => {
            tracing::warn!("cannot listen for SIGTERM: {error}");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}

fn open_state(config: ServerConfig) -> Result<AppState, ServerError> {
    let paths = DataPaths::new(&config.data_dir);
    let data = Arc::new(DataSet::open(&config.data_dir)?);
    for dir in [paths.uploads(), paths.runs()] {
        std::fs::create_dir_all(&dir)
            .map_err(|source| ServerError::CreateDir { path: dir, source })?;
    }
    let catalog = Arc::new(Catalog::open(&paths.catalog())?);
    let n_new = catalog.import_training_labels(&data.train)?;
    catalog.reconcile_runs(&runs_on_disk(&paths.runs()))?;
    tracing::debug!(n_new, "training labels in the catalogue");

    let token = admin_token(&config, &paths)?;
    let worker = Worker::start(catalog.clone(), config.device);
    let context = JobContext {
        paths: paths.clone(),
        data: data.clone(),
        catalog: catalog.clone(),
        device: config.device,
    };
    let jobs = Jobs::new(context);
    resume_feed(&jobs, &catalog, &paths)?;
    load_serving_run(&worker, &catalog, &paths, &data)?;
    Ok(AppState::new(Parts {
        config,
        data,
        catalog,
        token,
        worker,
        jobs,
    }))
}

fn admin_token(config: &ServerConfig, paths: &DataPaths) -> Result<AdminToken, ServerError> {
    let path = paths.admin_token();
    let (token, source) = AdminToken::resolve(config.admin_token.as_deref(), &path)?;
    match source {
        TokenSource::Generated => tracing::info!(
            "generated the admin token {}; it is saved in {}",
            token.as_str(),
            path.display()
        ),
        TokenSource::Saved => tracing::info!("admin token read from {}", path.display()),
        TokenSource::Configured => tracing::debug!("using the configured admin token"),
    }
    Ok(token)
}

/// Shows the latest run's history to training subscribers until a job
/// starts.
fn resume_feed(jobs: &Jobs, catalog: &Catalog, paths: &DataPaths) -> Result<(), ServerError> {
    if let Some(latest) = catalog.runs()?.last() {
        jobs.feed
            .begin(&latest.id, None, read_history(&paths.run(&latest.id)));
    }
    Ok(())
}

fn load_serving_run(
    worker: &Worker,
    catalog: &Catalog,
    paths: &DataPaths,
    data: &Arc<DataSet>,
) -> Result<(), ServerError> {
    let Some(run_id) = catalog.serving_run()? else {
        tracing::info!("no serving run yet; train one and make it the serving run");
        return Ok(());
    };
    tracing::info!(run_id, "loading the serving run");
    let run_dir = paths.run(&run_id);
    worker.load(LoadRequest {
        run_id,
        run_dir,
        data: data.clone(),
    });
    Ok(())
}
