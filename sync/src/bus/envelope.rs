//! What travels on the cluster bus: the [`Envelope`], its compact JSON wire form, the
//! [`InstanceId`] that signs it, and the [`Channels`] one namespace owns in Redis.
//!
//! Owns: encoding and decoding. Decoding refuses (never panics on) anything that is not a
//! version-1 envelope of its channel's kind. Must never: look inside the payload. It is
//! opaque JSON that its publisher defines (a change event with the row before the write, a
//! presence frame, a notification), and only the receiver who asked for it parses it.
//!
//! Wire form (one Redis message, compact JSON, unknown fields ignored):
//! `{"v":1,"instance_id":"9f1c03e2a4b65d78","kind":"change","topic":"Todo","payload":{…}}`.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::BusError;
use super::backoff::random_u64;

/// The wire version every envelope carries as `"v"`; other versions are dropped as
/// malformed (and counted), so a mixed fleet never misreads a newer shape.
pub const WIRE_VERSION: u32 = 1;

/// Longest namespace accepted, in bytes (it prefixes every channel name).
pub const MAX_NAMESPACE_LEN: usize = 128;

/// The process that published an envelope: one id per process, minted at start
/// ([`InstanceId::mint`]) and printed in the start-up log.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    /// A fresh random id: 16 lowercase hex digits (64 random bits).
    #[must_use]
    pub fn mint() -> Self {
        Self(format!("{:016x}", random_u64()).into())
    }

    /// An id with exactly this text (tests, or an id chosen by the operator).
    #[must_use]
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({})", self.0)
    }
}

/// What an envelope carries; each kind has its own channel (`<namespace>:<kind>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A committed entity change (the change event plus the row before the write).
    Change,
    /// A presence or topic frame relayed between sockets of one room or topic.
    Presence,
    /// A cross-process notification (for example a matchmaker assignment).
    Notification,
}

impl Kind {
    /// Every kind, in channel order.
    pub const ALL: [Self; 3] = [Self::Change, Self::Presence, Self::Notification];

    /// The kind's wire name, which is also its channel suffix.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Change => "change",
            Self::Presence => "presence",
            Self::Notification => "notification",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Change => 0,
            Self::Presence => 1,
            Self::Notification => 2,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Redis channels of one namespace: `<ns>:change`, `<ns>:presence`,
/// `<ns>:notification`. A bus subscribes to exactly these three (no pattern), so a
/// namespace never hears another, even one that starts with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    namespace: String,
    names: [String; 3],
}

impl Channels {
    /// The channels of `namespace`, which must be 1 to [`MAX_NAMESPACE_LEN`] bytes with no
    /// whitespace or control characters.
    ///
    /// # Errors
    /// [`BusError::InvalidNamespace`] otherwise.
    pub fn new(namespace: &str) -> Result<Self, BusError> {
        let bad = namespace.is_empty()
            || namespace.len() > MAX_NAMESPACE_LEN
            || namespace.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad {
            return Err(BusError::InvalidNamespace {
                namespace: namespace.escape_debug().to_string(),
            });
        }
        let names = Kind::ALL.map(|kind| format!("{namespace}:{kind}"));
        Ok(Self { namespace: namespace.to_owned(), names })
    }

    /// The namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The channel that carries `kind`.
    #[must_use]
    pub fn name(&self, kind: Kind) -> &str {
        &self.names[kind.index()]
    }

    /// Which kind a channel of this namespace carries (`None`: not one of ours).
    #[must_use]
    pub fn kind_of(&self, channel: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| self.names[kind.index()] == channel)
    }

    /// The three channel names, in [`Kind::ALL`] order.
    #[must_use]
    pub fn names(&self) -> &[String; 3] {
        &self.names
    }
}

/// One message between processes. Received envelopes arrive as `Arc<Envelope>`, shared
/// by every in-process receiver.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Envelope {
    /// The publishing process.
    pub instance_id: InstanceId,
    /// What it carries (and so which channel it came on).
    pub kind: Kind,
    /// Routing key the publisher chose: the room or topic for presence, the addressee
    /// for a notification, the entity name for a change (may be empty).
    pub topic: String,
    /// The publisher's JSON, exactly as sent; parse it with [`Envelope::payload_as`].
    pub payload: Box<RawValue>,
}

impl Envelope {
    /// An envelope from `instance_id` (the bus stamps its own on publish; this is for
    /// tests and tools).
    #[must_use]
    pub fn new(
        instance_id: InstanceId,
        kind: Kind,
        topic: impl Into<String>,
        payload: Box<RawValue>,
    ) -> Self {
        Self { instance_id, kind, topic: topic.into(), payload }
    }

