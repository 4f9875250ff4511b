//! A synthetic humpback fluke photo data set in the Kaggle "Humpback Whale
//! Identification" layout, for tests and demos where the real photos are not
//! at hand.
//!
//! Every individual carries identity marks drawn from its own seed: the
//! scalloped and nicked trailing edge of its fluke, the black-and-white
//! pattern of the underside and a few light scars. Every photo then varies
//! what does not tell individuals apart: pose, scale, position, lighting,
//! sea and sky, spray, water covering the fluke, and JPEG compression. The
//! same seed writes byte-identical files. This module only writes data sets;
//! reading them is [`crate::data`]'s job.

use std::collections::{BTreeMap, HashSet};
use std::f32::consts::{PI, TAU};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::iter;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use jpeg_encoder::{ColorType, Encoder, EncodingError};
use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tracing::{info, warn};

use crate::data::{Split, NEW_WHALE};

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Folder that receives `train/`, `test/` and the CSV files; created if
    /// missing.
    pub out: PathBuf,
    /// Number of named individuals; the image count follows from it.
    pub n_individuals: usize,
    /// Seed for everything: the same seed writes byte-identical files.
    pub seed: u64,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthReport {
    pub n_train: usize,
    pub n_test: usize,
    /// Named individuals, the ones with a `w_` label.
    pub n_individuals: usize,
    pub n_new_whale_train: usize,
}

/// Why a synthetic data set could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("a synthetic data set needs at least one individual")]
    NoIndividuals,
    #[error("cannot create folder {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list folder {}", path.display())]
    ListDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Left in place, the stray file would join the data set: `test/` is
    /// read by listing the folder.
    #[error("stray file {file} in {}: use an empty folder", path.display())]
    StrayFile { path: PathBuf, file: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode image {}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: EncodingError,
    },
    #[error("{n_failed} of {n_images} images could not be written")]
    Images {
        n_failed: usize,
        n_images: usize,
        #[source]
        first: Box<SynthError>,
    },
}

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

/// Writes a synthetic data set in the Kaggle layout into `config.out`:
/// `train/` and `test/` JPEGs, `train.csv`, `bounding_boxes.csv`,
/// `sample_submission.csv` and `test_truth.csv`.
///
/// # Errors
///
/// [`SynthError::NoIndividuals`] when `n_individuals` is zero, and a variant
/// naming the path when a folder, image or CSV file cannot be written. A
/// failed image does not stop the others; [`SynthError::Images`] counts them.
pub fn generate(config: &SynthConfig) -> Result<SynthReport, SynthError> {
    if config.n_individuals == 0 {
        return Err(SynthError::NoIndividuals);
    }
    let started = Instant::now();
    let plan = plan_labels(config.n_individuals, config.seed);
    for split in [Split::Train, Split::Test] {
        prepare_dir(&split_dir(&config.out, split), &plan)?;
    }

    let marks = draw_all_marks(plan.n_whales, config.seed);
    let boxes = render_all(&plan, &marks, config)?;
    write_csvs(&config.out, &plan, &boxes)?;

    let report = plan.report();
    info!(
        n_train = report.n_train,
        n_test = report.n_test,
        n_individuals = report.n_individuals,
        seconds = started.elapsed().as_secs_f32(),
        out = %config.out.display(),
        "synthetic data set written"
    );
    Ok(report)
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

    /// The counts [`generate`] reports for this plan.
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

/// Independent random streams, so that an image's pixels depend only on the
/// seed and the image's index, never on the order threads run in.
#[derive(Clone, Copy)]
enum Stream {
    Plan = 1,
    Marks = 2,
    Image = 3,
}

fn rng_for(seed: u64, stream: Stream, idx: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((stream as u64) << 48) | idx as u64);
    rng
}

fn split_dir(out: &Path, split: Split) -> PathBuf {
    out.join(split.folder())
}

/// Creates a split's folder, refusing one that holds files the plan does
/// not write; an earlier run with the same seed and size is fine.
fn prepare_dir(path: &Path, plan: &LabelPlan) -> Result<(), SynthError> {
    fs::create_dir_all(path).map_err(|source| SynthError::CreateDir {
        path: path.to_owned(),
        source,
    })?;
    let list_error = |source| SynthError::ListDir {
        path: path.to_owned(),
        source,
    };
    let planned: HashSet<&str> = plan
        .images
        .iter()
        .map(|image| image.image.as_str())
        .collect();
    for entry in fs::read_dir(path).map_err(list_error)? {
        let file = entry
            .map_err(list_error)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !planned.contains(file.as_str()) {
            return Err(SynthError::StrayFile {
                path: path.to_owned(),
                file,
            });
        }
    }
    Ok(())
}

fn draw_all_marks(n_whales: usize, seed: u64) -> Vec<Marks> {
    (0..n_whales)
        .into_par_iter()
        .map(|whale_idx| Marks::draw(&mut rng_for(seed, Stream::Marks, whale_idx)))
        .collect()
}

/// Renders and writes every image, going on past failures; returns the
/// fluke boxes in plan order.
fn render_all(
    plan: &LabelPlan,
    marks: &[Marks],
    config: &SynthConfig,
) -> Result<Vec<FlukeBox>, SynthError> {
    let results: Vec<_> = plan
        .images
        .par_iter()
        .enumerate()
        .map(|(image_idx, planned)| {
            let mut rng = rng_for(config.seed, Stream::Image, image_idx);
            let photo = Photo::render(&marks[planned.whale_idx], &mut rng);
            let path = split_dir(&config.out, planned.split).join(&planned.image);
            write_jpeg(&path, &photo.pixels, photo.quality).map(|()| photo.fluke_box)
        })
        .collect();
    gather(results)
}

fn gather(results: Vec<Result<FlukeBox, SynthError>>) -> Result<Vec<FlukeBox>, SynthError> {
    let n_images = results.len();
    let mut boxes = Vec::with_capacity(n_images);
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(fluke_box) => boxes.push(fluke_box),
            Err(error) => {
                warn!(%error, "synthetic image not written");
                failures.push(error);
            }
        }
    }

    match failures.len() {
        0 => Ok(boxes),
        n_failed => {
            let first = Box::new(failures.swap_remove(0));
            Err(SynthError::Images {
                n_failed,
                n_images,
                first,
            })
        }
    }
}

fn write_jpeg(path: &Path, pixels: &RgbImage, quality: u8) -> Result<(), SynthError> {
    let write_error = |source| SynthError::Write {
        path: path.to_owned(),
        source,
    };
    let mut writer = BufWriter::new(File::create(path).map_err(write_error)?);
    // Photos are at most 1050 pixels on a side, well inside JPEG's u16.
    let (width, height) = (pixels.width() as u16, pixels.height() as u16);
    Encoder::new(&mut writer, quality)
        .encode(pixels.as_raw(), width, height, ColorType::Rgb)
        .map_err(|source| SynthError::Encode {
            path: path.to_owned(),
            source,
        })?;
    writer.flush().map_err(write_error)
}

fn write_csvs(out: &Path, plan: &LabelPlan, boxes: &[FlukeBox]) -> Result<(), SynthError> {
    write_atomic(&out.join("train.csv"), &labels_csv(plan, Split::Train))?;
    write_atomic(&out.join("test_truth.csv"), &labels_csv(plan, Split::Test))?;
    write_atomic(&out.join("sample_submission.csv"), &submission_csv(plan))?;
    write_atomic(&out.join("bounding_boxes.csv"), &boxes_csv(plan, boxes))
}

/// Writes through a temporary file in the same folder and renames it, so an
/// error never leaves half a file behind.
fn write_atomic(path: &Path, text: &str) -> Result<(), SynthError> {
    let write_error = |source| SynthError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .expect("CSV paths lie inside the output folder");
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
    file.write_all(text.as_bytes()).map_err(write_error)?;
    file.persist(path)
        .map_err(|error| write_error(error.error))?;
    Ok(())
}

// The CSV fields are hex names, ids and integers, none of which needs
// quoting, so rows are formatted directly.

