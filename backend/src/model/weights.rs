//! Weights on disk: ImageNet backbones in, trained networks out and back.
//!
//! Pretrained backbones come as safetensors files keyed like torchvision or
//! lukemelas state dicts (see `scripts/convert_weights.py`) and are loaded by
//! name into the `backbone.*` variables. A trained network is a directory
//! holding `model.json` (its [`ModelConfig`]) and `model.safetensors` (every
//! variable, batch norm statistics included); loading rebuilds the network
//! from the JSON, so the two cannot disagree.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::{env, fs, io};

use tch::nn;
use tch::{Device, TchError, Tensor};
use tracing::info;

use super::net::BACKBONE_PREFIX;
use super::{Backbone, EmbeddingNet, ModelConfig};

/// File name of the network's config inside a model directory.
pub const CONFIG_FILE: &str = "model.json";
/// File name of the network's weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// What can go wrong reading or writing weights.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read weights from {path}")]
    ReadWeights {
        path: PathBuf,
        #[source]
        source: TchError,
    },
    #[error("cannot write weights to {path}")]
    WriteWeights {
        path: PathBuf,
        #[source]
        source: TchError,
    },
    #[error(
        "weights in {path} do not fit the backbone: {}",
        mismatch_summary(.missing, .unexpected, .wrong_shape)
    )]
    WeightsMismatch {
        path: PathBuf,
        /// Backbone variables the file lacks.
        missing: Vec<String>,
        /// Tensors of the file the backbone has no variable for.
        unexpected: Vec<String>,
        wrong_shape: Vec<ShapeMismatch>,
    },
    #[error("cannot read the model config {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("model config {path} is not valid")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A tensor whose shape differs between the file and the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub name: String,
    pub expected: Vec<i64>,
    pub got: Vec<i64>,
}

/// Loads ImageNet weights into the `backbone.*` variables of `vs`, by name.
///
/// The file's classifier (`fc.*`, `_fc.*`) and `num_batches_tracked`
/// counters are skipped. Nothing is loaded unless every backbone variable
/// has a tensor of its shape and every other tensor has a variable.
///
/// # Errors
/// [`ModelError::ReadWeights`] when the file cannot be read as safetensors,
/// [`ModelError::WeightsMismatch`], listing the offending names, when it
/// holds weights of another architecture.
pub fn load_backbone_weights(vs: &mut nn::VarStore, path: &Path) -> Result<(), ModelError> {
    let read_error = |source| ModelError::ReadWeights {
        path: path.to_owned(),
        source,
    };
    let file: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(read_error)?
        .into_iter()
        .filter(|(name, _)| !is_skipped_key(name))
        .collect();
    let backbone: HashMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .filter_map(|(name, tensor)| Some((name.strip_prefix(BACKBONE_PREFIX)?.to_owned(), tensor)))
        .collect();

    check_fit(path, &backbone, &file)?;
    tch::no_grad(|| {
        for (name, variable) in &backbone {
            variable
                .shallow_clone()
                .f_copy_(&file[name])
                .map_err(read_error)?;
        }
        Ok(())
    })?;
    info!(path = %path.display(), n_tensors = backbone.len(), "loaded backbone weights");
    Ok(())
}

/// Writes `model.json` and `model.safetensors` into `dir`, creating it.
///
/// Both files are written aside first and then moved into place, so a crash
/// never leaves a half-written file under either name.
///
/// # Errors
/// [`ModelError::Write`] or [`ModelError::WriteWeights`] naming the file.
pub fn save_model(vs: &nn::VarStore, config: &ModelConfig, dir: &Path) -> Result<(), ModelError> {
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ModelError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(write_error(dir))?;
    // A staging directory beside the targets: renaming out of it is atomic,
    // and files created in it get ordinary permissions.
    let staging = tempfile::Builder::new()
        .prefix(".model-")
        .tempdir_in(dir)
        .map_err(write_error(dir))?;

    let staged_weights = staging.path().join(WEIGHTS_FILE);
    vs.save(&staged_weights)
        .map_err(|source| ModelError::WriteWeights {
            path: dir.join(WEIGHTS_FILE),
            source,
        })?;
    let staged_config = staging.path().join(CONFIG_FILE);
    let json = serde_json::to_vec_pretty(config).expect("a model config serialises to JSON");
    fs::write(&staged_config, json).map_err(write_error(&dir.join(CONFIG_FILE)))?;

    for (staged, name) in [(staged_weights, WEIGHTS_FILE), (staged_config, CONFIG_FILE)] {
        let target = dir.join(name);
        fs::rename(staged, &target).map_err(write_error(&target))?;
    }
    info!(dir = %dir.display(), "saved the model");
    Ok(())
}

