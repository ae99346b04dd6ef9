//! What the matchmaker stores and answers: tickets, their status, queue keys, open slots
//! of running matches, and the assignments a matching pass produces.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::MatchmakerError;

/// A ticket's id: its region, `-`, and 20 characters of lowercase base32 (100 random
/// bits), so it cannot be guessed from another one and says which region's queue holds
/// it (`eu-k3j4m5n6p7q2r3s4t5u6`; the API redirects a ticket route to that region).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(String);

impl TicketId {
    /// A fresh random id.
    ///
    /// # Errors
    /// [`MatchmakerError::Random`] when the OS has no randomness.
    pub fn random() -> Result<Self, MatchmakerError> {
        pylon_storage::new_id().map(Self).map_err(|e| MatchmakerError::Random(e.to_string()))
    }

    /// A fresh random id of a ticket queued in `region`: `<region>-<20 base32 chars>`.
    ///
    /// # Errors
    /// [`MatchmakerError::Random`] when the OS has no randomness.
    pub fn random_in(region: &str) -> Result<Self, MatchmakerError> {
        let random = Self::random()?;
        Ok(Self(format!("{region}-{}", random.0)))
    }

    /// The region named by the id (what precedes its last `-`), if it names one.
    #[must_use]
    pub fn region(&self) -> Option<&str> {
        self.0.rsplit_once('-').map(|(region, _)| region).filter(|r| !r.is_empty())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for TicketId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for TicketId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for TicketId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One queue: tickets match only tickets of the same region, game and mode.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueKey {
    /// The region the match will run in.
    pub region: String,
    /// The game.
    pub game: String,
    /// The resolved mode (`None` for a game without modes).
    pub mode: Option<String>,
}

impl fmt::Display for QueueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.game, self.mode.as_deref().unwrap_or(""))
    }
}

/// A request for a match, as the API receives it (after choosing the region).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewTicket {
    /// The game (must be registered in [`super::Rules`]).
    pub game: String,
    /// The mode; `None` picks the game's first mode.
    pub mode: Option<String>,
    /// The region to queue in (see [`super::pick_region`]).
    pub region: String,
    /// The players: the ticket's owner first, then party members. One id: a solo player.
    pub party: Vec<String>,
    /// The party's skill (the caller aggregates a party, e.g. its mean); `None` matches
    /// anyone.
    pub skill: Option<f64>,
    /// Opaque JSON kept with the ticket for the caller; not used for matching.
    pub params: Option<Value>,
}

/// A queued (or closed) ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Its id.
    pub id: TicketId,
    /// The region it queues in.
    pub region: String,
    /// The game.
    pub game: String,
    /// The resolved mode.
    pub mode: Option<String>,
    /// The owner first, then party members.
    pub party: Vec<String>,
    /// The party's skill, if given.
    pub skill: Option<f64>,
    /// The caller's opaque parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Creation time, Unix milliseconds.
    pub created_at: u64,
}

impl Ticket {
    /// The user who created the ticket.
    #[must_use]
    pub fn owner(&self) -> &str {
        self.party.first().map_or("", String::as_str)
    }

    /// The queue this ticket waits in.
    #[must_use]
    pub fn queue_key(&self) -> QueueKey {
        QueueKey { region: self.region.clone(), game: self.game.clone(), mode: self.mode.clone() }
    }
}

/// Where a ticket is in its life. Serialized with a `status` tag:
/// `{"status":"queued","position":1,"waiting_secs":2.5}`,
/// `{"status":"matched","match_key":…,…}` (the [`Assignment`]'s fields),
/// `{"status":"expired"}`, `{"status":"cancelled"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TicketStatus {
    /// Waiting; `position` 1 is the oldest ticket of its queue.
    Queued {
        /// 1-based rank by age in its queue.
        position: u64,
        /// Seconds since creation.
        waiting_secs: f64,
    },
    /// In a match; the caller adds connection details.
    Matched(Arc<Assignment>),
    /// Waited longer than its mode's `ticket_timeout`.
    Expired,
    /// Cancelled by its owner.
    Cancelled,
}

/// A ticket with its status, as [`super::Queue::status`] answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketState {
    /// The ticket.
    pub ticket: Arc<Ticket>,
    /// Its status now.
    pub status: TicketStatus,
}

/// Free player slots of a running match, offered for backfill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSlot {
    /// The running match's id; backfill assignments use it as their `match_key`.
    pub match_id: String,
    /// Its region.
    pub region: String,
    /// Its game.
    pub game: String,
    /// Its mode (`None`: the game's default mode).
    pub mode: Option<String>,
    /// Players it can still take.
    pub free: u32,
    /// The mean skill of its players, if known: a ticket joins only when this lies within
    /// the ticket's window.
    pub average_skill: Option<f64>,
}

