//! The steps after training, as the command line and the server run them:
//! embed a data set with a run's model, evaluate and calibrate `dcut` on the
//! run's validation split, and write a Kaggle submission.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::data::{DataSet, Labelled, Split};
use crate::embed::embed_cached;
use crate::evaluate::{
    dcut_range, evaluate, nearest, rank_all, sweep, to_array, Evaluation, DEFAULT_DCUT,
};
use crate::image_io::DEFAULT_MAX_PIXELS;
use crate::index::IndexError;
use crate::loader::CropCache;
use crate::model::{load_model, EmbeddingNet, ModelError};
use crate::predict::prediction_string;
use crate::run_dir::{read_json, write_atomic, write_json_atomic, RunDir, RunFileError};
use crate::sampler::ValidationSplit;
use crate::train::TrainConfig;

/// A run's model, ready to embed.
pub struct RunModel {
    pub run: RunDir,
    pub config: TrainConfig,
    pub net: EmbeddingNet,
    pub device: Device,
    _vs: tch::nn::VarStore,
}

/// Embeddings of named images.
pub struct Embedded {
    pub names: Vec<String>,
    /// `[names.len(), E]` on the CPU.
    pub embeddings: Tensor,
    /// Images that could not be decoded or cropped, with the reason.
    pub failures: Vec<(String, String)>,
}

/// The `dcut` chosen by a sweep; saved as `calibration.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub dcut: f32,
    pub map5: f64,
    pub table: Vec<Evaluation>,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    RunFile(#[from] RunFileError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{what} is empty: nothing to {action}")]
    Empty { what: String, action: String },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error(
        "submission does not match {sample}: {n_missing} images missing, {n_extra} extra \
         (for example {example})"
    )]
    SampleMismatch {
        sample: PathBuf,
        n_missing: usize,
        n_extra: usize,
        example: String,
    },
}

impl RunModel {
    /// Loads the latest weights of the run in `run_dir`, rebuilt from the
    /// saved model config.
    ///
    /// # Errors
    ///
    /// [`WorkflowError`] when the run's files are missing or unreadable.
    pub fn open(run_dir: &Path, device: Device) -> Result<Self, WorkflowError> {
        let run = RunDir::new(run_dir);
        let config: TrainConfig = read_json(&run.config())?;
        let (vs, net) = load_model(run_dir, device)?;
        Ok(Self {
            run,
            config,
            net,
            device,
            _vs: vs,
        })
    }

    /// The run's validation split.
    ///
    /// # Errors
    ///
    /// [`WorkflowError::RunFile`] when `split.json` is missing or invalid.
    pub fn split(&self) -> Result<ValidationSplit, WorkflowError> {
        Ok(read_json(&self.run.split())?)
    }

    /// The calibrated `dcut`, if the run has one.
    pub fn calibrated_dcut(&self) -> Option<f32> {
        read_json::<Calibration>(&self.run.calibration())
            .ok()
            .map(|c| c.dcut)
    }

