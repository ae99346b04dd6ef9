//! Type-erased, lazily encoded payloads: a game value plus its encodings, each computed at
//! most once (`OnceLock`), by whichever writer needs that format first.
//!
//! This is how "encode once per distinct snapshot" holds: the tick thread only builds the
//! value; every subscriber sharing it shares one `Arc` and therefore one encoding.
//!
//! A payload nobody else holds any more can be refilled in place by its owner (the shard
//! recycles its snapshot payloads this way, so a warm tick allocates nothing); every fill
//! gets a fresh serial number, which is what delta caches compare, so a refilled payload
//! is never mistaken for the value it held before.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use super::DeltaVersion;
use super::error::CodecError;

/// A shared snapshot or outcome value.
pub type Payload = Arc<dyn PayloadValue>;

/// The encodings a payload can produce. Implemented by [`Cached`]; the trait exists so
/// payloads of every game type can travel through the same mailboxes.
pub trait PayloadValue: Send + Sync {
    /// The value as compact JSON text.
    ///
    /// # Errors
    /// [`CodecError::Encode`] when the value cannot be represented in JSON.
    fn json(&self) -> Result<&[u8], CodecError>;
    /// The value as MessagePack (maps keyed by field name).
    ///
    /// # Errors
    /// [`CodecError::Encode`] when serialization fails.
    fn msgpack(&self) -> Result<&[u8], CodecError>;
    /// The value as a JSON tree (used to compute deltas).
    ///
    /// # Errors
    /// [`CodecError::Encode`] when serialization fails.
    fn tree(&self) -> Result<&serde_json::Value, CodecError>;
    /// The key under which compat frames splice the subscriber's ack, if any.
    fn ack_key(&self) -> Option<&'static str>;
    /// The delta from a base to this payload, kept for the next subscriber with that base.
    fn delta_cache(&self) -> &DeltaCache;
    /// This value's identity: unique in the process, renewed whenever the payload is
    /// refilled with another value.
    fn serial(&self) -> u64;
}

/// Serials are handed out in blocks, so that threads building payloads at once do not
/// contend on one counter.
const SERIAL_BLOCK: u64 = 1 << 20;
static NEXT_SERIAL_BLOCK: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The next serial of this thread's block, and the block's end.
    static SERIALS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn next_serial() -> u64 {
    SERIALS.with(|cell| {
        let (mut next, mut end) = cell.get();
        if next == end {
            next = NEXT_SERIAL_BLOCK.fetch_add(SERIAL_BLOCK, Ordering::Relaxed);
            end = next + SERIAL_BLOCK;
        }
        cell.set((next + 1, end));
        next
    })
}

/// The encoded delta patches from recent bases to the payload that owns the cache, one per
/// base and patch format ([`DeltaVersion`]).
///
/// Subscribers of one match acknowledge one of a few recent snapshots as their base (the
/// previous one, or the one before when their acknowledgement has not arrived yet), so
/// the first one to encode against a base computes the patch and the others reuse its
/// bytes: one diff per match, base and format instead of one per subscriber. Only I/O threads
/// lock it (the tick thread builds payloads, and clears the cache only of a payload it
/// holds alone). Bases are named by their serial, never held, so a chain of snapshots
/// never keeps older ones alive.
#[derive(Default)]
pub struct DeltaCache(Mutex<Vec<(u64, DeltaVersion, DeltaBytes)>>);

/// An encoded patch; `None`: the payload equals its base.
pub type DeltaBytes = Option<Arc<[u8]>>;

impl DeltaCache {
    /// Bases remembered per payload.
    const BASES: usize = 4;

    /// The cached patch in `version`'s format against `base`, or `make`'s result,
    /// remembered for the next caller (the oldest of [`Self::BASES`] entries makes room).
    /// A poisoned lock only disables the cache.
    ///
    /// # Errors
    /// Whatever `make` returns.
    pub fn get_or_make(
        &self,
        base: &Payload,
        version: DeltaVersion,
        make: impl FnOnce() -> Result<Option<Vec<u8>>, CodecError>,
    ) -> Result<DeltaBytes, CodecError> {
        let Ok(mut entries) = self.0.lock() else {
            return make().map(|made| made.map(Arc::from));
        };
        let serial = base.serial();
        if let Some((_, _, bytes)) =
            entries.iter().find(|(cached, v, _)| *cached == serial && *v == version)
        {
            return Ok(bytes.clone());
        }
        let bytes: DeltaBytes = make()?.map(Arc::from);
        if entries.len() >= Self::BASES {
            entries.remove(0);
        }
        entries.push((serial, version, bytes.clone()));
        Ok(bytes)
    }

    /// Forgets every patch (the payload now holds another value).
    fn clear(&mut self) {
        match self.0.get_mut() {
            Ok(entries) => entries.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }
}

impl fmt::Debug for dyn PayloadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Payload")
    }
}

/// A value with its encodings cached.
pub struct Cached<T> {
    value: T,
    serial: u64,
    ack_key: Option<&'static str>,
    json: OnceLock<Result<Box<[u8]>, String>>,
    msgpack: OnceLock<Result<Box<[u8]>, String>>,
    tree: OnceLock<Result<serde_json::Value, String>>,
    delta: DeltaCache,
}

