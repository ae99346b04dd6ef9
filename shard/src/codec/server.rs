//! Server → client frames. [`FrameEncoder`] is the per-subscriber encoding state: the wire
//! mode and, for the delta modes, the recent snapshots a client may acknowledge as a base.

use std::collections::VecDeque;
use std::io::Write;

use serde::Serialize;

use super::delta;
use super::delta_v2;
use super::error::CodecError;
use super::payload::{DeltaBytes, Payload};
use super::{DeltaVersion, WireMode};
use crate::outgoing::{Outgoing, SnapshotFrame};

/// How many recent snapshots a delta-mode subscriber may use as a base. A client whose
/// acknowledged base is older gets a full snapshot.
pub const HISTORY_LIMIT: usize = 32;

/// Whether a frame goes out as a WebSocket binary or text message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// A binary message.
    Binary,
    /// A text message (UTF-8).
    Text,
}

/// The `kind` element of a MessagePack frame `[kind, tick, ack, base, body]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// `body` is the full snapshot.
    Snapshot = 1,
    /// `body` is a delta patch against the snapshot of tick `base` (nil: unchanged).
    Delta = 2,
    /// `body` is the match outcome; the match is over.
    MatchEnd = 3,
    /// `body` is `{"code": "…"}`: the match stopped or the join was refused.
    Stopped = 4,
    /// `body` is `{"key": N, "resumed": bool}`: the join succeeded.
    Joined = 5,
}

#[derive(Serialize)]
struct Code<'a> {
    code: &'a str,
}

#[derive(Serialize)]
struct JoinedBody {
    key: u32,
    resumed: bool,
}

/// Per-subscriber encoder. Owned by that subscriber's writer; never shared.
#[derive(Debug, Default)]
pub struct FrameEncoder {
    mode: WireMode,
    history: VecDeque<(u64, Payload)>,
    base: Option<u64>,
}

impl FrameEncoder {
    /// An encoder for `mode`.
    #[must_use]
    pub fn new(mode: WireMode) -> Self {
        Self { mode, history: VecDeque::new(), base: None }
    }

    /// The mode this encoder writes.
    #[must_use]
    pub fn mode(&self) -> WireMode {
        self.mode
    }

    /// The client acknowledged holding the snapshot of `tick`: later deltas use it as base,
    /// and older history is released.
    pub fn handle_base_ack(&mut self, tick: u64) {
        if self.base.is_some_and(|b| b >= tick) {
            return;
        }
        if self.history.iter().any(|(t, _)| *t == tick) {
            self.base = Some(tick);
            while self.history.front().is_some_and(|(t, _)| *t < tick) {
                self.history.pop_front();
            }
        }
    }

    /// Encodes `frame` into `out` (cleared first). `Ok(None)`: this mode does not carry
    /// that frame (compat clients get only snapshots); send nothing.
    ///
    /// # Errors
    /// [`CodecError::Encode`] when the payload cannot be encoded.
    pub fn encode(
        &mut self,
        frame: &Outgoing,
        out: &mut Vec<u8>,
    ) -> Result<Option<FrameType>, CodecError> {
        out.clear();
        match (self.mode, frame) {
            (WireMode::Binary, Outgoing::Snapshot(s)) => {
                out.extend_from_slice(&s.tick.to_be_bytes());
                write_json_with_ack(s, out)?;
                Ok(Some(FrameType::Binary))
            }
            (WireMode::Text, Outgoing::Snapshot(s)) => {
                write!(out, "{{\"tick\":{},\"snapshot\":", s.tick).map_err(io_err)?;
                write_json_with_ack(s, out)?;
                out.push(b'}');
                Ok(Some(FrameType::Text))
            }
            (WireMode::Binary | WireMode::Text, _) => Ok(None),
            (WireMode::MsgPack | WireMode::MsgPackDelta | WireMode::MsgPackDeltaV2, _) => {
                self.encode_msgpack(frame, out)?;
                Ok(Some(FrameType::Binary))
            }
        }
    }

    fn encode_msgpack(&mut self, frame: &Outgoing, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match frame {
            Outgoing::Snapshot(s) => self.encode_snapshot(s, out),
            Outgoing::MatchEnd(end) => {
                header(out, FrameKind::MatchEnd, end.tick, None, None)?;
                out.extend_from_slice(end.outcome.msgpack()?);
                Ok(())
            }
            Outgoing::Stopped(reason) => {
                header(out, FrameKind::Stopped, 0, None, None)?;
                write_named(out, &Code { code: reason.as_str() })
            }
            Outgoing::JoinRejected(why) => {
                header(out, FrameKind::Stopped, 0, None, None)?;
                let code = serde_json::to_value(why).map_err(CodecError::Json)?;
                write_named(out, &Code { code: code.as_str().unwrap_or("rejected") })
            }
            Outgoing::Joined { key, resumed } => {
                header(out, FrameKind::Joined, 0, None, None)?;
                write_named(out, &JoinedBody { key: key.0, resumed: *resumed })
            }
        }
    }

