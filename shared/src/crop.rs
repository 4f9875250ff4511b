//! The crop geometry: from a box around a fluke to the region of the image
//! that becomes a training or query crop.
//!
//! The rule is the reference kernel's: pad the box, grow its short side until
//! the region has the crop's aspect ratio (never stretch), shrink it when it
//! is larger than the image, then shift it inside the image. The browser
//! computes its preview with this same function, so what a person sees is
//! what the network sees.

use serde::{Deserialize, Serialize};

/// A box around a fluke in source pixels, `x1 >= x0`, `y1 >= y0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

/// The integer region of the source image that is cut out and resized, with
/// exclusive upper bounds, always inside the image and never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropRegion {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// Size and padding of crops. The aspect ratio is `width / height`: a region
/// is grown to that ratio before it is resized, so nothing is stretched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropGeometry {
    /// Width of the resized crop in pixels.
    pub width: u32,
    /// Height of the resized crop in pixels.
    pub height: u32,
    /// Pixels added to the box's width (half on each side).
    pub pad_x: f64,
    /// Pixels added to the box's height (half on each side).
    pub pad_y: f64,
}

/// Why a box cannot be cropped from an image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CropError {
    #[error("the image is empty ({width}x{height} pixels)")]
    EmptyImage { width: u32, height: u32 },
    #[error("box has x1 < x0 or y1 < y0: ({x0}, {y0}, {x1}, {y1})")]
    Inverted { x0: f64, y0: f64, x1: f64, y1: f64 },
    #[error("box ({x0}, {y0}, {x1}, {y1}) lies outside the {width}x{height} image")]
    OutsideImage {
        x0: f64,
        y0: f64,
        x1: f64,
        y1: f64,
        width: u32,
        height: u32,
    },
    #[error("box coordinates must be finite numbers")]
    NotFinite,
}

impl Default for CropGeometry {
    /// The reference kernel's crops: 576x192 (3:1), padding 50 px in x and
    /// 20 px in y.
    fn default() -> Self {
        Self {
            width: 576,
            height: 192,
            pad_x: 50.0,
            pad_y: 20.0,
        }
    }
}

impl BoundingBox {
    pub fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Self {
        Self { x0, y0, x1, y1 }
    }

    /// The box covering a whole image, used when no box is known.
    pub fn whole(width: u32, height: u32) -> Self {
        Self::new(0.0, 0.0, width as f64, height as f64)
    }

    /// Checks that the box is ordered and lies inside a `width x height`
    /// image (edges may touch the border).
    ///
    /// # Errors
    ///
    /// [`CropError`] naming what is wrong with the box.
    pub fn validate(&self, width: u32, height: u32) -> Result<(), CropError> {
        let Self { x0, y0, x1, y1 } = *self;
        if width == 0 || height == 0 {
            return Err(CropError::EmptyImage { width, height });
        }
        if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
            return Err(CropError::NotFinite);
        }
        if x1 < x0 || y1 < y0 {
            return Err(CropError::Inverted { x0, y0, x1, y1 });
        }
        let (w, h) = (width as f64, height as f64);
        if x0 < 0.0 || y0 < 0.0 || x1 > w || y1 > h {
            return Err(CropError::OutsideImage {
                x0,
                y0,
                x1,
                y1,
                width,
                height,
            });
        }
        Ok(())
    }
}

impl CropRegion {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

impl CropGeometry {
    /// Width over height of the crops.
    pub fn ratio(&self) -> f64 {
        self.width as f64 / self.height as f64
    }

    /// The region of a `width x height` image to cut out for `bbox`.
    ///
    /// # Errors
    ///
    /// [`CropError`] when the box is inverted, not finite or outside the
    /// image, or the image is empty.
    pub fn region(
        &self,
        bbox: &BoundingBox,
        width: u32,
        height: u32,
    ) -> Result<CropRegion, CropError> {
        bbox.validate(width, height)?;
        let (w, h) = (width as f64, height as f64);
        let (bw, bh) = self.padded_size(bbox, w, h);

        // Centre on the box; truncate toward zero as the reference does.
        let cx2 = bbox.x0 + bbox.x1;
        let cy2 = bbox.y0 + bbox.y1;
        let (x0, x1) = shift_inside(((cx2 - bw) / 2.0).trunc(), ((cx2 + bw) / 2.0).trunc(), w);
        let (y0, y1) = shift_inside(((cy2 - bh) / 2.0).trunc(), ((cy2 + bh) / 2.0).trunc(), h);

        Ok(CropRegion {
            x0: x0 as u32,
            y0: y0 as u32,
            x1: (x1 as u32).max(x0 as u32 + 1).min(width),
            y1: (y1 as u32).max(y0 as u32 + 1).min(height),
        })
    }

