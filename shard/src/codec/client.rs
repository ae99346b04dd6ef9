//! Client → server frames. The server side ([`decode_client_frame`]) reads the input
//! envelope without decoding the input itself: the input bytes are kept as a zero-copy
//! slice and decoded into the game's input type on the tick thread, where a bad input is
//! rejected and counted. The client side ([`encode_client_frame`]) writes them.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::WireMode;
use super::error::CodecError;
use super::server::FrameType;

/// The encoding of an input payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// JSON text.
    Json,
    /// MessagePack.
    MsgPack,
}

/// An input as it came off the wire, not yet decoded into the game's input type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputPayload {
    /// How `bytes` is encoded.
    pub format: PayloadFormat,
    /// The encoded input value (a slice of the received frame).
    pub bytes: Bytes,
}

impl InputPayload {
    /// A JSON payload.
    #[must_use]
    pub fn json(bytes: impl Into<Bytes>) -> Self {
        Self { format: PayloadFormat::Json, bytes: bytes.into() }
    }

    /// The JSON `null` input (a client frame without `input`).
    #[must_use]
    pub fn null() -> Self {
        Self::json(Bytes::from_static(b"null"))
    }
}

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    /// The client's sequence number for this input, echoed back as the ack.
    pub client_seq: Option<u64>,
    /// Delta modes: the newest snapshot tick the client holds (the base for deltas).
    pub base_tick: Option<u64>,
    /// The input value.
    pub input: InputPayload,
}

#[derive(Deserialize)]
struct JsonEnvelope<'a> {
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(default)]
    client_seq: Option<u64>,
    #[serde(default)]
    base: Option<u64>,
}

/// Decodes one client frame: JSON `{"input":…, "client_seq":N, "base":T}` (every key
/// optional; unknown keys ignored), or MessagePack `[client_seq|nil, base|nil, input]`.
///
/// # Errors
/// [`CodecError::Json`] or [`CodecError::MsgPack`] when the frame is not of that shape.
pub fn decode_client_frame(frame: &Bytes, msgpack: bool) -> Result<ClientFrame, CodecError> {
    if msgpack { decode_msgpack(frame) } else { decode_json(frame) }
}

fn decode_json(frame: &Bytes) -> Result<ClientFrame, CodecError> {
    // serde would also accept a struct written as an array; the protocol says object.
    if frame.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(CodecError::Shape("expected a JSON object"));
    }
    let envelope: JsonEnvelope<'_> = serde_json::from_slice(frame)?;
    let input = match envelope.input {
        Some(raw) => InputPayload::json(frame.slice_ref(raw.get().as_bytes())),
        None => InputPayload::null(),
    };
    Ok(ClientFrame { client_seq: envelope.client_seq, base_tick: envelope.base, input })
}

fn decode_msgpack(frame: &Bytes) -> Result<ClientFrame, CodecError> {
    let bad = |what: &str| CodecError::MsgPack(what.to_owned());
    let mut rest: &[u8] = frame;
    let len = rmp::decode::read_array_len(&mut rest).map_err(|_| bad("expected an array"))?;
    if len != 3 {
        return Err(bad("expected [client_seq, base, input]"));
    }
    let client_seq =
        read_opt_u64(&mut rest).ok_or_else(|| bad("client_seq: expected uint or nil"))?;
    let base_tick = read_opt_u64(&mut rest).ok_or_else(|| bad("base: expected uint or nil"))?;
    if rest.is_empty() {
        return Err(bad("missing input"));
    }
    let start = frame.len() - rest.len();
    Ok(ClientFrame {
        client_seq,
        base_tick,
        input: InputPayload { format: PayloadFormat::MsgPack, bytes: frame.slice(start..) },
    })
}

