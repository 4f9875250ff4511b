//! The underside pattern of a fluke: a grey level over `(u, t)` from a
//! smooth random field, with spots and scars on top. Only the grey level
//! lives here; `marks` turns it into skin colour on the fluke.

use std::f32::consts::PI;
use std::ops::Range;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::numeric::{lerp, smoothstep, ValueNoise};

pub(super) const TEX_U: usize = 320;
pub(super) const TEX_T: usize = 80;
/// The texture reaches past the smooth trailing edge to cover bulges.
const TEX_T_MAX: f32 = 1.2;

pub(super) struct Texture {
    pub(super) grey: Vec<f32>,
}

/// A smooth field whose sign decides black or white on the underside.
struct PatternField {
    bias: f32,
    blobs: Vec<Blob>,
    grain: ValueNoise,
    grain_amp: f32,
    /// Darkening of the trailing margin, the leading margin and the centre.
    rim: f32,
    lead: f32,
    centre: f32,
}

struct Blob {
    centre: [f32; 2],
    inv_radius: [f32; 2],
    cos: f32,
    sin: f32,
    weight: f32,
}

impl Texture {
    pub(super) fn draw(rng: &mut ChaCha8Rng) -> Texture {
        let field = PatternField::draw(rng);
        let grey = (0..TEX_U * TEX_T)
            .map(|texel_idx| {
                let (u, t) = texel_to_fluke(texel_idx % TEX_U, texel_idx / TEX_U);
                smoothstep(-0.12, 0.12, field.at(u, t))
            })
            .collect();

        let mut texture = Texture { grey };
        texture.add_spots(rng);
        texture.add_scars(rng);
        texture
    }

    /// Bilinear grey level at `(u, t)`.
    pub(super) fn at(&self, u: f32, t: f32) -> f32 {
        let x = ((u + 1.0) * 0.5).clamp(0.0, 1.0) * (TEX_U - 1) as f32;
        let y = (t / TEX_T_MAX).clamp(0.0, 1.0) * (TEX_T - 1) as f32;
        let (i, j) = ((x as usize).min(TEX_U - 2), (y as usize).min(TEX_T - 2));
        let (fx, fy) = (x - i as f32, y - j as f32);
        let texel = |di: usize, dj: usize| self.grey[(j + dj) * TEX_U + i + di];
        lerp(
            lerp(texel(0, 0), texel(1, 0), fx),
            lerp(texel(0, 1), texel(1, 1), fx),
            fy,
        )
    }

    /// Small dots that contrast with what lies under them.
    fn add_spots(&mut self, rng: &mut ChaCha8Rng) {
        for _ in 0..rng.gen_range(0..=25) {
            let centre = [
                rng.gen_range(0.0..TEX_U as f32),
                rng.gen_range(0.0..TEX_T as f32 * 0.8),
            ];
            let radius = rng.gen_range(0.7..2.2);
            let under = self.grey[centre[1] as usize * TEX_U + centre[0] as usize];
            let tone = if under > 0.5 { 0.05 } else { 0.95 };
            for_disc(centre, radius, |texel_idx, coverage| {
                let grey = &mut self.grey[texel_idx];
                *grey = lerp(*grey, tone, coverage);
            });
        }
    }

    /// Thin scars, single or in parallel rakes: light on black skin and grey
    /// on white skin, so they show on both.
    fn add_scars(&mut self, rng: &mut ChaCha8Rng) {
        let mut mask = vec![0.0; TEX_U * TEX_T];
        for _ in 0..rng.gen_range(1..=4) {
            draw_scar_group(&mut mask, rng);
        }
        for (grey, scar) in self.grey.iter_mut().zip(&mask) {
            let tone = if *grey < 0.5 { 0.9 } else { 0.45 };
            *grey = lerp(*grey, tone, *scar);
        }
    }
}

fn texel_to_fluke(i: usize, j: usize) -> (f32, f32) {
    let u = -1.0 + 2.0 * i as f32 / (TEX_U - 1) as f32;
    (u, TEX_T_MAX * j as f32 / (TEX_T - 1) as f32)
}

fn draw_scar_group(mask: &mut [f32], rng: &mut ChaCha8Rng) {
    let n_lines = if rng.gen_bool(0.35) {
        rng.gen_range(2..=4)
    } else {
        1
    };
    let start = [
        rng.gen_range(0.0..TEX_U as f32),
        rng.gen_range(0.1..0.85) * TEX_T as f32,
    ];
    let angle: f32 = rng.gen_range(0.0..PI);
    let length = rng.gen_range(8.0..60.0);
    let bend = rng.gen_range(-0.03..0.03);
    let spacing = rng.gen_range(2.5..4.5);
    let radius = rng.gen_range(0.5..0.9);

    for line in 0..n_lines {
        let offset = line as f32 * spacing;
        let from = [
            start[0] - angle.sin() * offset,
            start[1] + angle.cos() * offset,
        ];
        trace_scar(mask, from, angle, bend, length, radius);
    }
}

