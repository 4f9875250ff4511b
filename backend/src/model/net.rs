//! The embedding network: a backbone and the embedding head, built from a
//! [`ModelConfig`].
//!
//! Embeddings are produced in exactly one place,
//! [`EmbeddingNet::forward_t`], for training, the gallery and queries alike.
//! Loading and saving weights is in `weights.rs`.

use std::collections::HashSet;

use tch::nn;
use tch::Tensor;
use tracing::debug;

use super::efficientnet::EfficientNetLite0;
use super::head::Head;
use super::resnet::ResNet;
use super::{Backbone, ModelConfig};

/// Optimizer group of the backbone's stem and first half.
pub const BACKBONE_EARLY_GROUP: usize = 0;
/// Optimizer group of the backbone's second half.
pub const BACKBONE_LATE_GROUP: usize = 1;
/// Optimizer group of the embedding head.
pub const HEAD_GROUP: usize = 2;

/// Prefix of every backbone variable in the var store.
pub(super) const BACKBONE_PREFIX: &str = "backbone.";

/// Backbone and head, ready to embed crops.
#[derive(Debug)]
pub struct EmbeddingNet {
    config: ModelConfig,
    backbone: BackboneNet,
    head: Head,
}

impl EmbeddingNet {
    /// Builds the variables under `vs / "backbone"` and `vs / "head"`.
    ///
    /// Backbone variables go in optimizer groups [`BACKBONE_EARLY_GROUP`]
    /// (stem and first half) and [`BACKBONE_LATE_GROUP`] (second half), the
    /// head's in [`HEAD_GROUP`], so that each part can get its own learning
    /// rate. The backbone starts from random weights; see
    /// [`super::load_backbone_weights`].
    pub fn new(vs: &nn::Path, config: &ModelConfig) -> Self {
        debug!(backbone = ?config.backbone, "building the embedding network");
        let backbone = BackboneNet::new(&(vs / "backbone"), config.backbone);
        let head_vs = (vs / "head").set_group(HEAD_GROUP);
        let head = Head::new(&head_vs, config.backbone.feature_channels(), config);
        EmbeddingNet {
            config: config.clone(),
            backbone,
            head,
        }
    }

    /// Embeds a batch of crops. `train` switches dropout on and batch norm
    /// to batch statistics (updating the running ones).
    ///
    /// # Shapes
    /// - `xs`: `[N, 3, H, W]`, float, normalised with torchvision's ImageNet
    ///   mean and std; any `H, W` (pooling is adaptive), `N >= 2` when
    ///   `train`
    /// - returns `[N, embedding_size]`
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let features = self.backbone.forward_t(xs, train);
        self.head.forward_t(&features, train)
    }

    /// The config the network was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
}

/// Switches gradients of every trainable backbone variable (those named
/// `backbone.*`) on or off, e.g. to train the head alone first. Batch norm
/// running statistics are never trainable and are left alone.
pub fn set_backbone_trainable(vs: &nn::VarStore, trainable: bool) {
    let variables = vs
        .variables_
        .lock()
        .expect("the var store lock is not poisoned");
    // Trainable variables carry no names; the tensors they share with the
    // named ones identify them.
    let trainable_ptrs: HashSet<usize> = variables
        .trainable_variables
        .iter()
        .map(|var| var.tensor.data_ptr() as usize)
        .collect();

    let mut n_switched = 0;
    for (name, tensor) in &variables.named_variables {
        let is_trainable = trainable_ptrs.contains(&(tensor.data_ptr() as usize));
        if name.starts_with(BACKBONE_PREFIX) && is_trainable {
            let _ = tensor.set_requires_grad(trainable);
            n_switched += 1;
        }
    }
    debug!(trainable, n_switched, "switched backbone gradients");
}

/// The backbones behind one interface (boxed: the layers are plain structs
/// of tensors and the variants would differ much in size).
#[derive(Debug)]
enum BackboneNet {
    ResNet(Box<ResNet>),
    EfficientNet(Box<EfficientNetLite0>),
}

impl BackboneNet {
    fn new(vs: &nn::Path, backbone: Backbone) -> Self {
        let (early, late) = (BACKBONE_EARLY_GROUP, BACKBONE_LATE_GROUP);
        match backbone {
            Backbone::Resnext50 => {
                BackboneNet::ResNet(Box::new(ResNet::resnext50_32x4d(vs, early, late)))
            }
            Backbone::Resnet34 => BackboneNet::ResNet(Box::new(ResNet::resnet34(vs, early, late))),
            Backbone::EfficientnetLite0 => {
                BackboneNet::EfficientNet(Box::new(EfficientNetLite0::new(vs, early, late)))
            }
        }
    }

