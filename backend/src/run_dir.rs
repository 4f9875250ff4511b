//! The files of a training run, and writing them so that a crash never
//! leaves one half-written: everything goes to a temporary file in the same
//! folder and is renamed into place.
//!
//! A run folder holds `config.json` (the training config), `split.json`
//! (the train/validation split), `state.json` (where training stands and
//! which checkpoint holds its tensors), `checkpoint-STEP.safetensors`
//! (weights and optimizer state), `model.json` with `model.safetensors`
//! (the latest weights, for embedding), `history.jsonl` (every progress
//! event) and, after calibration, `calibration.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a run file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Paths inside a run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub fn split(&self) -> PathBuf {
        self.root.join("split.json")
    }

    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }

    pub fn history(&self) -> PathBuf {
        self.root.join("history.jsonl")
    }

    pub fn calibration(&self) -> PathBuf {
        self.root.join("calibration.json")
    }

    pub fn checkpoint(&self, global_step: usize) -> PathBuf {
        self.root
            .join(format!("checkpoint-{global_step:08}.safetensors"))
    }
}

/// Writes `value` as pretty JSON through a temporary file and a rename.
///
/// # Errors
///
/// [`RunFileError::Write`] naming the path.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), RunFileError> {
    let json = serde_json::to_vec_pretty(value).expect("run files serialise to JSON");
    write_atomic(path, &json)
}

/// Writes bytes through a temporary file in the same folder, synced, then
/// renamed over `path`.
///
/// # Errors
///
/// [`RunFileError::Write`] naming the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunFileError> {
    let write = |source| RunFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
    tmp.write_all(bytes).map_err(write)?;
    tmp.as_file().sync_all().map_err(write)?;
    tmp.persist(path).map_err(|e| write(e.error))?;
    Ok(())
}

/// Reads a JSON file.
///
/// # Errors
///
/// [`RunFileError`] naming the path when it cannot be read or parsed.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, RunFileError> {
    let bytes = std::fs::read(path).map_err(|source| RunFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| RunFileError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Appends one JSON line; history is advisory, so it is not synced.
///
/// # Errors
///
/// [`RunFileError::Write`] naming the path.
pub fn append_json_line<T: Serialize>(path: &Path, value: &T) -> Result<(), RunFileError> {
    let write = |source| RunFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(write)?;
    let mut line = serde_json::to_vec(value).expect("events serialise to JSON");
    line.push(b'\n');
    file.write_all(&line).map_err(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_json_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_json_atomic(&path, &vec![1, 2]).unwrap();
        write_json_atomic(&path, &vec![3]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&path).unwrap(), vec![3]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp files left"
        );
    }

    #[test]
    fn bad_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = read_json::<Vec<i32>>(&path).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
