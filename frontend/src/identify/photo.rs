//! Photos in the browser: decoding a chosen file, drawing it with its box
//! and crop region, drawing the crop preview, and making the crop that is
//! uploaded. The preview and the upload are drawn by the same function
//! from the same [`CropPlan`], so what is shown is what is sent.

use flukeid_shared::crop::{BoundingBox, CropRegion};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, CanvasRenderingContext2d, File, HtmlCanvasElement, HtmlImageElement, Url};

use super::preview::{display_size, CropPlan};

/// A decoded photo and the name it was chosen under.
#[derive(Clone)]
pub struct Photo {
    pub name: String,
    pub image: HtmlImageElement,
    pub width: u32,
    pub height: u32,
}

/// Longest side of the canvas a photo is shown on.
pub const MAX_SHOWN_SIDE: u32 = 1600;

/// Side of the square handles drawn on the box's corners, in canvas pixels.
const HANDLE_SIDE: f64 = 10.0;

/// Decodes a chosen file.
///
/// # Errors
///
/// A sentence when the browser cannot read the file as an image.
pub async fn load(file: &File) -> Result<Photo, String> {
    let name = file.name();
    let unreadable =
        || format!("{name} is not a photo this browser can read; choose a JPEG or PNG.");
    let url = Url::create_object_url_with_blob(file).map_err(|_| unreadable())?;
    let image = HtmlImageElement::new().map_err(|_| unreadable())?;
    image.set_src(&url);
    let decoded = JsFuture::from(image.decode()).await;
    // The decoded image keeps its pixels; the URL is no longer needed.
    let _ = Url::revoke_object_url(&url);
    decoded.map_err(|_| unreadable())?;
    let (width, height) = (image.natural_width(), image.natural_height());
    if width == 0 || height == 0 {
        return Err(unreadable());
    }
    Ok(Photo {
        name,
        image,
        width,
        height,
    })
}

/// Draws `photo` on `canvas` (resized to show it), with the crop region
/// dashed and the box solid with corner handles.
pub fn draw_photo(
    canvas: &HtmlCanvasElement,
    photo: &Photo,
    bbox: Option<BoundingBox>,
    region: Option<CropRegion>,
) {
    let (shown_w, shown_h) = display_size(photo.width, photo.height, MAX_SHOWN_SIDE);
    if canvas.width() != shown_w || canvas.height() != shown_h {
        canvas.set_width(shown_w);
        canvas.set_height(shown_h);
    }
    let Some(ctx) = context(canvas) else { return };
    let scale = shown_w as f64 / photo.width as f64;
    let _ = ctx.draw_image_with_html_image_element_and_dw_and_dh(
        &photo.image,
        0.0,
        0.0,
        shown_w as f64,
        shown_h as f64,
    );

    if let Some(r) = region {
        ctx.set_line_width(2.0);
        ctx.set_stroke_style_str("rgba(255, 255, 255, 0.95)");
        let _ = ctx.set_line_dash(&dash(&[8.0, 6.0]));
        ctx.stroke_rect(
            r.x0 as f64 * scale,
            r.y0 as f64 * scale,
            r.width() as f64 * scale,
            r.height() as f64 * scale,
        );
        let _ = ctx.set_line_dash(&dash(&[]));
    }
    if let Some(b) = bbox {
        let (x0, y0, x1, y1) = (b.x0 * scale, b.y0 * scale, b.x1 * scale, b.y1 * scale);
        ctx.set_line_width(3.0);
        ctx.set_stroke_style_str("#ffc400");
        ctx.stroke_rect(x0, y0, x1 - x0, y1 - y0);
        ctx.set_fill_style_str("#ffc400");
        let half = HANDLE_SIDE / 2.0;
        for (x, y) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] {
            ctx.fill_rect(x - half, y - half, HANDLE_SIDE, HANDLE_SIDE);
        }
    }
}

/// Draws the crop of `plan` from `photo` onto `canvas`, at the crop's size.
pub fn draw_crop(canvas: &HtmlCanvasElement, photo: &Photo, plan: &CropPlan) {
    if canvas.width() != plan.width || canvas.height() != plan.height {
        canvas.set_width(plan.width);
        canvas.set_height(plan.height);
    }
    let Some(ctx) = context(canvas) else { return };
    ctx.set_image_smoothing_enabled(true);
    // Not in web-sys's typed API; "high" asks for a filtered downscale,
    // closer to the server's triangle filter than plain bilinear.
    let _ = js_sys::Reflect::set(&ctx, &"imageSmoothingQuality".into(), &"high".into());
    let r = plan.region;
    let _ = ctx.draw_image_with_html_image_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
        &photo.image,
        r.x0 as f64,
        r.y0 as f64,
        r.width() as f64,
        r.height() as f64,
        0.0,
        0.0,
        plan.width as f64,
        plan.height as f64,
    );
}

/// The crop of `plan` as a PNG, lossless so the server sees the pixels of
/// the preview.
///
/// # Errors
///
/// A sentence when the browser cannot encode the crop.
pub async fn crop_png(photo: &Photo, plan: &CropPlan) -> Result<Blob, String> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("a page has a document");
    let canvas: HtmlCanvasElement = document
        .create_element("canvas")
        .expect("canvases exist")
        .unchecked_into();
    draw_crop(&canvas, photo, plan);
    let failed = || {
        format!(
            "The crop of {} could not be made in this browser.",
            photo.name
        )
    };
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let _ = canvas.to_blob(&resolve);
    });
    let blob = JsFuture::from(promise).await.map_err(|_| failed())?;
    blob.dyn_into::<Blob>().map_err(|_| failed())
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into().ok())
}

fn dash(segments: &[f64]) -> JsValue {
    segments
        .iter()
        .map(|s| JsValue::from_f64(*s))
        .collect::<js_sys::Array>()
        .into()
}
