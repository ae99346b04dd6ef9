//! Sessions in Postgres (when `DATABASE_URL` names it), in the `pylon_sessions` table
//! beside the entities, on the entity store's pool: async sqlx calls, nothing blocks.
//! What both backends share is in [`crate::sessions`].

use std::sync::Arc;

use sqlx::postgres::PgPool;

use super::pg;
use super::rows::DIALECT;
use crate::StoreError;
use crate::sessions::{self, NewSession, Session, SessionSql, StoredSession, token_hash};

/// Sessions in the `pylon_sessions` table of a Postgres database. Clones share the pool.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
    sql: Arc<SessionSql>,
}

impl PgSessionStore {
    /// Uses `pool` (the entity store's), creating the table if needed, under the schema's
    /// advisory lock: two processes starting at once on a fresh database would otherwise
    /// race on `CREATE TABLE IF NOT EXISTS` (Postgres answers one of them with a unique
    /// violation in its catalog).
    ///
    /// # Errors
    /// Database errors.
    pub async fn open(pool: PgPool) -> Result<Self, StoreError> {
        let mut tx = pool.begin().await.map_err(pg)?;
        sqlx::query("SELECT pg_advisory_xact_lock(7366871)").execute(&mut *tx).await.map_err(pg)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS pylon_sessions (token_hash BYTEA PRIMARY KEY, user_id TEXT NOT NULL,
                 guest BOOLEAN NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
             CREATE INDEX IF NOT EXISTS pylon_sessions_expiry ON pylon_sessions (expires_at);
             CREATE INDEX IF NOT EXISTS pylon_sessions_user ON pylon_sessions (user_id);",
        )
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Self { pool, sql: Arc::new(SessionSql::new(&DIALECT)) })
    }

    /// See [`crate::Sessions::create_guest`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written or no randomness is available.
    pub async fn create_guest(&self, now: i64, ttl_secs: i64) -> Result<NewSession, StoreError> {
        let (new, hash) = sessions::new_guest(now, ttl_secs)?;
        sqlx::query(&self.sql.insert)
            .bind(&hash[..])
            .bind(&new.session.user_id)
            .bind(now)
            .bind(new.session.expires_at)
            .execute(&self.pool)
            .await
            .map_err(pg)?;
        Ok(new)
    }

    /// See [`crate::Sessions::resolve`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn resolve(&self, token: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let wanted = token_hash(token);
        let stored: Option<StoredSession> = sqlx::query_as(&self.sql.select)
            .bind(&wanted[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(pg)?;
        Ok(sessions::live(stored, &wanted, now))
    }

    /// See [`crate::Sessions::user_has_session`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn user_has_session(&self, user_id: &str, now: i64) -> Result<bool, StoreError> {
        let found: Option<(i32,)> = sqlx::query_as(&self.sql.user_live)
            .bind(user_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg)?;
        Ok(found.is_some())
    }

    /// See [`crate::Sessions::revoke`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn revoke(&self, token: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.sql.revoke)
            .bind(&token_hash(token)[..])
            .execute(&self.pool)
            .await
            .map_err(pg)?;
        Ok(done.rows_affected() > 0)
    }

    /// See [`crate::Sessions::purge_expired`].
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.sql.purge).bind(now).execute(&self.pool).await.map_err(pg)?;
        Ok(done.rows_affected())
    }

    /// See [`crate::Sessions::flush`]: every statement is committed on its own; nothing
    /// is buffered here.
    ///
    /// # Errors
    /// None.
    #[allow(clippy::unused_async, reason = "one signature with the SQLite store")]
    pub async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// See [`crate::Sessions::ping`].
    ///
    /// # Errors
    /// [`StoreError`] when it does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(pg)?;
        Ok(())
    }
}
