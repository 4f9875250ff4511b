//! The map's geometry: which part of the embedding plane is on screen
//! (zoom and pan), which point is under the pointer, the colour of each
//! individual, and where the last query sits.
//!
//! Map units have y up; screen pixels have y down. One scale serves both
//! axes, so distances on screen are true to the projection.

use flukeid_shared::api::{IdentifyResponse, MapPoint};

use crate::identify::results::NEW_WHALE;

/// The visible window onto the map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapView {
    /// Map point at the centre of the screen.
    pub centre: (f64, f64),
    /// Screen pixels per map unit.
    pub scale: f64,
    /// Screen size in pixels.
    pub size: (f64, f64),
    /// The scale that fits every point; zoom is bounded relative to it.
    fit_scale: f64,
}

/// How far in and out the map zooms, relative to fitting every point.
const MIN_ZOOM: f64 = 0.5;
const MAX_ZOOM: f64 = 200.0;

/// Share of the screen left empty around the points when fitting.
const FIT_MARGIN: f64 = 0.05;

impl MapView {
    /// A view of `size` pixels showing every point.
    pub fn fit(points: &[MapPoint], size: (f64, f64)) -> Self {
        let (mut lo, mut hi) = ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN));
        for p in points {
            lo = (lo.0.min(p.x as f64), lo.1.min(p.y as f64));
            hi = (hi.0.max(p.x as f64), hi.1.max(p.y as f64));
        }
        if points.is_empty() {
            (lo, hi) = ((-1.0, -1.0), (1.0, 1.0));
        }
        // A degenerate spread (one point, or all on a line) still gets a
        // unit square around it.
        let span = ((hi.0 - lo.0).max(1e-6), (hi.1 - lo.1).max(1e-6));
        let span = if span.0 < 1e-3 && span.1 < 1e-3 {
            (2.0, 2.0)
        } else {
            span
        };
        let usable = 1.0 - 2.0 * FIT_MARGIN;
        let scale = (size.0 * usable / span.0).min(size.1 * usable / span.1);
        let centre = ((lo.0 + hi.0) / 2.0, (lo.1 + hi.1) / 2.0);
        Self {
            centre,
            scale,
            size,
            fit_scale: scale,
        }
    }

    /// Screen pixel of map point `(x, y)`.
    pub fn to_screen(&self, x: f64, y: f64) -> (f64, f64) {
        let sx = self.size.0 / 2.0 + (x - self.centre.0) * self.scale;
        let sy = self.size.1 / 2.0 - (y - self.centre.1) * self.scale;
        (sx, sy)
    }

    /// Map point under screen pixel `(sx, sy)`.
    pub fn to_map(&self, sx: f64, sy: f64) -> (f64, f64) {
        let x = self.centre.0 + (sx - self.size.0 / 2.0) / self.scale;
        let y = self.centre.1 - (sy - self.size.1 / 2.0) / self.scale;
        (x, y)
    }

    /// The visible map ranges, `(x_lo..x_hi, y_lo..y_hi)`.
    pub fn ranges(&self) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
        let (x0, y1) = self.to_map(0.0, 0.0);
        let (x1, y0) = self.to_map(self.size.0, self.size.1);
        (x0..x1, y0..y1)
    }

    /// Zooms by `factor` keeping the map point under `(sx, sy)` in place.
    pub fn zoom_at(&mut self, sx: f64, sy: f64, factor: f64) {
        let anchor = self.to_map(sx, sy);
        let zoom = (self.scale * factor / self.fit_scale).clamp(MIN_ZOOM, MAX_ZOOM);
        self.scale = self.fit_scale * zoom;
        let moved = self.to_map(sx, sy);
        self.centre = (
            self.centre.0 + anchor.0 - moved.0,
            self.centre.1 + anchor.1 - moved.1,
        );
    }

    /// Drags the map by `(dx, dy)` screen pixels.
    pub fn pan_by(&mut self, dx: f64, dy: f64) {
        self.centre = (
            self.centre.0 - dx / self.scale,
            self.centre.1 + dy / self.scale,
        );
    }

    /// The point nearest to screen pixel `(sx, sy)`, if one lies within
    /// `radius` pixels.
    pub fn nearest(&self, points: &[MapPoint], sx: f64, sy: f64, radius: f64) -> Option<usize> {
        let distance = |p: &MapPoint| {
            let (px, py) = self.to_screen(p.x as f64, p.y as f64);
            (px - sx).hypot(py - sy)
        };
        points
            .iter()
            .enumerate()
            .map(|(idx, p)| (idx, distance(p)))
            .filter(|(_, d)| *d <= radius)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(idx, _)| idx)
    }
}

