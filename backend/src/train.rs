//! Training the embedding network: the run's configuration, the loop over
//! the schedule's epochs, validation at the end of each epoch, and
//! checkpoints from which a crashed or stopped run resumes.
//!
//! Randomness is derived from the run's seed and the position in the
//! schedule (epoch order from the epoch, triplets from the batch,
//! augmentation and dropout from the global step), so a resumed run draws
//! exactly what the uninterrupted run would have.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use flukeid_shared::api::{EpochStats, RunState, StepStats, TrainEvent};
use flukeid_shared::crop::CropGeometry;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::augment::{self, normalise, to_unit_float, AugmentConfig, IMAGENET};
use crate::data::{DataSet, Labelled, Split};
use crate::embed::embed_cached;
use crate::evaluate::{evaluate, nearest, to_array, DEFAULT_DCUT};
use crate::image_io::DEFAULT_MAX_PIXELS;
use crate::loader::{mix_seed, CropCache, EpochLoader};
use crate::loss::{contrastive_loss, triplet_accuracy, DEFAULT_MARGIN};
use crate::model::{
    default_weights_path, load_backbone_weights, save_model, set_backbone_trainable, EmbeddingNet,
    ModelConfig, ModelError,
};
use crate::optim::{Adam, AdamConfig, LossScaler};
use crate::run_dir::{append_json_line, read_json, write_json_atomic, RunDir, RunFileError};
use crate::sampler::{TripletSampler, ValidationSplit};
use crate::schedule::Schedule;

/// Everything that defines a training run; saved as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub model: ModelConfig,
    /// Box padding of the crops, in pixels.
    pub pad_x: f64,
    pub pad_y: f64,
    /// Start the backbone from ImageNet weights: this file, or the default
    /// converted weights of the backbone when `pretrained` is set.
    pub weights: Option<PathBuf>,
    pub pretrained: bool,
    /// Triplets per batch (the network sees three times as many images).
    pub batch_size: usize,
    /// Base learning rate; the schedule scales it.
    pub lr: f64,
    pub schedule: Schedule,
    pub margin: f64,
    /// Anchors are individuals with more than this many training images.
    pub min_images: usize,
    pub validation_share: f64,
    pub seed: u64,
    pub augment: AugmentConfig,
    /// fp16 autocast with loss scaling on CUDA; ignored on the CPU.
    pub mixed_precision: bool,
    /// Write a checkpoint every this many steps as well as after every
    /// epoch; 0 for epochs only.
    pub checkpoint_every: usize,
    /// Cap on steps per epoch, for quick runs; `None` for whole epochs.
    pub max_steps_per_epoch: Option<usize>,
    /// `new_whale` distance for validation MAP@5 during training.
    pub dcut: f32,
    /// Images per batch when embedding for validation.
    pub eval_batch_size: usize,
    /// Batches the loader keeps ready.
    pub prefetch: usize,
    /// Validate at the end of each epoch (benchmarks turn it off).
    pub validate: bool,
}

/// Where a run stands; saved as `state.json` after each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub global_step: usize,
    pub steps_per_epoch: usize,
    pub loss_scaler: LossScaler,
    /// File name of the checkpoint with the weights and optimizer state.
    pub checkpoint: Option<String>,
    pub finished: bool,
}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    Stopped,
}

/// Why training could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    RunFile(#[from] RunFileError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{run_dir} already holds a run; resume it or choose another folder")]
    RunExists { run_dir: PathBuf },
    #[error(
        "not enough anchors for one batch: {n_anchors} training images of individuals \
         with more than {min_images} images, batch size {batch_size}"
    )]
    TooFewAnchors {
        n_anchors: usize,
        min_images: usize,
        batch_size: usize,
    },
    #[error("no pretrained weights at {path}; run the set-up script or pass --no-pretrained")]
    NoWeights { path: PathBuf },
    #[error("cannot read checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("every image failed to load; first failure: {first}")]
    NoImages { first: String },
    #[error("libtorch failed: {0}")]
    Torch(#[from] tch::TchError),
}

