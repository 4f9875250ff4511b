//! The web app end to end in headless Chromium, driven over WebDriver
//! (chromedriver) against a real `flukeid serve` on a loopback port with the
//! synthetic data set: an admin finds a learning rate, trains and watches
//! the charts grow, calibrates and serves the run and saves its submission;
//! a visitor boxes a photo and reads the candidates; the admin confirms it
//! as a new individual, finds it in the catalogue, and the next photo of
//! that whale finds it; the map shows the gallery.
//!
//! Needs what `scripts/test.sh` installs: Debian's `chromium` and
//! `chromium-driver`, the converted Lite0 weights, and the app built into
//! `static/` by `scripts/build-frontend.sh`. Screenshots of every stage go
//! to `browser-screenshots/` under the test output folder
//! (`$CARGO_TARGET_TMPDIR`).
//!
//! `webdriver` drives the browser; the other modules hold the stages, by
//! page.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flukeid::server::{AppHandle, ServerConfig};

#[path = "../common/mod.rs"]
mod common;
mod dashboard;
mod identify;
mod map;
mod review;
mod webdriver;

use common::{prepare_data, require_lite0_weights};
use dashboard::{
    calibrate_and_serve, download_the_submission, find_learning_rate, train_and_watch,
};
use identify::{find_the_newcomer_again, identify_boxed_photo, identify_several_at_once};
use map::{explore_the_map, fits_a_phone};
use review::{browse_the_catalogue, confirm_as_new};
use webdriver::{Browser, Driver};

pub const TOKEN: &str = "browser-secret";

/// Longest wait for anything but training.
pub const UI_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for a training run or a sweep on a busy two-core machine.
pub const JOB_WAIT: Duration = Duration::from_secs(600);

/// The server, on a loopback port, serving the built app.
pub struct Server {
    pub addr: SocketAddr,
    pub handle: AppHandle,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(data_dir: &Path) -> Self {
        let static_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../static");
        assert!(
            static_dir.join("index.html").is_file(),
            "{} has no built app; run scripts/build-frontend.sh (scripts/test.sh does)",
            static_dir.display()
        );
        let config = ServerConfig {
            admin_token: Some(TOKEN.into()),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            static_dir: Some(static_dir),
            ..ServerConfig::new(data_dir)
        };
        let (addr, handle) = flukeid::server::spawn(config)
            .await
            .expect("the server starts");
        Self {
            addr,
            handle,
            data_dir: data_dir.to_path_buf(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn get_bytes(&self, path: &str) -> Vec<u8> {
        let url = format!("http://{}{path}", self.addr);
        let response = self.http.get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.bytes().await.unwrap().to_vec()
    }

    pub fn photo(&self, split: &str, name: &str) -> PathBuf {
        self.data_dir.join(split).join(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_web_app_trains_identifies_confirms_and_maps() {
    require_lite0_weights();
    let dir = tempfile::tempdir().unwrap();
    let data = prepare_data(dir.path());
    let server = Server::start(dir.path()).await;
    let driver = Driver::start();
    let mut browser = Browser::open(&driver, &format!("http://{}", server.addr)).await;

    nothing_serves_yet(&mut browser).await;
    wrong_then_right_token(&mut browser).await;
    find_learning_rate(&mut browser).await;
    train_and_watch(&mut browser).await;
    calibrate_and_serve(&mut browser, &server).await;
    download_the_submission(&mut browser, &server).await;
    let (newcomer_photo, upload_id) = identify_boxed_photo(&mut browser, &server, &data).await;
    let newcomer = confirm_as_new(&mut browser, upload_id).await;
    browse_the_catalogue(&mut browser, &newcomer, upload_id).await;
    find_the_newcomer_again(&mut browser, &server, &data, &newcomer_photo, &newcomer).await;
    identify_several_at_once(&mut browser, &server, &data).await;
    explore_the_map(&mut browser, &server).await;
    fits_a_phone(&mut browser).await;

    browser.client.close().await.unwrap();
    drop(driver);
    server.handle.finish().await;
}

/// Before any run serves, the identify page says so, and a file that is
/// not an image gets a sentence, not a crash.
async fn nothing_serves_yet(browser: &mut Browser) {
    browser.open_page("#/").await;
    browser
        .until_text("p.status", "No whale model is serving yet", UI_WAIT)
        .await;
    let not_a_photo = browser.shots.join("field-notes.jpg");
    std::fs::write(&not_a_photo, "seen off the point at dawn").unwrap();
    browser.choose_photos(&[not_a_photo]).await;
    browser
        .until_text(
            ".identify p.error",
            "field-notes.jpg is not a photo this browser can read",
            UI_WAIT,
        )
        .await;
    browser.shot("nothing-serves-yet").await;
}

/// A wrong admin token is refused by the training feed and asked for
/// again; the right one opens the live dashboard.
async fn wrong_then_right_token(browser: &mut Browser) {
    browser.open_page("#/training").await;
    browser.type_into("#admin-token", "not-the-token").await;
    browser.click_button("Continue").await;
    browser
        .until_text(".token-form [role=alert]", "enter it again", UI_WAIT)
        .await;
    browser.shot("wrong-token").await;
    browser.type_into("#admin-token", TOKEN).await;
    browser.click_button("Continue").await;
    browser
        .until_text(".live .connection", "Live", UI_WAIT)
        .await;
}
