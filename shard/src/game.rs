//! The `Game` trait: what a game author implements, and the small types it sees.
//!
//! A game is a type with associated functions only: all match state lives in the match
//! `World` (components and resources), so a shard can be stepped, hashed and replayed
//! without knowing anything about the game beyond this trait.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::hash::StableHasher;

/// Identifies one subscriber of one shard. Assigned by the shard on join, never reused
/// within a shard (a resumed subscriber gets a fresh key, so stale commands miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriberKey(pub u32);

/// Who is asking to subscribe: the authenticated caller, as the I/O layer established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The authenticated user id (for the admin token, `"admin"`).
    pub user_id: Arc<str>,
    /// Whether the caller holds the admin token.
    pub is_admin: bool,
}

/// A subscriber as games see it in `handle_join`, inputs and `snapshot_for`.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The shard-local key of this subscription.
    pub key: SubscriberKey,
    /// The subscriber id (`sid`), by default the user id.
    pub sid: Arc<str>,
    /// Whether the subscriber is an operator.
    pub is_admin: bool,
    /// The entity the game attached to this subscriber in `handle_join`, if any.
    pub entity: Option<Entity>,
}

/// Why a join was refused. Sent to the subscriber; the I/O layer maps it to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JoinRejected {
    /// The subscribe rule refused this `sid` for this caller.
    Forbidden,
    /// The shard has reached its subscriber limit, or the game has no free seat.
    Full,
    /// The match has finished or is stopping.
    Finished,
}

/// Per-shard limits. Every queue in a shard is bounded by one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLimits {
    /// Maximum subscribers (players and spectators). Default 64.
    pub max_subscribers: usize,
    /// Maximum inputs queued per subscriber between two ticks; extra inputs are dropped
    /// and counted. Default 16 (plenty at 60 inputs/s into a 20 Hz match).
    pub max_queued_inputs: u16,
}

impl Default for ShardLimits {
    fn default() -> Self {
        Self { max_subscribers: 64, max_queued_inputs: 16 }
    }
}

/// How a game is matchmade (`Game::MATCHMAKING`): match sizes, modes and backfill. The
/// server builds the matchmaker's rules from it (skill windows and timeouts get the
/// matchmaker's documented defaults, docs/MATCHMAKER.md); a game without it cannot be
/// queued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matchmaking {
    /// The smallest match that may form, after the fill timeout (`1..=max_players`).
    pub min_players: u32,
    /// The match size: a match forms as soon as this many players are found.
    pub max_players: u32,
    /// The modes a ticket may ask for, the first the default; empty: no modes.
    pub modes: &'static [&'static str],
    /// Whether running matches made by the matchmaker take new players into free seats.
    pub backfill: bool,
}

impl Matchmaking {
    /// Matches of exactly `players`, no modes, no backfill.
    #[must_use]
    pub const fn fixed(players: u32) -> Self {
        Self { min_players: players, max_players: players, modes: &[], backfill: false }
    }
}

/// The current tick and the fixed time step, inserted by the shard into every match world.
/// Systems read it instead of any clock: simulated time is `tick * dt_secs`.
#[derive(Debug, Clone, Copy, Resource)]
pub struct MatchClock {
    /// The tick being stepped (the first step is tick 1).
    pub tick: u64,
    /// Seconds per tick (`1 / tick_rate_hz`), or 0 for event-driven games.
    pub dt_secs: f32,
}