/// Rebuilds the network described by `dir/model.json` on `device` and loads
/// `dir/model.safetensors` into it.
///
/// # Errors
/// [`ModelError::ReadConfig`] or [`ModelError::ParseConfig`] for the JSON,
/// [`ModelError::ReadWeights`] when the weights are unreadable or lack a
/// variable of the network.
pub fn load_model(dir: &Path, device: Device) -> Result<(nn::VarStore, EmbeddingNet), ModelError> {
    let config_path = dir.join(CONFIG_FILE);
    let json = fs::read(&config_path).map_err(|source| ModelError::ReadConfig {
        path: config_path.clone(),
        source,
    })?;
    let config: ModelConfig =
        serde_json::from_slice(&json).map_err(|source| ModelError::ParseConfig {
            path: config_path.clone(),
            source,
        })?;

    let mut vs = nn::VarStore::new(device);
    let net = EmbeddingNet::new(&vs.root(), &config);
    let weights_path = dir.join(WEIGHTS_FILE);
    vs.load(&weights_path)
        .map_err(|source| ModelError::ReadWeights {
            path: weights_path,
            source,
        })?;
    info!(dir = %dir.display(), backbone = ?config.backbone, "loaded the model");
    Ok((vs, net))
}

/// Where the ImageNet weights of `backbone` are expected:
/// `$FLUKEID_WEIGHTS/<name>.safetensors`, the directory defaulting to
/// `$HOME/.cache/flukeid/weights` (where `scripts/setup.sh` puts them). The
/// file may not exist; callers decide whether to train from scratch.
pub fn default_weights_path(backbone: Backbone) -> PathBuf {
    let dir = weights_dir(env::var_os("FLUKEID_WEIGHTS"), env::var_os("HOME"));
    dir.join(format!("{}.safetensors", backbone.weights_name()))
}

/// Keys of ImageNet state dicts that have no backbone variable: the
/// classifier, which the embedding head replaces, and batch norm's batch
/// counter, which tch does not keep.
pub(crate) fn is_skipped_key(name: &str) -> bool {
    name.starts_with("fc.") || name.starts_with("_fc.") || name.ends_with("num_batches_tracked")
}

fn weights_dir(flukeid_weights: Option<OsString>, home: Option<OsString>) -> PathBuf {
    match flukeid_weights.filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(home.unwrap_or_default()).join(".cache/flukeid/weights"),
    }
}

