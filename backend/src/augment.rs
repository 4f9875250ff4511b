//! Training-time augmentation of whole batches of crops as tensor
//! operations, so it runs on the GPU when there is one.
//!
//! The transforms and their ranges are the reference kernel's: an affine
//! warp (rotation, per-axis scale, shear) with a reflected border, then a
//! horizontal flip, a hue and saturation shift, a grayscale blend and a
//! gaussian blur. Random parameters are drawn per image from a Rust RNG, so
//! a seeded run augments identically on any device. Validation and
//! inference skip this module and only [`normalise`].

use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Ranges of the random transforms. [`AugmentConfig::identity`] leaves crops
/// unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Rotation drawn from `[-rotate_deg, rotate_deg]`.
    pub rotate_deg: f64,
    /// Scale of each axis drawn from `[scale_min, scale_max]`.
    pub scale_min: f64,
    pub scale_max: f64,
    /// Shear along x drawn from `[-shear_deg, shear_deg]`.
    pub shear_deg: f64,
    /// Probability of a horizontal flip.
    pub flip_p: f64,
    /// One value drawn from `[-hue_saturation, hue_saturation]` is added to
    /// hue (on a 0-180 scale, as OpenCV stores hue) and saturation (0-255).
    pub hue_saturation: f64,
    /// Grayscale blend factor drawn from `[0, gray_alpha_max]`.
    pub gray_alpha_max: f64,
    /// Gaussian blur sigma drawn from `[0, blur_sigma_max]` pixels.
    pub blur_sigma_max: f64,
}

/// Per-channel mean and standard deviation that a backbone was trained with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

/// The ImageNet statistics torchvision's backbones were trained with. Every
/// backbone takes inputs normalised this way; EfficientNet-Lite converts
/// them to its own scaling inside the network.
pub const IMAGENET: Normalisation = Normalisation {
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
};

/// Parameters drawn for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageParams {
    pub rotate_deg: f64,
    pub scale_x: f64,
    pub scale_y: f64,
    pub shear_deg: f64,
    pub flip: bool,
    pub hue_saturation: f64,
    pub gray_alpha: f64,
    pub blur_sigma: f64,
}

/// Half-width of the blur kernel: three sigmas of the largest sigma, 1.
const BLUR_RADIUS: i64 = 3;

impl Default for AugmentConfig {
    fn default() -> Self {
        Self::reference()
    }
}

impl AugmentConfig {
    /// The reference kernel's ranges.
    pub fn reference() -> Self {
        Self {
            rotate_deg: 8.0,
            scale_min: 0.9,
            scale_max: 1.1,
            shear_deg: 8.0,
            flip_p: 0.5,
            hue_saturation: 20.0,
            gray_alpha_max: 1.0,
            blur_sigma_max: 1.0,
        }
    }

    /// Ranges that change nothing.
    pub fn identity() -> Self {
        Self {
            rotate_deg: 0.0,
            scale_min: 1.0,
            scale_max: 1.0,
            shear_deg: 0.0,
            flip_p: 0.0,
            hue_saturation: 0.0,
            gray_alpha_max: 0.0,
            blur_sigma_max: 0.0,
        }
    }

    /// Draws the parameters for one image.
    pub fn sample(&self, rng: &mut impl Rng) -> ImageParams {
        let mut symmetric = |half: f64| {
            if half > 0.0 {
                rng.gen_range(-half..=half)
            } else {
                0.0
            }
        };
        let rotate_deg = symmetric(self.rotate_deg);
        let shear_deg = symmetric(self.shear_deg);
        let hue_saturation = symmetric(self.hue_saturation);
        let mut range = |lo: f64, hi: f64| if hi > lo { rng.gen_range(lo..=hi) } else { lo };
        let scale_x = range(self.scale_min, self.scale_max);
        let scale_y = range(self.scale_min, self.scale_max);
        let gray_alpha = range(0.0, self.gray_alpha_max);
        let blur_sigma = range(0.0, self.blur_sigma_max);
        let flip = self.flip_p > 0.0 && rng.gen_bool(self.flip_p.min(1.0));
        ImageParams {
            rotate_deg,
            scale_x,
            scale_y,
            shear_deg,
            flip,
            hue_saturation,
            gray_alpha,
            blur_sigma,
        }
    }
}

