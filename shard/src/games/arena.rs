//! `arena`: the reference real-time game. Players move on a 1000 x 1000 field with inputs
//! `{dx, dy}` in [-1, 1] and collect pickups for score; the match ends when someone reaches
//! the score limit or the time limit runs out. Snapshots carry every player's position and
//! score, the pickups, and (spliced by the codec under `"ack"`) the receiver's last
//! processed `client_seq`.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::game::{Game, JoinRejected, MatchClock, Matchmaking, ShardLimits, Subscriber};
use crate::hash::StableHasher;
use crate::rng::ShardRng;

/// Side of the square field, in world units.
pub const FIELD_SIZE: f32 = 1000.0;
/// Distance within which a player collects a pickup.
pub const PICKUP_RADIUS: f32 = 24.0;

/// The arena game type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arena;

/// Match parameters (every field optional in JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArenaParams {
    /// Ticks per second (1 to 128). Default 20.
    pub tick_rate_hz: u32,
    /// Seats; also the subscriber limit. Default 16.
    pub max_players: usize,
    /// Score that ends the match. Default 25.
    pub score_limit: u32,
    /// Match length in seconds of simulated time. Default 300.
    pub time_limit_secs: u32,
    /// Pickups on the field at any time (at most [`MAX_PICKUPS`]). Default 12.
    #[serde(deserialize_with = "pickups_in_range")]
    pub pickups: u32,
    /// Player speed in units per second at full input. Default 250.
    pub speed: f32,
}

impl Default for ArenaParams {
    fn default() -> Self {
        Self {
            tick_rate_hz: 20,
            max_players: 16,
            score_limit: 25,
            time_limit_secs: 300,
            pickups: 12,
            speed: 250.0,
        }
    }
}

/// The most pickups a match may ask for: every tick checks each player against each
/// pickup, and the field is allocated up front, so the create request is refused above it.
pub const MAX_PICKUPS: u32 = 10_000;

fn pickups_in_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n > MAX_PICKUPS {
        return Err(serde::de::Error::custom(format!(
            "pickups must be at most {MAX_PICKUPS} (got {n})"
        )));
    }
    Ok(n)
}

/// One input: a direction, each axis in [-1, 1] (clamped; NaN counts as 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArenaInput {
    /// Horizontal direction.
    pub dx: f32,
    /// Vertical direction.
    pub dy: f32,
}

/// What every subscriber sees.
#[derive(Debug, Clone, Serialize)]
pub struct ArenaSnapshot {
    /// Simulated seconds left.
    pub time_left_secs: f32,
    /// Every player, in a stable order.
    pub players: Vec<PlayerView>,
    /// Pickup positions `[x, y]`.
    pub pickups: Vec<[f32; 2]>,
}

/// One player in a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct PlayerView {
    /// The player's sid.
    pub id: Arc<str>,
    /// Position.
    pub x: f32,
    /// Position.
    pub y: f32,
    /// Pickups collected.
    pub score: u32,
}

/// How the match ended.
#[derive(Debug, Clone, Serialize)]
pub struct ArenaOutcome {
    /// `"score_limit"` or `"time_limit"`.
    pub reason: &'static str,
    /// The top scorer (`None` on a tie or with no players).
    pub winner: Option<Arc<str>>,
    /// Final scores, highest first.
    pub scores: Vec<(Arc<str>, u32)>,
}

/// A player: the arena's only component. Position, intent and score live together because
/// every system reads them together, and because each component type costs every match
/// world about 300 bytes of registry and its own archetype bookkeeping.
#[derive(Debug, Clone, Component)]
pub struct Player {
    /// The player's sid.
    pub sid: Arc<str>,
    /// Position, each axis in [0, FIELD_SIZE].
    pub pos: [f32; 2],
    /// The latest direction asked for, each axis in [-1, 1].
    pub intent: [f32; 2],
    /// Pickups collected.
    pub score: u32,
}

/// All of the arena's match-wide state in one resource. bevy gives every resource its own
/// storage, sized for 64 values of its type: one small resource (the state is boxed, so the
/// resource is one pointer) instead of several inline ones saves kilobytes per match.
#[derive(Resource)]
struct MatchState(Box<State>);

/// What `save` writes: the players (they reattach by sid on reconnect) and the pickups.
#[derive(Serialize, Deserialize)]
struct SavedArena {
    players: Vec<SavedPlayer>,
    pickups: Vec<[f32; 2]>,
    ending: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SavedPlayer {
    sid: String,
    pos: [f32; 2],
    intent: [f32; 2],
    score: u32,
}

impl std::ops::Deref for MatchState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl std::ops::DerefMut for MatchState {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

struct State {
    rules: ArenaParams,
    /// Pickup positions (plain data: pickups have no behaviour of their own).
    pickups: Vec<[f32; 2]>,
    /// Why the match ended, once it has.
    ending: Option<&'static str>,
    /// The snapshot of the current tick, built at the end of the tick's system (systems
    /// keep their query state cached, which a query from `&mut World` rebuilds). Refilled
    /// in place every tick: after `snapshot_into` it holds the buffers of an old snapshot.
    latest: ArenaSnapshot,
    /// `latest` is this tick's and has not been handed out.
    latest_fresh: bool,
}

fn clamp_axis(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) }
}

