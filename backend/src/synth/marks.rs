//! An individual's identity marks: the outline of its fluke, whose
//! trailing edge carries the central notch, scallops and nicks, and the
//! underside pattern (see `pattern`). They are drawn once per individual
//! and are the same in all its photos; posing and painting them is
//! `photo`'s job.
//!
//! A fluke lives in its own coordinates: `u` runs across the span from the
//! left tip (-1) to the right tip (1), `v` runs up from the leading edge at
//! the centre (0). Within a wing, `t` runs across the chord from the leading
//! edge (0) to the smooth trailing edge (1); the pattern is stored over
//! `(u, t)` so that it stays put on the fluke whatever the pose.

use std::f32::consts::{PI, TAU};
use std::ops::Range;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::numeric::{lerp, lerp3, smoothstep, Rgb};
use super::pattern::Texture;
use super::photo::Pose;

/// Samples of a profile over `u` in `[-1, 1]`: about one per pixel for the
/// largest flukes, 500 pixels from centre to tip.
const PROFILE_LEN: usize = 1025;

const WHITE_SKIN: Rgb = [0.86, 0.88, 0.9];
const BLACK_SKIN: Rgb = [0.05, 0.055, 0.065];
pub(super) const STOCK_SKIN: Rgb = [0.13, 0.14, 0.16];
const DORSAL_SKIN: Rgb = [0.09, 0.1, 0.11];

/// What makes one individual recognisable, the same in all its photos.
pub(super) struct Marks {
    /// `v` of the leading edge.
    pub(super) leading: Profile,
    /// Chord without notches: the unit of `t`.
    chord: Profile,
    /// `v` of the trailing edge, with the central notch, scallops and nicks.
    pub(super) trailing: Profile,
    /// Underside grey level over `(u, t)`: 0 black, 1 white.
    texture: Texture,
}

pub(super) struct Profile(Vec<f32>);

/// The smooth outline of a fluke, slightly different for each individual.
struct WingShape {
    /// How far the leading edge rises at the left and right tips.
    tip_lift: [f32; 2],
    chord: f32,
    notch_depth: f32,
    notch_width: f32,
}

impl Marks {
    pub(super) fn draw(rng: &mut ChaCha8Rng) -> Marks {
        let shape = WingShape::draw(rng);
        let edge = trailing_edge_offsets(rng);
        let trailing = Profile::from_fn(|idx, u| {
            let taper = (shape.chord(u) / shape.chord).sqrt();
            let chord = shape.chord(u) + taper * edge[idx] - shape.notch(u);
            shape.leading(u) + chord.max(0.0)
        });

        Marks {
            leading: Profile::from_fn(|_, u| shape.leading(u)),
            chord: Profile::from_fn(|_, u| shape.chord(u)),
            trailing,
            texture: Texture::draw(rng),
        }
    }

    /// Colour and coverage of the wings at fluke coordinates `(u, v)`.
    pub(super) fn wing_at(&self, u: f32, v: f32, pose: &Pose) -> Option<(Rgb, f32)> {
        if u.abs() >= 1.0 {
            return None;
        }
        let lead = self.leading.at(u);
        let inside = (v - lead).min(self.trailing.at(u) - v) * pose.v_px;
        let coverage = (inside + 0.5).clamp(0.0, 1.0);
        if coverage <= 0.0 {
            return None;
        }

        let t = (v - lead) / self.chord.at(u).max(1e-3);
        let underside = lerp3(BLACK_SKIN, WHITE_SKIN, self.texture.at(u, t));
        let shows_underside = smoothstep(pose.dorsal - 0.04, pose.dorsal, t);
        Some((lerp3(DORSAL_SKIN, underside, shows_underside), coverage))
    }

    /// Coverage of the tail stock, which runs from the wings down into the
    /// sea and flares where it meets them.
    pub(super) fn stock_at(&self, u: f32, v: f32, pose: &Pose) -> f32 {
        // The stock is never wider than 0.17 either side: skip the exp in
        // stock_half_width for the pixels that cannot be on it.
        let top = (self.leading.at(0.0) + 0.04 - v) * pose.v_px;
        if u.abs() > 0.2 || top < -0.5 {
            return 0.0;
        }
        let side = (stock_half_width(v) - u.abs()) * pose.mean_u_px();
        (side.min(top) + 0.5).clamp(0.0, 1.0)
    }
}

/// Half width of the tail stock in `u` at height `v` below the wings.
pub(super) fn stock_half_width(v: f32) -> f32 {
    let depth = (-v).max(0.0);
    0.085 + 0.06 * (depth / 0.8).min(1.0) + 0.08 * (-depth / 0.05).exp()
}

impl Profile {
    fn from_fn(f: impl Fn(usize, f32) -> f32) -> Profile {
        Profile((0..PROFILE_LEN).map(|idx| f(idx, profile_u(idx))).collect())
    }

    pub(super) fn at(&self, u: f32) -> f32 {
        let x = (u.clamp(-1.0, 1.0) + 1.0) * 0.5 * (PROFILE_LEN - 1) as f32;
        let idx = (x as usize).min(PROFILE_LEN - 2);
        lerp(self.0[idx], self.0[idx + 1], x - idx as f32)
    }
}