/// Converts a batch of 8-bit crops to floats in `[0, 1]` on `device`.
///
/// # Shapes
///
/// `[N, 3, H, W]` uint8 to `[N, 3, H, W]` float.
pub fn to_unit_float(batch: &Tensor, device: Device) -> Tensor {
    batch.to_device(device).to_kind(Kind::Float) / 255.0
}

/// An 8-bit RGB image as floats in `[0, 1]` on the CPU.
///
/// # Shapes
///
/// `(W, H)` image to `[3, H, W]`.
pub fn image_to_tensor(image: &image::RgbImage) -> Tensor {
    let (w, h) = image.dimensions();
    let xs = Tensor::from_slice(image.as_raw()).view([h as i64, w as i64, 3]);
    xs.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0
}

/// Floats in `[0, 1]` back to an 8-bit RGB image, rounding and clamping.
///
/// # Shapes
///
/// `[3, H, W]` to a `(W, H)` image.
pub fn tensor_to_image(xs: &Tensor) -> image::RgbImage {
    let size = xs.size();
    let bytes = (xs.to_device(Device::Cpu) * 255.0)
        .round()
        .clamp(0.0, 255.0);
    let bytes = bytes
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous()
        .flatten(0, -1);
    let bytes = Vec::<u8>::try_from(&bytes).expect("a uint8 tensor converts to bytes");
    image::RgbImage::from_raw(size[2] as u32, size[1] as u32, bytes)
        .expect("a [3, H, W] tensor has H * W * 3 bytes")
}

/// Augments a batch with parameters drawn from `config`, one set per image.
///
/// # Shapes
///
/// `[N, 3, H, W]` floats in `[0, 1]`, returned in the same shape and range.
pub fn augment(xs: &Tensor, config: &AugmentConfig, rng: &mut impl Rng) -> Tensor {
    let n_images = xs.size()[0] as usize;
    let params: Vec<ImageParams> = (0..n_images).map(|_| config.sample(rng)).collect();
    apply(xs, &params)
}

/// Applies given per-image parameters, in the reference's order.
///
/// # Shapes
///
/// `[N, 3, H, W]` floats in `[0, 1]` with `params.len() == N`.
pub fn apply(xs: &Tensor, params: &[ImageParams]) -> Tensor {
    let xs = affine(xs, params);
    let xs = flip(&xs, params);
    let xs = shift_hue_saturation(&xs, params);
    let xs = gray_blend(&xs, params);
    blur(&xs, params).clamp(0.0, 1.0)
}

/// Subtracts the mean and divides by the standard deviation per channel.
///
/// # Shapes
///
/// `[N, 3, H, W]` in, same out.
pub fn normalise(xs: &Tensor, norm: &Normalisation) -> Tensor {
    let options = (Kind::Float, xs.device());
    let mean = Tensor::from_slice(&norm.mean)
        .to_kind(options.0)
        .to(options.1);
    let std = Tensor::from_slice(&norm.std)
        .to_kind(options.0)
        .to(options.1);
    (xs - mean.view([1, 3, 1, 1])) / std.view([1, 3, 1, 1])
}

/// Warps each image by rotation, shear and scale about its centre, sampling
/// bilinearly with a reflected border.
fn affine(xs: &Tensor, params: &[ImageParams]) -> Tensor {
    let size = xs.size();
    let (height, width) = (size[2] as f64, size[3] as f64);
    let thetas: Vec<f32> = params
        .iter()
        .flat_map(|p| sampling_matrix(p, width, height))
        .collect();
    let theta = Tensor::from_slice(&thetas).view([-1, 2, 3]).to(xs.device());
    let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
    // interpolation 0 = bilinear, padding 2 = reflection
    xs.grid_sampler(&grid, 0, 2, false)
}

