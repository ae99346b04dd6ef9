//! One direct connection to Postgres before the pool is built, so that a database that is
//! not there is named within seconds: refused, authentication failed, or no answer. (A
//! pool only says "pool timed out" after its acquire timeout.)

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

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
