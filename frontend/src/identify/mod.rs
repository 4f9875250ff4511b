//! Identification, the public page: choose or take photos, draw a box
//! around each fluke, see the crop the network will see, send it, and read
//! the candidates.

pub mod batch;
pub mod editor;
pub mod preview;
pub mod results;

#[cfg(target_arch = "wasm32")]
mod page;
#[cfg(target_arch = "wasm32")]
mod photo;
#[cfg(target_arch = "wasm32")]
mod upload;

#[cfg(target_arch = "wasm32")]
pub use page::{thumbnails, IdentifyPage};
