//! Drawing a box around a fluke with a pointer (mouse, pen or finger):
//! drag on empty space to create one, drag inside it to move it, drag an
//! edge or a corner to resize it. Arrow keys nudge it.
//!
//! Everything is in image pixels: the page converts pointer positions with
//! [`ScreenMap`] before calling the editor, so the box is the same whatever
//! size the photo is shown at. The box never leaves the image.

use flukeid_shared::crop::BoundingBox;

/// A point in image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// Where a pointer is relative to the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Outside,
    Inside,
    Edge(Handle),
}

/// An edge or a corner of the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    North,
    South,
    East,
    West,
    NorthEast,
    NorthWest,
    SouthEast,
    SouthWest,
}

/// The box being edited on one image.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxEditor {
    width: f64,
    height: f64,
    bbox: Option<BoundingBox>,
    drag: Option<Drag>,
}

/// Converts positions on the shown photo (CSS pixels from its top-left
/// corner) to image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScreenMap {
    /// Image pixels per CSS pixel, across and down.
    pub scale_x: f64,
    pub scale_y: f64,
}

/// A drag in progress: what it does, and the box and pointer it started
/// from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Drag {
    mode: Mode,
    start: Point,
    before: Option<BoundingBox>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Create,
    Move,
    Resize(Handle),
}

/// Boxes smaller than this (in image pixels, either side) are taken for a
/// click, not a box.
pub const MIN_SIDE: f64 = 4.0;

impl Handle {
    /// The CSS cursor that shows which way the handle drags.
    pub fn cursor(self) -> &'static str {
        match self {
            Handle::North | Handle::South => "ns-resize",
            Handle::East | Handle::West => "ew-resize",
            Handle::NorthEast | Handle::SouthWest => "nesw-resize",
            Handle::NorthWest | Handle::SouthEast => "nwse-resize",
        }
    }
}

impl ScreenMap {
    /// The map for an image of `image` pixels shown at `shown` CSS pixels.
    pub fn new(image: (u32, u32), shown: (f64, f64)) -> Self {
        let scale = |pixels: u32, css: f64| if css > 0.0 { pixels as f64 / css } else { 1.0 };
        Self {
            scale_x: scale(image.0, shown.0),
            scale_y: scale(image.1, shown.1),
        }
    }

    /// The image point under `(x, y)` CSS pixels from the photo's corner.
    pub fn to_image(&self, x: f64, y: f64) -> Point {
        Point {
            x: x * self.scale_x,
            y: y * self.scale_y,
        }
    }

    /// A distance of `css` CSS pixels in image pixels (the larger scale, so
    /// a handle is never harder to hit than it looks).
    pub fn tolerance(&self, css: f64) -> f64 {
        css * self.scale_x.max(self.scale_y)
    }
}

