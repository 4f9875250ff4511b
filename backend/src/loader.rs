//! Feeding the network: a cache of decoded crops and a background loader
//! that assembles triplet batches ahead of the training loop.
//!
//! Every photo is decoded and cropped once, in parallel, into the
//! [`CropCache`]; an epoch then only copies bytes. Augmentation is not done
//! here: the training loop applies it to whole batches on its device.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use flukeid_shared::crop::CropGeometry;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::{Kind, Tensor};

use crate::crop::load_crop;
use crate::data::{DataSet, Split};
use crate::sampler::TripletSampler;

/// Decoded crops, 8-bit, channels first, one contiguous buffer.
pub struct CropCache {
    geometry: CropGeometry,
    names: Vec<String>,
    index: HashMap<String, usize>,
    pixels: Vec<u8>,
}

/// A batch of triplets: the anchors, then the positives, then the negatives.
pub struct TripletBatch {
    /// `[3B, 3, H, W]` uint8.
    pub images: Tensor,
    /// `[3B]` int64 labels, `new_whale` images unique.
    pub labels: Tensor,
}

/// Batches of one epoch, assembled on a background thread.
pub struct EpochLoader {
    batches: Receiver<TripletBatch>,
    worker: Option<JoinHandle<()>>,
}

impl CropCache {
    /// Decodes and crops `images` of `split` in parallel. Images that fail
    /// are left out and returned with the reason, so a run reports them all
    /// at once.
    pub fn build(
        data: &DataSet,
        split: Split,
        images: &[String],
        geometry: &CropGeometry,
        max_pixels: u64,
    ) -> (Self, Vec<(String, String)>) {
        let crops: Vec<_> = images
            .par_iter()
            .map(|image| (image, load_crop(data, split, image, geometry, max_pixels)))
            .collect();

        let mut cache = Self::empty(geometry);
        let mut failures = Vec::new();
        for (image, crop) in crops {
            match crop {
                Ok(crop) => cache.push(image, &crop.image),
                Err(error) => failures.push((image.clone(), error.to_string())),
            }
        }
        tracing::debug!("cache holds {} crops", cache.len());
        (cache, failures)
    }

    /// A cache with no crops yet.
    pub fn empty(geometry: &CropGeometry) -> Self {
        Self {
            geometry: *geometry,
            names: Vec::new(),
            index: HashMap::new(),
            pixels: Vec::new(),
        }
    }

    /// Adds a crop of the geometry's size under `image`.
    pub fn push(&mut self, image: &str, crop: &image::RgbImage) {
        assert_eq!(
            crop.dimensions(),
            (self.geometry.width, self.geometry.height)
        );
        let plane = self.plane_len();
        let start = self.pixels.len();
        self.pixels.resize(start + 3 * plane, 0);
        for (pixel_idx, pixel) in crop.pixels().enumerate() {
            for channel in 0..3 {
                self.pixels[start + channel * plane + pixel_idx] = pixel[channel];
            }
        }
        self.index.insert(image.to_string(), self.names.len());
        self.names.push(image.to_string());
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn geometry(&self) -> &CropGeometry {
        &self.geometry
    }

    /// Image names in cache order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Cache position of an image, if it was decoded.
    pub fn position(&self, image: &str) -> Option<usize> {
        self.index.get(image).copied()
    }

    /// Stacks the crops at `positions` into one tensor.
    ///
    /// # Shapes
    ///
    /// `[positions.len(), 3, H, W]` uint8.
    pub fn batch(&self, positions: &[usize]) -> Tensor {
        let len = 3 * self.plane_len();
        let mut bytes = Vec::with_capacity(positions.len() * len);
        for &position in positions {
            bytes.extend_from_slice(&self.pixels[position * len..(position + 1) * len]);
        }
        let (h, w) = (self.geometry.height as i64, self.geometry.width as i64);
        Tensor::from_slice(&bytes).view([positions.len() as i64, 3, h, w])
    }

    fn plane_len(&self) -> usize {
        (self.geometry.width * self.geometry.height) as usize
    }
}

impl EpochLoader {
    /// Starts assembling batches of `batch_size` triplets for `anchors` (in
    /// the given order), from batch `first_batch` on, keeping up to
    /// `prefetch` batches ready. A final short batch is dropped, as the
    /// all-vs-all loss wants full batches. Each batch draws its triplets
    /// with a seed of its own, so a resumed epoch repeats the same batches.
    /// Every sampler image must be in the cache.
    pub fn start(
        cache: Arc<CropCache>,
        sampler: Arc<TripletSampler>,
        anchors: Vec<usize>,
        batch_size: usize,
        first_batch: usize,
        prefetch: usize,
        seed: u64,
    ) -> Self {
        let (sender, batches) = bounded(prefetch.max(1));
        let worker = std::thread::spawn(move || {
            let chunks = anchors
                .chunks_exact(batch_size.max(1))
                .enumerate()
                .skip(first_batch);
            for (batch_idx, chunk) in chunks {
                let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, batch_idx as u64));
                let batch = assemble(&cache, &sampler, chunk, &mut rng);
                if sender.send(batch).is_err() {
                    return;
                }
            }
        });
        Self {
            batches,
            worker: Some(worker),
        }
    }
}

