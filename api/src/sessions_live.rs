//! The live connections of each session, so that logout and expiry end them: a shard
//! socket, a shard SSE stream, a feed socket or stream registers when it starts (a
//! [`LiveSession`] guard, dropped when it ends) and selects on [`LiveSession::ended`].
//!
//! Sessions are keyed by the SHA-256 of their token ([`SessionKey`]), which is what the
//! session store keeps, so nothing here holds a token. [`LiveSessions::end`] ends one
//! session's connections (logout calls it; so can a cluster-bus receiver when another
//! process revokes a session, since the key is all it needs); [`LiveSessions::sweep`],
//! run every second, ends those whose session expired. The admin token has no session and
//! never registers.
//!
//! A logout can race a connection that resolved the token just before the revocation and
//! registers just after it. So an ended session leaves a tombstone for
//! [`TOMBSTONE_SECS`], far longer than any resolve-to-register gap (bounded by the
//! handshake timeout); a registration that finds one starts already ended.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The SHA-256 of a session token.
pub type SessionKey = [u8; 32];

/// How long an ended session's tombstone is kept (seconds).
pub const TOMBSTONE_SECS: i64 = 300;

/// Who a connection belongs to: its session's key and expiry (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef {
    /// The token's SHA-256.
    pub key: SessionKey,
    /// When the session expires.
    pub expires_at: i64,
}

#[derive(Debug)]
struct Live {
    cancel: CancellationToken,
    expires_at: i64,
    holders: usize,
    /// Tells a guard of an entry that was ended and replaced from one of the new entry.
    generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<SessionKey, Live>,
    /// (expires_at, key) of every live session, for the sweep.
    by_expiry: BTreeSet<(i64, SessionKey)>,
    /// Ended sessions: key -> until when a new registration starts ended.
    ended: HashMap<SessionKey, i64>,
    /// (until, key) of every tombstone, for the sweep.
    ended_by_time: BTreeSet<(i64, SessionKey)>,
    next_generation: u64,
}

/// The registry of live sessions.
#[derive(Debug, Default)]
pub struct LiveSessions {
    inner: Mutex<Inner>,
}

/// A registered connection: holds its session's cancellation while the connection runs.
#[derive(Debug)]
pub struct LiveSession {
    registry: Arc<LiveSessions>,
    key: SessionKey,
    cancel: CancellationToken,
    /// 0: never registered (started ended).
    generation: u64,
}