    fn encode_snapshot(&mut self, s: &SnapshotFrame, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let version = self.mode.delta_version();
        if let Some(version) = version
            && let Some((base_tick, patch)) = self.delta_against_base(s, version)?
        {
            header(out, FrameKind::Delta, s.tick, s.ack, Some(base_tick))?;
            match patch {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => rmp::encode::write_nil(out).map_err(io_err)?,
            }
            self.remember(s);
            return Ok(());
        }
        header(out, FrameKind::Snapshot, s.tick, s.ack, None)?;
        out.extend_from_slice(s.body.msgpack()?);
        if version.is_some() {
            self.remember(s);
        }
        Ok(())
    }

    fn delta_against_base(
        &self,
        s: &SnapshotFrame,
        version: DeltaVersion,
    ) -> Result<Option<(u64, DeltaBytes)>, CodecError> {
        let Some(base_tick) = self.base else {
            return Ok(None);
        };
        let Some((_, base)) = self.history.iter().find(|(t, _)| *t == base_tick) else {
            return Ok(None);
        };
        // Shared by every subscriber of this snapshot that holds the same base and format.
        let patch = s.body.delta_cache().get_or_make(base, version, || {
            let (base, current) = (base.tree()?, s.body.tree()?);
            let mut bytes = Vec::new();
            match version {
                DeltaVersion::V1 => match delta::diff(base, current) {
                    Some(patch) => patch.write_msgpack(&mut bytes)?,
                    None => return Ok(None),
                },
                DeltaVersion::V2 => match delta_v2::diff(base, current) {
                    Some(patch) => patch.write_msgpack(&mut bytes)?,
                    None => return Ok(None),
                },
            }
            Ok(Some(bytes))
        })?;
        Ok(Some((base_tick, patch)))
    }

    fn remember(&mut self, s: &SnapshotFrame) {
        if self.history.len() >= HISTORY_LIMIT {
            // Keep the acknowledged base: evict the entry after it instead.
            let front_is_base = self.history.front().map(|(t, _)| *t) == self.base;
            let evict = usize::from(front_is_base && self.history.len() > 1);
            self.history.remove(evict);
        }
        self.history.push_back((s.tick, s.body.clone()));
    }
}

fn io_err(e: impl std::fmt::Display) -> CodecError {
    CodecError::Encode(e.to_string())
}

fn write_named<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), CodecError> {
    rmp_serde::encode::write_named(out, value).map_err(io_err)
}

fn write_opt_u64(out: &mut Vec<u8>, value: Option<u64>) -> Result<(), CodecError> {
    match value {
        Some(v) => rmp::encode::write_uint(out, v).map(|_| ()).map_err(io_err),
        None => rmp::encode::write_nil(out).map_err(io_err),
    }
}

fn header(
    out: &mut Vec<u8>,
    kind: FrameKind,
    tick: u64,
    ack: Option<u64>,
    base: Option<u64>,
) -> Result<(), CodecError> {
    rmp::encode::write_array_len(out, 5).map_err(io_err)?;
    rmp::encode::write_uint(out, kind as u64).map_err(io_err)?;
    rmp::encode::write_uint(out, tick).map_err(io_err)?;
    write_opt_u64(out, ack)?;
    write_opt_u64(out, base)
}

/// Writes a snapshot's JSON with the receiver's ack spliced in (the body of a compat
/// binary frame without its tick, and the `data:` of an SSE snapshot event) into `out`
/// (cleared first).
///
/// # Errors
/// [`CodecError::Encode`] when the payload cannot be encoded.
pub fn encode_snapshot_json(s: &SnapshotFrame, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.clear();
    write_json_with_ack(s, out)
}

/// Writes the snapshot JSON, splicing `"<ack_key>":<ack>` as the first key of an object
/// snapshot when the game asked for it. The shared JSON bytes are never modified.
fn write_json_with_ack(s: &SnapshotFrame, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let json = s.body.json()?;
    match (s.body.ack_key(), json.split_first()) {
        (Some(key), Some((b'{', rest))) => {
            out.push(b'{');
            serde_json::to_writer(&mut *out, key).map_err(CodecError::Json)?;
            match s.ack {
                Some(ack) => write!(out, ":{ack}").map_err(io_err)?,
                None => out.extend_from_slice(b":null"),
            }
            if rest.first() != Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(rest);
        }
        _ => out.extend_from_slice(json),
    }
    Ok(())
}