    /// # Shapes
    /// - `xs`: `[N, 3, H, W]`
    /// - returns `[N, feature_channels, ceil(H / 32), ceil(W / 32)]`
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            BackboneNet::ResNet(net) => net.forward_t(xs, train),
            BackboneNet::EfficientNet(net) => net.forward_t(xs, train),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tch::{nn, Device, Kind};

    use super::*;

    fn build(backbone: Backbone) -> (nn::VarStore, EmbeddingNet) {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig {
            backbone,
            ..ModelConfig::default()
        };
        let net = EmbeddingNet::new(&vs.root(), &config);
        (vs, net)
    }

    fn crops(n: i64, width: i64, height: i64) -> Tensor {
        Tensor::randn([n, 3, height, width], (Kind::Float, Device::Cpu))
    }

    fn embedding_shape(net: &EmbeddingNet, width: i64, height: i64) -> Vec<i64> {
        tch::no_grad(|| net.forward_t(&crops(1, width, height), false)).size()
    }

    /// Optimizer group of each named trainable variable.
    fn groups(vs: &nn::VarStore) -> HashMap<String, usize> {
        let variables = vs.variables_.lock().unwrap();
        let group_of: HashMap<usize, usize> = variables
            .trainable_variables
            .iter()
            .map(|var| (var.tensor.data_ptr() as usize, var.group))
            .collect();
        variables
            .named_variables
            .iter()
            .filter_map(|(name, t)| Some((name.clone(), *group_of.get(&(t.data_ptr() as usize))?)))
            .collect()
    }

    #[test]
    fn every_backbone_embeds_crops_of_any_size() {
        for backbone in Backbone::ALL {
            let (_vs, net) = build(backbone);

            assert_eq!(
                embedding_shape(&net, 576, 192),
                [1, 256],
                "{backbone:?} at 576x192"
            );
            assert_eq!(
                embedding_shape(&net, 160, 96),
                [1, 256],
                "{backbone:?} at 160x96"
            );
        }
    }

    #[test]
    fn training_step_reaches_every_trainable_variable() {
        let (vs, net) = build(Backbone::Resnet34);

        let loss = net
            .forward_t(&crops(2, 96, 64), true)
            .square()
            .mean(Kind::Float);
        loss.backward();

        for tensor in vs.trainable_variables() {
            assert!(
                tensor.grad().defined(),
                "every trainable variable gets a gradient"
            );
        }
    }

    #[test]
    fn variables_are_grouped_by_depth() {
        let (resnet_vs, _net) = build(Backbone::Resnet34);
        let (lite_vs, _net) = build(Backbone::EfficientnetLite0);
        let resnet = groups(&resnet_vs);
        let lite = groups(&lite_vs);

        assert_eq!(resnet["backbone.conv1.weight"], BACKBONE_EARLY_GROUP);
        assert_eq!(resnet["backbone.layer2.3.bn2.weight"], BACKBONE_EARLY_GROUP);
        assert_eq!(
            resnet["backbone.layer3.0.downsample.0.weight"],
            BACKBONE_LATE_GROUP
        );
        assert_eq!(resnet["head.hidden.weight"], HEAD_GROUP);
        assert_eq!(
            lite["backbone._blocks.7._project_conv.weight"],
            BACKBONE_EARLY_GROUP
        );
        assert_eq!(
            lite["backbone._blocks.8._expand_conv.weight"],
            BACKBONE_LATE_GROUP
        );
        assert_eq!(lite["backbone._conv_head.weight"], BACKBONE_LATE_GROUP);
        assert_eq!(lite["head.embedding.bias"], HEAD_GROUP);
        assert!(!resnet.contains_key("backbone.bn1.running_mean"));
    }

    #[test]
    fn backbone_can_be_frozen_and_thawed() {
        let (vs, _net) = build(Backbone::EfficientnetLite0);
        let requires_grad = |name: &str| vs.variables()[name].requires_grad();

        set_backbone_trainable(&vs, false);
        let frozen = (
            requires_grad("backbone._conv_stem.weight"),
            requires_grad("head.bn.weight"),
        );
        set_backbone_trainable(&vs, true);
        let thawed = requires_grad("backbone._blocks.3._bn1.bias");

        assert_eq!(frozen, (false, true));
        assert!(thawed);
        assert!(!requires_grad("backbone._bn1.running_var"));
    }
}