fn labels_csv(plan: &LabelPlan, split: Split) -> String {
    let rows = plan
        .in_split(split)
        .map(|image| format!("{},{}\n", image.image, image.label));
    iter::once("Image,Id\n".to_owned()).chain(rows).collect()
}

/// Every test image with `new_whale` and the four largest individuals, the
/// way Kaggle's sample submission fills in labels.
fn submission_csv(plan: &LabelPlan) -> String {
    let guess = iter::once(NEW_WHALE.to_owned())
        .chain(largest_individuals(plan, 4))
        .collect::<Vec<_>>()
        .join(" ");
    let rows = plan
        .in_split(Split::Test)
        .map(|image| format!("{},{guess}\n", image.image));
    iter::once("Image,Id\n".to_owned()).chain(rows).collect()
}

fn largest_individuals(plan: &LabelPlan, n: usize) -> Vec<String> {
    let mut counts = BTreeMap::<&str, usize>::new();
    for image in plan
        .in_split(Split::Train)
        .filter(|image| image.label != NEW_WHALE)
    {
        *counts.entry(&image.label).or_default() += 1;
    }
    let mut by_size: Vec<_> = counts.into_iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    by_size
        .into_iter()
        .take(n)
        .map(|(label, _)| label.to_owned())
        .collect()
}

fn boxes_csv(plan: &LabelPlan, boxes: &[FlukeBox]) -> String {
    let rows = plan
        .images
        .iter()
        .zip(boxes)
        .map(|(image, b)| format!("{},{},{},{},{}\n", image.image, b.x0, b.y0, b.x1, b.y1));
    iter::once("Image,x0,y0,x1,y1\n".to_owned())
        .chain(rows)
        .collect()
}

/// The visible fluke's pixels, with exclusive upper bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlukeBox {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

// ---------------------------------------------------------------------------
// Identity marks.
//
// A fluke lives in its own coordinates: `u` runs across the span from the
// left tip (-1) to the right tip (1), `v` runs up from the leading edge at
// the centre (0). Within a wing, `t` runs across the chord from the leading
// edge (0) to the smooth trailing edge (1); the pattern is stored over
// `(u, t)` so that it stays put on the fluke whatever the pose.
// ---------------------------------------------------------------------------

type Rgb = [f32; 3];

/// Samples of a profile over `u` in `[-1, 1]`: about one per pixel for the
/// largest flukes, 500 pixels from centre to tip.
const PROFILE_LEN: usize = 1025;

const TEX_U: usize = 320;
const TEX_T: usize = 80;
/// The texture reaches past the smooth trailing edge to cover bulges.
const TEX_T_MAX: f32 = 1.2;

const WHITE_SKIN: Rgb = [0.86, 0.88, 0.9];
const BLACK_SKIN: Rgb = [0.05, 0.055, 0.065];
const STOCK_SKIN: Rgb = [0.13, 0.14, 0.16];
const DORSAL_SKIN: Rgb = [0.09, 0.1, 0.11];

/// What makes one individual recognisable, the same in all its photos.
struct Marks {
    /// `v` of the leading edge.
    leading: Profile,
    /// Chord without notches: the unit of `t`.
    chord: Profile,
    /// `v` of the trailing edge, with the central notch, scallops and nicks.
    trailing: Profile,
    /// Underside grey level over `(u, t)`: 0 black, 1 white.
    texture: Texture,
}

struct Profile(Vec<f32>);

/// The smooth outline of a fluke, slightly different for each individual.
struct WingShape {
    /// How far the leading edge rises at the left and right tips.
    tip_lift: [f32; 2],
    chord: f32,
    notch_depth: f32,
    notch_width: f32,
}

struct Texture {
    grey: Vec<f32>,
}

/// A smooth field whose sign decides black or white on the underside.
struct PatternField {
    bias: f32,
    blobs: Vec<Blob>,
    grain: ValueNoise,
    grain_amp: f32,
    /// Darkening of the trailing margin, the leading margin and the centre.
    rim: f32,
    lead: f32,
    centre: f32,
}

struct Blob {
    centre: [f32; 2],
    inv_radius: [f32; 2],
    cos: f32,
    sin: f32,
    weight: f32,
}

impl Marks {
    fn draw(rng: &mut ChaCha8Rng) -> Marks {
        let shape = WingShape::draw(rng);
        let edge = trailing_edge_offsets(rng);
        let trailing = Profile::from_fn(|idx, u| {
            let taper = (shape.chord(u) / shape.chord).sqrt();
            let chord = shape.chord(u) + taper * edge[idx] - shape.notch(u);
            shape.leading(u) + chord.max(0.0)
        });

        Marks {
            leading: Profile::from_fn(|_, u| shape.leading(u)),
            chord: Profile::from_fn(|_, u| shape.chord(u)),
            trailing,
            texture: Texture::draw(rng),
        }
    }

    /// Colour and coverage of the wings at fluke coordinates `(u, v)`.
    fn wing_at(&self, u: f32, v: f32, pose: &Pose) -> Option<(Rgb, f32)> {
        if u.abs() >= 1.0 {
            return None;
        }
        let lead = self.leading.at(u);
        let inside = (v - lead).min(self.trailing.at(u) - v) * pose.v_px;
        let coverage = (inside + 0.5).clamp(0.0, 1.0);
        if coverage <= 0.0 {
            return None;
        }

        let t = (v - lead) / self.chord.at(u).max(1e-3);
        let underside = lerp3(BLACK_SKIN, WHITE_SKIN, self.texture.at(u, t));
        let shows_underside = smoothstep(pose.dorsal - 0.04, pose.dorsal, t);
        Some((lerp3(DORSAL_SKIN, underside, shows_underside), coverage))
    }

    /// Coverage of the tail stock, which runs from the wings down into the
    /// sea and flares where it meets them.
    fn stock_at(&self, u: f32, v: f32, pose: &Pose) -> f32 {
        // The stock is never wider than 0.17 either side: skip the exp in
        // stock_half_width for the pixels that cannot be on it.
        let top = (self.leading.at(0.0) + 0.04 - v) * pose.v_px;
        if u.abs() > 0.2 || top < -0.5 {
            return 0.0;
        }
        let side = (stock_half_width(v) - u.abs()) * pose.mean_u_px();
        (side.min(top) + 0.5).clamp(0.0, 1.0)
    }
}

/// Half width of the tail stock in `u` at height `v` below the wings.
fn stock_half_width(v: f32) -> f32 {
    let depth = (-v).max(0.0);
    0.085 + 0.06 * (depth / 0.8).min(1.0) + 0.08 * (-depth / 0.05).exp()
}

impl Profile {
    fn from_fn(f: impl Fn(usize, f32) -> f32) -> Profile {
        Profile((0..PROFILE_LEN).map(|idx| f(idx, profile_u(idx))).collect())
    }

    fn at(&self, u: f32) -> f32 {
        let x = (u.clamp(-1.0, 1.0) + 1.0) * 0.5 * (PROFILE_LEN - 1) as f32;
        let idx = (x as usize).min(PROFILE_LEN - 2);
        lerp(self.0[idx], self.0[idx + 1], x - idx as f32)
    }
}

fn profile_u(idx: usize) -> f32 {
    -1.0 + 2.0 * idx as f32 / (PROFILE_LEN - 1) as f32
}

/// Profile samples whose `u` lies in `range`.
fn profile_range(range: Range<f32>) -> Range<usize> {
    let to_idx = |u: f32| ((u + 1.0) * 0.5 * (PROFILE_LEN - 1) as f32).clamp(0.0, 1e6);
    let start = to_idx(range.start).ceil() as usize;
    let end = (to_idx(range.end).ceil() as usize).min(PROFILE_LEN);
    start.min(end)..end
}

impl WingShape {
    fn draw(rng: &mut ChaCha8Rng) -> WingShape {
        let lift = rng.gen_range(0.22..0.45);
        WingShape {
            tip_lift: [
                lift + rng.gen_range(-0.03..0.03),
                lift + rng.gen_range(-0.03..0.03),
            ],
            chord: rng.gen_range(0.34..0.46),
            notch_depth: rng.gen_range(0.08..0.16),
            notch_width: rng.gen_range(0.035..0.07),
        }
    }

