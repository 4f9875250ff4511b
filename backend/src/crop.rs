//! Cutting crops out of photos with the shared crop geometry, and the
//! `crop` command that writes them to disk for a person to audit.

use std::path::{Path, PathBuf};

use flukeid_shared::crop::{BoundingBox, CropError, CropGeometry, CropRegion};
use image::imageops::{self, FilterType};
use image::RgbImage;
use rayon::prelude::*;

use crate::augment::{self, AugmentConfig};
use crate::data::{DataSet, Split};
use crate::image_io::{self, ImageError};

/// Why one image could not be cropped.
#[derive(Debug, thiserror::Error)]
pub enum CropImageError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{image}: {source}")]
    Geometry { image: String, source: CropError },
}

/// Why the crop command failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CropRunError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode {path}: {source}")]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
}

/// What the crop command did: how many crops it wrote and every image it
/// skipped, with the reason.
#[derive(Debug, Default)]
pub struct CropReport {
    pub n_written: usize,
    pub failures: Vec<(String, String)>,
}

/// A cropped image together with the region it was cut from.
#[derive(Debug, Clone)]
pub struct Crop {
    pub image: RgbImage,
    pub region: CropRegion,
}

/// Cuts the crop for `bbox` (or the whole photo) out of `photo` and resizes
/// it to the geometry's size.
///
/// # Errors
///
/// [`CropError`] when the box does not fit the photo.
pub fn crop_photo(
    photo: &RgbImage,
    bbox: Option<BoundingBox>,
    geometry: &CropGeometry,
) -> Result<Crop, CropError> {
    let (width, height) = photo.dimensions();
    let bbox = bbox.unwrap_or_else(|| BoundingBox::whole(width, height));
    let region = geometry.region(&bbox, width, height)?;
    let view = imageops::crop_imm(photo, region.x0, region.y0, region.width(), region.height());
    let image = imageops::resize(
        &*view,
        geometry.width,
        geometry.height,
        FilterType::Triangle,
    );
    Ok(Crop { image, region })
}

/// Decodes one image of a data set and crops it.
///
/// # Errors
///
/// [`CropImageError`] naming the image when it cannot be decoded or its box
/// does not fit.
pub fn load_crop(
    data: &DataSet,
    split: Split,
    image: &str,
    geometry: &CropGeometry,
    max_pixels: u64,
) -> Result<Crop, CropImageError> {
    let photo = image_io::decode_file(&data.image_path(split, image), max_pixels)?;
    crop_photo(&photo, data.bbox(image), geometry).map_err(|source| CropImageError::Geometry {
        image: image.to_string(),
        source,
    })
}

/// What the crop command writes.
#[derive(Debug, Clone)]
pub struct CropJob {
    pub split: Split,
    pub geometry: CropGeometry,
    pub out: PathBuf,
    pub max_pixels: u64,
    /// Augmented versions written beside each crop (`NAME_aug1.png`, ...).
    pub n_augmented: usize,
    pub augment: AugmentConfig,
    pub seed: u64,
}

/// Writes the crop of every image of the job's split as PNG, plus
/// `crops.csv` with the region used for each (`Image,x0,y0,x1,y1` in source
/// pixels), and any augmented versions. Images that fail are skipped and
/// listed in the report.
///
/// # Errors
///
/// [`CropRunError`] when the output cannot be written.
pub fn write_crops(data: &DataSet, job: &CropJob) -> Result<CropReport, CropRunError> {
    let CropJob {
        split,
        geometry,
        max_pixels,
        ..
    } = *job;
    let out = job.out.as_path();
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CropRunError::Write { path, source }
    };
    std::fs::create_dir_all(out).map_err(write_err(out))?;

    let images = data.images(split);
    let results: Vec<Result<(String, CropRegion), (String, String)>> = images
        .par_iter()
        .map(|image| {
            let fail = |e: &dyn std::fmt::Display| (image.clone(), e.to_string());
            let crop =
                load_crop(data, split, image, &geometry, max_pixels).map_err(|e| fail(&e))?;
            save_png_atomic(&crop.image, &out.join(png_name(image))).map_err(|e| fail(&e))?;
            write_augmented(&crop.image, image, job).map_err(|e| fail(&e))?;
            Ok((image.clone(), crop.region))
        })
        .collect();

    let mut report = CropReport::default();
    let mut regions = Vec::new();
    for result in results {
        match result {
            Ok(row) => regions.push(row),
            Err(failure) => report.failures.push(failure),
        }
    }
    report.n_written = regions.len();
    write_regions_csv(&out.join("crops.csv"), &regions)?;
    Ok(report)
}

