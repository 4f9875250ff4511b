//! ResNet-34 and ResNeXt-50 32x4d backbones, laid out like torchvision's.
//!
//! Variables are named exactly as torchvision's state dict keys (`conv1`,
//! `bn1`, `layer1.0.conv2`, `layer2.0.downsample.0`, ...), so its ImageNet
//! weights, converted to safetensors, load by name. The classifier (`fc`)
//! is left out: the backbone ends with the last residual stage and hands
//! its feature map to the embedding head. Pooling lives in the head.

use tch::nn;
use tch::Tensor;

/// A ResNet without its pooling and classifier.
#[derive(Debug)]
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    layers: Vec<Vec<Residual>>,
}

impl ResNet {
    /// ResNet-34: basic blocks, 3-4-6-3 deep, 512 feature channels.
    ///
    /// The stem and the first two stages go in optimizer group
    /// `early_group`, the last two stages in `late_group`.
    pub fn resnet34(vs: &nn::Path, early_group: usize, late_group: usize) -> Self {
        ResNet::new(vs, &RESNET34, [early_group, late_group])
    }

    /// ResNeXt-50 32x4d: bottleneck blocks with 32 groups of 4 channels
    /// per 64 planes, 3-4-6-3 deep, 2048 feature channels.
    ///
    /// Groups as for [`ResNet::resnet34`].
    pub fn resnext50_32x4d(vs: &nn::Path, early_group: usize, late_group: usize) -> Self {
        ResNet::new(vs, &RESNEXT50_32X4D, [early_group, late_group])
    }

    /// The feature map of the last stage.
    ///
    /// # Shapes
    /// - `xs`: `[N, 3, H, W]`, ImageNet-normalised
    /// - returns `[N, C, ceil(H / 32), ceil(W / 32)]`, C = 512 or 2048
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let xs = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let xs = xs.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);

        self.layers
            .iter()
            .flatten()
            .fold(xs, |xs, block| block.forward_t(&xs, train))
    }

    fn new(vs: &nn::Path, spec: &Spec, [early_group, late_group]: [usize; 2]) -> Self {
        let early = vs.set_group(early_group);
        let late = vs.set_group(late_group);
        let conv1 = conv(&early / "conv1", 3, 64, 7, 2, 1);
        let bn1 = batch_norm(&early / "bn1", 64);

        let mut in_channels = 64;
        let mut layers = Vec::with_capacity(spec.depths.len());
        for (stage_idx, &depth) in spec.depths.iter().enumerate() {
            let vs = if stage_idx < 2 { &early } else { &late };
            let vs = vs / format!("layer{}", stage_idx + 1);
            let planes = 64 << stage_idx;
            let stride = if stage_idx == 0 { 1 } else { 2 };
            layers.push(stage(&vs, spec, in_channels, planes, depth, stride));
            in_channels = planes * spec.kind.expansion();
        }

        ResNet { conv1, bn1, layers }
    }
}

/// Which residual block a network stacks, and how wide.
#[derive(Debug)]
struct Spec {
    kind: BlockKind,
    depths: [i64; 4],
    groups: i64,
    width_per_group: i64,
}

const RESNET34: Spec = Spec {
    kind: BlockKind::Basic,
    depths: [3, 4, 6, 3],
    groups: 1,
    width_per_group: 64,
};

const RESNEXT50_32X4D: Spec = Spec {
    kind: BlockKind::Bottleneck,
    depths: [3, 4, 6, 3],
    groups: 32,
    width_per_group: 4,
};