    fn leading(&self, u: f32) -> f32 {
        self.tip_lift[usize::from(u > 0.0)] * u.abs().powf(1.5)
    }

    /// Widest at the centre, narrowing to a pointed tip.
    fn chord(&self, u: f32) -> f32 {
        self.chord * (1.0 - u.abs().powf(2.5)).max(0.0).powf(0.6)
    }

    fn notch(&self, u: f32) -> f32 {
        self.notch_depth * (1.0 - u.abs() / self.notch_width).max(0.0).powf(1.5)
    }
}

/// How far the trailing edge departs from the smooth chord at each profile
/// sample: a slow wave, a run of scallops with sharp points between them,
/// and a few deep nicks.
fn trailing_edge_offsets(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut offsets = vec![0.0; PROFILE_LEN];
    add_waviness(&mut offsets, rng);
    add_scallops(&mut offsets, rng);
    add_nicks(&mut offsets, rng);
    offsets
}

fn add_waviness(offsets: &mut [f32], rng: &mut ChaCha8Rng) {
    for harmonic in 1..=4 {
        let amplitude = rng.gen_range(0.0..0.025) / harmonic as f32;
        let phase = rng.gen_range(0.0..TAU);
        for (idx, offset) in offsets.iter_mut().enumerate() {
            *offset += amplitude * (PI * harmonic as f32 * profile_u(idx) + phase).sin();
        }
    }
}

fn add_scallops(offsets: &mut [f32], rng: &mut ChaCha8Rng) {
    let mut start = -1.0;
    while start < 1.0 {
        let width = rng.gen_range(0.025..0.11);
        let depth = rng.gen_range(0.002..0.022);
        let sharpness = rng.gen_range(0.4..1.0);
        for idx in profile_range(start..start + width) {
            let s = (profile_u(idx) - start) / width;
            offsets[idx] -= depth * (PI * s).sin().powf(sharpness);
        }
        start += width;
    }
}

fn add_nicks(offsets: &mut [f32], rng: &mut ChaCha8Rng) {
    for _ in 0..rng.gen_range(0..=4) {
        let side = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
        let centre = side * rng.gen_range(0.12..0.92);
        let width = rng.gen_range(0.01..0.045);
        let depth = rng.gen_range(0.02..0.07);
        let shape = rng.gen_range(0.6..2.0);
        for idx in profile_range(centre - width..centre + width) {
            let distance = (profile_u(idx) - centre).abs() / width;
            offsets[idx] -= depth * (1.0 - distance).max(0.0).powf(shape);
        }
    }
}

impl Texture {
    fn draw(rng: &mut ChaCha8Rng) -> Texture {
        let field = PatternField::draw(rng);
        let grey = (0..TEX_U * TEX_T)
            .map(|texel_idx| {
                let (u, t) = texel_to_fluke(texel_idx % TEX_U, texel_idx / TEX_U);
                smoothstep(-0.12, 0.12, field.at(u, t))
            })
            .collect();

        let mut texture = Texture { grey };
        texture.add_spots(rng);
        texture.add_scars(rng);
        texture
    }

    /// Bilinear grey level at `(u, t)`.
    fn at(&self, u: f32, t: f32) -> f32 {
        let x = ((u + 1.0) * 0.5).clamp(0.0, 1.0) * (TEX_U - 1) as f32;
        let y = (t / TEX_T_MAX).clamp(0.0, 1.0) * (TEX_T - 1) as f32;
        let (i, j) = ((x as usize).min(TEX_U - 2), (y as usize).min(TEX_T - 2));
        let (fx, fy) = (x - i as f32, y - j as f32);
        let texel = |di: usize, dj: usize| self.grey[(j + dj) * TEX_U + i + di];
        lerp(
            lerp(texel(0, 0), texel(1, 0), fx),
            lerp(texel(0, 1), texel(1, 1), fx),
            fy,
        )
    }

    /// Small dots that contrast with what lies under them.
    fn add_spots(&mut self, rng: &mut ChaCha8Rng) {
        for _ in 0..rng.gen_range(0..=25) {
            let centre = [
                rng.gen_range(0.0..TEX_U as f32),
                rng.gen_range(0.0..TEX_T as f32 * 0.8),
            ];
            let radius = rng.gen_range(0.7..2.2);
            let under = self.grey[centre[1] as usize * TEX_U + centre[0] as usize];
            let tone = if under > 0.5 { 0.05 } else { 0.95 };
            for_disc(centre, radius, |texel_idx, coverage| {
                let grey = &mut self.grey[texel_idx];
                *grey = lerp(*grey, tone, coverage);
            });
        }
    }

    /// Thin scars, single or in parallel rakes: light on black skin and grey
    /// on white skin, so they show on both.
    fn add_scars(&mut self, rng: &mut ChaCha8Rng) {
        let mut mask = vec![0.0; TEX_U * TEX_T];
        for _ in 0..rng.gen_range(1..=4) {
            draw_scar_group(&mut mask, rng);
        }
        for (grey, scar) in self.grey.iter_mut().zip(&mask) {
            let tone = if *grey < 0.5 { 0.9 } else { 0.45 };
            *grey = lerp(*grey, tone, *scar);
        }
    }
}

fn texel_to_fluke(i: usize, j: usize) -> (f32, f32) {
    let u = -1.0 + 2.0 * i as f32 / (TEX_U - 1) as f32;
    (u, TEX_T_MAX * j as f32 / (TEX_T - 1) as f32)
}

fn draw_scar_group(mask: &mut [f32], rng: &mut ChaCha8Rng) {
    let n_lines = if rng.gen_bool(0.35) {
        rng.gen_range(2..=4)
    } else {
        1
    };
    let start = [
        rng.gen_range(0.0..TEX_U as f32),
        rng.gen_range(0.1..0.85) * TEX_T as f32,
    ];
    let angle: f32 = rng.gen_range(0.0..PI);
    let length = rng.gen_range(8.0..60.0);
    let bend = rng.gen_range(-0.03..0.03);
    let spacing = rng.gen_range(2.5..4.5);
    let radius = rng.gen_range(0.5..0.9);

    for line in 0..n_lines {
        let offset = line as f32 * spacing;
        let from = [
            start[0] - angle.sin() * offset,
            start[1] + angle.cos() * offset,
        ];
        trace_scar(mask, from, angle, bend, length, radius);
    }
}

fn trace_scar(mask: &mut [f32], from: [f32; 2], angle: f32, bend: f32, length: f32, radius: f32) {
    const STEP: f32 = 0.5;
    let (mut point, mut angle, mut travelled) = (from, angle, 0.0);
    while travelled < length {
        for_disc(point, radius, |texel_idx, coverage| {
            mask[texel_idx] = mask[texel_idx].max(coverage);
        });
        point = [point[0] + angle.cos() * STEP, point[1] + angle.sin() * STEP];
        angle += bend * STEP;
        travelled += STEP;
    }
}

/// Calls `paint` with the index and coverage of every texel a disc touches.
fn for_disc(centre: [f32; 2], radius: f32, mut paint: impl FnMut(usize, f32)) {
    let reach = radius + 1.0;
    let columns = texel_span(centre[0], reach, TEX_U);
    for j in texel_span(centre[1], reach, TEX_T) {
        for i in columns.clone() {
            let distance = (i as f32 - centre[0]).hypot(j as f32 - centre[1]);
            let coverage = (radius + 0.5 - distance).clamp(0.0, 1.0);
            if coverage > 0.0 {
                paint(j * TEX_U + i, coverage);
            }
        }
    }
}

fn texel_span(centre: f32, reach: f32, len: usize) -> Range<usize> {
    let start = (centre - reach).floor().max(0.0) as usize;
    let end = ((centre + reach).ceil().max(0.0) as usize + 1).min(len);
    start.min(end)..end
}