impl LiveSession {
    /// Resolves once the session is ended (logout, revocation elsewhere, expiry).
    pub async fn ended(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the session has ended.
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Resolves when `session` ends; never for a connection without one (admin, anonymous).
pub async fn ended(session: Option<&LiveSession>) {
    match session {
        Some(s) => s.ended().await,
        None => std::future::pending().await,
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        let Some(live) = inner.live.get_mut(&self.key) else { return };
        if live.generation != self.generation {
            return;
        }
        live.holders -= 1;
        if live.holders == 0 {
            let expires_at = live.expires_at;
            inner.live.remove(&self.key);
            inner.by_expiry.remove(&(expires_at, self.key));
        }
    }
}

impl LiveSessions {
    /// Registers one connection of `session` at `now` (unix seconds). The guard's
    /// [`LiveSession::ended`] resolves at once if the session already ended or expired.
    #[must_use]
    pub fn register(self: &Arc<Self>, session: SessionRef, now: i64) -> LiveSession {
        let key = session.key;
        let mut inner = self.lock();
        if inner.ended.contains_key(&key) || session.expires_at <= now {
            let cancel = CancellationToken::new();
            cancel.cancel();
            // Not in the map: dropping it finds nothing to deregister.
            return LiveSession { registry: Arc::clone(self), key, cancel, generation: 0 };
        }
        let Inner { live, by_expiry, next_generation, .. } = &mut *inner;
        let entry = live.entry(key).or_insert_with(|| {
            by_expiry.insert((session.expires_at, key));
            *next_generation += 1;
            Live {
                cancel: CancellationToken::new(),
                expires_at: session.expires_at,
                holders: 0,
                generation: *next_generation,
            }
        });
        entry.holders += 1;
        let (cancel, generation) = (entry.cancel.clone(), entry.generation);
        LiveSession { registry: Arc::clone(self), key, cancel, generation }
    }

    /// Ends every connection of the session `key` (logout; a cluster-bus receiver calls
    /// this for a revocation made by another process) and keeps it ended for
    /// [`TOMBSTONE_SECS`] after `now`. Whether a connection was live.
    pub fn end(&self, key: &SessionKey, now: i64) -> bool {
        let mut inner = self.lock();
        let until = now.saturating_add(TOMBSTONE_SECS);
        if let Some(old) = inner.ended.insert(*key, until) {
            inner.ended_by_time.remove(&(old, *key));
        }
        inner.ended_by_time.insert((until, *key));
        match inner.live.remove(key) {
            Some(live) => {
                inner.by_expiry.remove(&(live.expires_at, *key));
                live.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Ends the sessions expired at `now` and forgets old tombstones; how many sessions
    /// were ended.
    pub fn sweep(&self, now: i64) -> usize {
        let mut inner = self.lock();
        let mut ended = 0;
        while let Some(&(expires_at, key)) = inner.by_expiry.first() {
            if expires_at > now {
                break;
            }
            inner.by_expiry.pop_first();
            if let Some(live) = inner.live.remove(&key) {
                live.cancel.cancel();
                ended += 1;
            }
        }
        while let Some(&(until, key)) = inner.ended_by_time.first() {
            if until > now {
                break;
            }
            inner.ended_by_time.pop_first();
            inner.ended.remove(&key);
        }
        ended
    }

    /// Sessions with at least one live connection.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether no session has a live connection.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent; poisoning changes nothing.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(n: u8, expires_at: i64) -> SessionRef {
        SessionRef { key: [n; 32], expires_at }
    }

    /// Logout ends every connection of that session and no other; the registry forgets a
    /// session when its last connection drops.
    #[test]
    fn end_cancels_only_that_session() {
        let live = Arc::new(LiveSessions::default());
        let a1 = live.register(session(1, 1000), 0);
        let a2 = live.register(session(1, 1000), 0);
        let b = live.register(session(2, 1000), 0);
        assert_eq!(live.len(), 2);
        assert!(live.end(&[1; 32], 10));
        assert!(a1.is_ended() && a2.is_ended() && !b.is_ended());
        drop(b);
        assert!(live.is_empty());
        drop((a1, a2));
    }

    /// A registration after the logout (it resolved the token just before) starts ended,
    /// until the tombstone is swept.
    #[test]
    fn registration_after_end_starts_ended() {
        let live = Arc::new(LiveSessions::default());
        assert!(!live.end(&[1; 32], 100));
        assert!(live.register(session(1, 10_000), 101).is_ended());
        assert_eq!(live.sweep(100 + TOMBSTONE_SECS - 1), 0);
        assert!(live.register(session(1, 10_000), 101).is_ended());
        live.sweep(100 + TOMBSTONE_SECS);
        assert!(!live.register(session(1, 10_000), 101).is_ended());
    }

    /// The sweep ends exactly the sessions expired at `now`; an already expired session
    /// starts ended.
    #[test]
    fn sweep_ends_expired_sessions() {
        let live = Arc::new(LiveSessions::default());
        let soon = live.register(session(1, 50), 0);
        let later = live.register(session(2, 60), 0);
        assert_eq!(live.sweep(49), 0);
        assert!(!soon.is_ended());
        assert_eq!(live.sweep(50), 1);
        assert!(soon.is_ended() && !later.is_ended());
        assert_eq!(live.sweep(60), 1);
        assert!(later.is_ended());
        assert!(live.register(session(3, 70), 70).is_ended());
        assert!(live.is_empty());
    }
}
