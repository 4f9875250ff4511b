//! The model worker: one thread that owns the serving run's model, gallery
//! and index (libtorch modules are not `Sync`), and answers jobs sent over
//! a channel. Identifications that arrive together are embedded as one
//! batch on a GPU (one at a time on the CPU, which measured faster). A new
//! serving run is built on a loader thread of its own while
//! the old one keeps answering, then swapped in whole.
//!
//! Handlers see the worker through [`Worker`]: they never block on it, they
//! await its replies. What it serves is published in a [`WorkerView`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use flukeid_shared::api::{
    confidence, new_whale_confidence, CandidateMatch, ModelStatus, ServingInfo,
};
use flukeid_shared::crop::BoundingBox;
use image::RgbImage;
use ndarray::Array2;
use tch::Device;
use tokio::sync::{oneshot, watch};

use super::catalog::Catalog;
use super::error::AppError;
use super::gallery::{crop_for_gallery, Serving};
use super::images::ImageRef;
use crate::data::{DataSet, NEW_WHALE};
use crate::index::Neighbour;
use crate::predict::{rank_candidates, N_NEIGHBOURS};

/// Most identifications embedded in one batch on a GPU, where a batch
/// costs little more than a single crop.
pub const MAX_BATCH: usize = 32;

/// Most identifications embedded in one batch on the CPU: one. Measured
/// with `examples/bench_identify.rs` (EfficientNet-Lite0, 576x192, 50
/// concurrent clients, 2 cores): batches of 1, 4 and 32 answered 8.0, 4.7
/// and 2.3 requests per second. On the CPU the network is bound by memory
/// traffic, and a batch's activations (over 100 MB per layer at 32 crops)
/// no longer fit any cache.
pub const MAX_BATCH_CPU: usize = 1;

/// What the worker serves, for handlers to read without waiting.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerView {
    pub status: ModelStatus,
    pub serving: Option<ServingInfo>,
}

/// The candidates of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub run_id: String,
    pub candidates: Vec<CandidateMatch>,
}

/// Gallery embeddings and what they show, for the map.
pub struct GalleryRows {
    pub run_id: String,
    /// `gallery_idx` of the first row.
    pub from: usize,
    pub rows: Array2<f32>,
    pub labels: Vec<String>,
    pub images: Vec<ImageRef>,
}

/// Why the worker could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkerError {
    #[error("no model is serving yet; train a run and make it the serving run")]
    NotServing,
    #[error("the serving run changed while the photo was being prepared; send it again")]
    GeometryChanged,
    #[error("the gallery of the serving run is empty; confirm uploads or add training images")]
    EmptyGallery,
    #[error("the model worker has stopped")]
    Stopped,
    #[error("searching the gallery failed: {0}")]
    Search(String),
}

/// A run to load and make the serving run.
pub struct LoadRequest {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub data: Arc<DataSet>,
}

