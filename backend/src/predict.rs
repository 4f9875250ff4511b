//! From a query's nearest gallery neighbours to its five candidates, with
//! `new_whale` placed at the distance `dcut`.
//!
//! This is the reference kernel's rule, kept exactly, quirks included: see
//! [`rank_candidates`]. Finding the neighbours is [`crate::index`]'s job;
//! scoring the candidates is [`crate::metrics`]'s.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::index::Neighbour;

pub use crate::data::NEW_WHALE;

/// How many neighbours the rule looks at per query: several neighbours
/// often share an individual, so the kernel asks for 16 to find five
/// distinct labels.
pub const N_NEIGHBOURS: usize = 16;

/// How many candidates a prediction holds; MAP@5 reads no further.
pub const N_CANDIDATES: usize = 5;

/// One label proposed for a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub label: String,
    /// Distance of the nearest neighbour with this label, or `dcut` for the
    /// `new_whale` the rule inserts.
    pub distance: f32,
}

/// Ranks the labels of `neighbours` (nearest first, as a search returns
/// them; the kernel passes [`N_NEIGHBOURS`]) into at most five candidates.
///
/// Walking the neighbours in order: the first time one lies farther than
/// `dcut`, `new_whale` is put in at distance `dcut`, unless already
/// present; then the neighbour's label is put in at its distance, unless
/// already present; the walk stops once five labels are in. The labels are
/// then sorted by distance, equal distances keeping their order of entry.
///
/// Consequences worth knowing: `new_whale` appears only if a neighbour
/// beyond `dcut` is reached before five labels are found; a gallery image
/// labelled `new_whale` counts as that label, so it can put `new_whale` in
/// at its own, smaller distance and keep the inserted one out.
///
/// `gallery_labels` is indexed by `gallery_idx`.
pub fn rank_candidates(
    neighbours: &[Neighbour],
    gallery_labels: &[String],
    dcut: f32,
) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = Vec::with_capacity(N_CANDIDATES + 1);
    for neighbour in neighbours {
        if neighbour.distance > dcut {
            insert_once(&mut candidates, NEW_WHALE, dcut);
        }
        let label = gallery_labels
            .get(neighbour.gallery_idx)
            .expect("every gallery_idx a search returns has a label");
        insert_once(&mut candidates, label, neighbour.distance);
        if candidates.len() >= N_CANDIDATES {
            break;
        }
    }

    // Python's sort is stable and compares with `<`, so equal distances
    // keep their order of entry; `sort_by` is stable too.
    candidates.sort_by(|a, b| {
        a.distance
            .partial_cmp(&b.distance)
            .unwrap_or(Ordering::Equal)
    });

    // With four labels in, a neighbour beyond `dcut` brings both
    // `new_whale` and its own label, six in all. The kernel writes all six
    // to its submission, but the sixth is always the farthest (every label
    // before it is within `dcut`) and MAP@5 never reads it.
    candidates.truncate(N_CANDIDATES);
    candidates
}

/// The labels of `candidates`, separated by single spaces, as a submission
/// line wants them.
pub fn prediction_string(candidates: &[Candidate]) -> String {
    let labels: Vec<&str> = candidates.iter().map(|c| c.label.as_str()).collect();
    labels.join(" ")
}