fn trace_scar(mask: &mut [f32], from: [f32; 2], angle: f32, bend: f32, length: f32, radius: f32) {
    const STEP: f32 = 0.5;
    let (mut point, mut angle, mut travelled) = (from, angle, 0.0);
    while travelled < length {
        for_disc(point, radius, |texel_idx, coverage| {
            mask[texel_idx] = mask[texel_idx].max(coverage);
        });
        point = [point[0] + angle.cos() * STEP, point[1] + angle.sin() * STEP];
        angle += bend * STEP;
        travelled += STEP;
    }
}

/// Calls `paint` with the index and coverage of every texel a disc touches.
fn for_disc(centre: [f32; 2], radius: f32, mut paint: impl FnMut(usize, f32)) {
    let reach = radius + 1.0;
    let columns = texel_span(centre[0], reach, TEX_U);
    for j in texel_span(centre[1], reach, TEX_T) {
        for i in columns.clone() {
            let distance = (i as f32 - centre[0]).hypot(j as f32 - centre[1]);
            let coverage = (radius + 0.5 - distance).clamp(0.0, 1.0);
            if coverage > 0.0 {
                paint(j * TEX_U + i, coverage);
            }
        }
    }
}

fn texel_span(centre: f32, reach: f32, len: usize) -> Range<usize> {
    let start = (centre - reach).floor().max(0.0) as usize;
    let end = ((centre + reach).ceil().max(0.0) as usize + 1).min(len);
    start.min(end)..end
}

impl PatternField {
    fn draw(rng: &mut ChaCha8Rng) -> PatternField {
        let mut blobs = Vec::new();
        for _ in 0..rng.gen_range(3..=9) {
            let blob = Blob::draw(rng);
            // Undersides are often roughly mirror-symmetric, never exactly.
            if rng.gen_bool(0.6) {
                blobs.push(blob.mirrored(rng));
            }
            blobs.push(blob);
        }

        PatternField {
            bias: rng.gen_range(-1.2..1.2),
            blobs,
            grain: ValueNoise::draw(rng),
            grain_amp: rng.gen_range(0.1..0.5),
            rim: rng.gen_range(0.0..2.0),
            lead: rng.gen_range(0.0..1.5),
            centre: rng.gen_range(0.0..1.5),
        }
    }

    fn at(&self, u: f32, t: f32) -> f32 {
        let blobs: f32 = self.blobs.iter().map(|blob| blob.at(u, t)).sum();
        let grain = (self.grain.at(u * 9.0 + 3.0, t * 6.0) - 0.5) * 2.0 * self.grain_amp;
        let rim = self.rim * smoothstep(0.78, 1.0, t);
        let lead = self.lead * (1.0 - smoothstep(0.0, 0.15, t));
        let centre = self.centre * (-(u / 0.14).powi(2)).exp();
        self.bias + blobs + grain - rim - lead - centre
    }
}

impl Blob {
    fn draw(rng: &mut ChaCha8Rng) -> Blob {
        let angle: f32 = rng.gen_range(0.0..PI);
        let sign = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
        Blob {
            centre: [rng.gen_range(-0.95..0.95), rng.gen_range(0.0..1.0)],
            inv_radius: [
                1.0 / rng.gen_range(0.05..0.35),
                1.0 / rng.gen_range(0.08..0.5),
            ],
            cos: angle.cos(),
            sin: angle.sin(),
            weight: sign * rng.gen_range(0.6..1.8),
        }
    }

    /// The blob reflected across the centre line, slightly displaced.
    fn mirrored(&self, rng: &mut ChaCha8Rng) -> Blob {
        let shift = [rng.gen_range(-0.06..0.06), rng.gen_range(-0.06..0.06)];
        Blob {
            centre: [shift[0] - self.centre[0], self.centre[1] + shift[1]],
            cos: -self.cos,
            weight: self.weight * rng.gen_range(0.7..1.2),
            ..*self
        }
    }

    fn at(&self, u: f32, t: f32) -> f32 {
        let (du, dt) = (u - self.centre[0], t - self.centre[1]);
        let a = (du * self.cos + dt * self.sin) * self.inv_radius[0];
        let b = (dt * self.cos - du * self.sin) * self.inv_radius[1];
        let r2 = a * a + b * b;
        // exp(-6) is below what the threshold can notice.
        if r2 > 6.0 {
            0.0
        } else {
            self.weight * (-r2).exp()
        }
    }
}
