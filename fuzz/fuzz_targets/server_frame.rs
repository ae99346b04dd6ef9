//! Fuzzes the client half of the codec: any bytes, read as a server frame of the mode
//! picked by the first byte (both delta formats included), decode or are refused, and a
//! reader fed them never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pylon_shard::codec::{FrameType, SnapshotReader, WireMode, decode_server_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    let (mode, kind) = match pick % 5 {
        0 => (WireMode::Binary, FrameType::Binary),
        1 => (WireMode::Text, FrameType::Text),
        2 => (WireMode::MsgPack, FrameType::Binary),
        3 => (WireMode::MsgPackDelta, FrameType::Binary),
        _ => (WireMode::MsgPackDeltaV2, FrameType::Binary),
    };
    let mut reader = SnapshotReader::for_mode(mode);
    // Two frames from the same bytes: the second can be a delta against the first.
    for half in [&frame[..frame.len() / 2], frame] {
        if let Ok(decoded) = decode_server_frame(mode, kind, half, Some("ack")) {
            let _ = decoded.body.value();
            let _ = reader.read(&decoded);
        }
    }
});