/// A run being trained: model, optimizer, data and position.
pub struct Trainer {
    config: TrainConfig,
    run: RunDir,
    device: Device,
    vs: VarStore,
    net: EmbeddingNet,
    adam: Adam,
    state: TrainState,
    split: ValidationSplit,
    sampler: Arc<TripletSampler>,
    cache: Arc<CropCache>,
    /// Images that could not be decoded or cropped, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Seconds the training loop spent waiting for the loader, and in all.
    pub loader_wait_secs: f64,
    pub loop_secs: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: ModelConfig::default(),
            pad_x: 50.0,
            pad_y: 20.0,
            weights: None,
            pretrained: true,
            batch_size: 16,
            lr: 5e-4,
            schedule: Schedule::reference(),
            margin: DEFAULT_MARGIN,
            min_images: 2,
            validation_share: 0.2,
            seed: 42,
            augment: AugmentConfig::reference(),
            mixed_precision: true,
            checkpoint_every: 500,
            max_steps_per_epoch: None,
            dcut: DEFAULT_DCUT,
            eval_batch_size: 48,
            prefetch: 4,
            validate: true,
        }
    }
}

impl TrainConfig {
    /// The crop geometry the network is trained on.
    pub fn geometry(&self) -> CropGeometry {
        CropGeometry {
            width: self.model.crop_width as u32,
            height: self.model.crop_height as u32,
            pad_x: self.pad_x,
            pad_y: self.pad_y,
        }
    }
}

impl Trainer {
    /// Prepares a new run in `run_dir`: splits the data, decodes every crop,
    /// builds the model (from ImageNet weights when configured) and writes
    /// the config and split.
    ///
    /// # Errors
    ///
    /// [`TrainError`] when the folder already holds a run, weights are
    /// missing, or there are too few anchors for a batch.
    pub fn start(
        config: TrainConfig,
        data: &DataSet,
        run_dir: &Path,
        device: Device,
    ) -> Result<Self, TrainError> {
        let run = RunDir::new(run_dir);
        if run.config().exists() {
            return Err(TrainError::RunExists {
                run_dir: run_dir.to_path_buf(),
            });
        }
        std::fs::create_dir_all(run_dir).map_err(|source| RunFileError::Write {
            path: run_dir.to_path_buf(),
            source,
        })?;
        let trainer = Self::prepare(config, data, run_dir, device)?;
        write_json_atomic(&trainer.run.config(), &trainer.config)?;
        write_json_atomic(&trainer.run.split(), &trainer.split)?;
        Ok(trainer)
    }

    /// Builds a trainer without writing any run file, for the learning-rate
    /// finder; `run_dir` is where it would write.
    ///
    /// # Errors
    ///
    /// As [`Trainer::start`].
    pub fn prepare(
        config: TrainConfig,
        data: &DataSet,
        run_dir: &Path,
        device: Device,
    ) -> Result<Self, TrainError> {
        let split = ValidationSplit::new(&data.train, config.validation_share, config.seed);
        let mut trainer = Self::assemble(config, data, RunDir::new(run_dir), split, device)?;
        trainer.load_pretrained()?;
        Ok(trainer)
    }

