//! The training dashboard: the learning-rate sweep, a short run watched
//! live, the `dcut` sweep, making the run serve, and its submission.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use flukeid_shared::api::{ModelStatus, StatusResponse};

use crate::webdriver::Browser;
use crate::{Server, JOB_WAIT, UI_WAIT};

/// Fills the run form for a quick run: EfficientNet-Lite0 from ImageNet on
/// 96x32 crops, two epochs of at most 14 steps of four triplets.
pub async fn fill_run_form(browser: &Browser) {
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
pub async fn find_learning_rate(browser: &mut Browser) {
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
pub async fn chart_label(browser: &Browser, css: &str) -> String {
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
pub async fn loss_chart(browser: &Browser) -> (String, u64, String) {
    let value = browser
        .js(
            "const c = document.querySelector('.live canvas.chart'); \
             return [c.getAttribute('aria-label'), Number(c.dataset.points), c.toDataURL()];",
            vec![],
        )
        .await;
    serde_json::from_value(value).unwrap()
}

pub async fn until_step(browser: &Browser, at_least: u64) -> u64 {
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
pub async fn train_and_watch(browser: &mut Browser) {
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
pub async fn calibrate_and_serve(browser: &mut Browser, server: &Server) {
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
            "const c = document.querySelector( \
                 \".runs canvas.chart[aria-label^='Validation of']\"); \
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
pub async fn download_the_submission(browser: &mut Browser, server: &Server) {
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
