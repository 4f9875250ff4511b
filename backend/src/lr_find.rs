//! The learning-rate finder: train with an exponentially growing rate until
//! the loss diverges, and suggest a rate a decade below the minimum of the
//! smoothed loss, where it still falls steeply.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::run_dir::{write_atomic, RunFileError};
use crate::train::Trainer;

/// The sweep's range and length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrFindConfig {
    pub start_lr: f64,
    pub end_lr: f64,
    pub n_steps: usize,
    /// Stop once the smoothed loss exceeds this multiple of its minimum.
    pub divergence: f64,
}

/// The recorded curve and the suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFindResult {
    /// `(lr, smoothed loss)` per step.
    pub points: Vec<(f64, f64)>,
    pub suggested_lr: f64,
    pub csv: PathBuf,
    pub plot: PathBuf,
}

/// Why the finder could not finish.
#[derive(Debug, thiserror::Error)]
pub enum LrFindError {
    #[error(transparent)]
    Write(#[from] RunFileError),
    #[error("cannot draw {path}: {message}")]
    Plot { path: PathBuf, message: String },
    #[error("the loss was never finite; check the data and the weights")]
    NoPoints,
}

impl Default for LrFindConfig {
    fn default() -> Self {
        Self {
            start_lr: 1e-7,
            end_lr: 1.0,
            n_steps: 100,
            divergence: 4.0,
        }
    }
}

/// Sweeps the head's learning rate with the backbone frozen, as the
/// reference does before its first phase, and writes `lr_find.csv` and
/// `lr_find.png` into `out`. The trainer's weights are changed by the sweep:
/// use a trainer made for the purpose.
///
/// # Errors
///
/// [`LrFindError`] when the outputs cannot be written or no loss was finite.
pub fn find_lr(
    trainer: &mut Trainer,
    config: &LrFindConfig,
    out: &Path,
    on_point: &mut dyn FnMut(f64, f64),
    stop: &AtomicBool,
) -> Result<LrFindResult, LrFindError> {
    trainer.set_backbone_frozen(true);
    let growth = (config.end_lr / config.start_lr).powf(1.0 / config.n_steps.max(1) as f64);
    let mut points = Vec::new();
    let (mut smoothed, mut best) = (0.0, f64::INFINITY);
    let mut pass = 0;

    'sweep: while points.len() < config.n_steps {
        for batch in trainer.batches(pass) {
            let lr = config.start_lr * growth.powi(points.len() as i32);
            let (loss, _) = trainer.train_step(&batch.images, &batch.labels, [lr; 3]);
            if !loss.is_finite() {
                break 'sweep;
            }
            // Bias-corrected exponential average, as fast.ai smooths it.
            let n = points.len() as i32 + 1;
            smoothed = 0.98 * smoothed + 0.02 * loss;
            let value = smoothed / (1.0 - 0.98f64.powi(n));
            points.push((lr, value));
            on_point(lr, value);
            best = best.min(value);
            let done = points.len() >= config.n_steps || stop.load(Ordering::Relaxed);
            if value > config.divergence * best || done {
                break 'sweep;
            }
        }
        pass += 1;
    }
    if points.is_empty() {
        return Err(LrFindError::NoPoints);
    }

    let suggested_lr = suggest(&points);
    std::fs::create_dir_all(out).map_err(|source| RunFileError::Write {
        path: out.into(),
        source,
    })?;
    let csv = out.join("lr_find.csv");
    write_curve_csv(&csv, &points)?;
    let plot = out.join("lr_find.png");
    draw_curve(&plot, &points, suggested_lr)?;
    Ok(LrFindResult {
        points,
        suggested_lr,
        csv,
        plot,
    })
}

/// A tenth of the rate at the smoothed loss's minimum.
pub fn suggest(points: &[(f64, f64)]) -> f64 {
    let best = points
        .iter()
        .fold(points[0], |best, &p| if p.1 < best.1 { p } else { best });
    best.0 / 10.0
}

fn write_curve_csv(path: &Path, points: &[(f64, f64)]) -> Result<(), RunFileError> {
    let mut text = String::from("lr,loss\n");
    for (lr, loss) in points {
        text.push_str(&format!("{lr:e},{loss}\n"));
    }
    write_atomic(path, text.as_bytes())
}

fn draw_curve(path: &Path, points: &[(f64, f64)], suggested: f64) -> Result<(), LrFindError> {
    let fail = |e: &dyn std::fmt::Display| LrFindError::Plot {
        path: path.into(),
        message: e.to_string(),
    };
    let (lo, hi) = (
        points[0].0,
        points[points.len() - 1].0.max(points[0].0 * 1.01),
    );
    let max_loss = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let min_loss = points.iter().map(|p| p.1).fold(f64::MAX, f64::min);

    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("learning-rate finder", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale(), min_loss * 0.95..max_loss * 1.05)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("learning rate")
        .y_desc("smoothed loss")
        .x_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(points.iter().copied(), &BLUE))
        .map_err(|e| fail(&e))?;
    let marker = [(suggested, min_loss * 0.95), (suggested, max_loss * 1.05)];
    chart
        .draw_series(LineSeries::new(marker, RED.stroke_width(2)))
        .map_err(|e| fail(&e))?
        .label(format!("suggested {suggested:.1e}"));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_a_decade_below_the_minimum() {
        let points = [(1e-5, 3.0), (1e-4, 2.0), (1e-3, 1.0), (1e-2, 5.0)];
        assert!((suggest(&points) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn draws_and_writes_the_curve() {
        let dir = tempfile::tempdir().unwrap();
        let points: Vec<(f64, f64)> = (0..50)
            .map(|i| (1e-6 * 1.3f64.powi(i), 2.0 - (i as f64 / 30.0).sin()))
            .collect();
        let plot = dir.path().join("lr.png");
        draw_curve(&plot, &points, 1e-4).unwrap();
        assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
        let csv = dir.path().join("lr.csv");
        write_curve_csv(&csv, &points).unwrap();
        let text = std::fs::read_to_string(csv).unwrap();
        assert_eq!(text.lines().count(), 51);
        assert!(text.starts_with("lr,loss\n"));
    }
}