#[derive(Clone, Copy, Debug)]
enum BlockKind {
    /// Two 3x3 convolutions.
    Basic,
    /// 1x1 down, grouped 3x3 (strided, as in torchvision's "ResNet v1.5"),
    /// 1x1 up to four times the planes.
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> i64 {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// A residual block: convolutions `conv1`, `conv2`[, `conv3`], each followed
/// by its batch norm `bn1`, ..., plus a projected shortcut where the shape
/// changes.
#[derive(Debug)]
struct Residual {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Residual {
    fn new(vs: nn::Path, spec: &Spec, in_channels: i64, planes: i64, stride: i64) -> Self {
        let out_channels = planes * spec.kind.expansion();
        let numbered = |idx: u8| (&vs / format!("conv{idx}"), &vs / format!("bn{idx}"));
        let convs = match spec.kind {
            BlockKind::Basic => vec![
                ConvBn::new(numbered(1), in_channels, planes, 3, stride, 1),
                ConvBn::new(numbered(2), planes, planes, 3, 1, 1),
            ],
            BlockKind::Bottleneck => {
                let width = planes * spec.width_per_group / 64 * spec.groups;
                vec![
                    ConvBn::new(numbered(1), in_channels, width, 1, 1, 1),
                    ConvBn::new(numbered(2), width, width, 3, stride, spec.groups),
                    ConvBn::new(numbered(3), width, out_channels, 1, 1, 1),
                ]
            }
        };

        let downsample = (stride != 1 || in_channels != out_channels).then(|| {
            let vs = &vs / "downsample";
            ConvBn::new((&vs / 0, &vs / 1), in_channels, out_channels, 1, stride, 1)
        });
        Residual { convs, downsample }
    }

    /// # Shapes
    /// - `xs`: `[N, C_in, H, W]`
    /// - returns `[N, C_out, ceil(H / stride), ceil(W / stride)]`
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (last, first) = self
            .convs
            .split_last()
            .expect("a residual block has convolutions");
        let ys = first.iter().fold(xs.shallow_clone(), |ys, conv_bn| {
            conv_bn.forward_t(&ys, train).relu()
        });
        let ys = last.forward_t(&ys, train);

        let shortcut = match &self.downsample {
            Some(downsample) => downsample.forward_t(xs, train),
            None => xs.shallow_clone(),
        };
        (ys + shortcut).relu()
    }
}

/// A convolution without bias followed by batch norm.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    /// The convolution under the first path, its batch norm under the
    /// second.
    fn new(
        (conv_vs, bn_vs): (nn::Path, nn::Path),
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
    ) -> Self {
        ConvBn {
            conv: conv(conv_vs, c_in, c_out, kernel, stride, groups),
            bn: batch_norm(bn_vs, c_out),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train)
    }
}

/// One stage (`layerN`): `depth` blocks, the first of them strided and
/// widening to `planes * expansion` channels.
fn stage(
    vs: &nn::Path,
    spec: &Spec,
    in_channels: i64,
    planes: i64,
    depth: i64,
    stride: i64,
) -> Vec<Residual> {
    let out_channels = planes * spec.kind.expansion();
    (0..depth)
        .map(|block_idx| match block_idx {
            0 => Residual::new(vs / block_idx, spec, in_channels, planes, stride),
            _ => Residual::new(vs / block_idx, spec, out_channels, planes, 1),
        })
        .collect()
}

/// A bias-free convolution padded to keep `ceil(size / stride)`, initialised
/// as torchvision does (Kaiming normal over the fan-out).
fn conv(vs: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        padding: kernel / 2,
        groups,
        bias: false,
        ws_init: nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanOut,
            non_linearity: nn::init::NonLinearity::ReLU,
        },
        ..Default::default()
    };
    nn::conv2d(vs, c_in, c_out, kernel, config)
}

/// torchvision's batch norm: epsilon 1e-5, momentum 0.1, scale 1, shift 0.
fn batch_norm(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        ..Default::default()
    };
    nn::batch_norm2d(vs, channels, config)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use tch::{nn, Device};

    use super::*;

    /// `name -> shape` of a torchvision state dict, from the fixture written
    /// by `backbone_keys.py`, without what the loader skips.
    fn torchvision_keys(name: &str) -> BTreeMap<String, Vec<i64>> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/model")
            .join(format!("{name}_keys.txt"));
        let text = std::fs::read_to_string(&path).expect("the key fixture exists");
        text.lines()
            .map(|line| line.split_once(' ').expect("a key line is `name shape`"))
            .filter(|(key, _)| !crate::model::weights::is_skipped_key(key))
            .map(|(key, shape)| {
                let dims = shape.split(',').filter(|d| !d.is_empty());
                (key.to_string(), dims.map(|d| d.parse().unwrap()).collect())
            })
            .collect()
    }

    fn variable_shapes(vs: &nn::VarStore) -> BTreeMap<String, Vec<i64>> {
        vs.variables()
            .into_iter()
            .map(|(name, tensor)| (name, tensor.size()))
            .collect()
    }

    /// Trainable parameters plus the 1000-class classifier that the backbone
    /// leaves out.
    fn n_params_with_classifier(vs: &nn::VarStore, channels: i64) -> i64 {
        let n_backbone: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        n_backbone + channels * 1000 + 1000
    }

    #[test]
    fn variables_mirror_torchvision_keys() {
        let resnet34 = nn::VarStore::new(Device::Cpu);
        ResNet::resnet34(&resnet34.root(), 0, 1);
        let resnext50 = nn::VarStore::new(Device::Cpu);
        ResNet::resnext50_32x4d(&resnext50.root(), 0, 1);

        assert_eq!(variable_shapes(&resnet34), torchvision_keys("resnet34"));
        assert_eq!(
            variable_shapes(&resnext50),
            torchvision_keys("resnext50_32x4d")
        );
    }

    #[test]
    fn parameter_counts_match_torchvision_published_ones() {
        // num_params of ResNet34_Weights / ResNeXt50_32X4D_Weights
        // .IMAGENET1K_V1 in torchvision's documentation.
        let resnet34 = nn::VarStore::new(Device::Cpu);
        ResNet::resnet34(&resnet34.root(), 0, 1);
        let resnext50 = nn::VarStore::new(Device::Cpu);
        ResNet::resnext50_32x4d(&resnext50.root(), 0, 1);

        assert_eq!(n_params_with_classifier(&resnet34, 512), 21_797_672);
        assert_eq!(n_params_with_classifier(&resnext50, 2048), 25_028_904);
    }

    #[test]
    fn feature_map_is_downsampled_32_times() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ResNet::resnet34(&vs.root(), 0, 1);
        let xs = Tensor::zeros([1, 3, 64, 97], (tch::Kind::Float, Device::Cpu));

        let features = tch::no_grad(|| net.forward_t(&xs, false));

        assert_eq!(features.size(), [1, 512, 2, 4]);
    }
}