/// Writes the job's augmented versions of one crop, with a seed derived from
/// the job's seed and the image name so the output does not depend on order.
fn write_augmented(crop: &RgbImage, image: &str, job: &CropJob) -> Result<(), CropRunError> {
    if job.n_augmented == 0 {
        return Ok(());
    }
    let seed = job.seed ^ fnv1a(image.as_bytes());
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let xs = augment::image_to_tensor(crop)
        .unsqueeze(0)
        .repeat([job.n_augmented as i64, 1, 1, 1]);
    let augmented = augment::augment(&xs, &job.augment, &mut rng);
    let stem = png_name(image).trim_end_matches(".png").to_string();
    for k in 0..job.n_augmented {
        let path = job.out.join(format!("{stem}_aug{}.png", k + 1));
        save_png_atomic(&augment::tensor_to_image(&augmented.get(k as i64)), &path)?;
    }
    Ok(())
}

/// A stable 64-bit hash of bytes (FNV-1a), for per-image seeds.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The file name a crop of `image` is written under.
pub fn png_name(image: &str) -> String {
    let stem = Path::new(image)
        .file_stem()
        .map_or(image.into(), |s| s.to_string_lossy());
    format!("{stem}.png")
}

/// Writes a PNG through a temporary file in the same folder, so a reader
/// never sees half an image.
///
/// # Errors
///
/// [`CropRunError`] naming the path.
pub fn save_png_atomic(image: &RgbImage, path: &Path) -> Result<(), CropRunError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let write = |source| CropRunError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
    image
        .write_to(
            &mut std::io::BufWriter::new(tmp.as_file_mut()),
            image::ImageFormat::Png,
        )
        .map_err(|source| CropRunError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    tmp.persist(path).map_err(|e| write(e.error))?;
    Ok(())
}

fn write_regions_csv(path: &Path, regions: &[(String, CropRegion)]) -> Result<(), CropRunError> {
    let write = |source| CropRunError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
    let mut csv = csv::Writer::from_writer(tmp.as_file());
    let to_io = |e: csv::Error| std::io::Error::other(e.to_string());
    csv.write_record(["Image", "x0", "y0", "x1", "y1"])
        .map_err(|e| write(to_io(e)))?;
    for (image, r) in regions {
        let fields = [
            image.clone(),
            r.x0.to_string(),
            r.y0.to_string(),
            r.x1.to_string(),
            r.y1.to_string(),
        ];
        csv.write_record(&fields).map_err(|e| write(to_io(e)))?;
    }
    csv.flush().map_err(write)?;
    drop(csv);
    tmp.persist(path).map_err(|e| write(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_has_the_geometry_size_and_the_region_pixels() {
        // Left half red, right half blue; a box on the blue half must give a
        // blue crop.
        let photo = RgbImage::from_fn(900, 600, |x, _| {
            if x < 450 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let geometry = CropGeometry {
            width: 96,
            height: 32,
            ..CropGeometry::default()
        };
        let bbox = BoundingBox::new(600.0, 300.0, 800.0, 340.0);
        let crop = crop_photo(&photo, Some(bbox), &geometry).unwrap();
        assert_eq!(crop.image.dimensions(), (96, 32));
        assert!(crop.region.x0 >= 450);
        assert!(crop.image.pixels().all(|p| p.0 == [0, 0, 255]));
    }

    #[test]
    fn no_box_means_the_whole_photo() {
        let photo = RgbImage::new(300, 100);
        let crop = crop_photo(&photo, None, &CropGeometry::default()).unwrap();
        assert_eq!((crop.region.x0, crop.region.x1), (0, 300));
        assert_eq!(crop.image.dimensions(), (576, 192));
    }

    #[test]
    fn box_outside_the_photo_is_an_error() {
        let photo = RgbImage::new(100, 100);
        let bbox = BoundingBox::new(10.0, 10.0, 200.0, 20.0);
        assert!(crop_photo(&photo, Some(bbox), &CropGeometry::default()).is_err());
    }

    #[test]
    fn png_names_replace_the_extension() {
        assert_eq!(png_name("0a1b.jpg"), "0a1b.png");
    }
}
