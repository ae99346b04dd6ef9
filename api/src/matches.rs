//! The running matches of this process by match id: the map from the public id in URLs to
//! the tick pool's [`ShardHandle`]. Finished and stopped matches stay visible (as
//! `running: false`) for a grace period, then a sweep forgets them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use pylon_shard::{GameRegistry, MatchConfig, ShardError};
use pylon_tick::{SendError, ShardHandle, ShardState, TickPool};
use serde::Serialize;

/// One match as the API knows it.
#[derive(Clone)]
pub struct MatchEntry {
    /// The public id (`<region>-<random>`).
    pub id: Arc<str>,
    /// The tick pool's handle.
    pub handle: ShardHandle,
    /// Whether its game lists its matches to every session (`Game::LISTED`).
    pub listed: bool,
    /// Subscribers it seats (`Game::limits(params).max_subscribers`).
    pub capacity: u32,
    /// The parameters it was created with (join-or-create matches on them).
    pub params: Arc<serde_json::Value>,
    /// When it was first seen not running (for the sweep).
    ended_at: Option<Instant>,
}

/// A listed match as any session sees it: what joining needs, nothing internal.
#[derive(Debug, Serialize)]
pub struct PublicInfo {
    /// Match id.
    pub id: String,
    /// Game type.
    pub game: &'static str,
    /// Connected subscribers.
    pub subscribers: u32,
    /// Subscribers it seats.
    pub capacity: u32,
    /// Tick rate (0 = event-driven).
    pub tick_rate_hz: u32,
    /// Whether it is ticking.
    pub running: bool,
}

/// The info object of `GET /api/shards/:id` (pylon's keys first, then ours).
#[derive(Debug, Serialize)]
pub struct MatchInfo {
    /// Match id.
    pub id: String,
    /// Whether it is ticking.
    pub running: bool,
    /// Last completed tick.
    pub tick: u64,
    /// Connected subscribers.
    pub subscribers: u32,
    /// Inputs waiting for the next tick.
    pub input_queue: u32,
    /// Game type.
    pub game: &'static str,
    /// Tick rate (0 = event-driven).
    pub tick_rate_hz: u32,
    /// `starting`, `running`, `finished`, `stopped` or `panicked`.
    pub state: &'static str,
}

impl MatchEntry {
    /// What any session may see of it.
    #[must_use]
    pub fn public_info(&self) -> PublicInfo {
        let status = self.handle.status();
        PublicInfo {
            id: self.id.to_string(),
            game: status.game(),
            subscribers: status.subscribers(),
            capacity: self.capacity,
            tick_rate_hz: status.tick_rate_hz(),
            running: status.is_running(),
        }
    }

    /// Running with a free seat.
    #[must_use]
    pub fn joinable(&self) -> bool {
        let status = self.handle.status();
        status.is_running() && status.subscribers() < self.capacity
    }

    /// Its info object.
    #[must_use]
    pub fn info(&self) -> MatchInfo {
        let status = self.handle.status();
        MatchInfo {
            id: self.id.to_string(),
            running: status.is_running(),
            tick: status.tick(),
            subscribers: status.subscribers(),
            input_queue: status.queued_inputs(),
            game: status.game(),
            tick_rate_hz: status.tick_rate_hz(),
            state: state_name(status.state()),
        }
    }
}

/// Lowercase name of a shard state.
#[must_use]
pub fn state_name(state: ShardState) -> &'static str {
    match state {
        ShardState::Starting => "starting",
        ShardState::Running => "running",
        ShardState::Finished => "finished",
        ShardState::Stopped => "stopped",
        ShardState::Panicked => "panicked",
        ShardState::Idle => "idle",
        _ => "unknown",
    }
}

