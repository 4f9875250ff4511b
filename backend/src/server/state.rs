//! The state every handler shares, and the one way handlers run blocking
//! work (SQLite, decoding, file writes) off the async runtime.

use std::sync::Arc;

use flukeid_shared::api::IdentifyResponse;
use tokio::sync::{broadcast, watch};

use super::admin::AdminToken;
use super::catalog::Catalog;
use super::config::{DataPaths, ServerConfig};
use super::error::AppError;
use super::map::MapCache;
use super::training::Jobs;
use super::worker::Worker;
use crate::data::DataSet;

/// Identification results kept for slow websocket subscribers.
const IDENTIFIED_CAPACITY: usize = 256;

/// Everything the handlers share.
pub struct AppState {
    pub config: ServerConfig,
    pub paths: DataPaths,
    pub data: Arc<DataSet>,
    pub catalog: Arc<Catalog>,
    pub token: AdminToken,
    pub worker: Worker,
    pub jobs: Jobs,
    /// Every identification result, for `/api/ws/identify`.
    pub identified: broadcast::Sender<Arc<IdentifyResponse>>,
    pub map: MapCache,
    shutdown: watch::Sender<bool>,
}

/// The parts [`AppState::new`] assembles.
pub struct Parts {
    pub config: ServerConfig,
    pub data: Arc<DataSet>,
    pub catalog: Arc<Catalog>,
    pub token: AdminToken,
    pub worker: Worker,
    pub jobs: Jobs,
}

impl AppState {
    pub fn new(parts: Parts) -> Self {
        let Parts {
            config,
            data,
            catalog,
            token,
            worker,
            jobs,
        } = parts;
        Self {
            paths: DataPaths::new(&config.data_dir),
            config,
            data,
            catalog,
            token,
            worker,
            jobs,
            identified: broadcast::channel(IDENTIFIED_CAPACITY).0,
            map: MapCache::default(),
            shutdown: watch::channel(false).0,
        }
    }

    /// Asks the server to shut down gracefully.
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once shutdown has been asked for.
    pub async fn shutdown_requested(&self) {
        let mut requested = self.shutdown.subscribe();
        // An error means the sender is gone, which happens only at exit.
        let _ = requested.wait_for(|requested| *requested).await;
    }
}

/// Runs `work` on tokio's blocking pool, so SQLite, decoding and file
/// writes never stall the runtime.
///
/// # Errors
///
/// The work's own [`AppError`], or a 500 when it panicked.
pub async fn blocking<T, F>(work: F) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}
