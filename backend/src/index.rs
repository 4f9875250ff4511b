//! Exact k-nearest-neighbour search over gallery embeddings by Euclidean
//! distance.
//!
//! One type, [`GalleryIndex`], with two interchangeable back ends: a linear
//! scan with linfa-nn on the CPU, or a brute-force matrix product with
//! libtorch on whatever device is given. Both answer a search the same way:
//! neighbours sorted by ascending distance, ties broken by the lower
//! `gallery_idx`. Entries can be added and removed while the ids of the
//! others stay put. Turning neighbours into candidates is [`crate::predict`]'s
//! job, not this module's.

use std::cmp::Ordering;
use std::fmt;

use linfa_nn::distance::{Distance, L2Dist};
use linfa_nn::{CommonNearestNeighbour, NearestNeighbour, NearestNeighbourIndex};
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use tracing::debug;

/// Which search back end a [`GalleryIndex`] uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[derive(clap::ValueEnum)]
pub enum IndexKind {
    /// linfa-nn's linear scan on the CPU, whatever device is given.
    Linfa,
    /// One matrix product per batch of queries with libtorch, on the given
    /// device.
    BruteForce,
    /// [`IndexKind::BruteForce`] off the CPU; on the CPU, whichever path was
    /// faster in `examples/bench_index.rs` (see [`AUTO_ON_CPU`]).
    #[default]
    Auto,
}

/// One gallery entry found by a search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The id [`GalleryIndex::new`] or [`GalleryIndex::add`] gave the entry.
    pub gallery_idx: usize,
    /// Euclidean distance from the query.
    pub distance: f32,
}

/// Which embeddings an [`IndexError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gallery,
    Query,
}

