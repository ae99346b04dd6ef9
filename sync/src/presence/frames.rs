//! The sync socket's presence frames, in pylon's shapes: what a client sends
//! ([`Inbound`], parsed by [`parse`]) and what the others receive (the same object,
//! stamped with `from` and `clientId` by [`stamp`]; the disconnect frame,
//! [`disconnect`]).
//!
//! Client frames (JSON objects, one per text message):
//! - `{"type":"presence","event":"update","data":{…},"room"?:"lobby"}`: relayed to the
//!   other sockets of `room` (without `room`: the default room, which is what pylon's
//!   clients use). The first presence frame for a room joins it; `"event":"join"` joins
//!   without anything else to say, `"event":"leave"` leaves (both are relayed too).
//! - `{"type":"topic","topic":"chat","data":…}`: relayed to the other sockets of the
//!   topic; the first one joins it. `"event":"subscribe"` / `"unsubscribe"` join or leave
//!   without relaying anything.
//!
//! Anything else (other types, non-JSON) is ignored, as pylon's server does.
//!
//! Must never: trust a client's `from` or `clientId` (they are overwritten).

use serde_json::{Map, Value};

use super::{MAX_FRAME_BYTES, MAX_NAME_BYTES, PresenceError, Scope};

/// What a client frame asks for.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// Relay `frame` (stamped) to the scope's other sockets, joining it first.
    Relay {
        /// Where to.
        scope: Scope,
        /// The client's object.
        frame: Map<String, Value>,
        /// `"event":"leave"`: leave the scope after relaying.
        leave: bool,
    },
    /// Join the scope without relaying (`"event":"subscribe"` on a topic).
    Join(Scope),
    /// Leave the scope without relaying (`"event":"unsubscribe"` on a topic).
    Leave(Scope),
    /// Not a presence or topic frame: ignored.
    Ignored,
}

/// Reads one client frame.
///
/// # Errors
/// A presence or topic frame over [`MAX_FRAME_BYTES`], or with a `room` or `topic` that
/// is not a string of 1 to [`MAX_NAME_BYTES`] bytes.
pub fn parse(bytes: &[u8]) -> Result<Inbound, PresenceError> {
    let Ok(Value::Object(frame)) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(Inbound::Ignored);
    };
    let kind = frame.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind != "presence" && kind != "topic" {
        return Ok(Inbound::Ignored);
    }
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(PresenceError::TooLarge { limit: MAX_FRAME_BYTES });
    }
    let event = frame.get("event").and_then(Value::as_str).unwrap_or_default().to_owned();
    if kind == "presence" {
        let room = match frame.get("room") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(room)) => name(room, "room")?,
            Some(_) => return Err(PresenceError::BadFrame("room must be a string")),
        };
        let leave = event == "leave";
        return Ok(Inbound::Relay { scope: Scope::Room(room.into()), frame, leave });
    }
    let topic = match frame.get("topic") {
        Some(Value::String(topic)) => name(topic, "topic")?,
        _ => return Err(PresenceError::BadFrame("a topic frame needs a topic string")),
    };
    let scope = Scope::Topic(topic.into());
    Ok(match event.as_str() {
        "subscribe" => Inbound::Join(scope),
        "unsubscribe" => Inbound::Leave(scope),
        _ => Inbound::Relay { scope, frame, leave: false },
    })
}

/// A room or topic name: 1 to [`MAX_NAME_BYTES`] bytes.
fn name(text: &str, what: &'static str) -> Result<String, PresenceError> {
    if text.is_empty() || text.len() > MAX_NAME_BYTES {
        return Err(PresenceError::BadFrame(match what {
            "room" => "room must be 1 to 128 bytes",
            _ => "topic must be 1 to 128 bytes",
        }));
    }
    Ok(text.to_owned())
}

/// The frame the other sockets receive: the client's object with `from` (the sender's
/// user id) and `clientId` (its socket) set by the server.
#[must_use]
pub fn stamp(mut frame: Map<String, Value>, from: &str, client_id: &str) -> String {
    frame.insert("from".into(), Value::String(from.to_owned()));
    frame.insert("clientId".into(), Value::String(client_id.to_owned()));
    Value::Object(frame).to_string()
}

/// `{"type":"presence","event":"disconnect","clientId":…,"from":…,"room"?:…}`: what a
/// room's sockets receive when one of them goes away.
#[must_use]
pub fn disconnect(room: &str, from: &str, client_id: &str) -> String {
    let mut frame = Map::new();
    frame.insert("type".into(), "presence".into());
    frame.insert("event".into(), "disconnect".into());
    if !room.is_empty() {
        frame.insert("room".into(), room.into());
    }
    stamp(frame, from, client_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope_of(inbound: &Inbound) -> Option<&Scope> {
        match inbound {
            Inbound::Relay { scope, .. } | Inbound::Join(scope) | Inbound::Leave(scope) => {
                Some(scope)
            }
            Inbound::Ignored => None,
        }
    }

    /// pylon's client shapes parse into their scopes; other frames are ignored; bad names
    /// and oversized frames are refused.
    #[test]
    fn shapes() {
        let parsed = |v: Value| parse(v.to_string().as_bytes());
        let p = parsed(json!({"type":"presence","event":"update","data":{"x":1}})).unwrap();
        assert_eq!(scope_of(&p), Some(&Scope::Room("".into())));
        let p = parsed(json!({"type":"presence","event":"leave","room":"lobby"})).unwrap();
        assert!(matches!(p, Inbound::Relay { leave: true, .. }));
        let t = parsed(json!({"type":"topic","topic":"chat","data":"hi"})).unwrap();
        assert_eq!(scope_of(&t), Some(&Scope::Topic("chat".into())));
        let s = parsed(json!({"type":"topic","topic":"chat","event":"subscribe"})).unwrap();
        assert_eq!(s, Inbound::Join(Scope::Topic("chat".into())));
        assert_eq!(parse(b"not json").unwrap(), Inbound::Ignored);
        assert_eq!(parsed(json!({"type":"crdt-subscribe"})).unwrap(), Inbound::Ignored);
        assert!(parsed(json!({"type":"topic","data":1})).is_err());
        assert!(parsed(json!({"type":"presence","room":7})).is_err());
        assert!(parsed(json!({"type":"presence","room":"x".repeat(129)})).is_err());
        let big = json!({"type":"presence","data":"x".repeat(MAX_FRAME_BYTES)});
        assert!(matches!(parsed(big), Err(PresenceError::TooLarge { .. })));
    }

    /// The server's `from` and `clientId` replace the client's.
    #[test]
    fn stamps_override_the_client() {
        let frame = json!({"type":"topic","topic":"t","from":"mallory","clientId":"x"});
        let out: Value =
            serde_json::from_str(&stamp(frame.as_object().unwrap().clone(), "alice", "c1"))
                .unwrap();
        assert_eq!(out["from"], "alice");
        assert_eq!(out["clientId"], "c1");
        let gone: Value = serde_json::from_str(&disconnect("", "alice", "c1")).unwrap();
        assert_eq!(
            gone,
            json!({"type":"presence","event":"disconnect","clientId":"c1","from":"alice"})
        );
    }
}
