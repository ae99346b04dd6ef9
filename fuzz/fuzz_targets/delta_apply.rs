//! Fuzzes delta patches of both formats: an arbitrary JSON base and an arbitrary JSON
//! patch either apply or are refused whole; diff(a, b) applied to a always gives b; and a
//! version 2 patch survives its MessagePack encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pylon_shard::codec::{delta, delta_v2};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(2, '\u{1f}');
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else { return };
    let (Ok(a), Ok(b)) = (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) else { return };
    if let Ok(patch) = serde_json::from_value::<delta::Patch>(b.clone()) {
        let _ = delta::apply(&a, &patch);
    }
    if let Ok(patch) = delta_v2::Patch::try_from(b.clone()) {
        let mut target = a.clone();
        if delta_v2::apply_in_place(&mut target, &patch).is_err() {
            assert_eq!(target, a, "a refused patch changes nothing");
        }
    }
    match delta::diff(&a, &b) {
        Some(patch) => assert_eq!(delta::apply(&a, &patch).ok().as_ref(), Some(&b)),
        None => assert_eq!(a, b),
    }
    match delta_v2::diff(&a, &b) {
        Some(patch) => {
            assert_eq!(delta_v2::apply(&a, &patch).ok().as_ref(), Some(&b));
            let mut bytes = Vec::new();
            if patch.write_msgpack(&mut bytes).is_ok() {
                assert_eq!(delta_v2::Patch::read_msgpack(&bytes).ok(), Some(patch));
            }
        }
        None => assert_eq!(a, b),
    }
});