/// Writes one client frame of `mode` into `out` (cleared first): compat modes a JSON text
/// frame `{"input":…,"client_seq":N,"base":T}` (absent keys omitted), MessagePack modes a
/// binary `[client_seq, base, input]` with the input's maps keyed by field name.
///
/// # Errors
/// [`CodecError::Encode`] when the input does not serialize.
pub fn encode_client_frame<T: Serialize + ?Sized>(
    mode: WireMode,
    client_seq: Option<u64>,
    base: Option<u64>,
    input: &T,
    out: &mut Vec<u8>,
) -> Result<FrameType, CodecError> {
    #[derive(Serialize)]
    struct JsonFrame<'a, T: ?Sized> {
        input: &'a T,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_seq: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        base: Option<u64>,
    }
    out.clear();
    if mode.is_msgpack() {
        rmp_serde::encode::write_named(out, &(client_seq, base, input))
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        Ok(FrameType::Binary)
    } else {
        serde_json::to_writer(&mut *out, &JsonFrame { input, client_seq, base })?;
        Ok(FrameType::Text)
    }
}

/// `Some(None)` for nil, `Some(Some(n))` for an unsigned integer, `None` for anything else.
fn read_opt_u64(rest: &mut &[u8]) -> Option<Option<u64>> {
    const NIL: u8 = 0xc0;
    if rest.first() == Some(&NIL) {
        *rest = &rest[1..];
        return Some(None);
    }
    rmp::decode::read_int::<u64, _>(rest).ok().map(Some)
}

/// Decodes an input payload into the game's input type.
///
/// # Errors
/// [`CodecError`] when the bytes do not deserialize into `T`.
pub fn decode_input<T: DeserializeOwned>(payload: &InputPayload) -> Result<T, CodecError> {
    match payload.format {
        PayloadFormat::Json => Ok(serde_json::from_slice(&payload.bytes)?),
        PayloadFormat::MsgPack => {
            rmp_serde::from_slice(&payload.bytes).map_err(|e| CodecError::MsgPack(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compat JSON frame yields its seq and a zero-copy slice of the input.
    #[test]
    fn json_envelope() {
        let frame = Bytes::from_static(br#"{"input":{"dx":1,"dy":-0.5},"client_seq":7}"#);
        let decoded = decode_client_frame(&frame, false).unwrap();
        assert_eq!(decoded.client_seq, Some(7));
        assert_eq!(&decoded.input.bytes[..], br#"{"dx":1,"dy":-0.5}"#);
    }

    /// A frame without `input` carries JSON null, as the protocol says.
    #[test]
    fn json_missing_input_is_null() {
        let frame = Bytes::from_static(br#"{"client_seq":1}"#);
        let decoded = decode_client_frame(&frame, false).unwrap();
        assert_eq!(&decoded.input.bytes[..], b"null");
    }

    /// Malformed frames are errors, not panics.
    #[test]
    fn malformed_frames_are_errors() {
        for bad in [&b"{"[..], b"[1,2]", b"\xff\xfe", b"", br#"{"client_seq":-1}"#] {
            assert!(decode_client_frame(&Bytes::copy_from_slice(bad), false).is_err());
            assert!(decode_client_frame(&Bytes::copy_from_slice(bad), true).is_err());
        }
    }

    /// What the client half encodes, the server half decodes, in every mode.
    #[test]
    fn encoded_frames_round_trip() {
        let input = serde_json::json!({"dx": 1.0, "dy": -0.5});
        for mode in [WireMode::Binary, WireMode::Text, WireMode::MsgPack, WireMode::MsgPackDelta] {
            let mut out = Vec::new();
            let kind = encode_client_frame(mode, Some(5), Some(9), &input, &mut out).unwrap();
            assert_eq!(kind == FrameType::Binary, mode.is_msgpack());
            let frame = decode_client_frame(&Bytes::from(out), mode.is_msgpack()).unwrap();
            assert_eq!((frame.client_seq, frame.base_tick), (Some(5), Some(9)));
            let back: serde_json::Value = decode_input(&frame.input).unwrap();
            assert_eq!(back, input);
        }
    }

    /// A MessagePack frame yields its seq, base and the raw input, which decodes.
    #[test]
    fn msgpack_envelope() {
        #[derive(serde::Serialize)]
        struct In {
            dx: f32,
        }
        let bytes = rmp_serde::to_vec_named(&(Some(9_u64), None::<u64>, In { dx: 0.5 })).unwrap();
        let decoded = decode_client_frame(&Bytes::from(bytes), true).unwrap();
        assert_eq!((decoded.client_seq, decoded.base_tick), (Some(9), None));
        let value: serde_json::Value = decode_input(&decoded.input).unwrap();
        assert_eq!(value["dx"], 0.5);
    }
}
