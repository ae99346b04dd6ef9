//! Tests of the delta format: round trips, exact shapes, errors, and random trees.

use serde_json::{Value, json};

use super::*;

fn round_trip(base: &Value, current: &Value) {
    match diff(base, current) {
        None => assert_eq!(base, current),
        Some(patch) => {
            assert_eq!(&apply(base, &patch).unwrap(), current, "{base} -> {current} via {patch:?}")
        }
    }
}

/// Hand-written pairs: nested objects, removed keys, growing and shrinking arrays, type
/// changes and nulls all round-trip.
#[test]
fn hand_written_round_trips() {
    let cases = [
        (json!({"a": 1, "b": {"c": [1, 2, 3]}}), json!({"a": 1, "b": {"c": [1, 5, 3]}})),
        (json!({"a": 1, "b": 2}), json!({"a": 1})),
        (json!({"a": 1}), json!({"a": 1, "z": {"new": true}})),
        (json!([1, 2, 3]), json!([1, 2, 3, 4, 5])),
        (json!([{"x": 1}, {"x": 2}, {"x": 3}]), json!([{"x": 1}])),
        (json!({"a": [1]}), json!({"a": "now a string"})),
        (json!(null), json!({"a": 1})),
        (json!({"a": null}), json!({"a": 0})),
        (json!([]), json!([])),
    ];
    for (base, current) in &cases {
        round_trip(base, current);
    }
    assert_eq!(diff(&cases[0].0, &cases[0].0), None);
}

/// Each patch shape serializes to exactly the documented JSON.
#[test]
fn wire_shapes() {
    let replace = diff(&json!(1), &json!("x")).unwrap();
    assert_eq!(serde_json::to_string(&replace).unwrap(), r#"{"r":"x"}"#);
    let object = diff(&json!({"a": 1, "b": 2}), &json!({"a": 3})).unwrap();
    assert_eq!(serde_json::to_string(&object).unwrap(), r#"{"o":{"a":{"r":3}},"d":["b"]}"#);
    let no_removal = diff(&json!({"a": 1}), &json!({"a": 2})).unwrap();
    assert_eq!(serde_json::to_string(&no_removal).unwrap(), r#"{"o":{"a":{"r":2}}}"#);
    let array =
        diff(&json!([{"x": 1}, {"x": 2}, {"x": 3}]), &json!([{"x": 1}, {"x": 9}, {"x": 3}]))
            .unwrap();
    assert_eq!(serde_json::to_string(&array).unwrap(), r#"{"a":[[1,{"o":{"x":{"r":9}}}]],"n":3}"#);
    for patch in [replace, object, array] {
        let back: Patch = serde_json::from_str(&serde_json::to_string(&patch).unwrap()).unwrap();
        assert_eq!(back, patch);
    }
}

/// A patch survives a MessagePack round trip (the delta frame's encoding).
#[test]
fn msgpack_round_trip() {
    let patch =
        diff(&json!({"p": [1, 2, {"q": 1}]}), &json!({"p": [1, 3, {"q": 2}], "n": null})).unwrap();
    let bytes = rmp_serde::to_vec_named(&patch).unwrap();
    let back: Patch = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, patch);
}

/// Mismatched patches are errors, never panics.
#[test]
fn mismatched_patches_are_errors() {
    let object = diff(&json!({"a": 1}), &json!({"a": 2})).unwrap();
    assert_eq!(apply(&json!([1]), &object), Err(DeltaError::NotAnObject));
    let array = Patch::Array { a: vec![(5, Patch::Replace { r: json!(1) })], n: 6 };
    assert_eq!(apply(&json!(3), &array), Err(DeltaError::NotAnArray));
    assert_eq!(apply(&json!([0]), &array), Err(DeltaError::IndexOutOfRange(5)));
    let nested = Patch::Object { o: [("k".to_owned(), object)].into(), d: vec![] };
    assert_eq!(apply(&json!({}), &nested), Err(DeltaError::MissingKey("k".into())));
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_tree(rng: &mut XorShift, depth: u32) -> Value {
    let kind = if depth == 0 { rng.below(4) } else { rng.below(6) };
    match kind {
        0 => Value::Null,
        1 => json!(rng.below(3) == 0),
        2 => json!(rng.below(5)),
        3 => json!(["a", "b", "c"][rng.below(3) as usize]),
        4 => Value::Array((0..rng.below(4)).map(|_| random_tree(rng, depth - 1)).collect()),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|i| (format!("k{}", (i + rng.below(3)) % 4), random_tree(rng, depth - 1)))
                .collect(),
        ),
    }
}

/// 2,000 random pairs of trees round-trip, and a tree diffed with itself gives nothing.
#[test]
fn random_trees_round_trip() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2_000 {
        let base = random_tree(&mut rng, 4);
        let current = random_tree(&mut rng, 4);
        round_trip(&base, &current);
        assert_eq!(diff(&base, &base), None);
    }
}

/// One moved player in an 8-player snapshot costs under a fifth of the full snapshot.
#[test]
fn small_change_small_patch() {
    let snapshot = |x3: f64| {
        let players: Vec<Value> = (0..8)
            .map(|i| json!({"id": format!("p{i}"), "x": if i == 3 { x3 } else { 10.0 * f64::from(i) }, "y": 2.0, "score": 0}))
            .collect();
        let pickups: Vec<Value> = (0..20).map(|i| json!([f64::from(i) * 3.5, 7.25])).collect();
        json!({"players": players, "pickups": pickups})
    };
    let (base, current) = (snapshot(30.0), snapshot(31.5));
    let patch = diff(&base, &current).unwrap();
    let full = rmp_serde::to_vec_named(&current).unwrap().len();
    let delta = rmp_serde::to_vec_named(&patch).unwrap().len();
    assert!(delta * 5 < full, "delta {delta} vs full {full}");
}
