//! Presence, free of any transport: who is where right now, relayed between the sync
//! sockets of every process, never stored.
//!
//! Two shapes, both pylon's (so its clients work):
//! - **Socket frames** ([`frames`]): a sync socket sends `{"type":"presence",…}` and
//!   `{"type":"topic",…}` frames; each is stamped with `from` (the sender's user id) and
//!   `clientId` (the sending socket, `<instance id>-<n>`) and relayed to the other
//!   sockets of its room or topic. A socket belongs to a room or topic from its first
//!   frame for it (or an explicit join), never to everything: pylon relays to every
//!   socket, pylon here relays within the scope. A socket that goes away sends
//!   `{"type":"presence","event":"disconnect","clientId":…}` to its rooms.
//! - **HTTP rooms** ([`rooms`]): members with presence data, joined, updated and left
//!   over `/api/rooms/*`; their events go to the sockets of the room.
//!
//! Across processes everything goes over the cluster bus (`Kind::Presence`): relayed
//! frames are delivered to each process's own sockets of the scope, and room events are
//! applied to each process's replica of the rooms. The wire payload is
//! `{"op":"relay","kind":"room"|"topic","name":"lobby","frame":{…}}` or
//! `{"op":"room","event":{…room event…}}`.
//!
//! Bounded ([`MAX_FRAME_BYTES`], [`MAX_NAME_BYTES`], [`MAX_SCOPES_PER_SOCKET`],
//! [`MAX_SOCKETS_PER_SCOPE`], [`OUTBOX`], [`FRAMES_PER_SEC`], and the rooms' limits):
//! a slow socket loses presence frames (counted), never holds anyone up. Must never: block
//! or await while holding a lock, or store anything.

pub mod frames;
pub mod rooms;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::bus::{ClusterBus, Envelope, Kind};
use frames::Inbound;
use rooms::{Peer, RoomError, RoomEvent, Rooms};

/// Largest presence or topic frame a socket may send, bytes.
pub const MAX_FRAME_BYTES: usize = 8 * 1024;
/// Longest room or topic name, bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Rooms and topics one socket may be in at once.
pub const MAX_SCOPES_PER_SOCKET: usize = 32;
/// Sockets of this process in one room or topic at most.
pub const MAX_SOCKETS_PER_SCOPE: usize = 1_000;
/// Frames waiting to be sent to one socket; past this, presence frames for it are
/// dropped (counted): presence is the latest state, not a log.
pub const OUTBOX: usize = 256;
/// Frames a sync socket may send per second, presence, topic and any other (a burst of
/// twice that); over it the transport closes the socket (4429).
pub const FRAMES_PER_SEC: u32 = 30;

/// A room (presence frames; the empty name is the default room) or a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A presence room.
    Room(Arc<str>),
    /// A topic.
    Topic(Arc<str>),
}

/// Why a socket's presence frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresenceError {
    /// The socket has no session: presence needs one.
    #[error("presence and topics need a session or the admin token")]
    AuthRequired,
    /// The frame is over [`MAX_FRAME_BYTES`].
    #[error("presence frame over {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The frame breaks a shape rule.
    #[error("{0}")]
    BadFrame(&'static str),
    /// The socket is in [`MAX_SCOPES_PER_SOCKET`] rooms and topics.
    #[error("in too many rooms and topics (limit {MAX_SCOPES_PER_SOCKET} per socket)")]
    TooManyScopes,
    /// The room or topic has [`MAX_SOCKETS_PER_SCOPE`] sockets here.
    #[error("room or topic is full (limit {MAX_SOCKETS_PER_SCOPE} sockets)")]
    ScopeFull,
}