impl<T: Serialize + Send + Sync + 'static> Cached<T> {
    /// Wraps `value`; nothing is encoded yet.
    #[must_use]
    pub fn new(value: T, ack_key: Option<&'static str>) -> Self {
        Self {
            value,
            serial: next_serial(),
            ack_key,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
            tree: OnceLock::new(),
            delta: DeltaCache::default(),
        }
    }

    /// Wraps `value` into a shareable [`Payload`].
    #[must_use]
    pub fn payload(value: T, ack_key: Option<&'static str>) -> Payload {
        Arc::new(Self::new(value, ack_key))
    }

    /// The wrapped value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// Forgets the encodings and the serial of the value held so far and returns it to be
    /// overwritten in place (its allocations reused): `&mut self` proves nobody else can
    /// see it.
    pub fn refill(&mut self) -> &mut T {
        self.json.take();
        self.msgpack.take();
        self.tree.take();
        self.delta.clear();
        self.serial = next_serial();
        &mut self.value
    }
}

fn cached<V: ?Sized>(
    cell: &OnceLock<Result<Box<V>, String>>,
    make: impl FnOnce() -> Result<Box<V>, String>,
) -> Result<&V, CodecError> {
    match cell.get_or_init(make) {
        Ok(bytes) => Ok(bytes),
        Err(message) => Err(CodecError::Encode(message.clone())),
    }
}

impl<T: Serialize + Send + Sync + 'static> PayloadValue for Cached<T> {
    fn json(&self) -> Result<&[u8], CodecError> {
        cached(&self.json, || {
            serde_json::to_vec(&self.value).map(Vec::into_boxed_slice).map_err(|e| e.to_string())
        })
    }

    fn msgpack(&self) -> Result<&[u8], CodecError> {
        cached(&self.msgpack, || {
            rmp_serde::to_vec_named(&self.value)
                .map(Vec::into_boxed_slice)
                .map_err(|e| e.to_string())
        })
    }

    fn tree(&self) -> Result<&serde_json::Value, CodecError> {
        match self.tree.get_or_init(|| serde_json::to_value(&self.value).map_err(|e| e.to_string()))
        {
            Ok(tree) => Ok(tree),
            Err(message) => Err(CodecError::Encode(message.clone())),
        }
    }

    fn ack_key(&self) -> Option<&'static str> {
        self.ack_key
    }

    fn delta_cache(&self) -> &DeltaCache {
        &self.delta
    }

    fn serial(&self) -> u64 {
        self.serial
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const V1: DeltaVersion = DeltaVersion::V1;

    #[test]
    fn the_delta_against_one_base_is_made_once_and_shared() {
        let base = Cached::payload(1_u32, None);
        let other_base = Cached::payload(2_u32, None);
        let current = Cached::payload(3_u32, None);
        let made = Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            Ok(Some(vec![made.get()]))
        };
        let first = current.delta_cache().get_or_make(&base, V1, make).unwrap();
        let second = current.delta_cache().get_or_make(&base, V1, make).unwrap();
        assert_eq!(
            (made.get(), first.as_deref(), second.as_deref()),
            (1, Some(&[1][..]), Some(&[1][..]))
        );
        let third = current.delta_cache().get_or_make(&other_base, V1, make).unwrap();
        assert_eq!((made.get(), third.as_deref()), (2, Some(&[2][..])), "another base: made anew");
        let again = current.delta_cache().get_or_make(&base, V1, make).unwrap();
        assert_eq!((made.get(), again.as_deref()), (2, Some(&[1][..])), "both bases are kept");
    }

    /// Subscribers of the two patch formats with the same base each get their own bytes.
    #[test]
    fn each_patch_format_has_its_own_entry() {
        let base = Cached::payload(1_u32, None);
        let current = Cached::payload(2_u32, None);
        let cache = current.delta_cache();
        let v1 = cache.get_or_make(&base, V1, || Ok(Some(vec![1]))).unwrap();
        let v2 = cache.get_or_make(&base, DeltaVersion::V2, || Ok(Some(vec![2]))).unwrap();
        let again = cache.get_or_make(&base, V1, || Ok(Some(vec![9]))).unwrap();
        assert_eq!(
            (v1.as_deref(), v2.as_deref(), again.as_deref()),
            (Some(&[1][..]), Some(&[2][..]), Some(&[1][..]))
        );
    }

    #[test]
    fn a_refilled_payload_is_a_new_base() {
        let mut base = Arc::new(Cached::new(1_u32, None));
        let current = Cached::payload(3_u32, None);
        let as_payload: Payload = base.clone();
        current.delta_cache().get_or_make(&as_payload, V1, || Ok(Some(vec![1]))).unwrap();
        assert_eq!(as_payload.json().unwrap(), b"1");
        drop(as_payload);
        *Arc::get_mut(&mut base).unwrap().refill() = 2;
        let as_payload: Payload = base.clone();
        assert_eq!(as_payload.json().unwrap(), b"2", "the encodings were forgotten");
        let again =
            current.delta_cache().get_or_make(&as_payload, V1, || Ok(Some(vec![2]))).unwrap();
        assert_eq!(again.as_deref(), Some(&[2][..]), "not the patch of the value it held before");
    }

    #[test]
    fn the_cache_does_not_keep_its_base_alive() {
        let base = Cached::payload(1_u32, None);
        let current = Cached::payload(2_u32, None);
        current.delta_cache().get_or_make(&base, V1, || Ok(None)).unwrap();
        let weak = Arc::downgrade(&base);
        drop(base);
        assert!(weak.upgrade().is_none());
    }
}
