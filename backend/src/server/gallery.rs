//! The gallery a serving run searches: the embedding of every training
//! image (labelled from `train.csv`) and of every confirmed upload, with the
//! index over them, built once when a run becomes the serving run and grown
//! one photo at a time as uploads are confirmed.
//!
//! Embedding the training images is the slow part, so its result is kept
//! in the run folder (`gallery-cache.*`) and reused while the weights and
//! the list of training images are unchanged. Searching and ranking happen
//! in [`super::worker`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use flukeid_shared::crop::{BoundingBox, CropGeometry};
use image::RgbImage;
use ndarray::{concatenate, Array2, Axis};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::catalog::UploadRow;
use super::images::{ImageKind, ImageRef};
use crate::crop::crop_photo;
use crate::data::{DataSet, Split, NEW_WHALE};
use crate::embed::embed_crops;
use crate::evaluate::{to_array, DEFAULT_DCUT};
use crate::image_io::{decode_file, DEFAULT_MAX_PIXELS};
use crate::index::{GalleryIndex, IndexError, IndexKind};
use crate::model::WEIGHTS_FILE;
use crate::run_dir::{read_json, write_json_atomic};
use crate::workflow::{RunModel, WorkflowError};

/// Gallery photos shown per candidate.
pub const PHOTOS_PER_INDIVIDUAL: usize = 3;

/// Why a gallery could not be built or grown.
#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// A run's model with its gallery, ready to answer queries.
pub struct Serving {
    pub run_id: String,
    pub model: RunModel,
    pub dcut: f32,
    pub gallery: Gallery,
}

/// Labelled embeddings and the index over them; entry `i` has
/// `gallery_idx` `i`, as entries are only ever added.
pub struct Gallery {
    pub index: GalleryIndex,
    /// Label of each entry, as [`crate::predict::rank_candidates`] wants.
    pub labels: Vec<String>,
    pub images: Vec<ImageRef>,
    /// Host copy of the embeddings, row-major, for the map.
    rows: Vec<f32>,
    photos: HashMap<String, Vec<ImageRef>>,
}

/// What is cached of the training images' embeddings.
#[derive(Debug, Serialize, Deserialize)]
struct CacheNames {
    /// The training images asked for, in `train.csv` order.
    requested: Vec<String>,
    /// The ones embedded (rows of the tensor), in order.
    embedded: Vec<String>,
}

