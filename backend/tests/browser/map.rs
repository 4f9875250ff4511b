//! The embedding map, and every page on a phone-sized screen.

use serde_json::Value;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};

use crate::webdriver::{move_to, Browser, DESKTOP, PHONE};
use crate::{Server, UI_WAIT};

/// The map shows every gallery photo; the pointer over a point shows its
/// photo, a click opens its individual.
pub async fn explore_the_map(browser: &mut Browser, server: &Server) {
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
pub async fn fits_a_phone(browser: &mut Browser) {
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