/// Lightness levels that tell apart individuals of similar hue.
const LIGHTNESS: [f64; 3] = [0.32, 0.45, 0.58];

/// A colour for an individual, the same on every visit: its label hashed
/// (FNV-1a) to a hue and one of three lightness levels; `new_whale` is
/// grey.
pub fn colour(label: &str) -> (u8, u8, u8) {
    if label == NEW_WHALE {
        return (150, 150, 150);
    }
    let hash = label.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let lightness = LIGHTNESS[(hash >> 16) as usize % LIGHTNESS.len()];
    hsl_to_rgb((hash % 360) as f64, 0.75, lightness)
}

/// The centre of an individual's points on the map.
pub fn centre_of(points: &[MapPoint], label: &str) -> Option<(f64, f64)> {
    let mine: Vec<&MapPoint> = points.iter().filter(|p| p.label == label).collect();
    let n = mine.len() as f64;
    (!mine.is_empty()).then(|| {
        let (sx, sy) = mine
            .iter()
            .fold((0.0, 0.0), |(sx, sy), p| (sx + p.x as f64, sy + p.y as f64));
        (sx / n, sy / n)
    })
}

/// Where to draw a query and the centres of its known candidates.
///
/// The map projects only the gallery, not queries, so the query is placed
/// at its candidates' centres weighted by inverse distance: near the
/// individual it most resembles, pulled toward the others.
pub fn query_layout(points: &[MapPoint], query: &IdentifyResponse) -> Option<QueryLayout> {
    let mut candidates = Vec::new();
    let (mut sum, mut weights) = ((0.0, 0.0), 0.0);
    for candidate in query.candidates.iter().filter(|c| c.label != NEW_WHALE) {
        let Some(centre) = centre_of(points, &candidate.label) else {
            continue;
        };
        let weight = 1.0 / (candidate.distance as f64).max(1e-3);
        sum = (sum.0 + weight * centre.0, sum.1 + weight * centre.1);
        weights += weight;
        candidates.push((candidate.label.clone(), centre));
    }
    (weights > 0.0).then(|| QueryLayout {
        query: (sum.0 / weights, sum.1 / weights),
        candidates,
    })
}

/// A query's place on the map and its candidates' centres.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryLayout {
    pub query: (f64, f64),
    pub candidates: Vec<(String, (f64, f64))>,
}

