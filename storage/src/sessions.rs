//! Sessions: random 256-bit bearer tokens, stored only as their SHA-256 hash, with an
//! expiry. [`crate::store::Sessions`] is what the API layer sees: sessions in SQLite
//! (`SqliteSessionStore`, `PYLON_SESSION_DB`, or in memory) or in Postgres beside the
//! entities (`PgSessionStore`), async on both. This module holds what the two share:
//! the types, token generation and hashing, the statements, and the check of a stored
//! session against a token.
//!
//! A token lookup goes by hash, so the time it takes says nothing about how close a guess
//! was; the stored hash is also compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::StoreError;
use crate::sql::Dialect;

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

/// A new guest session for `ttl_secs` from `now`, and the hash it is stored under.
///
/// # Errors
/// [`StoreError::Random`] when the OS has no randomness to give.
pub(crate) fn new_guest(now: i64, ttl_secs: i64) -> Result<(NewSession, [u8; 32]), StoreError> {
    let token = random_token()?;
    let user_id = format!("guest_{}", &random_token()?[..20]);
    let expires_at = now.saturating_add(ttl_secs);
    let hash = token_hash(&token);
    Ok((NewSession { token, session: Session { user_id, expires_at, guest: true } }, hash))
}

/// A stored session as both backends select it ([`SessionSql::select`]): token hash,
/// user id, guest, expiry.
pub(crate) type StoredSession = (Vec<u8>, String, bool, i64);

/// The session `stored` is, if its hash is `wanted` (compared in constant time) and it
/// is still valid at `now`.
pub(crate) fn live(stored: Option<StoredSession>, wanted: &[u8; 32], now: i64) -> Option<Session> {
    let (hash, user_id, guest, expires_at) = stored?;
    let same: bool = hash.as_slice().ct_eq(&wanted[..]).into();
    (same && expires_at > now).then_some(Session { user_id, expires_at, guest })
}

/// The statements of a session store, in one backend's placeholders.
#[derive(Debug)]
pub(crate) struct SessionSql {
    /// A guest session: hash, user id, created at, expires at.
    pub insert: String,
    /// One session by hash ([`StoredSession`]).
    pub select: String,
    /// Deletes one session by hash.
    pub revoke: String,
    /// Deletes the sessions expired at parameter 1.
    pub purge: String,
    /// One row when user parameter 1 has a session valid after parameter 2 (by the
    /// `pylon_sessions_user` index).
    pub user_live: String,
}

impl SessionSql {
    pub(crate) fn new(d: &Dialect) -> Self {
        let m = d.mark;
        Self {
            insert: format!(
                "INSERT INTO pylon_sessions (token_hash, user_id, guest, created_at, expires_at) VALUES ({}, {}, TRUE, {}, {})",
                m(1),
                m(2),
                m(3),
                m(4)
            ),
            select: format!(
                "SELECT token_hash, user_id, guest, expires_at FROM pylon_sessions WHERE token_hash = {}",
                m(1)
            ),
            revoke: format!("DELETE FROM pylon_sessions WHERE token_hash = {}", m(1)),
            purge: format!("DELETE FROM pylon_sessions WHERE expires_at <= {}", m(1)),
            user_live: format!(
                "SELECT 1 FROM pylon_sessions WHERE user_id = {} AND expires_at > {} LIMIT 1",
                m(1),
                m(2)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored session is live only with the same hash and before its expiry.
    #[test]
    fn live_needs_the_hash_and_time() {
        let wanted = token_hash("t");
        let stored = |hash: [u8; 32]| Some((hash.to_vec(), "u".to_owned(), true, 100));
        assert!(live(stored(wanted), &wanted, 99).is_some());
        assert!(live(stored(wanted), &wanted, 100).is_none(), "expired");
        assert!(live(stored(token_hash("other")), &wanted, 0).is_none());
        assert!(live(None, &wanted, 0).is_none());
    }
}