/// The handle handlers use.
pub struct Worker {
    jobs: Sender<Job>,
    view: Arc<watch::Sender<WorkerView>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the worker and its loader threads share.
struct Shared {
    catalog: Arc<Catalog>,
    device: Device,
    /// The latest load asked for; older loads are dropped when they finish.
    generation: AtomicU64,
    /// Most queries embedded together.
    max_batch: usize,
}

enum Job {
    Identify {
        crop: RgbImage,
        reply: oneshot::Sender<Result<Match, WorkerError>>,
    },
    Add {
        entry: NewEntry,
        reply: oneshot::Sender<bool>,
    },
    Rows {
        from: usize,
        reply: oneshot::Sender<Option<GalleryRows>>,
    },
    SetDcut {
        run_id: String,
        dcut: f32,
    },
    Swap {
        generation: u64,
        serving: Box<Serving>,
    },
    Stop,
}

/// A confirmed photo to add to the live gallery.
pub struct NewEntry {
    pub label: String,
    pub image: ImageRef,
    pub photo: RgbImage,
    pub bbox: Option<BoundingBox>,
}

/// The thread's own state.
struct Thread {
    serving: Option<Serving>,
    view: Arc<watch::Sender<WorkerView>>,
    shared: Arc<Shared>,
}

/// A query waiting for its batch.
struct Query {
    crop: RgbImage,
    reply: oneshot::Sender<Result<Match, WorkerError>>,
}

impl Worker {
    /// Starts the worker thread with nothing to serve.
    pub fn start(catalog: Arc<Catalog>, device: Device) -> Self {
        let (jobs, receiver) = crossbeam_channel::unbounded();
        let idle = WorkerView {
            status: ModelStatus::Idle,
            serving: None,
        };
        let view = Arc::new(watch::channel(idle).0);
        let shared = Arc::new(Shared {
            catalog,
            device,
            generation: AtomicU64::new(0),
            max_batch: max_batch(device),
        });
        let thread = Thread {
            serving: None,
            view: view.clone(),
            shared: shared.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("flukeid-model".into())
            .spawn(move || thread.run(receiver))
            .expect("the OS can start a thread");
        Self {
            jobs,
            view,
            shared,
            thread: Mutex::new(Some(handle)),
        }
    }

    /// What is being served now.
    pub fn view(&self) -> WorkerView {
        self.view.borrow().clone()
    }

    /// The serving run, or a 503 saying why there is none.
    ///
    /// # Errors
    ///
    /// [`AppError::Unavailable`] while nothing serves.
    pub fn require_serving(&self) -> Result<ServingInfo, AppError> {
        let view = self.view();
        if let Some(serving) = view.serving {
            return Ok(serving);
        }
        let message = match view.status {
            ModelStatus::Loading {
                run_id,
                done,
                total,
            } => format!(
                "the model of {run_id} is loading ({done} of {total} gallery images embedded); \
                 try again shortly"
            ),
            ModelStatus::Failed { run_id, message } => format!(
                "the serving run {run_id} failed to load ({message}); \
                 make another run the serving run"
            ),
            _ => WorkerError::NotServing.to_string(),
        };
        Err(AppError::Unavailable(message))
    }

    /// Identifies one crop of the serving run's geometry.
    ///
    /// # Errors
    ///
    /// [`WorkerError`] when nothing serves, the geometry changed, or the
    /// search failed.
    pub async fn identify(&self, crop: RgbImage) -> Result<Match, WorkerError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Identify { crop, reply })?;
        answer.await.map_err(|_| WorkerError::Stopped)?
    }

    /// Adds a confirmed photo to the live gallery; `false` when nothing
    /// serves or the photo could not be added (it joins at the next load).
    pub async fn add(&self, entry: NewEntry) -> bool {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Add { entry, reply }).is_ok() && answer.await.unwrap_or(false)
    }

    /// The gallery's embeddings from `gallery_idx` `from` on.
    pub async fn rows(&self, from: usize) -> Option<GalleryRows> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Rows { from, reply }).ok()?;
        answer.await.ok().flatten()
    }

    /// Changes the `dcut` of `run_id` if it is serving.
    pub fn set_dcut(&self, run_id: &str, dcut: f32) {
        let _ = self.send(Job::SetDcut {
            run_id: run_id.to_string(),
            dcut,
        });
    }

    /// Loads a run on a thread of its own and swaps it in when ready.
    pub fn load(&self, request: LoadRequest) {
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let loader = Loader {
            generation,
            view: self.view.clone(),
            shared: self.shared.clone(),
        };
        let jobs = self.jobs.clone();
        let spawned = std::thread::Builder::new()
            .name("flukeid-loader".into())
            .spawn(move || loader.run(request, &jobs));
        if let Err(error) = spawned {
            tracing::error!("cannot start a thread to load the serving run: {error}");
        }
    }

    /// Stops the thread, dropping the model, and waits for it.
    pub fn stop(&self) {
        let _ = self.jobs.send(Job::Stop);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn send(&self, job: Job) -> Result<(), WorkerError> {
        self.jobs.send(job).map_err(|_| WorkerError::Stopped)
    }
}