impl Iterator for EpochLoader {
    type Item = TripletBatch;

    fn next(&mut self) -> Option<TripletBatch> {
        self.batches.recv().ok()
    }
}

impl Drop for EpochLoader {
    fn drop(&mut self) {
        // Dropping the receiver first makes a blocked worker's send fail.
        let (_, empty) = bounded(0);
        drop(std::mem::replace(&mut self.batches, empty));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Combines a run seed with a counter into an independent seed.
pub fn mix_seed(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn assemble(
    cache: &CropCache,
    sampler: &TripletSampler,
    anchors: &[usize],
    rng: &mut ChaCha8Rng,
) -> TripletBatch {
    let triplets: Vec<_> = anchors.iter().map(|&a| sampler.triplet(a, rng)).collect();
    let roles = [
        triplets.iter().map(|t| t.anchor).collect::<Vec<_>>(),
        triplets.iter().map(|t| t.positive).collect(),
        triplets.iter().map(|t| t.negative).collect(),
    ];
    let order: Vec<usize> = roles.concat();
    let positions: Vec<usize> = order
        .iter()
        .map(|&i| {
            cache
                .position(&sampler.images()[i])
                .expect("every sampled image is cached")
        })
        .collect();
    let labels: Vec<i64> = order.iter().map(|&i| sampler.labels()[i]).collect();
    TripletBatch {
        images: cache.batch(&positions),
        labels: Tensor::from_slice(&labels).to_kind(Kind::Int64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Labelled;

    fn cache_of(n: usize) -> CropCache {
        let geometry = CropGeometry {
            width: 6,
            height: 2,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        let mut cache = CropCache::empty(&geometry);
        for i in 0..n {
            let crop =
                image::RgbImage::from_fn(6, 2, |x, y| image::Rgb([i as u8, x as u8, y as u8]));
            cache.push(&format!("{i}.jpg"), &crop);
        }
        cache
    }

    #[test]
    fn batches_are_channels_first_crops() {
        let cache = cache_of(3);
        let batch = cache.batch(&[2, 0]);
        assert_eq!(batch.size(), vec![2, 3, 2, 6]);
        assert_eq!(batch.int64_value(&[0, 0, 1, 5]), 2); // red = image index
        assert_eq!(batch.int64_value(&[1, 1, 1, 5]), 5); // green = x
        assert_eq!(batch.int64_value(&[1, 2, 1, 5]), 1); // blue = y
    }

    #[test]
    fn epoch_yields_full_triplet_batches_with_consistent_labels() {
        let cache = Arc::new(cache_of(8));
        let ids = ["w_a", "w_a", "w_a", "w_b", "w_b", "w_b", "new_whale", "w_c"];
        let rows: Vec<Labelled> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Labelled {
                image: format!("{i}.jpg"),
                id: id.to_string(),
            })
            .collect();
        let sampler = Arc::new(TripletSampler::new(&rows, 2));
        let anchors = sampler.anchors().to_vec();
        let loader = EpochLoader::start(cache, sampler.clone(), anchors, 4, 0, 2, 1);
        let batches: Vec<TripletBatch> = loader.collect();
        assert_eq!(batches.len(), 1, "6 anchors in batches of 4, last dropped");

        let batch = &batches[0];
        assert_eq!(batch.images.size(), vec![12, 3, 2, 6]);
        let labels = Vec::<i64>::try_from(&batch.labels).unwrap();
        for item in 0..4 {
            assert_eq!(labels[item], labels[4 + item]);
            assert_ne!(labels[item], labels[8 + item]);
            let anchor = batch.images.int64_value(&[item as i64, 0, 0, 0]) as usize;
            assert_eq!(sampler.labels()[anchor], labels[item]);
        }
    }

    #[test]
    fn dropping_a_loader_mid_epoch_stops_its_worker() {
        let cache = Arc::new(cache_of(8));
        let rows: Vec<Labelled> = (0..8)
            .map(|i| Labelled {
                image: format!("{i}.jpg"),
                id: format!("w_{}", i % 2),
            })
            .collect();
        let sampler = Arc::new(TripletSampler::new(&rows, 1));
        let anchors: Vec<usize> = (0..8).cycle().take(800).collect();
        let mut loader = EpochLoader::start(cache, sampler, anchors, 2, 0, 1, 1);
        assert!(loader.next().is_some());
        drop(loader);
    }
}
