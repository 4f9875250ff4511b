//! The order both back ends answer in: nearest first, ties broken by the
//! lower `gallery_idx`, including ties across the `k`-th place.

use std::cmp::Ordering;

use super::{GalleryIndex, Neighbour};

/// A row of the index and its squared distance from a query.
pub(super) struct Scored {
    pub(super) sq_distance: f32,
    pub(super) row: usize,
}

impl GalleryIndex {
    /// The `k` nearest neighbours from the `k + 1` (or all) nearest rows,
    /// found in any tie order; `None` when a tie straddles the `k`-th
    /// place, so rows left out of `scored` might belong in the answer.
    pub(super) fn settle(
        &self,
        mut scored: Vec<Scored>,
        k: usize,
        complete: bool,
    ) -> Option<Vec<Neighbour>> {
        scored.sort_by(|a, b| self.order(a, b));
        let k = k.min(scored.len());
        let straddles =
            !complete && scored.len() > k && scored[k].sq_distance == scored[k - 1].sq_distance;
        if straddles {
            return None;
        }
        Some(self.to_neighbours(&scored[..k]))
    }

    /// The `k` nearest neighbours from the squared distances to every row.
    pub(super) fn settle_all(&self, sq_distances: Vec<f32>, k: usize) -> Vec<Neighbour> {
        let mut scored: Vec<Scored> = sq_distances
            .into_iter()
            .enumerate()
            .map(|(row, sq_distance)| Scored { sq_distance, row })
            .collect();
        scored.sort_by(|a, b| self.order(a, b));
        self.to_neighbours(&scored[..k])
    }

    /// Nearer first, then lower `gallery_idx`. Distances are finite, so
    /// `partial_cmp` is total; it also treats -0 and +0 as equal.
    fn order(&self, a: &Scored, b: &Scored) -> Ordering {
        let by_distance = a
            .sq_distance
            .partial_cmp(&b.sq_distance)
            .unwrap_or(Ordering::Equal);
        let ids = &self.slots.row_ids;
        by_distance.then(ids[a.row].cmp(&ids[b.row]))
    }

    fn to_neighbours(&self, scored: &[Scored]) -> Vec<Neighbour> {
        scored
            .iter()
            .map(|s| Neighbour {
                gallery_idx: self.slots.row_ids[s.row],
                distance: s.sq_distance.sqrt(),
            })
            .collect()
    }
}
