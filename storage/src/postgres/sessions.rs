//! Sessions in Postgres (when `DATABASE_URL` names it), behind the same blocking
//! [`SessionStore`] trait as the SQLite store: calls run on the async layer's blocking
//! pool and drive the sqlx pool through the runtime handle.

use sqlx::postgres::PgPool;
use subtle::ConstantTimeEq;

use super::pg;
use crate::StoreError;
use crate::sessions::{NewSession, Session, SessionStore, random_token, token_hash};

/// Sessions in the `pylon_sessions` table of a Postgres database.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
    rt: tokio::runtime::Handle,
}

impl PgSessionStore {
    /// Uses `pool` (the entity store's), creating the table if needed. Call from inside
    /// the runtime whose `handle` is given.
    ///
    /// # Errors
    /// Database errors.
    pub async fn open(pool: PgPool, rt: tokio::runtime::Handle) -> Result<Self, StoreError> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS pylon_sessions (token_hash BYTEA PRIMARY KEY, user_id TEXT NOT NULL,
                 guest BOOLEAN NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
             CREATE INDEX IF NOT EXISTS pylon_sessions_expiry ON pylon_sessions (expires_at);",
        )
        .execute(&pool)
        .await
        .map_err(pg)?;
        Ok(Self { pool, rt })
    }
}

impl SessionStore for PgSessionStore {
    fn create_guest(&self, now: i64, ttl_secs: i64) -> Result<NewSession, StoreError> {
        let token = random_token()?;
        let user_id = format!("guest_{}", &random_token()?[..20]);
        let expires_at = now.saturating_add(ttl_secs);
        self.rt.block_on(
            sqlx::query("INSERT INTO pylon_sessions (token_hash, user_id, guest, created_at, expires_at) VALUES ($1, $2, TRUE, $3, $4)")
                .bind(&token_hash(&token)[..])
                .bind(&user_id)
                .bind(now)
                .bind(expires_at)
                .execute(&self.pool),
        )
        .map_err(pg)?;
        Ok(NewSession { token, session: Session { user_id, expires_at, guest: true } })
    }

    fn resolve(&self, token: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let wanted = token_hash(token);
        let row: Option<(Vec<u8>, String, bool, i64)> = self
            .rt
            .block_on(
                sqlx::query_as("SELECT token_hash, user_id, guest, expires_at FROM pylon_sessions WHERE token_hash = $1")
                    .bind(&wanted[..])
                    .fetch_optional(&self.pool),
            )
            .map_err(pg)?;
        Ok(row.and_then(|(stored, user_id, guest, expires_at)| {
            let same: bool = stored.as_slice().ct_eq(&wanted[..]).into();
            (same && expires_at > now).then_some(Session { user_id, expires_at, guest })
        }))
    }

    fn revoke(&self, token: &str) -> Result<bool, StoreError> {
        let done = self
            .rt
            .block_on(
                sqlx::query("DELETE FROM pylon_sessions WHERE token_hash = $1")
                    .bind(&token_hash(token)[..])
                    .execute(&self.pool),
            )
            .map_err(pg)?;
        Ok(done.rows_affected() > 0)
    }

    fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let done = self
            .rt
            .block_on(
                sqlx::query("DELETE FROM pylon_sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool),
            )
            .map_err(pg)?;
        Ok(done.rows_affected())
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every statement is committed on its own; nothing is buffered here.
        Ok(())
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.rt.block_on(sqlx::query("SELECT 1").execute(&self.pool)).map_err(pg)?;
        Ok(())
    }
}
