//! pylon-storage: the `Store` trait and its SQLite (rusqlite) and Postgres (sqlx) backends:
//! manifest, migrations, sessions, shard snapshots, match results and backups.
//!
//! Must never: be called from a tick thread; persistence is handed over on a bounded
//! channel and skipped (counted) when full.
//!
//! Today: [`sessions`] (the session store the server's auth uses, SQLite). The entity
//! store, change log and Postgres backend arrive with the storage issue.

pub mod sessions;

pub use sessions::{NewSession, Session, SessionStore, SqliteSessionStore};

use thiserror::Error;

/// A storage failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file or directory could not be opened.
    #[error("cannot open database: {0}")]
    Open(String),
    /// SQLite refused a statement.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The OS gave no randomness for a token.
    #[error("no randomness available: {0}")]
    Random(String),
}
