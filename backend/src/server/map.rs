//! The map of the gallery: every gallery embedding projected onto its first
//! two principal components. The projection is fitted once per serving run
//! and cached; photos confirmed later are projected with the same fit, so
//! the map keeps its axes while it grows.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use flukeid_shared::api::{MapPoint, MapResponse};
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_reduction::Pca;
use ndarray::Array2;

use super::error::AppError;
use super::images::ImageRef;
use super::state::{blocking, AppState};
use super::worker::GalleryRows;

/// The cached projection of the serving run's gallery.
#[derive(Default)]
pub struct MapCache {
    cached: tokio::sync::Mutex<Option<Projection>>,
}

/// A fitted projection and the points projected so far.
struct Projection {
    run_id: String,
    /// `None` for a gallery too small to fit: its points sit at the origin.
    pca: Option<Pca<f64>>,
    points: Vec<MapPoint>,
}

/// `GET /api/map`: the serving gallery in two dimensions.
///
/// # Errors
///
/// 503 while no model serves.
pub async fn get_map(State(state): State<Arc<AppState>>) -> Result<Json<MapResponse>, AppError> {
    let serving = state.worker.require_serving()?;
    let mut cached = state.map.cached.lock().await;
    if cached.as_ref().is_some_and(|p| p.run_id != serving.run_id) {
        *cached = None;
    }
    let n_projected = cached.as_ref().map_or(0, |p| p.points.len());
    if cached.is_none() || n_projected < serving.gallery_size {
        let rows = state.worker.rows(n_projected).await.ok_or_else(changed)?;
        if rows.run_id != serving.run_id {
            return Err(changed());
        }
        let previous = cached.take();
        *cached = Some(blocking(move || extend(previous, rows)).await?);
    }
    let projection = cached.as_ref().expect("the projection was just made");
    Ok(Json(MapResponse {
        run_id: projection.run_id.clone(),
        points: projection.points.clone(),
    }))
}

fn changed() -> AppError {
    AppError::Unavailable("the serving run changed while the map was drawn; ask again".into())
}

/// Projects `rows` with the previous fit, or fits a new projection on them.
fn extend(previous: Option<Projection>, rows: GalleryRows) -> Result<Projection, AppError> {
    let values = rows.rows.mapv(f64::from);
    let mut projection = match previous {
        Some(previous) => previous,
        None => Projection {
            run_id: rows.run_id.clone(),
            pca: fit(&values)?,
            points: Vec::new(),
        },
    };
    let xy = project(projection.pca.as_ref(), &values);
    let points = rows.labels.into_iter().zip(rows.images).zip(xy.rows());
    projection
        .points
        .extend(points.map(|((label, image), xy)| MapPoint {
            x: xy[0] as f32,
            y: xy[1] as f32,
            label,
            image: ImageRef::url(&image),
        }));
    Ok(projection)
}

/// The first two principal components, when there are at least three
/// embeddings of at least two dimensions to fit them on.
fn fit(values: &Array2<f64>) -> Result<Option<Pca<f64>>, AppError> {
    if values.nrows() < 3 || values.ncols() < 2 {
        return Ok(None);
    }
    let dataset = DatasetBase::from(values.clone());
    Pca::params(2)
        .fit(&dataset)
        .map(Some)
        .map_err(AppError::internal)
}

/// Coordinates on the first two components; a gallery with less spread
/// than that (all points on a line, or all alike) gets zeros for the
/// components the fit could not find.
///
/// # Shapes
///
/// `[n, E]` to `[n, 2]`.
fn project(pca: Option<&Pca<f64>>, values: &Array2<f64>) -> Array2<f64> {
    let mut xy = Array2::zeros((values.nrows(), 2));
    if let Some(pca) = pca {
        let found = pca.predict(values);
        let n_found = found.ncols().min(2);
        xy.slice_mut(ndarray::s![.., ..n_found])
            .assign(&found.slice(ndarray::s![.., ..n_found]));
    }
    xy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::images::ImageKind;

    fn rows(run_id: &str, values: Vec<f32>, n: usize) -> GalleryRows {
        let dim = values.len() / n;
        GalleryRows {
            run_id: run_id.into(),
            from: 0,
            rows: Array2::from_shape_vec((n, dim), values).unwrap(),
            labels: (0..n).map(|i| format!("w_{i}")).collect(),
            images: (0..n)
                .map(|i| ImageRef::new(ImageKind::Train, format!("{i}.jpg")))
                .collect(),
        }
    }

    #[test]
    fn points_on_a_line_keep_their_spacing_along_the_first_axis() {
        // Points along (1, 1, 0) at steps of sqrt(2): the first component is
        // that direction, so projected x values differ by sqrt(2) and y is 0.
        let values = vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 0.0, 3.0, 3.0, 0.0];
        let projection = extend(None, rows("run-0001", values, 4)).unwrap();
        let xs: Vec<f32> = projection.points.iter().map(|p| p.x).collect();
        for pair in xs.windows(2) {
            assert!(
                ((pair[1] - pair[0]).abs() - 2f32.sqrt()).abs() < 1e-3,
                "{xs:?}"
            );
        }
        assert!(projection.points.iter().all(|p| p.y.abs() < 1e-3));
    }

    #[test]
    fn later_points_reuse_the_fit() {
        let values = vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 0.0, 3.0, 3.0, 0.0];
        let first = extend(None, rows("run-0001", values, 4)).unwrap();
        let x_of_one = first.points[1].x;
        let grown = extend(Some(first), rows("run-0001", vec![1.0, 1.0, 0.0], 1)).unwrap();
        assert_eq!(grown.points.len(), 5);
        assert!((grown.points[4].x - x_of_one).abs() < 1e-5);
    }

    #[test]
    fn a_tiny_gallery_sits_at_the_origin() {
        let projection = extend(None, rows("run-0001", vec![1.0, 2.0], 1)).unwrap();
        assert_eq!((projection.points[0].x, projection.points[0].y), (0.0, 0.0));
    }
}
