//! What a chart shows, as plain data: its lines, an optional marked value
//! (the suggested learning rate, the chosen `dcut`), the axes' ranges, and
//! a sentence for screen readers. Drawing is [`super::charts`]'s job
//! (plotters on a canvas); deciding is done here, where it can be tested.

/// Colours of a chart's lines, in order (the "tab10" palette's first four).
pub const COLOURS: [(u8, u8, u8); 4] =
    [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)];

/// How tick labels of the y axis are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticks {
    Plain,
    Scientific,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour: (u8, u8, u8),
}

/// A value marked by a vertical line, with its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub caption: String,
}

/// Everything needed to draw one chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    pub title: String,
    pub x_label: String,
    pub lines: Vec<Line>,
    pub marker: Option<Marker>,
    /// A logarithmic x axis (learning rates).
    pub log_x: bool,
    pub y_ticks: Ticks,
}

impl ChartSpec {
    /// A chart of `lines`, named and coloured in order.
    pub fn new(title: &str, x_label: &str, lines: Vec<(&str, Vec<(f64, f64)>)>) -> Self {
        let lines = lines
            .into_iter()
            .zip(COLOURS.iter().cycle())
            .map(|((name, points), colour)| Line {
                name: name.into(),
                points,
                colour: *colour,
            })
            .collect();
        Self {
            title: title.into(),
            x_label: x_label.into(),
            lines,
            marker: None,
            log_x: false,
            y_ticks: Ticks::Plain,
        }
    }

    pub fn with_marker(mut self, x: f64, caption: String) -> Self {
        self.marker = Some(Marker { x, caption });
        self
    }

    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    pub fn scientific(mut self) -> Self {
        self.y_ticks = Ticks::Scientific;
        self
    }

    /// Whether there is anything to draw.
    pub fn is_empty(&self) -> bool {
        self.drawable().next().is_none()
    }

    /// The x and y ranges that hold every point and the marker, padded so
    /// no line runs along the frame; `None` when there is nothing to draw.
    /// A log axis only counts positive x values.
    pub fn ranges(&self) -> Option<((f64, f64), (f64, f64))> {
        let mut xs: Vec<f64> = self.drawable().map(|(x, _)| x).collect();
        let ys: Vec<f64> = self.drawable().map(|(_, y)| y).collect();
        xs.extend(
            self.marker
                .as_ref()
                .map(|m| m.x)
                .filter(|x| x.is_finite() && (!self.log_x || *x > 0.0)),
        );
        let x = span(&xs)?;
        let y = span(&ys)?;
        let x = if self.log_x {
            widen_log(x)
        } else {
            widen(x, 0.0)
        };
        Some((x, widen(y, 0.05)))
    }

    /// Points drawn, over all lines.
    pub fn n_points(&self) -> usize {
        self.lines.iter().map(|l| l.points.len()).sum()
    }

    /// A sentence describing the chart's latest values, for screen readers.
    pub fn summary(&self) -> String {
        let latest: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| {
                l.points
                    .last()
                    .map(|(_, y)| format!("{} {}", l.name, short(*y)))
            })
            .collect();
        match latest.is_empty() {
            true => format!("{}: no data yet.", self.title),
            false => format!("{}; latest: {}.", self.title, latest.join(", ")),
        }
    }

    /// Finite points (positive x on a log axis).
    fn drawable(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let log_x = self.log_x;
        self.lines
            .iter()
            .flat_map(|l| l.points.iter().copied())
            .filter(move |(x, y)| x.is_finite() && y.is_finite() && (!log_x || *x > 0.0))
    }
}

fn span(values: &[f64]) -> Option<(f64, f64)> {
    let lo = values.iter().copied().reduce(f64::min)?;
    let hi = values.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// Pads `(lo, hi)` by `share` of its length; a single value gets a range
/// around it.
fn widen((lo, hi): (f64, f64), share: f64) -> (f64, f64) {
    if hi - lo < 1e-12 {
        let half = (lo.abs() * 0.1).max(0.5);
        return (lo - half, hi + half);
    }
    let pad = (hi - lo) * share;
    (lo - pad, hi + pad)
}

/// A log range; a single value gets a decade around it.
fn widen_log((lo, hi): (f64, f64)) -> (f64, f64) {
    if hi / lo < 1.0 + 1e-9 {
        return (lo / 10f64.sqrt(), hi * 10f64.sqrt());
    }
    (lo, hi)
}

fn short(value: f64) -> String {
    if value != 0.0 && (value.abs() < 1e-2 || value.abs() >= 1e4) {
        format!("{value:.2e}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_every_line_and_pad_the_values() {
        let spec = ChartSpec::new(
            "Loss",
            "step",
            vec![
                ("train", vec![(1.0, 0.5), (3.0, 1.5)]),
                ("val", vec![(2.0, 0.0), (2.5, f64::NAN)]),
            ],
        );
        let ((x0, x1), (y0, y1)) = spec.ranges().unwrap();
        assert_eq!((x0, x1), (1.0, 3.0));
        assert!(
            (y0 + 0.075).abs() < 1e-12 && (y1 - 1.575).abs() < 1e-12,
            "{y0} {y1}"
        );
        assert_eq!(spec.lines[1].colour, COLOURS[1]);
    }

    #[test]
    fn the_marker_widens_the_x_range() {
        let spec = ChartSpec::new(
            "MAP@5",
            "dcut",
            vec![("MAP@5", vec![(1.0, 0.5), (2.0, 0.6)])],
        )
        .with_marker(4.0, "chosen".into());
        assert_eq!(spec.ranges().unwrap().0, (1.0, 4.0));
    }

    #[test]
    fn log_axes_ignore_values_they_cannot_show() {
        let spec = ChartSpec::new(
            "Sweep",
            "lr",
            vec![("loss", vec![(0.0, 9.0), (1e-5, 1.0), (1e-1, 2.0)])],
        )
        .log_x();
        let ((x0, x1), (y0, y1)) = spec.ranges().unwrap();
        assert_eq!((x0, x1), (1e-5, 1e-1));
        assert!((y0 - 0.95).abs() < 1e-12 && (y1 - 2.05).abs() < 1e-12);
        let single = ChartSpec::new("Sweep", "lr", vec![("loss", vec![(1e-3, 1.0)])]).log_x();
        let (x0, x1) = single.ranges().unwrap().0;
        assert!((x1 / x0 - 10.0).abs() < 1e-9);
    }

    #[test]
    fn empty_charts_say_so() {
        let spec = ChartSpec::new("Loss", "step", vec![("train", vec![])]);
        assert!(spec.is_empty());
        assert_eq!(spec.ranges(), None);
        assert_eq!(spec.summary(), "Loss: no data yet.");
        let flat = ChartSpec::new(
            "Rate",
            "step",
            vec![("images/s", vec![(1.0, 40.0), (2.0, 40.0)])],
        );
        assert_eq!(flat.ranges().unwrap().1, (36.0, 44.0));
        assert_eq!(flat.summary(), "Rate; latest: images/s 40.000.");
        let lr = ChartSpec::new("lr", "step", vec![("lr", vec![(1.0, 5e-4)])]);
        assert_eq!(lr.summary(), "lr; latest: lr 5.00e-4.");
    }
}
