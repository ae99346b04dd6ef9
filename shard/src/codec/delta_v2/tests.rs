//! Tests of the version 2 patch format: the contract on hand-written and random pairs, the
//! documented shapes and bytes, exact sizes, refusals, and the size against version 1.

use serde_json::json;

use super::*;
use crate::codec::delta;
use crate::codec::delta::tests::{XorShift, game_snapshot, mutate, random_value};

fn bytes_of(patch: &Patch) -> Vec<u8> {
    let mut out = Vec::new();
    patch.write_msgpack(&mut out).unwrap();
    out
}

/// Asserts the contract for one pair: `apply` and `apply_in_place` rebuild `current`, the
/// patch survives MessagePack and its JSON value, and `diff`'s size is the written size.
fn assert_round_trip(base: &Value, current: &Value) {
    let Some((patch, size)) = diff_sized(base, current) else {
        assert_eq!(base, current, "diff said equal");
        return;
    };
    assert_ne!(base, current, "diff of equal values: {patch:?}");
    assert_eq!(apply(base, &patch).as_ref(), Ok(current), "{base} -> {current}: {patch:?}");
    let mut target = base.clone();
    assert_eq!(apply_in_place(&mut target, &patch), Ok(()));
    assert_eq!(&target, current);
    let bytes = bytes_of(&patch);
    assert_eq!(Patch::read_msgpack(&bytes).unwrap(), patch);
    assert_eq!(Patch::try_from(patch.to_value()), Ok(patch.clone()));
    let top_null = usize::from(matches!(patch, Patch::Replace(Value::Null))) * 2;
    assert_eq!(bytes.len(), size + top_null, "the measured size is the written size: {patch:?}");
}

/// Nested objects, removed keys, growing and shrinking arrays, type changes and nulls all
/// round-trip, both ways.
#[test]
fn hand_written_round_trips() {
    let cases = [
        (
            json!({"a": 1, "b": {"c": {"d": [1, 2, 3]}}}),
            json!({"a": 1, "b": {"c": {"d": [1, 5, 3]}}}),
        ),
        (json!({"a": 1, "b": 2, "c": 3}), json!({"a": 1})),
        (json!({"a": 1}), json!({"a": 1, "z": {"new": [true, null]}})),
        (json!({"a": {"x": 1}, "b": 2}), json!({"b": 2, "c": {"x": 1}})),
        (json!([1, 2, 3]), json!([1, 2, 3, 4, 5])),
        (json!([{"x": 1}, {"x": 2}, {"x": 3}]), json!([{"x": 1}])),
        (json!([{"x": 1, "tag": "long enough"}, 2]), json!([{"x": 9, "tag": "long enough"}])),
        (json!([]), json!([[], {}])),
        (json!([1, 2]), json!([])),
        (json!({"a": [1]}), json!({"a": "now a string"})),
        (json!({"a": {"b": 1}}), json!({"a": [1]})),
        (json!({"a": [0, 2]}), json!({"a": [0, [2]]})),
        (json!(null), json!({"a": 1})),
        (json!({"a": 1}), json!(null)),
        (json!({"a": null}), json!({"a": 0})),
        (json!({"a": 0}), json!({"a": null})),
        (json!([null, 1]), json!([1, null])),
        (json!(1), json!(1.0)),
        (json!(-0.5), json!(0.25)),
        (json!("x"), json!("y")),
        (json!(true), json!(false)),
        (json!({}), json!({})),
        (
            json!({"k": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}),
            json!({"k": [1, 2, 3, 4, 5, 6, 7, 8, 9, 11]}),
        ),
    ];
    for (base, current) in &cases {
        assert_round_trip(base, current);
        assert_round_trip(current, base);
    }
}