    /// Decodes, crops and embeds `images` of `split`, reporting progress as
    /// `(done, total)`.
    pub fn embed(
        &self,
        data: &DataSet,
        split: Split,
        images: &[String],
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Embedded {
        let geometry = self.config.geometry();
        let (cache, failures) =
            CropCache::build(data, split, images, &geometry, DEFAULT_MAX_PIXELS);
        let positions: Vec<usize> = (0..cache.len()).collect();
        let total = positions.len();
        let batch = self.config.eval_batch_size;
        let mut report = |done| on_progress(done, total);
        let embeddings = embed_cached(
            &self.net,
            &cache,
            &positions,
            batch,
            self.device,
            &mut report,
        );
        Embedded {
            names: cache.names().to_vec(),
            embeddings,
            failures,
        }
    }
}

/// MAP@5 of the run's validation images against its training images, at
/// `dcut` or, with `sweep_range`, at each of `n` values between two bounds;
/// a sweep stores the best `dcut` in the run.
///
/// # Errors
///
/// [`WorkflowError`] when run files are unreadable or a split is empty.
pub fn validate(
    model: &RunModel,
    data: &DataSet,
    dcut: Option<f32>,
    sweep_range: Option<(f32, f32, usize)>,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Evaluation>, WorkflowError> {
    let split = model.split()?;
    let gallery = embed_rows(model, data, &split.train, on_progress)?;
    let queries = embed_rows(model, data, &split.validation, on_progress)?;
    let neighbours = nearest(
        to_array(&gallery.embeddings),
        &to_array(&queries.embeddings),
        model.device,
    )?;
    let labels = labels_of(&split.train, &gallery.names);
    let truths = labels_of(&split.validation, &queries.names);

    let Some((lo, hi, n)) = sweep_range else {
        let dcut = dcut.or(model.calibrated_dcut()).unwrap_or(DEFAULT_DCUT);
        return Ok(vec![evaluate(&neighbours, &labels, &truths, dcut)]);
    };
    let (table, best) = sweep(&neighbours, &labels, &truths, &dcut_range(lo, hi, n));
    let calibration = Calibration {
        dcut: table[best].dcut,
        map5: table[best].map5,
        table: table.clone(),
    };
    write_json_atomic(&model.run.calibration(), &calibration)?;
    Ok(table)
}

/// Predicts five labels for every test image with all training images as
/// the gallery and writes `Image,Id` rows to `out`. Returns the number of
/// rows. When `sample_submission.csv` exists the image sets must match.
///
/// # Errors
///
/// [`WorkflowError`] when there is nothing to predict, the output cannot be
/// written, or the images differ from the sample submission's.
pub fn submit(
    model: &RunModel,
    data: &DataSet,
    dcut: f32,
    out: &Path,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<usize, WorkflowError> {
    let gallery = embed_rows(model, data, &data.train, on_progress)?;
    if data.test.is_empty() {
        let what = data.root.join("test").display().to_string();
        return Err(WorkflowError::Empty {
            what,
            action: "predict".into(),
        });
    }
    let queries = model.embed(data, Split::Test, &data.test, on_progress);
    for (image, reason) in &queries.failures {
        tracing::warn!("predicting new_whale for {image}, which could not be read: {reason}");
    }
    let neighbours = nearest(
        to_array(&gallery.embeddings),
        &to_array(&queries.embeddings),
        model.device,
    )?;
    let labels = labels_of(&data.train, &gallery.names);
    let ranked = rank_all(&neighbours, &labels, dcut);

    let mut rows: Vec<(String, String)> = queries
        .names
        .iter()
        .cloned()
        .zip(ranked.iter().map(|c| prediction_string(c)))
        .collect();
    rows.extend(
        queries
            .failures
            .iter()
            .map(|(image, _)| (image.clone(), "new_whale".to_string())),
    );
    rows.sort();
    check_against_sample(data, &rows)?;
    write_submission(out, &rows)?;
    Ok(rows.len())
}

fn embed_rows(
    model: &RunModel,
    data: &DataSet,
    rows: &[Labelled],
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Embedded, WorkflowError> {
    let images: Vec<String> = rows.iter().map(|r| r.image.clone()).collect();
    let embedded = model.embed(data, Split::Train, &images, on_progress);
    for (image, reason) in &embedded.failures {
        tracing::warn!("leaving out {image}: {reason}");
    }
    if embedded.names.is_empty() {
        return Err(WorkflowError::Empty {
            what: "the image list".into(),
            action: "embed".into(),
        });
    }
    Ok(embedded)
}

/// Labels of `names`, looked up in `rows`.
fn labels_of(rows: &[Labelled], names: &[String]) -> Vec<String> {
    let by_image: std::collections::HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r.image.as_str(), r.id.as_str()))
        .collect();
    names
        .iter()
        .map(|n| by_image[n.as_str()].to_string())
        .collect()
}

fn check_against_sample(data: &DataSet, rows: &[(String, String)]) -> Result<(), WorkflowError> {
    let sample = data.root.join("sample_submission.csv");
    let Ok(mut reader) = csv::Reader::from_path(&sample) else {
        return Ok(());
    };
    let expected: HashSet<String> = reader
        .records()
        .filter_map(|r| r.ok().and_then(|r| r.get(0).map(str::to_string)))
        .collect();
    let got: HashSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    let missing: Vec<&String> = expected.difference(&got).collect();
    let extra: Vec<&String> = got.difference(&expected).collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let example = missing
        .first()
        .or(extra.first())
        .map(|s| s.to_string())
        .unwrap_or_default();
    Err(WorkflowError::SampleMismatch {
        sample,
        n_missing: missing.len(),
        n_extra: extra.len(),
        example,
    })
}

fn write_submission(path: &Path, rows: &[(String, String)]) -> Result<(), WorkflowError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| WorkflowError::Write {
        path: path.into(),
        message: e.to_string(),
    };
    writer.write_record(["Image", "Id"]).map_err(fail)?;
    for (image, labels) in rows {
        writer.write_record([image, labels]).map_err(fail)?;
    }
    let bytes = writer.into_inner().map_err(|e| WorkflowError::Write {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Writes embeddings in the reference's CSV format (`files,emb`, floats
/// separated by single spaces) as `NAME.csv`, and as `NAME.safetensors`
/// (tensor `embeddings`) beside it with the names in `NAME.names.json`.
///
/// # Errors
///
/// [`WorkflowError`] naming the file that could not be written.
pub fn write_embeddings(dir: &Path, name: &str, embedded: &Embedded) -> Result<(), WorkflowError> {
    let values = to_array(&embedded.embeddings);
    let mut text = String::from("files,emb\n");
    for (image, row) in embedded.names.iter().zip(values.rows()) {
        let floats: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        text.push_str(&format!("{image},{}\n", floats.join(" ")));
    }
    write_atomic(&dir.join(format!("{name}.csv")), text.as_bytes())?;

    let binary = dir.join(format!("{name}.safetensors"));
    let tmp = binary.with_extension("tmp");
    Tensor::write_safetensors(&[("embeddings", &embedded.embeddings)], &tmp).map_err(|e| {
        WorkflowError::Write {
            path: binary.clone(),
            message: e.to_string(),
        }
    })?;
    std::fs::rename(&tmp, &binary).map_err(|e| WorkflowError::Write {
        path: binary.clone(),
        message: e.to_string(),
    })?;
    write_json_atomic(&dir.join(format!("{name}.names.json")), &embedded.names)?;
    Ok(())
}

/// Reads embeddings written by [`write_embeddings`] from the binary form.
///
/// # Errors
///
/// [`WorkflowError`] when the files are missing or inconsistent.
pub fn read_embeddings(dir: &Path, name: &str) -> Result<(Vec<String>, Tensor), WorkflowError> {
    let names: Vec<String> = read_json(&dir.join(format!("{name}.names.json")))?;
    let path = dir.join(format!("{name}.safetensors"));
    let tensors = Tensor::read_safetensors(&path).map_err(|e| WorkflowError::Write {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let embeddings = tensors
        .into_iter()
        .find(|(n, _)| n == "embeddings")
        .map(|(_, t)| t)
        .ok_or_else(|| WorkflowError::Empty {
            what: path.display().to_string(),
            action: "read".into(),
        })?;
    Ok((names, embeddings))
}

/// Reads the reference's CSV format back.
///
/// # Errors
///
/// [`WorkflowError`] when the file is unreadable.
pub fn read_embeddings_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<f32>>), WorkflowError> {
    let fail = |e: csv::Error| WorkflowError::Write {
        path: path.into(),
        message: e.to_string(),
    };
    let mut reader = csv::Reader::from_path(path).map_err(fail)?;
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(fail)?;
        names.push(record[0].to_string());
        rows.push(
            record[1]
                .split(' ')
                .filter_map(|v| v.parse().ok())
                .collect(),
        );
    }
    Ok((names, rows))
}