impl PatternField {
    fn draw(rng: &mut ChaCha8Rng) -> PatternField {
        let mut blobs = Vec::new();
        for _ in 0..rng.gen_range(3..=9) {
            let blob = Blob::draw(rng);
            // Undersides are often roughly mirror-symmetric, never exactly.
            if rng.gen_bool(0.6) {
                blobs.push(blob.mirrored(rng));
            }
            blobs.push(blob);
        }

        PatternField {
            bias: rng.gen_range(-1.2..1.2),
            blobs,
            grain: ValueNoise::draw(rng),
            grain_amp: rng.gen_range(0.1..0.5),
            rim: rng.gen_range(0.0..2.0),
            lead: rng.gen_range(0.0..1.5),
            centre: rng.gen_range(0.0..1.5),
        }
    }

    fn at(&self, u: f32, t: f32) -> f32 {
        let blobs: f32 = self.blobs.iter().map(|blob| blob.at(u, t)).sum();
        let grain = (self.grain.at(u * 9.0 + 3.0, t * 6.0) - 0.5) * 2.0 * self.grain_amp;
        let rim = self.rim * smoothstep(0.78, 1.0, t);
        let lead = self.lead * (1.0 - smoothstep(0.0, 0.15, t));
        let centre = self.centre * (-(u / 0.14).powi(2)).exp();
        self.bias + blobs + grain - rim - lead - centre
    }
}

impl Blob {
    fn draw(rng: &mut ChaCha8Rng) -> Blob {
        let angle: f32 = rng.gen_range(0.0..PI);
        let sign = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
        Blob {
            centre: [rng.gen_range(-0.95..0.95), rng.gen_range(0.0..1.0)],
            inv_radius: [
                1.0 / rng.gen_range(0.05..0.35),
                1.0 / rng.gen_range(0.08..0.5),
            ],
            cos: angle.cos(),
            sin: angle.sin(),
            weight: sign * rng.gen_range(0.6..1.8),
        }
    }

    /// The blob reflected across the centre line, slightly displaced.
    fn mirrored(&self, rng: &mut ChaCha8Rng) -> Blob {
        let shift = [rng.gen_range(-0.06..0.06), rng.gen_range(-0.06..0.06)];
        Blob {
            centre: [shift[0] - self.centre[0], self.centre[1] + shift[1]],
            cos: -self.cos,
            weight: self.weight * rng.gen_range(0.7..1.2),
            ..*self
        }
    }

    fn at(&self, u: f32, t: f32) -> f32 {
        let (du, dt) = (u - self.centre[0], t - self.centre[1]);
        let a = (du * self.cos + dt * self.sin) * self.inv_radius[0];
        let b = (dt * self.cos - du * self.sin) * self.inv_radius[1];
        let r2 = a * a + b * b;
        // exp(-6) is below what the threshold can notice.
        if r2 > 6.0 {
            0.0
        } else {
            self.weight * (-r2).exp()
        }
    }
}

// ---------------------------------------------------------------------------
// Photos.
// ---------------------------------------------------------------------------

const WIDTH_RANGE: Range<usize> = 700..1051;
const ASPECT_RANGE: Range<f32> = 0.45..0.75;
/// Tip-to-tip span of the fluke as a share of the image width.
const SPAN_RANGE: Range<f32> = 0.35..0.85;
/// Largest roll of the fluke in the image plane, 10 degrees.
const MAX_ROLL: f32 = 0.1745;

const SEA_COLOURS: [Rgb; 6] = [
    [0.05, 0.16, 0.3],
    [0.07, 0.24, 0.3],
    [0.19, 0.24, 0.29],
    [0.03, 0.08, 0.16],
    [0.11, 0.2, 0.2],
    [0.1, 0.18, 0.35],
];
const SKY_COLOURS: [Rgb; 4] = [
    [0.42, 0.58, 0.8],
    [0.66, 0.7, 0.74],
    [0.55, 0.66, 0.78],
    [0.8, 0.82, 0.84],
];
const CLOUD: Rgb = [0.9, 0.91, 0.92];
const FOAM: Rgb = [0.93, 0.95, 0.96];
const MIST: Rgb = [0.88, 0.91, 0.93];

struct Photo {
    pixels: RgbImage,
    fluke_box: FlukeBox,
    quality: u8,
}

/// Everything in a photo but the whale.
struct Scene {
    width: usize,
    height: usize,
    /// Row of the horizon; negative when the camera looks down at the sea
    /// only.
    horizon: f32,
    sky_top: Rgb,
    sky_horizon: Rgb,
    cloudiness: f32,
    sea_far: Rgb,
    sea_near: Rgb,
    /// Wave length in pixels at the bottom of the image.
    wave_len: f32,
    wave_amp: f32,
    glint: f32,
    haze: f32,
}

/// Where and how the fluke sits in the photo.
struct Pose {
    /// Image position of the fluke's origin, the leading edge's centre.
    anchor: [f32; 2],
    cos: f32,
    sin: f32,
    /// Pixels per unit of `u` for the left and right wing; they differ a
    /// little, as when one wing is nearer the camera.
    wing_px: [f32; 2],
    /// Pixels per unit of `v`, smaller when the fluke tilts away.
    v_px: f32,
    /// Fluke height `v` where the sea cuts the tail stock; above zero the
    /// sea hides part of the wings.
    water_v: f32,
    /// Image row of the sea surface at the fluke.
    water_y: f32,
    /// Region the fluke may touch: x0, y0, x1, y1 in pixels.
    bounds: [f32; 4],
    /// Brightness gradient over `u` and `v`.
    shade: [f32; 2],
    /// Share of the chord, from the leading edge, where the dark back of
    /// the fluke shows because it tilts towards the camera.
    dorsal: f32,
}

/// The camera's rendering of light: exposure, colour cast, contrast, tone
/// curve, vignette and sensor grain.
struct Light {
    gain: Rgb,
    contrast: f32,
    offset: f32,
    gamma: f32,
    grain: f32,
    vignette: f32,
}

/// Linear RGB working buffer, values nominally in `[0, 1]`.
struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<Rgb>,
}

/// Image row of the sea surface in each column.
struct WaterLine(Vec<f32>);

impl Photo {
    fn render(marks: &Marks, rng: &mut ChaCha8Rng) -> Photo {
        let scene = Scene::draw(rng);
        let pose = Pose::draw(marks, &scene, rng);
        let mut canvas = Canvas::new(scene.width, scene.height);
        paint_background(&mut canvas, &scene, rng);

        let water = WaterLine::draw(&pose, scene.width, rng);
        let fluke_box = paint_fluke(&mut canvas, marks, &pose, &water);
        paint_spray(&mut canvas, marks, &pose, &water, rng);

        let light = Light::draw(rng);
        let pixels = light.develop(&canvas, rng);
        Photo {
            pixels,
            fluke_box,
            quality: rng.gen_range(70..=92),
        }
    }
}

impl Scene {
    fn draw(rng: &mut ChaCha8Rng) -> Scene {
        let width = rng.gen_range(WIDTH_RANGE);
        let height = (width as f32 * rng.gen_range(ASPECT_RANGE)).round() as usize;
        let horizon = if rng.gen_bool(0.25) {
            rng.gen_range(-0.6..-0.05)
        } else {
            rng.gen_range(0.05..0.45)
        };
        let sky_horizon = jitter(rng, [0.78, 0.82, 0.86], 0.08);
        let sea_colour = pick(rng, &SEA_COLOURS);
        let sea_near = jitter(rng, sea_colour, 0.04);
        let sky_colour = pick(rng, &SKY_COLOURS);

        Scene {
            width,
            height,
            horizon: horizon * height as f32,
            sky_top: jitter(rng, sky_colour, 0.06),
            sky_horizon,
            cloudiness: rng.gen_range(0.0..0.9),
            sea_far: lerp3(sea_near, sky_horizon, rng.gen_range(0.2..0.55)),
            sea_near,
            wave_len: rng.gen_range(0.04..0.14) * width as f32,
            wave_amp: rng.gen_range(0.08..0.35),
            glint: rng.gen_range(0.0..0.5),
            haze: rng.gen_range(0.2..0.8),
        }
    }
}

