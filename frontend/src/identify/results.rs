//! How an identification reads: a headline ("probably a new whale", or the
//! best match) and each candidate's distance and confidence in words.
//! Confidence comes from the server, computed with the shared
//! `flukeid_shared::api::confidence`.

use flukeid_shared::api::{CandidateMatch, IdentifyResponse};

/// The label the server gives to "no known individual".
pub const NEW_WHALE: &str = "new_whale";

/// One candidate as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateLine {
    pub rank: usize,
    pub label: String,
    pub is_new_whale: bool,
    pub distance: String,
    /// Whole percent, 0 to 100.
    pub percent: u32,
    pub words: &'static str,
    pub photos: Vec<String>,
}

impl CandidateLine {
    /// The confidence as a percentage and in words.
    pub fn confidence_text(&self) -> String {
        format!("{} % · {}", self.percent, self.words)
    }
}

/// The headline of an answer.
pub fn headline(response: &IdentifyResponse) -> String {
    let best = response.candidates.iter().find(|c| c.label != NEW_WHALE);
    match (response.probably_new, best) {
        (true, _) => "Probably a new whale: no known individual is close enough.".into(),
        (false, Some(best)) => {
            format!(
                "Best match: {} ({})",
                best.label,
                confidence_words(best.confidence)
            )
        }
        (false, None) => "No candidates came back.".into(),
    }
}

/// The candidates in the server's order, nearest first.
pub fn candidate_lines(response: &IdentifyResponse) -> Vec<CandidateLine> {
    response
        .candidates
        .iter()
        .enumerate()
        .map(|(idx, c)| line(idx + 1, c))
        .collect()
}

/// A confidence from 0 to 1 in words. 0.5 is the `dcut` distance, where
/// the ranking puts `new_whale` ahead of a known individual.
pub fn confidence_words(confidence: f32) -> &'static str {
    match confidence {
        c if c >= 0.75 => "strong match",
        c if c >= 0.5 => "likely match",
        c if c >= 0.25 => "possible match",
        _ => "unlikely",
    }
}

/// The key under which the latest answer is kept in `sessionStorage`, for
/// the map to draw.
pub const LAST_QUERY_KEY: &str = "flukeid.last_query";

/// Keeps `response` as the latest answer of this tab.
#[cfg(target_arch = "wasm32")]
pub fn remember(response: &IdentifyResponse) {
    let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
    if let (Some(storage), Ok(json)) = (storage, serde_json::to_string(response)) {
        let _ = storage.set_item(LAST_QUERY_KEY, &json);
    }
}

/// The latest answer of this tab, if any.
#[cfg(target_arch = "wasm32")]
pub fn last_query() -> Option<IdentifyResponse> {
    let storage = web_sys::window()?.session_storage().ok().flatten()?;
    serde_json::from_str(&storage.get_item(LAST_QUERY_KEY).ok().flatten()?).ok()
}

fn line(rank: usize, candidate: &CandidateMatch) -> CandidateLine {
    let is_new_whale = candidate.label == NEW_WHALE;
    let words = if is_new_whale {
        "a new individual"
    } else {
        confidence_words(candidate.confidence)
    };
    CandidateLine {
        rank,
        label: if is_new_whale {
            "New whale".into()
        } else {
            candidate.label.clone()
        },
        is_new_whale,
        distance: format!("{:.2}", candidate.distance),
        percent: (candidate.confidence.clamp(0.0, 1.0) * 100.0).round() as u32,
        words,
        photos: candidate.photos.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(label: &str, distance: f32, confidence: f32) -> CandidateMatch {
        CandidateMatch {
            label: label.into(),
            distance,
            confidence,
            photos: vec![format!("/api/images/train/{label}.jpg")],
        }
    }

    fn response(probably_new: bool, candidates: Vec<CandidateMatch>) -> IdentifyResponse {
        IdentifyResponse {
            upload_id: 1,
            run_id: "run-0001".into(),
            batch: None,
            candidates,
            probably_new,
        }
    }

    #[test]
    fn a_close_match_leads_with_its_label() {
        let answer = response(
            false,
            vec![
                candidate("w_1a2b3c4", 0.8, 0.8),
                candidate(NEW_WHALE, 2.0, 0.2),
            ],
        );
        assert_eq!(headline(&answer), "Best match: w_1a2b3c4 (strong match)");
        let lines = candidate_lines(&answer);
        assert_eq!(lines[0].distance, "0.80");
        assert_eq!(
            (lines[0].rank, lines[0].percent, lines[0].words),
            (1, 80, "strong match")
        );
        assert_eq!(
            (lines[1].label.as_str(), lines[1].is_new_whale),
            ("New whale", true)
        );
        assert_eq!(lines[1].words, "a new individual");
        assert_eq!(lines[0].confidence_text(), "80 % · strong match");
    }

    #[test]
    fn new_whale_first_reads_as_probably_new() {
        let answer = response(
            true,
            vec![candidate(NEW_WHALE, 2.0, 0.7), candidate("w_1", 2.6, 0.3)],
        );
        assert!(headline(&answer).starts_with("Probably a new whale"));
        assert_eq!(
            headline(&response(false, vec![])),
            "No candidates came back."
        );
    }

    #[test]
    fn words_follow_the_confidence_bands() {
        assert_eq!(confidence_words(0.5), "likely match");
        assert_eq!(confidence_words(0.49), "possible match");
        assert_eq!(confidence_words(0.1), "unlikely");
        let odd = line(1, &candidate("w_2", 9.0, 1.7));
        assert_eq!(odd.percent, 100);
    }
}
