//! The client half of server frames: [`decode_server_frame`] reads any frame a
//! [`super::FrameEncoder`] writes, in every mode, and [`SnapshotReader`] rebuilds full
//! snapshots from delta frames. Bots, tests and fuzz targets read frames here, so no other
//! code needs to know the byte layout.
//!
//! Reading is cheap where a client only needs the envelope: tick, ack and base come out
//! without parsing the snapshot, and the body stays a borrowed slice until asked for.

use std::collections::VecDeque;

use serde_json::Value;

use super::delta::{self, Patch};
use super::delta_v2;
use super::error::CodecError;
use super::server::{FrameKind, FrameType};
use super::{DeltaVersion, WireMode};

/// One decoded server frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFrame<'a> {
    /// What the frame holds (compat frames are always snapshots).
    pub kind: FrameKind,
    /// The snapshot's tick (match end: the final tick; 0 for stopped and joined).
    pub tick: u64,
    /// The receiver's last processed `client_seq`, when the frame carries one (compat
    /// modes: only for games with an ack key).
    pub ack: Option<u64>,
    /// Delta frames: the tick of the snapshot the patch applies to.
    pub base: Option<u64>,
    /// The body, undecoded.
    pub body: FrameBody<'a>,
}

/// A frame's body as it came off the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameBody<'a> {
    /// JSON text (compat snapshots, with the ack spliced in).
    Json(&'a [u8]),
    /// One MessagePack value.
    MsgPack(&'a [u8]),
    /// MessagePack nil in a delta frame: nothing changed since the base.
    Unchanged,
}

impl FrameBody<'_> {
    /// The body as a JSON value (a delta frame's body is its patch, as a value).
    ///
    /// # Errors
    /// [`CodecError`] when the body does not decode.
    pub fn value(&self) -> Result<Value, CodecError> {
        match self {
            Self::Json(bytes) => Ok(serde_json::from_slice(bytes)?),
            Self::MsgPack(bytes) => {
                rmp_serde::from_slice(bytes).map_err(|e| CodecError::MsgPack(e.to_string()))
            }
            Self::Unchanged => Ok(Value::Null),
        }
    }

    /// A delta frame's patch in the first format, `delta=1` (`None`: unchanged).
    ///
    /// # Errors
    /// [`CodecError`] when the body is not a patch.
    pub fn patch(&self) -> Result<Option<Patch>, CodecError> {
        match self {
            Self::Unchanged => Ok(None),
            Self::MsgPack(bytes) => rmp_serde::from_slice(bytes)
                .map(Some)
                .map_err(|e| CodecError::MsgPack(e.to_string())),
            Self::Json(bytes) => Ok(Some(serde_json::from_slice(bytes)?)),
        }
    }

    /// A delta frame's patch in the second format, `delta=2` (`None`: unchanged).
    ///
    /// # Errors
    /// [`CodecError`] when the body is not a patch.
    pub fn patch_v2(&self) -> Result<Option<delta_v2::Patch>, CodecError> {
        match self {
            Self::Unchanged => Ok(None),
            Self::MsgPack(bytes) => delta_v2::Patch::read_msgpack(bytes).map(Some),
            Self::Json(bytes) => {
                let value: Value = serde_json::from_slice(bytes)?;
                Ok(Some(delta_v2::Patch::try_from(value)?))
            }
        }
    }
}