impl Pose {
    /// Draws a pose, shrinking the fluke until it fits the frame with the
    /// sea surface below the horizon.
    fn draw(marks: &Marks, scene: &Scene, rng: &mut ChaCha8Rng) -> Pose {
        let roll: f32 = rng.gen_range(-MAX_ROLL..MAX_ROLL);
        let wing_scale = [rng.gen_range(0.88..1.12), rng.gen_range(0.88..1.12)];
        let tilt = rng.gen_range(0.8..1.1);
        let mut pose = Pose {
            anchor: [0.0; 2],
            cos: roll.cos(),
            sin: roll.sin(),
            wing_px: [0.0; 2],
            v_px: 0.0,
            water_v: rng.gen_range(-0.45..0.06),
            water_y: 0.0,
            bounds: [0.0; 4],
            shade: [rng.gen_range(-0.15..0.15), rng.gen_range(-0.25..0.1)],
            dorsal: if rng.gen_bool(0.4) {
                rng.gen_range(0.0..0.2)
            } else {
                0.0
            },
        };

        let mut span = rng.gen_range(SPAN_RANGE) * scene.width as f32;
        loop {
            let half_span = span / (wing_scale[0] + wing_scale[1]);
            pose.wing_px = wing_scale.map(|scale| scale * half_span);
            pose.v_px = half_span * tilt;
            pose.bounds = pose.outline_bounds(marks);
            if let Some(anchor) = pose.place(scene, rng) {
                pose.move_to(anchor);
                return pose;
            }
            span *= 0.9;
        }
    }

    /// Bounds of the outline around the origin, before placing.
    fn outline_bounds(&self, marks: &Marks) -> [f32; 4] {
        let wing = (0..=64).flat_map(|step| {
            let u = -1.0 + step as f32 / 32.0;
            [(u, marks.leading.at(u)), (u, marks.trailing.at(u))]
        });
        let stock = [marks.leading.at(0.0) + 0.05, self.water_v - 0.15].map(|v| {
            let half_width = stock_half_width(v);
            [(-half_width, v), (half_width, v)]
        });

        let mut bounds = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for (u, v) in wing.chain(stock.into_iter().flatten()) {
            let [x, y] = self.to_image(u, v);
            bounds = [
                bounds[0].min(x),
                bounds[1].min(y),
                bounds[2].max(x),
                bounds[3].max(y),
            ];
        }
        [
            bounds[0] - 3.0,
            bounds[1] - 3.0,
            bounds[2] + 3.0,
            bounds[3] + 3.0,
        ]
    }

    /// Picks the origin's image position, or `None` when the fluke cannot
    /// fit.
    fn place(&self, scene: &Scene, rng: &mut ChaCha8Rng) -> Option<[f32; 2]> {
        let (width, height) = (scene.width as f32, scene.height as f32);
        let margin = 0.03 * height;
        let water_below = -self.water_v * self.v_px;
        let [x0, y0, x1, _] = self.bounds;

        let xs = margin - x0..width - margin - x1;
        let y_min = (margin - y0).max(scene.horizon + 0.05 * height - water_below);
        let ys = y_min..height - 0.04 * height - water_below;
        if xs.is_empty() || ys.is_empty() {
            return None;
        }
        Some([rng.gen_range(xs), rng.gen_range(ys)])
    }

    fn move_to(&mut self, anchor: [f32; 2]) {
        self.anchor = anchor;
        self.water_y = anchor[1] - self.water_v * self.v_px;
        let [x0, y0, x1, y1] = self.bounds;
        self.bounds = [
            x0 + anchor[0],
            y0 + anchor[1],
            x1 + anchor[0],
            y1 + anchor[1],
        ];
    }

    fn to_image(&self, u: f32, v: f32) -> [f32; 2] {
        let x = u * self.wing_px[usize::from(u > 0.0)];
        let y = -v * self.v_px;
        [
            self.anchor[0] + x * self.cos - y * self.sin,
            self.anchor[1] + x * self.sin + y * self.cos,
        ]
    }

    fn to_fluke(&self, px: f32, py: f32) -> (f32, f32) {
        let (dx, dy) = (px - self.anchor[0], py - self.anchor[1]);
        let x = dx * self.cos + dy * self.sin;
        let y = dy * self.cos - dx * self.sin;
        (x / self.wing_px[usize::from(x > 0.0)], -y / self.v_px)
    }

    fn mean_u_px(&self) -> f32 {
        0.5 * (self.wing_px[0] + self.wing_px[1])
    }

    /// Image column where the tail stock enters the sea.
    fn stock_x_at_water(&self) -> f32 {
        let v = (self.anchor[1] - self.water_y) / (self.v_px * self.cos);
        self.anchor[0] + v * self.v_px * self.sin
    }
}

impl WaterLine {
    fn draw(pose: &Pose, width: usize, rng: &mut ChaCha8Rng) -> WaterLine {
        let amplitude = rng.gen_range(0.5..4.0);
        let frequency = rng.gen_range(0.01..0.06);
        let phase = rng.gen_range(0.0..TAU);
        let rows = (0..width).map(|x| {
            let angle = x as f32 * frequency + phase;
            pose.water_y + amplitude * (angle.sin() + 0.4 * (2.7 * angle).sin())
        });
        WaterLine(rows.collect())
    }

    fn y_at(&self, x: usize) -> f32 {
        self.0[x.min(self.0.len() - 1)]
    }
}

fn paint_background(canvas: &mut Canvas, scene: &Scene, rng: &mut ChaCha8Rng) {
    let waves = ValueNoise::draw(rng);
    let clouds = ValueNoise::draw(rng);
    for y in 0..canvas.height {
        let row_y = y as f32 + 0.5;
        let row = canvas.row_mut(y);
        if row_y < scene.horizon {
            paint_sky_row(row, row_y, scene, &clouds);
        } else {
            paint_sea_row(row, row_y, scene, &waves);
        }
    }
}

fn paint_sky_row(row: &mut [Rgb], y: f32, scene: &Scene, clouds: &ValueNoise) {
    let base = lerp3(
        scene.sky_top,
        scene.sky_horizon,
        (y / scene.horizon).powf(0.8),
    );
    let cell = 0.2 * scene.width as f32;
    let clouds = clouds.row(y / (0.07 * scene.height as f32) + 40.0);
    for (x, pixel) in row.iter_mut().enumerate() {
        let cloud = clouds.at(x as f32 / cell);
        *pixel = lerp3(
            base,
            CLOUD,
            scene.cloudiness * smoothstep(0.45, 0.85, cloud),
        );
    }
}

/// Sea with waves that shrink and flatten towards the horizon: the noise
/// is sampled at a scale proportional to the distance below the horizon,
/// and rows are spaced logarithmically so waves keep their aspect ratio.
fn paint_sea_row(row: &mut [Rgb], y: f32, scene: &Scene, waves: &ValueNoise) {
    let (width, height) = (scene.width as f32, scene.height as f32);
    let depth = ((y - scene.horizon) / (height - scene.horizon)).clamp(0.02, 1.0);
    let haze = scene.haze * (-(y - scene.horizon) / (0.06 * height)).exp();
    let base = lerp3(scene.sea_far, scene.sea_near, depth.powf(0.6));
    let base = lerp3(base, scene.sky_horizon, haze);

    // Waves a few pixels long would alias into stripes; they fade out
    // towards the horizon, where haze hides them anyway.
    let far_fade = smoothstep(0.02, 0.15, depth);
    let (swell, sparkle) = (scene.wave_amp * far_fade, scene.glint * far_fade);
    let cell = scene.wave_len * depth;
    let ny = (height - scene.horizon) / (0.3 * scene.wave_len) * depth.ln();
    let waves = waves.fractal_row(ny);
    for (x, pixel) in row.iter_mut().enumerate() {
        let n = waves.at((x as f32 - 0.5 * width) / cell);
        let shade = 1.0 + swell * (n - 0.5) * 2.0;
        let glint = sparkle * ((n - 0.72) / 0.28).max(0.0).powi(2);
        *pixel = base.map(|c| c * shade + glint);
    }
}