    /// Reopens a run from its folder and restores its latest checkpoint.
    ///
    /// # Errors
    ///
    /// [`TrainError`] when run files are missing or unreadable.
    pub fn resume(data: &DataSet, run_dir: &Path, device: Device) -> Result<Self, TrainError> {
        let run = RunDir::new(run_dir);
        let config: TrainConfig = read_json(&run.config())?;
        let split: ValidationSplit = read_json(&run.split())?;
        let mut trainer = Self::assemble(config, data, run, split, device)?;
        if trainer.run.state().exists() {
            trainer.state = read_json(&trainer.run.state())?;
            trainer.restore_checkpoint()?;
        } else {
            trainer.load_pretrained()?;
        }
        tracing::info!(
            "resuming at epoch {} step {}",
            trainer.state.epoch,
            trainer.state.global_step
        );
        Ok(trainer)
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    pub fn state(&self) -> &TrainState {
        &self.state
    }

    pub fn run_dir(&self) -> &Path {
        &self.run.root
    }

    /// Trains until the schedule ends or `stop` is set, sending progress to
    /// `on_event`. Stopping writes a checkpoint first.
    ///
    /// # Errors
    ///
    /// [`TrainError`] when a checkpoint cannot be written.
    pub fn run(
        &mut self,
        on_event: &mut dyn FnMut(&TrainEvent),
        stop: &AtomicBool,
    ) -> Result<Outcome, TrainError> {
        let mut emit = |run: &RunDir, event: TrainEvent| {
            if let Err(error) = append_json_line(&run.history(), &event) {
                tracing::warn!("{error}");
            }
            on_event(&event);
        };
        let message = format!(
            "{} training images, {} anchors",
            self.sampler.images().len(),
            self.sampler.anchors().len()
        );
        emit(
            &self.run,
            TrainEvent::State {
                state: RunState::Training,
                message,
            },
        );

        let n_epochs = self.config.schedule.n_epochs();
        let clock = Clock::new(self.total_steps(), self.state.global_step);
        while self.state.epoch < n_epochs {
            let outcome = self.run_epoch(&mut emit, stop, &clock)?;
            if outcome == Outcome::Stopped {
                self.checkpoint()?;
                let message = format!("stopped at step {}", self.state.global_step);
                emit(
                    &self.run,
                    TrainEvent::State {
                        state: RunState::Stopped,
                        message,
                    },
                );
                return Ok(Outcome::Stopped);
            }
        }

        self.state.finished = true;
        self.checkpoint()?;
        let message = format!("finished after {} steps", self.state.global_step);
        emit(
            &self.run,
            TrainEvent::State {
                state: RunState::Finished,
                message,
            },
        );
        Ok(Outcome::Finished)
    }

    fn assemble(
        config: TrainConfig,
        data: &DataSet,
        run: RunDir,
        split: ValidationSplit,
        device: Device,
    ) -> Result<Self, TrainError> {
        let images: Vec<String> = data.train.iter().map(|row| row.image.clone()).collect();
        let (cache, skipped) = CropCache::build(
            data,
            Split::Train,
            &images,
            &config.geometry(),
            DEFAULT_MAX_PIXELS,
        );
        if cache.is_empty() {
            let first = skipped
                .first()
                .map(|(i, e)| format!("{i}: {e}"))
                .unwrap_or_default();
            return Err(TrainError::NoImages { first });
        }
        for (image, reason) in &skipped {
            tracing::warn!("skipping {image}: {reason}");
        }
        let split = drop_unloaded(split, &cache);
        let sampler = TripletSampler::new(&split.train, config.min_images);
        let steps_per_epoch = steps_per_epoch(&config, sampler.anchors().len())?;

        let vs = VarStore::new(device);
        let net = EmbeddingNet::new(&vs.root(), &config.model);
        let adam = Adam::new(&vs, AdamConfig::default());
        let scaler = if config.mixed_precision && device.is_cuda() {
            LossScaler::dynamic()
        } else {
            LossScaler::none()
        };
        let state = TrainState {
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            steps_per_epoch,
            loss_scaler: scaler,
            checkpoint: None,
            finished: false,
        };
        let (sampler, cache) = (Arc::new(sampler), Arc::new(cache));
        Ok(Self {
            config,
            run,
            device,
            vs,
            net,
            adam,
            state,
            split,
            sampler,
            cache,
            skipped,
            loader_wait_secs: 0.0,
            loop_secs: 0.0,
        })
    }

    fn load_pretrained(&mut self) -> Result<(), TrainError> {
        let path = match (&self.config.weights, self.config.pretrained) {
            (Some(path), _) => path.clone(),
            (None, true) => default_weights_path(self.config.model.backbone),
            (None, false) => return Ok(()),
        };
        if !path.exists() {
            return Err(TrainError::NoWeights { path });
        }
        load_backbone_weights(&mut self.vs, &path)?;
        tracing::info!("backbone starts from {}", path.display());
        Ok(())
    }

    fn total_steps(&self) -> usize {
        self.config.schedule.n_epochs() * self.state.steps_per_epoch
    }

    fn run_epoch(
        &mut self,
        emit: &mut dyn FnMut(&RunDir, TrainEvent),
        stop: &AtomicBool,
        clock: &Clock,
    ) -> Result<Outcome, TrainError> {
        let epoch = self.state.epoch;
        let position = self
            .config
            .schedule
            .position(epoch)
            .expect("epoch within the schedule");
        set_backbone_trainable(&self.vs, !position.phase.freeze_backbone);
        let started = Instant::now();

        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(self.config.seed, epoch as u64));
        let order = self.sampler.epoch_order(&mut rng);
        let batch_seed = mix_seed(self.config.seed ^ 0xB47C, epoch as u64);
        let loader = EpochLoader::start(
            self.cache.clone(),
            self.sampler.clone(),
            order,
            self.config.batch_size,
            self.state.step_in_epoch,
            self.config.prefetch,
            batch_seed,
        );

        let mut sums = (0.0, 0.0, 0usize);
        let mut loader = loader;
        loop {
            let waited = Instant::now();
            let Some(batch) = loader.next() else { break };
            self.loader_wait_secs += waited.elapsed().as_secs_f64();
            if self.state.step_in_epoch >= self.state.steps_per_epoch {
                break;
            }
            let step_started = Instant::now();
            let lrs = self.config.schedule.lrs(
                self.config.lr,
                self.state.epoch,
                self.state.step_in_epoch,
                self.state.steps_per_epoch,
            );
            let (loss, accuracy) = self.train_step(&batch.images, &batch.labels, lrs);
            let lr = lrs[2];
            sums = (sums.0 + loss, sums.1 + accuracy, sums.2 + 1);
            let stats = self.step_stats(loss, accuracy, lr, step_started, clock);
            self.state.step_in_epoch += 1;
            self.state.global_step += 1;
            emit(&self.run, TrainEvent::Step(stats));
            self.loop_secs += waited.elapsed().as_secs_f64();

            if stop.load(Ordering::Relaxed) {
                return Ok(Outcome::Stopped);
            }
            let every = self.config.checkpoint_every;
            if every > 0 && self.state.global_step.is_multiple_of(every) {
                self.checkpoint()?;
            }
        }

        let n = sums.2.max(1) as f64;
        let stats = self.validate(epoch, sums.0 / n, sums.1 / n, started);
        self.state.epoch += 1;
        self.state.step_in_epoch = 0;
        self.checkpoint()?;
        save_model(&self.vs, &self.config.model, &self.run.root)?;
        tracing::info!(
            "epoch {} done: loss {:.4}, val MAP@5 {:?}",
            epoch + 1,
            stats.train_loss,
            stats.val_map5
        );
        emit(&self.run, TrainEvent::Epoch(stats));
        Ok(Outcome::Finished)
    }

