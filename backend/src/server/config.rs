//! What `flukeid serve` is told: where its data lives, where it listens,
//! and the limits it puts on uploads. Where the files inside the data
//! folder go is [`DataPaths`]'s business.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tch::Device;

use crate::image_io::DEFAULT_MAX_PIXELS;

/// Default cap on a request body: 20 MiB, several times a camera JPEG.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A data set in the Kaggle layout, which also receives the server's own
    /// files: `catalog.sqlite`, `uploads/`, `runs/` and `admin_token`.
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    /// The admin bearer token; when absent, the one saved in the data
    /// folder, or a new one generated at first start.
    pub admin_token: Option<String>,
    /// The built front end, served at `/`.
    pub static_dir: Option<PathBuf>,
    /// Where the serving model and training run.
    pub device: Device,
    /// Largest request body accepted.
    pub max_upload_bytes: usize,
    /// Largest photo decoded, in pixels, checked before decoding.
    pub max_pixels: u64,
}

/// Paths of the server's files inside the data folder.
#[derive(Debug, Clone)]
pub struct DataPaths {
    pub root: PathBuf,
}

impl ServerConfig {
    /// Defaults for everything but the data folder: localhost port 8080, the
    /// CPU, 20 MiB uploads and the decoder's default pixel cap.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: None,
            static_dir: None,
            device: Device::Cpu,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl DataPaths {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn catalog(&self) -> PathBuf {
        self.root.join("catalog.sqlite")
    }

    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    pub fn run(&self, run_id: &str) -> PathBuf {
        self.runs().join(run_id)
    }

    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin_token")
    }

    /// Output of the latest learning-rate sweep.
    pub fn lr_find(&self) -> PathBuf {
        self.root.join("lr-find")
    }
}