/// Paints the fluke above the sea surface and returns the box around its
/// visible pixels.
fn paint_fluke(canvas: &mut Canvas, marks: &Marks, pose: &Pose, water: &WaterLine) -> FlukeBox {
    let [x0, y0, x1, y1] = canvas.clip(pose.bounds);
    let mut tracker = BoxTracker::default();
    for y in y0..y1 {
        for x in x0..x1 {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let above_water = (water.y_at(x) - py + 0.5).clamp(0.0, 1.0);
            if above_water <= 0.0 {
                continue;
            }
            let Some((colour, coverage)) = fluke_pixel(marks, pose, px, py) else {
                continue;
            };
            let alpha = coverage * above_water;
            canvas.blend(x, y, colour, alpha);
            if alpha >= 0.5 {
                tracker.add(x, y);
            }
        }
    }
    tracker
        .finish()
        .expect("part of every fluke shows above the sea")
}

fn fluke_pixel(marks: &Marks, pose: &Pose, px: f32, py: f32) -> Option<(Rgb, f32)> {
    let (u, v) = pose.to_fluke(px, py);
    let wing = marks.wing_at(u, v, pose);
    let wing_coverage = wing.map_or(0.0, |(_, coverage)| coverage);
    let coverage = wing_coverage.max(marks.stock_at(u, v, pose));
    if coverage <= 0.0 {
        return None;
    }

    let colour = match wing {
        Some((colour, _)) => lerp3(STOCK_SKIN, colour, wing_coverage / coverage),
        None => STOCK_SKIN,
    };
    let shade = 1.0 + pose.shade[0] * u + pose.shade[1] * (v - 0.2);
    Some((colour.map(|c| c * shade), coverage))
}

#[derive(Default)]
struct BoxTracker {
    bounds: Option<FlukeBox>,
}

impl BoxTracker {
    fn add(&mut self, x: usize, y: usize) {
        let pixel = FlukeBox {
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
        };
        self.bounds = Some(match self.bounds {
            None => pixel,
            Some(b) => FlukeBox {
                x0: b.x0.min(x),
                y0: b.y0.min(y),
                x1: b.x1.max(x + 1),
                y1: b.y1.max(y + 1),
            },
        });
    }

    fn finish(self) -> Option<FlukeBox> {
        self.bounds
    }
}

/// Whitewater where the stock enters the sea, sheets of water running off
/// the fluke, flying drops, and sometimes a mist cloud that hides part of
/// the fluke.
fn paint_spray(
    canvas: &mut Canvas,
    marks: &Marks,
    pose: &Pose,
    water: &WaterLine,
    rng: &mut ChaCha8Rng,
) {
    let base = [pose.stock_x_at_water(), pose.water_y];
    paint_foam(canvas, pose, base, rng);
    paint_streams(canvas, marks, pose, water, rng);
    paint_drops(canvas, pose, base, rng);
    paint_mist(canvas, pose, base, rng);
}

fn paint_foam(canvas: &mut Canvas, pose: &Pose, base: [f32; 2], rng: &mut ChaCha8Rng) {
    let half_width = stock_half_width(pose.water_v) * pose.mean_u_px() * rng.gen_range(1.2..3.0);
    let height = (rng.gen_range(0.02..0.08) * pose.v_px).max(2.0);
    let strength = rng.gen_range(0.4..0.95);
    let noise = ValueNoise::draw(rng);

    let region = [
        base[0] - 2.0 * half_width,
        base[1] - 3.0 * height,
        base[0] + 2.0 * half_width,
        base[1] + 1.5 * height,
    ];
    let [x0, y0, x1, y1] = canvas.clip(region);
    for y in y0..y1 {
        let dy = (y as f32 - base[1]) / height;
        let froth_row = noise.fractal_row(y as f32 / 4.0);
        for x in x0..x1 {
            let dx = (x as f32 - base[0]) / half_width;
            let envelope = (-(dx * dx + dy * dy)).exp();
            let froth = froth_row.at(x as f32 / 10.0) + 0.3 * envelope;
            canvas.blend(
                x,
                y,
                FOAM,
                strength * envelope * smoothstep(0.25, 0.75, froth),
            );
        }
    }
}

fn paint_streams(
    canvas: &mut Canvas,
    marks: &Marks,
    pose: &Pose,
    water: &WaterLine,
    rng: &mut ChaCha8Rng,
) {
    for _ in 0..rng.gen_range(0..=8) {
        let u = rng.gen_range(-0.9..0.9);
        let v = lerp(
            marks.leading.at(u),
            marks.trailing.at(u),
            rng.gen_range(0.3..1.0),
        );
        let [x, top] = pose.to_image(u, v);
        let sea = water.y_at(x.max(0.0) as usize);
        let bottom = lerp(top, sea, rng.gen_range(0.4..1.0));
        let half_width = rng.gen_range(0.6..2.0);
        let alpha = rng.gen_range(0.2..0.55);
        let phase = rng.gen_range(0.0..TAU);
        paint_stream(canvas, [x, top, bottom], half_width, alpha, phase);
    }
}

/// A broken vertical streak at column `line[0]` from row `line[1]` to
/// `line[2]`.
fn paint_stream(canvas: &mut Canvas, line: [f32; 3], half_width: f32, alpha: f32, phase: f32) {
    let [x, top, bottom] = line;
    let [x0, y0, x1, y1] = canvas.clip([x - half_width - 1.0, top, x + half_width + 1.0, bottom]);
    for y in y0..y1 {
        let pulse = 0.55 + 0.45 * (y as f32 * 0.15 + phase).sin();
        for column in x0..x1 {
            let across = ((column as f32 + 0.5 - x).abs() / half_width).min(1.0);
            canvas.blend(column, y, FOAM, alpha * pulse * (1.0 - across));
        }
    }
}

fn paint_drops(canvas: &mut Canvas, pose: &Pose, base: [f32; 2], rng: &mut ChaCha8Rng) {
    let spread = [0.5 * pose.mean_u_px(), 0.25 * pose.v_px];
    for _ in 0..rng.gen_range(0..=350) {
        let centre = [
            base[0] + gauss(rng) * spread[0],
            base[1] - 2.0 * gauss(rng).abs() * spread[1],
        ];
        let radius = rng.gen_range(0.4..2.2);
        let alpha = rng.gen_range(0.4..0.9);
        canvas.blend_disc(centre, radius, FOAM, alpha);
    }
}

fn paint_mist(canvas: &mut Canvas, pose: &Pose, base: [f32; 2], rng: &mut ChaCha8Rng) {
    if !rng.gen_bool(0.35) {
        return;
    }
    let noise = ValueNoise::draw(rng);
    for _ in 0..rng.gen_range(1..=3) {
        let [x0, y0, x1, y1] = pose.bounds;
        let centre = if rng.gen_bool(0.6) {
            [
                base[0] + gauss(rng) * 0.2 * pose.mean_u_px(),
                base[1] - rng.gen_range(0.0..0.3) * pose.v_px,
            ]
        } else {
            [rng.gen_range(x0..x1), rng.gen_range(y0..y1.max(y0 + 1.0))]
        };
        let sigma = rng.gen_range(0.08..0.3) * pose.mean_u_px();
        let peak = rng.gen_range(0.3..0.85);
        paint_cloud(canvas, centre, sigma, peak, &noise);
    }
}