/// The 2x3 matrix mapping normalised output coordinates to normalised input
/// coordinates for one image. The warp is built in pixels, so rotation does
/// not skew a 3:1 crop, then rescaled to `[-1, 1]` on each axis.
fn sampling_matrix(p: &ImageParams, width: f64, height: f64) -> [f32; 6] {
    let (sin, cos) = p.rotate_deg.to_radians().sin_cos();
    let shear = p.shear_deg.to_radians().tan();
    // forward = rotation * shear * scale
    let a = [
        [cos * p.scale_x, (cos * shear - sin) * p.scale_y],
        [sin * p.scale_x, (sin * shear + cos) * p.scale_y],
    ];
    let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    let inv = [
        [a[1][1] / det, -a[0][1] / det],
        [-a[1][0] / det, a[0][0] / det],
    ];
    let (hw, hh) = (width / 2.0, height / 2.0);
    [
        inv[0][0] as f32,
        (inv[0][1] * hh / hw) as f32,
        0.0,
        (inv[1][0] * hw / hh) as f32,
        inv[1][1] as f32,
        0.0,
    ]
}

fn flip(xs: &Tensor, params: &[ImageParams]) -> Tensor {
    if !params.iter().any(|p| p.flip) {
        return xs.shallow_clone();
    }
    let mask: Vec<bool> = params.iter().map(|p| p.flip).collect();
    let mask = Tensor::from_slice(&mask)
        .view([-1, 1, 1, 1])
        .to(xs.device());
    xs.flip([3]).where_self(&mask, xs)
}

/// Adds one value per image to hue and saturation in HSV space.
fn shift_hue_saturation(xs: &Tensor, params: &[ImageParams]) -> Tensor {
    if params.iter().all(|p| p.hue_saturation == 0.0) {
        return xs.shallow_clone();
    }
    let per_image = |scale: f64| {
        let values: Vec<f32> = params
            .iter()
            .map(|p| (p.hue_saturation / scale) as f32)
            .collect();
        Tensor::from_slice(&values).view([-1, 1, 1]).to(xs.device())
    };
    let (hue, saturation, value) = rgb_to_hsv(xs);
    let hue = (hue + per_image(180.0)).remainder(1.0);
    let saturation = (saturation + per_image(255.0)).clamp(0.0, 1.0);
    hsv_to_rgb(&hue, &saturation, &value)
}

/// Hue in `[0, 1)`, saturation and value in `[0, 1]`, each `[N, H, W]`.
fn rgb_to_hsv(xs: &Tensor) -> (Tensor, Tensor, Tensor) {
    let (r, g, b) = (xs.select(1, 0), xs.select(1, 1), xs.select(1, 2));
    let max = xs.amax([1], false);
    let min = xs.amin([1], false);
    let delta = &max - &min;
    let safe_delta = delta.clamp_min(1e-12);

    let hue_r = ((&g - &b) / &safe_delta).remainder(6.0);
    let hue_g = (&b - &r) / &safe_delta + 2.0;
    let hue_b = (&r - &g) / &safe_delta + 4.0;
    let hue = hue_b.where_self(&max.ne_tensor(&g), &hue_g);
    let hue = hue_r.where_self(&max.eq_tensor(&r), &hue);
    let hue = (hue / 6.0).where_self(&delta.gt(0.0), &delta.zeros_like());

    let saturation = &delta / max.clamp_min(1e-12);
    (hue, saturation, max)
}

/// Inverse of [`rgb_to_hsv`], stacking channels back to `[N, 3, H, W]`.
fn hsv_to_rgb(hue: &Tensor, saturation: &Tensor, value: &Tensor) -> Tensor {
    let channel = |n: f64| {
        let k = (hue * 6.0 + n).remainder(6.0);
        let ramp = k.minimum(&(4.0 - &k)).clamp(0.0, 1.0);
        value - value * saturation * ramp
    };
    Tensor::stack(&[channel(5.0), channel(3.0), channel(1.0)], 1)
}

/// Blends each image towards its luminance by its alpha.
fn gray_blend(xs: &Tensor, params: &[ImageParams]) -> Tensor {
    if params.iter().all(|p| p.gray_alpha == 0.0) {
        return xs.shallow_clone();
    }
    let weights = Tensor::from_slice(&[0.299f32, 0.587, 0.114])
        .view([1, 3, 1, 1])
        .to(xs.device());
    let gray = (xs * weights).sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
    let alphas: Vec<f32> = params.iter().map(|p| p.gray_alpha as f32).collect();
    let alpha = Tensor::from_slice(&alphas)
        .view([-1, 1, 1, 1])
        .to(xs.device());
    xs * (1.0 - &alpha) + gray * alpha
}