    /// One optimizer step at the given group learning rates; returns loss
    /// and triplet accuracy.
    pub(crate) fn train_step(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        lrs: [f64; 3],
    ) -> (f64, f64) {
        let step_seed = mix_seed(self.config.seed ^ 0xA0C, self.state.global_step as u64);
        tch::manual_seed(step_seed as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed);
        self.adam.set_lrs(&lrs);

        let xs = augment::augment(
            &to_unit_float(images, self.device),
            &self.config.augment,
            &mut rng,
        );
        let xs = normalise(&xs, &IMAGENET);
        let labels = labels.to_device(self.device);
        let use_amp = self.state.loss_scaler.growth_interval != u64::MAX;
        let embeddings = tch::autocast(use_amp, || self.net.forward_t(&xs, true));
        let loss = contrastive_loss(&embeddings, &labels, self.config.margin);

        self.adam.zero_grad();
        (&loss * self.state.loss_scaler.scale).backward();
        let outcome = self.adam.step(self.state.loss_scaler.scale);
        self.state.loss_scaler.update(outcome.applied);

        let accuracy = tch::no_grad(|| {
            let parts = embeddings.detach().chunk(3, 0);
            triplet_accuracy(&parts[0], &parts[1], &parts[2]).double_value(&[])
        });
        (loss.double_value(&[]), accuracy)
    }

