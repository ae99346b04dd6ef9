//! Online copies of SQLite databases with the backup API: consistent while other
//! connections (or processes) keep writing. `pylon backup` copies the entity and session
//! files with [`backup_file`]; a running store copies itself with
//! [`SqliteStore::backup_to`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::SqliteStore;
use crate::StoreError;
use crate::entity::EntityError;

/// Copies everything of `from` into `to`, 256 pages a step, without pausing between steps.
fn copy(from: &Connection, to: &mut Connection) -> Result<(), StoreError> {
    let backup = rusqlite::backup::Backup::new(from, to)?;
    backup.run_to_completion(256, Duration::ZERO, None)?;
    Ok(())
}

fn open(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))
}

/// A consistent copy of the SQLite database at `src` into a new file `dest`, taken with
/// the backup API while other processes may be writing.
///
/// # Errors
/// Store errors (naming the file).
pub fn backup_file(src: &Path, dest: &Path) -> Result<(), StoreError> {
    let from = open(src, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    from.busy_timeout(Duration::from_secs(5))?;
    let mut to = open(dest, OpenFlags::default())?;
    copy(&from, &mut to)
}

impl SqliteStore {
    /// A consistent online copy of the database to `dest` (SQLite backup API), taken on
    /// one of the store's read connections.
    ///
    /// # Errors
    /// Store errors.
    pub async fn backup_to(&self, dest: PathBuf) -> Result<(), EntityError> {
        self.read(move |conn, _| {
            let mut out = open(&dest, OpenFlags::default())?;
            Ok(copy(conn, &mut out)?)
        })
        .await
    }
}
