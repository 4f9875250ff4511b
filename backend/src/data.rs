//! A data set in the Kaggle layout: `train.csv` (`Image,Id`), `train/`,
//! `test/`, `bounding_boxes.csv` (`Image,x0,y0,x1,y1`) and an optional
//! `sample_submission.csv`.
//!
//! Opening a data set checks the CSVs against the folders and reports the
//! first bad line by file and line number; it decodes no image.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use flukeid_shared::crop::BoundingBox;
use serde::Deserialize;

/// The label of images whose individual is unknown or seen only once.
pub const NEW_WHALE: &str = "new_whale";

/// Which folder of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum Split {
    Train,
    Test,
}

/// A training image and the individual it shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Labelled {
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Id")]
    pub id: String,
}

/// An opened data set. Image names are file names inside `train/` or
/// `test/`.
#[derive(Debug, Clone)]
pub struct DataSet {
    pub root: PathBuf,
    /// Rows of `train.csv`, in file order.
    pub train: Vec<Labelled>,
    /// File names in `test/`, sorted.
    pub test: Vec<String>,
    /// Boxes from `bounding_boxes.csv`; an image without one uses the whole
    /// image.
    pub boxes: HashMap<String, BoundingBox>,
}

/// What is wrong with a data set on disk.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path} is missing")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: missing column {column:?} in the header (found {found})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: String,
    },
    #[error("{path}, line {line}: {message}")]
    BadRow {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}, line {line}: image {image} is not in {folder}")]
    AbsentImage {
        path: PathBuf,
        line: u64,
        image: String,
        folder: PathBuf,
    },
    #[error("{path}, line {line}: image {image} appears twice")]
    Duplicate {
        path: PathBuf,
        line: u64,
        image: String,
    },
}

