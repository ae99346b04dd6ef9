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
//! - `MsgPack` / `MsgPackDelta` / `MsgPackDeltaV2` (ours, opt-in): binary frame =
//!   MessagePack array `[kind, tick, ack, base, body]`, deltas against the snapshot the
//!   client acknowledged: patches of [`delta`] (`delta=1`) or the denser [`delta_v2`]
//!   (`delta=2`).
//!
//! Client frames: JSON `{"input":…, "client_seq":N, "base":T}` in compat modes, MessagePack
//! `[client_seq, base, input]` in MessagePack modes ([`decode_client_frame`]).

mod client;
pub mod delta;
pub mod delta_v2;
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
    /// MessagePack with delta snapshots, patches of [`delta`] (`format=msgpack&delta=1`).
    MsgPackDelta,
    /// MessagePack with delta snapshots, patches of [`delta_v2`] (`format=msgpack&delta=2`).
    MsgPackDeltaV2,
}

/// The patch format of a delta mode's kind 2 frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeltaVersion {
    /// [`delta`]: `{"r"}`, `{"o", "d"}` and `{"a", "n"}` maps (`delta=1`).
    V1,
    /// [`delta_v2`]: bare scalars, maps of changed keys, tagged arrays (`delta=2`).
    V2,
}

impl WireMode {
    /// The mode for a socket's `format` and `delta` query values (`delta` as written:
    /// `1` or `true` turn on deltas of [`DeltaVersion::V1`], `2` those of
    /// [`DeltaVersion::V2`], a missing or `0`/`false` value leaves them off); `None` for
    /// an unknown format or delta value, or deltas without MessagePack (the I/O layer
    /// answers 4400).
    #[must_use]
    pub fn from_query(format: Option<&str>, delta: Option<&str>) -> Option<Self> {
        let delta = match delta {
            None | Some("0" | "false") => None,
            Some("1" | "true") => Some(DeltaVersion::V1),
            Some("2") => Some(DeltaVersion::V2),
            Some(_) => return None,
        };
        match (format, delta) {
            (None | Some("binary"), None) => Some(Self::Binary),
            (Some("json" | "text"), None) => Some(Self::Text),
            (Some("msgpack"), None) => Some(Self::MsgPack),
            (Some("msgpack"), Some(DeltaVersion::V1)) => Some(Self::MsgPackDelta),
            (Some("msgpack"), Some(DeltaVersion::V2)) => Some(Self::MsgPackDeltaV2),
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
            Self::MsgPackDeltaV2 => "format=msgpack&delta=2",
        }
    }

    /// Whether client frames in this mode are MessagePack (otherwise JSON).
    #[must_use]
    pub fn is_msgpack(self) -> bool {
        matches!(self, Self::MsgPack | Self::MsgPackDelta | Self::MsgPackDeltaV2)
    }

    /// The patch format of this mode's delta frames; `None` when it sends no deltas.
    #[must_use]
    pub fn delta_version(self) -> Option<DeltaVersion> {
        match self {
            Self::Binary | Self::Text | Self::MsgPack => None,
            Self::MsgPackDelta => Some(DeltaVersion::V1),
            Self::MsgPackDeltaV2 => Some(DeltaVersion::V2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mode is selected by exactly the query it writes, `delta=1`/`true` keep the
    /// first patch format, and unknown values or deltas without MessagePack are refused.
    #[test]
    fn modes_from_the_query() {
        for mode in [
            WireMode::Binary,
            WireMode::Text,
            WireMode::MsgPack,
            WireMode::MsgPackDelta,
            WireMode::MsgPackDeltaV2,
        ] {
            let mut format = None;
            let mut delta = None;
            for pair in mode.query().split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("format", v)) => format = Some(v),
                    Some(("delta", v)) => delta = Some(v),
                    _ => panic!("unexpected query pair {pair}"),
                }
            }
            assert_eq!(WireMode::from_query(format, delta), Some(mode), "{}", mode.query());
        }
        let q = WireMode::from_query;
        assert_eq!(q(Some("msgpack"), Some("true")), Some(WireMode::MsgPackDelta));
        assert_eq!(q(Some("msgpack"), Some("0")), Some(WireMode::MsgPack));
        assert_eq!(q(Some("msgpack"), Some("false")), Some(WireMode::MsgPack));
        assert_eq!(q(Some("json"), Some("0")), Some(WireMode::Text));
        for (format, delta) in [
            (Some("msgpack"), Some("3")),
            (Some("msgpack"), Some("")),
            (Some("msgpack"), Some("yes")),
            (Some("json"), Some("2")),
            (None, Some("1")),
            (Some("cbor"), None),
        ] {
            assert_eq!(q(format, delta), None, "{format:?} {delta:?}");
        }
        assert_eq!(WireMode::MsgPackDeltaV2.delta_version(), Some(DeltaVersion::V2));
        assert_eq!(WireMode::MsgPack.delta_version(), None);
    }
}
