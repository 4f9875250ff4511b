//! Entry point of the web app: Trunk builds this binary for the browser,
//! where it mounts the app. Built for the host it does nothing; the host
//! build exists for the tests of the library.

fn main() {
    #[cfg(target_arch = "wasm32")]
    flukeid_frontend::app::mount();
}
