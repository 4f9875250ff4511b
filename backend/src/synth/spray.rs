//! Water over a posed fluke: whitewater where the tail stock enters the
//! sea, sheets of water running off the fluke, flying drops, and sometimes
//! a mist cloud. The fluke itself is painted by `photo`.

use std::f32::consts::TAU;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::camera::Canvas;
use super::marks::{stock_half_width, Marks};
use super::numeric::{gauss, lerp, smoothstep, Rgb, ValueNoise};
use super::photo::{Pose, WaterLine};

const FOAM: Rgb = [0.93, 0.95, 0.96];
const MIST: Rgb = [0.88, 0.91, 0.93];

/// Whitewater where the stock enters the sea, sheets of water running off
/// the fluke, flying drops, and sometimes a mist cloud that hides part of
/// the fluke.
pub(super) fn paint_spray(
    canvas: &mut Canvas,
    marks: &Marks,
    pose: &Pose,
    water: &WaterLine,
    rng: &mut ChaCha8Rng,
) {
    let base = [pose.stock_x_at_water(), pose.water_y];
    paint_foam(canvas, pose, base, rng);
    paint_streams(canvas, marks, pose, water, rng);
    paint_drops(canvas, pose, base, rng);
    paint_mist(canvas, pose, base, rng);
}

fn paint_foam(canvas: &mut Canvas, pose: &Pose, base: [f32; 2], rng: &mut ChaCha8Rng) {
    let half_width = stock_half_width(pose.water_v) * pose.mean_u_px() * rng.gen_range(1.2..3.0);
    let height = (rng.gen_range(0.02..0.08) * pose.v_px).max(2.0);
    let strength = rng.gen_range(0.4..0.95);
    let noise = ValueNoise::draw(rng);

    let region = [
        base[0] - 2.0 * half_width,
        base[1] - 3.0 * height,
        base[0] + 2.0 * half_width,
        base[1] + 1.5 * height,
    ];
    let [x0, y0, x1, y1] = canvas.clip(region);
    for y in y0..y1 {
        let dy = (y as f32 - base[1]) / height;
        let froth_row = noise.fractal_row(y as f32 / 4.0);
        for x in x0..x1 {
            let dx = (x as f32 - base[0]) / half_width;
            let envelope = (-(dx * dx + dy * dy)).exp();
            let froth = froth_row.at(x as f32 / 10.0) + 0.3 * envelope;
            canvas.blend(
                x,
                y,
                FOAM,
                strength * envelope * smoothstep(0.25, 0.75, froth),
            );
        }
    }
}

fn paint_streams(
    canvas: &mut Canvas,
    marks: &Marks,
    pose: &Pose,
    water: &WaterLine,
    rng: &mut ChaCha8Rng,
) {
    for _ in 0..rng.gen_range(0..=8) {
        let u = rng.gen_range(-0.9..0.9);
        let v = lerp(
            marks.leading.at(u),
            marks.trailing.at(u),
            rng.gen_range(0.3..1.0),
        );
        let [x, top] = pose.to_image(u, v);
        let sea = water.y_at(x.max(0.0) as usize);
        let bottom = lerp(top, sea, rng.gen_range(0.4..1.0));
        let half_width = rng.gen_range(0.6..2.0);
        let alpha = rng.gen_range(0.2..0.55);
        let phase = rng.gen_range(0.0..TAU);
        paint_stream(canvas, [x, top, bottom], half_width, alpha, phase);
    }
}

/// A broken vertical streak at column `line[0]` from row `line[1]` to
/// `line[2]`.
fn paint_stream(canvas: &mut Canvas, line: [f32; 3], half_width: f32, alpha: f32, phase: f32) {
    let [x, top, bottom] = line;
    let [x0, y0, x1, y1] = canvas.clip([x - half_width - 1.0, top, x + half_width + 1.0, bottom]);
    for y in y0..y1 {
        let pulse = 0.55 + 0.45 * (y as f32 * 0.15 + phase).sin();
        for column in x0..x1 {
            let across = ((column as f32 + 0.5 - x).abs() / half_width).min(1.0);
            canvas.blend(column, y, FOAM, alpha * pulse * (1.0 - across));
        }
    }
}

fn paint_drops(canvas: &mut Canvas, pose: &Pose, base: [f32; 2], rng: &mut ChaCha8Rng) {
    let spread = [0.5 * pose.mean_u_px(), 0.25 * pose.v_px];
    for _ in 0..rng.gen_range(0..=350) {
        let centre = [
            base[0] + gauss(rng) * spread[0],
            base[1] - 2.0 * gauss(rng).abs() * spread[1],
        ];
        let radius = rng.gen_range(0.4..2.2);
        let alpha = rng.gen_range(0.4..0.9);
        canvas.blend_disc(centre, radius, FOAM, alpha);
    }
}

fn paint_mist(canvas: &mut Canvas, pose: &Pose, base: [f32; 2], rng: &mut ChaCha8Rng) {
    if !rng.gen_bool(0.35) {
        return;
    }
    let noise = ValueNoise::draw(rng);
    for _ in 0..rng.gen_range(1..=3) {
        let [x0, y0, x1, y1] = pose.bounds;
        let centre = if rng.gen_bool(0.6) {
            [
                base[0] + gauss(rng) * 0.2 * pose.mean_u_px(),
                base[1] - rng.gen_range(0.0..0.3) * pose.v_px,
            ]
        } else {
            [rng.gen_range(x0..x1), rng.gen_range(y0..y1.max(y0 + 1.0))]
        };
        let sigma = rng.gen_range(0.08..0.3) * pose.mean_u_px();
        let peak = rng.gen_range(0.3..0.85);
        paint_cloud(canvas, centre, sigma, peak, &noise);
    }
}

fn paint_cloud(canvas: &mut Canvas, centre: [f32; 2], sigma: f32, peak: f32, noise: &ValueNoise) {
    // At 3.5 sigma the cloud is under 1% of its peak, so its edge is
    // invisible. The Gaussian is separable, which keeps exp out of the
    // inner loop.
    let [x0, y0, x1, y1] = canvas.clip_around(centre, 3.5 * sigma);
    let gauss_1d = |offset: f32| (-offset * offset / (2.0 * sigma * sigma)).exp();
    let across: Vec<f32> = (x0..x1).map(|x| gauss_1d(x as f32 - centre[0])).collect();
    for y in y0..y1 {
        let dy = y as f32 - centre[1];
        let row_peak = peak * gauss_1d(dy);
        let puffs = noise.row(dy / (0.4 * sigma));
        for (x, gauss_x) in (x0..x1).zip(&across) {
            let puff = 0.5 + puffs.at((x as f32 - centre[0]) / (0.4 * sigma));
            canvas.blend(x, y, MIST, (row_peak * gauss_x * puff).min(1.0));
        }
    }
}
