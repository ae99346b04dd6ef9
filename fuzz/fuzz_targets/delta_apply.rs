//! Fuzzes delta patches: an arbitrary JSON base and an arbitrary JSON patch either apply
//! or are refused whole; and diff(a, b) applied to a always gives b.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pylon_shard::codec::delta;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(2, '\u{1f}');
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else { return };
    let (Ok(a), Ok(b)) = (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) else { return };
    if let Ok(patch) = serde_json::from_value::<delta::Patch>(b.clone()) {
        let _ = delta::apply(&a, &patch);
    }
    match delta::diff(&a, &b) {
        Some(patch) => assert_eq!(delta::apply(&a, &patch).ok().as_ref(), Some(&b)),
        None => assert_eq!(a, b),
    }
});