    /// The payload parsed as `T`.
    ///
    /// # Errors
    /// The payload is not a `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }
}

/// The wire form written by a publisher.
#[derive(Serialize)]
struct WireOut<'a> {
    v: u32,
    instance_id: &'a InstanceId,
    kind: Kind,
    topic: &'a str,
    payload: &'a RawValue,
}

/// The wire form read by a subscriber (unknown fields are ignored).
#[derive(Deserialize)]
struct WireIn {
    v: u32,
    instance_id: InstanceId,
    kind: Kind,
    #[serde(default)]
    topic: String,
    payload: Box<RawValue>,
}

/// Compact JSON of one envelope from `instance_id`.
pub(crate) fn encode(
    instance_id: &InstanceId,
    kind: Kind,
    topic: &str,
    payload: &RawValue,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&WireOut { v: WIRE_VERSION, instance_id, kind, topic, payload })
}

/// Why a message from Redis was dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Malformed {
    /// Not JSON, or not an envelope's shape.
    #[error("not an envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// A wire version this build does not read.
    #[error("wire version {0} (this build reads {WIRE_VERSION})")]
    Version(u32),
    /// The envelope's kind is not its channel's.
    #[error("kind {found} on the {channel} channel")]
    WrongChannel {
        /// Kind the envelope claims.
        found: Kind,
        /// Kind of the channel it came on.
        channel: Kind,
    },
}

/// Parses one message that arrived on the channel of `channel`.
pub(crate) fn decode(bytes: &[u8], channel: Kind) -> Result<Envelope, Malformed> {
    let wire: WireIn = serde_json::from_slice(bytes)?;
    if wire.v != WIRE_VERSION {
        return Err(Malformed::Version(wire.v));
    }
    if wire.kind != channel {
        return Err(Malformed::WrongChannel { found: wire.kind, channel });
    }
    Ok(Envelope {
        instance_id: wire.instance_id,
        kind: wire.kind,
        topic: wire.topic,
        payload: wire.payload,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    /// An envelope survives the wire unchanged, as the compact JSON the docs show.
    #[test]
    fn round_trip_is_compact_json() {
        let id = InstanceId::new("abc");
        let bytes = encode(&id, Kind::Presence, "room-1", &raw(r#"{"a":[1,2]}"#)).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"v":1,"instance_id":"abc","kind":"presence","topic":"room-1","payload":{"a":[1,2]}}"#
        );
        let back = decode(&bytes, Kind::Presence).unwrap();
        assert_eq!(back.instance_id, id);
        assert_eq!(back.topic, "room-1");
        assert_eq!(back.payload.get(), r#"{"a":[1,2]}"#);
        let value: serde_json::Value = back.payload_as().unwrap();
        assert_eq!(value["a"][1], 2);
    }

    /// Garbage, other versions, missing fields and a kind on the wrong channel are refused
    /// with a reason; unknown fields and a missing topic are tolerated.
    #[test]
    fn malformed_is_refused() {
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"v":2,"instance_id":"x","kind":"change","payload":1}"#,
            br#"{"v":1,"instance_id":"x","kind":"gossip","payload":1}"#,
            br#"{"v":1,"instance_id":"x","kind":"presence","payload":1}"#,
            br#"{"v":1,"kind":"change","payload":1}"#,
            b"\xff\xfe",
        ] {
            assert!(decode(bad, Kind::Change).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let ok = br#"{"v":1,"instance_id":"x","kind":"change","payload":null,"later":true}"#;
        assert_eq!(decode(ok, Kind::Change).unwrap().topic, "");
    }

    /// Channel names are `<ns>:<kind>`; bad namespaces are refused; minted ids differ.
    #[test]
    fn channels_and_ids() {
        let channels = Channels::new("eu-prod").unwrap();
        assert_eq!(channels.name(Kind::Change), "eu-prod:change");
        assert_eq!(channels.name(Kind::Notification), "eu-prod:notification");
        assert_eq!(channels.kind_of("eu-prod:presence"), Some(Kind::Presence));
        assert_eq!(channels.kind_of("eu-prod:x:presence"), None);
        for bad in ["", "a b", "a\nb", &"x".repeat(MAX_NAMESPACE_LEN + 1)] {
            assert!(Channels::new(bad).is_err(), "{bad:?}");
        }
        let (a, b) = (InstanceId::mint(), InstanceId::mint());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 16);
    }
}
