//! The catalogue in SQLite: individuals, their training images, uploads,
//! sightings, training runs and a few settings (the serving run).
//!
//! One connection in WAL mode behind a mutex; callers reach it from
//! blocking threads (see [`super::state::blocking`]), never from the async
//! runtime. Every change that touches more than one row runs in a
//! transaction. Files are not this module's business: an upload's file is
//! written before its row is inserted (see [`super::uploads`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use flukeid_shared::api::{CandidateMatch, IndividualSummary, RunState, UploadStatus};
use flukeid_shared::crop::BoundingBox;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::images::{ImageKind, ImageRef};
use crate::data::{Labelled, NEW_WHALE};

/// Why the catalogue could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot open the catalogue {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("catalogue query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("catalogue holds an unreadable value in {column}: {message}")]
    BadValue {
        column: &'static str,
        message: String,
    },
}

/// Why an upload could not be confirmed.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("there is no upload {upload_id}")]
    UnknownUpload { upload_id: i64 },
    #[error("upload {upload_id} was already confirmed as {individual}")]
    AlreadyConfirmed { upload_id: i64, individual: String },
    #[error("there is no individual {individual}; send {{\"new_individual\": true}} to add one")]
    UnknownIndividual { individual: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The SQLite catalogue.
pub struct Catalog {
    conn: Mutex<Connection>,
}

/// An upload about to be recorded.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// File name inside `uploads/`.
    pub file: String,
    pub sha256: String,
    pub bbox: Option<BoundingBox>,
    pub is_crop: bool,
    pub run_id: String,
    pub candidates: Vec<CandidateMatch>,
}

/// A recorded upload.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: i64,
    pub file: String,
    pub created_at: i64,
    pub status: UploadStatus,
    pub bbox: Option<BoundingBox>,
    pub is_crop: bool,
    pub run_id: String,
    pub candidates: Vec<CandidateMatch>,
    pub individual: Option<String>,
}

/// A person's verdict on an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Known(String),
    NewIndividual,
}

/// What [`Catalog::confirm`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub individual: String,
    pub sighting_id: i64,
}

/// A recorded sighting with its photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SightingRow {
    pub id: i64,
    pub individual: String,
    pub upload_id: i64,
    pub file: String,
    pub sighted_at: i64,
    /// `sighted_at` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub sighted_utc: String,
}

