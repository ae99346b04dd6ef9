//! Sessions in one SQLite file (`PYLON_SESSION_DB`, WAL mode) or in memory. The
//! connection sits behind a mutex; every call runs on tokio's blocking pool inside the
//! store, so callers only `.await`. What both backends share is in [`crate::sessions`].

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::DIALECT;
use crate::StoreError;
use crate::sessions::{self, NewSession, Session, SessionSql, StoredSession, token_hash};

/// Sessions in one SQLite file or in memory. Clones share the connection.
#[derive(Debug, Clone)]
pub struct SqliteSessionStore {
    conn: Arc<Mutex<Connection>>,
    sql: Arc<SessionSql>,
}

impl SqliteSessionStore {
    /// Opens (creating if needed) the session database at `path`.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or its schema created.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            super::create_parent(&path)?;
            let conn = Connection::open(&path)
                .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            Self::init(conn)
        })
        .await
        .map_err(|e| StoreError::Open(e.to_string()))?
    }

    /// A session store in memory (tests, `PYLON_SESSION_DB=:memory:`).
    ///
    /// # Errors
    /// [`StoreError`] when SQLite cannot start.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS pylon_sessions (
                 token_hash BLOB PRIMARY KEY,
                 user_id    TEXT NOT NULL,
                 guest      INTEGER NOT NULL,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS pylon_sessions_expiry ON pylon_sessions (expires_at);
             CREATE INDEX IF NOT EXISTS pylon_sessions_user ON pylon_sessions (user_id);",
        )?;
        let sql = Arc::new(SessionSql::new(&DIALECT));
        Ok(Self { conn: Arc::new(Mutex::new(conn)), sql })
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &SessionSql) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (conn, sql) = (Arc::clone(&self.conn), Arc::clone(&self.sql));
        tokio::task::spawn_blocking(move || {
            // A panic while holding this lock cannot leave the connection half-used: every
            // statement is one SQLite call, so a poisoned guard is still a sound connection.
            let conn = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&conn, &sql)
        })
        .await
        .map_err(|e| StoreError::Write(format!("session task failed: {e}")))?
        .map_err(StoreError::from)
    }

    /// See [`crate::Sessions::create_guest`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written or no randomness is available.
    pub async fn create_guest(&self, now: i64, ttl_secs: i64) -> Result<NewSession, StoreError> {
        let (new, hash) = sessions::new_guest(now, ttl_secs)?;
        let (user_id, expires_at) = (new.session.user_id.clone(), new.session.expires_at);
        self.call(move |conn, sql| {
            conn.execute(&sql.insert, params![&hash[..], user_id, now, expires_at])
        })
        .await?;
        Ok(new)
    }

    /// See [`crate::Sessions::resolve`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn resolve(&self, token: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let wanted = token_hash(token);
        let stored = self
            .call(move |conn, sql| {
                conn.query_row(&sql.select, params![&wanted[..]], |r| StoredSession::try_from(r))
                    .optional()
            })
            .await?;
        Ok(sessions::live(stored, &wanted, now))
    }

    /// See [`crate::Sessions::user_has_session`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn user_has_session(&self, user_id: &str, now: i64) -> Result<bool, StoreError> {
        let user = user_id.to_owned();
        let found = self
            .call(move |conn, sql| {
                conn.query_row(&sql.user_live, params![user, now], |_| Ok(())).optional()
            })
            .await?;
        Ok(found.is_some())
    }

    /// See [`crate::Sessions::revoke`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn revoke(&self, token: &str) -> Result<bool, StoreError> {
        let hash = token_hash(token);
        let n = self.call(move |conn, sql| conn.execute(&sql.revoke, params![&hash[..]])).await?;
        Ok(n > 0)
    }

    /// See [`crate::Sessions::purge_expired`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let n = self.call(move |conn, sql| conn.execute(&sql.purge, params![now])).await?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// See [`crate::Sessions::flush`]: a WAL checkpoint folds the log into the database
    /// file (in-memory stores have no WAL and answer with a harmless row).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(|conn, _| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))).await
    }

    /// See [`crate::Sessions::ping`].
    ///
    /// # Errors
    /// [`StoreError`] when it does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|conn, _| conn.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::Sessions;

    /// A guest session resolves until it expires, is stored only hashed, and is gone once
    /// revoked; a wrong token resolves to nothing.
    #[tokio::test]
    async fn guest_session_lifecycle_on_a_real_file() {
        let dir = std::env::temp_dir().join(format!("pylon-sessions-{}", std::process::id()));
        let path = dir.join("sessions.db");
        let _ = std::fs::remove_file(&path);
        let store = Sessions::from(SqliteSessionStore::open(&path).await.unwrap());
        let new = store.create_guest(1_000, 60).await.unwrap();
        assert_eq!(new.token.len(), 64);
        assert!(new.session.user_id.starts_with("guest_"));

        let got = store.resolve(&new.token, 1_059).await.unwrap().unwrap();
        assert_eq!(got, new.session);
        assert_eq!(store.resolve(&new.token, 1_060).await.unwrap(), None, "expired");
        assert_eq!(store.resolve("not-a-token", 1_000).await.unwrap(), None);

        // The plaintext token is nowhere in the file.
        drop(store);
        let bytes = std::fs::read(&path).unwrap();
        let needle = new.token.as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));

        let store = Sessions::from(SqliteSessionStore::open(&path).await.unwrap());
        assert!(store.resolve(&new.token, 1_000).await.unwrap().is_some(), "survives reopen");
        assert!(store.revoke(&new.token).await.unwrap());
        assert!(!store.revoke(&new.token).await.unwrap());
        assert_eq!(store.resolve(&new.token, 1_000).await.unwrap(), None);
        store.flush().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two guests get different users and tokens; purge removes only expired ones.
    #[tokio::test]
    async fn purge_removes_only_expired() {
        let store = Sessions::from(SqliteSessionStore::in_memory().unwrap());
        let a = store.create_guest(0, 10).await.unwrap();
        let b = store.create_guest(0, 100).await.unwrap();
        assert_ne!(a.token, b.token);
        assert_ne!(a.session.user_id, b.session.user_id);
        assert_eq!(store.purge_expired(50).await.unwrap(), 1);
        assert!(store.resolve(&b.token, 50).await.unwrap().is_some());
        store.ping().await.unwrap();
    }

    /// A user has a live session while one of its sessions is valid: not before it is
    /// created, not at its expiry, not after it is revoked, never for an unknown user.
    #[tokio::test]
    async fn user_has_session_until_expiry_or_revocation() {
        let store = Sessions::from(SqliteSessionStore::in_memory().unwrap());
        let a = store.create_guest(0, 100).await.unwrap();
        let user = a.session.user_id.clone();
        assert!(store.user_has_session(&user, 99).await.unwrap());
        assert!(!store.user_has_session(&user, 100).await.unwrap(), "expired");
        assert!(!store.user_has_session("guest_nobody", 0).await.unwrap());
        assert!(store.revoke(&a.token).await.unwrap());
        assert!(!store.user_has_session(&user, 0).await.unwrap(), "revoked");
    }
}
