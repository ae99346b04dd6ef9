//! pylon-storage: the [`Store`] (entities, change log, saved matches, replays) and the
//! [`Sessions`] store, each on SQLite (rusqlite) or Postgres (sqlx): manifest,
//! migrations, sessions, shard snapshots, match results and backups.
//!
//! Must never: be called from a tick thread; persistence is handed over on a bounded
//! channel and skipped (counted) when full.
//!
//! Layout. Backend-neutral: [`manifest`] (pylon.manifest.json), [`policy`] (rule
//! expressions), [`access`] (the compiled policies: who may read and write which row),
//! [`visible`] (pages and counts of the rows a caller may read), [`entity`] (rows, write
//! operations, change events and their log rows, errors), [`write`] (validation, guards,
//! batch limit), [`migrate`] (the migration planner, index changes), [`query`] (filters,
//! the statements of a page, paging: `limit + 1`, `has_more`, next cursor, the
//! change-log window), [`sql`] (every statement both backends run, in a [`sql::Dialect`]),
//! [`sessions`] (session types, tokens, the [`Sessions`] enum), [`store`] (the [`Store`]
//! enum the server uses), [`time`].
//!
//! The two backends have one layout: `mod.rs` (the store: open/connect, options,
//! accessors), `schema.rs` (internal tables, migrations), `writer.rs` (the write path:
//! SQLite's writer thread with group commit, Postgres's counter-ordered transactions),
//! `read.rs` (rows, pages, change log, saved matches, replays), `rows.rs` (dialect,
//! columns <-> JSON, binding), `sessions.rs` (that backend's session store), `backup.rs`
//! (SQLite: online backup API; Postgres: logical export and import). They only run the
//! statements and hand rows over; one test suite covers both
//! (`storage/tests/store_suite.rs`).

pub mod access;
pub mod entity;
pub mod manifest;
pub mod migrate;
pub mod policy;
pub mod postgres;
pub mod query;
pub mod sessions;
pub mod sql;
pub mod sqlite;
pub mod store;
pub mod time;
pub mod visible;
pub mod write;

pub use access::{Access, Caller, Policies, Projection, ReadScope};
pub use entity::{ChangeEvent, ChangeKind, EntityError, Row, Verdict, WriteOp, WriteResult};
pub use manifest::Manifest;
pub use postgres::PgSessionStore;
pub use sessions::{NewSession, Session};
pub use sqlite::{SqliteOptions, SqliteSessionStore, SqliteStore, backup_file, migrate_file};
pub use store::{Backend, Sessions, Store, stored_manifest};

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
    /// The manifest's schema could not be applied (the message names entity and field).
    #[error("migration {0}")]
    Migrate(String),
    /// Postgres refused or failed.
    #[error("postgres: {0}")]
    Postgres(String),
    /// A write could not be committed.
    #[error("write failed: {0}")]
    Write(String),
    /// Postgres could not be reached at all (refused, authentication, no answer).
    #[error(transparent)]
    Unreachable(#[from] postgres::ProbeError),
}

/// A new row id: 20 characters of lowercase base32 (100 random bits).
///
/// # Errors
/// [`StoreError::Random`] when the OS has no randomness.
pub fn new_id() -> Result<String, StoreError> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])).collect())
}
