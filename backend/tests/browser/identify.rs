//! The identify page: a photo boxed with the pointer, one boxed with the
//! keyboard, several at once; and the check that the crop the browser
//! sends is the server's crop of the same box.

use std::path::{Path, PathBuf};

use flukeid::crop::crop_photo;
use flukeid_shared::api::{StatusResponse, UploadRecord};
use flukeid_shared::crop::BoundingBox;
use image::RgbImage;

use crate::common::{second_shot, DataSetup};
use crate::webdriver::Browser;
use crate::{Server, UI_WAIT};

/// Right-arrow presses that move the keyboard-drawn box: 15 % of the
/// photo, enough for its crop to differ clearly from the unmoved box's.
pub const N_KEY_PRESSES: usize = 15;

/// Most the browser's crop may differ from the server's crop of the same
/// box, as a mean absolute difference over all channels (0-255). The two
/// resample with different filters (canvas smoothing against a triangle
/// filter), and the box drawn with the pointer is off by up to a CSS pixel.
pub const SAME_CROP_MAE: f64 = 6.0;

/// Boxes a photo of the whale the gallery lacks, checks that the crop the
/// browser sent is the server's crop of the same box, and returns the
/// photo and its upload number.
pub async fn identify_boxed_photo(
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
pub async fn choose_and_box(browser: &Browser, photo: &Path, bbox: [f64; 4]) -> BoundingBox {
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
pub async fn check_browser_crop(
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
pub fn shifted_a_third(bbox: BoundingBox, width: u32) -> BoundingBox {
    let third = (bbox.x1 - bbox.x0) / 3.0;
    let room_right = f64::from(width) - bbox.x1;
    let shift = if room_right >= third {
        third
    } else {
        -third.min(bbox.x0)
    };
    BoundingBox::new(bbox.x0 + shift, bbox.y0, bbox.x1 + shift, bbox.y1)
}

pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

/// A second shot of the confirmed whale comes back with it as the first
/// individual proposed (see `second_shot` for why it is made from the
/// first photo).
pub async fn find_the_newcomer_again(
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
pub async fn identify_several_at_once(browser: &mut Browser, server: &Server, data: &DataSetup) {
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
