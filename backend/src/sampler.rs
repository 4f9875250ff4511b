//! Triplets for training: an anchor, another image of the same individual,
//! and an image of someone else, as in the reference kernel.
//!
//! Individuals seen once are relabelled `new_whale`, and every `new_whale`
//! image gets a label of its own, so those images are only ever negatives.
//! Anchors are images of individuals with more than `min_images` images
//! (the reference uses 2 for its short runs and 1 for production runs).

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Labelled, NEW_WHALE};

/// A deterministic 80/20 split of `train.csv` rows, saved with each run so
/// evaluation uses the same images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationSplit {
    pub train: Vec<Labelled>,
    pub validation: Vec<Labelled>,
}

/// One training item, as indices into the sampler's image list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triplet {
    pub anchor: usize,
    pub positive: usize,
    pub negative: usize,
}

/// Draws triplets from a list of labelled images.
#[derive(Debug, Clone)]
pub struct TripletSampler {
    images: Vec<String>,
    labels: Vec<i64>,
    anchors: Vec<usize>,
    by_label: HashMap<i64, Vec<usize>>,
}

impl ValidationSplit {
    /// Shuffles `rows` with `seed` and holds back `validation_share` of them.
    pub fn new(rows: &[Labelled], validation_share: f64, seed: u64) -> Self {
        use rand::SeedableRng;
        let mut rows = rows.to_vec();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rows.shuffle(&mut rng);
        let n_validation = (rows.len() as f64 * validation_share).round() as usize;
        let train = rows.split_off(n_validation);
        Self {
            train,
            validation: rows,
        }
    }
}

impl TripletSampler {
    /// Builds the labels and the anchor list for `rows`.
    pub fn new(rows: &[Labelled], min_images: usize) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for row in rows {
            *counts.entry(row.id.as_str()).or_default() += 1;
        }
        let labels = assign_labels(rows, &counts);
        let anchors = (0..rows.len())
            .filter(|&i| rows[i].id != NEW_WHALE && counts[rows[i].id.as_str()] > min_images)
            .collect();
        let mut by_label: HashMap<i64, Vec<usize>> = HashMap::new();
        for (image_idx, &label) in labels.iter().enumerate() {
            by_label.entry(label).or_default().push(image_idx);
        }
        let images = rows.iter().map(|row| row.image.clone()).collect();
        Self {
            images,
            labels,
            anchors,
            by_label,
        }
    }

    /// Image names, indexed as in the triplets.
    pub fn images(&self) -> &[String] {
        &self.images
    }

    /// Integer label of every image; `new_whale` images have unique labels.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// Images that may serve as anchors.
    pub fn anchors(&self) -> &[usize] {
        &self.anchors
    }

    /// The anchors in a random order: one epoch.
    pub fn epoch_order(&self, rng: &mut impl Rng) -> Vec<usize> {
        let mut order = self.anchors.clone();
        order.shuffle(rng);
        order
    }

    /// A triplet for `anchor`: a random other image with its label and a
    /// random image with another label.
    pub fn triplet(&self, anchor: usize, rng: &mut impl Rng) -> Triplet {
        let label = self.labels[anchor];
        let same = &self.by_label[&label];
        let positive = loop {
            let candidate = *same.choose(rng).expect("an anchor's label has images");
            if candidate != anchor || same.len() == 1 {
                break candidate;
            }
        };
        let negative = loop {
            let candidate = rng.gen_range(0..self.images.len());
            if self.labels[candidate] != label {
                break candidate;
            }
        };
        Triplet {
            anchor,
            positive,
            negative,
        }
    }
}

/// Integer labels: one per individual seen more than once, a fresh one for
/// every `new_whale` or singleton image.
fn assign_labels(rows: &[Labelled], counts: &HashMap<&str, usize>) -> Vec<i64> {
    let mut ids: HashMap<&str, i64> = HashMap::new();
    let mut next = 0i64;
    rows.iter()
        .map(|row| {
            let id = row.id.as_str();
            let label = if id == NEW_WHALE || counts[id] == 1 {
                next
            } else {
                *ids.entry(id).or_insert(next)
            };
            if label == next {
                next += 1;
            }
            label
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rows() -> Vec<Labelled> {
        let ids = [
            "w_a",
            "w_a",
            "w_a",
            "w_b",
            "w_b",
            "w_c",
            "new_whale",
            "new_whale",
            "w_d",
            "w_d",
            "w_d",
            "w_d",
            "new_whale",
        ];
        ids.iter()
            .enumerate()
            .map(|(i, id)| Labelled {
                image: format!("{i}.jpg"),
                id: id.to_string(),
            })
            .collect()
    }

    #[test]
    fn anchors_are_named_individuals_with_enough_images() {
        let sampler = TripletSampler::new(&rows(), 2);
        let anchors: Vec<usize> = sampler.anchors().to_vec();
        assert_eq!(anchors, vec![0, 1, 2, 8, 9, 10, 11]);
        let production = TripletSampler::new(&rows(), 1);
        assert_eq!(production.anchors().len(), 9);
    }

    #[test]
    fn singletons_and_new_whales_get_labels_of_their_own() {
        let sampler = TripletSampler::new(&rows(), 2);
        let labels = sampler.labels();
        assert_eq!(labels[0], labels[2]);
        assert_eq!(labels[3], labels[4]);
        let lonely = [labels[5], labels[6], labels[7], labels[12]];
        let mut unique = lonely.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 4);
        assert!(lonely
            .iter()
            .all(|l| labels.iter().filter(|m| *m == l).count() == 1));
    }

    #[test]
    fn triplets_respect_labels() {
        let rows = rows();
        let sampler = TripletSampler::new(&rows, 1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..2_000 {
            let anchor = *sampler.anchors().choose(&mut rng).unwrap();
            let t = sampler.triplet(anchor, &mut rng);
            assert_ne!(t.positive, t.anchor, "positive must be another image");
            assert_eq!(rows[t.positive].id, rows[t.anchor].id);
            assert_ne!(sampler.labels()[t.negative], sampler.labels()[t.anchor]);
            assert_ne!(rows[t.negative].id, rows[t.anchor].id);
            assert_ne!(rows[t.anchor].id, NEW_WHALE);
        }
    }

    #[test]
    fn split_is_deterministic_and_complete() {
        let rows = rows();
        let split = ValidationSplit::new(&rows, 0.2, 42);
        assert_eq!(split, ValidationSplit::new(&rows, 0.2, 42));
        assert_ne!(split, ValidationSplit::new(&rows, 0.2, 43));
        assert_eq!(split.validation.len(), 3);
        let mut all: Vec<_> = split
            .train
            .iter()
            .chain(&split.validation)
            .cloned()
            .collect();
        all.sort_by(|a, b| a.image.cmp(&b.image));
        let mut expected = rows.clone();
        expected.sort_by(|a, b| a.image.cmp(&b.image));
        assert_eq!(all, expected);
    }
}