fn insert_once(candidates: &mut Vec<Candidate>, label: &str, distance: f32) {
    if candidates.iter().all(|c| c.label != label) {
        candidates.push(Candidate {
            label: label.to_owned(),
            distance,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gallery whose entry `i` carries `labels[i]`, and neighbours that
    /// visit it in order at the given distances.
    fn walk(steps: &[(&str, f32)]) -> (Vec<Neighbour>, Vec<String>) {
        let labels = steps.iter().map(|(label, _)| label.to_string()).collect();
        let neighbours = steps
            .iter()
            .enumerate()
            .map(|(gallery_idx, &(_, distance))| Neighbour {
                gallery_idx,
                distance,
            })
            .collect();
        (neighbours, labels)
    }

    fn ranked(steps: &[(&str, f32)], dcut: f32) -> Vec<(String, f32)> {
        let (neighbours, labels) = walk(steps);
        rank_candidates(&neighbours, &labels, dcut)
            .into_iter()
            .map(|c| (c.label, c.distance))
            .collect()
    }

    fn expected(pairs: &[(&str, f32)]) -> Vec<(String, f32)> {
        pairs
            .iter()
            .map(|&(label, distance)| (label.to_string(), distance))
            .collect()
    }

    #[test]
    fn repeated_labels_keep_their_nearest_distance() {
        let steps = [
            ("a", 0.5),
            ("a", 0.6),
            ("b", 0.7),
            ("a", 0.8),
            ("c", 0.9),
            ("d", 1.0),
            ("e", 1.1),
            ("f", 1.2),
        ];
        let want = [("a", 0.5), ("b", 0.7), ("c", 0.9), ("d", 1.0), ("e", 1.1)];
        assert_eq!(ranked(&steps, 2.0), expected(&want));
    }

    #[test]
    fn new_whale_comes_first_when_even_the_nearest_is_beyond_dcut() {
        let steps = [("a", 3.0), ("b", 3.5), ("c", 4.0), ("d", 5.0), ("e", 6.0)];
        let want = [
            (NEW_WHALE, 2.0),
            ("a", 3.0),
            ("b", 3.5),
            ("c", 4.0),
            ("d", 5.0),
        ];
        assert_eq!(ranked(&steps, 2.0), expected(&want));
    }

    #[test]
    fn new_whale_sits_between_neighbours_on_either_side_of_dcut() {
        let steps = [("a", 1.0), ("b", 1.5), ("c", 2.5), ("d", 3.0), ("e", 3.5)];
        let want = [
            ("a", 1.0),
            ("b", 1.5),
            (NEW_WHALE, 2.0),
            ("c", 2.5),
            ("d", 3.0),
        ];
        assert_eq!(ranked(&steps, 2.0), expected(&want));
    }

    #[test]
    fn no_new_whale_once_five_labels_are_within_dcut() {
        let steps = [
            ("a", 0.1),
            ("b", 0.2),
            ("c", 0.3),
            ("d", 0.4),
            ("e", 0.5),
            ("f", 9.0),
        ];
        let want = [("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4), ("e", 0.5)];
        assert_eq!(ranked(&steps, 1.0), expected(&want));
    }

    /// Four labels within `dcut`, then one beyond: `new_whale` and the
    /// fifth label both go in, and the latter, sorted last, is cut.
    #[test]
    fn new_whale_takes_fifth_place_after_four_labels_within_dcut() {
        let steps = [
            ("a", 0.1),
            ("b", 0.2),
            ("c", 0.3),
            ("d", 0.4),
            ("e", 1.5),
            ("f", 1.6),
        ];
        let want = [
            ("a", 0.1),
            ("b", 0.2),
            ("c", 0.3),
            ("d", 0.4),
            (NEW_WHALE, 1.0),
        ];
        assert_eq!(ranked(&steps, 1.0), expected(&want));
    }

    /// The kernel's quirk: 16 neighbours, all within `dcut`, two labels.
    #[test]
    fn few_labels_all_within_dcut_give_no_new_whale() {
        let steps: Vec<(&str, f32)> = (0..N_NEIGHBOURS)
            .map(|i| (if i % 3 == 0 { "b" } else { "a" }, 0.1 * (i + 1) as f32))
            .collect();
        assert_eq!(ranked(&steps, 5.0), expected(&[("b", 0.1), ("a", 0.2)]));
    }

    #[test]
    fn few_labels_with_one_beyond_dcut_get_new_whale() {
        let steps = [("a", 1.0), ("a", 1.2), ("b", 3.0), ("b", 3.1)];
        let want = [("a", 1.0), (NEW_WHALE, 2.0), ("b", 3.0)];
        assert_eq!(ranked(&steps, 2.0), expected(&want));
    }

    #[test]
    fn a_gallery_new_whale_within_dcut_keeps_its_own_distance() {
        let steps = [(NEW_WHALE, 0.5), ("a", 1.0), ("b", 3.0)];
        let want = [(NEW_WHALE, 0.5), ("a", 1.0), ("b", 3.0)];
        assert_eq!(ranked(&steps, 2.0), expected(&want));
    }

    #[test]
    fn a_gallery_new_whale_beyond_dcut_is_placed_at_dcut() {
        let steps = [("a", 1.0), (NEW_WHALE, 3.0), ("b", 4.0)];
        let want = [("a", 1.0), (NEW_WHALE, 2.0), ("b", 4.0)];
        assert_eq!(ranked(&steps, 2.0), expected(&want));
    }

    /// A neighbour exactly at `dcut` is not beyond it; `new_whale`, put in
    /// later at the same distance, stays behind it. Equal distances keep
    /// their order of entry, not alphabetical order.
    #[test]
    fn ties_keep_their_order_of_entry() {
        let steps = [("c", 1.0), ("b", 1.0), ("a", 2.0), ("d", 2.5), ("e", 2.5)];
        let want = [
            ("c", 1.0),
            ("b", 1.0),
            ("a", 2.0),
            (NEW_WHALE, 2.0),
            ("d", 2.5),
        ];
        assert_eq!(ranked(&steps, 2.0), expected(&want));
    }

    #[test]
    fn neighbours_need_not_be_in_gallery_order() {
        let labels: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let neighbours = [
            Neighbour {
                gallery_idx: 2,
                distance: 0.1,
            },
            Neighbour {
                gallery_idx: 0,
                distance: 0.2,
            },
        ];
        let labels_found: Vec<String> = rank_candidates(&neighbours, &labels, 1.0)
            .into_iter()
            .map(|c| c.label)
            .collect();
        assert_eq!(labels_found, vec!["z", "x"]);
    }

    #[test]
    fn prediction_string_joins_labels_with_single_spaces() {
        let steps = [("w_1", 1.0), ("w_2", 1.5), ("w_3", 2.5), ("w_4", 3.0)];
        let (neighbours, labels) = walk(&steps);
        let candidates = rank_candidates(&neighbours, &labels, 2.0);
        assert_eq!(prediction_string(&candidates), "w_1 w_2 new_whale w_3 w_4");
        assert_eq!(prediction_string(&[]), "");
    }
}
