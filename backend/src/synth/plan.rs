//! The plan of a data set: which individual every image shows, its label
//! and its split, drawn from the seed before any pixel is. Drawing the
//! photos and writing the files is left to the rest of the module.

use std::collections::HashSet;
use std::iter;

use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::{Split, NEW_WHALE};

use super::{rng_for, Stream, SynthReport};

/// One image of a [`LabelPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// File name inside the split's folder, such as `0a1b2c3d.jpg`.
    pub image: String,
    pub split: Split,
    /// `new_whale` or `w_` and seven hex digits: the `train.csv` label of a
    /// training image, the hidden truth of a test image.
    pub label: String,
    /// The individual whose fluke the photo shows. Named individuals come
    /// first; every `new_whale` image shows an individual of its own.
    pub whale_idx: usize,
}

/// Which individual every image shows and where it goes, decided before
/// anything is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelPlan {
    /// Sorted by file name.
    pub images: Vec<PlannedImage>,
    /// Named individuals, `whale_idx` `0..n_individuals`.
    pub n_individuals: usize,
    /// All individuals, named ones and one-offs.
    pub n_whales: usize,
}

/// Plans the labels of a data set with `n_individuals` named individuals,
/// without drawing anything.
///
/// Training images per individual follow a long tail like the Kaggle set's
/// (most have one to three, a few up to 30), and about 40% of training
/// images are `new_whale`, each of an individual seen once. Individuals with
/// two or more training images have some images held back for `test/`,
/// which also gets images of individuals never seen in training.
pub fn plan_labels(n_individuals: usize, seed: u64) -> LabelPlan {
    let mut rng = rng_for(seed, Stream::Plan, 0);
    let mut names = Names::default();
    let class_sizes = draw_class_sizes(n_individuals, &mut rng);

    let mut images = plan_named(&class_sizes, &mut names, &mut rng);
    let n_named_train: usize = class_sizes.iter().sum();
    let n_held_back = images.len() - n_named_train;
    let one_offs = plan_one_offs(n_named_train, n_held_back);
    let n_whales = n_individuals + one_offs.len();
    for (offset, split) in one_offs.into_iter().enumerate() {
        images.push(PlannedImage {
            image: names.image(&mut rng),
            split,
            label: NEW_WHALE.to_owned(),
            whale_idx: n_individuals + offset,
        });
    }

    images.sort_by(|a, b| a.image.cmp(&b.image));
    LabelPlan {
        images,
        n_individuals,
        n_whales,
    }
}

impl LabelPlan {
    /// The images of one split, in file-name order.
    pub fn in_split(&self, split: Split) -> impl Iterator<Item = &PlannedImage> {
        self.images.iter().filter(move |image| image.split == split)
    }

    /// The counts [`generate`](super::generate) reports for this plan.
    pub fn report(&self) -> SynthReport {
        let is_new = |image: &&PlannedImage| image.label == NEW_WHALE;
        SynthReport {
            n_train: self.in_split(Split::Train).count(),
            n_test: self.in_split(Split::Test).count(),
            n_individuals: self.n_individuals,
            n_new_whale_train: self.in_split(Split::Train).filter(is_new).count(),
        }
    }
}

/// Most training images one individual gets, as in the Kaggle set once
/// `new_whale` is left out.
const MAX_CLASS_SIZE: usize = 30;

/// Exponent of the power law of class sizes: with it about 55% of the
/// individuals have one training image and 28% three or more, close to the
/// Kaggle training set.
const CLASS_SIZE_EXPONENT: f64 = 1.8;

/// Share of `new_whale` among training images (38% in the Kaggle set).
const NEW_WHALE_SHARE: f64 = 0.4;

/// Test images of unseen individuals per held-back test image.
const UNSEEN_PER_HELD_BACK: f64 = 0.6;

/// Training images per named individual, with at least one individual in
/// six holding three or more so that training has anchors to sample.
fn draw_class_sizes(n_individuals: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let weights = (1..=MAX_CLASS_SIZE).map(|k| (k as f64).powf(-CLASS_SIZE_EXPONENT));
    let sizes = WeightedIndex::new(weights).expect("class-size weights are positive");
    let mut class_sizes: Vec<usize> = (0..n_individuals).map(|_| sizes.sample(rng) + 1).collect();

    let n_anchors = class_sizes.iter().filter(|&&n| n >= 3).count();
    let mut n_missing = (n_individuals / 6).max(1).saturating_sub(n_anchors);
    for size in class_sizes.iter_mut().filter(|n| **n < 3) {
        if n_missing == 0 {
            break;
        }
        *size = 3;
        n_missing -= 1;
    }
    class_sizes
}

/// Test images held back from an individual with `n_train` training images.
fn n_held_back(n_train: usize) -> usize {
    if n_train >= 2 {
        1 + n_train / 8
    } else {
        0
    }
}

fn plan_named(class_sizes: &[usize], names: &mut Names, rng: &mut ChaCha8Rng) -> Vec<PlannedImage> {
    let mut images = Vec::new();
    for (whale_idx, &n_train) in class_sizes.iter().enumerate() {
        let label = names.whale_id(rng);
        let train = iter::repeat_n(Split::Train, n_train);
        let test = iter::repeat_n(Split::Test, n_held_back(n_train));
        for split in train.chain(test) {
            let image = names.image(rng);
            images.push(PlannedImage {
                image,
                split,
                label: label.clone(),
                whale_idx,
            });
        }
    }
    images
}