/// Presence counters for `/metrics`.
#[derive(Debug, Default)]
pub struct PresenceCounters {
    /// Frames sent by this process's sockets and relayed.
    pub relayed: AtomicU64,
    /// Frames handed to this process's sockets.
    pub delivered: AtomicU64,
    /// Frames dropped because a socket's outbox was full.
    pub dropped: AtomicU64,
    /// Presence envelopes received from other processes.
    pub received: AtomicU64,
    /// Presence envelopes that did not parse (dropped).
    pub malformed: AtomicU64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScopeKind {
    Room,
    Topic,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Relay,
    Room,
}

/// The payload of a presence envelope: `op` says which fields it has. A flat struct, not
/// a tagged enum: a tagged enum cannot carry the frame as raw JSON through serde.
#[derive(Serialize, Deserialize)]
struct Wire {
    op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<ScopeKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frame: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<RoomEvent>,
}

impl Wire {
    fn relay(kind: ScopeKind, name: String, frame: Box<RawValue>) -> Self {
        Self { op: Op::Relay, kind: Some(kind), name: Some(name), frame: Some(frame), event: None }
    }

    fn room(event: RoomEvent) -> Self {
        Self { op: Op::Room, kind: None, name: None, frame: None, event: Some(event) }
    }
}

struct Entry {
    tx: mpsc::Sender<Arc<str>>,
    scopes: Vec<Scope>,
}

#[derive(Default)]
struct Local {
    sockets: HashMap<u64, Entry>,
    scopes: HashMap<Scope, BTreeSet<u64>>,
}

/// The presence of this process: its sockets' scopes, the rooms' replica, the bus.
pub struct Presence {
    bus: ClusterBus,
    next: AtomicU64,
    local: Mutex<Local>,
    rooms: Mutex<Rooms>,
    counters: PresenceCounters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent; poisoning changes nothing.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Presence {
    /// Presence relayed over `bus` (the no-op bus: this process only).
    #[must_use]
    pub fn new(bus: ClusterBus) -> Self {
        Self {
            bus,
            next: AtomicU64::new(1),
            local: Mutex::default(),
            rooms: Mutex::default(),
            counters: PresenceCounters::default(),
        }
    }

    /// Registers a sync socket of `user` (`None`: anonymous, which may receive nothing and
    /// send nothing).
    #[must_use]
    pub fn connect(self: &Arc<Self>, user: Option<&str>) -> PresenceSocket {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let id: Arc<str> = format!("{}-{key}", self.bus.instance_id()).into();
        let (tx, rx) = mpsc::channel(OUTBOX);
        lock(&self.local).sockets.insert(key, Entry { tx, scopes: Vec::new() });
        PresenceSocket { presence: Arc::clone(self), key, id, user: user.map(Arc::from), rx }
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> &PresenceCounters {
        &self.counters
    }

    /// Sockets registered now, and rooms in the replica.
    #[must_use]
    pub fn sizes(&self) -> (usize, usize) {
        (lock(&self.local).sockets.len(), lock(&self.rooms).len())
    }

    /// Hands `text` to this process's sockets of `scope` (but `except`).
    fn deliver(&self, scope: &Scope, text: &Arc<str>, except: Option<u64>) {
        let local = lock(&self.local);
        let Some(members) = local.scopes.get(scope) else { return };
        let (mut delivered, mut dropped) = (0, 0);
        for key in members.iter().filter(|k| Some(**k) != except) {
            if let Some(entry) = local.sockets.get(key) {
                match entry.tx.try_send(Arc::clone(text)) {
                    Ok(()) => delivered += 1,
                    Err(_) => dropped += 1,
                }
            }
        }
        drop(local);
        self.counters.delivered.fetch_add(delivered, Ordering::Relaxed);
        self.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// Relays a stamped frame to `scope`: here, and on the bus.
    fn relay(&self, scope: &Scope, text: String, except: Option<u64>) {
        self.counters.relayed.fetch_add(1, Ordering::Relaxed);
        let (kind, name) = match scope {
            Scope::Room(name) => (ScopeKind::Room, name),
            Scope::Topic(name) => (ScopeKind::Topic, name),
        };
        let text: Arc<str> = text.into();
        self.deliver(scope, &text, except);
        if let Ok(frame) = RawValue::from_string(text.to_string()) {
            let wire = Wire::relay(kind, name.to_string(), frame);
            let _ = self.bus.publish_json(Kind::Presence, name.as_ref(), &wire);
        }
    }

    /// A room event of this process: to the room's sockets here, and on the bus.
    fn room_event(&self, event: RoomEvent) {
        self.deliver_room_event(&event);
        let room = event.room().to_owned();
        let _ = self.bus.publish_json(Kind::Presence, room, &Wire::room(event));
    }

    fn deliver_room_event(&self, event: &RoomEvent) {
        if let Ok(text) = serde_json::to_string(event) {
            self.deliver(&Scope::Room(event.room().into()), &text.into(), None);
        }
    }

    /// Takes a presence envelope from another process.
    pub fn receive(&self, envelope: &Envelope) {
        let Ok(wire) = envelope.payload_as::<Wire>() else {
            self.counters.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match wire {
            Wire {
                op: Op::Relay, kind: Some(kind), name: Some(name), frame: Some(frame), ..
            } => {
                let scope = match kind {
                    ScopeKind::Room => Scope::Room(name.into()),
                    ScopeKind::Topic => Scope::Topic(name.into()),
                };
                self.deliver(&scope, &Arc::from(frame.get()), None);
            }
            Wire { op: Op::Room, event: Some(event), .. } => {
                lock(&self.rooms).apply(&event, Instant::now());
                self.deliver_room_event(&event);
            }
            _ => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.counters.received.fetch_add(1, Ordering::Relaxed);
    }

    /// `POST /api/rooms/join`: the members already there.
    ///
    /// # Errors
    /// A bad name, data too large, or a room limit.
    pub fn join(
        &self,
        room: &str,
        user: &str,
        data: Option<Value>,
    ) -> Result<Vec<Peer>, RoomError> {
        let (snapshot, event) = lock(&self.rooms).join(room, user, data, Instant::now())?;
        self.room_event(event);
        Ok(snapshot)
    }

    /// `POST /api/rooms/leave`: whether `user` was in `room`.
    pub fn leave(&self, room: &str, user: &str) -> bool {
        let event = lock(&self.rooms).leave(room, user);
        event.map(|e| self.room_event(e)).is_some()
    }

    /// `POST /api/rooms/presence`: whether `user` is in `room`.
    ///
    /// # Errors
    /// Data too large.
    pub fn set_presence(&self, room: &str, user: &str, data: Value) -> Result<bool, RoomError> {
        rooms::check(room, Some(&data))?;
        let event = lock(&self.rooms).set_presence(room, user, data, Instant::now());
        Ok(event.map(|e| self.room_event(e)).is_some())
    }

    /// `POST /api/rooms/broadcast`: whether the room exists.
    ///
    /// # Errors
    /// Data too large.
    pub fn broadcast(
        &self,
        room: &str,
        sender: Option<&str>,
        topic: &str,
        data: Value,
    ) -> Result<bool, RoomError> {
        rooms::check(room, Some(&data))?;
        let event = lock(&self.rooms).broadcast(room, sender, topic, data, Instant::now());
        Ok(event.map(|e| self.room_event(e)).is_some())
    }

    /// `GET /api/rooms`: every room and its member count.
    #[must_use]
    pub fn rooms(&self) -> Vec<(String, usize)> {
        lock(&self.rooms).list()
    }

    /// `GET /api/rooms/:room`: its members.
    #[must_use]
    pub fn members(&self, room: &str) -> Vec<Peer> {
        lock(&self.rooms).members(room)
    }

    /// Removes idle room members (every process on its own clock, so the leave events go
    /// to this process's sockets only).
    pub fn sweep(&self, now: Instant) {
        let left = lock(&self.rooms).sweep(now);
        for event in &left {
            self.deliver_room_event(event);
        }
    }

    /// Adds socket `key` to `scope`, within the limits.
    fn join_scope(&self, key: u64, scope: &Scope) -> Result<(), PresenceError> {
        let mut local = lock(&self.local);
        let Local { sockets, scopes } = &mut *local;
        let Some(entry) = sockets.get_mut(&key) else { return Ok(()) };
        if entry.scopes.contains(scope) {
            return Ok(());
        }
        if entry.scopes.len() >= MAX_SCOPES_PER_SOCKET {
            return Err(PresenceError::TooManyScopes);
        }
        let members = scopes.entry(scope.clone()).or_default();
        if members.len() >= MAX_SOCKETS_PER_SCOPE {
            return Err(PresenceError::ScopeFull);
        }
        members.insert(key);
        entry.scopes.push(scope.clone());
        Ok(())
    }

    /// Removes socket `key` from `scope` (or, with `None`, from everything and the
    /// registry); the scopes it left.
    fn leave_scopes(&self, key: u64, scope: Option<&Scope>) -> Vec<Scope> {
        let mut local = lock(&self.local);
        let Local { sockets, scopes } = &mut *local;
        let left = match scope {
            Some(scope) => {
                let Some(entry) = sockets.get_mut(&key) else { return Vec::new() };
                let before = entry.scopes.len();
                entry.scopes.retain(|s| s != scope);
                if entry.scopes.len() == before { Vec::new() } else { vec![scope.clone()] }
            }
            None => sockets.remove(&key).map(|e| e.scopes).unwrap_or_default(),
        };
        for scope in &left {
            if let Some(members) = scopes.get_mut(scope) {
                members.remove(&key);
                if members.is_empty() {
                    scopes.remove(scope);
                }
            }
        }
        left
    }
}

/// One sync socket's presence: its frames in ([`PresenceSocket::handle`]) and out
/// ([`PresenceSocket::recv`]). Dropping it leaves every scope and sends the disconnect
/// frame to its rooms.
pub struct PresenceSocket {
    presence: Arc<Presence>,
    key: u64,
    id: Arc<str>,
    user: Option<Arc<str>>,
    rx: mpsc::Receiver<Arc<str>>,
}

impl PresenceSocket {
    /// This socket's `clientId`.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next frame for this socket (cancel-safe). Pending forever once nothing can
    /// arrive.
    pub async fn recv(&mut self) -> Arc<str> {
        match self.rx.recv().await {
            Some(frame) => frame,
            None => std::future::pending().await,
        }
    }

    /// Handles one client frame (see [`frames`]); ignored frames are `Ok`.
    ///
    /// # Errors
    /// [`PresenceError`]: the frame was not relayed (the socket may go on).
    pub fn handle(&mut self, bytes: &[u8]) -> Result<(), PresenceError> {
        let inbound = frames::parse(bytes)?;
        if matches!(inbound, Inbound::Ignored) {
            return Ok(());
        }
        let from = self.user.clone().ok_or(PresenceError::AuthRequired)?;
        let presence = &self.presence;
        match inbound {
            Inbound::Relay { scope, frame, leave } => {
                presence.join_scope(self.key, &scope)?;
                presence.relay(&scope, frames::stamp(frame, &from, &self.id), Some(self.key));
                if leave {
                    presence.leave_scopes(self.key, Some(&scope));
                }
            }
            Inbound::Join(scope) => presence.join_scope(self.key, &scope)?,
            Inbound::Leave(scope) => {
                presence.leave_scopes(self.key, Some(&scope));
            }
            Inbound::Ignored => {}
        }
        Ok(())
    }
}

impl Drop for PresenceSocket {
    fn drop(&mut self) {
        let left = self.presence.leave_scopes(self.key, None);
        let from = self.user.as_deref().unwrap_or_default();
        for scope in left {
            if let Scope::Room(room) = &scope {
                let frame = frames::disconnect(room, from, &self.id);
                self.presence.relay(&scope, frame, None);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::bus::InstanceId;

    fn presence() -> Arc<Presence> {
        Arc::new(Presence::new(ClusterBus::noop("t", InstanceId::new("i1"))))
    }

    fn frame(v: &Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    async fn next(socket: &mut PresenceSocket) -> Value {
        let text =
            tokio::time::timeout(std::time::Duration::from_secs(1), socket.recv()).await.unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A frame reaches the other sockets of its room, stamped, not the sender and not a
    /// socket of another room; a socket that goes away tells its rooms.
    #[tokio::test]
    async fn scoped_relay_and_disconnect() {
        let p = presence();
        let (mut a, mut b, mut c) =
            (p.connect(Some("alice")), p.connect(Some("bob")), p.connect(Some("carol")));
        b.handle(&frame(&json!({"type":"presence","event":"join","room":"r"}))).unwrap();
        let _ = a.rx.try_recv();
        c.handle(&frame(&json!({"type":"topic","topic":"other","event":"subscribe"}))).unwrap();
        a.handle(&frame(&json!({"type":"presence","event":"update","room":"r","data":1}))).unwrap();
        let got = next(&mut b).await;
        assert_eq!(got["from"], "alice");
        assert_eq!(got["clientId"], a.id());
        assert!(a.rx.try_recv().is_err() && c.rx.try_recv().is_err());
        let gone = a.id().to_owned();
        drop(a);
        let bye = next(&mut b).await;
        assert_eq!(
            bye,
            json!({"type":"presence","event":"disconnect","room":"r","clientId":gone,"from":"alice"})
        );
        assert_eq!(p.sizes().0, 2);
    }

    /// Anonymous sockets cannot send presence; scope counts per socket are bounded.
    #[tokio::test]
    async fn auth_and_limits() {
        let p = presence();
        let mut anon = p.connect(None);
        let presence_frame = frame(&json!({"type":"presence","data":1}));
        assert_eq!(anon.handle(&presence_frame), Err(PresenceError::AuthRequired));
        assert!(anon.handle(b"{\"type\":\"crdt-subscribe\"}").is_ok());
        let mut s = p.connect(Some("u"));
        for i in 0..MAX_SCOPES_PER_SOCKET {
            s.handle(&frame(&json!({"type":"topic","topic":format!("t{i}"),"event":"subscribe"})))
                .unwrap();
        }
        let over = frame(&json!({"type":"topic","topic":"one-more","data":1}));
        assert_eq!(s.handle(&over), Err(PresenceError::TooManyScopes));
    }

    /// What one process publishes, another delivers: a relayed frame to its sockets of
    /// the scope, a room event to its replica and the room's sockets.
    #[tokio::test]
    async fn envelopes_between_processes() {
        let (here, there) = (presence(), presence());
        let mut s = there.connect(Some("bob"));
        s.handle(&frame(&json!({"type":"presence","event":"join","room":"r"}))).unwrap();
        let text = frames::stamp(
            json!({"type":"presence","room":"r"}).as_object().unwrap().clone(),
            "alice",
            "c9",
        );
        let relay = Wire::relay(ScopeKind::Room, "r".into(), RawValue::from_string(text).unwrap());
        let envelope = |wire: &Wire| {
            let payload = serde_json::value::to_raw_value(wire).unwrap();
            Envelope::new(InstanceId::new("i0"), Kind::Presence, "r", payload)
        };
        there.receive(&envelope(&relay));
        assert_eq!(next(&mut s).await["clientId"], "c9");
        let join = RoomEvent::Join { room: "r".into(), user_id: "alice".into(), data: None };
        there.receive(&envelope(&Wire::room(join)));
        assert_eq!(next(&mut s).await["type"], "join");
        assert_eq!(there.members("r")[0].user_id, "alice");
        let bad = serde_json::value::to_raw_value(&json!({"op":"relay"})).unwrap();
        there.receive(&Envelope::new(InstanceId::new("i0"), Kind::Presence, "r", bad));
        assert_eq!(there.counters().malformed.load(Ordering::Relaxed), 1);
        drop(here);
    }

    /// Room events reach the sockets that joined the room.
    #[tokio::test]
    async fn room_events_reach_room_sockets() {
        let p = presence();
        let mut s = p.connect(Some("watcher"));
        s.handle(&frame(&json!({"type":"presence","event":"join","room":"lobby"}))).unwrap();
        assert!(p.join("lobby", "u1", Some(json!({"x":1}))).unwrap().is_empty());
        assert_eq!(next(&mut s).await["type"], "join");
        assert!(p.broadcast("lobby", Some("u1"), "chat", json!("hi")).unwrap());
        assert_eq!(next(&mut s).await["topic"], "chat");
        assert!(p.leave("lobby", "u1"));
        assert_eq!(next(&mut s).await["type"], "leave");
        assert!(!p.broadcast("lobby", None, "chat", json!(1)).unwrap());
    }
}
