//! [`Store`] and [`Sessions`]: the entity store and the session store the server uses,
//! SQLite or Postgres, each with one contract.
//! Every method forwards to the backend; the storage test suite runs against both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::StoreError;
use crate::entity::{
    ChangesPage, CursorPage, EntityError, IndexedError, Page, Row, WriteOp, WriteResult,
};
use crate::manifest::Manifest;
use crate::postgres::{PgOptions, PgSessionStore, PgStore};
use crate::sessions::{NewSession, Session};
use crate::sqlite::{SqliteOptions, SqliteSessionStore, SqliteStore};

/// Where the entity data lives.
#[derive(Debug, Clone)]
pub enum Backend {
    /// An SQLite file (`PYLON_DB_PATH`).
    Sqlite(PathBuf),
    /// A Postgres URL (`DATABASE_URL`), optionally in its own schema.
    Postgres {
        /// `postgres://…`.
        url: String,
        /// Schema instead of `public`.
        schema: Option<String>,
    },
}

/// The entity store.
#[derive(Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(SqliteStore),
    /// Postgres.
    Postgres(PgStore),
}

macro_rules! forward {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Store::Sqlite($s) => $body,
            Store::Postgres($s) => $body,
        }
    };
}

/// The manifest the database of `backend` was last migrated to, if any: what commands
/// run without `PYLON_MANIFEST` use, so `pylon migrate` or `pylon serve` after `pylon dev`
/// keep the manifest `dev` loaded.
///
/// # Errors
/// The database cannot be reached or read.
pub async fn stored_manifest(backend: &Backend) -> Result<Option<String>, StoreError> {
    match backend {
        Backend::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || crate::sqlite::schema::stored_manifest(&path))
                .await
                .map_err(|e| StoreError::Open(e.to_string()))?
        }
        Backend::Postgres { url, .. } => crate::postgres::schema::stored_manifest(url).await,
    }
}

impl Store {
    /// Opens `backend`, migrating it to `manifest`.
    ///
    /// # Errors
    /// Open failures and refused migrations.
    pub async fn open(backend: &Backend, manifest: Arc<Manifest>) -> Result<Self, StoreError> {
        match backend {
            Backend::Sqlite(path) => {
                let path = path.clone();
                let opened = tokio::task::spawn_blocking(move || {
                    SqliteStore::open(&path, manifest, &SqliteOptions::default())
                })
                .await
                .map_err(|e| StoreError::Open(e.to_string()))??;
                Ok(Self::Sqlite(opened))
            }
            Backend::Postgres { url, schema } => {
                let options = PgOptions { schema: schema.clone(), ..PgOptions::default() };
                Ok(Self::Postgres(PgStore::open(url, manifest, &options).await?))
            }
        }
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The manifest.
    #[must_use]
    pub fn manifest(&self) -> &Arc<Manifest> {
        forward!(self, s => s.manifest())
    }

    /// See [`SqliteStore::write`].
    ///
    /// # Errors
    /// The failing operation; nothing of the batch applied.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<WriteResult, IndexedError> {
        forward!(self, s => s.write(ops).await)
    }

    /// See [`SqliteStore::get`].
    ///
    /// # Errors
    /// Unknown entity, not found, store errors.
    pub async fn get(&self, entity: &str, id: &str) -> Result<Row, EntityError> {
        forward!(self, s => s.get(entity, id).await)
    }

    /// See [`SqliteStore::list`].
    ///
    /// # Errors
    /// Unknown entity or field, unindexed filter, store errors.
    pub async fn list(
        &self,
        entity: &str,
        filters: Vec<(String, String)>,
        limit: u32,
        offset: u64,
    ) -> Result<Page, EntityError> {
        forward!(self, s => s.list(entity, filters, limit, offset).await)
    }

    /// See [`SqliteStore::cursor`].
    ///
    /// # Errors
    /// Unknown entity or field, unindexed filter, store errors.
    pub async fn cursor(
        &self,
        entity: &str,
        after: Option<String>,
        filters: Vec<(String, String)>,
        limit: u32,
    ) -> Result<CursorPage, EntityError> {
        forward!(self, s => s.cursor(entity, after, filters, limit).await)
    }