/// `diff` of equal values is `None`, and nested unchanged parts are left out.
#[test]
fn unchanged_parts_are_omitted() {
    let v = json!({"a": [1, {"b": null}], "c": 2.5, "e": {}});
    assert_eq!(diff(&v, &v.clone()), None);
    let changed = json!({"a": [1, {"b": null}], "c": 3.5, "e": {}});
    let expected =
        Patch::Object([("c".to_owned(), KeyPatch::Patch(Patch::Replace(json!(3.5))))].into());
    assert_eq!(diff(&v, &changed), Some(expected));
}

/// `diff` writes the documented shapes: bare scalars, maps of changed keys, `[2]` for a
/// removed key, `[1, n, i, p, …]` for arrays and `[0, v]` for replaced containers.
#[test]
fn diff_shapes() {
    let base = json!({"keep": 1, "old": 2, "list": [{"id": "a-long-id", "v": 1}, {"id": "b-long-id", "v": 2}]});
    let current = json!({"keep": 1, "list": [{"id": "a-long-id", "v": 1}, {"id": "b-long-id", "v": 3}, {"id": "c"}]});
    assert_eq!(
        diff(&base, &current).unwrap().to_value(),
        json!({"list": [1, 3, 1, {"v": 3}, 2, [0, {"id": "c"}]], "old": [2]})
    );
    assert_eq!(diff(&json!([1, 2]), &json!({"a": 1})).unwrap().to_value(), json!([0, {"a": 1}]));
    assert_eq!(diff(&json!({"a": 1}), &json!(null)).unwrap().to_value(), json!(null));
    assert_eq!(diff(&json!({"a": 1}), &json!("s")).unwrap().to_value(), json!("s"));
    assert_eq!(
        diff(&json!({"a": [1, 2, 3, 4]}), &json!({"a": [1, 2, 3]})).unwrap().to_value(),
        json!({"a": [1, 3]}),
        "a truncation is an array patch without pairs"
    );
}

/// The bytes of each shape, as a client reads them.
#[test]
fn msgpack_bytes() {
    let cases: [(Patch, &[u8]); 6] = [
        (Patch::Replace(json!(5)), &[0x05]),
        (Patch::Replace(json!("a")), &[0xa1, b'a']),
        // The whole snapshot replaced by null: `[0, nil]`, since a nil body means unchanged.
        (Patch::Replace(Value::Null), &[0x92, 0x00, 0xc0]),
        (Patch::Replace(json!([])), &[0x92, 0x00, 0x90]),
        (
            Patch::Object(
                [
                    ("a".to_owned(), KeyPatch::Patch(Patch::Replace(Value::Null))),
                    ("b".to_owned(), KeyPatch::Remove),
                ]
                .into(),
            ),
            &[0x82, 0xa1, b'a', 0xc0, 0xa1, b'b', 0x91, 0x02],
        ),
        (
            Patch::Array { len: 3, entries: vec![(2, Patch::Replace(json!(1.5)))] },
            &[0x94, 0x01, 0x03, 0x02, 0xca, 0x3f, 0xc0, 0x00, 0x00],
        ),
    ];
    for (patch, bytes) in cases {
        assert_eq!(bytes_of(&patch), bytes, "{patch:?}");
        assert_eq!(Patch::read_msgpack(bytes).unwrap(), patch);
    }
    let nested_null = Patch::Array { len: 1, entries: vec![(0, Patch::Replace(Value::Null))] };
    assert_eq!(bytes_of(&nested_null), [0x94, 0x01, 0x01, 0x00, 0xc0], "bare nil below the top");
}

/// Floats exact in `f32` go out as float32 and come back as the same `f64`; others keep
/// their 64 bits.
#[test]
fn f32_exact_floats_are_written_as_float32() {
    let base = json!({"x": 1.0, "y": 0.0, "t": 5});
    let current = json!({"x": f64::from(128.3_f32), "y": 0.1, "t": -7});
    assert_round_trip(&base, &current);
    let bytes = bytes_of(&diff(&base, &current).unwrap());
    // A map of 3: "t" -7 (2 + 1), "x" float32 (2 + 5), "y" float64 (2 + 9).
    assert_eq!(bytes.len(), 1 + 3 + 7 + 11);
}

