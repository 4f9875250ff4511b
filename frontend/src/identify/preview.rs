//! What the network will see: the region of the photo that the shared crop
//! geometry cuts for a box, and the size it is resized to. The preview
//! canvas and the crop that is uploaded are both drawn from this plan, so
//! the preview is exactly the uploaded crop.
//!
//! Drawing itself happens in the browser; this module only decides.

use flukeid_shared::crop::{BoundingBox, CropError, CropGeometry, CropRegion};

/// The part of a photo to cut and the size to resize it to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropPlan {
    pub region: CropRegion,
    /// Size of the crop, the geometry's.
    pub width: u32,
    pub height: u32,
}

/// The plan for `bbox` on a `width x height` photo; without a box, the
/// whole photo, as the server does.
///
/// # Errors
///
/// [`CropError`] when the box does not fit the photo.
pub fn plan(
    geometry: &CropGeometry,
    bbox: Option<BoundingBox>,
    width: u32,
    height: u32,
) -> Result<CropPlan, CropError> {
    let bbox = bbox.unwrap_or_else(|| BoundingBox::whole(width, height));
    let region = geometry.region(&bbox, width, height)?;
    Ok(CropPlan {
        region,
        width: geometry.width,
        height: geometry.height,
    })
}

/// The size to show a `width x height` photo at on a canvas, at most
/// `max_side` pixels on its longer side (phones refuse very large
/// canvases); never enlarged, never below one pixel.
pub fn display_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longer = width.max(height).max(1);
    if longer <= max_side {
        return (width.max(1), height.max(1));
    }
    let scale = max_side as f64 / longer as f64;
    let side = |pixels: u32| ((pixels as f64 * scale).round() as u32).max(1);
    (side(width), side(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_uses_the_shared_geometry_and_its_size() {
        // The shared crate's worked example: padded 350x120 grows to 360x120.
        let bbox = BoundingBox::new(100.0, 100.0, 400.0, 200.0);
        let plan = plan(&CropGeometry::default(), Some(bbox), 1000, 600).unwrap();
        assert_eq!(
            plan.region,
            CropRegion {
                x0: 70,
                y0: 90,
                x1: 430,
                y1: 210
            }
        );
        assert_eq!((plan.width, plan.height), (576, 192));
    }

    #[test]
    fn no_box_means_the_whole_photo_and_other_geometries_are_honoured() {
        let geometry = CropGeometry {
            width: 64,
            height: 32,
            pad_x: 0.0,
            pad_y: 0.0,
        };
        let plan = plan(&geometry, None, 200, 100).unwrap();
        assert_eq!(
            plan.region,
            CropRegion {
                x0: 0,
                y0: 0,
                x1: 200,
                y1: 100
            }
        );
        assert_eq!((plan.width, plan.height), (64, 32));
    }

    #[test]
    fn a_box_outside_the_photo_is_refused() {
        let bbox = BoundingBox::new(0.0, 0.0, 300.0, 10.0);
        assert!(plan(&CropGeometry::default(), Some(bbox), 200, 100).is_err());
    }

    #[test]
    fn large_photos_are_shown_smaller_and_small_ones_as_they_are() {
        assert_eq!(display_size(4000, 3000, 1600), (1600, 1200));
        assert_eq!(display_size(3000, 4000, 1600), (1200, 1600));
        assert_eq!(display_size(800, 600, 1600), (800, 600));
        assert_eq!(display_size(10000, 1, 1000), (1000, 1));
        assert_eq!(display_size(0, 0, 1000), (1, 1));
    }
}