impl BoxEditor {
    /// An editor on a `width x height` image, with no box yet.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width: width as f64,
            height: height as f64,
            bbox: None,
            drag: None,
        }
    }

    pub fn bbox(&self) -> Option<BoundingBox> {
        self.bbox
    }

    pub fn is_dragging(&self) -> bool {
        self.drag.is_some()
    }

    /// Replaces the box, clamped into the image.
    pub fn set_box(&mut self, bbox: Option<BoundingBox>) {
        self.bbox = bbox.map(|b| self.clamp_box(b));
        self.drag = None;
    }

    /// What a pointer at `p` would grab, with handles `tolerance` image
    /// pixels thick on either side of the edges.
    pub fn hit(&self, p: Point, tolerance: f64) -> Hit {
        let Some(b) = self.bbox else {
            return Hit::Outside;
        };
        let within = |v: f64, lo: f64, hi: f64| v >= lo - tolerance && v <= hi + tolerance;
        if !within(p.x, b.x0, b.x1) || !within(p.y, b.y0, b.y1) {
            return Hit::Outside;
        }
        let near = |v: f64, edge: f64| (v - edge).abs() <= tolerance;
        let (west, east) = (near(p.x, b.x0), near(p.x, b.x1));
        let (north, south) = (near(p.y, b.y0), near(p.y, b.y1));
        let handle = match (north, south, west, east) {
            (true, _, true, _) => Handle::NorthWest,
            (true, _, _, true) => Handle::NorthEast,
            (_, true, true, _) => Handle::SouthWest,
            (_, true, _, true) => Handle::SouthEast,
            (true, ..) => Handle::North,
            (_, true, ..) => Handle::South,
            (.., true, _) => Handle::West,
            (.., true) => Handle::East,
            _ => return Hit::Inside,
        };
        Hit::Edge(handle)
    }

    /// Starts a drag at `p`: resizing on a handle, moving inside the box,
    /// creating a new box elsewhere.
    pub fn pointer_down(&mut self, p: Point, tolerance: f64) {
        let p = self.clamp_point(p);
        let mode = match self.hit(p, tolerance) {
            Hit::Edge(handle) => Mode::Resize(handle),
            Hit::Inside => Mode::Move,
            Hit::Outside => Mode::Create,
        };
        self.drag = Some(Drag {
            mode,
            start: p,
            before: self.bbox,
        });
    }

    /// Follows the pointer during a drag; `false` when nothing is dragged.
    pub fn pointer_move(&mut self, p: Point) -> bool {
        let Some(drag) = self.drag else { return false };
        let p = self.clamp_point(p);
        self.bbox = match (drag.mode, drag.before) {
            (Mode::Create, _) => Some(spanning(drag.start, p)),
            (Mode::Move, Some(before)) => {
                Some(self.moved(before, p.x - drag.start.x, p.y - drag.start.y))
            }
            (Mode::Resize(handle), Some(before)) => Some(resized(before, handle, p)),
            (_, None) => None,
        };
        true
    }

    /// Ends a drag at `p`. A box created smaller than [`MIN_SIDE`] was a
    /// click: the box from before the drag comes back.
    pub fn pointer_up(&mut self, p: Point) {
        self.pointer_move(p);
        let Some(drag) = self.drag.take() else { return };
        let too_small = self
            .bbox
            .is_some_and(|b| b.x1 - b.x0 < MIN_SIDE || b.y1 - b.y0 < MIN_SIDE);
        if too_small {
            self.bbox = drag.before;
        }
    }

    /// Abandons a drag (the pointer was cancelled): the box is as before.
    pub fn cancel(&mut self) {
        if let Some(drag) = self.drag.take() {
            self.bbox = drag.before;
        }
    }

    /// Moves the box by `(dx, dy)` image pixels, or grows its lower-right
    /// corner by that much when `resize`, for keyboard editing.
    pub fn nudge(&mut self, dx: f64, dy: f64, resize: bool) {
        let Some(b) = self.bbox else { return };
        self.bbox = Some(if resize {
            let corner = self.clamp_point(Point {
                x: b.x1 + dx,
                y: b.y1 + dy,
            });
            let x1 = corner.x.max(b.x0 + MIN_SIDE).min(self.width);
            let y1 = corner.y.max(b.y0 + MIN_SIDE).min(self.height);
            BoundingBox::new(b.x0, b.y0, x1, y1)
        } else {
            self.moved(b, dx, dy)
        });
    }

    /// `b` shifted by `(dx, dy)` but kept whole inside the image.
    fn moved(&self, b: BoundingBox, dx: f64, dy: f64) -> BoundingBox {
        let dx = dx.clamp(-b.x0, self.width - b.x1);
        let dy = dy.clamp(-b.y0, self.height - b.y1);
        BoundingBox::new(b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy)
    }

    fn clamp_point(&self, p: Point) -> Point {
        Point {
            x: p.x.clamp(0.0, self.width),
            y: p.y.clamp(0.0, self.height),
        }
    }

    fn clamp_box(&self, b: BoundingBox) -> BoundingBox {
        let lo = self.clamp_point(Point { x: b.x0, y: b.y0 });
        let hi = self.clamp_point(Point { x: b.x1, y: b.y1 });
        spanning(lo, hi)
    }
}

/// The box with corners `a` and `b`, in either order.
fn spanning(a: Point, b: Point) -> BoundingBox {
    BoundingBox::new(a.x.min(b.x), a.y.min(b.y), a.x.max(b.x), a.y.max(b.y))
}

