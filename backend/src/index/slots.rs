//! The two-way map between gallery ids and packed rows, which lets
//! entries come and go while the ids of the others stay put.

use super::IndexError;

/// The two-way map between rows and ids.
pub(super) struct Slots {
    /// `gallery_idx` of each live row.
    pub(super) row_ids: Vec<usize>,
    /// Row of each `gallery_idx` ever given out; `None` once removed.
    pub(super) row_of: Vec<Option<usize>>,
}

impl Slots {
    pub(super) fn new(n_rows: usize) -> Self {
        Self {
            row_ids: (0..n_rows).collect(),
            row_of: (0..n_rows).map(Some).collect(),
        }
    }

    pub(super) fn n_slots(&self) -> usize {
        self.row_of.len()
    }

    pub(super) fn push(&mut self) {
        self.row_of.push(Some(self.row_ids.len()));
        self.row_ids.push(self.row_of.len() - 1);
    }

    pub(super) fn row(&self, gallery_idx: usize) -> Result<usize, IndexError> {
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
    pub(super) fn swap_remove(&mut self, row: usize) {
        let gallery_idx = self.row_ids.swap_remove(row);
        self.row_of[gallery_idx] = None;
        if let Some(&moved) = self.row_ids.get(row) {
            self.row_of[moved] = Some(row);
        }
    }
}
