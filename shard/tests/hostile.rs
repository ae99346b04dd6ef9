//! Hostile bytes through every decoder: client frames (JSON and MessagePack), game inputs
//! and delta patches. Deterministic pseudo-random cases; the property is "an error or a
//! value, never a panic".

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use bytes::Bytes;
use pylon_shard::codec::delta::{Patch, apply};
use pylon_shard::codec::{InputPayload, PayloadFormat, decode_client_frame, decode_input};
use pylon_shard::games::arena::ArenaInput;
use pylon_shard::games::tictactoe::Move;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Fragments that make random bytes look like almost-valid frames more often.
const PIECES: [&[u8]; 14] = [
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"input\"",
    b"\"client_seq\"",
    b":",
    b",",
    b"null",
    b"-1",
    b"1e999",
    b"\"dx\"",
    b"\x93",
    b"\xc0",
];

fn hostile(rng: &mut Rng) -> Bytes {
    let len = (rng.next() % 48) as usize;
    let mut out = Vec::with_capacity(len * 2);
    for _ in 0..len {
        let r = rng.next();
        if r.is_multiple_of(3) {
            out.extend_from_slice(PIECES[(r >> 8) as usize % PIECES.len()]);
        } else {
            out.push((r >> 16) as u8);
        }
    }
    Bytes::from(out)
}

/// 100,000 hostile frames through the client-frame and input decoders never panic.
#[test]
fn decoders_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut accepted = 0;
    for _ in 0..100_000 {
        let frame = hostile(&mut rng);
        for msgpack in [false, true] {
            if let Ok(decoded) = decode_client_frame(&frame, msgpack) {
                accepted += 1;
                let _ = decode_input::<ArenaInput>(&decoded.input);
                let _ = decode_input::<Move>(&decoded.input);
            }
        }
        for format in [PayloadFormat::Json, PayloadFormat::MsgPack] {
            let payload = InputPayload { format, bytes: frame.clone() };
            let _ = decode_input::<ArenaInput>(&payload);
        }
    }
    assert!(accepted > 0, "the generator never produced a valid frame: it tests nothing");
}

/// Deeply nested input never overflows the stack: the envelope skips it as raw bytes and
/// the typed decode on the tick thread refuses it (serde_json's depth limit).
#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{{\"input\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    if let Ok(frame) = decode_client_frame(&Bytes::from(deep), false) {
        assert!(decode_input::<ArenaInput>(&frame.input).is_err());
        assert!(decode_input::<serde_json::Value>(&frame.input).is_err());
    }
}

/// Hostile patches (random JSON decoded as `Patch`) are applied or refused, never panic,
/// and a refused patch leaves the base unchanged.
#[test]
fn hostile_patches_never_panic() {
    let mut rng = Rng(99);
    let base = serde_json::json!({"a": [1, 2, {"b": null}], "c": "x"});
    for _ in 0..50_000 {
        let bytes = hostile(&mut rng);
        if let Ok(patch) = serde_json::from_slice::<Patch>(&bytes) {
            let _ = apply(&base, &patch);
        }
    }
    for patch in [
        r#"{"o":{"a":{"a":[[5,{"r":1}]],"n":6}}}"#,
        r#"{"o":{"a":{"a":[[0,{"r":1}],[0,{"r":2}]],"n":3}}}"#,
        r#"{"o":{"a":{"a":[],"n":18446744073709551615}}}"#,
        r#"{"o":{"c":{"o":{}}}}"#,
    ] {
        let patch: Patch = serde_json::from_str(patch).unwrap();
        let mut target = base.clone();
        assert!(
            pylon_shard::codec::delta::apply_in_place(&mut target, &patch).is_err(),
            "{patch:?}"
        );
        assert_eq!(target, base, "a refused patch changes nothing");
    }
}

/// Hostile bytes read as version 2 patches (MessagePack and JSON) are applied or refused,
/// never panic, and a refused patch leaves the base unchanged; hand-made misfits are refused.
#[test]
fn hostile_v2_patches_never_panic() {
    use pylon_shard::codec::delta_v2;
    let mut rng = Rng(77);
    let base = serde_json::json!({"a": [1, 2, {"b": null}], "c": "x"});
    let mut read = 0;
    for _ in 0..50_000 {
        let bytes = hostile(&mut rng);
        let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        let json = json.and_then(|v| delta_v2::Patch::try_from(v).ok());
        for patch in [delta_v2::Patch::read_msgpack(&bytes).ok(), json].into_iter().flatten() {
            read += 1;
            let mut target = base.clone();
            if delta_v2::apply_in_place(&mut target, &patch).is_err() {
                assert_eq!(target, base, "a refused patch changes nothing");
            }
        }
    }
    assert!(read > 0, "the generator never produced a patch: it tests nothing");
    for patch in [
        r#"{"a": [1, 6, 5, 1]}"#,
        r#"{"a": [1, 3, 0, 1, 0, 2]}"#,
        r#"{"a": [1, 18446744073709551615]}"#,
        r#"{"c": {}}"#,
        r#"{"gone": [2]}"#,
        r#"{"a": [1, 3, 2, {"b": 1, "x": [2]}]}"#,
    ] {
        let value: serde_json::Value = serde_json::from_str(patch).unwrap();
        let patch = delta_v2::Patch::try_from(value).unwrap();
        let mut target = base.clone();
        assert!(delta_v2::apply_in_place(&mut target, &patch).is_err(), "{patch:?}");
        assert_eq!(target, base, "a refused patch changes nothing");
    }
}

/// A create request cannot make the arena allocate without bound: too many pickups is a
/// parameter error, not a huge allocation.
#[test]
fn arena_refuses_unbounded_pickups() {
    use pylon_shard::games::arena::{Arena, MAX_PICKUPS};
    use pylon_shard::{MatchConfig, Shard, ShardError};
    let config = |n: u64| MatchConfig {
        params: serde_json::json!({ "pickups": n }),
        ..MatchConfig::default()
    };
    assert!(Shard::<Arena>::new(&config(u64::from(MAX_PICKUPS))).is_ok());
    match Shard::<Arena>::new(&config(4_000_000_000)) {
        Err(ShardError::BadParams { source, .. }) => {
            assert!(source.to_string().contains("pickups must be at most"), "{source}");
        }
        other => panic!("expected BadParams, got {:?}", other.map(|_| ())),
    }
}