    /// See [`SqliteStore::changes_since`].
    ///
    /// # Errors
    /// Resync required, store errors.
    pub async fn changes_since(&self, since: u64, limit: u32) -> Result<ChangesPage, EntityError> {
        forward!(self, s => s.changes_since(since, limit).await)
    }

    /// The newest change seq.
    ///
    /// # Errors
    /// Store errors.
    pub async fn latest_seq(&self) -> Result<u64, EntityError> {
        forward!(self, s => s.latest_seq().await)
    }

    /// Readiness check.
    ///
    /// # Errors
    /// Store errors.
    pub async fn ping(&self) -> Result<(), EntityError> {
        forward!(self, s => s.ping().await)
    }

    /// Saves a running match's state.
    ///
    /// # Errors
    /// Store errors.
    pub async fn save_match(
        &self,
        match_id: &str,
        game: &str,
        tick: u64,
        state: String,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.save_match(match_id, game, tick, state).await)
    }

    /// Forgets a match's saved state.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_match(&self, match_id: &str) -> Result<(), StoreError> {
        forward!(self, s => s.delete_match(match_id).await)
    }

    /// Saved running matches: (id, state JSON).
    ///
    /// # Errors
    /// Store errors.
    pub async fn saved_matches(&self) -> Result<Vec<(String, String)>, EntityError> {
        forward!(self, s => s.saved_matches().await)
    }

    /// Stores a replay log.
    ///
    /// # Errors
    /// Store errors.
    pub async fn save_replay(
        &self,
        match_id: &str,
        game: &str,
        log: String,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.save_replay(match_id, game, log).await)
    }

    /// A stored replay log.
    ///
    /// # Errors
    /// Store errors.
    pub async fn replay(&self, match_id: &str) -> Result<Option<String>, EntityError> {
        forward!(self, s => s.replay(match_id).await)
    }

    /// The SQLite file, for online backups (`None` for Postgres).
    #[must_use]
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(s) => Some(s.path()),
            Self::Postgres(_) => None,
        }
    }
}

/// Where sessions live: cheap to clone (both stores are handles).
#[derive(Debug, Clone)]
pub enum Sessions {
    /// An SQLite file or memory; blocking calls run on tokio's blocking pool.
    Sqlite(SqliteSessionStore),
    /// The Postgres database of the entities.
    Postgres(PgSessionStore),
}

macro_rules! forward {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Sessions::Sqlite($s) => $body,
            Sessions::Postgres($s) => $body,
        }
    };
}

impl Sessions {
    /// Creates a guest user and a session for it, valid for `ttl_secs` from `now`.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written or no randomness is available.
    pub async fn create_guest(&self, now: i64, ttl_secs: i64) -> Result<NewSession, StoreError> {
        forward!(self, s => s.create_guest(now, ttl_secs).await)
    }

    /// The live session for `token`, or `None` when unknown or expired at `now`.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn resolve(&self, token: &str, now: i64) -> Result<Option<Session>, StoreError> {
        forward!(self, s => s.resolve(token, now).await)
    }

    /// Whether user `user_id` has a session valid at `now` (the matchmaker checks that
    /// every party member is a real, signed-in player). By the `pylon_sessions_user`
    /// index.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn user_has_session(&self, user_id: &str, now: i64) -> Result<bool, StoreError> {
        forward!(self, s => s.user_has_session(user_id, now).await)
    }

    /// Revokes the session of `token`; whether one existed.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn revoke(&self, token: &str) -> Result<bool, StoreError> {
        forward!(self, s => s.revoke(token).await)
    }

    /// Deletes every session expired at `now`; how many.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        forward!(self, s => s.purge_expired(now).await)
    }

    /// Makes everything written durable in the main database file (shutdown).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn flush(&self) -> Result<(), StoreError> {
        forward!(self, s => s.flush().await)
    }

    /// Checks the store answers (readiness).
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        forward!(self, s => s.ping().await)
    }
}

impl From<SqliteSessionStore> for Sessions {
    fn from(store: SqliteSessionStore) -> Self {
        Self::Sqlite(store)
    }
}

impl From<PgSessionStore> for Sessions {
    fn from(store: PgSessionStore) -> Self {
        Self::Postgres(store)
    }
}