fn hsl_to_rgb(hue: f64, saturation: f64, lightness: f64) -> (u8, u8, u8) {
    let chroma = (1.0 - (2.0 * lightness - 1.0).abs()) * saturation;
    let h = hue / 60.0;
    let x = chroma * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (chroma, x, 0.0),
        1 => (x, chroma, 0.0),
        2 => (0.0, chroma, x),
        3 => (0.0, x, chroma),
        4 => (x, 0.0, chroma),
        _ => (chroma, 0.0, x),
    };
    let m = lightness - chroma / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round() as u8;
    (byte(r), byte(g), byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flukeid_shared::api::CandidateMatch;

    fn point(x: f32, y: f32, label: &str) -> MapPoint {
        MapPoint {
            x,
            y,
            label: label.into(),
            image: format!("/api/images/train/{label}.jpg"),
        }
    }

    fn square() -> Vec<MapPoint> {
        vec![
            point(-1.0, -1.0, "w_a"),
            point(1.0, 1.0, "w_b"),
            point(1.0, -1.0, "w_b"),
        ]
    }

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9
    }

    #[test]
    fn fitting_centres_the_points_with_a_margin_and_flips_y() {
        let view = MapView::fit(&square(), (200.0, 100.0));
        // Span 2x2 into 180x90 usable pixels: 45 px per unit.
        assert_eq!(view.scale, 45.0);
        assert!(close(view.to_screen(0.0, 0.0), (100.0, 50.0)));
        assert!(close(view.to_screen(1.0, 1.0), (145.0, 5.0)));
        assert!(close(view.to_map(145.0, 5.0), (1.0, 1.0)));
        let (xs, ys) = view.ranges();
        assert!((xs.start + 100.0 / 45.0).abs() < 1e-9 && (ys.end - 50.0 / 45.0).abs() < 1e-9);
    }

    #[test]
    fn zooming_keeps_the_point_under_the_pointer_and_is_bounded() {
        let mut view = MapView::fit(&square(), (200.0, 100.0));
        let under = view.to_map(145.0, 5.0);
        view.zoom_at(145.0, 5.0, 2.0);
        assert_eq!(view.scale, 90.0);
        assert!(close(view.to_map(145.0, 5.0), under));
        view.zoom_at(0.0, 0.0, 1e6);
        assert_eq!(view.scale, 45.0 * MAX_ZOOM);
        view.zoom_at(0.0, 0.0, 1e-9);
        assert_eq!(view.scale, 45.0 * MIN_ZOOM);
    }

    #[test]
    fn panning_moves_the_map_with_the_pointer() {
        let mut view = MapView::fit(&square(), (200.0, 100.0));
        let before = view.to_screen(1.0, 1.0);
        view.pan_by(10.0, -20.0);
        assert!(close(
            view.to_screen(1.0, 1.0),
            (before.0 + 10.0, before.1 - 20.0)
        ));
    }

    #[test]
    fn the_nearest_point_within_the_radius_is_found() {
        let points = square();
        let view = MapView::fit(&points, (200.0, 100.0));
        assert_eq!(view.nearest(&points, 143.0, 8.0, 6.0), Some(1));
        assert_eq!(view.nearest(&points, 100.0, 50.0, 6.0), None);
    }

    #[test]
    fn one_point_or_none_still_gets_a_view() {
        let one = MapView::fit(&[point(3.0, 3.0, "w_a")], (100.0, 100.0));
        assert!(close(one.to_screen(3.0, 3.0), (50.0, 50.0)));
        assert!(one.scale.is_finite() && one.scale > 0.0);
        assert!(MapView::fit(&[], (100.0, 100.0)).scale.is_finite());
    }

    #[test]
    fn colours_are_stable_and_new_whale_is_grey() {
        assert_eq!(colour("w_abc"), colour("w_abc"));
        assert_ne!(colour("w_abc"), colour("w_abd"));
        assert_eq!(colour(NEW_WHALE), (150, 150, 150));
        // Pure hues at full saturation and half lightness.
        assert_eq!(hsl_to_rgb(0.0, 1.0, 0.5), (255, 0, 0));
        assert_eq!(hsl_to_rgb(120.0, 1.0, 0.5), (0, 255, 0));
        assert_eq!(hsl_to_rgb(240.0, 1.0, 0.5), (0, 0, 255));
    }

    #[test]
    fn a_query_sits_nearest_its_closest_candidate() {
        let points = square();
        let candidate = |label: &str, distance| CandidateMatch {
            label: label.into(),
            distance,
            confidence: 0.5,
            photos: vec![],
        };
        let query = IdentifyResponse {
            upload_id: 1,
            run_id: "run-0001".into(),
            batch: None,
            candidates: vec![
                candidate("w_a", 1.0),
                candidate(NEW_WHALE, 2.0),
                candidate("w_b", 3.0),
                candidate("w_gone", 1.0),
            ],
            probably_new: false,
        };
        let layout = query_layout(&points, &query).unwrap();
        // Centres (-1, -1) and (1, 0), weights 1 and 1/3.
        assert!(close(layout.query, (-0.5, -0.75)));
        assert_eq!(
            layout.candidates,
            vec![("w_a".into(), (-1.0, -1.0)), ("w_b".into(), (1.0, 0.0))]
        );
        assert_eq!(centre_of(&points, "w_none"), None);
    }
}
