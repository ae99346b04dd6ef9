//! [`Rooms`]: the HTTP rooms (`/api/rooms/*`), pylon's presence rooms: who is in each
//! room, with their presence data, and the events that changes produce ([`RoomEvent`],
//! pylon's shapes).
//!
//! Every process keeps a replica: its own changes are applied here and published on the
//! cluster bus; the other processes' are applied on receipt ([`Rooms::apply`]). A member
//! with no join, presence update or broadcast for [`ROOM_IDLE`] leaves; a room without
//! members is gone. Each process expires members on its own clock, so the expiry needs
//! no message.
//!
//! Bounded: [`MAX_ROOMS`] rooms, [`MAX_MEMBERS_PER_ROOM`] members each,
//! [`MAX_ROOMS_PER_USER`] rooms per user, presence data of [`MAX_DATA_BYTES`] at most.
//! Must never: store anything (presence is ephemeral), or do I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MAX_NAME_BYTES;

/// A member silent this long leaves its room.
pub const ROOM_IDLE: Duration = Duration::from_secs(120);
/// Rooms in the process at most.
pub const MAX_ROOMS: usize = 10_000;
/// Members per room at most.
pub const MAX_MEMBERS_PER_ROOM: usize = 1_000;
/// Rooms one user may be in at once.
pub const MAX_ROOMS_PER_USER: usize = 32;
/// Largest presence data (JSON bytes) a member may hold or broadcast.
pub const MAX_DATA_BYTES: usize = 8 * 1024;

/// What happened in a room, as sockets of that room receive it (pylon's shapes, e.g.
/// `{"type":"presence","room":"lobby","user_id":"u1","data":{…}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A user joined.
    Join {
        /// The room.
        room: String,
        /// Who.
        user_id: String,
        /// Their presence data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Value>,
    },
    /// A user left (or went idle).
    Leave {
        /// The room.
        room: String,
        /// Who.
        user_id: String,
    },
    /// A member's presence data changed.
    Presence {
        /// The room.
        room: String,
        /// Who.
        user_id: String,
        /// The new data.
        data: Value,
    },
    /// A message to the room's sockets.
    Broadcast {
        /// The room.
        room: String,
        /// Who sent it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<String>,
        /// Its topic.
        topic: String,
        /// Its data.
        data: Value,
    },
}

impl RoomEvent {
    /// The room it happened in.
    #[must_use]
    pub fn room(&self) -> &str {
        match self {
            Self::Join { room, .. }
            | Self::Leave { room, .. }
            | Self::Presence { room, .. }
            | Self::Broadcast { room, .. } => room,
        }
    }
}

/// A member as `GET /api/rooms/:room` and a join's snapshot list it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    /// Who.
    pub user_id: String,
    /// Their presence data (null when none).
    pub data: Value,
    /// When they joined (RFC 3339).
    pub joined_at: String,
}

/// Why a room operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The room name is empty or too long.
    #[error("room must be 1 to {MAX_NAME_BYTES} bytes")]
    BadName,
    /// The presence data is too large.
    #[error("presence data over {MAX_DATA_BYTES} bytes")]
    DataTooLarge,
    /// The process holds [`MAX_ROOMS`] rooms.
    #[error("too many rooms (limit {MAX_ROOMS})")]
    TooManyRooms,
    /// The room holds [`MAX_MEMBERS_PER_ROOM`] members.
    #[error("room is full (limit {MAX_MEMBERS_PER_ROOM} members)")]
    RoomFull,
    /// The user is in [`MAX_ROOMS_PER_USER`] rooms.
    #[error("in too many rooms (limit {MAX_ROOMS_PER_USER} per user)")]
    TooManyForUser,
}

#[derive(Debug)]
struct Member {
    data: Value,
    joined_at: String,
    last_active: Instant,
}

/// The replica of every room (see the module doc).
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<Arc<str>, BTreeMap<String, Member>>,
    per_user: HashMap<String, usize>,
}

/// Checks a room name and presence data against the limits.
///
/// # Errors
/// [`RoomError::BadName`], [`RoomError::DataTooLarge`].
pub fn check(room: &str, data: Option<&Value>) -> Result<(), RoomError> {
    if room.is_empty() || room.len() > MAX_NAME_BYTES {
        return Err(RoomError::BadName);
    }
    if data.is_some_and(|d| d.to_string().len() > MAX_DATA_BYTES) {
        return Err(RoomError::DataTooLarge);
    }
    Ok(())
}

