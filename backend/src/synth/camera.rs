//! The camera's side of a photo: the linear canvas that the scene, the
//! fluke and the spray are painted onto, and the light that develops it
//! into 8-bit pixels. What is painted is decided elsewhere.

use image::RgbImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::numeric::Rgb;

/// The camera's rendering of light: exposure, colour cast, contrast, tone
/// curve, vignette and sensor grain.
pub(super) struct Light {
    gain: Rgb,
    contrast: f32,
    offset: f32,
    gamma: f32,
    grain: f32,
    vignette: f32,
}

/// Linear RGB working buffer, values nominally in `[0, 1]`.
pub(super) struct Canvas {
    pub(super) width: usize,
    pub(super) height: usize,
    rgb: Vec<Rgb>,
}

impl Light {
    pub(super) fn draw(rng: &mut ChaCha8Rng) -> Light {
        let exposure = rng.gen_range(0.75..1.25);
        let cast = [
            rng.gen_range(0.9..1.1),
            rng.gen_range(0.92..1.08),
            rng.gen_range(0.9..1.1),
        ];
        Light {
            gain: cast.map(|c: f32| c * exposure),
            contrast: rng.gen_range(0.75..1.25),
            offset: rng.gen_range(-0.05..0.05),
            gamma: rng.gen_range(0.8..1.25),
            grain: rng.gen_range(0.005..0.03),
            vignette: rng.gen_range(0.0..0.35),
        }
    }

    /// Turns the canvas into 8-bit pixels.
    pub(super) fn develop(&self, canvas: &Canvas, rng: &mut ChaCha8Rng) -> RgbImage {
        let curve = ToneCurve::new(self.gamma);
        let mut grain_stream = GrainStream::new(rng);
        let fade_x = vignette_falloff(canvas.width, 0.5 * self.vignette);
        let fade_y = vignette_falloff(canvas.height, 0.5 * self.vignette);
        // The exposure below, expanded: value * slope + intercept.
        let slope = self.gain.map(|gain| gain * self.contrast);
        let intercept = 0.5 - 0.5 * self.contrast + self.offset;

        let mut raw = vec![0; canvas.rgb.len() * 3];
        let rows = canvas
            .rgb
            .chunks_exact(canvas.width)
            .zip(raw.chunks_exact_mut(canvas.width * 3));
        for (y, (row, out)) in rows.enumerate() {
            for (x, (rgb, bytes)) in row.iter().zip(out.chunks_exact_mut(3)).enumerate() {
                let fade = 1.0 - fade_x[x] - fade_y[y];
                let grain = self.grain * grain_stream.next();
                for channel in 0..3 {
                    let exposed = rgb[channel] * slope[channel] + intercept;
                    bytes[channel] = curve.apply(exposed * fade + grain);
                }
            }
        }
        RgbImage::from_raw(canvas.width as u32, canvas.height as u32, raw)
            .expect("the buffer holds three bytes per pixel")
    }
}

impl Canvas {
    pub(super) fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![[0.0; 3]; width * height],
        }
    }

    pub(super) fn row_mut(&mut self, y: usize) -> &mut [Rgb] {
        &mut self.rgb[y * self.width..(y + 1) * self.width]
    }

    /// Pixel ranges of a region `[x0, y0, x1, y1]`, clipped to the canvas.
    pub(super) fn clip(&self, region: [f32; 4]) -> [usize; 4] {
        let to_col = |x: f32| (x.max(0.0) as usize).min(self.width);
        let to_row = |y: f32| (y.max(0.0) as usize).min(self.height);
        let [x0, y0, x1, y1] = region;
        [
            to_col(x0.floor()),
            to_row(y0.floor()),
            to_col(x1.ceil()),
            to_row(y1.ceil()),
        ]
    }

    /// Pixel ranges of the square reaching `reach` from `centre` each way,
    /// clipped to the canvas.
    pub(super) fn clip_around(&self, centre: [f32; 2], reach: f32) -> [usize; 4] {
        let [cx, cy] = centre;
        self.clip([cx - reach, cy - reach, cx + reach, cy + reach])
    }

    pub(super) fn blend(&mut self, x: usize, y: usize, colour: Rgb, alpha: f32) {
        let pixel = &mut self.rgb[y * self.width + x];
        for (value, target) in pixel.iter_mut().zip(colour) {
            *value += (target - *value) * alpha;
        }
    }

    pub(super) fn blend_disc(&mut self, centre: [f32; 2], radius: f32, colour: Rgb, alpha: f32) {
        let [x0, y0, x1, y1] = self.clip_around(centre, radius + 1.0);
        for y in y0..y1 {
            for x in x0..x1 {
                let distance = (x as f32 + 0.5 - centre[0]).hypot(y as f32 + 0.5 - centre[1]);
                let coverage = (radius + 0.5 - distance).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    self.blend(x, y, colour, alpha * coverage);
                }
            }
        }
    }
}

/// Darkening towards the edges along one axis, quadratic in the distance
/// from the centre.
fn vignette_falloff(len: usize, strength: f32) -> Vec<f32> {
    let half = len as f32 * 0.5;
    (0..len)
        .map(|idx| strength * (idx as f32 / half - 1.0).powi(2))
        .collect()
}

/// Gamma applied through a table, to keep `powf` out of the pixel loop.
struct ToneCurve([u8; ToneCurve::LEVELS]);

impl ToneCurve {
    const LEVELS: usize = 1024;
    const TOP: i32 = Self::LEVELS as i32 - 1;

    fn new(gamma: f32) -> ToneCurve {
        let mut curve = [0; Self::LEVELS];
        for (level, byte) in curve.iter_mut().enumerate() {
            *byte = ((level as f32 / Self::TOP as f32).powf(gamma) * 255.0).round() as u8;
        }
        ToneCurve(curve)
    }

    fn apply(&self, value: f32) -> u8 {
        let level = (value * Self::TOP as f32) as i32;
        self.0[level.clamp(0, Self::TOP) as usize]
    }
}

/// A xorshift stream for sensor grain: far cheaper per pixel than the
/// ChaCha generator, and deterministic because each image draws it in pixel
/// order.
struct GrainStream(u32);

impl GrainStream {
    fn new(rng: &mut ChaCha8Rng) -> GrainStream {
        // Xorshift must never hold zero.
        GrainStream(rng.gen::<u32>() | 1)
    }

    /// The next value in `[-1, 1)`.
    fn next(&mut self) -> f32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
}
