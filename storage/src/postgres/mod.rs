//! The Postgres backend (sqlx), selected by a `postgres://` or `postgresql://`
//! `DATABASE_URL`. Same behaviour as SQLite: the same validation and guards
//! ([`crate::write`]), the same migration plan ([`crate::migrate`]), the same statements
//! and paging ([`crate::sql`], [`crate::query`]), and a change log whose `seq` is dense
//! and in commit order across every process sharing the database: each write
//! transaction takes the next value from a one-row counter (`pylon_seq`), which
//! serializes writers on that row until they commit ([`writer`]).
//!
//! The same layout as [`crate::sqlite`]: [`schema`] (internal tables, migrations),
//! [`writer`] (the write path), [`read`], [`rows`] (JSON <-> columns), [`sessions`],
//! [`backup`] (logical export and import). This file: the store itself (connecting,
//! options, accessors) and the probe that names an unreachable database before the pool
//! is built (a pool only says "pool timed out" after its acquire timeout).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Executor};

use crate::StoreError;
use crate::manifest::Manifest;

mod backup;
mod read;
mod rows;
pub(crate) mod schema;
mod sessions;
mod writer;

pub use sessions::PgSessionStore;

/// Postgres store settings.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Pool size (default 16).
    pub max_connections: u32,
    /// A schema to use instead of `public` (created if missing; tests use one each).
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self { max_connections: 16, schema: None }
    }
}

/// An entity store in Postgres.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    manifest: Arc<Manifest>,
}

fn pg(e: sqlx::Error) -> StoreError {
    StoreError::Postgres(e.to_string())
}

impl PgStore {
    /// Connects, creates the internal tables, migrates to `manifest` (refusing changes
    /// that would lose data; one process at a time, under an advisory lock).
    ///
    /// # Errors
    /// Connection failures, refused migrations.
    pub async fn open(
        url: &str,
        manifest: Arc<Manifest>,
        options: &PgOptions,
    ) -> Result<Self, StoreError> {
        let store = Self::connect(url, manifest, options).await?;
        store.migrate(false).await?;
        Ok(store)
    }

    /// Connects without migrating (`pylon migrate --dry-run`).
    ///
    /// # Errors
    /// Connection failures.
    pub async fn connect(
        url: &str,
        manifest: Arc<Manifest>,
        options: &PgOptions,
    ) -> Result<Self, StoreError> {
        let schema = options.schema.clone();
        if let Some(s) = &schema
            && !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(StoreError::Open(format!("invalid schema name {s:?}")));
        }
        // One direct connection first: a database that is not there is named (refused,
        // authentication, no answer) within seconds instead of as a pool timeout.
        probe(url, PROBE_TIMEOUT).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                let schema = schema.clone();
                Box::pin(async move {
                    if let Some(s) = schema {
                        conn.execute(
                            format!(
                                "CREATE SCHEMA IF NOT EXISTS \"{s}\"; SET search_path TO \"{s}\""
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| StoreError::Open(format!("postgres: {e}")))?;
        Ok(Self { pool, manifest })
    }

    /// The manifest the store was opened with.
    #[must_use]
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The connection pool (the session store shares it).
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// How long the probe waits for a connection and its authentication.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why Postgres could not be reached. The messages are what an operator reads after
/// `DATABASE_URL: `.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL does not parse.
    #[error("not a valid Postgres URL: {0}")]
    BadUrl(String),
    /// Nothing listens there.
    #[error("cannot connect to Postgres at {at}: connection refused")]
    Refused {
        /// `host:port`.
        at: String,
    },
    /// The server refused the role or its password.
    #[error("cannot connect to Postgres at {at}: authentication failed: {detail}")]
    Auth {
        /// `host:port`.
        at: String,
        /// The server's message.
        detail: String,
    },
    /// No answer (connection or authentication) within the probe timeout.
    #[error("cannot connect to Postgres at {at}: timed out (no answer within {} s)", .after.as_secs())]
    Timeout {
        /// `host:port`.
        at: String,
        /// The probe timeout.
        after: Duration,
    },
    /// Anything else (unknown host, missing database, TLS required).
    #[error("cannot connect to Postgres at {at}: {detail}")]
    Other {
        /// `host:port`.
        at: String,
        /// What failed.
        detail: String,
    },
}

/// Connects once to `url` (at most `timeout`, connection and authentication included) and
/// closes the connection again.
///
/// # Errors
/// [`ProbeError`], naming `host:port` and the cause.
pub async fn probe(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| ProbeError::BadUrl(e.to_string()))?;
    let at = format!("{}:{}", options.get_host(), options.get_port());
    let connection = match tokio::time::timeout(timeout, options.connect()).await {
        Err(_) => return Err(ProbeError::Timeout { at, after: timeout }),
        Ok(Err(e)) => return Err(classify(at, &e)),
        Ok(Ok(connection)) => connection,
    };
    let _ = tokio::time::timeout(timeout, sqlx::Connection::close(connection)).await;
    Ok(())
}

fn classify(at: String, e: &sqlx::Error) -> ProbeError {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            ProbeError::Refused { at }
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ProbeError::Timeout { at, after: PROBE_TIMEOUT }
        }
        // 28P01 invalid_password, 28000 invalid_authorization_specification (no such
        // role, or pg_hba refuses it).
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("28P01" | "28000")) => {
            ProbeError::Auth { at, detail: db.message().to_owned() }
        }
        sqlx::Error::Database(db) => ProbeError::Other { at, detail: db.message().to_owned() },
        sqlx::Error::Configuration(c) => ProbeError::BadUrl(c.to_string()),
        other => ProbeError::Other { at, detail: other.to_string() },
    }
}
