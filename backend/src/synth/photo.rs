//! One photo of one individual: its fluke posed in a scene, cut by the
//! sea surface, with spray over it, developed by the camera; and the box
//! around the fluke's visible pixels. Writing the photo is `output`'s job.

use std::f32::consts::TAU;
use std::ops::Range;

use image::RgbImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::camera::{Canvas, Light};
use super::marks::{stock_half_width, Marks, STOCK_SKIN};
use super::numeric::{lerp3, Rgb};
use super::scene::{paint_background, Scene};
use super::spray::paint_spray;

/// Tip-to-tip span of the fluke as a share of the image width.
const SPAN_RANGE: Range<f32> = 0.35..0.85;
/// Largest roll of the fluke in the image plane, 10 degrees.
const MAX_ROLL: f32 = 0.1745;

pub(super) struct Photo {
    pub(super) pixels: RgbImage,
    pub(super) fluke_box: FlukeBox,
    pub(super) quality: u8,
}

/// The visible fluke's pixels, with exclusive upper bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FlukeBox {
    pub(super) x0: usize,
    pub(super) y0: usize,
    pub(super) x1: usize,
    pub(super) y1: usize,
}

/// Where and how the fluke sits in the photo.
pub(super) struct Pose {
    /// Image position of the fluke's origin, the leading edge's centre.
    anchor: [f32; 2],
    cos: f32,
    sin: f32,
    /// Pixels per unit of `u` for the left and right wing; they differ a
    /// little, as when one wing is nearer the camera.
    wing_px: [f32; 2],
    /// Pixels per unit of `v`, smaller when the fluke tilts away.
    pub(super) v_px: f32,
    /// Fluke height `v` where the sea cuts the tail stock; above zero the
    /// sea hides part of the wings.
    pub(super) water_v: f32,
    /// Image row of the sea surface at the fluke.
    pub(super) water_y: f32,
    /// Region the fluke may touch: x0, y0, x1, y1 in pixels.
    pub(super) bounds: [f32; 4],
    /// Brightness gradient over `u` and `v`.
    shade: [f32; 2],
    /// Share of the chord, from the leading edge, where the dark back of
    /// the fluke shows because it tilts towards the camera.
    pub(super) dorsal: f32,
}

/// Image row of the sea surface in each column.
pub(super) struct WaterLine(Vec<f32>);

impl Photo {
    pub(super) fn render(marks: &Marks, rng: &mut ChaCha8Rng) -> Photo {
        let scene = Scene::draw(rng);
        let pose = Pose::draw(marks, &scene, rng);
        let mut canvas = Canvas::new(scene.width, scene.height);
        paint_background(&mut canvas, &scene, rng);

        let water = WaterLine::draw(&pose, scene.width, rng);
        let fluke_box = paint_fluke(&mut canvas, marks, &pose, &water);
        paint_spray(&mut canvas, marks, &pose, &water, rng);

        let light = Light::draw(rng);
        let pixels = light.develop(&canvas, rng);
        Photo {
            pixels,
            fluke_box,
            quality: rng.gen_range(70..=92),
        }
    }
}

impl Pose {
    /// Draws a pose, shrinking the fluke until it fits the frame with the
    /// sea surface below the horizon.
    fn draw(marks: &Marks, scene: &Scene, rng: &mut ChaCha8Rng) -> Pose {
        let roll: f32 = rng.gen_range(-MAX_ROLL..MAX_ROLL);
        let wing_scale = [rng.gen_range(0.88..1.12), rng.gen_range(0.88..1.12)];
        let tilt = rng.gen_range(0.8..1.1);
        let mut pose = Pose {
            anchor: [0.0; 2],
            cos: roll.cos(),
            sin: roll.sin(),
            wing_px: [0.0; 2],
            v_px: 0.0,
            water_v: rng.gen_range(-0.45..0.06),
            water_y: 0.0,
            bounds: [0.0; 4],
            shade: [rng.gen_range(-0.15..0.15), rng.gen_range(-0.25..0.1)],
            dorsal: if rng.gen_bool(0.4) {
                rng.gen_range(0.0..0.2)
            } else {
                0.0
            },
        };

        let mut span = rng.gen_range(SPAN_RANGE) * scene.width as f32;
        loop {
            let half_span = span / (wing_scale[0] + wing_scale[1]);
            pose.wing_px = wing_scale.map(|scale| scale * half_span);
            pose.v_px = half_span * tilt;
            pose.bounds = pose.outline_bounds(marks);
            if let Some(anchor) = pose.place(scene, rng) {
                pose.move_to(anchor);
                return pose;
            }
            span *= 0.9;
        }
    }

    /// Bounds of the outline around the origin, before placing.
    fn outline_bounds(&self, marks: &Marks) -> [f32; 4] {
        let wing = (0..=64).flat_map(|step| {
            let u = -1.0 + step as f32 / 32.0;
            [(u, marks.leading.at(u)), (u, marks.trailing.at(u))]
        });
        let stock = [marks.leading.at(0.0) + 0.05, self.water_v - 0.15].map(|v| {
            let half_width = stock_half_width(v);
            [(-half_width, v), (half_width, v)]
        });

        let mut bounds = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for (u, v) in wing.chain(stock.into_iter().flatten()) {
            let [x, y] = self.to_image(u, v);
            bounds = [
                bounds[0].min(x),
                bounds[1].min(y),
                bounds[2].max(x),
                bounds[3].max(y),
            ];
        }
        [
            bounds[0] - 3.0,
            bounds[1] - 3.0,
            bounds[2] + 3.0,
            bounds[3] + 3.0,
        ]
    }

