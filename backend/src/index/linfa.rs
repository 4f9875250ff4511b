//! The linfa-nn back end: a linear scan over the host rows on the CPU,
//! set up afresh for each search.

use linfa_nn::distance::{Distance, L2Dist};
use linfa_nn::{CommonNearestNeighbour, NearestNeighbour, NearestNeighbourIndex};
use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

use super::rank::Scored;
use super::{GalleryIndex, IndexError, Neighbour};

/// The linfa-nn algorithm behind [`IndexKind::Linfa`](super::IndexKind::Linfa).
///
/// All three of linfa-nn's algorithms are exact. At dimension 256 the
/// trees prune almost nothing, so a query still visits nearly every point
/// and pays for the tree walk on top: in `examples/bench_index.rs` the k-d
/// tree and the ball tree were two to four times slower than the linear
/// scan. The scan also needs no building, so it is set up afresh over the
/// current rows on each search, and adding or removing costs nothing more.
const LINFA_ALGORITHM: CommonNearestNeighbour = CommonNearestNeighbour::LinearSearch;

impl GalleryIndex {
    pub(super) fn search_linfa(
        &self,
        queries: ArrayView2<f32>,
        k: usize,
    ) -> Result<Vec<Vec<Neighbour>>, IndexError> {
        let gallery = self.host_rows();
        let nn = LINFA_ALGORITHM.from_batch(&gallery, L2Dist)?;

        (0..queries.nrows())
            .into_par_iter()
            .map(|query_idx| self.query_linfa(nn.as_ref(), queries.row(query_idx), k))
            .collect()
    }

    fn query_linfa(
        &self,
        nn: &dyn NearestNeighbourIndex<f32>,
        query: ArrayView1<f32>,
        k: usize,
    ) -> Result<Vec<Neighbour>, IndexError> {
        let n_take = (k + 1).min(self.len());
        let found = nn.k_nearest(query, n_take)?;
        let scored = found
            .into_iter()
            .map(|(point, row)| Scored {
                sq_distance: L2Dist.rdistance(query, point),
                row,
            })
            .collect();

        Ok(self
            .settle(scored, k, n_take == self.len())
            .unwrap_or_else(|| self.settle_all(self.scan(query), k)))
    }

    /// Squared distances from `query` to every row, as linfa-nn computes
    /// them.
    fn scan(&self, query: ArrayView1<f32>) -> Vec<f32> {
        self.host_rows()
            .outer_iter()
            .map(|point| L2Dist.rdistance(query, point))
            .collect()
    }
}