/// Decodes one server frame of `mode`, received as a `frame_type` message. `ack_key` is
/// the game's ack key (`Game::ACK_KEY`; arena: `"ack"`): compat snapshots carry the ack as
/// that first key of the snapshot object.
///
/// # Errors
/// [`CodecError::Shape`] or a decode error when the bytes are not a frame of that mode.
pub fn decode_server_frame<'a>(
    mode: WireMode,
    frame_type: FrameType,
    bytes: &'a [u8],
    ack_key: Option<&str>,
) -> Result<ServerFrame<'a>, CodecError> {
    match (mode, frame_type) {
        (WireMode::Binary, FrameType::Binary) => {
            let (tick, json) = bytes
                .split_first_chunk::<8>()
                .ok_or(CodecError::Shape("a binary frame starts with an 8-byte tick"))?;
            Ok(snapshot(u64::from_be_bytes(*tick), json, ack_key))
        }
        (WireMode::Text, FrameType::Text) => {
            let (tick, json) = split_text_frame(bytes)?;
            Ok(snapshot(tick, json, ack_key))
        }
        (
            WireMode::MsgPack | WireMode::MsgPackDelta | WireMode::MsgPackDeltaV2,
            FrameType::Binary,
        ) => decode_msgpack(bytes),
        _ => Err(CodecError::Shape("frame type does not match the wire mode")),
    }
}

fn snapshot<'a>(tick: u64, json: &'a [u8], ack_key: Option<&str>) -> ServerFrame<'a> {
    ServerFrame {
        kind: FrameKind::Snapshot,
        tick,
        ack: ack_key.and_then(|key| leading_ack(json, key)),
        base: None,
        body: FrameBody::Json(json),
    }
}

/// The ack the encoder splices in as the first key: `{"<key>":17,…`; `None` for
/// `null` or a snapshot without it.
fn leading_ack(json: &[u8], key: &str) -> Option<u64> {
    let rest = json.strip_prefix(b"{\"")?.strip_prefix(key.as_bytes())?.strip_prefix(b"\":")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// `{"tick":N,"snapshot":<json>}` as the encoder writes it: (N, the snapshot's bytes).
fn split_text_frame(bytes: &[u8]) -> Result<(u64, &[u8]), CodecError> {
    const BAD: CodecError = CodecError::Shape("expected {\"tick\":N,\"snapshot\":…}");
    let rest = bytes.strip_prefix(b"{\"tick\":").ok_or(BAD)?;
    let digits = rest.iter().position(|b| !b.is_ascii_digit()).ok_or(BAD)?;
    let tick = std::str::from_utf8(&rest[..digits]).ok().and_then(|d| d.parse().ok()).ok_or(BAD)?;
    let body = rest[digits..].strip_prefix(b",\"snapshot\":").ok_or(BAD)?;
    let body = body.strip_suffix(b"}").ok_or(BAD)?;
    Ok((tick, body))
}

fn decode_msgpack(bytes: &[u8]) -> Result<ServerFrame<'_>, CodecError> {
    let bad = |what: &str| CodecError::MsgPack(what.to_owned());
    let mut rest = bytes;
    if rmp::decode::read_array_len(&mut rest).map_err(|_| bad("expected an array"))? != 5 {
        return Err(bad("expected [kind, tick, ack, base, body]"));
    }
    let kind: u8 = rmp::decode::read_int(&mut rest).map_err(|_| bad("kind"))?;
    let kind = match kind {
        1 => FrameKind::Snapshot,
        2 => FrameKind::Delta,
        3 => FrameKind::MatchEnd,
        4 => FrameKind::Stopped,
        5 => FrameKind::Joined,
        _ => return Err(bad("unknown frame kind")),
    };
    let tick = rmp::decode::read_int(&mut rest).map_err(|_| bad("tick"))?;
    let ack = read_opt_u64(&mut rest).ok_or_else(|| bad("ack: expected uint or nil"))?;
    let base = read_opt_u64(&mut rest).ok_or_else(|| bad("base: expected uint or nil"))?;
    if rest.is_empty() {
        return Err(bad("missing body"));
    }
    let body = if kind == FrameKind::Delta && rest == [NIL] {
        FrameBody::Unchanged
    } else {
        FrameBody::MsgPack(rest)
    };
    Ok(ServerFrame { kind, tick, ack, base, body })
}

const NIL: u8 = 0xc0;