    /// Picks the origin's image position, or `None` when the fluke cannot
    /// fit.
    fn place(&self, scene: &Scene, rng: &mut ChaCha8Rng) -> Option<[f32; 2]> {
        let (width, height) = (scene.width as f32, scene.height as f32);
        let margin = 0.03 * height;
        let water_below = -self.water_v * self.v_px;
        let [x0, y0, x1, _] = self.bounds;

        let xs = margin - x0..width - margin - x1;
        let y_min = (margin - y0).max(scene.horizon + 0.05 * height - water_below);
        let ys = y_min..height - 0.04 * height - water_below;
        if xs.is_empty() || ys.is_empty() {
            return None;
        }
        Some([rng.gen_range(xs), rng.gen_range(ys)])
    }

    fn move_to(&mut self, anchor: [f32; 2]) {
        self.anchor = anchor;
        self.water_y = anchor[1] - self.water_v * self.v_px;
        let [x0, y0, x1, y1] = self.bounds;
        self.bounds = [
            x0 + anchor[0],
            y0 + anchor[1],
            x1 + anchor[0],
            y1 + anchor[1],
        ];
    }

    pub(super) fn to_image(&self, u: f32, v: f32) -> [f32; 2] {
        let x = u * self.wing_px[usize::from(u > 0.0)];
        let y = -v * self.v_px;
        [
            self.anchor[0] + x * self.cos - y * self.sin,
            self.anchor[1] + x * self.sin + y * self.cos,
        ]
    }

    fn to_fluke(&self, px: f32, py: f32) -> (f32, f32) {
        let (dx, dy) = (px - self.anchor[0], py - self.anchor[1]);
        let x = dx * self.cos + dy * self.sin;
        let y = dy * self.cos - dx * self.sin;
        (x / self.wing_px[usize::from(x > 0.0)], -y / self.v_px)
    }

    pub(super) fn mean_u_px(&self) -> f32 {
        0.5 * (self.wing_px[0] + self.wing_px[1])
    }

    /// Image column where the tail stock enters the sea.
    pub(super) fn stock_x_at_water(&self) -> f32 {
        let v = (self.anchor[1] - self.water_y) / (self.v_px * self.cos);
        self.anchor[0] + v * self.v_px * self.sin
    }
}

impl WaterLine {
    fn draw(pose: &Pose, width: usize, rng: &mut ChaCha8Rng) -> WaterLine {
        let amplitude = rng.gen_range(0.5..4.0);
        let frequency = rng.gen_range(0.01..0.06);
        let phase = rng.gen_range(0.0..TAU);
        let rows = (0..width).map(|x| {
            let angle = x as f32 * frequency + phase;
            pose.water_y + amplitude * (angle.sin() + 0.4 * (2.7 * angle).sin())
        });
        WaterLine(rows.collect())
    }

    pub(super) fn y_at(&self, x: usize) -> f32 {
        self.0[x.min(self.0.len() - 1)]
    }
}

/// Paints the fluke above the sea surface and returns the box around its
/// visible pixels.
fn paint_fluke(canvas: &mut Canvas, marks: &Marks, pose: &Pose, water: &WaterLine) -> FlukeBox {
    let [x0, y0, x1, y1] = canvas.clip(pose.bounds);
    let mut tracker = BoxTracker::default();
    for y in y0..y1 {
        for x in x0..x1 {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let above_water = (water.y_at(x) - py + 0.5).clamp(0.0, 1.0);
            if above_water <= 0.0 {
                continue;
            }
            let Some((colour, coverage)) = fluke_pixel(marks, pose, px, py) else {
                continue;
            };
            let alpha = coverage * above_water;
            canvas.blend(x, y, colour, alpha);
            if alpha >= 0.5 {
                tracker.add(x, y);
            }
        }
    }
    tracker
        .finish()
        .expect("part of every fluke shows above the sea")
}

fn fluke_pixel(marks: &Marks, pose: &Pose, px: f32, py: f32) -> Option<(Rgb, f32)> {
    let (u, v) = pose.to_fluke(px, py);
    let wing = marks.wing_at(u, v, pose);
    let wing_coverage = wing.map_or(0.0, |(_, coverage)| coverage);
    let coverage = wing_coverage.max(marks.stock_at(u, v, pose));
    if coverage <= 0.0 {
        return None;
    }

    let colour = match wing {
        Some((colour, _)) => lerp3(STOCK_SKIN, colour, wing_coverage / coverage),
        None => STOCK_SKIN,
    };
    let shade = 1.0 + pose.shade[0] * u + pose.shade[1] * (v - 0.2);
    Some((colour.map(|c| c * shade), coverage))
}

#[derive(Default)]
struct BoxTracker {
    bounds: Option<FlukeBox>,
}

impl BoxTracker {
    fn add(&mut self, x: usize, y: usize) {
        let pixel = FlukeBox {
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
        };
        self.bounds = Some(match self.bounds {
            None => pixel,
            Some(b) => FlukeBox {
                x0: b.x0.min(x),
                y0: b.y0.min(y),
                x1: b.x1.max(x + 1),
                y1: b.y1.max(y + 1),
            },
        });
    }

    fn finish(self) -> Option<FlukeBox> {
        self.bounds
    }
}
