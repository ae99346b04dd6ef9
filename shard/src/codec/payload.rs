//! Type-erased, lazily encoded payloads: a game value plus its encodings, each computed at
//! most once (`OnceLock`), by whichever writer needs that format first.
//!
//! This is how "encode once per distinct snapshot" holds: the tick thread only builds the
//! value; every subscriber sharing it shares one `Arc` and therefore one encoding.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::error::CodecError;

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
}

impl fmt::Debug for dyn PayloadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Payload")
    }
}

/// A value with its encodings cached.
pub struct Cached<T> {
    value: T,
    ack_key: Option<&'static str>,
    json: OnceLock<Result<Box<[u8]>, String>>,
    msgpack: OnceLock<Result<Box<[u8]>, String>>,
    tree: OnceLock<Result<serde_json::Value, String>>,
}

impl<T: Serialize + Send + Sync + 'static> Cached<T> {
    /// Wraps `value`; nothing is encoded yet.
    #[must_use]
    pub fn new(value: T, ack_key: Option<&'static str>) -> Self {
        Self {
            value,
            ack_key,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
            tree: OnceLock::new(),
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
}