fn read_opt_u64(rest: &mut &[u8]) -> Option<Option<u64>> {
    if rest.first() == Some(&NIL) {
        *rest = &rest[1..];
        return Some(None);
    }
    rmp::decode::read_int::<u64, _>(rest).ok().map(Some)
}

/// How many decoded snapshots a [`SnapshotReader`] keeps as possible delta bases.
const READER_HISTORY: usize = 64;

/// A client's view of a match: decodes frames and rebuilds full snapshots from deltas.
/// `base_to_ack` is the newest tick it holds, which a delta-mode client sends back as
/// `base` so the server diffs against it.
#[derive(Debug)]
pub struct SnapshotReader {
    history: VecDeque<(u64, Value)>,
    version: DeltaVersion,
}

impl Default for SnapshotReader {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotReader {
    /// An empty reader of the first patch format (`delta=1`; any mode without deltas).
    #[must_use]
    pub fn new() -> Self {
        Self { history: VecDeque::new(), version: DeltaVersion::V1 }
    }

    /// An empty reader for the frames of `mode` (its deltas' patch format).
    #[must_use]
    pub fn for_mode(mode: WireMode) -> Self {
        Self { history: VecDeque::new(), version: mode.delta_version().unwrap_or(DeltaVersion::V1) }
    }

    /// The full snapshot `frame` stands for: a snapshot's body, or a delta applied to
    /// its base. `Ok(None)` for frames that carry no snapshot.
    ///
    /// # Errors
    /// A body that does not decode, a delta whose base this reader does not hold, or a
    /// patch that does not fit its base.
    pub fn read(&mut self, frame: &ServerFrame<'_>) -> Result<Option<&Value>, CodecError> {
        let value = match frame.kind {
            FrameKind::Snapshot => frame.body.value()?,
            FrameKind::Delta => {
                let base_tick =
                    frame.base.ok_or(CodecError::Shape("a delta frame without base"))?;
                let base =
                    self.history.iter().find(|(t, _)| *t == base_tick).map(|(_, v)| v).ok_or(
                        CodecError::Shape("a delta against a base the client does not hold"),
                    )?;
                rebuild(self.version, base, &frame.body)?
            }
            _ => return Ok(None),
        };
        if self.history.len() >= READER_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((frame.tick, value));
        Ok(self.history.back().map(|(_, v)| v))
    }

    /// The newest tick held (0: none yet).
    #[must_use]
    pub fn base_to_ack(&self) -> u64 {
        self.history.back().map_or(0, |(t, _)| *t)
    }
}

/// The snapshot a delta frame's `body` stands for, against `base`.
fn rebuild(version: DeltaVersion, base: &Value, body: &FrameBody<'_>) -> Result<Value, CodecError> {
    let rebuilt = match version {
        DeltaVersion::V1 => body.patch()?.map(|patch| delta::apply(base, &patch)),
        DeltaVersion::V2 => body.patch_v2()?.map(|patch| delta_v2::apply(base, &patch)),
    };
    Ok(rebuilt.transpose()?.unwrap_or_else(|| base.clone()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// Text frames split without a parse; a bad shape is an error.
    #[test]
    fn text_frames() {
        let (tick, body) = split_text_frame(br#"{"tick":42,"snapshot":{"ack":3,"x":1}}"#).unwrap();
        assert_eq!((tick, body), (42, &br#"{"ack":3,"x":1}"#[..]));
        assert_eq!(leading_ack(body, "ack"), Some(3));
        assert_eq!(leading_ack(br#"{"ack":null,"x":1}"#, "ack"), None);
        assert!(split_text_frame(b"{\"snapshot\":1}").is_err());
        assert!(decode_server_frame(WireMode::Binary, FrameType::Binary, b"short", None).is_err());
        assert!(
            decode_server_frame(WireMode::MsgPack, FrameType::Binary, &[0x93, 1, 2, 3], None)
                .is_err()
        );
    }
}
