//! The wire codec: every byte pylon puts on or takes off a shard socket passes through here.
//! Pure functions and small state machines; no I/O.
//!
//! Changing anything in this module changes the protocol. Update together:
//! `docs/PROTOCOL.md`, `clients/ts/src` (its decoder and delta apply), and the compat
//! tests.
//!
//! Both halves live here: the server's ([`FrameEncoder`], [`decode_client_frame`]) and
//! the client's ([`decode_server_frame`], [`SnapshotReader`], [`encode_client_frame`]),
//! which the load bots, the integration tests and the fuzz targets use.
//!
//! Modes ([`WireMode`]):
//! - `Binary` (compat default): binary frame = u64 big-endian tick, then the snapshot JSON.
//! - `Text` (compat, `format=json`): text frame `{"tick":N,"snapshot":…}`.
//! - `MsgPack` / `MsgPackDelta` (ours, opt-in): binary frame = MessagePack array
//!   `[kind, tick, ack, base, body]`, deltas against the snapshot the client acknowledged.
//!
//! Client frames: JSON `{"input":…, "client_seq":N, "base":T}` in compat modes, MessagePack
//! `[client_seq, base, input]` in MessagePack modes ([`decode_client_frame`]).

mod client;
pub mod delta;
mod error;
mod payload;
mod reader;
mod server;

pub use client::{
    ClientFrame, InputPayload, PayloadFormat, decode_client_frame, decode_input,
    encode_client_frame,
};
pub use error::CodecError;
pub use payload::{Cached, DeltaBytes, DeltaCache, Payload, PayloadValue};
pub use reader::{FrameBody, ServerFrame, SnapshotReader, decode_server_frame};
pub use server::{FrameEncoder, FrameKind, FrameType, HISTORY_LIMIT, encode_snapshot_json};

/// How a subscriber's frames are encoded, chosen by the socket query at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireMode {
    /// Compat: binary frames, u64 BE tick + snapshot JSON. What stock clients expect.
    #[default]
    Binary,
    /// Compat text mode (`format=json`): `{"tick":N,"snapshot":…}` text frames.
    Text,
    /// MessagePack frames with acks and match end (`format=msgpack`).
    MsgPack,
    /// MessagePack with delta snapshots (`format=msgpack&delta=1`).
    MsgPackDelta,
}

impl WireMode {
    /// The mode for a socket's `format` and `delta` query values; `None` for an unknown
    /// format (the I/O layer answers 4400).
    #[must_use]
    pub fn from_query(format: Option<&str>, delta: bool) -> Option<Self> {
        match (format, delta) {
            (None | Some("binary"), false) => Some(Self::Binary),
            (Some("json" | "text"), false) => Some(Self::Text),
            (Some("msgpack"), false) => Some(Self::MsgPack),
            (Some("msgpack"), true) => Some(Self::MsgPackDelta),
            _ => None,
        }
    }

    /// The socket query parameters that select this mode (`""` for the default).
    #[must_use]
    pub fn query(self) -> &'static str {
        match self {
            Self::Binary => "",
            Self::Text => "format=json",
            Self::MsgPack => "format=msgpack",
            Self::MsgPackDelta => "format=msgpack&delta=1",
        }
    }

    /// Whether client frames in this mode are MessagePack (otherwise JSON).
    #[must_use]
    pub fn is_msgpack(self) -> bool {
        matches!(self, Self::MsgPack | Self::MsgPackDelta)
    }
}