    /// Batches of one pass over the anchors in a seeded order, for callers
    /// that drive steps themselves.
    pub(crate) fn batches(&self, pass: u64) -> EpochLoader {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(self.config.seed, pass));
        let order = self.sampler.epoch_order(&mut rng);
        let seed = mix_seed(self.config.seed ^ 0xB47C, pass);
        let (cache, sampler) = (self.cache.clone(), self.sampler.clone());
        EpochLoader::start(cache, sampler, order, self.config.batch_size, 0, 2, seed)
    }

    pub(crate) fn set_backbone_frozen(&self, frozen: bool) {
        set_backbone_trainable(&self.vs, !frozen);
    }

    fn step_stats(
        &self,
        loss: f64,
        accuracy: f64,
        lr: f64,
        started: Instant,
        clock: &Clock,
    ) -> StepStats {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let n_images = 3 * self.config.batch_size;
        let done = self.state.global_step + 1;
        StepStats {
            epoch: self.state.epoch,
            step: self.state.step_in_epoch,
            steps_per_epoch: self.state.steps_per_epoch,
            global_step: done,
            total_steps: clock.total_steps,
            loss,
            accuracy,
            lr,
            images_per_sec: n_images as f64 / secs,
            eta_secs: clock.eta(done),
        }
    }

    /// Validation loss and accuracy on triplets of the validation split,
    /// and MAP@5 of validation images against the training gallery.
    fn validate(
        &self,
        epoch: usize,
        train_loss: f64,
        train_accuracy: f64,
        started: Instant,
    ) -> EpochStats {
        let enabled = self.config.validate;
        let (val_loss, val_accuracy) = enabled
            .then(|| self.validation_triplets())
            .flatten()
            .unzip();
        EpochStats {
            epoch,
            n_epochs: self.config.schedule.n_epochs(),
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            val_map5: enabled.then(|| self.validation_map5()).flatten(),
            secs: started.elapsed().as_secs_f64(),
        }
    }

    fn validation_triplets(&self) -> Option<(f64, f64)> {
        let sampler = Arc::new(TripletSampler::new(&self.split.validation, 1));
        let n_anchors = sampler.anchors().len();
        if n_anchors == 0 {
            return None;
        }
        let batch_size = self.config.batch_size.min(n_anchors);
        let anchors = sampler.anchors().to_vec();
        let seed = mix_seed(self.config.seed, 0x7A1);
        let loader =
            EpochLoader::start(self.cache.clone(), sampler, anchors, batch_size, 0, 2, seed);

        let mut sums = (0.0, 0.0, 0usize);
        for batch in loader {
            let (loss, accuracy) = tch::no_grad(|| {
                let xs = normalise(&to_unit_float(&batch.images, self.device), &IMAGENET);
                let embeddings = self.net.forward_t(&xs, false);
                let labels = batch.labels.to_device(self.device);
                let loss = contrastive_loss(&embeddings, &labels, self.config.margin);
                let parts = embeddings.chunk(3, 0);
                let accuracy = triplet_accuracy(&parts[0], &parts[1], &parts[2]);
                (loss.double_value(&[]), accuracy.double_value(&[]))
            });
            sums = (sums.0 + loss, sums.1 + accuracy, sums.2 + 1);
        }
        let n = sums.2.max(1) as f64;
        Some((sums.0 / n, sums.1 / n))
    }

    fn validation_map5(&self) -> Option<f64> {
        if self.split.validation.is_empty() || self.split.train.is_empty() {
            return None;
        }
        let gallery = self.embed_rows(&self.split.train);
        let queries = self.embed_rows(&self.split.validation);
        let labels: Vec<String> = self.split.train.iter().map(|r| r.id.clone()).collect();
        let truths: Vec<String> = self.split.validation.iter().map(|r| r.id.clone()).collect();
        let neighbours = nearest(to_array(&gallery), &to_array(&queries), self.device).ok()?;
        Some(evaluate(&neighbours, &labels, &truths, self.config.dcut).map5)
    }

    fn embed_rows(&self, rows: &[Labelled]) -> Tensor {
        let positions: Vec<usize> = rows
            .iter()
            .filter_map(|row| self.cache.position(&row.image))
            .collect();
        embed_cached(
            &self.net,
            &self.cache,
            &positions,
            self.config.eval_batch_size,
            self.device,
            &mut |_| {},
        )
    }

    /// Writes weights and optimizer state, then the state file that points
    /// at them, then removes older checkpoints.
    fn checkpoint(&mut self) -> Result<(), TrainError> {
        let path = self.run.checkpoint(self.state.global_step);
        let mut tensors: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(name, tensor)| (format!("model.{name}"), tensor))
            .collect();
        tensors.extend(self.adam.state());
        let tmp = path.with_extension("tmp");
        Tensor::write_safetensors(&tensors, &tmp)?;
        std::fs::rename(&tmp, &path).map_err(|source| RunFileError::Write {
            path: path.clone(),
            source,
        })?;

        let previous = self.state.checkpoint.replace(file_name(&path));
        write_json_atomic(&self.run.state(), &self.state)?;
        if let Some(previous) = previous.filter(|p| *p != file_name(&path)) {
            let _ = std::fs::remove_file(self.run.root.join(previous));
        }
        tracing::debug!("checkpoint written at step {}", self.state.global_step);
        Ok(())
    }

    fn restore_checkpoint(&mut self) -> Result<(), TrainError> {
        let Some(name) = self.state.checkpoint.clone() else {
            return Ok(());
        };
        let path = self.run.root.join(&name);
        let fail = |message: String| TrainError::Checkpoint {
            path: path.clone(),
            message,
        };
        let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
            .map_err(|e| fail(e.to_string()))?
            .into_iter()
            .collect();

        let variables: HashMap<String, Tensor> = self.vs.variables();
        tch::no_grad(|| -> Result<(), TrainError> {
            for (name, mut variable) in variables {
                let saved = tensors
                    .get(&format!("model.{name}"))
                    .ok_or_else(|| fail(format!("missing variable {name}")))?;
                variable.f_copy_(saved).map_err(|e| fail(e.to_string()))?;
            }
            Ok(())
        })?;
        self.adam.load_state(&tensors);
        Ok(())
    }
}

