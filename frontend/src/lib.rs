//! The flukeid web app. For now it only checks that the shared crate's crop
//! geometry links into the front end; the Leptos app replaces this.

pub use flukeid_shared::crop::CropGeometry;