impl From<WorkerError> for AppError {
    fn from(error: WorkerError) -> Self {
        match error {
            WorkerError::Search(_) => AppError::internal(error),
            other => AppError::Unavailable(other.to_string()),
        }
    }
}

impl Thread {
    fn run(mut self, jobs: Receiver<Job>) {
        let mut queries = Vec::new();
        while let Ok(first) = jobs.recv() {
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Identify { crop, reply } => {
                        queries.push(Query { crop, reply });
                        if queries.len() < self.shared.max_batch {
                            next = jobs.try_recv().ok();
                        }
                    }
                    Job::Stop => {
                        self.identify(std::mem::take(&mut queries));
                        return;
                    }
                    other => {
                        self.identify(std::mem::take(&mut queries));
                        self.handle(other);
                        next = jobs.try_recv().ok();
                    }
                }
            }
            self.identify(std::mem::take(&mut queries));
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Add { entry, reply } => {
                let _ = reply.send(self.add(entry));
            }
            Job::Rows { from, reply } => {
                let _ = reply.send(self.rows(from));
            }
            Job::SetDcut { run_id, dcut } => self.set_dcut(&run_id, dcut),
            Job::Swap {
                generation,
                serving,
            } => self.swap(generation, *serving),
            Job::Identify { .. } | Job::Stop => unreachable!("handled by the loop"),
        }
    }

    /// Embeds the batch, searches the gallery once for all of it, and
    /// ranks each query's neighbours.
    fn identify(&mut self, queries: Vec<Query>) {
        if queries.is_empty() {
            return;
        }
        let Some(serving) = &self.serving else {
            return reply_all(queries, &WorkerError::NotServing);
        };
        if serving.gallery.is_empty() {
            return reply_all(queries, &WorkerError::EmptyGallery);
        }
        let geometry = serving.geometry();
        let (fits, misfits): (Vec<Query>, Vec<Query>) = queries
            .into_iter()
            .partition(|q| q.crop.dimensions() == (geometry.width, geometry.height));
        reply_all(misfits, &WorkerError::GeometryChanged);
        if fits.is_empty() {
            return;
        }

        let crops: Vec<RgbImage> = fits.iter().map(|q| q.crop.clone()).collect();
        let embeddings = serving.embed(&crops);
        tracing::debug!(n_queries = fits.len(), "identified a batch");
        match serving
            .gallery
            .index
            .search(embeddings.view(), N_NEIGHBOURS)
        {
            Ok(found) => {
                for (query, neighbours) in fits.into_iter().zip(found) {
                    let _ = query.reply.send(Ok(rank(serving, &neighbours)));
                }
            }
            Err(error) => reply_all(fits, &WorkerError::Search(error.to_string())),
        }
    }

    fn add(&mut self, entry: NewEntry) -> bool {
        let Some(serving) = &mut self.serving else {
            return false;
        };
        let added = crop_for_gallery(&entry.photo, entry.bbox, &serving.geometry())
            .map_err(|e| e.to_string())
            .and_then(|crop| {
                let embedding = serving.embed(&[crop]);
                let row = embedding.row(0).to_vec();
                serving
                    .gallery
                    .add(&entry.label, entry.image, &row)
                    .map_err(|e| e.to_string())
            });
        match added {
            Ok(gallery_idx) => {
                tracing::debug!(
                    gallery_idx,
                    label = entry.label,
                    "added to the live gallery"
                );
                self.publish();
                true
            }
            Err(error) => {
                tracing::warn!(
                    "cannot add a photo of {} to the gallery: {error}",
                    entry.label
                );
                false
            }
        }
    }

    fn rows(&self, from: usize) -> Option<GalleryRows> {
        let serving = self.serving.as_ref()?;
        let gallery = &serving.gallery;
        let from = from.min(gallery.len());
        Some(GalleryRows {
            run_id: serving.run_id.clone(),
            from,
            rows: gallery.rows_from(from),
            labels: gallery.labels[from..].to_vec(),
            images: gallery.images[from..].to_vec(),
        })
    }

    fn set_dcut(&mut self, run_id: &str, dcut: f32) {
        if let Some(serving) = self.serving.as_mut().filter(|s| s.run_id == run_id) {
            serving.dcut = dcut;
            tracing::info!(run_id, dcut, "serving with a new dcut");
            self.publish();
        }
    }

    fn swap(&mut self, generation: u64, serving: Serving) {
        if generation != self.shared.generation.load(Ordering::SeqCst) {
            tracing::debug!(
                run_id = serving.run_id,
                "dropping a load overtaken by a newer one"
            );
            return;
        }
        if let Err(error) = self.shared.catalog.set_serving_run(&serving.run_id) {
            tracing::error!(
                "cannot record {} as the serving run: {error}",
                serving.run_id
            );
        }
        tracing::info!(run_id = serving.run_id, "now serving");
        self.serving = Some(serving);
        self.publish();
    }

    /// Publishes what is served now.
    fn publish(&self) {
        let info = self.serving.as_ref().map(serving_info);
        self.view.send_modify(|view| {
            if let Some(info) = &info {
                view.status = ModelStatus::Ready {
                    run_id: info.run_id.clone(),
                };
            }
            view.serving = info;
        });
    }
}

