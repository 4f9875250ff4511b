//! Types and pure logic that the flukeid server and its browser front end
//! share: the crop geometry both sides must compute identically, and the
//! messages of the JSON API.
//!
//! Nothing here does IO; the crate compiles for native targets and for
//! `wasm32-unknown-unknown`.

pub mod api;
pub mod crop;
