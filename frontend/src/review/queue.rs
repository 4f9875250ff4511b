//! The review queue's logic: which individuals an upload can be confirmed
//! as, the verdict sent for each choice, the part of a photo to show when
//! the upload was a photo with a box, and finding individuals by name.

use flukeid_shared::api::{ConfirmRequest, IndividualSummary, UploadRecord};
use flukeid_shared::crop::BoundingBox;

use crate::identify::results::NEW_WHALE;

/// What a reviewer decided about an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Known(String),
    NewIndividual,
}

/// Pixels of context shown around a box, on each side.
pub const BOX_MARGIN: f64 = 20.0;

/// Why `new_whale` is refused as the id of a known individual.
const NEW_WHALE_TYPED: &str = "new_whale is not an individual; use “New individual” instead.";

impl Choice {
    /// The body of `POST /api/admin/uploads/{id}/confirm`.
    pub fn request(&self) -> ConfirmRequest {
        match self {
            Choice::Known(id) => ConfirmRequest {
                individual: Some(id.clone()),
                new_individual: false,
            },
            Choice::NewIndividual => ConfirmRequest {
                individual: None,
                new_individual: true,
            },
        }
    }
}

/// The known individuals among an upload's candidates, nearest first.
pub fn known_candidates(upload: &UploadRecord) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for candidate in &upload.candidates {
        if candidate.label != NEW_WHALE && !labels.contains(&candidate.label) {
            labels.push(candidate.label.clone());
        }
    }
    labels
}

/// A choice from an individual's id as a reviewer typed it.
///
/// # Errors
///
/// A sentence when the id is empty or is `new_whale`.
pub fn typed_choice(typed: &str) -> Result<Choice, String> {
    match typed.trim() {
        "" => Err("Type the id of the individual, such as w_1a2b3c4.".into()),
        NEW_WHALE => Err(NEW_WHALE_TYPED.into()),
        id => Ok(Choice::Known(id.to_string())),
    }
}

/// The SVG view box `(x, y, width, height)` showing an upload's box with
/// a margin, or `None` when the whole stored image should be shown.
pub fn box_view(upload: &UploadRecord) -> Option<(f64, f64, f64, f64)> {
    let BoundingBox { x0, y0, x1, y1 } = upload.bbox.filter(|_| !upload.is_crop)?;
    let (x, y) = ((x0 - BOX_MARGIN).max(0.0), (y0 - BOX_MARGIN).max(0.0));
    Some((x, y, x1 + BOX_MARGIN - x, y1 + BOX_MARGIN - y))
}

/// Individuals whose id contains `query` (any case), in the given order.
pub fn find_individuals<'a>(
    all: &'a [IndividualSummary],
    query: &str,
) -> Vec<&'a IndividualSummary> {
    let query = query.trim().to_lowercase();
    all.iter()
        .filter(|i| i.id.to_lowercase().contains(&query))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flukeid_shared::api::{CandidateMatch, UploadStatus};

    fn upload(labels: &[&str], bbox: Option<BoundingBox>, is_crop: bool) -> UploadRecord {
        let candidates = labels
            .iter()
            .map(|label| CandidateMatch {
                label: label.to_string(),
                distance: 1.0,
                confidence: 0.5,
                photos: vec![],
            })
            .collect();
        UploadRecord {
            id: 4,
            image: "/api/images/uploads/ab.jpg".into(),
            created_at: 0,
            status: UploadStatus::Pending,
            bbox,
            is_crop,
            run_id: "run-0001".into(),
            candidates,
            individual: None,
        }
    }

    #[test]
    fn new_whale_is_not_offered_as_an_individual() {
        let record = upload(&["w_2", NEW_WHALE, "w_1", "w_2"], None, true);
        assert_eq!(
            known_candidates(&record),
            vec!["w_2".to_string(), "w_1".to_string()]
        );
    }

    #[test]
    fn choices_become_the_confirm_bodies_the_server_wants() {
        let known = Choice::Known("w_1".into()).request();
        assert_eq!(
            serde_json::to_string(&known).unwrap(),
            r#"{"individual":"w_1","new_individual":false}"#
        );
        assert_eq!(
            Choice::NewIndividual.request(),
            ConfirmRequest {
                individual: None,
                new_individual: true
            }
        );
        assert_eq!(typed_choice(" w_9 "), Ok(Choice::Known("w_9".into())));
        assert!(typed_choice("").is_err());
        assert!(typed_choice("new_whale").is_err());
    }

    #[test]
    fn a_photo_with_a_box_shows_the_box_with_a_margin() {
        let bbox = BoundingBox::new(10.0, 50.0, 210.0, 120.0);
        assert_eq!(
            box_view(&upload(&[], Some(bbox), false)),
            Some((0.0, 30.0, 230.0, 110.0))
        );
        assert_eq!(box_view(&upload(&[], Some(bbox), true)), None);
        assert_eq!(box_view(&upload(&[], None, false)), None);
    }

    #[test]
    fn individuals_are_found_by_part_of_their_id() {
        let summary = |id: &str| IndividualSummary {
            id: id.into(),
            n_photos: 1,
            n_sightings: 0,
            last_seen: None,
        };
        let all = vec![summary("w_abc"), summary("w_ABD"), summary("w_xyz")];
        let found: Vec<&str> = find_individuals(&all, "ab")
            .iter()
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(found, vec!["w_abc", "w_ABD"]);
        assert_eq!(find_individuals(&all, " ").len(), 3);
    }
}