/// Estimates time left from the steps done in this session.
struct Clock {
    started: Instant,
    first_step: usize,
    total_steps: usize,
}

impl Clock {
    fn new(total_steps: usize, first_step: usize) -> Self {
        Self {
            started: Instant::now(),
            first_step,
            total_steps,
        }
    }

    fn eta(&self, done: usize) -> f64 {
        let n_done = done.saturating_sub(self.first_step).max(1) as f64;
        let per_step = self.started.elapsed().as_secs_f64() / n_done;
        per_step * self.total_steps.saturating_sub(done) as f64
    }
}

fn steps_per_epoch(config: &TrainConfig, n_anchors: usize) -> Result<usize, TrainError> {
    let full = n_anchors / config.batch_size.max(1);
    if full == 0 {
        return Err(TrainError::TooFewAnchors {
            n_anchors,
            min_images: config.min_images,
            batch_size: config.batch_size,
        });
    }
    Ok(config
        .max_steps_per_epoch
        .map_or(full, |cap| full.min(cap.max(1))))
}

/// Leaves out of the split the images that could not be loaded.
fn drop_unloaded(split: ValidationSplit, cache: &CropCache) -> ValidationSplit {
    let keep = |rows: Vec<Labelled>| -> Vec<Labelled> {
        rows.into_iter()
            .filter(|row| cache.position(&row.image).is_some())
            .collect()
    };
    ValidationSplit {
        train: keep(split.train),
        validation: keep(split.validation),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Checks that embeddings are finite; a diverged run shows up here first.
pub fn all_finite(xs: &Tensor) -> bool {
    xs.isfinite().all().int64_value(&[]) == 1 && xs.kind() != Kind::Bool
}
