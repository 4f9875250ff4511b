//! The flukeid web app: identify a whale from a photo, browse the map of
//! known individuals, review uploads and train models.
//!
//! Code is organised by feature (`identify`, `review`, `dashboard`, `map`);
//! each keeps its components, state and requests together. The logic of
//! every feature is plain Rust tested on the host; components and browser
//! calls compile for `wasm32` only.

pub mod admin;
pub mod api;
pub mod app;
pub mod dashboard;
pub mod format;
pub mod identify;
pub mod map;
pub mod review;