/// Separable gaussian blur with a per-image sigma, as one grouped
/// convolution over the whole batch.
fn blur(xs: &Tensor, params: &[ImageParams]) -> Tensor {
    if params.iter().all(|p| p.blur_sigma < 0.05) {
        return xs.shallow_clone();
    }
    let size = xs.size();
    let (n_images, n_channels) = (size[0], size[1]);
    let taps: Vec<f32> = params
        .iter()
        .flat_map(|p| {
            let kernel = gaussian_kernel(p.blur_sigma);
            std::iter::repeat_n(kernel, n_channels as usize).flatten()
        })
        .collect();
    let len = 2 * BLUR_RADIUS + 1;
    let groups = n_images * n_channels;
    let kernel = Tensor::from_slice(&taps).to(xs.device());
    let horizontal = kernel.view([groups, 1, 1, len]);
    let vertical = kernel.view([groups, 1, len, 1]);

    let r = BLUR_RADIUS;
    let flat = xs
        .reshape([1, groups, size[2], size[3]])
        .reflection_pad2d([r, r, r, r]);
    let flat = flat.conv2d::<Tensor>(&horizontal, None, [1, 1], [0, 0], [1, 1], groups);
    let flat = flat.conv2d::<Tensor>(&vertical, None, [1, 1], [0, 0], [1, 1], groups);
    flat.reshape(size.as_slice())
}

