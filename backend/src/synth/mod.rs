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
//!
//! The submodules follow the steps of [`generate`]:
//!
//! - `plan`: which individual every image shows, with its label and split,
//!   decided before anything is drawn ([`plan_labels`]).
//! - `marks` and `pattern`: an individual's identity marks, the outline of
//!   its fluke with the trailing edge, and the pattern and scars of the
//!   underside.
//! - `photo`, `scene` and `spray`: one photo, the fluke posed in a scene of
//!   sea and sky with spray over it, and the box around the fluke.
//! - `camera`: the canvas everything is painted onto, and the light that
//!   develops it into pixels.
//! - `numeric`: value noise, interpolation and small random draws.
//! - `output`: the split folders, the JPEG files and the CSV files.

mod camera;
mod marks;
mod numeric;
mod output;
mod pattern;
mod photo;
mod plan;
mod scene;
mod spray;

pub use plan::{plan_labels, LabelPlan, PlannedImage};

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use jpeg_encoder::EncodingError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tracing::{info, warn};

use crate::data::Split;

use marks::Marks;
use output::{prepare_dir, split_dir, write_csvs, write_jpeg};
use photo::{FlukeBox, Photo};

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::data::NEW_WHALE;

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