#[derive(Deserialize)]
struct BoxRow {
    #[serde(rename = "Image")]
    image: String,
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Split {
    pub fn folder(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl DataSet {
    /// Opens the data set at `root` and checks that every CSV row names an
    /// image that exists and every box is ordered.
    ///
    /// # Errors
    ///
    /// [`DataError`] naming the file and line of the first problem.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        let train_dir = existing_dir(&root.join("train"))?;
        let test_dir = root.join("test");
        let train_files = list_images(&train_dir)?;
        let test = if test_dir.is_dir() {
            sorted(list_images(&test_dir)?)
        } else {
            Vec::new()
        };

        let train = read_labels(&root.join("train.csv"), &train_files, &train_dir)?;
        let known: HashSet<&str> = train_files
            .iter()
            .chain(test.iter())
            .map(String::as_str)
            .collect();
        let boxes_path = root.join("bounding_boxes.csv");
        let boxes = if boxes_path.exists() {
            read_boxes(&boxes_path, &known, root)?
        } else {
            HashMap::new()
        };

        let data = Self {
            root: root.to_path_buf(),
            train,
            test,
            boxes,
        };
        data.warn_missing_boxes();
        Ok(data)
    }

    /// Path of an image of a split.
    pub fn image_path(&self, split: Split, image: &str) -> PathBuf {
        self.root.join(split.folder()).join(image)
    }

    /// Image names of a split, in a stable order.
    pub fn images(&self, split: Split) -> Vec<String> {
        match split {
            Split::Train => self.train.iter().map(|row| row.image.clone()).collect(),
            Split::Test => self.test.clone(),
        }
    }

    /// The box for an image, or `None` when the whole image is used.
    pub fn bbox(&self, image: &str) -> Option<BoundingBox> {
        self.boxes.get(image).copied()
    }

    fn warn_missing_boxes(&self) {
        let all = self
            .train
            .iter()
            .map(|row| &row.image)
            .chain(self.test.iter());
        let n_missing = all.filter(|image| !self.boxes.contains_key(*image)).count();
        if n_missing > 0 {
            tracing::warn!("{n_missing} images have no bounding box; using the whole image");
        }
    }
}

fn existing_dir(path: &Path) -> Result<PathBuf, DataError> {
    if path.is_dir() {
        Ok(path.to_path_buf())
    } else {
        Err(DataError::Missing {
            path: path.to_path_buf(),
        })
    }
}

fn list_images(dir: &Path) -> Result<HashSet<String>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = HashSet::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

fn sorted(names: HashSet<String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

/// Opens a CSV and checks that its header has every column in `columns`.
fn open_csv(path: &Path, columns: &[&str]) -> Result<csv::Reader<std::fs::File>, DataError> {
    if !path.exists() {
        return Err(DataError::Missing {
            path: path.to_path_buf(),
        });
    }
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    for column in columns {
        if !header.iter().any(|h| h.trim() == *column) {
            let found = header.iter().collect::<Vec<_>>().join(",");
            return Err(DataError::MissingColumn {
                path: path.to_path_buf(),
                column: column.to_string(),
                found,
            });
        }
    }
    Ok(reader)
}

fn read_labels(
    path: &Path,
    files: &HashSet<String>,
    folder: &Path,
) -> Result<Vec<Labelled>, DataError> {
    let mut reader = open_csv(path, &["Image", "Id"])?;
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for record in reader.deserialize::<Labelled>() {
        let row = record.map_err(|e| csv_error(path, e))?;
        let line = rows.len() as u64 + 2;
        let image = row.image.clone();
        if !files.contains(&image) {
            let folder = folder.to_path_buf();
            return Err(DataError::AbsentImage {
                path: path.into(),
                line,
                image,
                folder,
            });
        }
        if !seen.insert(image.clone()) {
            return Err(DataError::Duplicate {
                path: path.into(),
                line,
                image,
            });
        }
        if row.id.trim().is_empty() {
            let message = format!("image {image} has an empty Id");
            return Err(DataError::BadRow {
                path: path.into(),
                line,
                message,
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

fn read_boxes(
    path: &Path,
    known: &HashSet<&str>,
    root: &Path,
) -> Result<HashMap<String, BoundingBox>, DataError> {
    let mut reader = open_csv(path, &["Image", "x0", "y0", "x1", "y1"])?;
    let mut boxes = HashMap::new();
    for (row_idx, record) in reader.deserialize::<BoxRow>().enumerate() {
        let row = record.map_err(|e| csv_error(path, e))?;
        let line = row_idx as u64 + 2;
        let bad = |message: String| DataError::BadRow {
            path: path.into(),
            line,
            message,
        };
        if !known.contains(row.image.as_str()) {
            let image = row.image;
            let folder = root.join("train or test");
            return Err(DataError::AbsentImage {
                path: path.into(),
                line,
                image,
                folder,
            });
        }
        if row.x1 < row.x0 || row.y1 < row.y0 {
            return Err(bad(format!("box of {} has x1 < x0 or y1 < y0", row.image)));
        }
        if row.x0 < 0.0 || row.y0 < 0.0 {
            return Err(bad(format!(
                "box of {} has a negative coordinate",
                row.image
            )));
        }
        boxes.insert(row.image, BoundingBox::new(row.x0, row.y0, row.x1, row.y1));
    }
    Ok(boxes)
}

fn csv_error(path: &Path, error: csv::Error) -> DataError {
    let line = error.position().map_or(0, |p| p.line());
    let message = match error.kind() {
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        _ => error.to_string(),
    };
    DataError::BadRow {
        path: path.to_path_buf(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(train_csv: &str, boxes_csv: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for folder in ["train", "test"] {
            std::fs::create_dir(dir.path().join(folder)).unwrap();
        }
        for name in ["a.jpg", "b.jpg", "c.jpg"] {
            std::fs::write(dir.path().join("train").join(name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("test/t.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("train.csv"), train_csv).unwrap();
        std::fs::write(dir.path().join("bounding_boxes.csv"), boxes_csv).unwrap();
        dir
    }

    const BOXES: &str = "Image,x0,y0,x1,y1\na.jpg,1,2,30,40\nt.jpg,0,0,5,5\n";

    #[test]
    fn opens_a_valid_layout() {
        let dir = layout("Image,Id\na.jpg,w_1\nb.jpg,new_whale\n", BOXES);
        let data = DataSet::open(dir.path()).unwrap();
        assert_eq!(data.train.len(), 2);
        assert_eq!(data.test, vec!["t.jpg".to_string()]);
        assert_eq!(
            data.bbox("a.jpg"),
            Some(BoundingBox::new(1.0, 2.0, 30.0, 40.0))
        );
        assert_eq!(data.bbox("b.jpg"), None);
    }

    #[test]
    fn missing_column_is_named() {
        let dir = layout("Image,Label\na.jpg,w_1\n", BOXES);
        let err = DataSet::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("train.csv") && err.contains("\"Id\""), "{err}");
    }

    #[test]
    fn absent_image_names_file_and_line() {
        let dir = layout("Image,Id\na.jpg,w_1\nzzz.jpg,w_2\n", BOXES);
        let err = DataSet::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, DataError::AbsentImage { line: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("zzz.jpg"));
    }

    #[test]
    fn inverted_box_names_the_line() {
        let boxes = "Image,x0,y0,x1,y1\na.jpg,1,2,30,40\nb.jpg,50,0,10,10\n";
        let dir = layout("Image,Id\na.jpg,w_1\n", boxes);
        let err = DataSet::open(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::BadRow { line: 3, .. }), "{err}");
    }

    #[test]
    fn non_numeric_box_is_a_bad_row() {
        let boxes = "Image,x0,y0,x1,y1\na.jpg,1,2,thirty,40\n";
        let dir = layout("Image,Id\na.jpg,w_1\n", boxes);
        let err = DataSet::open(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::BadRow { line: 2, .. }), "{err}");
    }

    #[test]
    fn missing_train_folder_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = DataSet::open(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err}");
    }
}