/// What can go wrong building, changing or searching a [`GalleryIndex`].
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("embeddings have dimension 0")]
    ZeroDimension,
    #[error("{role} embeddings have dimension {got}, the gallery has dimension {expected}")]
    DimensionMismatch {
        role: Role,
        expected: usize,
        got: usize,
    },
    #[error("{role} row {row} holds a non-finite value in column {col}")]
    NonFinite { role: Role, row: usize, col: usize },
    #[error("{role} row {row} is too long for distances to fit in f32 (squared norm {sq_norm})")]
    NormTooLarge {
        role: Role,
        row: usize,
        sq_norm: f32,
    },
    #[error("cannot search an empty gallery")]
    EmptyGallery,
    #[error("gallery index {gallery_idx} was never given out (the gallery has had {n_slots})")]
    UnknownEntry { gallery_idx: usize, n_slots: usize },
    #[error("gallery index {gallery_idx} was already removed")]
    AlreadyRemoved { gallery_idx: usize },
    #[error("building the linfa-nn index failed: {0}")]
    LinfaBuild(#[from] linfa_nn::BuildError),
    #[error("a linfa-nn query failed: {0}")]
    LinfaQuery(#[from] linfa_nn::NnError),
    #[error("libtorch failed: {0}")]
    Torch(#[from] tch::TchError),
}

/// What [`IndexKind::Auto`] picks on the CPU.
///
/// Measured with `examples/bench_index.rs` on a 2-core AMD EPYC, exact
/// top-16 over 25,000 embeddings of dimension 256, two runs on a shared
/// machine: the libtorch matrix product searched 8,000 queries in about
/// 5 s where linfa-nn's linear scan took 70 to 100 s, and answered single
/// queries in about 5 ms against 7 to 14 ms. The scan computes each
/// distance on its own with a sequential sum; the product goes through a
/// vectorised, cache-blocked BLAS kernel and reads each gallery row once
/// per batch.
pub const AUTO_ON_CPU: IndexKind = IndexKind::BruteForce;

/// The linfa-nn algorithm behind [`IndexKind::Linfa`].
///
/// All three of linfa-nn's algorithms are exact. At dimension 256 the
/// trees prune almost nothing, so a query still visits nearly every point
/// and pays for the tree walk on top: in `examples/bench_index.rs` the k-d
/// tree and the ball tree were two to four times slower than the linear
/// scan. The scan also needs no building, so it is set up afresh over the
/// current rows on each search, and adding or removing costs nothing more.
const LINFA_ALGORITHM: CommonNearestNeighbour = CommonNearestNeighbour::LinearSearch;

/// Largest squared norm an embedding may have: the squared distance
/// between two embeddings is at most four times the larger squared norm,
/// and must stay finite in f32.
const MAX_SQ_NORM: f32 = f32::MAX / 4.0;

/// Most cells of the query-by-gallery distance matrix held at once by the
/// brute-force path (64 MiB of f32); queries are batched to stay below.
const MAX_BATCH_CELLS: usize = 1 << 24;

/// Exact nearest-neighbour index over a gallery of embeddings.
///
/// Live embeddings sit in rows, packed; removing one moves the last row
/// into its place. Ids (`gallery_idx`) are given out in order, never reused,
/// and map to rows through [`Slots`]. The host rows are always kept; the
/// brute-force back end mirrors them on its device.
pub struct GalleryIndex {
    dim: usize,
    rows: Vec<f32>,
    slots: Slots,
    backend: Backend,
}

impl GalleryIndex {
    /// Indexes `embeddings`; row `i` gets `gallery_idx` `i`. A gallery with
    /// no rows is allowed (entries can be added later), but not searchable.
    ///
    /// # Shapes
    /// `embeddings`: `[n_gallery, dim]`.
    ///
    /// # Errors
    /// A zero dimension, a non-finite value, an embedding too long for f32
    /// distances, or libtorch failing to copy the rows to `device`.
    pub fn new(
        embeddings: Array2<f32>,
        kind: IndexKind,
        device: Device,
    ) -> Result<Self, IndexError> {
        let dim = embeddings.ncols();
        if dim == 0 {
            return Err(IndexError::ZeroDimension);
        }
        check_rows(embeddings.view(), dim, Role::Gallery)?;

        let n_rows = embeddings.nrows();
        let rows: Vec<f32> = embeddings.iter().copied().collect();
        let backend = Backend::new(kind, device, &rows, dim)?;
        debug!(n_rows, dim, kind = ?backend.kind(), "gallery index built");
        Ok(Self {
            dim,
            rows,
            slots: Slots::new(n_rows),
            backend,
        })
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.slots.row_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dimension of the embeddings.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The back end in use, with [`IndexKind::Auto`] resolved.
    pub fn kind(&self) -> IndexKind {
        self.backend.kind()
    }

    /// Whether `gallery_idx` names a live entry.
    pub fn contains(&self, gallery_idx: usize) -> bool {
        matches!(self.slots.row_of.get(gallery_idx), Some(Some(_)))
    }

    /// Adds one embedding and returns its `gallery_idx`, the next unused
    /// one. Costs one row copy (amortised), not a rebuild.
    ///
    /// # Errors
    /// A wrong length, a non-finite value, an embedding too long for f32
    /// distances, or libtorch failing to write the device copy.
    pub fn add(&mut self, embedding: &[f32]) -> Result<usize, IndexError> {
        let gallery_idx = self.slots.n_slots();
        let view = ArrayView2::from_shape((1, embedding.len()), embedding)
            .expect("a slice of length n is a 1 x n matrix");
        check_rows(view, self.dim, Role::Gallery).map_err(|e| e.at_row(gallery_idx))?;

        let len = self.len();
        if let Backend::Device(device_rows) = &mut self.backend {
            device_rows.push(embedding, len)?;
        }
        self.rows.extend_from_slice(embedding);
        self.slots.push();
        Ok(gallery_idx)
    }

    /// Removes an entry; every other entry keeps its `gallery_idx`.
    ///
    /// # Errors
    /// An id never given out, one already removed, or libtorch failing to
    /// update the device copy.
    pub fn remove(&mut self, gallery_idx: usize) -> Result<(), IndexError> {
        let row = self.slots.row(gallery_idx)?;
        let last = self.len() - 1;

        if let Backend::Device(device_rows) = &mut self.backend {
            device_rows.move_row(last, row)?;
        }
        let dim = self.dim;
        self.rows
            .copy_within(last * dim..(last + 1) * dim, row * dim);
        self.rows.truncate(last * dim);
        self.slots.swap_remove(row);
        Ok(())
    }

    /// The `k` nearest entries to each query, nearest first, ties broken by
    /// the lower `gallery_idx`; `k` is clipped to [`GalleryIndex::len`].
    ///
    /// # Shapes
    /// `queries`: `[n_queries, dim]`; the result holds `n_queries` lists of
    /// `min(k, len)` neighbours.
    ///
    /// # Errors
    /// An empty gallery, a query of the wrong dimension, a non-finite value,
    /// a query too long for f32 distances, or a failure in the back end.
    pub fn search(
        &self,
        queries: ArrayView2<f32>,
        k: usize,
    ) -> Result<Vec<Vec<Neighbour>>, IndexError> {
        if self.is_empty() {
            return Err(IndexError::EmptyGallery);
        }
        check_rows(queries, self.dim, Role::Query)?;

        let k = k.min(self.len());
        if k == 0 {
            return Ok(vec![Vec::new(); queries.nrows()]);
        }
        match &self.backend {
            Backend::Linfa => self.search_linfa(queries, k),
            Backend::Device(device_rows) => self.search_device(device_rows, queries, k),
        }
    }

    fn host_rows(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.len(), self.dim), &self.rows)
            .expect("the host rows hold len x dim values")
    }

    fn search_linfa(
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

    fn search_device(
        &self,
        device_rows: &DeviceRows,
        queries: ArrayView2<f32>,
        k: usize,
    ) -> Result<Vec<Vec<Neighbour>>, IndexError> {
        let batch_size = (device_rows.max_batch_cells / self.len()).max(1);
        let mut neighbours = Vec::with_capacity(queries.nrows());

        for batch in queries.axis_chunks_iter(Axis(0), batch_size) {
            neighbours.extend(self.search_device_batch(device_rows, batch, k)?);
        }
        Ok(neighbours)
    }

    fn search_device_batch(
        &self,
        device_rows: &DeviceRows,
        batch: ArrayView2<f32>,
        k: usize,
    ) -> Result<Vec<Vec<Neighbour>>, IndexError> {
        let sq_distances = device_rows.sq_distances(batch, self.len())?;
        let n_take = (k + 1).min(self.len());
        let (values, rows) = sq_distances.f_topk(n_take as i64, 1, false, true)?;
        let values: Vec<f32> = to_host(&values)?;
        let rows: Vec<i64> = to_host(&rows)?;

        let complete = n_take == self.len();
        let per_query = values.chunks(n_take).zip(rows.chunks(n_take));
        per_query
            .enumerate()
            .map(|(query_idx, (values, rows))| {
                let scored = values
                    .iter()
                    .zip(rows)
                    .map(|(&sq_distance, &row)| Scored {
                        sq_distance,
                        row: row as usize,
                    })
                    .collect();
                match self.settle(scored, k, complete) {
                    Some(settled) => Ok(settled),
                    None => self.settle_row(&sq_distances, query_idx, k),
                }
            })
            .collect()
    }

    /// The `k` nearest neighbours of query `query_idx` in a batch, from its
    /// whole row of the distance matrix.
    ///
    /// # Shapes
    /// `sq_distances`: `[n_queries, len]`.
    fn settle_row(
        &self,
        sq_distances: &Tensor,
        query_idx: usize,
        k: usize,
    ) -> Result<Vec<Neighbour>, IndexError> {
        let row = to_host(&sq_distances.f_get(query_idx as i64)?)?;
        Ok(self.settle_all(row, k))
    }

    /// The `k` nearest neighbours from the `k + 1` (or all) nearest rows,
    /// found in any tie order; `None` when a tie straddles the `k`-th
    /// place, so rows left out of `scored` might belong in the answer.
    fn settle(&self, mut scored: Vec<Scored>, k: usize, complete: bool) -> Option<Vec<Neighbour>> {
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
    fn settle_all(&self, sq_distances: Vec<f32>, k: usize) -> Vec<Neighbour> {
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

impl IndexKind {
    /// The back end this kind means on `device`.
    fn resolve(self, device: Device) -> IndexKind {
        match (self, device) {
            (IndexKind::Auto, Device::Cpu) => AUTO_ON_CPU,
            (IndexKind::Auto, _) => IndexKind::BruteForce,
            (kind, _) => kind,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Gallery => "gallery",
            Role::Query => "query",
        })
    }
}

impl IndexError {
    /// Renumbers a row-level error, for a single embedding checked alone.
    fn at_row(self, row: usize) -> Self {
        match self {
            IndexError::NonFinite { role, col, .. } => IndexError::NonFinite { role, row, col },
            IndexError::NormTooLarge { role, sq_norm, .. } => {
                IndexError::NormTooLarge { role, row, sq_norm }
            }
            other => other,
        }
    }
}

/// A row of the index and its squared distance from a query.
struct Scored {
    sq_distance: f32,
    row: usize,
}

/// The two-way map between rows and ids.
struct Slots {
    /// `gallery_idx` of each live row.
    row_ids: Vec<usize>,
    /// Row of each `gallery_idx` ever given out; `None` once removed.
    row_of: Vec<Option<usize>>,
}

impl Slots {
    fn new(n_rows: usize) -> Self {
        Self {
            row_ids: (0..n_rows).collect(),
            row_of: (0..n_rows).map(Some).collect(),
        }
    }

    fn n_slots(&self) -> usize {
        self.row_of.len()
    }

    fn push(&mut self) {
        self.row_of.push(Some(self.row_ids.len()));
        self.row_ids.push(self.row_of.len() - 1);
    }

    fn row(&self, gallery_idx: usize) -> Result<usize, IndexError> {
        match self.row_of.get(gallery_idx) {
            Some(Some(row)) => Ok(*row),
            Some(None) => Err(IndexError::AlreadyRemoved { gallery_idx }),
            None => Err(IndexError::UnknownEntry {
                gallery_idx,
                n_slots: self.n_slots(),
            }),
        }
    }

    /// Forgets `row`'s entry; the last row takes its place.
    fn swap_remove(&mut self, row: usize) {
        let gallery_idx = self.row_ids.swap_remove(row);
        self.row_of[gallery_idx] = None;
        if let Some(&moved) = self.row_ids.get(row) {
            self.row_of[moved] = Some(row);
        }
    }
}

enum Backend {
    Linfa,
    Device(DeviceRows),
}

impl Backend {
    fn new(kind: IndexKind, device: Device, rows: &[f32], dim: usize) -> Result<Self, IndexError> {
        match kind.resolve(device) {
            IndexKind::Linfa => {
                debug!(?device, "linfa-nn searches on the CPU whatever the device");
                Ok(Backend::Linfa)
            }
            _ => Ok(Backend::Device(DeviceRows::new(rows, dim, device)?)),
        }
    }

    fn kind(&self) -> IndexKind {
        match self {
            Backend::Linfa => IndexKind::Linfa,
            Backend::Device(_) => IndexKind::BruteForce,
        }
    }
}

/// The gallery rows and their squared norms on a libtorch device, with
/// spare capacity so that adding a row rarely reallocates.
struct DeviceRows {
    device: Device,
    dim: usize,
    /// Bound on the distance matrix of one batch of queries.
    max_batch_cells: usize,
    /// `[capacity, dim]`; the first `len` rows are live.
    rows: SharedTensor,
    /// `[capacity]`, computed on the host so that equal rows get equal norms.
    sq_norms: SharedTensor,
}

impl DeviceRows {
    /// # Shapes
    /// `rows`: `n_rows * dim` values, row-major.
    fn new(rows: &[f32], dim: usize, device: Device) -> Result<Self, IndexError> {
        let n_rows = rows.len() / dim;
        let capacity = n_rows.max(1);
        let mut this = Self {
            device,
            dim,
            max_batch_cells: MAX_BATCH_CELLS,
            rows: SharedTensor(Tensor::f_zeros(
                [capacity as i64, dim as i64],
                (Kind::Float, device),
            )?),
            sq_norms: SharedTensor(Tensor::f_zeros([capacity as i64], (Kind::Float, device))?),
        };
        this.write(0, rows)?;
        Ok(this)
    }

    fn capacity(&self) -> usize {
        self.rows.0.size()[0] as usize
    }

    /// Appends one row after the `len` live ones.
    fn push(&mut self, row: &[f32], len: usize) -> Result<(), IndexError> {
        if len == self.capacity() {
            self.grow(len)?;
        }
        self.write(len, row)
    }

    /// Doubles the capacity, keeping the `len` live rows.
    fn grow(&mut self, len: usize) -> Result<(), IndexError> {
        let capacity = 2 * self.capacity() as i64;
        let options = (Kind::Float, self.device);
        let rows = Tensor::f_zeros([capacity, self.dim as i64], options)?;
        let sq_norms = Tensor::f_zeros([capacity], options)?;
        rows.f_narrow(0, 0, len as i64)?
            .f_copy_(&self.rows.0.f_narrow(0, 0, len as i64)?)?;
        sq_norms
            .f_narrow(0, 0, len as i64)?
            .f_copy_(&self.sq_norms.0.f_narrow(0, 0, len as i64)?)?;
        self.rows = SharedTensor(rows);
        self.sq_norms = SharedTensor(sq_norms);
        Ok(())
    }

    /// Copies `rows` (row-major) into place from row `start` on.
    fn write(&mut self, start: usize, rows: &[f32]) -> Result<(), IndexError> {
        let n_rows = (rows.len() / self.dim) as i64;
        if n_rows == 0 {
            return Ok(());
        }
        let sq_norms: Vec<f32> = rows.chunks(self.dim).map(sq_norm).collect();
        let values = Tensor::f_from_slice(rows)?.f_view([n_rows, self.dim as i64])?;

        self.rows
            .0
            .f_narrow(0, start as i64, n_rows)?
            .f_copy_(&values)?;
        self.sq_norms
            .0
            .f_narrow(0, start as i64, n_rows)?
            .f_copy_(&Tensor::f_from_slice(&sq_norms)?)?;
        Ok(())
    }

    /// Copies row `from` over row `to`.
    fn move_row(&mut self, from: usize, to: usize) -> Result<(), IndexError> {
        if from == to {
            return Ok(());
        }
        for tensor in [&self.rows.0, &self.sq_norms.0] {
            let source = tensor.f_narrow(0, from as i64, 1)?;
            tensor.f_narrow(0, to as i64, 1)?.f_copy_(&source)?;
        }
        Ok(())
    }

    /// `||q||^2 + ||g||^2 - 2 q.g`, clamped at 0, for every query and live
    /// row, with one matrix product.
    ///
    /// # Shapes
    /// `queries`: `[n_queries, dim]`; returns `[n_queries, len]`.
    fn sq_distances(&self, queries: ArrayView2<f32>, len: usize) -> Result<Tensor, IndexError> {
        let n_queries = queries.nrows() as i64;
        let values: Vec<f32> = queries.iter().copied().collect();
        let query_norms: Vec<f32> = values.chunks(self.dim).map(sq_norm).collect();
        let queries = Tensor::f_from_slice(&values)?
            .f_view([n_queries, self.dim as i64])?
            .f_to_device(self.device)?;
        let query_norms = Tensor::f_from_slice(&query_norms)?
            .f_view([n_queries, 1])?
            .f_to_device(self.device)?;

        let gallery = self.rows.0.f_narrow(0, 0, len as i64)?;
        let gallery_norms = self
            .sq_norms
            .0
            .f_narrow(0, 0, len as i64)?
            .f_view([1, len as i64])?;
        // In place after the product: one `[n_queries, len]` allocation.
        let sq_distances = queries
            .f_mul_scalar(-2.0)?
            .f_mm(&gallery.f_tr()?)?
            .f_add_(&query_norms)?
            .f_add_(&gallery_norms)?
            .f_clamp_min_(0.0)?;
        Ok(sq_distances)
    }
}

/// A tensor read from several threads at once.
struct SharedTensor(Tensor);

// SAFETY: tch leaves `Tensor` without `Sync` because some of its `&self`
// methods change the tensor (autograd state, in-place writes through views).
// `SharedTensor` is private to this module, which only reads it through
// `&GalleryIndex` (narrow, view, matrix product, all producing new tensors)
// and writes it only through `&mut GalleryIndex`. libtorch supports
// concurrent reads of one tensor; its reference counts are atomic.
unsafe impl Sync for SharedTensor {}

/// Checks dimension, finiteness and length of every row.
fn check_rows(rows: ArrayView2<f32>, dim: usize, role: Role) -> Result<(), IndexError> {
    if rows.ncols() != dim {
        return Err(IndexError::DimensionMismatch {
            role,
            expected: dim,
            got: rows.ncols(),
        });
    }
    for (row, values) in rows.outer_iter().enumerate() {
        if let Some(col) = values.iter().position(|v| !v.is_finite()) {
            return Err(IndexError::NonFinite { role, row, col });
        }
        let sq_norm = values.iter().map(|v| v * v).sum::<f32>();
        if sq_norm > MAX_SQ_NORM {
            return Err(IndexError::NormTooLarge { role, row, sq_norm });
        }
    }
    Ok(())
}

fn sq_norm(row: &[f32]) -> f32 {
    row.iter().map(|v| v * v).sum()
}

/// Copies a tensor to the host as a flat vector.
fn to_host<T: tch::kind::Element + Copy>(tensor: &Tensor) -> Result<Vec<T>, IndexError> {
    let flat = tensor
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::try_from(&flat)?)
}

#[cfg(test)]
mod tests {
    use ndarray::{array, Array2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const KINDS: [IndexKind; 2] = [IndexKind::Linfa, IndexKind::BruteForce];

    fn index(embeddings: Array2<f32>, kind: IndexKind) -> GalleryIndex {
        GalleryIndex::new(embeddings, kind, Device::Cpu).expect("a valid gallery indexes")
    }

    fn random(n_rows: usize, dim: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
        Array2::from_shape_fn((n_rows, dim), |_| rng.gen_range(-1.0..1.0))
    }

    fn ids(neighbours: &[Neighbour]) -> Vec<usize> {
        neighbours.iter().map(|n| n.gallery_idx).collect()
    }

    /// Four points around the query (0, 0): two copies of the query, one at
    /// distance 1 and one at distance 5 (a 3-4-5 triangle).
    fn small_gallery() -> Array2<f32> {
        array![[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 0.0]]
    }

    #[test]
    fn small_gallery_gives_hand_computed_neighbours() {
        for kind in KINDS {
            let found = index(small_gallery(), kind)
                .search(array![[0.0, 0.0]].view(), 3)
                .unwrap();
            assert_eq!(ids(&found[0]), vec![0, 3, 2], "{kind:?}");
            let distances: Vec<f32> = found[0].iter().map(|n| n.distance).collect();
            assert_eq!(distances, vec![0.0, 0.0, 1.0], "{kind:?}");
        }
    }

    #[test]
    fn k_is_clipped_to_the_gallery_size() {
        for kind in KINDS {
            let found = index(small_gallery(), kind)
                .search(array![[3.0, 4.0]].view(), 10)
                .unwrap();
            assert_eq!(ids(&found[0]), vec![1, 2, 0, 3], "{kind:?}");
            assert!((found[0][2].distance - 5.0).abs() < 1e-5, "{kind:?}");
        }
    }

    /// Four entries at distance 1 from the origin and one at distance 2;
    /// removing and adding shuffles the rows so that row order and id
    /// order differ. The two nearest must be the two lowest live ids.
    #[test]
    fn ties_across_the_kth_place_go_to_the_lower_ids() {
        let gallery = array![[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [-1.0, 0.0], [0.0, -1.0]];
        for kind in KINDS {
            let mut index = index(gallery.clone(), kind);
            index.remove(0).unwrap();
            assert_eq!(index.add(&[1.0, 0.0]).unwrap(), 5);
            let found = index.search(array![[0.0, 0.0]].view(), 2).unwrap();
            assert_eq!(ids(&found[0]), vec![1, 3], "{kind:?}");
            let found = index.search(array![[0.0, 0.0]].view(), 4).unwrap();
            assert_eq!(ids(&found[0]), vec![1, 3, 4, 5], "{kind:?}");
        }
    }

    #[test]
    fn linfa_and_brute_force_agree_on_random_data() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut gallery = random(600, 32, &mut rng);
        // Exact duplicates make ties at every rank they reach.
        for row in 0..50 {
            let copy = gallery.row(row).to_owned();
            gallery.row_mut(550 + row).assign(&copy);
        }
        let queries = random(40, 32, &mut rng);
        let linfa = index(gallery.clone(), IndexKind::Linfa)
            .search(queries.view(), 16)
            .unwrap();
        let brute = index(gallery, IndexKind::BruteForce)
            .search(queries.view(), 16)
            .unwrap();
        assert_same_neighbours(&linfa, &brute);
    }

    /// Same distances rank by rank (within 1e-4), and the same ids wherever
    /// the distance is not shared with a neighbour of the other list.
    fn assert_same_neighbours(a: &[Vec<Neighbour>], b: &[Vec<Neighbour>]) {
        assert_eq!(a.len(), b.len());
        for (query_idx, (a, b)) in a.iter().zip(b).enumerate() {
            assert_eq!(a.len(), b.len(), "query {query_idx}");
            for (x, y) in a.iter().zip(b) {
                let close = (x.distance - y.distance).abs() < 1e-4;
                assert!(close, "query {query_idx}: {x:?} vs {y:?}");
                let tied = a.iter().chain(b).any(|n| {
                    n.gallery_idx != x.gallery_idx && (n.distance - x.distance).abs() < 1e-4
                });
                assert!(
                    tied || x.gallery_idx == y.gallery_idx,
                    "query {query_idx}: {x:?} vs {y:?}"
                );
            }
        }
    }

    #[test]
    fn brute_force_batches_give_the_same_answer() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let gallery = random(200, 8, &mut rng);
        let queries = random(25, 8, &mut rng);
        let whole = index(gallery.clone(), IndexKind::BruteForce);
        let mut batched = index(gallery, IndexKind::BruteForce);
        if let Backend::Device(device_rows) = &mut batched.backend {
            // 3 queries per batch: 9 batches, the last one short.
            device_rows.max_batch_cells = 3 * 200 + 7;
        }
        // The BLAS kernel may sum in another order for another batch shape,
        // so distances can move by a rounding step; the ids may not.
        let expected = whole.search(queries.view(), 5).unwrap();
        let found = batched.search(queries.view(), 5).unwrap();
        assert_eq!(found.len(), expected.len());
        for (found, expected) in found.iter().zip(&expected) {
            assert_eq!(ids(found), ids(expected));
            for (x, y) in found.iter().zip(expected) {
                assert!((x.distance - y.distance).abs() < 1e-5, "{x:?} vs {y:?}");
            }
        }
    }

    #[test]
    fn added_entries_are_found_and_ids_are_never_reused() {
        for kind in KINDS {
            let mut index = index(array![[10.0, 10.0]], kind);
            for step in 1..6 {
                let gallery_idx = index.add(&[step as f32, 0.0]).unwrap();
                assert_eq!(gallery_idx, step, "{kind:?}");
            }
            index.remove(5).unwrap();
            assert_eq!(index.add(&[0.5, 0.0]).unwrap(), 6, "{kind:?}");
            assert_eq!(index.len(), 6);
            let found = index.search(array![[0.0, 0.0]].view(), 3).unwrap();
            assert_eq!(ids(&found[0]), vec![6, 1, 2], "{kind:?}");
        }
    }

    #[test]
    fn removal_keeps_the_other_ids_and_their_distances() {
        for kind in KINDS {
            let mut index = index(small_gallery(), kind);
            index.remove(0).unwrap();
            assert!(!index.contains(0) && index.contains(3));
            let found = index.search(array![[0.0, 0.0]].view(), 5).unwrap();
            assert_eq!(ids(&found[0]), vec![3, 2, 1], "{kind:?}");
            assert!((found[0][2].distance - 5.0).abs() < 1e-5, "{kind:?}");
        }
    }

    #[test]
    fn removing_twice_or_an_unknown_id_fails() {
        let mut index = index(small_gallery(), IndexKind::Linfa);
        index.remove(1).unwrap();
        assert!(matches!(
            index.remove(1),
            Err(IndexError::AlreadyRemoved { gallery_idx: 1 })
        ));
        assert!(matches!(
            index.remove(9),
            Err(IndexError::UnknownEntry {
                gallery_idx: 9,
                n_slots: 4
            })
        ));
    }

    #[test]
    fn an_emptied_gallery_refuses_to_search_until_refilled() {
        for kind in KINDS {
            let mut index = index(array![[1.0, 2.0]], kind);
            index.remove(0).unwrap();
            let query = array![[0.0, 0.0]];
            assert!(matches!(
                index.search(query.view(), 1),
                Err(IndexError::EmptyGallery)
            ));
            index.add(&[4.0, 6.0]).unwrap();
            assert_eq!(index.search(query.view(), 1).unwrap()[0][0].gallery_idx, 1);
        }
    }

    #[test]
    fn a_gallery_built_empty_grows_on_the_device() {
        let mut index = index(Array2::zeros((0, 3)), IndexKind::BruteForce);
        for step in 0..9 {
            index.add(&[step as f32, 0.0, 0.0]).unwrap();
        }
        let found = index.search(array![[8.0, 0.0, 0.0]].view(), 2).unwrap();
        assert_eq!(ids(&found[0]), vec![8, 7]);
    }

    #[test]
    fn wrong_dimensions_are_reported_with_both_sizes() {
        let mut index = index(small_gallery(), IndexKind::BruteForce);
        let err = index.search(array![[0.0, 0.0, 0.0]].view(), 1).unwrap_err();
        assert!(matches!(
            err,
            IndexError::DimensionMismatch {
                role: Role::Query,
                expected: 2,
                got: 3
            }
        ));
        assert_eq!(
            err.to_string(),
            "query embeddings have dimension 3, the gallery has dimension 2"
        );
        assert!(matches!(
            index.add(&[1.0]),
            Err(IndexError::DimensionMismatch {
                role: Role::Gallery,
                expected: 2,
                got: 1
            })
        ));
        let empty = GalleryIndex::new(Array2::zeros((3, 0)), IndexKind::Linfa, Device::Cpu);
        assert!(matches!(empty, Err(IndexError::ZeroDimension)));
    }

    #[test]
    fn non_finite_values_are_located() {
        let gallery = array![[0.0, 1.0], [2.0, f32::NAN]];
        let built = GalleryIndex::new(gallery, IndexKind::Linfa, Device::Cpu);
        assert!(matches!(
            built,
            Err(IndexError::NonFinite {
                role: Role::Gallery,
                row: 1,
                col: 1
            })
        ));

        let mut index = index(small_gallery(), IndexKind::Linfa);
        let added = index.add(&[f32::INFINITY, 0.0]);
        assert!(matches!(
            added,
            Err(IndexError::NonFinite {
                role: Role::Gallery,
                row: 4,
                col: 0
            })
        ));
        let query = array![[0.0, 0.0], [0.0, 0.0], [f32::NEG_INFINITY, 0.0]];
        let err = index.search(query.view(), 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "query row 2 holds a non-finite value in column 0"
        );
    }

    #[test]
    fn embeddings_too_long_for_f32_distances_are_refused() {
        let mut index = index(small_gallery(), IndexKind::Linfa);
        let added = index.add(&[1e19, 0.0]);
        assert!(matches!(
            added,
            Err(IndexError::NormTooLarge {
                role: Role::Gallery,
                row: 4,
                ..
            })
        ));
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn auto_picks_brute_force_off_the_cpu() {
        assert_eq!(
            IndexKind::Auto.resolve(Device::Cuda(0)),
            IndexKind::BruteForce
        );
        assert_eq!(IndexKind::Auto.resolve(Device::Cpu), AUTO_ON_CPU);
        assert_eq!(IndexKind::Linfa.resolve(Device::Cuda(0)), IndexKind::Linfa);
        let built = index(small_gallery(), IndexKind::Auto);
        assert_eq!(built.kind(), AUTO_ON_CPU);
    }

    #[test]
    fn searches_from_many_threads_agree() {
        fn shareable<T: Send + Sync>() {}
        shareable::<GalleryIndex>();

        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let queries = random(10, 16, &mut rng);
        for kind in KINDS {
            let index = index(random(300, 16, &mut rng), kind);
            let expected = index.search(queries.view(), 4).unwrap();
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| index.search(queries.view(), 4)))
                    .collect();
                for handle in handles {
                    assert_eq!(handle.join().unwrap().unwrap(), expected, "{kind:?}");
                }
            });
        }
    }
}