/// A training run's row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub created_at: i64,
    pub state: RunState,
    pub message: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS individuals (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    origin TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY,
    individual TEXT REFERENCES individuals(id)
);
CREATE INDEX IF NOT EXISTS images_by_individual ON images(individual);
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed')),
    bbox TEXT,
    is_crop INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    candidates TEXT NOT NULL,
    individual TEXT REFERENCES individuals(id)
);
CREATE INDEX IF NOT EXISTS uploads_by_status ON uploads(status);
CREATE TABLE IF NOT EXISTS sightings (
    id INTEGER PRIMARY KEY,
    individual TEXT NOT NULL REFERENCES individuals(id),
    upload_id INTEGER NOT NULL UNIQUE REFERENCES uploads(id),
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

const SERVING_RUN: &str = "serving_run";
const UPLOAD_COLUMNS: &str =
    "id, file, created_at, status, bbox, is_crop, run_id, candidates, individual";

impl Catalog {
    /// Opens (creating if needed) the catalogue at `path` in WAL mode.
    ///
    /// # Errors
    ///
    /// [`CatalogError::Open`] naming the file.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let open = |source| CatalogError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        Self::prepare(conn).map_err(|e| match e {
            CatalogError::Sqlite(source) => open(source),
            other => other,
        })
    }

    /// A catalogue that lives in memory, for tests.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite cannot start.
    pub fn in_memory() -> Result<Self, CatalogError> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(conn: Connection) -> Result<Self, CatalogError> {
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // change is a transaction), so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the individuals and images of `train.csv`; rows already
    /// known are left alone.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails; nothing is recorded then.
    pub fn import_training_labels(&self, rows: &[Labelled]) -> Result<usize, CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_secs();
        let mut n_new = 0;
        {
            let mut individual = tx.prepare(
                "INSERT OR IGNORE INTO individuals (id, created_at, origin)
                 VALUES (?1, ?2, 'train.csv')",
            )?;
            let mut image =
                tx.prepare("INSERT OR IGNORE INTO images (name, individual) VALUES (?1, ?2)")?;
            for row in rows {
                let id = (row.id != NEW_WHALE).then_some(row.id.as_str());
                if let Some(id) = id {
                    individual.execute(params![id, now])?;
                }
                n_new += image.execute(params![row.image, id])?;
            }
        }
        tx.commit()?;
        Ok(n_new)
    }

    /// The serving run, if one was made so.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails.
    pub fn serving_run(&self) -> Result<Option<String>, CatalogError> {
        let conn = self.conn();
        let mut query = conn.prepare("SELECT value FROM settings WHERE key = ?1")?;
        Ok(query
            .query_row([SERVING_RUN], |row| row.get(0))
            .optional()?)
    }

    /// Records the serving run.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails.
    pub fn set_serving_run(&self, run_id: &str) -> Result<(), CatalogError> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![SERVING_RUN, run_id],
        )?;
        Ok(())
    }

    /// Records a new run.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails or the id is taken.
    pub fn insert_run(&self, id: &str, state: RunState, message: &str) -> Result<(), CatalogError> {
        self.conn().execute(
            "INSERT INTO runs (id, created_at, state, message) VALUES (?1, ?2, ?3, ?4)",
            params![id, now_secs(), state_name(state), message],
        )?;
        Ok(())
    }

    /// Changes a run's state.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails.
    pub fn set_run_state(
        &self,
        id: &str,
        state: RunState,
        message: &str,
    ) -> Result<(), CatalogError> {
        self.conn().execute(
            "UPDATE runs SET state = ?2, message = ?3 WHERE id = ?1",
            params![id, state_name(state), message],
        )?;
        Ok(())
    }

    /// Every run, oldest first.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails or a state is unreadable.
    pub fn runs(&self) -> Result<Vec<RunRow>, CatalogError> {
        let conn = self.conn();
        let mut query = conn
            .prepare("SELECT id, created_at, state, message FROM runs ORDER BY created_at, id")?;
        let rows = query
            .query_map([], run_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().collect()
    }

    /// One run.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails.
    pub fn run(&self, id: &str) -> Result<Option<RunRow>, CatalogError> {
        let conn = self.conn();
        let mut query =
            conn.prepare("SELECT id, created_at, state, message FROM runs WHERE id = ?1")?;
        query.query_row([id], run_row).optional()?.transpose()
    }

    /// Brings the runs table in line with the `runs/` folder at start-up:
    /// runs found on disk only are added (finished if their state says so),
    /// and runs the server was training when it went down are marked
    /// stopped, since their last checkpoint is what survives.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails.
    pub fn reconcile_runs(&self, on_disk: &[(String, bool)]) -> Result<(), CatalogError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (id, finished) in on_disk {
            let (state, message) = if *finished {
                (RunState::Finished, "found on disk")
            } else {
                (RunState::Stopped, "found on disk, not finished")
            };
            tx.execute(
                "INSERT OR IGNORE INTO runs (id, created_at, state, message)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, now_secs(), state_name(state), message],
            )?;
        }
        tx.execute(
            "UPDATE runs SET state = 'stopped',
                 message = 'the server went down during training; resume the run'
             WHERE state IN ('preparing', 'training', 'stopping')",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records an upload and returns its id.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails; nothing is recorded then.
    pub fn insert_upload(&self, upload: &NewUpload) -> Result<i64, CatalogError> {
        let bbox = upload
            .bbox
            .map(|b| serde_json::to_string(&b).expect("boxes serialise"));
        let candidates = serde_json::to_string(&upload.candidates).expect("candidates serialise");
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO uploads
                 (file, sha256, created_at, status, bbox, is_crop, run_id, candidates)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7)",
            params![
                upload.file,
                upload.sha256,
                now_secs(),
                bbox,
                upload.is_crop,
                upload.run_id,
                candidates
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    /// One upload.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails or a stored value is unreadable.
    pub fn upload(&self, id: i64) -> Result<Option<UploadRow>, CatalogError> {
        let conn = self.conn();
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ?1");
        let row = conn.prepare(&sql)?.query_row([id], upload_row).optional()?;
        row.transpose()
    }

    /// Uploads with `status` (all when `None`), oldest first.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails or a stored value is unreadable.
    pub fn uploads(&self, status: Option<UploadStatus>) -> Result<Vec<UploadRow>, CatalogError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE ?1 IS NULL OR status = ?1 ORDER BY id"
        );
        let status = status.map(upload_status_name);
        let rows = conn
            .prepare(&sql)?
            .query_map([status], upload_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().collect()
    }

    /// Confirms an upload as an individual (a new one with a fresh id when
    /// the verdict says so) and records the sighting, in one transaction.
    ///
    /// # Errors
    ///
    /// [`ConfirmError`] for an unknown upload or individual, an upload
    /// already confirmed, or SQLite failing; nothing is recorded then.
    pub fn confirm(&self, upload_id: i64, verdict: &Verdict) -> Result<Confirmed, ConfirmError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(CatalogError::from)?;
        check_pending(&tx, upload_id)?;
        let individual = match verdict {
            Verdict::Known(id) => known_individual(&tx, id)?,
            Verdict::NewIndividual => new_individual(&tx)?,
        };
        let now = now_secs();
        tx.execute(
            "UPDATE uploads SET status = 'confirmed', individual = ?2 WHERE id = ?1",
            params![upload_id, individual],
        )
        .map_err(CatalogError::from)?;
        tx.execute(
            "INSERT INTO sightings (individual, upload_id, created_at) VALUES (?1, ?2, ?3)",
            params![individual, upload_id, now],
        )
        .map_err(CatalogError::from)?;
        let sighting_id = tx.last_insert_rowid();
        tx.commit().map_err(CatalogError::from)?;
        Ok(Confirmed {
            individual,
            sighting_id,
        })
    }

    /// Every individual with its counts, by id.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails.
    pub fn individuals(&self) -> Result<Vec<IndividualSummary>, CatalogError> {
        let conn = self.conn();
        let mut query = conn.prepare(
            "SELECT i.id,
                 (SELECT COUNT(*) FROM images WHERE individual = i.id),
                 (SELECT COUNT(*) FROM sightings WHERE individual = i.id),
                 (SELECT MAX(created_at) FROM sightings WHERE individual = i.id)
             FROM individuals i ORDER BY i.id",
        )?;
        let rows = query.query_map([], |row| {
            let (n_images, n_sightings): (i64, i64) = (row.get(1)?, row.get(2)?);
            Ok(IndividualSummary {
                id: row.get(0)?,
                n_photos: (n_images + n_sightings) as usize,
                n_sightings: n_sightings as usize,
                last_seen: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Training photos of an individual, or `None` when it is unknown.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails.
    pub fn individual_images(&self, id: &str) -> Result<Option<Vec<ImageRef>>, CatalogError> {
        let conn = self.conn();
        let exists: Option<String> = conn
            .query_row("SELECT id FROM individuals WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let mut query =
            conn.prepare("SELECT name FROM images WHERE individual = ?1 ORDER BY name")?;
        let names = query.query_map([id], |row| row.get::<_, String>(0))?;
        let images = names.map(|name| name.map(|n| ImageRef::new(ImageKind::Train, n)));
        Ok(Some(images.collect::<Result<_, _>>()?))
    }

    /// Sightings, oldest first; of one individual, or all.
    ///
    /// # Errors
    ///
    /// [`CatalogError`] when SQLite fails.
    pub fn sightings(&self, individual: Option<&str>) -> Result<Vec<SightingRow>, CatalogError> {
        let conn = self.conn();
        let mut query = conn.prepare(
            "SELECT s.id, s.individual, s.upload_id, u.file, s.created_at,
                 strftime('%Y-%m-%dT%H:%M:%SZ', s.created_at, 'unixepoch')
             FROM sightings s JOIN uploads u ON u.id = s.upload_id
             WHERE ?1 IS NULL OR s.individual = ?1 ORDER BY s.created_at, s.id",
        )?;
        let rows = query.query_map([individual], |row| {
            Ok(SightingRow {
                id: row.get(0)?,
                individual: row.get(1)?,
                upload_id: row.get(2)?,
                file: row.get(3)?,
                sighted_at: row.get(4)?,
                sighted_utc: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The name a run state is stored under, as in the JSON API.
pub fn state_name(state: RunState) -> &'static str {
    match state {
        RunState::Preparing => "preparing",
        RunState::Training => "training",
        RunState::Stopping => "stopping",
        RunState::Finished => "finished",
        RunState::Stopped => "stopped",
        RunState::Failed => "failed",
    }
}

fn parse_state(name: &str) -> Result<RunState, CatalogError> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|e| {
        CatalogError::BadValue {
            column: "runs.state",
            message: e.to_string(),
        }
    })
}

fn upload_status_name(status: UploadStatus) -> &'static str {
    match status {
        UploadStatus::Pending => "pending",
        UploadStatus::Confirmed => "confirmed",
    }
}

fn run_row(row: &Row) -> rusqlite::Result<Result<RunRow, CatalogError>> {
    let state: String = row.get(2)?;
    let (id, created_at, message) = (row.get(0)?, row.get(1)?, row.get(3)?);
    Ok(parse_state(&state).map(|state| RunRow {
        id,
        created_at,
        state,
        message,
    }))
}

fn upload_row(row: &Row) -> rusqlite::Result<Result<UploadRow, CatalogError>> {
    let status: String = row.get(3)?;
    let bbox: Option<String> = row.get(4)?;
    let candidates: String = row.get(7)?;
    let (id, file, created_at, is_crop, run_id, individual) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(5)?,
        row.get(6)?,
        row.get(8)?,
    );
    Ok(
        parse_upload_fields(&status, bbox.as_deref(), &candidates).map(
            |(status, bbox, candidates)| UploadRow {
                id,
                file,
                created_at,
                status,
                bbox,
                is_crop,
                run_id,
                candidates,
                individual,
            },
        ),
    )
}

type UploadFields = (UploadStatus, Option<BoundingBox>, Vec<CandidateMatch>);

fn parse_upload_fields(
    status: &str,
    bbox: Option<&str>,
    candidates: &str,
) -> Result<UploadFields, CatalogError> {
    let bad = |column| {
        move |e: serde_json::Error| CatalogError::BadValue {
            column,
            message: e.to_string(),
        }
    };
    let status = serde_json::from_value(serde_json::Value::String(status.into()))
        .map_err(bad("uploads.status"))?;
    let bbox = bbox
        .map(serde_json::from_str)
        .transpose()
        .map_err(bad("uploads.bbox"))?;
    let candidates = serde_json::from_str(candidates).map_err(bad("uploads.candidates"))?;
    Ok((status, bbox, candidates))
}

fn check_pending(tx: &Transaction, upload_id: i64) -> Result<(), ConfirmError> {
    let found: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT status, individual FROM uploads WHERE id = ?1",
            [upload_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(CatalogError::from)?;
    match found {
        None => Err(ConfirmError::UnknownUpload { upload_id }),
        Some((status, individual)) if status == "confirmed" => {
            Err(ConfirmError::AlreadyConfirmed {
                upload_id,
                individual: individual.unwrap_or_default(),
            })
        }
        Some(_) => Ok(()),
    }
}

fn known_individual(tx: &Transaction, id: &str) -> Result<String, ConfirmError> {
    let found: Option<String> = tx
        .query_row("SELECT id FROM individuals WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()
        .map_err(CatalogError::from)?;
    found.ok_or_else(|| ConfirmError::UnknownIndividual {
        individual: id.to_string(),
    })
}

/// Adds an individual with a fresh id in the Kaggle style: `w_` and seven
/// hex digits.
fn new_individual(tx: &Transaction) -> Result<String, ConfirmError> {
    loop {
        let id = format!("w_{:07x}", rand::random::<u32>() & 0x0fff_ffff);
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO individuals (id, created_at, origin)
                 VALUES (?1, ?2, 'upload')",
                params![id, now_secs()],
            )
            .map_err(CatalogError::from)?;
        if n == 1 {
            return Ok(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(image: &str, id: &str) -> Labelled {
        Labelled {
            image: image.into(),
            id: id.into(),
        }
    }

    fn upload(catalog: &Catalog) -> i64 {
        let new = NewUpload {
            file: "ab.jpg".into(),
            sha256: "ab".into(),
            bbox: Some(BoundingBox::new(1.0, 2.0, 3.0, 4.0)),
            is_crop: false,
            run_id: "run-0001".into(),
            candidates: vec![],
        };
        catalog.insert_upload(&new).unwrap()
    }

    #[test]
    fn training_labels_import_once_and_skip_new_whale() {
        let catalog = Catalog::in_memory().unwrap();
        let rows = [
            labelled("a.jpg", "w_1"),
            labelled("b.jpg", "w_1"),
            labelled("c.jpg", NEW_WHALE),
        ];
        assert_eq!(catalog.import_training_labels(&rows).unwrap(), 3);
        assert_eq!(catalog.import_training_labels(&rows).unwrap(), 0);
        let individuals = catalog.individuals().unwrap();
        assert_eq!(individuals.len(), 1);
        assert_eq!(
            (individuals[0].id.as_str(), individuals[0].n_photos),
            ("w_1", 2)
        );
    }

    #[test]
    fn confirming_records_a_sighting_once() {
        let catalog = Catalog::in_memory().unwrap();
        catalog
            .import_training_labels(&[labelled("a.jpg", "w_1")])
            .unwrap();
        let upload_id = upload(&catalog);

        let confirmed = catalog
            .confirm(upload_id, &Verdict::Known("w_1".into()))
            .unwrap();
        assert_eq!(confirmed.individual, "w_1");
        let again = catalog.confirm(upload_id, &Verdict::NewIndividual);
        assert!(matches!(again, Err(ConfirmError::AlreadyConfirmed { .. })));

        let row = catalog.upload(upload_id).unwrap().unwrap();
        assert_eq!(row.status, UploadStatus::Confirmed);
        assert_eq!(row.bbox, Some(BoundingBox::new(1.0, 2.0, 3.0, 4.0)));
        let sightings = catalog.sightings(Some("w_1")).unwrap();
        assert_eq!(sightings.len(), 1);
        assert_eq!(sightings[0].sighted_utc.len(), "2024-01-01T00:00:00Z".len());
        assert!(catalog
            .uploads(Some(UploadStatus::Pending))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn unknown_individuals_and_uploads_change_nothing() {
        let catalog = Catalog::in_memory().unwrap();
        let upload_id = upload(&catalog);
        let err = catalog
            .confirm(upload_id, &Verdict::Known("w_nope".into()))
            .unwrap_err();
        assert!(matches!(err, ConfirmError::UnknownIndividual { .. }));
        assert!(matches!(
            catalog.confirm(99, &Verdict::NewIndividual),
            Err(ConfirmError::UnknownUpload { .. })
        ));
        assert_eq!(
            catalog.uploads(Some(UploadStatus::Pending)).unwrap().len(),
            1
        );
    }

    #[test]
    fn new_individuals_get_kaggle_style_ids() {
        let catalog = Catalog::in_memory().unwrap();
        let upload_id = upload(&catalog);
        let confirmed = catalog.confirm(upload_id, &Verdict::NewIndividual).unwrap();
        assert!(confirmed.individual.starts_with("w_") && confirmed.individual.len() == 9);
        assert!(catalog
            .individual_images(&confirmed.individual)
            .unwrap()
            .is_some());
    }

    #[test]
    fn interrupted_training_is_marked_stopped() {
        let catalog = Catalog::in_memory().unwrap();
        catalog
            .insert_run("run-0001", RunState::Training, "")
            .unwrap();
        catalog
            .reconcile_runs(&[("run-0002".into(), true)])
            .unwrap();
        let runs = catalog.runs().unwrap();
        assert_eq!(runs[0].state, RunState::Stopped);
        assert_eq!(
            catalog.run("run-0002").unwrap().unwrap().state,
            RunState::Finished
        );
        catalog.set_serving_run("run-0002").unwrap();
        assert_eq!(catalog.serving_run().unwrap().as_deref(), Some("run-0002"));
    }
}