fn random_pos(rng: &mut ShardRng) -> [f32; 2] {
    [rng.range_f32(0.0, FIELD_SIZE), rng.range_f32(0.0, FIELD_SIZE)]
}

/// The whole tick in one system: moves, pickups, the ending, the snapshot. One system
/// instead of three because bevy's cost per system run (parameter fetch, archetype checks,
/// executor bookkeeping, each touching memory of its own) is paid by every match on every
/// tick; the order of the work is that of the three systems it replaced.
fn tick(
    clock: Res<MatchClock>,
    mut rng: ResMut<ShardRng>,
    mut state: ResMut<MatchState>,
    mut players: Query<&mut Player>,
) {
    let state: &mut State = &mut state;
    let step = state.rules.speed * clock.dt_secs;
    for mut p in &mut players {
        let [dx, dy] = p.intent;
        p.pos = [
            (p.pos[0] + dx * step).clamp(0.0, FIELD_SIZE),
            (p.pos[1] + dy * step).clamp(0.0, FIELD_SIZE),
        ];
    }
    collect_pickups(&mut rng, &mut state.pickups, &mut players);
    let elapsed = f64::from(clock.dt_secs) * clock.tick as f64;
    if state.ending.is_none() {
        if players.iter().any(|p| p.score >= state.rules.score_limit) {
            state.ending = Some("score_limit");
        } else if elapsed >= f64::from(state.rules.time_limit_secs) {
            state.ending = Some("time_limit");
        }
    }
    let left = time_left(&state.rules, elapsed);
    fill_snapshot(&mut state.latest, left, &state.pickups, players.iter());
    state.latest_fresh = true;
}

fn collect_pickups(rng: &mut ShardRng, pickups: &mut [[f32; 2]], players: &mut Query<&mut Player>) {
    const R2: f32 = PICKUP_RADIUS * PICKUP_RADIUS;
    for mut player in players.iter_mut() {
        for pickup in pickups.iter_mut() {
            let (dx, dy) = (pickup[0] - player.pos[0], pickup[1] - player.pos[1]);
            if dx * dx + dy * dy <= R2 {
                player.score += 1;
                *pickup = random_pos(rng);
            }
        }
    }
}

fn time_left(rules: &ArenaParams, elapsed_secs: f64) -> f32 {
    (f64::from(rules.time_limit_secs) - elapsed_secs).max(0.0) as f32
}

/// Writes a snapshot into `into`, reusing its vectors; a player view keeps its `id` when
/// the sid is the same one (a pointer comparison: no reference count is touched).
fn fill_snapshot<'a>(
    into: &mut ArenaSnapshot,
    time_left_secs: f32,
    pickups: &[[f32; 2]],
    players: impl Iterator<Item = &'a Player>,
) {
    into.time_left_secs = time_left_secs;
    let mut n = 0;
    for p in players {
        match into.players.get_mut(n) {
            Some(view) => {
                if !Arc::ptr_eq(&view.id, &p.sid) {
                    view.id = p.sid.clone();
                }
                (view.x, view.y, view.score) = (p.pos[0], p.pos[1], p.score);
            }
            None => into.players.push(PlayerView {
                id: p.sid.clone(),
                x: p.pos[0],
                y: p.pos[1],
                score: p.score,
            }),
        }
        n += 1;
    }
    into.players.truncate(n);
    into.pickups.clear();
    into.pickups.extend_from_slice(pickups);
}

fn empty_snapshot() -> ArenaSnapshot {
    ArenaSnapshot { time_left_secs: 0.0, players: Vec::new(), pickups: Vec::new() }
}

/// Builds the snapshot from the world directly: only before the first tick, or when it
/// is asked for twice in one tick.
fn snapshot_from_world(world: &mut World, into: &mut ArenaSnapshot) {
    let clock = *world.resource::<MatchClock>();
    let elapsed = f64::from(clock.dt_secs) * clock.tick as f64;
    let mut players = world.query::<&Player>();
    let state = world.resource::<MatchState>();
    let left = time_left(&state.rules, elapsed);
    fill_snapshot(into, left, &state.pickups, players.iter(world));
}

impl Game for Arena {
    type Params = ArenaParams;
    type Input = ArenaInput;
    type Snapshot = ArenaSnapshot;
    type Outcome = ArenaOutcome;

    const NAME: &'static str = "arena";
    const ACK_KEY: Option<&'static str> = Some("ack");
    const LISTED: bool = true;
    /// Eight players a match; a running match takes new players into free seats.
    const MATCHMAKING: Option<Matchmaking> =
        Some(Matchmaking { min_players: 8, max_players: 8, modes: &[], backfill: true });