/// Builds a serving run off the worker thread.
struct Loader {
    generation: u64,
    view: Arc<watch::Sender<WorkerView>>,
    shared: Arc<Shared>,
}

impl Loader {
    fn run(self, request: LoadRequest, jobs: &Sender<Job>) {
        let run_id = request.run_id.clone();
        self.set_status(ModelStatus::Loading {
            run_id: run_id.clone(),
            done: 0,
            total: 0,
        });
        match self.build(&request) {
            Ok(serving) => {
                let job = Job::Swap {
                    generation: self.generation,
                    serving: Box::new(serving),
                };
                let _ = jobs.send(job);
            }
            Err(message) => {
                tracing::error!("cannot load {run_id} for serving: {message}");
                self.set_status(ModelStatus::Failed { run_id, message });
            }
        }
    }

    fn build(&self, request: &LoadRequest) -> Result<Serving, String> {
        let confirmed = self
            .shared
            .catalog
            .uploads(Some(flukeid_shared::api::UploadStatus::Confirmed))
            .map_err(|e| e.to_string())?;
        let run_id = &request.run_id;
        let mut on_progress = |done, total| {
            self.set_status(ModelStatus::Loading {
                run_id: run_id.clone(),
                done,
                total,
            });
        };
        let device = self.shared.device;
        Serving::load(
            run_id,
            &request.run_dir,
            &request.data,
            &confirmed,
            device,
            &mut on_progress,
        )
        .map_err(|e| e.to_string())
    }

    /// Sets the status unless a newer load has started since.
    fn set_status(&self, status: ModelStatus) {
        if self.generation == self.shared.generation.load(Ordering::SeqCst) {
            self.view.send_modify(|view| view.status = status);
        }
    }
}

/// Most queries embedded together on `device`.
fn max_batch(device: Device) -> usize {
    if device.is_cuda() {
        MAX_BATCH
    } else {
        MAX_BATCH_CPU
    }
}

/// The ranked candidates of one query, with confidences and photos.
fn rank(serving: &Serving, neighbours: &[Neighbour]) -> Match {
    let gallery = &serving.gallery;
    let ranked = rank_candidates(neighbours, &gallery.labels, serving.dcut);
    let nearest_known = ranked
        .iter()
        .find(|c| c.label != NEW_WHALE)
        .map(|c| c.distance);
    let candidates = ranked
        .into_iter()
        .map(|candidate| {
            let confidence = if candidate.label == NEW_WHALE {
                new_whale_confidence(nearest_known, serving.dcut)
            } else {
                confidence(candidate.distance, serving.dcut)
            };
            let photos = gallery
                .photos(&candidate.label)
                .iter()
                .map(ImageRef::url)
                .collect();
            CandidateMatch {
                label: candidate.label,
                distance: candidate.distance,
                confidence,
                photos,
            }
        })
        .collect();
    Match {
        run_id: serving.run_id.clone(),
        candidates,
    }
}