/// Splits of the one-off individuals: `new_whale` training images, then
/// unseen test images.
fn plan_one_offs(n_named_train: usize, n_held_back: usize) -> Vec<Split> {
    let ratio = NEW_WHALE_SHARE / (1.0 - NEW_WHALE_SHARE);
    let n_new_whale = (n_named_train as f64 * ratio).round() as usize;
    let n_unseen = ((n_held_back as f64 * UNSEEN_PER_HELD_BACK).round() as usize).max(1);
    let train = iter::repeat_n(Split::Train, n_new_whale);
    train.chain(iter::repeat_n(Split::Test, n_unseen)).collect()
}

/// Draws unique image names and individual ids.
#[derive(Default)]
struct Names {
    images: HashSet<u32>,
    ids: HashSet<u32>,
}

impl Names {
    fn image(&mut self, rng: &mut ChaCha8Rng) -> String {
        let value = draw_unique(&mut self.images, || rng.gen());
        format!("{value:08x}.jpg")
    }

    fn whale_id(&mut self, rng: &mut ChaCha8Rng) -> String {
        let value = draw_unique(&mut self.ids, || rng.gen::<u32>() & 0x0fff_ffff);
        format!("w_{value:07x}")
    }
}

fn draw_unique(seen: &mut HashSet<u32>, mut draw: impl FnMut() -> u32) -> u32 {
    loop {
        let value = draw();
        if seen.insert(value) {
            return value;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn train_class_sizes(plan: &LabelPlan) -> HashMap<&str, usize> {
        let mut sizes = HashMap::new();
        for image in plan
            .in_split(Split::Train)
            .filter(|image| image.label != NEW_WHALE)
        {
            *sizes.entry(image.label.as_str()).or_default() += 1;
        }
        sizes
    }

    #[test]
    fn new_whale_share_is_about_forty_percent() {
        for seed in 0..6 {
            let report = plan_labels(60, seed).report();
            let share = report.n_new_whale_train as f64 / report.n_train as f64;
            assert!(
                (0.3..=0.5).contains(&share),
                "seed {seed}: new_whale share {share}"
            );
        }
    }

    #[test]
    fn class_sizes_have_a_long_tail() {
        let plan = plan_labels(300, 3);
        let sizes = train_class_sizes(&plan);
        let count = |keep: fn(usize) -> bool| sizes.values().filter(|&&n| keep(n)).count();

        assert_eq!(sizes.len(), 300);
        assert!(
            count(|n| n == 1) >= 120,
            "too few individuals with one image"
        );
        assert!(
            count(|n| n >= 3) >= 60,
            "too few individuals with three or more"
        );
        assert!(count(|n| n >= 10) >= 3, "no individual with ten or more");
        assert!(sizes.values().all(|&n| n <= MAX_CLASS_SIZE));
    }

    #[test]
    fn image_count_is_proportional_to_individuals() {
        for seed in 0..4 {
            let report = plan_labels(40, seed).report();
            assert!(
                (120..=300).contains(&report.n_train),
                "seed {seed}: {report:?}"
            );
            let test_share = report.n_test as f64 / report.n_train as f64;
            assert!((0.1..=0.3).contains(&test_share), "seed {seed}: {report:?}");
        }
    }

    #[test]
    fn test_holds_known_and_unseen_individuals() {
        for n_individuals in [1, 2, 5, 12, 40] {
            let plan = plan_labels(n_individuals, 11);
            let sizes = train_class_sizes(&plan);
            let test: Vec<_> = plan.in_split(Split::Test).collect();
            let seen: HashSet<usize> = plan
                .in_split(Split::Train)
                .map(|image| image.whale_idx)
                .collect();

            assert!(
                test.iter().any(|image| image.label != NEW_WHALE),
                "n = {n_individuals}"
            );
            for image in test.iter().filter(|image| image.label != NEW_WHALE) {
                assert!(
                    sizes[image.label.as_str()] >= 2,
                    "{} held back",
                    image.label
                );
            }
            let unseen: Vec<_> = test
                .iter()
                .filter(|image| image.label == NEW_WHALE)
                .collect();
            assert!(!unseen.is_empty(), "n = {n_individuals}");
            assert!(unseen.iter().all(|image| !seen.contains(&image.whale_idx)));
        }
    }

    #[test]
    fn new_whales_are_one_offs_and_names_are_unique() {
        let plan = plan_labels(40, 5);
        let mut photos_of = HashMap::<usize, usize>::new();
        for image in &plan.images {
            *photos_of.entry(image.whale_idx).or_default() += 1;
        }
        let new_whales = plan.images.iter().filter(|image| image.label == NEW_WHALE);
        assert!(new_whales
            .clone()
            .all(|image| photos_of[&image.whale_idx] == 1));
        assert!(new_whales
            .clone()
            .all(|image| image.whale_idx >= plan.n_individuals));

        let names: HashSet<_> = plan.images.iter().map(|image| &image.image).collect();
        assert_eq!(names.len(), plan.images.len());
        for image in &plan.images {
            assert_eq!(image.image.len(), 12, "{}", image.image);
            let is_id = image.label.len() == 9 && image.label.starts_with("w_");
            assert!(is_id || image.label == NEW_WHALE, "{}", image.label);
        }
    }

    #[test]
    fn plan_depends_only_on_the_seed() {
        assert_eq!(plan_labels(20, 9), plan_labels(20, 9));
        assert_ne!(plan_labels(20, 9), plan_labels(20, 10));
    }
}