    /// Size of the padded box grown to the crop's ratio and shrunk to fit.
    fn padded_size(&self, bbox: &BoundingBox, w: f64, h: f64) -> (f64, f64) {
        let ratio = self.ratio();
        let bw = bbox.x1 - bbox.x0 + self.pad_x;
        let bh = bbox.y1 - bbox.y0 + self.pad_y;

        // Wider than the ratio: keep the width; otherwise keep the height.
        let (mut bw, mut bh) = if bw * bw / ratio > bh * bh * ratio {
            (bw, bw / ratio)
        } else {
            (bh * ratio, bh)
        };
        // Multiply before dividing, as the reference does, so regions
        // round to the same pixel.
        if bw > w {
            bh = bh * w / bw;
            bw = w;
        }
        if bh > h {
            bw = bw * h / bh;
            bh = h;
        }
        (bw, bh)
    }
}

/// Moves `[lo, hi)` inside `[0, limit]` without changing its length, then
/// clamps whatever still sticks out.
fn shift_inside(lo: f64, hi: f64, limit: f64) -> (f64, f64) {
    let (lo, hi) = if lo < 0.0 {
        (0.0, hi - lo)
    } else if hi > limit {
        (lo + limit - hi, limit)
    } else {
        (lo, hi)
    };
    (lo.max(0.0), hi.min(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(w: u32, h: u32, b: (f64, f64, f64, f64)) -> (u32, u32, u32, u32) {
        let bbox = BoundingBox::new(b.0, b.1, b.2, b.3);
        let r = CropGeometry::default().region(&bbox, w, h).unwrap();
        (r.x0, r.y0, r.x1, r.y1)
    }

    // Expected regions below were worked out by hand from the rule in the
    // module docs (pad 50/20, ratio 3, truncate, shift inside).

    #[test]
    fn box_in_the_middle_grows_its_width_to_three_to_one() {
        // padded 350x120 is narrower than 3:1, so width becomes 360
        assert_eq!(
            region(1000, 600, (100.0, 100.0, 400.0, 200.0)),
            (70, 90, 430, 210)
        );
    }

    #[test]
    fn box_at_left_edge_is_shifted_right() {
        // padded 350x70 is wider than 3:1, height becomes 116.67
        assert_eq!(
            region(800, 400, (0.0, 150.0, 300.0, 200.0)),
            (0, 116, 350, 233)
        );
    }

    #[test]
    fn negative_start_truncates_toward_zero_before_shifting() {
        // x0 = -25.5 truncates to -25, then the region moves 25 px right
        assert_eq!(
            region(800, 400, (0.0, 150.0, 301.0, 200.0)),
            (0, 116, 351, 233)
        );
    }

    #[test]
    fn box_in_bottom_right_corner_is_shifted_up_and_left() {
        assert_eq!(
            region(640, 480, (600.0, 450.0, 640.0, 480.0)),
            (490, 430, 640, 480)
        );
    }

    #[test]
    fn box_wider_than_image_shrinks_keeping_the_ratio() {
        // 350x116.67 shrinks to 300x100
        assert_eq!(
            region(300, 400, (0.0, 100.0, 300.0, 150.0)),
            (0, 75, 300, 175)
        );
    }

    #[test]
    fn exact_ratio_keeps_the_height() {
        assert_eq!(region(200, 50, (50.0, 10.0, 150.0, 40.0)), (25, 0, 175, 50));
    }

    #[test]
    fn region_too_wide_and_too_tall_shrinks_twice() {
        // 150x50 -> 100x33.3 -> 90x30
        assert_eq!(region(100, 30, (0.0, 0.0, 100.0, 30.0)), (5, 0, 95, 30));
    }

    #[test]
    fn tiny_image_gives_a_non_empty_region() {
        assert_eq!(region(4, 3, (0.0, 0.0, 4.0, 3.0)), (0, 0, 4, 2));
        assert_eq!(region(1, 1, (0.0, 0.0, 1.0, 1.0)), (0, 0, 1, 1));
    }

    #[test]
    fn other_ratio_and_padding_are_honoured() {
        let geometry = CropGeometry {
            width: 200,
            height: 100,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        let bbox = BoundingBox::new(10.0, 10.0, 30.0, 20.0);
        let r = geometry.region(&bbox, 100, 100).unwrap();
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (10, 10, 30, 20));
        assert_eq!(geometry.ratio(), 2.0);
    }

    #[test]
    fn bad_boxes_are_refused_with_a_reason() {
        let g = CropGeometry::default();
        let inverted = BoundingBox::new(50.0, 0.0, 10.0, 10.0);
        assert!(matches!(
            g.region(&inverted, 100, 100),
            Err(CropError::Inverted { .. })
        ));
        let outside = BoundingBox::new(0.0, 0.0, 120.0, 10.0);
        assert!(matches!(
            g.region(&outside, 100, 100),
            Err(CropError::OutsideImage { .. })
        ));
        let nan = BoundingBox::new(f64::NAN, 0.0, 1.0, 1.0);
        assert_eq!(g.region(&nan, 100, 100), Err(CropError::NotFinite));
        let whole = BoundingBox::whole(0, 10);
        assert!(matches!(
            g.region(&whole, 0, 10),
            Err(CropError::EmptyImage { .. })
        ));
    }

    #[test]
    fn regions_stay_inside_the_image_and_keep_the_ratio_when_they_can() {
        let g = CropGeometry::default();
        for (w, h) in [(1050, 700), (700, 467), (333, 1000), (97, 13)] {
            for step in 0..20 {
                let f = step as f64 / 20.0;
                let bbox = BoundingBox::new(
                    f * w as f64 * 0.7,
                    f * h as f64 * 0.5,
                    (f * w as f64 * 0.7 + 40.0).min(w as f64),
                    h as f64 * (0.5 + f / 2.0),
                );
                let r = g.region(&bbox, w, h).unwrap();
                assert!(r.x1 <= w && r.y1 <= h && r.width() > 0 && r.height() > 0);
                let ratio = r.width() as f64 / r.height() as f64;
                if r.width() < w && r.height() < h && r.height() > 20 {
                    assert!((ratio - 3.0).abs() < 0.1, "{w}x{h} {bbox:?} -> {r:?}");
                }
            }
        }
    }
}