fn paint_cloud(canvas: &mut Canvas, centre: [f32; 2], sigma: f32, peak: f32, noise: &ValueNoise) {
    // At 3.5 sigma the cloud is under 1% of its peak, so its edge is
    // invisible. The Gaussian is separable, which keeps exp out of the
    // inner loop.
    let reach = 3.5 * sigma;
    let region = [
        centre[0] - reach,
        centre[1] - reach,
        centre[0] + reach,
        centre[1] + reach,
    ];
    let [x0, y0, x1, y1] = canvas.clip(region);
    let gauss_1d = |offset: f32| (-offset * offset / (2.0 * sigma * sigma)).exp();
    let across: Vec<f32> = (x0..x1).map(|x| gauss_1d(x as f32 - centre[0])).collect();
    for y in y0..y1 {
        let dy = y as f32 - centre[1];
        let row_peak = peak * gauss_1d(dy);
        let puffs = noise.row(dy / (0.4 * sigma));
        for (x, gauss_x) in (x0..x1).zip(&across) {
            let puff = 0.5 + puffs.at((x as f32 - centre[0]) / (0.4 * sigma));
            canvas.blend(x, y, MIST, (row_peak * gauss_x * puff).min(1.0));
        }
    }
}

impl Light {
    fn draw(rng: &mut ChaCha8Rng) -> Light {
        let exposure = rng.gen_range(0.75..1.25);
        let cast = [
            rng.gen_range(0.9..1.1),
            rng.gen_range(0.92..1.08),
            rng.gen_range(0.9..1.1),
        ];
        Light {
            gain: cast.map(|c: f32| c * exposure),
            contrast: rng.gen_range(0.75..1.25),
            offset: rng.gen_range(-0.05..0.05),
            gamma: rng.gen_range(0.8..1.25),
            grain: rng.gen_range(0.005..0.03),
            vignette: rng.gen_range(0.0..0.35),
        }
    }

    /// Turns the canvas into 8-bit pixels.
    fn develop(&self, canvas: &Canvas, rng: &mut ChaCha8Rng) -> RgbImage {
        let curve = ToneCurve::new(self.gamma);
        let mut grain_stream = GrainStream::new(rng);
        let fade_x = vignette_falloff(canvas.width, 0.5 * self.vignette);
        let fade_y = vignette_falloff(canvas.height, 0.5 * self.vignette);
        // The exposure below, expanded: value * slope + intercept.
        let slope = self.gain.map(|gain| gain * self.contrast);
        let intercept = 0.5 - 0.5 * self.contrast + self.offset;

        let mut raw = vec![0; canvas.rgb.len() * 3];
        let rows = canvas
            .rgb
            .chunks_exact(canvas.width)
            .zip(raw.chunks_exact_mut(canvas.width * 3));
        for (y, (row, out)) in rows.enumerate() {
            for (x, (rgb, bytes)) in row.iter().zip(out.chunks_exact_mut(3)).enumerate() {
                let fade = 1.0 - fade_x[x] - fade_y[y];
                let grain = self.grain * grain_stream.next();
                for channel in 0..3 {
                    let exposed = rgb[channel] * slope[channel] + intercept;
                    bytes[channel] = curve.apply(exposed * fade + grain);
                }
            }
        }
        RgbImage::from_raw(canvas.width as u32, canvas.height as u32, raw)
            .expect("the buffer holds three bytes per pixel")
    }
}

/// Darkening towards the edges along one axis, quadratic in the distance
/// from the centre.
fn vignette_falloff(len: usize, strength: f32) -> Vec<f32> {
    let half = len as f32 * 0.5;
    (0..len)
        .map(|idx| strength * (idx as f32 / half - 1.0).powi(2))
        .collect()
}

/// Gamma applied through a table, to keep `powf` out of the pixel loop.
struct ToneCurve([u8; ToneCurve::LEVELS]);

impl ToneCurve {
    const LEVELS: usize = 1024;
    const TOP: i32 = Self::LEVELS as i32 - 1;

    fn new(gamma: f32) -> ToneCurve {
        let mut curve = [0; Self::LEVELS];
        for (level, byte) in curve.iter_mut().enumerate() {
            *byte = ((level as f32 / Self::TOP as f32).powf(gamma) * 255.0).round() as u8;
        }
        ToneCurve(curve)
    }

    fn apply(&self, value: f32) -> u8 {
        let level = (value * Self::TOP as f32) as i32;
        self.0[level.clamp(0, Self::TOP) as usize]
    }
}

impl Canvas {
    fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![[0.0; 3]; width * height],
        }
    }

    fn row_mut(&mut self, y: usize) -> &mut [Rgb] {
        &mut self.rgb[y * self.width..(y + 1) * self.width]
    }

    /// Pixel ranges of a region `[x0, y0, x1, y1]`, clipped to the canvas.
    fn clip(&self, region: [f32; 4]) -> [usize; 4] {
        let to_col = |x: f32| (x.max(0.0) as usize).min(self.width);
        let to_row = |y: f32| (y.max(0.0) as usize).min(self.height);
        let [x0, y0, x1, y1] = region;
        [
            to_col(x0.floor()),
            to_row(y0.floor()),
            to_col(x1.ceil()),
            to_row(y1.ceil()),
        ]
    }

    fn blend(&mut self, x: usize, y: usize, colour: Rgb, alpha: f32) {
        let pixel = &mut self.rgb[y * self.width + x];
        for (value, target) in pixel.iter_mut().zip(colour) {
            *value += (target - *value) * alpha;
        }
    }

    fn blend_disc(&mut self, centre: [f32; 2], radius: f32, colour: Rgb, alpha: f32) {
        let reach = radius + 1.0;
        let region = [
            centre[0] - reach,
            centre[1] - reach,
            centre[0] + reach,
            centre[1] + reach,
        ];
        let [x0, y0, x1, y1] = self.clip(region);
        for y in y0..y1 {
            for x in x0..x1 {
                let distance = (x as f32 + 0.5 - centre[0]).hypot(y as f32 + 0.5 - centre[1]);
                let coverage = (radius + 0.5 - distance).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    self.blend(x, y, colour, alpha * coverage);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Small numeric helpers.
// ---------------------------------------------------------------------------

/// Smooth value noise on a 64 x 64 lattice that wraps around.
struct ValueNoise(Vec<f32>);

impl ValueNoise {
    const SIZE: usize = 64;
    const MASK: i64 = Self::SIZE as i64 - 1;

    fn draw(rng: &mut ChaCha8Rng) -> ValueNoise {
        ValueNoise((0..Self::SIZE * Self::SIZE).map(|_| rng.gen()).collect())
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        self.row(y).at(x)
    }

    /// The noise along the row at `y`; loops that sweep `x` take it once
    /// per row.
    fn row(&self, y: f32) -> NoiseRow<'_> {
        let yi = floor(y);
        let lattice_row = |dy: i64| {
            let start = ((yi + dy) & Self::MASK) as usize * Self::SIZE;
            self.0[start..start + Self::SIZE]
                .try_into()
                .expect("lattice rows hold SIZE values")
        };
        NoiseRow {
            above: lattice_row(0),
            below: lattice_row(1),
            fy: fade(y - yi as f32),
        }
    }

    /// Two octaves of the noise along the row at `y`.
    fn fractal_row(&self, y: f32) -> FractalRow<'_> {
        FractalRow([self.row(y), self.row(2.1 * y + 11.3)])
    }
}

struct NoiseRow<'a> {
    above: &'a [f32; ValueNoise::SIZE],
    below: &'a [f32; ValueNoise::SIZE],
    fy: f32,
}

impl NoiseRow<'_> {
    /// Valid for `|x|` up to about eight million cells.
    fn at(&self, x: f32) -> f32 {
        // Fixed point with 8 fractional bits: one conversion, a shift that
        // floors negative values too, and steps of 1/256 of a cell, finer
        // than any pixel sees.
        let fixed = (x * 256.0) as i32;
        let xi = fixed >> 8;
        let fx = fade((fixed & 255) as f32 * (1.0 / 256.0));
        let mask = ValueNoise::SIZE as i32 - 1;
        let (i0, i1) = ((xi & mask) as usize, ((xi + 1) & mask) as usize);
        let above = lerp(self.above[i0], self.above[i1], fx);
        lerp(above, lerp(self.below[i0], self.below[i1], fx), self.fy)
    }
}

/// Two octaves of value noise along a row, in `[0, 1]`.
struct FractalRow<'a>([NoiseRow<'a>; 2]);

