//! [`Notice`]: what one process tells the others on the cluster bus's notification
//! channel (`Kind::Notification`), as JSON tagged by `type`.
//!
//! - A session ended by logout (`{"type":"session_ended","session":"<hex SHA-256 of the
//!   token>"}`), so that every process closes that session's live sockets and streams.
//! - A match made by the matchmaker is ready (`{"type":"match_ready","assignment":{…}}`,
//!   the committed [`Assignment`], its `match_key` the created match's id), so that every
//!   process pushes it to its own waiters (the ticket's SSE streams, the players' sync
//!   sockets).
//!
//! A receiver that does not know a notice's type (a newer process in a mixed fleet)
//! ignores it.
//!
//! Must never: carry a token (only its hash, which is what the session store keeps).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bus::{ClusterBus, Envelope, Kind, PublishOutcome};
use crate::matchmaker::Assignment;

/// One notification between processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Notice {
    /// A session was logged out: end its live connections.
    SessionEnded {
        /// The session token's SHA-256, lowercase hex.
        session: String,
    },
    /// The matchmaker committed `assignment` and its match exists: tell its players.
    MatchReady {
        /// The committed assignment (`match_key`: the match's id).
        assignment: Arc<Assignment>,
    },
}

impl Notice {
    /// The notice for the session whose token hashes to `key`.
    #[must_use]
    pub fn session_ended(key: &[u8; 32]) -> Self {
        use std::fmt::Write as _;
        let mut session = String::with_capacity(64);
        for byte in key {
            let _ = write!(session, "{byte:02x}");
        }
        Self::SessionEnded { session }
    }

    /// The token hash of a [`Notice::SessionEnded`], parsed back.
    #[must_use]
    pub fn session_key(&self) -> Option<[u8; 32]> {
        let Self::SessionEnded { session } = self else { return None };
        if session.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(session.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(key)
    }

    /// Sends this notice to the other processes (never waits).
    pub fn publish(&self, bus: &ClusterBus) -> PublishOutcome {
        let topic = match self {
            Self::SessionEnded { .. } => "session_ended",
            Self::MatchReady { .. } => "match_ready",
        };
        match bus.publish_json(Kind::Notification, topic, self) {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "a notice did not serialize");
                PublishOutcome::Skipped
            }
        }
    }

    /// The notice an envelope carries, if this build knows it.
    #[must_use]
    pub fn from_envelope(envelope: &Envelope) -> Option<Self> {
        envelope.payload_as().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session key survives the notice's hex form; a bad one does not parse.
    #[test]
    fn session_key_round_trip() {
        let key = [0xab; 32];
        let notice = Notice::session_ended(&key);
        assert_eq!(notice.session_key(), Some(key));
        let bad = Notice::SessionEnded { session: "zz".repeat(32) };
        assert_eq!(bad.session_key(), None);
    }

    /// A match-ready notice crosses the bus as `{"type":"match_ready","assignment":{…}}`
    /// and reads back the same; it names no session.
    #[test]
    fn match_ready_round_trip() {
        let assignment = Assignment {
            match_key: "eu_2-abcdefghijkl".into(),
            region: "eu".into(),
            game: "arena".into(),
            mode: None,
            tickets: vec!["eu-t1".into()],
            players: vec!["u1".into(), "u2".into()],
            backfill: false,
            average_skill: Some(1200.0),
            matched_at: 1_700_000_000_000,
            created_at: vec![1_699_999_999_000],
            party_sizes: vec![2],
            params: None,
        };
        let notice = Notice::MatchReady { assignment: Arc::new(assignment) };
        let json = serde_json::to_value(&notice).unwrap_or_default();
        assert_eq!(json["type"], "match_ready");
        assert_eq!(json["assignment"]["match_key"], "eu_2-abcdefghijkl");
        let back: Notice =
            serde_json::from_value(json).unwrap_or(Notice::SessionEnded { session: String::new() });
        assert_eq!(back, notice);
        assert_eq!(notice.session_key(), None);
    }
}
