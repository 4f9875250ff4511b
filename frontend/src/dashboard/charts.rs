//! Drawing a [`ChartSpec`] with plotters on a canvas: axes with ticks and
//! labels, the lines with a legend, and the marker as a dashed vertical
//! line. The chart takes the canvas's width on the page.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

use super::plot::{ChartSpec, Ticks};

/// Height of a chart in canvas pixels.
const HEIGHT: u32 = 240;

/// Narrowest chart drawn, for canvases not laid out yet.
const MIN_WIDTH: u32 = 280;

const MARKER_COLOUR: RGBColor = RGBColor(200, 0, 80);

/// Lines with at most this many points get a dot on each.
const MAX_DOTTED: usize = 60;

/// Draws `spec` on `canvas`, resizing it to its width on the page.
pub fn draw(canvas: &HtmlCanvasElement, spec: &ChartSpec) {
    let width = (canvas.client_width().max(0) as u32).max(MIN_WIDTH);
    if canvas.width() != width || canvas.height() != HEIGHT {
        canvas.set_width(width);
        canvas.set_height(HEIGHT);
    }
    let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
        return;
    };
    let root = backend.into_drawing_area();
    let _ = root.fill(&WHITE);
    let drawn = match spec.ranges() {
        None => draw_empty(&root, spec),
        Some(((x0, x1), y)) if spec.log_x => draw_lines(&root, spec, (x0..x1).log_scale(), y),
        Some(((x0, x1), y)) => draw_lines(&root, spec, x0..x1, y),
    };
    if let Err(error) = drawn {
        leptos::logging::warn!("a chart could not be drawn: {error}");
    }
    let _ = root.present();
}

type Area = DrawingArea<CanvasBackend, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_empty(root: &Area, spec: &ChartSpec) -> DrawResult {
    let (w, h) = root.dim_in_pixel();
    let title = ("sans-serif", 16).into_font();
    root.draw(&Text::new(spec.title.clone(), (10, 8), title))?;
    let style = ("sans-serif", 14)
        .into_font()
        .color(&RGBColor(110, 110, 110));
    root.draw(&Text::new(
        "no data yet",
        (w as i32 / 2 - 36, h as i32 / 2),
        style,
    ))?;
    Ok(())
}

fn draw_lines<X>(root: &Area, spec: &ChartSpec, x_range: X, (y0, y1): (f64, f64)) -> DrawResult
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&spec.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(58)
        .build_cartesian_2d(x_range, y0..y1)?;
    let scientific = |v: &f64| format!("{v:.0e}");
    let plain = |v: &f64| trim_number(*v);
    let y_format: &dyn Fn(&f64) -> String = match spec.y_ticks {
        Ticks::Scientific => &scientific,
        Ticks::Plain => &plain,
    };
    let x_format: &dyn Fn(&f64) -> String = if spec.log_x { &scientific } else { &plain };
    chart
        .configure_mesh()
        .x_desc(spec.x_label.as_str())
        .x_labels(6)
        .x_label_formatter(x_format)
        .y_labels(5)
        .y_label_formatter(y_format)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;

    for line in &spec.lines {
        let (r, g, b) = line.colour;
        let colour = RGBColor(r, g, b);
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        // A few points (epochs, a short sweep) are easier to read as dots
        // on the line, and one point is only a dot.
        if points.len() <= MAX_DOTTED {
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
        }
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(line.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
    }
    if let Some(marker) = &spec.marker {
        let dashes = (0..20).map(|i| {
            let (a, b) = (
                y0 + (y1 - y0) * (2 * i) as f64 / 40.0,
                y0 + (y1 - y0) * (2 * i + 1) as f64 / 40.0,
            );
            PathElement::new(
                vec![(marker.x, a), (marker.x, b)],
                MARKER_COLOUR.stroke_width(2),
            )
        });
        chart
            .draw_series(dashes)?
            .label(marker.caption.clone())
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], MARKER_COLOUR.stroke_width(2))
            });
    }
    if spec.lines.len() < 2 && spec.marker.is_none() {
        // The title names the only line.
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()?;
    Ok(())
}

/// A tick value without trailing zeros.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}
