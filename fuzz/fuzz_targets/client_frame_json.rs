//! Fuzzes the JSON client frame decoder (`{"input":…,"client_seq":N,"base":T}`): any
//! bytes either decode or return an error; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(decoded) = pylon_shard::codec::decode_client_frame(&frame, false) {
        // The input is a slice of the frame, or the `null` of a frame without one.
        let bytes = &decoded.input.bytes[..];
        assert!(bytes == b"null" || frame.windows(bytes.len().max(1)).any(|w| w == bytes));
    }
});
