//! Keeping uploaded photos: the file goes under `uploads/`, named by the
//! SHA-256 of its bytes, through a temporary file renamed into place; only
//! then is the catalogue row committed. A crash in between leaves at worst
//! an orphan file, never a row without its file.

use std::io::Write;
use std::path::Path;

use image::ImageFormat;
use sha2::{Digest, Sha256};

use super::catalog::{Catalog, CatalogError, NewUpload};

/// Why an upload could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write the upload into {dir}: {source}")]
    Write { dir: String, source: std::io::Error },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A photo stored under `uploads/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// File name inside `uploads/`: the hash and the format's extension.
    pub file: String,
    pub sha256: String,
}

/// What is recorded of an upload besides its file.
pub struct UploadFacts {
    pub bbox: Option<flukeid_shared::crop::BoundingBox>,
    pub is_crop: bool,
    pub run_id: String,
    pub candidates: Vec<flukeid_shared::api::CandidateMatch>,
}

/// Writes the file, then records the upload; returns its id.
///
/// # Errors
///
/// [`StoreError`] when the file or the row cannot be written.
pub fn keep_upload(
    dir: &Path,
    catalog: &Catalog,
    bytes: &[u8],
    format: ImageFormat,
    facts: UploadFacts,
) -> Result<(i64, StoredFile), StoreError> {
    let stored = store_file(dir, bytes, format)?;
    let upload = NewUpload {
        file: stored.file.clone(),
        sha256: stored.sha256.clone(),
        bbox: facts.bbox,
        is_crop: facts.is_crop,
        run_id: facts.run_id,
        candidates: facts.candidates,
    };
    let id = catalog.insert_upload(&upload)?;
    Ok((id, stored))
}

/// Stores `bytes` under their hash; the same photo sent twice is stored
/// once.
///
/// # Errors
///
/// [`StoreError::Write`] naming the folder.
pub fn store_file(dir: &Path, bytes: &[u8], format: ImageFormat) -> Result<StoredFile, StoreError> {
    let fail = |source| StoreError::Write {
        dir: dir.display().to_string(),
        source,
    };
    let sha256 = hex::encode(Sha256::digest(bytes));
    let extension = if format == ImageFormat::Png {
        "png"
    } else {
        "jpg"
    };
    let file = format!("{sha256}.{extension}");
    let path = dir.join(&file);
    if !path.exists() {
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        tmp.write_all(bytes).map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        tmp.persist(&path).map_err(|e| fail(e.error))?;
    }
    Ok(StoredFile { file, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_content_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = store_file(dir.path(), b"fluke", ImageFormat::Jpeg).unwrap();
        // Worked out with `printf fluke | sha256sum`.
        let sha256 = "7625d82f19095a282aa526231a1e2bb37f6049062276b01857330354ca393bf3";
        assert_eq!(first.file, format!("{sha256}.jpg"));
        let again = store_file(dir.path(), b"fluke", ImageFormat::Jpeg).unwrap();
        assert_eq!(first, again);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_row_is_written_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::in_memory().unwrap();
        let facts = UploadFacts {
            bbox: None,
            is_crop: true,
            run_id: "run-0001".into(),
            candidates: vec![],
        };
        let (id, stored) =
            keep_upload(dir.path(), &catalog, b"png", ImageFormat::Png, facts).unwrap();
        let row = catalog.upload(id).unwrap().unwrap();
        assert_eq!(row.file, stored.file);
        assert!(dir.path().join(&row.file).is_file());
    }
}