    fn tick_rate_hz(params: &ArenaParams) -> u32 {
        params.tick_rate_hz.clamp(1, 128)
    }

    fn limits(params: &ArenaParams) -> ShardLimits {
        ShardLimits { max_subscribers: params.max_players.max(1), ..ShardLimits::default() }
    }

    fn setup(params: &ArenaParams, world: &mut World, schedule: &mut Schedule) {
        let mut rng = world.resource_mut::<ShardRng>();
        let pickups = (0..params.pickups).map(|_| random_pos(&mut rng)).collect();
        let state = State {
            rules: params.clone(),
            pickups,
            ending: None,
            latest: empty_snapshot(),
            latest_fresh: false,
        };
        world.insert_resource(MatchState(Box::new(state)));
        schedule.add_systems(tick);
    }

    fn handle_join(world: &mut World, who: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
        // A player restored from a saved match reconnecting: give it back its entity.
        let restored = world
            .query::<(Entity, &Player)>()
            .iter(world)
            .find(|(_, p)| p.sid == who.sid)
            .map(|(e, _)| e);
        if let Some(entity) = restored {
            return Ok(Some(entity));
        }
        let pos = random_pos(&mut world.resource_mut::<ShardRng>());
        let player = Player { sid: who.sid.clone(), pos, intent: [0.0, 0.0], score: 0 };
        Ok(Some(world.spawn(player).id()))
    }

    fn apply_input(world: &mut World, who: &Subscriber, input: ArenaInput) {
        let Some(entity) = who.entity else { return };
        if let Some(mut player) = world.get_mut::<Player>(entity) {
            player.intent = [clamp_axis(input.dx), clamp_axis(input.dy)];
        }
    }

    fn snapshot(world: &mut World) -> ArenaSnapshot {
        let mut snapshot = empty_snapshot();
        Self::snapshot_into(world, &mut snapshot);
        snapshot
    }

    fn snapshot_into(world: &mut World, into: &mut ArenaSnapshot) {
        let mut state = world.resource_mut::<MatchState>();
        if std::mem::take(&mut state.latest_fresh) {
            // The tick's snapshot goes out; the buffers of `into` are refilled next tick.
            std::mem::swap(into, &mut state.latest);
        } else {
            snapshot_from_world(world, into);
        }
    }

    fn outcome(world: &mut World) -> Option<ArenaOutcome> {
        let reason = world.resource::<MatchState>().ending?;
        let mut scores: Vec<(Arc<str>, u32)> =
            world.query::<&Player>().iter(world).map(|p| (p.sid.clone(), p.score)).collect();
        scores.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let winner = match scores.as_slice() {
            [first, second, ..] if first.1 == second.1 => None,
            [first, ..] => Some(first.0.clone()),
            [] => None,
        };
        Some(ArenaOutcome { reason, winner, scores })
    }

    fn save(world: &mut World) -> Option<serde_json::Value> {
        let players: Vec<SavedPlayer> = world
            .query::<&Player>()
            .iter(world)
            .map(|p| SavedPlayer {
                sid: p.sid.to_string(),
                pos: p.pos,
                intent: p.intent,
                score: p.score,
            })
            .collect();
        let state = world.resource::<MatchState>();
        let saved = SavedArena {
            players,
            pickups: state.pickups.clone(),
            ending: state.ending.map(str::to_owned),
        };
        serde_json::to_value(saved).ok()
    }

    fn restore(world: &mut World, state: &serde_json::Value) -> Result<(), String> {
        let saved: SavedArena = serde_json::from_value(state.clone()).map_err(|e| e.to_string())?;
        {
            let mut match_state = world.resource_mut::<MatchState>();
            match_state.pickups = saved.pickups;
            match_state.ending = match saved.ending.as_deref() {
                None => None,
                Some("score_limit") => Some("score_limit"),
                Some("time_limit") => Some("time_limit"),
                Some(other) => return Err(format!("unknown ending {other:?}")),
            };
        }
        for p in saved.players {
            world.spawn(Player {
                sid: Arc::from(p.sid),
                pos: p.pos,
                intent: p.intent,
                score: p.score,
            });
        }
        Ok(())
    }

    fn hash_state(world: &mut World, hasher: &mut StableHasher) {
        use std::hash::Hasher;
        for (entity, p) in world.query::<(Entity, &Player)>().iter(world) {
            hasher.write_u64(entity.to_bits());
            for v in p.pos.iter().chain(&p.intent) {
                hasher.write_f32_bits(*v);
            }
            hasher.write_u32(p.score);
        }
        for pickup in &world.resource::<MatchState>().pickups {
            hasher.write_f32_bits(pickup[0]);
            hasher.write_f32_bits(pickup[1]);
        }
    }
}
