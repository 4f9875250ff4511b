//! Turning a failed request into a sentence a person can act on: the HTTP
//! status picks the lead, and the server's `ApiError` body, when there is
//! one, says exactly what to change.
//!
//! This is the only place that knows what a status code means to someone
//! using the app; the pages show its output as it is.

use flukeid_shared::api::ApiError;

/// The status a failed request reports when the server was never reached
/// (no connection, the server down, a refused socket).
pub const NOT_REACHED: u16 = 0;

/// The message for a request that ended with `status` and `body`.
pub fn error_message(status: u16, body: &str) -> String {
    let detail = server_detail(body);
    match (status, detail) {
        (NOT_REACHED, _) => "Cannot reach the server; check the connection and try again.".into(),
        (401, _) => "The admin token was not accepted; enter it again.".into(),
        (413, detail) => sentence("The photo is too large for the server", detail),
        (415, detail) => sentence(
            "That file is not a photo the server can read; choose a JPEG or PNG",
            detail,
        ),
        (422, detail) => sentence("The server could not use what was sent", detail),
        (503, Some(detail)) if detail.starts_with("no model is serving") => {
            "No whale model is serving yet: an admin must train a run and make it \
             the serving run."
                .into()
        }
        (503, detail) => sentence(
            "The server cannot answer right now; try again in a moment",
            detail,
        ),
        (500..=599, _) => "The server failed; its log has the details.".into(),
        (_, Some(detail)) => format!("{}.", capitalise(&detail)),
        (status, None) => format!("The request failed (HTTP {status})."),
    }
}

/// The `error` field of a JSON error body, when it is one and not empty.
fn server_detail(body: &str) -> Option<String> {
    let error: ApiError = serde_json::from_str(body).ok()?;
    let detail = error.error.trim().trim_end_matches('.').to_string();
    (!detail.is_empty()).then_some(detail)
}

fn sentence(lead: &str, detail: Option<String>) -> String {
    match detail {
        Some(detail) => format!("{lead}: {detail}."),
        None => format!("{lead}."),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: &str) -> String {
        serde_json::to_string(&ApiError {
            error: message.into(),
        })
        .unwrap()
    }

    #[test]
    fn a_wrong_token_asks_for_it_again_whatever_the_body() {
        let said = error_message(401, &body("missing or wrong admin token: send the header"));
        assert_eq!(said, "The admin token was not accepted; enter it again.");
        assert_eq!(error_message(401, ""), said);
    }

    #[test]
    fn photo_errors_lead_with_what_went_wrong_and_keep_the_detail() {
        let too_large = body("the upload is larger than the limit of 20971520 bytes");
        assert_eq!(
            error_message(413, &too_large),
            "The photo is too large for the server: the upload is larger than the \
             limit of 20971520 bytes."
        );
        assert_eq!(
            error_message(413, "Payload Too Large"),
            "The photo is too large for the server."
        );
        let not_image = body("the uploaded photo is not a JPEG or PNG.");
        assert_eq!(
            error_message(415, &not_image),
            "That file is not a photo the server can read; choose a JPEG or PNG: the \
             uploaded photo is not a JPEG or PNG."
        );
        let truncated = body("the uploaded photo is truncated");
        assert!(error_message(422, &truncated).starts_with("The server could not use"));
        assert!(error_message(422, &truncated).ends_with("is truncated."));
    }

    #[test]
    fn no_serving_run_is_explained_and_other_503s_say_try_again() {
        let idle = body("no model is serving yet; train a run and make it the serving run");
        assert!(error_message(503, &idle).starts_with("No whale model is serving yet"));
        let changed = body("the serving run changed while the map was drawn; ask again");
        assert_eq!(
            error_message(503, &changed),
            "The server cannot answer right now; try again in a moment: the serving \
             run changed while the map was drawn; ask again."
        );
        assert_eq!(
            error_message(503, ""),
            "The server cannot answer right now; try again in a moment."
        );
    }

    #[test]
    fn internal_errors_and_unreached_servers_get_fixed_sentences() {
        let opaque = body("internal error; the server log has the details");
        assert_eq!(
            error_message(500, &opaque),
            "The server failed; its log has the details."
        );
        assert_eq!(
            error_message(502, "<html>"),
            "The server failed; its log has the details."
        );
        assert!(error_message(NOT_REACHED, "").starts_with("Cannot reach the server"));
    }

    #[test]
    fn other_refusals_show_the_server_sentence_capitalised() {
        let busy = body("run-0002 is running; stop it or wait for it to end");
        assert_eq!(
            error_message(409, &busy),
            "Run-0002 is running; stop it or wait for it to end."
        );
        assert_eq!(
            error_message(404, "not json"),
            "The request failed (HTTP 404)."
        );
        assert_eq!(
            error_message(400, &body("  ")),
            "The request failed (HTTP 400)."
        );
    }
}
