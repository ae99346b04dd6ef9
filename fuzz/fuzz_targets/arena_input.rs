//! The whole input path of one match: decode a client frame (JSON or MessagePack by the
//! first byte), hand the payload to a real arena shard, step it. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pylon_shard::games::arena::Arena;
use pylon_shard::{Auth, DynShard, MatchConfig, Shard};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let frame = bytes::Bytes::copy_from_slice(rest);
    let Ok(decoded) = pylon_shard::codec::decode_client_frame(&frame, mode & 1 == 1) else { return };
    let Ok(mut shard) = Shard::<Arena>::new(&MatchConfig::default()) else { return };
    let auth = Auth { user_id: "p".into(), is_admin: false };
    let Ok(joined) = shard.handle_join("p".into(), &auth) else { return };
    let _ = shard.handle_input(joined.key, decoded.client_seq, &decoded.input, 0);
    shard.step();
    let mut out = Vec::new();
    shard.drain_outgoing(&mut out);
});