impl Serving {
    /// Loads the run's latest weights and embeds its gallery: training
    /// images, then `confirmed` uploads, reporting `(done, total)`.
    ///
    /// # Errors
    ///
    /// [`GalleryError`] when the run cannot be opened or the index built.
    pub fn load(
        run_id: &str,
        run_dir: &Path,
        data: &DataSet,
        confirmed: &[UploadRow],
        device: Device,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, GalleryError> {
        let model = RunModel::open(run_dir, device)?;
        let dcut = serving_dcut(&model);
        let (train_names, train_rows) = embed_training_images(&model, data, on_progress);
        let (mut labels, mut images) = training_entries(data, train_names);

        let uploads_dir = data.root.join(ImageKind::Uploads.as_str());
        let (upload_entries, upload_rows) = embed_uploads(&model, &uploads_dir, confirmed);
        for (label, image) in upload_entries {
            labels.push(label);
            images.push(image);
        }
        let rows = concatenate(Axis(0), &[train_rows.view(), upload_rows.view()])
            .expect("both parts have the embedding's width");
        let gallery = Gallery::new(rows, labels, images, device)?;
        tracing::info!(run_id, n_entries = gallery.len(), dcut, "gallery ready");
        Ok(Self {
            run_id: run_id.to_string(),
            model,
            dcut,
            gallery,
        })
    }

    pub fn geometry(&self) -> CropGeometry {
        self.model.config.geometry()
    }

    /// Embeds crops of this run's geometry.
    ///
    /// # Shapes
    ///
    /// `n` crops to `[n, E]`.
    pub fn embed(&self, crops: &[RgbImage]) -> Array2<f32> {
        to_array(&embed_crops(
            &self.model.net,
            &stack_crops(crops),
            self.model.device,
        ))
    }
}

impl Gallery {
    /// Indexes `rows`, whose row `i` shows `images[i]` labelled `labels[i]`.
    ///
    /// # Errors
    ///
    /// [`IndexError`] for non-finite embeddings or a device failure.
    pub fn new(
        rows: Array2<f32>,
        labels: Vec<String>,
        images: Vec<ImageRef>,
        device: Device,
    ) -> Result<Self, IndexError> {
        let flat: Vec<f32> = rows.iter().copied().collect();
        let index = GalleryIndex::new(rows, IndexKind::Auto, device)?;
        let mut photos: HashMap<String, Vec<ImageRef>> = HashMap::new();
        for (label, image) in labels.iter().zip(&images) {
            remember_photo(&mut photos, label, image);
        }
        Ok(Self {
            index,
            labels,
            images,
            rows: flat,
            photos,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Adds one labelled embedding and returns its `gallery_idx`.
    ///
    /// # Errors
    ///
    /// [`IndexError`] for a wrong length or non-finite values.
    pub fn add(
        &mut self,
        label: &str,
        image: ImageRef,
        embedding: &[f32],
    ) -> Result<usize, IndexError> {
        let gallery_idx = self.index.add(embedding)?;
        debug_assert_eq!(gallery_idx, self.labels.len());
        remember_photo(&mut self.photos, label, &image);
        self.labels.push(label.to_string());
        self.images.push(image);
        self.rows.extend_from_slice(embedding);
        Ok(gallery_idx)
    }

    /// Up to three photos of an individual; none for `new_whale`, whose
    /// images all show different whales.
    pub fn photos(&self, label: &str) -> &[ImageRef] {
        self.photos.get(label).map_or(&[], Vec::as_slice)
    }

    /// Distinct individuals, `new_whale` not counted.
    pub fn n_individuals(&self) -> usize {
        self.photos.len()
    }

    /// Embeddings of the entries from `from` on.
    ///
    /// # Shapes
    ///
    /// `[len - from, E]`.
    pub fn rows_from(&self, from: usize) -> Array2<f32> {
        let dim = self.index.dim();
        let from = from.min(self.len());
        Array2::from_shape_vec((self.len() - from, dim), self.rows[from * dim..].to_vec())
            .expect("the host copy holds len x dim values")
    }
}

/// The calibrated `dcut`, else the one the run trained with, else the
/// reference's.
fn serving_dcut(model: &RunModel) -> f32 {
    let dcut = model.calibrated_dcut().unwrap_or(model.config.dcut);
    if dcut.is_finite() && dcut > 0.0 {
        dcut
    } else {
        DEFAULT_DCUT
    }
}

/// Labels (from `train.csv`) and images of embedded training images.
fn training_entries(data: &DataSet, names: Vec<String>) -> (Vec<String>, Vec<ImageRef>) {
    let labels_by_image: HashMap<&str, &str> = data
        .train
        .iter()
        .map(|r| (r.image.as_str(), r.id.as_str()))
        .collect();
    let labels = names
        .iter()
        .map(|n| labels_by_image[n.as_str()].to_string())
        .collect();
    let images = names
        .into_iter()
        .map(|n| ImageRef::new(ImageKind::Train, n))
        .collect();
    (labels, images)
}

/// Stacks crops of one size into a batch.
///
/// # Shapes
///
/// `n` crops of `W x H` to `[n, 3, H, W]` uint8.
pub fn stack_crops(crops: &[RgbImage]) -> Tensor {
    let planes: Vec<Tensor> = crops
        .iter()
        .map(|crop| {
            let (w, h) = crop.dimensions();
            Tensor::from_slice(crop.as_raw())
                .view([h as i64, w as i64, 3])
                .permute([2, 0, 1])
        })
        .collect();
    Tensor::stack(&planes, 0).contiguous()
}

/// Crops a stored photo for the gallery: with its box, whole, or (for a
/// crop the browser made) as the whole image, which the geometry maps back
/// onto itself.
pub fn crop_for_gallery(
    photo: &RgbImage,
    bbox: Option<BoundingBox>,
    geometry: &CropGeometry,
) -> Result<RgbImage, flukeid_shared::crop::CropError> {
    Ok(crop_photo(photo, bbox, geometry)?.image)
}

fn remember_photo(photos: &mut HashMap<String, Vec<ImageRef>>, label: &str, image: &ImageRef) {
    if label == NEW_WHALE {
        return;
    }
    let list = photos.entry(label.to_string()).or_default();
    if list.len() < PHOTOS_PER_INDIVIDUAL {
        list.push(image.clone());
    }
}

fn embed_training_images(
    model: &RunModel,
    data: &DataSet,
    on_progress: &mut dyn FnMut(usize, usize),
) -> (Vec<String>, Array2<f32>) {
    let requested: Vec<String> = data.train.iter().map(|r| r.image.clone()).collect();
    if let Some(cached) = read_cache(&model.run.root, &requested) {
        tracing::debug!(
            "gallery embeddings of {} images read from the cache",
            cached.0.len()
        );
        on_progress(cached.0.len(), cached.0.len());
        return cached;
    }
    let embedded = model.embed(data, Split::Train, &requested, on_progress);
    for (image, reason) in &embedded.failures {
        tracing::warn!("leaving {image} out of the gallery: {reason}");
    }
    write_cache(
        &model.run.root,
        requested,
        &embedded.names,
        &embedded.embeddings,
    );
    (embedded.names, to_array(&embedded.embeddings))
}

/// Embeds confirmed uploads with their labels; unreadable ones are left out
/// with a warning.
fn embed_uploads(
    model: &RunModel,
    uploads_dir: &Path,
    confirmed: &[UploadRow],
) -> (Vec<(String, ImageRef)>, Array2<f32>) {
    let geometry = model.config.geometry();
    let mut entries = Vec::new();
    let mut crops = Vec::new();
    for upload in confirmed {
        let Some(label) = upload.individual.clone() else {
            continue;
        };
        let image = ImageRef::new(ImageKind::Uploads, upload.file.clone());
        match load_upload_crop(uploads_dir, upload, &geometry) {
            Ok(crop) => {
                entries.push((label, image));
                crops.push(crop);
            }
            Err(reason) => {
                tracing::warn!("leaving upload {} out of the gallery: {reason}", upload.id)
            }
        }
    }
    let size = model.net.config().embedding_size as usize;
    let mut rows = Array2::zeros((0, size));
    for chunk in crops.chunks(model.config.eval_batch_size.max(1)) {
        let part = to_array(&embed_crops(&model.net, &stack_crops(chunk), model.device));
        rows = concatenate(Axis(0), &[rows.view(), part.view()]).expect("rows share the width");
    }
    (entries, rows)
}

/// Decodes a stored upload and crops it with `geometry`.
pub fn load_upload_crop(
    uploads_dir: &Path,
    upload: &UploadRow,
    geometry: &CropGeometry,
) -> Result<RgbImage, String> {
    let photo = decode_file(&uploads_dir.join(&upload.file), DEFAULT_MAX_PIXELS)
        .map_err(|e| e.to_string())?;
    crop_for_gallery(&photo, upload.bbox, geometry).map_err(|e| e.to_string())
}

fn cache_paths(run_dir: &Path) -> (PathBuf, PathBuf) {
    (
        run_dir.join("gallery-cache.json"),
        run_dir.join("gallery-cache.safetensors"),
    )
}

/// The cached embeddings, when they were made from the current weights for
/// the current list of training images.
fn read_cache(run_dir: &Path, requested: &[String]) -> Option<(Vec<String>, Array2<f32>)> {
    let (names_path, tensor_path) = cache_paths(run_dir);
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if modified(&tensor_path)? < modified(&run_dir.join(WEIGHTS_FILE))? {
        return None;
    }
    let names: CacheNames = read_json(&names_path).ok()?;
    if names.requested != requested {
        return None;
    }
    let tensors = Tensor::read_safetensors(&tensor_path).ok()?;
    let (_, embeddings) = tensors.into_iter().find(|(name, _)| name == "embeddings")?;
    let rows = to_array(&embeddings);
    (rows.nrows() == names.embedded.len()).then_some((names.embedded, rows))
}

/// Saves the embeddings for the next load; a failure only costs time then.
fn write_cache(run_dir: &Path, requested: Vec<String>, embedded: &[String], embeddings: &Tensor) {
    let (names_path, tensor_path) = cache_paths(run_dir);
    let tmp = tensor_path.with_extension("tmp");
    let names = CacheNames {
        requested,
        embedded: embedded.to_vec(),
    };
    let written = Tensor::write_safetensors(&[("embeddings", embeddings)], &tmp)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::rename(&tmp, &tensor_path).map_err(|e| e.to_string()))
        .and_then(|()| write_json_atomic(&names_path, &names).map_err(|e| e.to_string()));
    if let Err(error) = written {
        tracing::warn!(
            "cannot cache the gallery embeddings in {}: {error}",
            run_dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gallery(labels: &[&str]) -> Gallery {
        let n = labels.len();
        let rows = Array2::from_shape_fn((n, 2), |(i, j)| if j == 0 { i as f32 } else { 0.0 });
        let images = (0..n)
            .map(|i| ImageRef::new(ImageKind::Train, format!("{i}.jpg")))
            .collect();
        let labels = labels.iter().map(|l| l.to_string()).collect();
        Gallery::new(rows, labels, images, Device::Cpu).unwrap()
    }

    #[test]
    fn photos_are_capped_and_new_whale_has_none() {
        let gallery = gallery(&["w_a", "w_a", "w_a", "w_a", NEW_WHALE, "w_b"]);
        assert_eq!(gallery.photos("w_a").len(), PHOTOS_PER_INDIVIDUAL);
        assert!(gallery.photos(NEW_WHALE).is_empty());
        assert_eq!(gallery.n_individuals(), 2);
    }

    #[test]
    fn added_entries_are_searchable_and_mapped() {
        let mut gallery = gallery(&["w_a", "w_b"]);
        let image = ImageRef::new(ImageKind::Uploads, "u.jpg");
        assert_eq!(gallery.add("w_c", image.clone(), &[10.0, 5.0]).unwrap(), 2);
        let query = Array2::from_shape_vec((1, 2), vec![10.0, 4.0]).unwrap();
        let found = gallery.index.search(query.view(), 1).unwrap();
        assert_eq!(gallery.labels[found[0][0].gallery_idx], "w_c");
        assert_eq!(gallery.photos("w_c"), &[image]);
        assert_eq!(
            gallery.rows_from(2).into_raw_vec_and_offset().0,
            vec![10.0, 5.0]
        );
    }

    #[test]
    fn stacked_crops_are_channels_first() {
        let crop = RgbImage::from_fn(4, 2, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let batch = stack_crops(&[crop.clone(), crop]);
        assert_eq!(batch.size(), [2, 3, 2, 4]);
        assert_eq!(batch.int64_value(&[1, 0, 1, 3]), 3);
        assert_eq!(batch.int64_value(&[0, 1, 1, 0]), 1);
        assert_eq!(batch.int64_value(&[0, 2, 0, 0]), 9);
    }
}
