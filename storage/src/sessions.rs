//! Sessions: random 256-bit bearer tokens, stored only as their SHA-256 hash, with an
//! expiry. The [`SessionStore`] trait is what the API layer sees; [`SqliteSessionStore`]
//! is the embedded implementation (`PYLON_SESSION_DB`). A Postgres implementation joins
//! it with the storage issue.
//!
//! The calls are blocking (a SQLite file behind a mutex); the async layer runs them on
//! its blocking pool. A token lookup goes by hash, so the time it takes says nothing about
//! how close a guess was; the stored hash is also compared in constant time.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::StoreError;

/// A resolved session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user this session authenticates.
    pub user_id: String,
    /// Unix seconds after which the session is no longer valid.
    pub expires_at: i64,
    /// Whether it was created by `POST /api/auth/guest`.
    pub guest: bool,
}

/// A session just created: the only moment the plaintext token exists on the server.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The bearer token to hand to the client (64 hex characters, 256 random bits).
    pub token: String,
    /// The session itself.
    pub session: Session,
}

/// Where sessions live.
pub trait SessionStore: Send + Sync + 'static {
    /// Creates a guest user and a session for it, valid for `ttl_secs` from `now`.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written or no randomness is available.
    fn create_guest(&self, now: i64, ttl_secs: i64) -> Result<NewSession, StoreError>;

    /// The live session for `token`, or `None` when unknown or expired at `now`.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    fn resolve(&self, token: &str, now: i64) -> Result<Option<Session>, StoreError>;

    /// Revokes the session of `token`; whether one existed.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    fn revoke(&self, token: &str) -> Result<bool, StoreError>;

    /// Deletes every session expired at `now`; how many.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;

    /// Makes everything written durable in the main database file (shutdown).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    fn flush(&self) -> Result<(), StoreError>;

    /// Checks the store answers (readiness).
    ///
    /// # Errors
    /// [`StoreError`] when it does not.
    fn ping(&self) -> Result<(), StoreError>;
}

/// The SHA-256 of a token, as stored (also how the server names a session without
/// holding its token: live-session registry, revocations across processes).
#[must_use]
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 256 random bits from the OS, as 64 lowercase hex characters.
///
/// # Errors
/// [`StoreError::Random`] when the OS has no randomness to give.
pub fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Sessions in one SQLite file (WAL mode).
#[derive(Debug)]
pub struct SqliteSessionStore {
    conn: Mutex<Connection>,
}

impl SqliteSessionStore {
    /// Opens (creating if needed) the session database at `path`.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or its schema created.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::init(conn)
    }

    /// A session store in memory (tests, `pylon dev` with an in-memory database).
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
             CREATE INDEX IF NOT EXISTS pylon_sessions_expiry ON pylon_sessions (expires_at);",
        )?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding this lock cannot leave the connection half-used: every
        // statement is one SQLite call, so a poisoned guard is still a sound connection.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SessionStore for SqliteSessionStore {
    fn create_guest(&self, now: i64, ttl_secs: i64) -> Result<NewSession, StoreError> {
        let token = random_token()?;
        let user_id = format!("guest_{}", &random_token()?[..20]);
        let expires_at = now.saturating_add(ttl_secs);
        self.conn().execute(
            "INSERT INTO pylon_sessions (token_hash, user_id, guest, created_at, expires_at)
             VALUES (?1, ?2, 1, ?3, ?4)",
            params![&token_hash(&token)[..], user_id, now, expires_at],
        )?;
        Ok(NewSession { token, session: Session { user_id, expires_at, guest: true } })
    }

    fn resolve(&self, token: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let wanted = token_hash(token);
        let row = self
            .conn()
            .query_row(
                "SELECT token_hash, user_id, guest, expires_at FROM pylon_sessions
                 WHERE token_hash = ?1",
                params![&wanted[..]],
                |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, bool>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.and_then(|(stored, user_id, guest, expires_at)| {
            let same: bool = stored.as_slice().ct_eq(&wanted[..]).into();
            (same && expires_at > now).then_some(Session { user_id, expires_at, guest })
        }))
    }

    fn revoke(&self, token: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM pylon_sessions WHERE token_hash = ?1",
            params![&token_hash(token)[..]],
        )?;
        Ok(n > 0)
    }

    fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM pylon_sessions WHERE expires_at <= ?1", params![now])?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    fn flush(&self) -> Result<(), StoreError> {
        // A WAL checkpoint folds the log into the database file; in-memory stores have
        // no WAL and answer with a harmless row.
        self.conn().query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// A guest session resolves until it expires, is stored only hashed, and is gone once
    /// revoked; a wrong token resolves to nothing.
    #[test]
    fn guest_session_lifecycle_on_a_real_file() {
        let dir = std::env::temp_dir().join(format!("pylon-sessions-{}", std::process::id()));
        let path = dir.join("sessions.db");
        let _ = std::fs::remove_file(&path);
        let store = SqliteSessionStore::open(&path).unwrap();
        let new = store.create_guest(1_000, 60).unwrap();
        assert_eq!(new.token.len(), 64);
        assert!(new.session.user_id.starts_with("guest_"));

        let got = store.resolve(&new.token, 1_059).unwrap().unwrap();
        assert_eq!(got, new.session);
        assert_eq!(store.resolve(&new.token, 1_060).unwrap(), None, "expired");
        assert_eq!(store.resolve("not-a-token", 1_000).unwrap(), None);

        // The plaintext token is nowhere in the file.
        drop(store);
        let bytes = std::fs::read(&path).unwrap();
        let needle = new.token.as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));

        let store = SqliteSessionStore::open(&path).unwrap();
        assert!(store.resolve(&new.token, 1_000).unwrap().is_some(), "survives reopen");
        assert!(store.revoke(&new.token).unwrap());
        assert!(!store.revoke(&new.token).unwrap());
        assert_eq!(store.resolve(&new.token, 1_000).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two guests get different users and tokens; purge removes only expired ones.
    #[test]
    fn purge_removes_only_expired() {
        let store = SqliteSessionStore::in_memory().unwrap();
        let a = store.create_guest(0, 10).unwrap();
        let b = store.create_guest(0, 100).unwrap();
        assert_ne!(a.token, b.token);
        assert_ne!(a.session.user_id, b.session.user_id);
        assert_eq!(store.purge_expired(50).unwrap(), 1);
        assert!(store.resolve(&b.token, 50).unwrap().is_some());
        store.ping().unwrap();
    }
}