/// `b` with the edges of `handle` moved to `p`; dragging an edge past the
/// opposite one flips the box rather than inverting it.
fn resized(b: BoundingBox, handle: Handle, p: Point) -> BoundingBox {
    let (mut x0, mut y0, mut x1, mut y1) = (b.x0, b.y0, b.x1, b.y1);
    match handle {
        Handle::North => y0 = p.y,
        Handle::South => y1 = p.y,
        Handle::West => x0 = p.x,
        Handle::East => x1 = p.x,
        Handle::NorthWest => (x0, y0) = (p.x, p.y),
        Handle::NorthEast => (x1, y0) = (p.x, p.y),
        Handle::SouthWest => (x0, y1) = (p.x, p.y),
        Handle::SouthEast => (x1, y1) = (p.x, p.y),
    }
    spanning(Point { x: x0, y: y0 }, Point { x: x1, y: y1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    fn drag(editor: &mut BoxEditor, from: Point, to: Point) {
        editor.pointer_down(from, 5.0);
        editor.pointer_move(Point {
            x: (from.x + to.x) / 2.0,
            y: (from.y + to.y) / 2.0,
        });
        editor.pointer_up(to);
    }

    fn with_box(b: (f64, f64, f64, f64)) -> BoxEditor {
        let mut editor = BoxEditor::new(400, 300);
        editor.set_box(Some(BoundingBox::new(b.0, b.1, b.2, b.3)));
        editor
    }

    #[test]
    fn dragging_on_empty_space_creates_a_box_in_either_direction() {
        let mut editor = BoxEditor::new(400, 300);
        drag(&mut editor, p(300.0, 200.0), p(100.0, 50.0));
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(100.0, 50.0, 300.0, 200.0))
        );
        assert!(!editor.is_dragging());
    }

    #[test]
    fn a_box_dragged_past_the_image_is_clamped_to_it() {
        let mut editor = BoxEditor::new(400, 300);
        drag(&mut editor, p(350.0, -20.0), p(480.0, 100.0));
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(350.0, 0.0, 400.0, 100.0))
        );
    }

    #[test]
    fn a_click_keeps_the_box_there_was() {
        let mut editor = with_box((10.0, 10.0, 100.0, 60.0));
        drag(&mut editor, p(300.0, 250.0), p(302.0, 251.0));
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(10.0, 10.0, 100.0, 60.0))
        );
        let mut empty = BoxEditor::new(400, 300);
        drag(&mut empty, p(30.0, 30.0), p(31.0, 30.0));
        assert_eq!(empty.bbox(), None);
    }

    #[test]
    fn dragging_inside_moves_the_box_and_stops_at_the_border() {
        let mut editor = with_box((100.0, 100.0, 200.0, 150.0));
        drag(&mut editor, p(150.0, 120.0), p(170.0, 100.0));
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(120.0, 80.0, 220.0, 130.0))
        );
        drag(&mut editor, p(150.0, 120.0), p(1000.0, 1000.0));
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(300.0, 250.0, 400.0, 300.0))
        );
    }

    #[test]
    fn edges_and_corners_resize() {
        let mut editor = with_box((100.0, 100.0, 200.0, 150.0));
        drag(&mut editor, p(200.0, 125.0), p(260.0, 10.0));
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(100.0, 100.0, 260.0, 150.0))
        );
        drag(&mut editor, p(98.0, 152.0), p(50.0, 200.0));
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(50.0, 100.0, 260.0, 200.0))
        );
    }

    #[test]
    fn an_edge_dragged_past_the_opposite_one_flips_the_box() {
        let mut editor = with_box((100.0, 100.0, 200.0, 150.0));
        drag(&mut editor, p(150.0, 100.0), p(150.0, 190.0));
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(100.0, 150.0, 200.0, 190.0))
        );
    }

    #[test]
    fn hits_find_corners_before_edges_and_respect_tolerance() {
        let editor = with_box((100.0, 100.0, 200.0, 150.0));
        assert_eq!(
            editor.hit(p(103.0, 97.0), 5.0),
            Hit::Edge(Handle::NorthWest)
        );
        assert_eq!(editor.hit(p(150.0, 153.0), 5.0), Hit::Edge(Handle::South));
        assert_eq!(editor.hit(p(196.0, 125.0), 5.0), Hit::Edge(Handle::East));
        assert_eq!(editor.hit(p(150.0, 125.0), 5.0), Hit::Inside);
        assert_eq!(editor.hit(p(150.0, 157.0), 5.0), Hit::Outside);
        assert_eq!(editor.hit(p(150.0, 157.0), 8.0), Hit::Edge(Handle::South));
        assert_eq!(Handle::NorthWest.cursor(), "nwse-resize");
    }

    #[test]
    fn a_cancelled_drag_restores_the_box() {
        let mut editor = with_box((100.0, 100.0, 200.0, 150.0));
        editor.pointer_down(p(150.0, 120.0), 5.0);
        assert!(editor.pointer_move(p(10.0, 10.0)));
        editor.cancel();
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(100.0, 100.0, 200.0, 150.0))
        );
        assert!(!editor.pointer_move(p(0.0, 0.0)));
    }

    #[test]
    fn keys_nudge_and_grow_within_the_image() {
        let mut editor = with_box((390.0, 100.0, 395.0, 150.0));
        editor.nudge(10.0, -5.0, false);
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(395.0, 95.0, 400.0, 145.0))
        );
        editor.nudge(-50.0, 0.0, true);
        assert_eq!(
            editor.bbox(),
            Some(BoundingBox::new(395.0, 95.0, 399.0, 145.0))
        );
    }

    #[test]
    fn screen_positions_scale_to_image_pixels() {
        let map = ScreenMap::new((4000, 3000), (800.0, 600.0));
        assert_eq!(map.to_image(100.0, 50.0), p(500.0, 250.0));
        assert_eq!(map.tolerance(12.0), 60.0);
        let unshown = ScreenMap::new((10, 10), (0.0, 0.0));
        assert_eq!(unshown.to_image(3.0, 4.0), p(3.0, 4.0));
    }
}
