//! Scoring embeddings the way the reference kernel does: each query's 16
//! nearest gallery neighbours, ranked into five labels with `new_whale` at
//! `dcut`, scored with MAP@5; and the sweep that calibrates `dcut`.

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::index::{GalleryIndex, IndexError, IndexKind, Neighbour};
use crate::metrics::{average_precision_at_5, new_whale_first_share};
use crate::predict::{rank_candidates, Candidate, N_NEIGHBOURS};

/// The reference kernel's `new_whale` distance.
pub const DEFAULT_DCUT: f32 = 3.75;

/// MAP@5 at one `dcut`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub dcut: f32,
    pub map5: f64,
    /// Share of queries whose first guess is `new_whale`.
    pub new_whale_first: f64,
}

/// A CPU embedding tensor as an ndarray matrix.
///
/// # Shapes
///
/// `[N, E]` to `N x E`.
pub fn to_array(embeddings: &Tensor) -> Array2<f32> {
    let size = embeddings.size();
    let flat = embeddings
        .to_device(Device::Cpu)
        .to_kind(tch::Kind::Float)
        .contiguous();
    let values = Vec::<f32>::try_from(flat.flatten(0, -1)).expect("float tensors convert");
    Array2::from_shape_vec((size[0] as usize, size[1] as usize), values)
        .expect("the shape matches the tensor")
}

/// The 16 nearest gallery entries of every query.
///
/// # Errors
///
/// [`IndexError`] for an empty gallery or mismatched dimensions.
pub fn nearest(
    gallery: Array2<f32>,
    queries: &Array2<f32>,
    device: Device,
) -> Result<Vec<Vec<Neighbour>>, IndexError> {
    let index = GalleryIndex::new(gallery, IndexKind::Auto, device)?;
    index.search(queries.view(), N_NEIGHBOURS)
}

/// Ranked candidates of every query at `dcut`.
pub fn rank_all(
    neighbours: &[Vec<Neighbour>],
    labels: &[String],
    dcut: f32,
) -> Vec<Vec<Candidate>> {
    neighbours
        .iter()
        .map(|n| rank_candidates(n, labels, dcut))
        .collect()
}

/// MAP@5 of the queries, whose true labels are `truths`, at `dcut`.
pub fn evaluate(
    neighbours: &[Vec<Neighbour>],
    gallery_labels: &[String],
    truths: &[String],
    dcut: f32,
) -> Evaluation {
    let predictions: Vec<Vec<String>> = rank_all(neighbours, gallery_labels, dcut)
        .into_iter()
        .map(|candidates| candidates.into_iter().map(|c| c.label).collect())
        .collect();
    let n = predictions.len().max(1) as f64;
    let map5 = predictions
        .iter()
        .zip(truths)
        .map(|(p, t)| average_precision_at_5(p, t))
        .sum::<f64>()
        / n;
    let new_whale_first = new_whale_first_share(&predictions).unwrap_or(0.0);
    Evaluation {
        dcut,
        map5,
        new_whale_first,
    }
}

/// Evaluates every `dcut` in `dcuts` and returns them all, with the index
/// of the best (the smallest `dcut` among equal scores).
pub fn sweep(
    neighbours: &[Vec<Neighbour>],
    gallery_labels: &[String],
    truths: &[String],
    dcuts: &[f32],
) -> (Vec<Evaluation>, usize) {
    let table: Vec<Evaluation> = dcuts
        .iter()
        .map(|&d| evaluate(neighbours, gallery_labels, truths, d))
        .collect();
    let best = (0..table.len()).fold(0, |best, i| {
        if table[i].map5 > table[best].map5 {
            i
        } else {
            best
        }
    });
    (table, best)
}

/// `n` evenly spaced values from `lo` to `hi` inclusive.
pub fn dcut_range(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    if n <= 1 {
        return vec![lo];
    }
    (0..n)
        .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn evaluates_and_sweeps_a_tiny_gallery() {
        // Gallery on a line at 0, 1 and 10; query A sits on w_a, query B at
        // 6 (its truth new_whale): a dcut between 1 and 4 puts new_whale
        // first for B and keeps w_a first for A.
        let gallery = Array2::from_shape_vec((3, 1), vec![0.0, 1.0, 10.0]).unwrap();
        let queries = Array2::from_shape_vec((2, 1), vec![0.0, 6.0]).unwrap();
        let gallery_labels = labels(&["w_a", "w_b", "w_c"]);
        let truths = labels(&["w_a", "new_whale"]);
        let neighbours = nearest(gallery, &queries, Device::Cpu).unwrap();

        let far = evaluate(&neighbours, &gallery_labels, &truths, 100.0);
        // A: w_a first (1); B: w_c, w_b, w_a, never new_whale (0)
        assert!((far.map5 - 0.5).abs() < 1e-12);
        let good = evaluate(&neighbours, &gallery_labels, &truths, 2.0);
        assert!((good.map5 - 1.0).abs() < 1e-12);
        assert!((good.new_whale_first - 0.5).abs() < 1e-12);

        // 100 and 50 never put new_whale before B's neighbours (all within
        // 10); 2 does.
        let (table, best) = sweep(&neighbours, &gallery_labels, &truths, &[100.0, 2.0, 50.0]);
        assert_eq!(table.len(), 3);
        assert_eq!(best, 1);
    }

    #[test]
    fn dcut_range_is_inclusive() {
        assert_eq!(dcut_range(1.0, 3.0, 3), vec![1.0, 2.0, 3.0]);
    }
}