impl Rooms {
    /// Adds (or refreshes) `user` in `room` at `now`: the members already there (the
    /// snapshot) and the join event.
    ///
    /// # Errors
    /// A bad name, data too large, or a limit reached.
    pub fn join(
        &mut self,
        room: &str,
        user: &str,
        data: Option<Value>,
        now: Instant,
    ) -> Result<(Vec<Peer>, RoomEvent), RoomError> {
        check(room, data.as_ref())?;
        let exists = self.rooms.contains_key(room);
        if !exists && self.rooms.len() >= MAX_ROOMS {
            return Err(RoomError::TooManyRooms);
        }
        let members = self.rooms.get(room);
        let already = members.is_some_and(|m| m.contains_key(user));
        if !already {
            if members.is_some_and(|m| m.len() >= MAX_MEMBERS_PER_ROOM) {
                return Err(RoomError::RoomFull);
            }
            if self.per_user.get(user).copied().unwrap_or(0) >= MAX_ROOMS_PER_USER {
                return Err(RoomError::TooManyForUser);
            }
            *self.per_user.entry(user.to_owned()).or_default() += 1;
        }
        let members = self.rooms.entry(Arc::from(room)).or_default();
        let snapshot = peers(members, Some(user));
        let member = Member {
            data: data.clone().unwrap_or(Value::Null),
            joined_at: pylon_storage::time::now_rfc3339(),
            last_active: now,
        };
        match members.get_mut(user) {
            Some(old) => {
                old.data = member.data;
                old.last_active = now;
            }
            None => {
                members.insert(user.to_owned(), member);
            }
        }
        let event = RoomEvent::Join { room: room.to_owned(), user_id: user.to_owned(), data };
        Ok((snapshot, event))
    }

    /// Removes `user` from `room`; the leave event when they were in it.
    pub fn leave(&mut self, room: &str, user: &str) -> Option<RoomEvent> {
        let members = self.rooms.get_mut(room)?;
        members.remove(user)?;
        if members.is_empty() {
            self.rooms.remove(room);
        }
        self.forget_one(user);
        Some(RoomEvent::Leave { room: room.to_owned(), user_id: user.to_owned() })
    }

    fn forget_one(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(user);
            }
        }
    }

    /// Sets `user`'s presence data in `room`; the event when they are in it.
    pub fn set_presence(
        &mut self,
        room: &str,
        user: &str,
        data: Value,
        now: Instant,
    ) -> Option<RoomEvent> {
        let member = self.rooms.get_mut(room)?.get_mut(user)?;
        member.data = data.clone();
        member.last_active = now;
        Some(RoomEvent::Presence { room: room.to_owned(), user_id: user.to_owned(), data })
    }

    /// A broadcast to `room` (refreshing the sender when a member); `None` when the room
    /// does not exist.
    pub fn broadcast(
        &mut self,
        room: &str,
        sender: Option<&str>,
        topic: &str,
        data: Value,
        now: Instant,
    ) -> Option<RoomEvent> {
        let members = self.rooms.get_mut(room)?;
        if let Some(member) = sender.and_then(|s| members.get_mut(s)) {
            member.last_active = now;
        }
        Some(RoomEvent::Broadcast {
            room: room.to_owned(),
            sender: sender.map(str::to_owned),
            topic: topic.to_owned(),
            data,
        })
    }

    /// Applies another process's event to this replica (refusals are dropped: the limits
    /// are the same everywhere).
    pub fn apply(&mut self, event: &RoomEvent, now: Instant) {
        match event.clone() {
            RoomEvent::Join { room, user_id, data } => {
                let _ = self.join(&room, &user_id, data, now);
            }
            RoomEvent::Leave { room, user_id } => {
                let _ = self.leave(&room, &user_id);
            }
            RoomEvent::Presence { room, user_id, data } => {
                let _ = self.set_presence(&room, &user_id, data, now);
            }
            RoomEvent::Broadcast { room, sender, .. } => {
                let member = sender.and_then(|s| self.rooms.get_mut(room.as_str())?.get_mut(&s));
                if let Some(member) = member {
                    member.last_active = now;
                }
            }
        }
    }

    /// Every room with its member count, by name.
    #[must_use]
    pub fn list(&self) -> Vec<(String, usize)> {
        let mut rooms: Vec<_> = self.rooms.iter().map(|(n, m)| (n.to_string(), m.len())).collect();
        rooms.sort();
        rooms
    }

    /// The members of `room` (empty when it does not exist).
    #[must_use]
    pub fn members(&self, room: &str) -> Vec<Peer> {
        self.rooms.get(room).map(|m| peers(m, None)).unwrap_or_default()
    }

    /// Rooms now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether there is no room.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Removes the members idle for [`ROOM_IDLE`] at `now`; their leave events.
    pub fn sweep(&mut self, now: Instant) -> Vec<RoomEvent> {
        let mut idle = Vec::new();
        for (room, members) in &self.rooms {
            for (user, member) in members {
                if now.duration_since(member.last_active) >= ROOM_IDLE {
                    idle.push((Arc::clone(room), user.clone()));
                }
            }
        }
        idle.into_iter().filter_map(|(room, user)| self.leave(&room, &user)).collect()
    }
}