fn profile_u(idx: usize) -> f32 {
    -1.0 + 2.0 * idx as f32 / (PROFILE_LEN - 1) as f32
}

/// Profile samples whose `u` lies in `range`.
fn profile_range(range: Range<f32>) -> Range<usize> {
    let to_idx = |u: f32| ((u + 1.0) * 0.5 * (PROFILE_LEN - 1) as f32).clamp(0.0, 1e6);
    let start = to_idx(range.start).ceil() as usize;
    let end = (to_idx(range.end).ceil() as usize).min(PROFILE_LEN);
    start.min(end)..end
}

impl WingShape {
    fn draw(rng: &mut ChaCha8Rng) -> WingShape {
        let lift = rng.gen_range(0.22..0.45);
        WingShape {
            tip_lift: [
                lift + rng.gen_range(-0.03..0.03),
                lift + rng.gen_range(-0.03..0.03),
            ],
            chord: rng.gen_range(0.34..0.46),
            notch_depth: rng.gen_range(0.08..0.16),
            notch_width: rng.gen_range(0.035..0.07),
        }
    }

    fn leading(&self, u: f32) -> f32 {
        self.tip_lift[usize::from(u > 0.0)] * u.abs().powf(1.5)
    }

    /// Widest at the centre, narrowing to a pointed tip.
    fn chord(&self, u: f32) -> f32 {
        self.chord * (1.0 - u.abs().powf(2.5)).max(0.0).powf(0.6)
    }

    fn notch(&self, u: f32) -> f32 {
        self.notch_depth * (1.0 - u.abs() / self.notch_width).max(0.0).powf(1.5)
    }
}

/// How far the trailing edge departs from the smooth chord at each profile
/// sample: a slow wave, a run of scallops with sharp points between them,
/// and a few deep nicks.
fn trailing_edge_offsets(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut offsets = vec![0.0; PROFILE_LEN];
    add_waviness(&mut offsets, rng);
    add_scallops(&mut offsets, rng);
    add_nicks(&mut offsets, rng);
    offsets
}

fn add_waviness(offsets: &mut [f32], rng: &mut ChaCha8Rng) {
    for harmonic in 1..=4 {
        let amplitude = rng.gen_range(0.0..0.025) / harmonic as f32;
        let phase = rng.gen_range(0.0..TAU);
        for (idx, offset) in offsets.iter_mut().enumerate() {
            *offset += amplitude * (PI * harmonic as f32 * profile_u(idx) + phase).sin();
        }
    }
}

fn add_scallops(offsets: &mut [f32], rng: &mut ChaCha8Rng) {
    let mut start = -1.0;
    while start < 1.0 {
        let width = rng.gen_range(0.025..0.11);
        let depth = rng.gen_range(0.002..0.022);
        let sharpness = rng.gen_range(0.4..1.0);
        for idx in profile_range(start..start + width) {
            let s = (profile_u(idx) - start) / width;
            offsets[idx] -= depth * (PI * s).sin().powf(sharpness);
        }
        start += width;
    }
}

fn add_nicks(offsets: &mut [f32], rng: &mut ChaCha8Rng) {
    for _ in 0..rng.gen_range(0..=4) {
        let side = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
        let centre = side * rng.gen_range(0.12..0.92);
        let width = rng.gen_range(0.01..0.045);
        let depth = rng.gen_range(0.02..0.07);
        let shape = rng.gen_range(0.6..2.0);
        for idx in profile_range(centre - width..centre + width) {
            let distance = (profile_u(idx) - centre).abs() / width;
            offsets[idx] -= depth * (1.0 - distance).max(0.0).powf(shape);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::pattern::{TEX_T, TEX_U};
    use crate::synth::{rng_for, Stream};

    #[test]
    fn individuals_have_distinct_trailing_edges() {
        let draw = |whale_idx| Marks::draw(&mut rng_for(1, Stream::Marks, whale_idx));
        let (a, again, b) = (draw(0), draw(0), draw(1));
        let difference = |x: &Marks, y: &Marks| -> f32 {
            let pairs = x.trailing.0.iter().zip(&y.trailing.0);
            pairs.map(|(p, q)| (p - q).abs()).sum::<f32>() / PROFILE_LEN as f32
        };

        assert_eq!(difference(&a, &again), 0.0);
        assert!(difference(&a, &b) > 0.005);
        let grey_difference: f32 = a
            .texture
            .grey
            .iter()
            .zip(&b.texture.grey)
            .map(|(p, q)| (p - q).abs())
            .sum();
        assert!(grey_difference / (TEX_U * TEX_T) as f32 > 0.05);
    }

    #[test]
    fn trailing_edge_is_scalloped() {
        let marks = Marks::draw(&mut rng_for(2, Stream::Marks, 0));
        let edge = &marks.trailing.0;
        let n_points = (1..PROFILE_LEN - 1)
            .filter(|&idx| edge[idx] > edge[idx - 1] && edge[idx] > edge[idx + 1])
            .count();
        assert!(
            n_points >= 10,
            "only {n_points} points along the trailing edge"
        );
    }
}
