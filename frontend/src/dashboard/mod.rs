//! The training dashboard, for the admin: start and stop runs, sweep the
//! learning rate, watch a run's charts live, and choose, validate and
//! export runs.

pub mod form;
pub mod plot;
pub mod series;

#[cfg(target_arch = "wasm32")]
mod charts;
#[cfg(target_arch = "wasm32")]
mod page;
#[cfg(target_arch = "wasm32")]
mod runs;

#[cfg(target_arch = "wasm32")]
pub use page::{DashboardPage, Outcome};
