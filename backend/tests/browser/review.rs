//! The review queue and the catalogue: an upload confirmed as a new
//! individual, then found with its sighting and in the export.

use crate::webdriver::Browser;
use crate::UI_WAIT;

/// Confirms the upload as a new individual on the review page; returns the
/// individual's id.
pub async fn confirm_as_new(browser: &mut Browser, upload_id: i64) -> String {
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
pub async fn browse_the_catalogue(browser: &mut Browser, newcomer: &str, upload_id: i64) {
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
