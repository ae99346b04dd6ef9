//! Where a feed opened without `since` starts: [`PullCursors`] remembers the cursor each
//! session (or, for anonymous callers, each client address) last received from
//! `GET /api/sync/pull`.
//!
//! pylon's own sync engine pulls, then opens the feed socket without a cursor. Starting
//! such a feed at the newest change would lose whatever committed between the pull and the
//! socket; starting it at the remembered cursor loses nothing and, for a session, sends
//! nothing the client already pulled. Anonymous callers behind one address share an
//! entry, which keeps the lowest cursor pulled in the last [`ADDRESS_WINDOW`]: such a
//! feed may resend changes a client already has, which it drops (its cursor is past
//! them), and never skips one.
//!
//! Memory only, bounded by [`MAX_ENTRIES`]; entries older than [`ENTRY_TTL`] are swept.
//! A feed whose caller never pulled in this process starts at the newest change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most remembered cursors; past this, the oldest are swept first.
pub const MAX_ENTRIES: usize = 100_000;
/// How long a remembered cursor is kept.
pub const ENTRY_TTL: Duration = Duration::from_secs(600);
/// Anonymous pulls from one address within this window share the lowest cursor.
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(60);

/// Whose cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CursorKey {
    /// A session, by its token's SHA-256.
    Session([u8; 32]),
    /// An anonymous caller, by client address.
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    at: Instant,
}

/// The remembered cursors.
#[derive(Debug, Default)]
pub struct PullCursors {
    map: Mutex<HashMap<CursorKey, Entry>>,
}

impl PullCursors {
    /// Remembers that `key` pulled up to `seq` at `now`.
    pub fn remember(&self, key: CursorKey, seq: u64, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            sweep(&mut map, now);
            if map.len() >= MAX_ENTRIES {
                return; // full of fresh entries: this feed will start at the newest change
            }
        }
        let entry = map.entry(key).or_insert(Entry { seq, at: now });
        entry.seq = match key {
            CursorKey::Session(_) => seq,
            // Within the window, keep the lowest: another client behind the address may
            // still be between its pull and its socket.
            CursorKey::Address(_) if now.duration_since(entry.at) < ADDRESS_WINDOW => {
                entry.seq.min(seq)
            }
            CursorKey::Address(_) => seq,
        };
        entry.at = now;
    }

    /// Where a feed of `key` opened without `since` at `now` starts, if remembered.
    #[must_use]
    pub fn start(&self, key: CursorKey, now: Instant) -> Option<u64> {
        let map = self.lock();
        let entry = map.get(&key)?;
        (now.duration_since(entry.at) < ENTRY_TTL).then_some(entry.seq)
    }

    /// Drops entries older than [`ENTRY_TTL`]; how many are left.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut map = self.lock();
        sweep(&mut map, now);
        map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CursorKey, Entry>> {
        // Every critical section is one map operation; a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn sweep(map: &mut HashMap<CursorKey, Entry>, now: Instant) {
    map.retain(|_, e| now.duration_since(e.at) < ENTRY_TTL);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's cursor is its last pull; an address keeps its lowest pull within the
    /// window; entries expire.
    #[test]
    fn sessions_addresses_and_expiry() {
        let t0 = Instant::now();
        let cursors = PullCursors::default();
        let s = CursorKey::Session([7; 32]);
        cursors.remember(s, 10, t0);
        cursors.remember(s, 5, t0);
        assert_eq!(cursors.start(s, t0), Some(5));
        let a = CursorKey::Address(IpAddr::from([10, 0, 0, 1]));
        cursors.remember(a, 10, t0);
        cursors.remember(a, 12, t0 + Duration::from_secs(1));
        assert_eq!(cursors.start(a, t0), Some(10), "the lowest within the window");
        cursors.remember(a, 20, t0 + ADDRESS_WINDOW + Duration::from_secs(2));
        assert_eq!(cursors.start(a, t0 + ADDRESS_WINDOW + Duration::from_secs(2)), Some(20));
        assert_eq!(cursors.start(s, t0 + ENTRY_TTL), None, "expired");
        assert_eq!(cursors.sweep(t0 + ENTRY_TTL + ADDRESS_WINDOW + Duration::from_secs(3)), 0);
    }
}