/// Why a match could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Unknown game or bad parameters.
    #[error(transparent)]
    Game(#[from] ShardError),
    /// The tick threads refused (overloaded or shut down).
    #[error(transparent)]
    Send(#[from] SendError),
    /// A match with that id exists.
    #[error("a match with id {0:?} already exists")]
    Exists(String),
    /// The id has characters outside `[A-Za-z0-9_-]` or is too long.
    #[error("match ids are 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")]
    BadId,
    /// No randomness for the id or seed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// The creator already has this many matches running.
    #[error("you have {0} matches running, the most allowed at once")]
    TooManyForOwner(usize),
    /// The process already runs this many matches.
    #[error("the server runs {0} matches, the most it allows at once")]
    TooMany(usize),
}

/// Caps a creation is checked against.
#[derive(Debug, Clone)]
pub struct Quota {
    /// Who creates it (`None`: not counted per creator, e.g. the admin token).
    pub owner: Option<Arc<str>>,
    /// Running matches one creator may have.
    pub per_owner: usize,
    /// Running matches in the process.
    pub total: usize,
}

/// Running matches counted for the caps: a creation reserves a slot before the (possibly
/// slow) game construction and turns it into a handle after, so concurrent creations can
/// never overshoot a cap.
#[derive(Default)]
struct Quotas {
    /// An upper bound of running matches plus reservations: every creation adds one, and
    /// only a recount (when the cap is reached) brings it down to the exact number. So the
    /// common creation is O(1) and only one at the cap scans the table.
    live: usize,
    /// Creations between reservation and handle.
    reserved: usize,
    /// Each creator's matches (pruned of ended ones when checked) and reservations.
    owners: HashMap<Arc<str>, (Vec<ShardHandle>, usize)>,
}

/// How a match is listed (from its game and parameters).
struct Listing {
    listed: bool,
    capacity: u32,
    params: Arc<serde_json::Value>,
}

impl std::fmt::Debug for Matches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matches").field("prefix", &self.region).finish_non_exhaustive()
    }
}

/// The match table.
pub struct Matches {
    pool: TickPool,
    games: GameRegistry,
    region: String,
    by_id: RwLock<HashMap<Arc<str>, MatchEntry>>,
    by_shard: RwLock<HashMap<pylon_tick::ShardId, Arc<str>>>,
    quotas: Mutex<Quotas>,
}

impl Matches {
    /// A table over `pool` creating games from `games`; ids start with `region`.
    #[must_use]
    pub fn new(pool: TickPool, games: GameRegistry, region: String) -> Self {
        Self {
            pool,
            games,
            region,
            by_id: RwLock::new(HashMap::new()),
            by_shard: RwLock::new(HashMap::new()),
            quotas: Mutex::new(Quotas::default()),
        }
    }

    /// Like [`Matches::create`], within `quota`: at most `quota.total` running in the
    /// process and `quota.per_owner` running for `quota.owner`.
    ///
    /// # Errors
    /// [`CreateError::TooMany`], [`CreateError::TooManyForOwner`], or what
    /// [`Matches::create`] returns.
    pub fn create_within(
        &self,
        quota: &Quota,
        game: &str,
        params: serde_json::Value,
        id: Option<&str>,
        seed: Option<u64>,
        record_replay: bool,
    ) -> Result<MatchEntry, CreateError> {
        self.reserve(quota)?;
        let created = self.create(game, params, id, seed, record_replay);
        let mut q = self.quotas();
        q.reserved -= 1;
        if let Some(owner) = &quota.owner
            && let Some((handles, reserved)) = q.owners.get_mut(owner)
        {
            *reserved -= 1;
            if let Ok(entry) = &created {
                handles.push(entry.handle.clone());
            }
        }
        if created.is_err() {
            q.live = q.live.saturating_sub(1);
        }
        created
    }

