//! `flukeid serve`: the web server in front of the library. A JSON API
//! under `/api/` identifies uploaded photos with the serving run's model,
//! keeps a catalogue of individuals and sightings in SQLite, and lets an
//! admin train, validate and choose runs; the built front end is served at
//! `/`.
//!
//! The server never blocks the async runtime on libtorch: the model lives on
//! one worker thread ([`worker`]), training on a job thread ([`training`]),
//! and SQLite and decoding run on the blocking pool.

pub mod admin;
pub mod app;
pub mod catalog;
pub mod config;
pub mod error;
pub mod gallery;
pub mod identify;
pub mod images;
pub mod map;
pub mod review;
pub mod routes;
pub mod runs;
pub mod state;
pub mod status;
pub mod train_config;
pub mod training;
pub mod uploads;
pub mod worker;

#[cfg(test)]
mod testing;

pub use app::{build_app, serve, spawn, AppHandle};
pub use config::{ServerConfig, DEFAULT_MAX_UPLOAD_BYTES};
pub use error::{AppError, ServerError};