/// Objects and arrays fall back to a replacement when that is not larger than the patch.
#[test]
fn containers_replace_when_cheaper() {
    assert_eq!(diff(&json!([1, 2, 3]), &json!([4, 5, 6])), Some(Patch::Replace(json!([4, 5, 6]))));
    assert_eq!(
        diff(&json!({"a": 1, "b": 2, "c": 3}), &json!({"d": 4})),
        Some(Patch::Replace(json!({"d": 4})))
    );
    let base: Vec<Value> = (0..40).map(|i| json!({"id": format!("item-{i}"), "hp": 100})).collect();
    let mut current = base.clone();
    current[7]["hp"] = json!(90);
    let patch = diff(&Value::Array(base), &Value::Array(current)).unwrap();
    assert_eq!(patch.to_value(), json!([1, 40, 7, {"hp": 90}]));
}

/// Patches that do not fit their base give errors, never panics, and leave an
/// `apply_in_place` target untouched.
#[test]
fn mismatched_patches_are_errors() {
    let set = |k: &str, p: Patch| Patch::Object([(k.to_owned(), KeyPatch::Patch(p))].into());
    let object = set("k", Patch::Replace(json!(1)));
    let array = |entries: Vec<(usize, Patch)>, len| Patch::Array { len, entries };
    let one = || Patch::Replace(json!(1));
    let cases = [
        (json!([1]), object.clone(), DeltaError::NotAnObject),
        (json!(3), array(vec![], 0), DeltaError::NotAnArray),
        (json!({}), set("k", object.clone()), DeltaError::NotAnObject),
        (
            json!({}),
            Patch::Object([("k".to_owned(), KeyPatch::Remove)].into()),
            DeltaError::MissingKey,
        ),
        (json!([0]), array(vec![(5, one())], 6), DeltaError::IndexOutOfRange { index: 5, len: 1 }),
        (
            json!([0, 1, 2]),
            array(vec![(2, one())], 2),
            DeltaError::IndexOutOfRange { index: 2, len: 2 },
        ),
        (
            json!([0, 1]),
            array(vec![(1, one()), (1, one())], 2),
            DeltaError::IndexNotIncreasing { index: 1 },
        ),
        (json!([0]), array(vec![], 3), DeltaError::LengthMismatch { expected: 3, actual: 1 }),
        (json!([0]), array(vec![(0, array(vec![], 0))], 1), DeltaError::NotAnArray),
        (json!([0]), array(vec![(1, object.clone())], 2), DeltaError::NotAnObject),
        (
            json!([]),
            array(vec![], usize::MAX),
            DeltaError::LengthMismatch { expected: usize::MAX, actual: 0 },
        ),
        (
            json!([]),
            array(vec![(usize::MAX, one())], usize::MAX),
            DeltaError::IndexOutOfRange { index: usize::MAX, len: 0 },
        ),
    ];
    for (base, patch, error) in cases {
        assert_eq!(apply(&base, &patch), Err(error.clone()), "{base} with {patch:?}");
        let mut target = base.clone();
        assert_eq!(apply_in_place(&mut target, &patch), Err(error));
        assert_eq!(target, base, "unchanged after an error");
    }
    // A removal checked before a later key fails still changes nothing.
    let base = json!({"a": 1, "b": [1]});
    let patch = Patch::Object(
        [("a".to_owned(), KeyPatch::Remove), ("b".to_owned(), KeyPatch::Patch(object))].into(),
    );
    let mut target = base.clone();
    assert_eq!(apply_in_place(&mut target, &patch), Err(DeltaError::NotAnObject));
    assert_eq!(target, base);
}

