//! Test data shared by the end-to-end tests: the synthetic set with one
//! individual kept out of the gallery, its boxes, and a second shot of a
//! photo.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::Path;

use flukeid::model::{default_weights_path, Backbone};
use flukeid::synth::{generate, SynthConfig};

/// Named individuals in the synthetic set.
pub const N_INDIVIDUALS: usize = 24;

/// The synthetic data set, less one individual kept back to be discovered
/// through an upload.
pub struct DataSetup {
    /// Test photos of individuals in the gallery, with their truth.
    pub known_tests: Vec<(String, String)>,
    /// Training photos of the individual left out of `train.csv`.
    pub newcomer_photos: Vec<String>,
    pub boxes: HashMap<String, [f64; 4]>,
    pub n_gallery_individuals: usize,
}

pub fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|line| line.split(',').map(str::to_string).collect())
        .collect()
}

/// Stops the test with what to run when the converted ImageNet weights of
/// EfficientNet-Lite0, which the end-to-end tests start from, are missing.
pub fn require_lite0_weights() {
    let weights = default_weights_path(Backbone::EfficientnetLite0);
    assert!(
        weights.is_file(),
        "{} is missing; run scripts/setup.sh",
        weights.display()
    );
}

/// Writes the synthetic set and takes the largest individual out of
/// `train.csv`, so that the gallery has never seen it.
pub fn prepare_data(dir: &Path) -> DataSetup {
    generate(&SynthConfig {
        out: dir.to_path_buf(),
        n_individuals: N_INDIVIDUALS,
        seed: 7,
    })
    .unwrap();
    let train = read_csv(&dir.join("train.csv"));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for row in train.iter().filter(|row| row[1] != "new_whale") {
        *counts.entry(&row[1]).or_default() += 1;
    }
    let newcomer = counts
        .iter()
        .max_by_key(|(id, n)| (**n, *id))
        .map(|(id, _)| id.to_string())
        .unwrap();
    let newcomer_photos = train
        .iter()
        .filter(|r| r[1] == newcomer)
        .map(|r| r[0].clone())
        .collect();
    let kept: Vec<String> = train
        .iter()
        .filter(|r| r[1] != newcomer)
        .map(|r| r.join(","))
        .collect();
    std::fs::write(
        dir.join("train.csv"),
        format!("Image,Id\n{}\n", kept.join("\n")),
    )
    .unwrap();

    let in_gallery: HashSet<&str> = counts
        .keys()
        .copied()
        .filter(|id| *id != newcomer)
        .collect();
    let known_tests = read_csv(&dir.join("test_truth.csv"))
        .into_iter()
        .filter(|row| in_gallery.contains(row[1].as_str()))
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    let boxes = read_csv(&dir.join("bounding_boxes.csv"))
        .into_iter()
        .map(|r| {
            (
                r[0].clone(),
                [1, 2, 3, 4].map(|i| r[i].parse::<f64>().unwrap()),
            )
        })
        .collect();
    DataSetup {
        known_tests,
        newcomer_photos,
        boxes,
        n_gallery_individuals: in_gallery.len(),
    }
}

/// A second shot of the fluke in `photo`: framed a few pixels further right
/// and down, brighter, and compressed again, with its box moved to match.
///
/// A model trained for two short epochs on small crops does not yet match
/// two independent photos of an individual it never trained on (the top-5
/// check above measures how it does on known ones), so the second photo is
/// made from the first: what is tested here is that a confirmed photo joins
/// the live gallery at once.
pub fn second_shot(photo: &[u8], bbox: [f64; 4]) -> (Vec<u8>, [f64; 4]) {
    const SHIFT: u32 = 6;
    let image = image::load_from_memory(photo).unwrap().into_rgb8();
    let (width, height) = image.dimensions();
    let reframed =
        image::imageops::crop_imm(&image, SHIFT, SHIFT, width - SHIFT, height - SHIFT).to_image();
    let brighter = image::imageops::colorops::brighten(&reframed, 10);
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85);
    brighter.write_with_encoder(encoder).unwrap();
    let moved = bbox.map(|v| (v - f64::from(SHIFT)).max(0.0));
    (bytes, moved)
}
