//! Everything in a photo but the whale: the frame's size, a sky with
//! clouds, and a sea whose waves shrink towards the horizon.

use std::ops::Range;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::camera::Canvas;
use super::numeric::{jitter, lerp3, pick, smoothstep, Rgb, ValueNoise};

const WIDTH_RANGE: Range<usize> = 700..1051;
const ASPECT_RANGE: Range<f32> = 0.45..0.75;

const SEA_COLOURS: [Rgb; 6] = [
    [0.05, 0.16, 0.3],
    [0.07, 0.24, 0.3],
    [0.19, 0.24, 0.29],
    [0.03, 0.08, 0.16],
    [0.11, 0.2, 0.2],
    [0.1, 0.18, 0.35],
];
const SKY_COLOURS: [Rgb; 4] = [
    [0.42, 0.58, 0.8],
    [0.66, 0.7, 0.74],
    [0.55, 0.66, 0.78],
    [0.8, 0.82, 0.84],
];
const CLOUD: Rgb = [0.9, 0.91, 0.92];

/// Everything in a photo but the whale.
pub(super) struct Scene {
    pub(super) width: usize,
    pub(super) height: usize,
    /// Row of the horizon; negative when the camera looks down at the sea
    /// only.
    pub(super) horizon: f32,
    sky_top: Rgb,
    sky_horizon: Rgb,
    cloudiness: f32,
    sea_far: Rgb,
    sea_near: Rgb,
    /// Wave length in pixels at the bottom of the image.
    wave_len: f32,
    wave_amp: f32,
    glint: f32,
    haze: f32,
}

impl Scene {
    pub(super) fn draw(rng: &mut ChaCha8Rng) -> Scene {
        let width = rng.gen_range(WIDTH_RANGE);
        let height = (width as f32 * rng.gen_range(ASPECT_RANGE)).round() as usize;
        let horizon = if rng.gen_bool(0.25) {
            rng.gen_range(-0.6..-0.05)
        } else {
            rng.gen_range(0.05..0.45)
        };
        let sky_horizon = jitter(rng, [0.78, 0.82, 0.86], 0.08);
        let sea_colour = pick(rng, &SEA_COLOURS);
        let sea_near = jitter(rng, sea_colour, 0.04);
        let sky_colour = pick(rng, &SKY_COLOURS);

        Scene {
            width,
            height,
            horizon: horizon * height as f32,
            sky_top: jitter(rng, sky_colour, 0.06),
            sky_horizon,
            cloudiness: rng.gen_range(0.0..0.9),
            sea_far: lerp3(sea_near, sky_horizon, rng.gen_range(0.2..0.55)),
            sea_near,
            wave_len: rng.gen_range(0.04..0.14) * width as f32,
            wave_amp: rng.gen_range(0.08..0.35),
            glint: rng.gen_range(0.0..0.5),
            haze: rng.gen_range(0.2..0.8),
        }
    }
}

pub(super) fn paint_background(canvas: &mut Canvas, scene: &Scene, rng: &mut ChaCha8Rng) {
    let waves = ValueNoise::draw(rng);
    let clouds = ValueNoise::draw(rng);
    for y in 0..canvas.height {
        let row_y = y as f32 + 0.5;
        let row = canvas.row_mut(y);
        if row_y < scene.horizon {
            paint_sky_row(row, row_y, scene, &clouds);
        } else {
            paint_sea_row(row, row_y, scene, &waves);
        }
    }
}

fn paint_sky_row(row: &mut [Rgb], y: f32, scene: &Scene, clouds: &ValueNoise) {
    let base = lerp3(
        scene.sky_top,
        scene.sky_horizon,
        (y / scene.horizon).powf(0.8),
    );
    let cell = 0.2 * scene.width as f32;
    let clouds = clouds.row(y / (0.07 * scene.height as f32) + 40.0);
    for (x, pixel) in row.iter_mut().enumerate() {
        let cloud = clouds.at(x as f32 / cell);
        *pixel = lerp3(
            base,
            CLOUD,
            scene.cloudiness * smoothstep(0.45, 0.85, cloud),
        );
    }
}

/// Sea with waves that shrink and flatten towards the horizon: the noise
/// is sampled at a scale proportional to the distance below the horizon,
/// and rows are spaced logarithmically so waves keep their aspect ratio.
fn paint_sea_row(row: &mut [Rgb], y: f32, scene: &Scene, waves: &ValueNoise) {
    let (width, height) = (scene.width as f32, scene.height as f32);
    let depth = ((y - scene.horizon) / (height - scene.horizon)).clamp(0.02, 1.0);
    let haze = scene.haze * (-(y - scene.horizon) / (0.06 * height)).exp();
    let base = lerp3(scene.sea_far, scene.sea_near, depth.powf(0.6));
    let base = lerp3(base, scene.sky_horizon, haze);

    // Waves a few pixels long would alias into stripes; they fade out
    // towards the horizon, where haze hides them anyway.
    let far_fade = smoothstep(0.02, 0.15, depth);
    let (swell, sparkle) = (scene.wave_amp * far_fade, scene.glint * far_fade);
    let cell = scene.wave_len * depth;
    let ny = (height - scene.horizon) / (0.3 * scene.wave_len) * depth.ln();
    let waves = waves.fractal_row(ny);
    for (x, pixel) in row.iter_mut().enumerate() {
        let n = waves.at((x as f32 - 0.5 * width) / cell);
        let shade = 1.0 + swell * (n - 0.5) * 2.0;
        let glint = sparkle * ((n - 0.72) / 0.28).max(0.0).powi(2);
        *pixel = base.map(|c| c * shade + glint);
    }
}
