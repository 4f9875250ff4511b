//! Small numeric helpers for the drawing code: the colour type, smooth
//! value noise, interpolation and a few random draws. Nothing here knows
//! about flukes.

use std::f32::consts::TAU;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub(super) type Rgb = [f32; 3];

/// Smooth value noise on a 64 x 64 lattice that wraps around.
pub(super) struct ValueNoise(Vec<f32>);

impl ValueNoise {
    const SIZE: usize = 64;
    const MASK: i64 = Self::SIZE as i64 - 1;

    pub(super) fn draw(rng: &mut ChaCha8Rng) -> ValueNoise {
        ValueNoise((0..Self::SIZE * Self::SIZE).map(|_| rng.gen()).collect())
    }

    pub(super) fn at(&self, x: f32, y: f32) -> f32 {
        self.row(y).at(x)
    }

    /// The noise along the row at `y`; loops that sweep `x` take it once
    /// per row.
    pub(super) fn row(&self, y: f32) -> NoiseRow<'_> {
        let yi = floor(y);
        let lattice_row = |dy: i64| {
            let start = ((yi + dy) & Self::MASK) as usize * Self::SIZE;
            self.0[start..start + Self::SIZE]
                .try_into()
                .expect("lattice rows hold SIZE values")
        };
        NoiseRow {
            above: lattice_row(0),
            below: lattice_row(1),
            fy: fade(y - yi as f32),
        }
    }

    /// Two octaves of the noise along the row at `y`.
    pub(super) fn fractal_row(&self, y: f32) -> FractalRow<'_> {
        FractalRow([self.row(y), self.row(2.1 * y + 11.3)])
    }
}

pub(super) struct NoiseRow<'a> {
    above: &'a [f32; ValueNoise::SIZE],
    below: &'a [f32; ValueNoise::SIZE],
    fy: f32,
}

impl NoiseRow<'_> {
    /// Valid for `|x|` up to about eight million cells.
    pub(super) fn at(&self, x: f32) -> f32 {
        // Fixed point with 8 fractional bits: one conversion, a shift that
        // floors negative values too, and steps of 1/256 of a cell, finer
        // than any pixel sees.
        let fixed = (x * 256.0) as i32;
        let xi = fixed >> 8;
        let fx = fade((fixed & 255) as f32 * (1.0 / 256.0));
        let mask = ValueNoise::SIZE as i32 - 1;
        let (i0, i1) = ((xi & mask) as usize, ((xi + 1) & mask) as usize);
        let above = lerp(self.above[i0], self.above[i1], fx);
        lerp(above, lerp(self.below[i0], self.below[i1], fx), self.fy)
    }
}

/// Two octaves of value noise along a row, in `[0, 1]`.
pub(super) struct FractalRow<'a>([NoiseRow<'a>; 2]);

impl FractalRow<'_> {
    pub(super) fn at(&self, x: f32) -> f32 {
        0.65 * self.0[0].at(x) + 0.35 * self.0[1].at(2.1 * x + 31.7)
    }
}

/// `f32::floor` as an integer, without the library call it compiles to on
/// plain x86-64.
fn floor(x: f32) -> i64 {
    let truncated = x as i64;
    truncated - i64::from((truncated as f32) > x)
}

fn fade(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

pub(super) fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

pub(super) fn lerp3(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        lerp(a[0], b[0], t),
        lerp(a[1], b[1], t),
        lerp(a[2], b[2], t),
    ]
}

pub(super) fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    fade(((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0))
}

pub(super) fn jitter(rng: &mut ChaCha8Rng, colour: Rgb, amount: f32) -> Rgb {
    colour.map(|c| (c + rng.gen_range(-amount..amount)).clamp(0.0, 1.0))
}

pub(super) fn pick<const N: usize>(rng: &mut ChaCha8Rng, colours: &[Rgb; N]) -> Rgb {
    colours[rng.gen_range(0..N)]
}

/// A standard normal draw (Box-Muller).
pub(super) fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let radius = (-2.0 * rng.gen_range(1e-7f32..1.0).ln()).sqrt();
    radius * (TAU * rng.gen::<f32>()).cos()
}