impl FractalRow<'_> {
    fn at(&self, x: f32) -> f32 {
        0.65 * self.0[0].at(x) + 0.35 * self.0[1].at(2.1 * x + 31.7)
    }
}

/// `f32::floor` as an integer, without the library call it compiles to on
/// plain x86-64.
fn floor(x: f32) -> i64 {
    let truncated = x as i64;
    truncated - i64::from((truncated as f32) > x)
}

fn fade(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

fn lerp3(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        lerp(a[0], b[0], t),
        lerp(a[1], b[1], t),
        lerp(a[2], b[2], t),
    ]
}

fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    fade(((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0))
}

fn jitter(rng: &mut ChaCha8Rng, colour: Rgb, amount: f32) -> Rgb {
    colour.map(|c| (c + rng.gen_range(-amount..amount)).clamp(0.0, 1.0))
}

fn pick<const N: usize>(rng: &mut ChaCha8Rng, colours: &[Rgb; N]) -> Rgb {
    colours[rng.gen_range(0..N)]
}

/// A standard normal draw (Box-Muller).
fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let radius = (-2.0 * rng.gen_range(1e-7f32..1.0).ln()).sqrt();
    radius * (TAU * rng.gen::<f32>()).cos()
}

/// A xorshift stream for sensor grain: far cheaper per pixel than the
/// ChaCha generator, and deterministic because each image draws it in pixel
/// order.
struct GrainStream(u32);

impl GrainStream {
    fn new(rng: &mut ChaCha8Rng) -> GrainStream {
        // Xorshift must never hold zero.
        GrainStream(rng.gen::<u32>() | 1)
    }

    /// The next value in `[-1, 1)`.
    fn next(&mut self) -> f32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
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

    fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = csv::Reader::from_path(path).unwrap();
        let header = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader
            .records()
            .map(|row| row.unwrap().iter().map(str::to_owned).collect())
            .collect();
        (header, rows)
    }

    fn generate_into(dir: &Path, n_individuals: usize, seed: u64) -> SynthReport {
        let config = SynthConfig {
            out: dir.to_owned(),
            n_individuals,
            seed,
        };
        generate(&config).unwrap()
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

    #[test]
    fn individuals_have_distinct_trailing_edges() {
        let draw = |whale_idx| Marks::draw(&mut rng_for(1, Stream::Marks, whale_idx));
        let (a, again, b) = (draw(0), draw(0), draw(1));
        let difference = |x: &Marks, y: &Marks| -> f32 {
            let pairs = x.trailing.0.iter().zip(&y.trailing.0);
            pairs.map(|(p, q)| (p - q).abs()).sum::<f32>() / PROFILE_LEN as f32
        };

        assert_eq!(difference(&a, &again), 0.0);
        assert!(difference(&a, &b) > 0.005);
        let grey_difference: f32 = a
            .texture
            .grey
            .iter()
            .zip(&b.texture.grey)
            .map(|(p, q)| (p - q).abs())
            .sum();
        assert!(grey_difference / (TEX_U * TEX_T) as f32 > 0.05);
    }

    #[test]
    fn trailing_edge_is_scalloped() {
        let marks = Marks::draw(&mut rng_for(2, Stream::Marks, 0));
        let edge = &marks.trailing.0;
        let n_points = (1..PROFILE_LEN - 1)
            .filter(|&idx| edge[idx] > edge[idx - 1] && edge[idx] > edge[idx + 1])
            .count();
        assert!(
            n_points >= 10,
            "only {n_points} points along the trailing edge"
        );
    }

    #[test]
    fn generated_layout_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let report = generate_into(dir.path(), 3, 4);

        let (header, train) = read_csv(&dir.path().join("train.csv"));
        assert_eq!(header, ["Image", "Id"]);
        assert_eq!(train.len(), report.n_train);
        let (header, truth) = read_csv(&dir.path().join("test_truth.csv"));
        assert_eq!(header, ["Image", "Id"]);
        assert_eq!(truth.len(), report.n_test);
        let (header, submission) = read_csv(&dir.path().join("sample_submission.csv"));
        assert_eq!(header, ["Image", "Id"]);
        let truth_images: Vec<_> = truth.iter().map(|row| &row[0]).collect();
        let submission_images: Vec<_> = submission.iter().map(|row| &row[0]).collect();
        assert_eq!(submission_images, truth_images);
        assert!(submission
            .iter()
            .all(|row| row[1].split(' ').next() == Some(NEW_WHALE)));

        let (header, boxes) = read_csv(&dir.path().join("bounding_boxes.csv"));
        assert_eq!(header, ["Image", "x0", "y0", "x1", "y1"]);
        assert_eq!(boxes.len(), report.n_train + report.n_test);
        let split_of: HashMap<&str, Split> = train
            .iter()
            .map(|row| (row[0].as_str(), Split::Train))
            .chain(truth.iter().map(|row| (row[0].as_str(), Split::Test)))
            .collect();
        for row in &boxes {
            let path = split_dir(dir.path(), split_of[row[0].as_str()]).join(&row[0]);
            check_box(&path, row);
        }
        let n_files = |split| fs::read_dir(split_dir(dir.path(), split)).unwrap().count();
        assert_eq!(n_files(Split::Train), report.n_train);
        assert_eq!(n_files(Split::Test), report.n_test);
    }

    /// The box lies inside the image and covers a plausible share of it.
    fn check_box(path: &Path, row: &[String]) {
        let decoded = image::open(path).unwrap();
        let (width, height) = (decoded.width(), decoded.height());
        assert!(
            (700..=1050).contains(&width),
            "{}: width {width}",
            path.display()
        );
        let aspect = height as f32 / width as f32;
        assert!(
            (0.44..=0.76).contains(&aspect),
            "{}: {width}x{height}",
            path.display()
        );

        let [x0, y0, x1, y1] = [1, 2, 3, 4].map(|col| row[col].parse::<u32>().unwrap());
        assert!(x0 < x1 && y0 < y1 && x1 <= width && y1 <= height, "{row:?}");
        let share = (x1 - x0) as f32 / width as f32;
        assert!(
            (0.25..=0.9).contains(&share),
            "{row:?}: fluke spans {share} of {width}"
        );
    }

    #[test]
    fn same_seed_writes_the_same_bytes() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        generate_into(a.path(), 2, 21);
        generate_into(b.path(), 2, 21);
        generate_into(c.path(), 2, 22);

        let read = |dir: &Path, name: &str| fs::read(dir.join(name)).unwrap();
        for name in ["train.csv", "bounding_boxes.csv", "test_truth.csv"] {
            assert_eq!(read(a.path(), name), read(b.path(), name), "{name}");
        }
        assert_ne!(read(a.path(), "train.csv"), read(c.path(), "train.csv"));

        let (_, train) = read_csv(&a.path().join("train.csv"));
        for row in train.iter().step_by(2) {
            let name = format!("train/{}", row[0]);
            assert_eq!(read(a.path(), &name), read(b.path(), &name), "{name}");
        }
    }

    #[test]
    fn stray_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("test")).unwrap();
        fs::write(dir.path().join("test/old.jpg"), "old").unwrap();
        let config = SynthConfig {
            out: dir.path().to_owned(),
            n_individuals: 1,
            seed: 0,
        };
        match generate(&config) {
            Err(SynthError::StrayFile { file, .. }) => assert_eq!(file, "old.jpg"),
            other => panic!("expected a stray file error, got {other:?}"),
        }
    }

    #[test]
    fn zero_individuals_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = SynthConfig {
            out: dir.path().to_owned(),
            n_individuals: 0,
            seed: 0,
        };
        assert!(matches!(generate(&config), Err(SynthError::NoIndividuals)));
    }

    #[test]
    fn unwritable_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "not a folder").unwrap();
        let config = SynthConfig {
            out: blocker.join("out"),
            n_individuals: 1,
            seed: 0,
        };
        match generate(&config) {
            Err(SynthError::CreateDir { path, .. }) => {
                assert_eq!(path, blocker.join("out").join("train"))
            }
            other => panic!("expected a folder error, got {other:?}"),
        }
    }
}