/// One match decided by a matching pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// For a new match: a fresh match id `<region>-<12 base32 chars>` (pylon's match id
    /// format, derived from the anchor ticket's id, so the caller may create the match
    /// under it); for backfill: the running match's id.
    pub match_key: String,
    /// The region the match runs in.
    pub region: String,
    /// The game.
    pub game: String,
    /// The mode.
    pub mode: Option<String>,
    /// The matched tickets, oldest first.
    pub tickets: Vec<TicketId>,
    /// Every player of those tickets, in ticket order, parties together.
    pub players: Vec<String>,
    /// Whether this fills a running match.
    pub backfill: bool,
    /// Mean skill of the tickets that have one.
    pub average_skill: Option<f64>,
    /// When the pass decided it, Unix milliseconds.
    pub matched_at: u64,
    /// When each ticket was created (Unix milliseconds), parallel to `tickets`: the
    /// time each waited is `matched_at - created_at[i]`.
    #[serde(default)]
    pub created_at: Vec<u64>,
    /// How many players each ticket brought, parallel to `tickets` (its party is that
    /// many consecutive entries of `players`).
    #[serde(default)]
    pub party_sizes: Vec<u32>,
    /// For a new match: the anchor (oldest) ticket's `params`, which the match is created
    /// with; `None` for backfill and for tickets without params.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl Assignment {
    /// The ticket that brought `user` into this assignment, if any.
    #[must_use]
    pub fn ticket_of(&self, user: &str) -> Option<&TicketId> {
        let mut start = 0_usize;
        for (ticket, size) in self.tickets.iter().zip(&self.party_sizes) {
            let end = start + *size as usize;
            if self.players.get(start..end).is_some_and(|p| p.iter().any(|u| u == user)) {
                return Some(ticket);
            }
            start = end;
        }
        None
    }
}

/// Checks a region, game or mode name: 1 to 64 ASCII letters, digits, `_` or `-`.
///
/// # Errors
/// [`MatchmakerError::InvalidName`].
pub fn check_name(what: &'static str, value: &str) -> Result<(), MatchmakerError> {
    let ok = (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(MatchmakerError::InvalidName { what, value: value.to_owned() }) }
}

/// Checks a user id: 1 to 256 bytes, no control characters.
fn check_user(user: &str) -> Result<(), MatchmakerError> {
    if (1..=256).contains(&user.len()) && !user.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(MatchmakerError::InvalidName { what: "user", value: user.to_owned() })
    }
}

impl NewTicket {
    /// Validates the request against `rules` and builds the ticket.
    ///
    /// # Errors
    /// Unknown game or mode, a bad name, an empty party, a repeated member, a party
    /// larger than the match, a non-finite skill.
    pub fn into_ticket(
        self,
        rules: &super::Rules,
        id: TicketId,
        now_ms: u64,
    ) -> Result<Ticket, MatchmakerError> {
        check_name("region", &self.region)?;
        let (mode, game_rules) = rules.resolve(&self.game, self.mode.as_deref())?;
        if self.party.is_empty() {
            return Err(MatchmakerError::EmptyParty);
        }
        for (i, user) in self.party.iter().enumerate() {
            check_user(user)?;
            if self.party[..i].contains(user) {
                return Err(MatchmakerError::DuplicateMember { user: user.clone() });
            }
        }
        let max = game_rules.max_players;
        if self.party.len() > max as usize {
            return Err(MatchmakerError::PartyTooLarge { size: self.party.len(), max });
        }
        if self.skill.is_some_and(|s| !s.is_finite()) {
            return Err(MatchmakerError::InvalidSkill);
        }
        Ok(Ticket {
            id,
            region: self.region,
            game: self.game,
            mode,
            party: self.party,
            skill: self.skill,
            params: self.params,
            created_at: now_ms,
        })
    }
}

/// The id of a new match anchored by `anchor` in `region`: `<region>-` and 12 lowercase
/// base32 characters of a stable 64-bit FNV-1a hash of the anchor's id.
#[must_use]
pub fn new_match_key(region: &str, anchor: &TicketId) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in anchor.as_str().bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut out = String::with_capacity(region.len() + 13);
    out.push_str(region);
    out.push('-');
    for _ in 0..12 {
        out.push(char::from(ALPHABET[(hash & 31) as usize]));
        hash >>= 5;
    }
    out
}
