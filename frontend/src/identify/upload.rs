//! Sending a crop to `POST /api/identify` with `XMLHttpRequest`, which,
//! unlike `fetch`, reports upload progress.

use flukeid_shared::api::IdentifyResponse;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, FormData, ProgressEvent, XmlHttpRequest};

use crate::api::error::{error_message, NOT_REACHED};

/// Uploads `crop` tagged `batch`; `on_progress(sent, total)` follows the
/// bytes going up.
///
/// # Errors
///
/// The sentence for the server's refusal, or for a lost connection.
pub async fn identify_crop(
    crop: &Blob,
    batch: &str,
    on_progress: impl Fn(f64, f64) + 'static,
) -> Result<IdentifyResponse, String> {
    let unreached = || error_message(NOT_REACHED, "");
    let form = FormData::new().map_err(|_| unreached())?;
    form.append_with_blob_and_filename("crop", crop, "crop.png")
        .map_err(|_| unreached())?;
    form.append_with_str("batch", batch)
        .map_err(|_| unreached())?;

    let request = XmlHttpRequest::new().map_err(|_| unreached())?;
    request
        .open("POST", "/api/identify")
        .map_err(|_| unreached())?;
    let progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |event: ProgressEvent| {
        if event.length_computable() {
            on_progress(event.loaded(), event.total());
        }
    });
    if let Ok(upload) = request.upload() {
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }

    // The request settles through `load` (any HTTP answer) or `error`
    // (no answer at all).
    let sending = request.clone();
    let settled = js_sys::Promise::new(&mut |resolve, reject| {
        sending.set_onload(Some(&resolve));
        sending.set_onerror(Some(&reject));
        if sending.send_with_opt_form_data(Some(&form)).is_err() {
            let _ = reject.call0(&wasm_bindgen::JsValue::NULL);
        }
    });
    let answered = JsFuture::from(settled).await;
    drop(progress);
    answered.map_err(|_| unreached())?;

    let status = request.status().unwrap_or(NOT_REACHED);
    let body = request.response_text().ok().flatten().unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(error_message(status, &body));
    }
    serde_json::from_str(&body).map_err(|e| format!("The server's answer could not be read ({e})."))
}
