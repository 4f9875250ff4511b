//! Review and catalogue, for the admin: the queue of uploads waiting for a
//! person's verdict, and the individuals with their photos and sightings.

pub mod queue;

#[cfg(target_arch = "wasm32")]
mod catalog;
#[cfg(target_arch = "wasm32")]
mod page;

#[cfg(target_arch = "wasm32")]
pub use catalog::{CatalogPage, IndividualPage};
#[cfg(target_arch = "wasm32")]
pub use page::ReviewPage;
