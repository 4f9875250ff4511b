//! The embedding map, public: every gallery image as a point coloured by
//! its individual, zoom and pan, the photo under the pointer, and the last
//! query with lines to its candidates.

pub mod view;

#[cfg(target_arch = "wasm32")]
mod page;

#[cfg(target_arch = "wasm32")]
pub use page::MapPage;
