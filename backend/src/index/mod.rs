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
//!
//! This file holds the public types and [`GalleryIndex`]'s own methods;
//! `linfa` and `brute_force` hold the two search paths, `rank` the
//! ordering both use to turn scored rows into neighbours, and `slots` the
//! map between ids and rows.

mod brute_force;
mod linfa;
mod rank;
mod slots;
#[cfg(test)]
mod tests;

use std::fmt;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use tch::Device;
use tracing::debug;

use brute_force::DeviceRows;
use slots::Slots;

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

/// Largest squared norm an embedding may have: the squared distance
/// between two embeddings is at most four times the larger squared norm,
/// and must stay finite in f32.
const MAX_SQ_NORM: f32 = f32::MAX / 4.0;

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