/// Values that are not patches are refused when read: unknown tags, `[2]` outside an
/// object, odd pairs, bad indexes, non-string keys, binary.
#[test]
fn malformed_patches_are_refused() {
    for value in [
        json!([]),
        json!([3]),
        json!([0]),
        json!([0, 1, 2]),
        json!([2]),
        json!([1, [2]]),
        json!([1]),
        json!([1, 2, 0]),
        json!([1, -1]),
        json!([1, 1.0]),
        json!([1, 2, "0", 5]),
        json!(["0", 1]),
        json!({"a": [1, 1, 0, [2]]}),
        json!({"a": {"b": [7]}}),
    ] {
        assert!(matches!(Patch::try_from(value.clone()), Err(DeltaError::Malformed(_))), "{value}");
    }
    // {1: 2}: an integer key; then a bin value; then a truncated map.
    for bytes in [&[0x81, 0x01, 0x02][..], &[0xc4, 0x01, 0x00], &[0x81, 0xa1, b'a']] {
        assert!(Patch::read_msgpack(bytes).is_err(), "{bytes:?}");
    }
    assert_eq!(
        DeltaError::Malformed("x").to_string(),
        "malformed patch: x",
        "the message names the shape"
    );
}

/// 2,000 random pairs of trees (depth up to 4) satisfy the contract with exact sizes, and
/// no version 2 patch is larger than the version 1 patch of the same pair.
#[test]
fn random_round_trips() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut patched = 0;
    for i in 0..2_000 {
        let base = random_value(&mut rng, 4);
        let current =
            if i % 4 == 0 { random_value(&mut rng, 4) } else { mutate(&mut rng, &base, 4) };
        assert_eq!(diff(&base, &base), None);
        assert_eq!(diff(&current, &current), None);
        assert_round_trip(&base, &current);
        if let (Some(v2), Some(v1)) = (diff(&base, &current), delta::diff(&base, &current)) {
            patched += 1;
            let mut v1_bytes = Vec::new();
            v1.write_msgpack(&mut v1_bytes).unwrap();
            let v2_len = bytes_of(&v2).len();
            assert!(v2_len <= v1_bytes.len(), "{base} -> {current}: v2 {v2:?} v1 {v1:?}");
        }
    }
    assert!(patched > 1_000, "most pairs differ: {patched}");
}

/// One moved player in an 8-player, 20-pickup snapshot: version 2 needs well under the
/// bytes of version 1.
#[test]
fn moved_player_patch_is_smaller_than_version_1() {
    let base = game_snapshot();
    let mut current = base.clone();
    current["players"][3]["x"] = json!(312.25);
    current["players"][3]["y"] = json!(7.75);
    let patch = diff(&base, &current).unwrap();
    assert_eq!(patch.to_value(), json!({"players": [1, 8, 3, {"x": 312.25, "y": 7.75}]}),);
    let mut v1 = Vec::new();
    delta::diff(&base, &current).unwrap().write_msgpack(&mut v1).unwrap();
    let v2 = bytes_of(&patch);
    assert_eq!((v2.len(), v1.len()), (28, 45));
}

/// The example of docs/PROTOCOL.md: 29 bytes in format 2, 44 in format 1.
#[test]
fn protocol_doc_example() {
    let base = json!({"players": [{"id": "p1", "x": 1.0}, {"id": "p2", "x": 5.0}], "round": 3});
    let current = json!({"players": [{"id": "p1", "x": 1.0}, {"id": "p2", "x": 5.5}]});
    let patch = diff(&base, &current).unwrap();
    assert_eq!(patch.to_value(), json!({"players": [1, 2, 1, {"x": 5.5}], "round": [2]}));
    let v1 = delta::diff(&base, &current).unwrap();
    assert_eq!(
        serde_json::to_value(&v1).unwrap(),
        json!({"o": {"players": {"a": [[1, {"o": {"x": {"r": 5.5}}}]], "n": 2}}, "d": ["round"]})
    );
    let mut v1_bytes = Vec::new();
    v1.write_msgpack(&mut v1_bytes).unwrap();
    assert_eq!((bytes_of(&patch).len(), v1_bytes.len()), (29, 44));
}