/// Normalised taps of a gaussian of `sigma` over `[-BLUR_RADIUS, BLUR_RADIUS]`;
/// a vanishing sigma gives the identity kernel.
fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let taps: Vec<f64> = (-BLUR_RADIUS..=BLUR_RADIUS)
        .map(|x| {
            if sigma < 0.05 {
                f64::from(x == 0)
            } else {
                (-(x * x) as f64 / (2.0 * sigma * sigma)).exp()
            }
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.iter().map(|t| (t / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn none() -> ImageParams {
        ImageParams {
            rotate_deg: 0.0,
            scale_x: 1.0,
            scale_y: 1.0,
            shear_deg: 0.0,
            flip: false,
            hue_saturation: 0.0,
            gray_alpha: 0.0,
            blur_sigma: 0.0,
        }
    }

    /// A colourful test image: red rises left to right, green top to bottom.
    fn gradient(width: i64, height: i64) -> Tensor {
        let x = Tensor::arange(width, (Kind::Float, Device::Cpu)) / (width - 1) as f64;
        let y = Tensor::arange(height, (Kind::Float, Device::Cpu)) / (height - 1) as f64;
        let red = x.view([1, width]).expand([height, width], false);
        let green = y.view([height, 1]).expand([height, width], false);
        let blue = red.ones_like() * 0.3;
        Tensor::stack(&[red, green, blue], 0).unsqueeze(0)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn identity_settings_leave_the_crop_unchanged() {
        let xs = gradient(48, 16);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let out = augment(&xs, &AugmentConfig::identity(), &mut rng);
        assert!(max_diff(&out, &xs) < 1e-5);
        // the warp with neutral parameters is exact too, not skipped
        assert!(max_diff(&affine(&xs, &[none()]), &xs) < 1e-5);
    }

    #[test]
    fn flip_reverses_a_horizontal_gradient() {
        let xs = gradient(48, 16);
        let out = apply(
            &xs,
            &[ImageParams {
                flip: true,
                ..none()
            }],
        );
        let red = out.get(0).get(0).get(0);
        assert!((red.double_value(&[0]) - 1.0).abs() < 1e-6);
        assert!(red.double_value(&[47]).abs() < 1e-6);
    }

    #[test]
    fn full_gray_blend_has_equal_channels() {
        let out = apply(
            &gradient(24, 8),
            &[ImageParams {
                gray_alpha: 1.0,
                ..none()
            }],
        );
        assert!(max_diff(&out.select(1, 0), &out.select(1, 1)) < 1e-6);
        assert!(max_diff(&out.select(1, 1), &out.select(1, 2)) < 1e-6);
    }

    #[test]
    fn half_turn_equals_flipping_both_axes() {
        let xs = gradient(48, 16);
        let out = affine(
            &xs,
            &[ImageParams {
                rotate_deg: 180.0,
                ..none()
            }],
        );
        assert!(max_diff(&out, &xs.flip([2, 3])) < 1e-4);
    }

    #[test]
    fn zoom_in_keeps_the_centre_and_spreads_the_gradient() {
        let xs = gradient(49, 17);
        let out = affine(
            &xs,
            &[ImageParams {
                scale_x: 2.0,
                scale_y: 2.0,
                ..none()
            }],
        );
        let centre = |t: &Tensor| t.double_value(&[0, 0, 8, 24]);
        assert!((centre(&out) - centre(&xs)).abs() < 1e-5);
        let step = |t: &Tensor| t.double_value(&[0, 0, 8, 25]) - t.double_value(&[0, 0, 8, 24]);
        assert!((step(&out) - step(&xs) / 2.0).abs() < 1e-5);
    }

    #[test]
    fn hsv_round_trip_and_hue_shift_of_pure_red() {
        let xs = gradient(24, 8);
        let (h, s, v) = rgb_to_hsv(&xs);
        assert!(max_diff(&hsv_to_rgb(&h, &s, &v), &xs) < 1e-5);

        // +60 on OpenCV's 0-180 hue scale is a third of the circle: red to
        // green; saturation 1 stays 1 after clamping.
        let red = Tensor::from_slice(&[1.0f32, 0.0, 0.0]).view([1, 3, 1, 1]);
        let out = shift_hue_saturation(
            &red,
            &[ImageParams {
                hue_saturation: 60.0,
                ..none()
            }],
        );
        let expected = Tensor::from_slice(&[0.0f32, 1.0, 0.0]).view([1, 3, 1, 1]);
        assert!(max_diff(&out, &expected) < 1e-5);
    }

    #[test]
    fn blur_keeps_flat_images_and_spreads_an_impulse() {
        let flat = Tensor::ones([1, 3, 9, 9], (Kind::Float, Device::Cpu)) * 0.4;
        let params = [ImageParams {
            blur_sigma: 1.0,
            ..none()
        }];
        assert!(max_diff(&blur(&flat, &params), &flat) < 1e-6);

        let impulse = Tensor::zeros([1, 3, 9, 9], (Kind::Float, Device::Cpu));
        let _ = impulse.get(0).get(0).get(4).get(4).fill_(1.0);
        let out = blur(&impulse, &params);
        let sum = out.get(0).get(0).sum(Kind::Float).double_value(&[]);
        assert!((sum - 1.0).abs() < 1e-5);
        let centre = out.double_value(&[0, 0, 4, 4]);
        let expected = (gaussian_kernel(1.0)[3] as f64).powi(2);
        assert!((centre - expected).abs() < 1e-6 && centre < 0.2);
    }

    #[test]
    fn sampled_parameters_stay_in_range_and_repeat_for_a_seed() {
        let config = AugmentConfig::reference();
        let draw = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            (0..200)
                .map(|_| config.sample(&mut rng))
                .collect::<Vec<_>>()
        };
        let params = draw(3);
        assert_eq!(params, draw(3));
        assert!(params
            .iter()
            .all(|p| p.rotate_deg.abs() <= 8.0 && p.shear_deg.abs() <= 8.0));
        assert!(params.iter().all(|p| (0.9..=1.1).contains(&p.scale_x)));
        assert!(params.iter().all(|p| (0.0..=1.0).contains(&p.gray_alpha)));
        let n_flipped = params.iter().filter(|p| p.flip).count();
        assert!((60..140).contains(&n_flipped), "{n_flipped} of 200 flipped");
    }

    #[test]
    fn normalise_uses_per_channel_statistics() {
        let xs = Tensor::ones([1, 3, 2, 2], (Kind::Float, Device::Cpu)) * 0.485;
        let out = normalise(&xs, &IMAGENET);
        assert!(out.select(1, 0).abs().max().double_value(&[]) < 1e-6);
    }
}