/// A game: its types, its systems and its rules. See the crate docs for a walk-through.
pub trait Game: Sized + Send + 'static {
    /// Match parameters, from the create request (JSON) or the replay log.
    type Params: Serialize + DeserializeOwned + Default + Clone + Send + 'static;
    /// One input of one subscriber, decoded from the wire.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// What subscribers receive each tick.
    type Snapshot: Serialize + Send + Sync + 'static;
    /// The result of a finished match.
    type Outcome: Serialize + Send + Sync + 'static;

    /// The game type's registered name (`"arena"`).
    const NAME: &'static str;

    /// If set, the snapshot JSON object of every frame carries the receiving subscriber's
    /// last processed `client_seq` under this key (the ack client prediction needs).
    const ACK_KEY: Option<&'static str> = None;

    /// Whether this game's matches are listed to every session (`GET /api/shards?game=`)
    /// and can be joined with `POST /api/shards/join-or-create`. Default: unlisted (found
    /// through the matchmaker or an id passed around).
    const LISTED: bool = false;

    /// How players are matched into this game's matches by the matchmaker
    /// (`POST /api/matchmaker/tickets`). Default: not matchmade (a ticket for it is 400
    /// `UNKNOWN_GAME`).
    const MATCHMAKING: Option<Matchmaking> = None;

    /// Ticks per second (1 to 128), or 0 for an event-driven game that steps only when an
    /// input, a join or a leave arrives.
    fn tick_rate_hz(params: &Self::Params) -> u32;

    /// Limits for a match with these parameters.
    fn limits(_params: &Self::Params) -> ShardLimits {
        ShardLimits::default()
    }

    /// Registers components, resources and systems into a fresh match world. The shard has
    /// already inserted [`MatchClock`] and a seeded [`crate::rng::ShardRng`].
    fn setup(params: &Self::Params, world: &mut World, schedule: &mut Schedule);

    /// The subscribe rule. Default: `sid` must equal the user id, unless the caller is admin.
    fn may_subscribe(auth: &Auth, sid: &str) -> bool {
        auth.is_admin || *auth.user_id == *sid
    }

    /// A subscriber joined (between ticks). Return the entity that represents it, if any.
    ///
    /// # Errors
    /// [`JoinRejected`] when the game has no room for this subscriber.
    fn handle_join(world: &mut World, who: &Subscriber) -> Result<Option<Entity>, JoinRejected>;

    /// A subscriber left. Default: despawn its entity.
    fn handle_leave(world: &mut World, who: &Subscriber) {
        if let Some(entity) = who.entity {
            world.despawn(entity);
        }
    }

    /// Whether this input may be applied now (checked at the start of the tick that applies
    /// it). Default: every subscriber may send any input.
    fn authorize_input(_world: &World, _who: &Subscriber, _input: &Self::Input) -> bool {
        true
    }

    /// Applies one input, in arrival order, at the start of a tick, before the schedule runs.
    fn apply_input(world: &mut World, who: &Subscriber, input: Self::Input);

    /// The snapshot shared by every subscriber that has no view of its own.
    fn snapshot(world: &mut World) -> Self::Snapshot;

    /// Builds the shared snapshot into `into`, a snapshot of an earlier tick that nobody
    /// holds any more, so that its allocations are reused: a game whose snapshot owns
    /// vectors overrides this to refill them in place, and a warm tick then allocates
    /// nothing. It must produce what [`Game::snapshot`] would. Default: `*into =
    /// Self::snapshot(world)`.
    fn snapshot_into(world: &mut World, into: &mut Self::Snapshot) {
        *into = Self::snapshot(world);
    }

    /// A subscriber's own view (area of interest, hidden information). `None`, the default,
    /// means the shared snapshot, which is then built and encoded once per tick.
    fn snapshot_for(_world: &mut World, _who: &Subscriber) -> Option<Self::Snapshot> {
        None
    }

    /// `Some(outcome)` once the match is finished. Checked after every step.
    fn outcome(world: &mut World) -> Option<Self::Outcome>;

    /// The game's state as JSON, for persisting a running match so it can resume after a
    /// restart. `None`, the default, means this game is not persisted.
    fn save(_world: &mut World) -> Option<serde_json::Value> {
        None
    }

    /// Restores a state written by [`Game::save`] into a world fresh from `setup`. The
    /// shard has already restored the tick and the RNG. Subscribers are not restored: when
    /// one reconnects, `handle_join` sees it again and should reattach what it owned.
    ///
    /// # Errors
    /// A short reason when the state does not fit.
    fn restore(_world: &mut World, _state: &serde_json::Value) -> Result<(), String> {
        Err(format!("{} does not support restoring", Self::NAME))
    }

    /// Feeds the match state into `hasher` for replay checks. Default: the shared snapshot's
    /// JSON text, which covers everything subscribers can see.
    fn hash_state(world: &mut World, hasher: &mut StableHasher) {
        use std::hash::Hasher;
        let snapshot = Self::snapshot(world);
        if let Ok(bytes) = serde_json::to_vec(&snapshot) {
            hasher.write(&bytes);
        }
    }
}