fn peers(members: &BTreeMap<String, Member>, except: Option<&str>) -> Vec<Peer> {
    members
        .iter()
        .filter(|(user, _)| Some(user.as_str()) != except)
        .map(|(user, m)| Peer {
            user_id: user.clone(),
            data: m.data.clone(),
            joined_at: m.joined_at.clone(),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use serde_json::json;

    use super::*;

    /// Join gives the others as a snapshot; presence, leave and broadcast produce pylon's
    /// event shapes; a room without members is gone.
    #[test]
    fn join_presence_leave() {
        let t = Instant::now();
        let mut rooms = Rooms::default();
        let (snap, join) = rooms.join("lobby", "a", Some(json!({"c": 1})), t).unwrap();
        assert!(snap.is_empty());
        assert_eq!(
            serde_json::to_value(&join).unwrap(),
            json!({"type":"join","room":"lobby","user_id":"a","data":{"c":1}})
        );
        let (snap, _) = rooms.join("lobby", "b", None, t).unwrap();
        assert_eq!(snap[0].user_id, "a");
        let p = rooms.set_presence("lobby", "b", json!({"x": 2}), t).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"type":"presence","room":"lobby","user_id":"b","data":{"x":2}})
        );
        assert!(rooms.set_presence("lobby", "nobody", json!(1), t).is_none());
        assert_eq!(rooms.list(), [("lobby".to_owned(), 2)]);
        assert!(rooms.broadcast("lobby", Some("a"), "t", json!(1), t).is_some());
        assert!(rooms.broadcast("nowhere", None, "t", json!(1), t).is_none());
        rooms.leave("lobby", "a").unwrap();
        assert!(rooms.leave("lobby", "a").is_none());
        rooms.leave("lobby", "b").unwrap();
        assert!(rooms.is_empty());
    }

    /// Members idle for [`ROOM_IDLE`] leave; activity keeps them.
    #[test]
    fn idle_members_leave() {
        let t = Instant::now();
        let mut rooms = Rooms::default();
        rooms.join("r", "a", None, t).unwrap();
        rooms.join("r", "b", None, t).unwrap();
        rooms.set_presence("r", "b", json!(1), t + Duration::from_secs(60)).unwrap();
        let left = rooms.sweep(t + ROOM_IDLE);
        assert_eq!(left, [RoomEvent::Leave { room: "r".into(), user_id: "a".into() }]);
        assert_eq!(rooms.sweep(t + ROOM_IDLE + Duration::from_secs(60)).len(), 1);
        assert!(rooms.is_empty());
    }

    /// Names, data size, members per room and rooms per user are bounded; another
    /// process's events apply to the replica.
    #[test]
    fn limits_and_replication() {
        let t = Instant::now();
        let mut rooms = Rooms::default();
        assert_eq!(rooms.join("", "a", None, t).unwrap_err(), RoomError::BadName);
        let big = json!("x".repeat(MAX_DATA_BYTES));
        assert_eq!(rooms.join("r", "a", Some(big), t).unwrap_err(), RoomError::DataTooLarge);
        for i in 0..MAX_ROOMS_PER_USER {
            rooms.join(&format!("r{i}"), "a", None, t).unwrap();
        }
        assert_eq!(rooms.join("one-more", "a", None, t).unwrap_err(), RoomError::TooManyForUser);
        rooms.join("r0", "a", None, t).unwrap(); // a refresh, not a new room
        for i in 0..MAX_MEMBERS_PER_ROOM - 1 {
            rooms.join("r0", &format!("u{i}"), None, t).unwrap();
        }
        assert_eq!(rooms.join("r0", "late", None, t).unwrap_err(), RoomError::RoomFull);
        let mut replica = Rooms::default();
        replica.apply(&RoomEvent::Join { room: "x".into(), user_id: "z".into(), data: None }, t);
        assert_eq!(replica.members("x")[0].user_id, "z");
        replica.apply(&RoomEvent::Leave { room: "x".into(), user_id: "z".into() }, t);
        assert!(replica.is_empty());
    }
}