fn serving_info(serving: &Serving) -> ServingInfo {
    ServingInfo {
        run_id: serving.run_id.clone(),
        backbone: super::runs::backbone_name(serving.model.config.model.backbone),
        geometry: serving.geometry(),
        dcut: serving.dcut,
        gallery_size: serving.gallery.len(),
        n_individuals: serving.gallery.n_individuals(),
    }
}

fn reply_all(queries: Vec<Query>, error: &WorkerError) {
    for query in queries {
        let _ = query.reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSet, Split};
    use crate::run_dir::read_json;
    use crate::server::config::DataPaths;
    use crate::server::testing::{write_data_set, write_serving_run};
    use crate::train::TrainConfig;

    /// Runs a worker thread over `crops` queued together, with batches of
    /// at most `max_batch`, and returns the answers in order.
    fn answers(dir: &std::path::Path, crops: &[RgbImage], max_batch: usize) -> Vec<Match> {
        let data = DataSet::open(dir).unwrap();
        let run_dir = DataPaths::new(dir).run("run-0001");
        let serving = Serving::load(
            "run-0001",
            &run_dir,
            &data,
            &[],
            Device::Cpu,
            &mut |_, _| {},
        );
        let catalog = Arc::new(Catalog::in_memory().unwrap());
        let generation = AtomicU64::new(0);
        let shared = Arc::new(Shared {
            catalog,
            device: Device::Cpu,
            generation,
            max_batch,
        });
        let idle = WorkerView {
            status: ModelStatus::Idle,
            serving: None,
        };
        let view = Arc::new(watch::channel(idle).0);
        let thread = Thread {
            serving: Some(serving.unwrap()),
            view,
            shared,
        };

        let (jobs, receiver) = crossbeam_channel::unbounded();
        let mut replies = Vec::new();
        for crop in crops {
            let (reply, answer) = oneshot::channel();
            jobs.send(Job::Identify {
                crop: crop.clone(),
                reply,
            })
            .unwrap();
            replies.push(answer);
        }
        jobs.send(Job::Stop).unwrap();
        thread.run(receiver);
        replies
            .into_iter()
            .map(|mut r| r.try_recv().unwrap().unwrap())
            .collect()
    }

    #[test]
    fn a_batch_answers_as_its_queries_would_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        write_data_set(dir.path());
        write_serving_run(dir.path(), "run-0001");
        let data = DataSet::open(dir.path()).unwrap();
        let run_dir = DataPaths::new(dir.path()).run("run-0001");
        let config: TrainConfig = read_json(&run_dir.join("config.json")).unwrap();
        let geometry = config.geometry();
        let crops: Vec<RgbImage> = data
            .train
            .iter()
            .map(|row| {
                let path = data.image_path(Split::Train, &row.image);
                let photo = crate::image_io::decode_file(&path, u64::MAX).unwrap();
                crop_for_gallery(&photo, None, &geometry).unwrap()
            })
            .collect();

        let batched = answers(dir.path(), &crops, 8);
        let single = answers(dir.path(), &crops, 1);
        for (b, s) in batched.iter().zip(&single) {
            let labels = |m: &Match| {
                m.candidates
                    .iter()
                    .map(|c| c.label.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(labels(b), labels(s));
            for (x, y) in b.candidates.iter().zip(&s.candidates) {
                assert!(
                    (x.distance - y.distance).abs() < 1e-3,
                    "{} vs {}",
                    x.distance,
                    y.distance
                );
            }
        }
        // Each training photo finds itself.
        assert!(batched.iter().zip(&data.train).all(|(m, row)| {
            row.id == NEW_WHALE
                || m.candidates
                    .iter()
                    .any(|c| c.label == row.id && c.distance < 1e-2)
        }));
    }
}
