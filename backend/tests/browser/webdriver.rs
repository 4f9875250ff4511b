//! chromedriver, a headless Chromium session on the app, and the few
//! things the stages do with it: open a page, wait for it, click, type,
//! drag, download and take screenshots.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use flukeid_shared::crop::BoundingBox;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::{JOB_WAIT, UI_WAIT};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Desktop and phone window sizes, in CSS pixels.
pub const DESKTOP: (u32, u32) = (1280, 1000);
pub const PHONE: (u32, u32) = (390, 844);

/// chromedriver on a free loopback port, stopped when dropped.
pub struct Driver {
    pub child: Child,
    pub url: String,
}

impl Driver {
    pub fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).is_file(),
                "{binary} is missing; scripts/test.sh installs Debian's \
                 chromium and chromium-driver"
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
pub struct Browser {
    pub client: Client,
    pub base: String,
    pub shots: PathBuf,
    pub n_shots: usize,
    /// Where the browser saves downloads.
    pub downloads: tempfile::TempDir,
    /// The browser's profile, removed at the end.
    pub _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn open(driver: &Driver, base: &str) -> Self {
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
    pub async fn open_page(&self, fragment: &str) {
        let url = format!("{}/{fragment}", self.base);
        self.client.goto(&url).await.unwrap();
        // Going from one fragment to another does not reload the page.
        self.client.refresh().await.unwrap();
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` until it returns something other than null, false or
    /// an empty string, and returns that.
    pub async fn until(&self, what: &str, limit: Duration, script: &str) -> Value {
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
    pub async fn until_text(&self, css: &str, needle: &str, limit: Duration) -> String {
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

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(UI_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?}: {e}"))
    }

    pub async fn find_xpath(&self, xpath: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(UI_WAIT)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("no element {xpath:?}: {e}"))
    }

    /// Clears an input and types `text` into it, as a person would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Clicks the button whose text is `label`, once it is enabled.
    pub async fn click_button(&self, label: &str) {
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
    pub async fn download(&self, xpath_scope: &str, label: &str, file_name: &str) -> String {
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
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let path = self.shots.join(format!("{:02}-{name}.png", self.n_shots));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot {}", path.display());
    }

    pub async fn shot(&mut self, name: &str) {
        self.n_shots += 1;
        self.screenshot(name).await;
    }

    /// The number of the first step shown by the dashboard's progress line.
    pub async fn dashboard_step(&self) -> Option<u64> {
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
    pub async fn choose_photos(&self, photos: &[PathBuf]) {
        let names: Vec<String> = photos.iter().map(|p| p.display().to_string()).collect();
        let input = self.find("#pick-photos").await;
        input.send_keys(&names.join("\n")).await.unwrap();
    }

    /// Drags a box over the photo canvas from one image point to another;
    /// returns the box in image pixels that the pointer positions stand for.
    pub async fn drag_box(&self, image_size: (u32, u32), bbox: [f64; 4]) -> BoundingBox {
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
    pub async fn identify(&self, n: usize) -> Vec<Vec<String>> {
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
    pub async fn first_upload_id(&self) -> i64 {
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
    pub async fn box_by_keyboard(
        &self,
        image_size: (u32, u32),
        n_right: usize,
    ) -> (BoundingBox, BoundingBox) {
        let start = self
            .find_xpath(
                "//figure[contains(@class, 'photo')]\
                 //button[normalize-space()='Start from a centred box']",
            )
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

pub fn move_to((x, y): (f64, f64)) -> PointerAction {
    PointerAction::MoveTo {
        duration: Some(Duration::from_millis(50)),
        x,
        y,
    }
}
