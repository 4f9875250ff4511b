//! JSON requests and downloads with the browser's `fetch`. Every failure,
//! from a refused connection to a 4xx with a JSON body, comes back as the
//! sentence [`error_message`] makes of it.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, HtmlAnchorElement, Request, RequestInit, Response, Url};

use super::error::{error_message, NOT_REACHED};

/// A failed request: the HTTP status (0 when the server was not reached)
/// and the sentence to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub message: String,
}

impl Failure {
    fn unreached() -> Self {
        Self {
            status: NOT_REACHED,
            message: error_message(NOT_REACHED, ""),
        }
    }

    /// Whether the admin token was refused.
    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }
}

/// `GET url` as JSON, with the admin token when given.
///
/// # Errors
///
/// [`Failure`] for any status but 2xx, or a body that does not parse.
pub async fn get_json<T: DeserializeOwned>(url: &str, token: Option<&str>) -> Result<T, Failure> {
    let response = send("GET", url, None, token).await?;
    parse(response).await
}

/// `method url` with a JSON body, answered with JSON.
///
/// # Errors
///
/// [`Failure`] for any status but 2xx, or a body that does not parse.
pub async fn send_json<B: Serialize, T: DeserializeOwned>(
    method: &str,
    url: &str,
    body: &B,
    token: Option<&str>,
) -> Result<T, Failure> {
    let json = serde_json::to_string(body).expect("request bodies serialise");
    let response = send(method, url, Some(json), token).await?;
    parse(response).await
}

/// Fetches `url` with the admin token and saves it as `file_name`; a plain
/// link cannot carry the bearer header.
///
/// # Errors
///
/// [`Failure`] for any status but 2xx.
pub async fn download(url: &str, token: Option<&str>, file_name: &str) -> Result<(), Failure> {
    let response = send("GET", url, None, token).await?;
    let blob: Blob = await_js(response.blob().map_err(|_| Failure::unreached())?)
        .await?
        .unchecked_into();
    let object_url = Url::create_object_url_with_blob(&blob).map_err(|_| Failure::unreached())?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("a page has a document");
    let link: HtmlAnchorElement = document
        .create_element("a")
        .expect("anchors exist")
        .unchecked_into();
    link.set_href(&object_url);
    link.set_download(file_name);
    link.click();
    let _ = Url::revoke_object_url(&object_url);
    Ok(())
}

async fn send(
    method: &str,
    url: &str,
    body: Option<String>,
    token: Option<&str>,
) -> Result<Response, Failure> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = &body {
        init.set_body(&JsValue::from_str(body));
    }
    let request = Request::new_with_str_and_init(url, &init).map_err(|_| Failure::unreached())?;
    let headers = request.headers();
    if body.is_some() {
        let _ = headers.set("Content-Type", "application/json");
    }
    if let Some(token) = token {
        let _ = headers.set("Authorization", &format!("Bearer {token}"));
    }
    let window = web_sys::window().expect("a page has a window");
    let response: Response = await_js(window.fetch_with_request(&request))
        .await?
        .unchecked_into();
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let text = match response.text() {
        Ok(promise) => await_js(promise)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    Err(Failure {
        status,
        message: error_message(status, &text),
    })
}

async fn parse<T: DeserializeOwned>(response: Response) -> Result<T, Failure> {
    let status = response.status();
    let text = await_js(response.text().map_err(|_| Failure::unreached())?).await?;
    let text = text.as_string().unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| Failure {
        status,
        message: format!("The server's answer could not be read ({e}); reload the page."),
    })
}

async fn await_js(promise: js_sys::Promise) -> Result<JsValue, Failure> {
    JsFuture::from(promise)
        .await
        .map_err(|_| Failure::unreached())
}
