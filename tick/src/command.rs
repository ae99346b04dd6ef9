//! The one closed enum that crosses from the I/O side into a tick thread.

use std::sync::Arc;

use pylon_shard::codec::InputPayload;
use pylon_shard::{Auth, DynShard, Outgoing, StopReason, SubscriberKey};

use crate::mailbox::Mailbox;
use crate::receipt::InputReceipt;
use crate::status::ShardStatus;

/// Identifies a shard inside a pool (unique for the pool's lifetime).
pub type ShardId = u64;

/// Who sent an input.
#[derive(Debug, Clone)]
pub enum InputFrom {
    /// A socket subscription (the key from its `Joined` frame).
    Key(SubscriberKey),
    /// A subscriber by sid (the HTTP input fallback).
    Sid(Arc<str>),
}

/// A command for the tick thread that owns `shard`.
pub enum Command {
    /// Take ownership of a new shard and start ticking it.
    Create {
        /// Its id.
        shard: ShardId,
        /// The match.
        state: Box<dyn DynShard>,
        /// Its shared status block.
        status: Arc<ShardStatus>,
    },
    /// Subscribe `sid`; the answer (`Joined` or `JoinRejected`) arrives in `mailbox`.
    Join {
        /// Target shard.
        shard: ShardId,
        /// Subscriber id.
        sid: Arc<str>,
        /// The authenticated caller.
        auth: Auth,
        /// Where this subscriber's frames go.
        mailbox: Arc<Mailbox<Outgoing>>,
    },
    /// Unsubscribe.
    Leave {
        /// Target shard.
        shard: ShardId,
        /// The subscription.
        key: SubscriberKey,
    },
    /// One input for the next tick.
    Input {
        /// Target shard.
        shard: ShardId,
        /// Sender.
        from: InputFrom,
        /// The sender's sequence number.
        client_seq: Option<u64>,
        /// The undecoded input.
        payload: InputPayload,
        /// Clock reading at hand-off (input latency metric).
        sent_at_ns: u64,
        /// Where to answer what happened to it (HTTP inputs); `None` for socket inputs.
        receipt: Option<InputReceipt>,
    },
    /// Stop the match; subscribers get `Stopped(reason)`.
    Stop {
        /// Target shard.
        shard: ShardId,
        /// Why.
        reason: StopReason,
    },
    /// Stop every shard with `Shutdown` and end the thread.
    Shutdown,
}