/// Checks names and shapes both ways before anything is copied.
fn check_fit(
    path: &Path,
    backbone: &HashMap<String, Tensor>,
    file: &HashMap<String, Tensor>,
) -> Result<(), ModelError> {
    let mut missing: Vec<String> = backbone
        .keys()
        .filter(|name| !file.contains_key(*name))
        .cloned()
        .collect();
    let mut unexpected: Vec<String> = file
        .keys()
        .filter(|name| !backbone.contains_key(*name))
        .cloned()
        .collect();
    let mut wrong_shape: Vec<ShapeMismatch> = backbone
        .iter()
        .filter_map(|(name, variable)| {
            let (expected, got) = (variable.size(), file.get(name)?.size());
            (expected != got).then(|| ShapeMismatch {
                name: name.clone(),
                expected,
                got,
            })
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && wrong_shape.is_empty() {
        return Ok(());
    }

    missing.sort();
    unexpected.sort();
    wrong_shape.sort_by(|a, b| a.name.cmp(&b.name));
    Err(ModelError::WeightsMismatch {
        path: path.to_owned(),
        missing,
        unexpected,
        wrong_shape,
    })
}

/// "3 missing (a, b, c), 1 of the wrong shape (d: expected [1] got [2])",
/// naming at most a few of each.
fn mismatch_summary(
    missing: &[String],
    unexpected: &[String],
    wrong_shape: &[ShapeMismatch],
) -> String {
    const SHOWN: usize = 4;
    let shapes: Vec<String> = wrong_shape
        .iter()
        .map(|m| format!("{}: expected {:?} got {:?}", m.name, m.expected, m.got))
        .collect();

    let mut parts = Vec::new();
    for (what, names) in [
        ("missing", missing),
        ("unexpected", unexpected),
        ("of the wrong shape", &shapes),
    ] {
        if names.is_empty() {
            continue;
        }
        let mut part = format!(
            "{} {what} ({}",
            names.len(),
            names[..names.len().min(SHOWN)].join(", ")
        );
        if names.len() > SHOWN {
            part.push_str(", ...");
        }
        part.push(')');
        parts.push(part);
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::*;

    fn build(backbone: Backbone) -> (nn::VarStore, EmbeddingNet) {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig {
            backbone,
            embedding_size: 32,
            ..ModelConfig::default()
        };
        let net = EmbeddingNet::new(&vs.root(), &config);
        (vs, net)
    }

    fn lite0_weights() -> PathBuf {
        let path = default_weights_path(Backbone::EfficientnetLite0);
        assert!(
            path.is_file(),
            "{} exists; run scripts/setup.sh",
            path.display()
        );
        path
    }

    #[test]
    fn saved_model_loads_to_the_same_embeddings() {
        let (vs, net) = build(Backbone::EfficientnetLite0);
        let xs = Tensor::randn([2, 3, 64, 192], (Kind::Float, Device::Cpu));
        // One training pass moves the batch norm statistics off their
        // initial values, so that saving them is tested too.
        let _ = tch::no_grad(|| net.forward_t(&xs, true));
        let dir = tempfile::tempdir().unwrap();

        save_model(&vs, net.config(), dir.path()).unwrap();
        let (_loaded_vs, loaded) = load_model(dir.path(), Device::Cpu).unwrap();

        let before = tch::no_grad(|| net.forward_t(&xs, false));
        let after = tch::no_grad(|| loaded.forward_t(&xs, false));
        assert_eq!(loaded.config(), net.config());
        assert!(
            before.equal(&after),
            "max difference {}",
            (before - after).abs().max()
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "only the two model files remain: {names:?}");
    }

    #[test]
    fn lite0_imagenet_weights_fill_every_backbone_variable() {
        let (mut vs, _net) = build(Backbone::EfficientnetLite0);
        let path = lite0_weights();

        load_backbone_weights(&mut vs, &path).unwrap();

        let stem = vs.variables()["backbone._conv_stem.weight"].shallow_clone();
        let file = Tensor::read_safetensors(&path).unwrap();
        let (_, expected) = file
            .iter()
            .find(|(name, _)| name == "_conv_stem.weight")
            .unwrap();
        assert!(stem.equal(expected));
    }

    #[test]
    fn weights_of_another_backbone_are_refused_by_name() {
        let (mut vs, _net) = build(Backbone::Resnet34);
        let before = vs.variables()["backbone.conv1.weight"].copy();

        let err = load_backbone_weights(&mut vs, &lite0_weights()).unwrap_err();

        let ModelError::WeightsMismatch {
            missing,
            unexpected,
            ..
        } = &err
        else {
            panic!("expected a mismatch, got {err:?}");
        };
        assert!(missing.contains(&"conv1.weight".to_string()));
        assert!(unexpected.contains(&"_conv_stem.weight".to_string()));
        assert!(err.to_string().contains("missing (bn1.bias"), "{err}");
        assert!(
            vs.variables()["backbone.conv1.weight"].equal(&before),
            "nothing was loaded"
        );
    }

    #[test]
    fn weights_of_the_wrong_shape_are_refused_by_name() {
        let (mut vs, _net) = build(Backbone::EfficientnetLite0);
        let mut tensors = Tensor::read_safetensors(lite0_weights()).unwrap();
        for (name, tensor) in &mut tensors {
            if name == "_bn0.weight" {
                *tensor = Tensor::ones([16], (Kind::Float, Device::Cpu));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("narrow.safetensors");
        Tensor::write_safetensors(&tensors, &path).unwrap();

        let err = load_backbone_weights(&mut vs, &path).unwrap_err();

        let ModelError::WeightsMismatch {
            missing,
            unexpected,
            wrong_shape,
            ..
        } = &err
        else {
            panic!("expected a mismatch, got {err:?}");
        };
        assert!(missing.is_empty() && unexpected.is_empty());
        let expected = ShapeMismatch {
            name: "_bn0.weight".into(),
            expected: vec![32],
            got: vec![16],
        };
        assert_eq!(wrong_shape, &[expected]);
        assert!(
            err.to_string()
                .contains("_bn0.weight: expected [32] got [16]"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_weights_name_the_file() {
        let (mut vs, _net) = build(Backbone::Resnet34);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resnet34.safetensors");
        fs::write(&path, b"not safetensors").unwrap();

        let err = load_backbone_weights(&mut vs, &path).unwrap_err();

        assert!(matches!(err, ModelError::ReadWeights { .. }), "{err:?}");
        assert!(err.to_string().contains("resnet34.safetensors"), "{err}");
    }

    #[test]
    fn a_model_directory_without_config_is_reported() {
        let dir = tempfile::tempdir().unwrap();

        let err = load_model(dir.path(), Device::Cpu).unwrap_err();

        assert!(matches!(err, ModelError::ReadConfig { .. }), "{err:?}");
    }

    #[test]
    fn weights_dir_prefers_the_environment_over_home() {
        let home = Some("/home/ahab".into());

        assert_eq!(
            weights_dir(Some("/data/w".into()), home.clone()),
            PathBuf::from("/data/w")
        );
        assert_eq!(
            weights_dir(Some("".into()), home.clone()),
            PathBuf::from("/home/ahab/.cache/flukeid/weights")
        );
        assert_eq!(
            weights_dir(None, home),
            PathBuf::from("/home/ahab/.cache/flukeid/weights")
        );
    }

    #[test]
    fn classifier_and_counters_are_skipped() {
        assert!(is_skipped_key("fc.weight"));
        assert!(is_skipped_key("_fc.bias"));
        assert!(is_skipped_key("layer1.0.bn1.num_batches_tracked"));
        assert!(!is_skipped_key("layer1.0.bn1.running_mean"));
        assert!(!is_skipped_key("_bn1.weight"));
    }
}
