//! The brute-force back end: the gallery rows mirrored on a libtorch
//! device, searched with one matrix product per batch of queries.

use ndarray::{ArrayView2, Axis};
use tch::{Device, Kind, Tensor};

use super::rank::Scored;
use super::{GalleryIndex, IndexError, Neighbour};

/// Most cells of the query-by-gallery distance matrix held at once by the
/// brute-force path (64 MiB of f32); queries are batched to stay below.
const MAX_BATCH_CELLS: usize = 1 << 24;

impl GalleryIndex {
    pub(super) fn search_device(
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
}

/// The gallery rows and their squared norms on a libtorch device, with
/// spare capacity so that adding a row rarely reallocates.
pub(super) struct DeviceRows {
    device: Device,
    dim: usize,
    /// Bound on the distance matrix of one batch of queries.
    pub(super) max_batch_cells: usize,
    /// `[capacity, dim]`; the first `len` rows are live.
    rows: SharedTensor,
    /// `[capacity]`, computed on the host so that equal rows get equal norms.
    sq_norms: SharedTensor,
}

impl DeviceRows {
    /// # Shapes
    /// `rows`: `n_rows * dim` values, row-major.
    pub(super) fn new(rows: &[f32], dim: usize, device: Device) -> Result<Self, IndexError> {
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
    pub(super) fn push(&mut self, row: &[f32], len: usize) -> Result<(), IndexError> {
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
    pub(super) fn move_row(&mut self, from: usize, to: usize) -> Result<(), IndexError> {
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
