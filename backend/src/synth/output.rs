//! Writing a data set to disk: the split folders, checked for stray files,
//! the JPEG files and the CSV files of the Kaggle layout. What goes into
//! them is decided by the rest of the module.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::iter;
use std::path::{Path, PathBuf};

use image::RgbImage;
use jpeg_encoder::{ColorType, Encoder};

use crate::data::{Split, NEW_WHALE};

use super::photo::FlukeBox;
use super::{LabelPlan, SynthError};

pub(super) fn split_dir(out: &Path, split: Split) -> PathBuf {
    out.join(split.folder())
}

/// Creates a split's folder, refusing one that holds files the plan does
/// not write; an earlier run with the same seed and size is fine.
pub(super) fn prepare_dir(path: &Path, plan: &LabelPlan) -> Result<(), SynthError> {
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

pub(super) fn write_jpeg(path: &Path, pixels: &RgbImage, quality: u8) -> Result<(), SynthError> {
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

pub(super) fn write_csvs(
    out: &Path,
    plan: &LabelPlan,
    boxes: &[FlukeBox],
) -> Result<(), SynthError> {
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
