//! Why the cluster bus could not be set up: [`BusError`], each variant naming its cause so
//! that boot can refuse with one clear line.
//!
//! Must never: carry the bus URL itself (it may hold a password); only the address
//! (`host:port`) appears in messages.

use std::time::Duration;

/// A cluster bus that could not be connected (boot refuses to start on any of these).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The URL could not be parsed as a Redis URL.
    #[error("cluster bus URL is invalid: {reason}")]
    InvalidUrl {
        /// What the parser said.
        reason: String,
    },
    /// The URL's scheme is not one this build speaks (only `redis://`).
    #[error("cluster bus URL scheme {scheme:?} is not supported (expected redis://)")]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// The namespace cannot prefix a channel name (empty, too long, or with whitespace).
    #[error("cluster bus namespace {namespace:?} is invalid (1-128 bytes, no whitespace)")]
    InvalidNamespace {
        /// The namespace given (escaped).
        namespace: String,
    },
    /// Nothing accepted the connection at the address (connection refused).
    #[error("cluster bus at {addr} refused the connection (is Redis running?)")]
    Refused {
        /// `host:port` of the bus.
        addr: String,
        /// The underlying error.
        #[source]
        source: redis::RedisError,
    },
    /// The server did not answer within the connect timeout.
    #[error("cluster bus at {addr} did not answer within {}s (timeout)", after.as_secs_f32())]
    Timeout {
        /// `host:port` of the bus.
        addr: String,
        /// How long connect waited.
        after: Duration,
    },
    /// The server refused the credentials (or requires some and none were given).
    #[error("cluster bus at {addr} rejected authentication: {detail}")]
    Auth {
        /// `host:port` of the bus.
        addr: String,
        /// The server's words.
        detail: String,
    },
    /// Any other failure while connecting, pinging or subscribing.
    #[error("cluster bus at {addr} failed: {source}")]
    Redis {
        /// `host:port` of the bus.
        addr: String,
        /// The underlying error.
        #[source]
        source: redis::RedisError,
    },
}

impl BusError {
    /// Sorts a Redis error met while connecting to `addr` into refused, auth or other.
    pub(crate) fn classify(addr: &str, source: redis::RedisError) -> Self {
        let addr = addr.to_owned();
        let auth_code = matches!(source.code(), Some("NOAUTH" | "WRONGPASS"));
        if source.kind() == redis::ErrorKind::AuthenticationFailed || auth_code {
            let detail = source.detail().map_or_else(|| source.to_string(), str::to_owned);
            return Self::Auth { addr, detail };
        }
        if source.is_connection_refusal() {
            return Self::Refused { addr, source };
        }
        if source.is_timeout() {
            return Self::Timeout { addr, after: super::CONNECT_TIMEOUT };
        }
        Self::Redis { addr, source }
    }
}
