//! Talking to the flukeid server: error messages for failed requests,
//! websockets, and (in the browser) JSON requests and downloads.

pub mod error;
#[cfg(target_arch = "wasm32")]
pub mod http;
pub mod socket;

pub use error::error_message;
