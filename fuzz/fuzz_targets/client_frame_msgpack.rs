//! Fuzzes the MessagePack client frame decoder (`[client_seq, base, input]`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    let _ = pylon_shard::codec::decode_client_frame(&frame, true);
});
