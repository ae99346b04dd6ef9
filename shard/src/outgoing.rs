//! What comes out of a shard: one closed enum per frame a subscriber can receive.
//!
//! The shard produces `(SubscriberKey, Outgoing)` pairs; the tick thread moves them into
//! subscriber mailboxes; the I/O layer turns them into wire bytes with
//! [`crate::codec::FrameEncoder`]. Payloads are shared and encoded at most once per format.

use serde::Serialize;

use crate::codec::Payload;
use crate::game::{JoinRejected, SubscriberKey};

/// One frame for one subscriber.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outgoing {
    /// The join succeeded: this subscription's key (`resumed` when the sid was already
    /// subscribed and this connection took its place).
    Joined {
        /// The key the I/O layer must use for this subscription's inputs and leave.
        key: SubscriberKey,
        /// The sid was already in the match (a reconnect): its state was kept.
        resumed: bool,
    },
    /// The join was refused.
    JoinRejected(JoinRejected),
    /// The state after one tick.
    Snapshot(SnapshotFrame),
    /// The match finished; no frame follows.
    MatchEnd(MatchEnd),
    /// The match was stopped before finishing; no frame follows.
    Stopped(StopReason),
}

impl Outgoing {
    /// Whether this frame may be replaced by a newer one before it is sent (snapshots),
    /// as opposed to frames that must be delivered (joins, ends, errors).
    #[must_use]
    pub fn is_droppable(&self) -> bool {
        matches!(self, Self::Snapshot(_))
    }
}

/// A snapshot frame: the tick, the receiving subscriber's ack, and the (shared) snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotFrame {
    /// The tick this snapshot was taken after.
    pub tick: u64,
    /// The last `client_seq` of this subscriber applied at or before `tick`.
    pub ack: Option<u64>,
    /// The snapshot value; shared by every subscriber that sees the same view.
    pub body: Payload,
}

/// The final frame of a finished match.
#[derive(Debug, Clone)]
pub struct MatchEnd {
    /// The tick the match finished on.
    pub tick: u64,
    /// The game's outcome value.
    pub outcome: Payload,
}

/// Why a match stopped without finishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopReason {
    /// An operator or the API stopped it.
    Stopped,
    /// A game system panicked; the match cannot continue.
    Panicked,
    /// It had no subscribers and no input for the idle timeout.
    Idle,
    /// The process is shutting down.
    Shutdown,
}

impl StopReason {
    /// A stable lowercase code for logs, metrics and error frames.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Panicked => "panicked",
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
        }
    }
}
