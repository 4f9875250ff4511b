//! What the admin pages share: the token, and (in the browser) the form
//! that asks for it.

#[cfg(target_arch = "wasm32")]
mod gate;
pub mod token;

#[cfg(target_arch = "wasm32")]
pub use gate::{provide_admin, use_admin, Admin, TokenGate};