    fn reserve(&self, quota: &Quota) -> Result<(), CreateError> {
        let mut q = self.quotas();
        if q.live >= quota.total {
            q.live = self.count_running() + q.reserved;
            if q.live >= quota.total {
                return Err(CreateError::TooMany(quota.total));
            }
        }
        if let Some(owner) = &quota.owner {
            let (handles, reserved) = q.owners.entry(Arc::clone(owner)).or_default();
            handles.retain(|h| h.status().is_running());
            if handles.len() + *reserved >= quota.per_owner {
                return Err(CreateError::TooManyForOwner(quota.per_owner));
            }
            *reserved += 1;
        }
        q.live += 1;
        q.reserved += 1;
        Ok(())
    }

    /// Matches starting or running now (a scan of the table).
    #[must_use]
    pub fn count_running(&self) -> usize {
        self.read().values().filter(|e| e.handle.status().is_running()).count()
    }

    fn quotas(&self) -> std::sync::MutexGuard<'_, Quotas> {
        // Each critical section leaves the counts consistent; poisoning changes nothing.
        self.quotas.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tick pool.
    #[must_use]
    pub fn pool(&self) -> &TickPool {
        &self.pool
    }

    /// The prefix of this process's match ids (`eu`, `eu_2`).
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.region
    }

    /// The registered games.
    #[must_use]
    pub fn games(&self) -> &GameRegistry {
        &self.games
    }

    /// The registered game names.
    pub fn game_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.games.names()
    }

    /// Creates a match of `game` with `params` (JSON; null = defaults), optionally with a
    /// chosen id and seed.
    ///
    /// # Errors
    /// [`CreateError`].
    pub fn create(
        &self,
        game: &str,
        params: serde_json::Value,
        id: Option<&str>,
        seed: Option<u64>,
        record_replay: bool,
    ) -> Result<MatchEntry, CreateError> {
        let id: Arc<str> = match id {
            Some(id) if valid_id(id) => Arc::from(id),
            Some(_) => return Err(CreateError::BadId),
            None => Arc::from(format!("{}-{}", self.region, random_suffix()?)),
        };
        if self.read().contains_key(&id) {
            return Err(CreateError::Exists(id.to_string()));
        }
        let seed = match seed {
            Some(seed) => seed,
            None => random_u64()?,
        };
        let info = self.games.info(game)?;
        let capacity = u32::try_from((info.capacity)(&params)?).unwrap_or(u32::MAX);
        let params = Arc::new(params);
        let config = MatchConfig { seed, params: (*params).clone(), record_replay };
        let shard = self.games.create(game, &config)?;
        self.adopt(id, shard, Listing { listed: info.listed, capacity, params })
    }

    /// Resumes a match saved by a previous run of the process, under its old id.
    ///
    /// # Errors
    /// [`CreateError`] (unknown game, a state that does not restore, tick threads full).
    pub fn restore(
        &self,
        id: &str,
        saved: &pylon_shard::SavedMatch,
    ) -> Result<MatchEntry, CreateError> {
        if !valid_id(id) {
            return Err(CreateError::BadId);
        }
        let info = self.games.info(&saved.game)?;
        let capacity = u32::try_from((info.capacity)(&saved.params)?).unwrap_or(u32::MAX);
        let listing =
            Listing { listed: info.listed, capacity, params: Arc::new(saved.params.clone()) };
        let shard = self.games.restore(saved)?;
        self.adopt(Arc::from(id), shard, listing)
    }

    fn adopt(
        &self,
        id: Arc<str>,
        shard: Box<dyn pylon_shard::DynShard>,
        listing: Listing,
    ) -> Result<MatchEntry, CreateError> {
        if self.read().contains_key(&id) {
            return Err(CreateError::Exists(id.to_string()));
        }
        let handle = self.pool.spawn(shard)?;
        let Listing { listed, capacity, params } = listing;
        let entry =
            MatchEntry { id: Arc::clone(&id), handle, listed, capacity, params, ended_at: None };
        let mut map = self.write();
        if map.contains_key(&id) {
            // Lost a race for a caller-chosen id: stop the one we just made.
            let _ = entry.handle.stop(pylon_shard::StopReason::Stopped);
            return Err(CreateError::Exists(id.to_string()));
        }
        map.insert(Arc::clone(&id), entry.clone());
        drop(map);
        self.by_shard
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(entry.handle.id(), id);
        Ok(entry)
    }

    /// The match id of tick-pool shard `shard`.
    #[must_use]
    pub fn id_of(&self, shard: pylon_tick::ShardId) -> Option<Arc<str>> {
        self.by_shard.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&shard).cloned()
    }

    /// The match `id`.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<MatchEntry> {
        self.read().get(id).cloned()
    }

    /// Listed matches of `game` (any game when `None`), sorted by id; only those with a
    /// free seat when `joinable`.
    #[must_use]
    pub fn listed(&self, game: Option<&str>, joinable: bool) -> Vec<MatchEntry> {
        let mut found: Vec<MatchEntry> = self
            .read()
            .values()
            .filter(|e| e.listed && e.handle.status().is_running())
            .filter(|e| game.is_none_or(|g| e.handle.status().game() == g))
            .filter(|e| !joinable || e.joinable())
            .cloned()
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    /// Whether game `name` lists its matches.
    ///
    /// # Errors
    /// [`ShardError::UnknownGame`].
    pub fn game_listed(&self, name: &str) -> Result<bool, ShardError> {
        Ok(self.games.info(name)?.listed)
    }

    /// Every match, sorted by id.
    #[must_use]
    pub fn list(&self) -> Vec<MatchEntry> {
        let mut all: Vec<MatchEntry> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Forgets matches that stopped running more than `grace` ago; how many.
    pub fn sweep(&self, now: Instant, grace: Duration) -> usize {
        let mut map = self.write();
        let before = map.len();
        map.retain(|_, entry| {
            let status = entry.handle.status();
            if status.is_running() || status.state() == ShardState::Starting {
                return true;
            }
            let ended = *entry.ended_at.get_or_insert_with(|| {
                let state = state_name(status.state());
                if status.state() == ShardState::Idle {
                    tracing::info!(shard = %entry.id, game = status.game(), "match stopped: idle (no subscriber and no input)");
                } else {
                    tracing::info!(shard = %entry.id, game = status.game(), state, "match ended");
                }
                now
            });
            now.duration_since(ended) < grace
        });
        let removed = before - map.len();
        drop(map);
        self.quotas().owners.retain(|_, (handles, reserved)| {
            handles.retain(|h| h.status().is_running());
            !handles.is_empty() || *reserved > 0
        });
        if removed > 0 {
            let map = self.read();
            let live: std::collections::HashSet<pylon_tick::ShardId> =
                map.values().map(|e| e.handle.id()).collect();
            drop(map);
            self.by_shard
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|k, _| live.contains(k));
        }
        removed
    }

    /// Number of matches per game among those running.
    #[must_use]
    pub fn running_by_game(&self) -> Vec<(&'static str, u64)> {
        let mut counts: Vec<(&'static str, u64)> = self.games.names().map(|n| (n, 0)).collect();
        for entry in self.read().values() {
            let status = entry.handle.status();
            if status.is_running()
                && let Some(slot) = counts.iter_mut().find(|(n, _)| *n == status.game())
            {
                slot.1 += 1;
            }
        }
        counts
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, MatchEntry>> {
        // Poisoning cannot leave the map half-updated: every write is one insert/retain.
        self.by_id.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, MatchEntry>> {
        self.by_id.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn random_u64() -> Result<u64, CreateError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| CreateError::Random(e.to_string()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// 12 characters of lowercase base32 (60 random bits).
fn random_suffix() -> Result<String, CreateError> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut n = random_u64()?;
    let mut out = String::with_capacity(12);
    for _ in 0..12 {
        out.push(char::from(ALPHABET[(n & 31) as usize]));
        n >>= 5;
    }
    Ok(out)
}
