//! The web app end to end in headless Chromium, driven over WebDriver
//! (chromedriver) against a real `flukeid serve` on a loopback port with the
//! synthetic data set: an admin finds a learning rate, trains and watches
//! the charts grow, calibrates and serves the run; a visitor boxes a photo
//! and reads the candidates; the admin confirms it as a new individual and
//! the next photo of that whale finds it; the map shows the gallery.
//!
//! Needs what `scripts/test.sh` installs: Debian's `chromium` and
//! `chromium-driver`, the converted Lite0 weights, and the app built into
//! `static/` by `scripts/build-frontend.sh`. Screenshots of every stage go
//! to `browser-screenshots/` under the test output folder
//! (`$CARGO_TARGET_TMPDIR`).

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use flukeid::crop::crop_photo;
use flukeid::model::{default_weights_path, Backbone};
use flukeid::server::{AppHandle, ServerConfig};
use flukeid_shared::api::{ModelStatus, StatusResponse, UploadRecord};
use flukeid_shared::crop::BoundingBox;
use hyper_util::client::legacy::connect::HttpConnector;
use image::RgbImage;
use serde_json::{json, Value};

mod common;
use common::{prepare_data, second_shot, DataSetup};

const TOKEN: &str = "browser-secret";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Desktop and phone window sizes, in CSS pixels.
const DESKTOP: (u32, u32) = (1280, 1000);
const PHONE: (u32, u32) = (390, 844);

/// Right-arrow presses that move the keyboard-drawn box: 15 % of the
/// photo, enough for its crop to differ clearly from the unmoved box's.
const N_KEY_PRESSES: usize = 15;

/// Longest wait for anything but training.
const UI_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for a training run or a sweep on a busy two-core machine.
const JOB_WAIT: Duration = Duration::from_secs(600);

/// Most the browser's crop may differ from the server's crop of the same
/// box, as a mean absolute difference over all channels (0-255). The two
/// resample with different filters (canvas smoothing against a triangle
/// filter), and the box drawn with the pointer is off by up to a CSS pixel.
const SAME_CROP_MAE: f64 = 6.0;

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).is_file(),
                "{binary} is missing; scripts/test.sh installs Debian's chromium and chromium-driver"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A headless Chromium session on the app, with a folder for screenshots.
struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
    n_shots: usize,
    /// Where the browser saves downloads.
    downloads: tempfile::TempDir,
    /// The browser's profile, removed at the end.
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &Driver, base: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let downloads = tempfile::tempdir().unwrap();
        let prefs = json!({
            "download.default_directory": downloads.path(),
            "download.prompt_for_download": false,
        });
        let options = json!({ "binary": CHROMIUM, "args": args, "prefs": prefs });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("chromedriver opens a session");
        client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            base: base.to_string(),
            shots,
            n_shots: 0,
            downloads,
            _profile: profile,
        }
    }

    /// Opens a page of the app by its fragment (`#/map`).
    async fn open_page(&self, fragment: &str) {
        let url = format!("{}/{fragment}", self.base);
        self.client.goto(&url).await.unwrap();
        // Going from one fragment to another does not reload the page.
        self.client.refresh().await.unwrap();
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` until it returns something other than null, false or
    /// an empty string, and returns that.
    async fn until(&self, what: &str, limit: Duration, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script, vec![]).await;
            let done = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(text) => !text.is_empty(),
                _ => true,
            };
            if done {
                return value;
            }
            if started.elapsed() > limit {
                self.screenshot("timed-out").await;
                let text = self.js("return document.body.innerText", vec![]).await;
                panic!("timed out waiting for {what}; the page reads:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the text of the first element matching `css` to contain
    /// `needle`, and returns the whole text.
    async fn until_text(&self, css: &str, needle: &str, limit: Duration) -> String {
        let script = format!(
            "const e = document.querySelector({css:?}); \
             return e && e.textContent.includes({needle:?}) ? e.textContent : null;"
        );
        let what = format!("{css:?} to read {needle:?}");
        self.until(&what, limit, &script)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(UI_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?}: {e}"))
    }

    async fn find_xpath(&self, xpath: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(UI_WAIT)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("no element {xpath:?}: {e}"))
    }

    /// Clears an input and types `text` into it, as a person would.
    async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Clicks the button whose text is `label`, once it is enabled.
    async fn click_button(&self, label: &str) {
        let xpath = format!("//button[normalize-space()={label:?} and not(@disabled)]");
        let button = self
            .client
            .wait()
            .at_most(JOB_WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no enabled button {label:?}: {e}"));
        button.click().await.unwrap();
    }

    /// Clicks the button `label` inside the element matching `xpath_scope`
    /// and returns the text of the file it makes the browser save as
    /// `file_name`.
    async fn download(&self, xpath_scope: &str, label: &str, file_name: &str) -> String {
        let path = self.downloads.path().join(file_name);
        let _ = std::fs::remove_file(&path);
        let xpath = format!("{xpath_scope}//button[normalize-space()={label:?}]");
        self.find_xpath(&xpath).await.click().await.unwrap();
        let started = Instant::now();
        // Chromium writes to `NAME.crdownload` and renames it when done.
        while !path.is_file() {
            if started.elapsed() > UI_WAIT {
                self.screenshot("timed-out").await;
                panic!("{file_name} was not downloaded");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::read_to_string(&path).unwrap()
    }

    /// Saves a screenshot named `NN-name.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let path = self.shots.join(format!("{:02}-{name}.png", self.n_shots));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot {}", path.display());
    }

    async fn shot(&mut self, name: &str) {
        self.n_shots += 1;
        self.screenshot(name).await;
    }

    /// The number of the first step shown by the dashboard's progress line.
    async fn dashboard_step(&self) -> Option<u64> {
        let text = self
            .js(
                "const p = document.querySelector('.live progress + p'); \
                 return p ? p.textContent : '';",
                vec![],
            )
            .await;
        let text = text.as_str().unwrap_or_default();
        text.strip_prefix("Step ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Chooses `photos` in the identification page's file picker.
    async fn choose_photos(&self, photos: &[PathBuf]) {
        let names: Vec<String> = photos.iter().map(|p| p.display().to_string()).collect();
        let input = self.find("#pick-photos").await;
        input.send_keys(&names.join("\n")).await.unwrap();
    }

    /// Drags a box over the photo canvas from one image point to another;
    /// returns the box in image pixels that the pointer positions stand for.
    async fn drag_box(&self, image_size: (u32, u32), bbox: [f64; 4]) -> BoundingBox {
        let rect = self
            .js(
                "const c = document.querySelector('figure.photo canvas'); \
                 c.scrollIntoView({block: 'center'}); \
                 const r = c.getBoundingClientRect(); \
                 return [r.left, r.top, r.width, r.height];",
                vec![],
            )
            .await;
        let rect: Vec<f64> = serde_json::from_value(rect).unwrap();
        let (sx, sy) = (
            rect[2] / f64::from(image_size.0),
            rect[3] / f64::from(image_size.1),
        );
        let screen = |x: f64, y: f64| ((rect[0] + x * sx).round(), (rect[1] + y * sy).round());
        let (from, to) = (screen(bbox[0], bbox[1]), screen(bbox[2], bbox[3]));
        let halfway = ((from.0 + to.0) / 2.0, (from.1 + to.1) / 2.0);
        let mouse = MouseActions::new("mouse".into())
            .then(move_to(from))
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(move_to(halfway))
            .then(move_to(to))
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client.perform_actions(mouse).await.unwrap();
        let image = |(x, y): (f64, f64)| ((x - rect[0]) / sx, (y - rect[1]) / sy);
        let ((x0, y0), (x1, y1)) = (image(from), image(to));
        BoundingBox::new(x0, y0, x1, y1)
    }

    /// Sends the photos waiting on the identification page and waits for
    /// `n` answers; returns the labels of each answer's candidates.
    async fn identify(&self, n: usize) -> Vec<Vec<String>> {
        let label = if n == 1 {
            "Identify".to_string()
        } else {
            format!("Identify {n} photos")
        };
        self.click_button(&label).await;
        let script = format!(
            "const answers = document.querySelectorAll('.result .candidates'); \
             if (answers.length < {n}) return null; \
             return [...answers].map(list => [...list.querySelectorAll('.candidate .label')] \
                 .map(l => l.textContent));"
        );
        let answers = self.until("the candidates", UI_WAIT, &script).await;
        serde_json::from_value(answers).unwrap()
    }

    /// The upload number shown under the first answer on the page.
    async fn first_upload_id(&self) -> i64 {
        let text = self
            .js(
                "return document.querySelector('.result .small').textContent;",
                vec![],
            )
            .await;
        let text = text.as_str().unwrap();
        text.strip_prefix("Upload ")
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no upload number in {text:?}"))
    }

    /// Boxes the shown photo with the keyboard alone: the centred box,
    /// then `n_right` presses of the right arrow. Returns the centred box
    /// and the box the presses moved it to, in image pixels, as the box
    /// editor computes them.
    async fn box_by_keyboard(
        &self,
        image_size: (u32, u32),
        n_right: usize,
    ) -> (BoundingBox, BoundingBox) {
        let start = self
            .find_xpath("//figure[contains(@class, 'photo')]//button[normalize-space()='Start from a centred box']")
            .await;
        start.send_keys(&Key::Enter.to_string()).await.unwrap();
        self.until_text("figure.photo figcaption", "Yellow: your box", UI_WAIT)
            .await;
        let canvas = self.find("figure.photo canvas").await;
        let presses = Key::Right.to_string().repeat(n_right);
        canvas.send_keys(&presses).await.unwrap();

        let (w, h) = (f64::from(image_size.0), f64::from(image_size.1));
        let centred = BoundingBox::new(w * 0.2, h * 0.3, w * 0.8, h * 0.7);
        // A press moves the box by a hundredth of the photo's longer side.
        let shift = n_right as f64 * (w.max(h) / 100.0).max(1.0);
        let shift = shift.min(w * 0.2);
        let moved = BoundingBox::new(w * 0.2 + shift, h * 0.3, w * 0.8 + shift, h * 0.7);
        (centred, moved)
    }
}

fn move_to((x, y): (f64, f64)) -> PointerAction {
    PointerAction::MoveTo {
        duration: Some(Duration::from_millis(50)),
        x,
        y,
    }
}

/// The server, on a loopback port, serving the built app.
struct Server {
    addr: SocketAddr,
    handle: AppHandle,
    data_dir: PathBuf,
    http: reqwest::Client,
}

impl Server {
    async fn start(data_dir: &Path) -> Self {
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

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
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

    async fn get_bytes(&self, path: &str) -> Vec<u8> {
        let url = format!("http://{}{path}", self.addr);
        let response = self.http.get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.bytes().await.unwrap().to_vec()
    }

    fn photo(&self, split: &str, name: &str) -> PathBuf {
        self.data_dir.join(split).join(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_web_app_trains_identifies_confirms_and_maps() {
    let weights = default_weights_path(Backbone::EfficientnetLite0);
    assert!(
        weights.is_file(),
        "{} is missing; run scripts/setup.sh",
        weights.display()
    );
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

/// Fills the run form for a quick run: EfficientNet-Lite0 from ImageNet on
/// 96x32 crops, two epochs of at most 14 steps of four triplets.
async fn fill_run_form(browser: &Browser) {
    browser
        .find("#backbone")
        .await
        .select_by_value("efficientnet_lite0")
        .await
        .unwrap();
    for (id, value) in [
        ("#lr", "1e-3"),
        ("#n-epochs", "2"),
        ("#batch-size", "4"),
        ("#max-steps", "14"),
        ("#crop-width", "96"),
        ("#crop-height", "32"),
    ] {
        browser.type_into(id, value).await;
    }
}

/// A short learning-rate sweep from the dashboard draws its curve and
/// offers the suggested rate.
async fn find_learning_rate(browser: &mut Browser) {
    fill_run_form(browser).await;
    for (id, value) in [("#lr-start", "1e-5"), ("#lr-end", "1"), ("#lr-steps", "6")] {
        browser.type_into(id, value).await;
    }
    browser.click_button("Run the sweep").await;
    let status = browser
        .until(
            "the learning-rate sweep",
            JOB_WAIT,
            "const s = document.querySelector('.lr-finder p[role=status]').textContent; \
             return /^(Finished|Failed)/.test(s) ? s : null;",
        )
        .await;
    let status = status.as_str().unwrap();
    assert!(status.starts_with("Finished"), "{status}");
    let curve = chart_label(browser, ".lr-finder canvas.chart").await;
    assert!(curve.contains("latest: smoothed loss"), "{curve}");
    browser
        .find_xpath("//button[normalize-space()='Use the suggested rate' and not(@disabled)]")
        .await;
    browser.shot("learning-rate-sweep").await;
}

/// The aria-label of a chart: its title and latest values.
async fn chart_label(browser: &Browser, css: &str) -> String {
    browser
        .find(css)
        .await
        .attr("aria-label")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// What the dashboard's loss chart shows: its label, its number of points
/// and its pixels.
async fn loss_chart(browser: &Browser) -> (String, u64, String) {
    let value = browser
        .js(
            "const c = document.querySelector('.live canvas.chart'); \
             return [c.getAttribute('aria-label'), Number(c.dataset.points), c.toDataURL()];",
            vec![],
        )
        .await;
    serde_json::from_value(value).unwrap()
}

async fn until_step(browser: &Browser, at_least: u64) -> u64 {
    let started = Instant::now();
    loop {
        if let Some(step) = browser.dashboard_step().await.filter(|s| *s >= at_least) {
            return step;
        }
        if started.elapsed() > JOB_WAIT {
            browser.screenshot("timed-out").await;
            panic!("training did not reach step {at_least}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts training from the form and watches the charts grow from the
/// websocket; a reload mid-run draws the whole history again.
async fn train_and_watch(browser: &mut Browser) {
    browser.click_button("Start training").await;
    let first = until_step(browser, 2).await;
    let (label_before, points_before, pixels_before) = loss_chart(browser).await;
    assert!(points_before >= 2, "{points_before} points at step {first}");
    let later = until_step(browser, first + 2).await;
    let (label_after, points_after, pixels_after) = loss_chart(browser).await;
    assert!(points_after > points_before, "the loss line grows");
    assert_ne!(label_before, label_after);
    assert_ne!(pixels_before, pixels_after, "the chart is redrawn");
    browser.shot("training-live").await;

    browser.open_page("#/training").await;
    browser
        .until_text(".live .connection", "Live", UI_WAIT)
        .await;
    until_step(browser, later).await;
    let (_, points_again, _) = loss_chart(browser).await;
    assert!(
        points_again >= later,
        "a reload at step {later} draws {points_again} points"
    );

    let state = browser
        .until(
            "the end of the run",
            JOB_WAIT,
            "const s = document.querySelector('.live .run-state').textContent; \
             return /^(Finished|Failed|Stopped)/.test(s) ? s : null;",
        )
        .await;
    let state = state.as_str().unwrap();
    assert!(state.starts_with("Finished"), "{state}");
    let map5 = chart_label(
        browser,
        ".live canvas.chart[aria-label^='Validation MAP@5']",
    )
    .await;
    assert!(map5.contains("latest: MAP@5"), "{map5}");
    browser.shot("training-finished").await;
}

/// Sweeps `dcut` for the finished run and makes it the serving run.
async fn calibrate_and_serve(browser: &mut Browser, server: &Server) {
    browser
        .find_xpath("//section[contains(@class, 'runs')]//button[normalize-space()='Refresh']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find(".runs details summary")
        .await
        .click()
        .await
        .unwrap();
    for (id, value) in [("#dcut-lo", "1"), ("#dcut-hi", "60"), ("#dcut-n", "15")] {
        browser.type_into(id, value).await;
    }
    browser.click_button("Sweep dcut").await;
    browser
        .until(
            "the dcut sweep chart",
            JOB_WAIT,
            "const c = document.querySelector(\".runs canvas.chart[aria-label^='Validation of']\"); \
             return c ? c.getAttribute('aria-label') : null;",
        )
        .await;
    browser.click_button("Make serving").await;
    browser
        .until_text(".runs tbody tr", "serving", UI_WAIT)
        .await;
    let started = Instant::now();
    loop {
        let status: StatusResponse = server.get_json("/api/status").await;
        match status.model {
            ModelStatus::Ready { .. } => break,
            ModelStatus::Failed { message, .. } => panic!("the run failed to load: {message}"),
            _ => assert!(started.elapsed() < JOB_WAIT, "the run did not load"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.shot("serving").await;
}

/// The runs list saves the serving run's `submission.csv`: the Kaggle
/// header, then one row of up to five distinct labels for every test
/// photo.
async fn download_the_submission(browser: &mut Browser, server: &Server) {
    let status: StatusResponse = server.get_json("/api/status").await;
    let run_id = status.serving.expect("a run serves").run_id;
    let row = format!("//section[contains(@class, 'runs')]//tr[th[contains(., {run_id:?})]]");
    let file_name = format!("{run_id}-submission.csv");
    let csv = browser.download(&row, "submission.csv", &file_name).await;
    browser
        .until_text(".runs p.news", &format!("Saved {file_name}"), UI_WAIT)
        .await;

    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("Image,Id"));
    let mut images: Vec<&str> = Vec::new();
    for line in lines {
        let (image, labels) = line.split_once(',').expect("two columns");
        // Up to five: the sixteen neighbours may hold fewer individuals.
        let labels: Vec<&str> = labels.split(' ').collect();
        let distinct: HashSet<&str> = labels.iter().copied().collect();
        assert!((1..=5).contains(&labels.len()), "{line}");
        assert_eq!(distinct.len(), labels.len(), "{line}");
        images.push(image);
    }
    images.sort_unstable();
    let mut tests: Vec<String> = std::fs::read_dir(server.data_dir.join("test"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    tests.sort_unstable();
    assert_eq!(images, tests, "one row per test photo");
}

/// Boxes a photo of the whale the gallery lacks, checks that the crop the
/// browser sent is the server's crop of the same box, and returns the
/// photo and its upload number.
async fn identify_boxed_photo(
    browser: &mut Browser,
    server: &Server,
    data: &DataSetup,
) -> (PathBuf, i64) {
    browser.open_page("#/").await;
    browser
        .until_text("p.status", "Comparing with", UI_WAIT)
        .await;
    let name = &data.newcomer_photos[0];
    let photo = server.photo("train", name);
    let drawn = choose_and_box(browser, &photo, data.boxes[name]).await;
    browser.shot("boxed-photo").await;

    let answers = browser.identify(1).await;
    assert!((1..=5).contains(&answers[0].len()), "{:?}", answers[0]);
    browser
        .until(
            "the candidates' photos",
            UI_WAIT,
            "const imgs = [...document.querySelectorAll('.result .thumbs img')]; \
             return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);",
        )
        .await;
    browser.shot("candidates").await;

    let upload_id = browser.first_upload_id().await;
    let width = image::image_dimensions(&photo).unwrap().0;
    let wrong = shifted_a_third(drawn, width);
    check_browser_crop(server, upload_id, &photo, drawn, wrong).await;
    (photo, upload_id)
}

/// Chooses one photo and drags its box; returns the box drawn.
async fn choose_and_box(browser: &Browser, photo: &Path, bbox: [f64; 4]) -> BoundingBox {
    browser.choose_photos(&[photo.to_path_buf()]).await;
    browser
        .until(
            "the photo on its canvas",
            UI_WAIT,
            "const c = document.querySelector('figure.photo canvas'); \
             return c && c.width > 300 && !c.closest('.editor').hidden;",
        )
        .await;
    let size = image::image_dimensions(photo).unwrap();
    let drawn = browser.drag_box(size, bbox).await;
    browser
        .until_text("figure.photo figcaption", "Yellow: your box", UI_WAIT)
        .await;
    drawn
}

/// The crop stored for `upload_id` (made by the browser) against the
/// server's own crop of `photo` for the box drawn, and for a wrong box,
/// which must differ far more.
async fn check_browser_crop(
    server: &Server,
    upload_id: i64,
    photo: &Path,
    drawn: BoundingBox,
    wrong: BoundingBox,
) {
    let uploads: Vec<UploadRecord> = server.get_json("/api/admin/uploads?status=pending").await;
    let upload = uploads
        .iter()
        .find(|u| u.id == upload_id)
        .expect("the upload waits for review");
    assert!(upload.is_crop, "the browser sends its crop");
    let sent = image::load_from_memory(&server.get_bytes(&upload.image).await)
        .unwrap()
        .into_rgb8();

    let status: StatusResponse = server.get_json("/api/status").await;
    let geometry = status.serving.expect("a run serves").geometry;
    assert_eq!(sent.dimensions(), (geometry.width, geometry.height));
    let original = image::open(photo).unwrap().into_rgb8();
    let server_crop = |bbox: BoundingBox| crop_photo(&original, Some(bbox), &geometry).unwrap();
    let same = mean_abs_diff(&sent, &server_crop(drawn).image);
    let other = mean_abs_diff(&sent, &server_crop(wrong).image);
    eprintln!("browser crop against the server's: {same:.1} (a wrong box: {other:.1})");
    assert!(
        same < SAME_CROP_MAE && other > 2.0 * same,
        "the browser's crop differs from the server's by {same:.1} (a wrong box: {other:.1})"
    );
}

/// `bbox` moved a third of its width sideways, inside a photo `width` wide.
fn shifted_a_third(bbox: BoundingBox, width: u32) -> BoundingBox {
    let third = (bbox.x1 - bbox.x0) / 3.0;
    let room_right = f64::from(width) - bbox.x1;
    let shift = if room_right >= third {
        third
    } else {
        -third.min(bbox.x0)
    };
    BoundingBox::new(bbox.x0 + shift, bbox.y0, bbox.x1 + shift, bbox.y1)
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

/// Confirms the upload as a new individual on the review page; returns the
/// individual's id.
async fn confirm_as_new(browser: &mut Browser, upload_id: i64) -> String {
    browser.open_page("#/review").await;
    let xpath = format!(
        "//article[.//h2[normalize-space()='Upload {upload_id}']]\
         //button[normalize-space()='New individual']"
    );
    let button = browser.find_xpath(&xpath).await;
    browser
        .until(
            "the upload's crop beside its candidates' photos",
            UI_WAIT,
            "const imgs = [...document.querySelectorAll('.review article img')]; \
             return imgs.length > 1 && imgs.every(i => i.complete && i.naturalWidth > 0);",
        )
        .await;
    browser.shot("review-queue").await;
    button.click().await.unwrap();
    let news = browser
        .until_text(".review p.news", "joins the gallery now", UI_WAIT)
        .await;
    browser.shot("confirmed").await;
    let prefix = format!("Upload {upload_id} is ");
    news.strip_prefix(&prefix)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no individual in {news:?}"))
        .to_string()
}

/// The catalogue lists the new individual with its sighting, its page
/// shows the sighting, and the export holds it.
async fn browse_the_catalogue(browser: &mut Browser, newcomer: &str, upload_id: i64) {
    browser.open_page("#/catalog").await;
    browser.type_into("#find-individual", newcomer).await;
    let script = format!(
        "const row = [...document.querySelectorAll('.catalog tbody tr')] \
             .find(r => r.querySelector('th').textContent === {newcomer:?}); \
         return row ? [...row.children].map(c => c.textContent) : null;"
    );
    let cells = browser.until("the newcomer's row", UI_WAIT, &script).await;
    let cells: Vec<String> = serde_json::from_value(cells).unwrap();
    assert_eq!(cells[..3], [newcomer, "1", "1"], "its photos and sightings");
    browser.shot("catalogue").await;

    let csv = browser
        .download(
            "//section[contains(@class, 'catalog')]",
            "Export sightings (CSV)",
            "sightings.csv",
        )
        .await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("sighting_id,individual,upload_id,image,sighted_at")
    );
    let sighting = format!(",{newcomer},{upload_id},");
    assert!(lines.any(|l| l.contains(&sighting)), "{csv}");

    browser
        .find_xpath(&format!("//a[normalize-space()={newcomer:?}]"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .until_text(".individual", "1 sightings", UI_WAIT)
        .await;
    browser.shot("individual").await;
}

/// A second shot of the confirmed whale comes back with it as the first
/// individual proposed (see `second_shot` for why it is made from the
/// first photo).
async fn find_the_newcomer_again(
    browser: &mut Browser,
    server: &Server,
    data: &DataSetup,
    first_photo: &Path,
    newcomer: &str,
) {
    let name = first_photo.file_name().unwrap().to_str().unwrap();
    let (bytes, bbox) = second_shot(&std::fs::read(first_photo).unwrap(), data.boxes[name]);
    let second = server.data_dir.join("second-shot.jpg");
    std::fs::write(&second, bytes).unwrap();
    browser.open_page("#/").await;
    browser
        .until_text("p.status", "Comparing with", UI_WAIT)
        .await;
    choose_and_box(browser, &second, bbox).await;
    let answers = browser.identify(1).await;
    let first_individual = answers[0].iter().find(|label| *label != "new_whale");
    assert_eq!(
        first_individual.map(String::as_str),
        Some(newcomer),
        "{:?}",
        answers[0]
    );
    browser.shot("newcomer-found").await;
}

/// Three photos chosen at once each get their answer: the first boxed
/// with the keyboard alone, the others left unboxed (the whole photo).
async fn identify_several_at_once(browser: &mut Browser, server: &Server, data: &DataSetup) {
    browser.open_page("#/").await;
    browser
        .until_text("p.status", "Comparing with", UI_WAIT)
        .await;
    let photos: Vec<PathBuf> = data.known_tests[..3]
        .iter()
        .map(|(name, _)| server.photo("test", name))
        .collect();
    browser.choose_photos(&photos).await;
    browser
        .until(
            "three photo tabs",
            UI_WAIT,
            "return document.querySelectorAll('.tabs .tab').length === 3;",
        )
        .await;
    browser.find(".tabs .tab").await.click().await.unwrap();
    let size = image::image_dimensions(&photos[0]).unwrap();
    let (centred, keyed) = browser.box_by_keyboard(size, N_KEY_PRESSES).await;
    browser.shot("boxed-by-keyboard").await;

    let answers = browser.identify(3).await;
    assert!(
        answers.iter().all(|labels| !labels.is_empty()),
        "{answers:?}"
    );
    browser.shot("three-at-once").await;
    let upload_id = browser.first_upload_id().await;
    check_browser_crop(server, upload_id, &photos[0], keyed, centred).await;
}

/// The map shows every gallery photo; the pointer over a point shows its
/// photo, a click opens its individual.
async fn explore_the_map(browser: &mut Browser, server: &Server) {
    browser.open_page("#/map").await;
    let heading = browser
        .until_text(".map .page-head .small", "photos embedded by", UI_WAIT)
        .await;
    let map: flukeid_shared::api::MapResponse = server.get_json("/api/map").await;
    let shown: usize = heading.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(shown, map.points.len());
    browser
        .until_text(".map", "The cross is your last photo", UI_WAIT)
        .await;

    // Coloured pixels of the canvas, where the points are drawn.
    let spots = browser
        .js(
            "const c = document.querySelector('.map canvas'); \
             c.scrollIntoView({block: 'center'}); \
             const r = c.getBoundingClientRect(); \
             const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
             const spots = []; \
             for (let y = 2; y < c.height - 2; y += 3) for (let x = 2; x < c.width - 2; x += 3) { \
                 const i = 4 * (y * c.width + x); \
                 const hi = Math.max(px[i], px[i + 1], px[i + 2]); \
                 const lo = Math.min(px[i], px[i + 1], px[i + 2]); \
                 if (hi - lo > 60) spots.push([r.left + x * r.width / c.width, \
                                               r.top + y * r.height / c.height]); \
             } \
             return spots.filter((_, k) => k % Math.max(1, Math.floor(spots.length / 40)) === 0);",
            vec![],
        )
        .await;
    let spots: Vec<(f64, f64)> = serde_json::from_value(spots).unwrap();
    assert!(!spots.is_empty(), "the map draws coloured points");
    let mut hovered = None;
    for spot in spots {
        let at = (spot.0.round(), spot.1.round());
        let mouse = MouseActions::new("mouse".into()).then(move_to(at));
        browser.client.perform_actions(mouse).await.unwrap();
        let label = browser
            .js(
                "const h = document.querySelector('.map-hover span'); \
                 return h ? h.textContent : null;",
                vec![],
            )
            .await;
        if let Value::String(label) = label {
            hovered = Some((at, label));
            break;
        }
    }
    let (at, label) = hovered.expect("the pointer over a point shows its photo");
    browser.shot("map-hover").await;
    let click = MouseActions::new("mouse".into())
        .then(move_to(at))
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    browser.client.perform_actions(click).await.unwrap();
    browser
        .until_text(".map aside.chosen h2", &label, UI_WAIT)
        .await;
    browser.shot("map-individual").await;

    // The same without a pointer: the list of individuals.
    let other = map
        .points
        .iter()
        .map(|p| &p.label)
        .find(|l| **l != label)
        .expect("the gallery has more than one individual");
    browser
        .find("#map-individual")
        .await
        .select_by_value(other)
        .await
        .unwrap();
    browser
        .until_text(".map aside.chosen h2", other, UI_WAIT)
        .await;
}

/// On a phone-sized screen no page is wider than the screen.
async fn fits_a_phone(browser: &mut Browser) {
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .unwrap();
    for (fragment, name) in [
        ("#/", "phone-identify"),
        ("#/training", "phone-training"),
        ("#/map", "phone-map"),
    ] {
        browser.open_page(fragment).await;
        browser.find("main h1").await;
        let widths = browser
            .js(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await;
        let [scroll, inner]: [u64; 2] = serde_json::from_value(widths).unwrap();
        assert!(
            scroll <= inner,
            "{fragment} is {scroll} px wide on a {inner} px screen"
        );
        browser.shot(name).await;
    }
    browser
        .client
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .unwrap();
}
