//! `arena`: the reference real-time game. Players move on a 1000 x 1000 field with inputs
//! `{dx, dy}` in [-1, 1] and collect pickups for score; the match ends when someone reaches
//! the score limit or the time limit runs out. Snapshots carry every player's position and
//! score, the pickups, and (spliced by the codec under `"ack"`) the receiver's last
//! processed `client_seq`.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::game::{Game, JoinRejected, MatchClock, ShardLimits, Subscriber};
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
    /// Pickups on the field at any time. Default 12.
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

/// A player entity's identity.
#[derive(Debug, Clone, Component)]
pub struct Player {
    /// The player's sid.
    pub sid: Arc<str>,
}

/// A position on the field.
#[derive(Debug, Clone, Copy, Component, PartialEq)]
pub struct Pos {
    /// x in [0, FIELD_SIZE].
    pub x: f32,
    /// y in [0, FIELD_SIZE].
    pub y: f32,
}

/// The latest direction a player asked for.
#[derive(Debug, Clone, Copy, Default, Component)]
pub struct Intent {
    /// Horizontal direction in [-1, 1].
    pub dx: f32,
    /// Vertical direction in [-1, 1].
    pub dy: f32,
}

/// Pickups collected.
#[derive(Debug, Clone, Copy, Default, Component)]
pub struct Score(pub u32);

/// Marks a pickup entity.
#[derive(Debug, Clone, Copy, Component)]
pub struct Pickup;

/// All of the arena's match-wide state in one resource. bevy gives every resource its own
/// storage, sized for 64 values of its type: one small resource (the state is boxed, so the
/// resource is one pointer) instead of three inline ones saves about 8 KiB per match.
#[derive(Resource)]
struct MatchState(Box<State>);

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
    /// Why the match ended, once it has.
    ending: Option<&'static str>,
    /// The snapshot of the current tick, built by the last system of the schedule
    /// (systems keep their query state cached, which a query from `&mut World` rebuilds).
    latest: Option<ArenaSnapshot>,
}

fn clamp_axis(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) }
}

fn random_pos(rng: &mut ShardRng) -> Pos {
    Pos { x: rng.range_f32(0.0, FIELD_SIZE), y: rng.range_f32(0.0, FIELD_SIZE) }
}

fn move_players(
    clock: Res<MatchClock>,
    state: Res<MatchState>,
    mut players: Query<(&mut Pos, &Intent), With<Player>>,
) {
    let step = state.rules.speed * clock.dt_secs;
    for (mut pos, intent) in &mut players {
        pos.x = (pos.x + intent.dx * step).clamp(0.0, FIELD_SIZE);
        pos.y = (pos.y + intent.dy * step).clamp(0.0, FIELD_SIZE);
    }
}

fn collect_pickups(
    mut rng: ResMut<ShardRng>,
    mut players: Query<(&Pos, &mut Score), With<Player>>,
    mut pickups: Query<&mut Pos, (With<Pickup>, Without<Player>)>,
) {
    const R2: f32 = PICKUP_RADIUS * PICKUP_RADIUS;
    for (player, mut score) in &mut players {
        for mut pickup in &mut pickups {
            let (dx, dy) = (pickup.x - player.x, pickup.y - player.y);
            if dx * dx + dy * dy <= R2 {
                score.0 += 1;
                *pickup = random_pos(&mut rng);
            }
        }
    }
}

fn check_end(clock: Res<MatchClock>, scores: Query<&Score>, mut state: ResMut<MatchState>) {
    if state.ending.is_some() {
        return;
    }
    if scores.iter().any(|s| s.0 >= state.rules.score_limit) {
        state.ending = Some("score_limit");
    } else if clock.tick as f64 * f64::from(clock.dt_secs) >= f64::from(state.rules.time_limit_secs)
    {
        state.ending = Some("time_limit");
    }
}

fn build_snapshot(
    clock: Res<MatchClock>,
    players: Query<(&Player, &Pos, &Score)>,
    pickups: Query<&Pos, With<Pickup>>,
    mut state: ResMut<MatchState>,
) {
    let elapsed = clock.tick as f32 * clock.dt_secs;
    let time_left_secs = (state.rules.time_limit_secs as f32 - elapsed).max(0.0);
    state.latest = Some(ArenaSnapshot {
        time_left_secs,
        players: players
            .iter()
            .map(|(p, pos, score)| PlayerView {
                id: p.sid.clone(),
                x: pos.x,
                y: pos.y,
                score: score.0,
            })
            .collect(),
        pickups: pickups.iter().map(|p| [p.x, p.y]).collect(),
    });
}

impl Game for Arena {
    type Params = ArenaParams;
    type Input = ArenaInput;
    type Snapshot = ArenaSnapshot;
    type Outcome = ArenaOutcome;

    const NAME: &'static str = "arena";
    const ACK_KEY: Option<&'static str> = Some("ack");

    fn tick_rate_hz(params: &ArenaParams) -> u32 {
        params.tick_rate_hz.clamp(1, 128)
    }

    fn limits(params: &ArenaParams) -> ShardLimits {
        ShardLimits { max_subscribers: params.max_players.max(1), ..ShardLimits::default() }
    }

    fn setup(params: &ArenaParams, world: &mut World, schedule: &mut Schedule) {
        for _ in 0..params.pickups {
            let pos = random_pos(&mut world.resource_mut::<ShardRng>());
            world.spawn((Pickup, pos));
        }
        world.insert_resource(MatchState(Box::new(State {
            rules: params.clone(),
            ending: None,
            latest: None,
        })));
        schedule.add_systems((move_players, collect_pickups, check_end, build_snapshot).chain());
    }

    fn handle_join(world: &mut World, who: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
        let pos = random_pos(&mut world.resource_mut::<ShardRng>());
        let player = Player { sid: who.sid.clone() };
        Ok(Some(world.spawn((player, pos, Intent::default(), Score::default())).id()))
    }

    fn apply_input(world: &mut World, who: &Subscriber, input: ArenaInput) {
        let Some(entity) = who.entity else { return };
        if let Some(mut intent) = world.get_mut::<Intent>(entity) {
            *intent = Intent { dx: clamp_axis(input.dx), dy: clamp_axis(input.dy) };
        }
    }

    fn snapshot(world: &mut World) -> ArenaSnapshot {
        if let Some(snapshot) = world.resource_mut::<MatchState>().latest.take() {
            return snapshot;
        }
        // Only before the first tick (or if asked twice in one tick): build it directly.
        let (mut players, mut pickups) = (Vec::new(), Vec::new());
        for (p, pos, score) in world.query::<(&Player, &Pos, &Score)>().iter(world) {
            players.push(PlayerView { id: p.sid.clone(), x: pos.x, y: pos.y, score: score.0 });
        }
        for pos in world.query_filtered::<&Pos, With<Pickup>>().iter(world) {
            pickups.push([pos.x, pos.y]);
        }
        let limit = world.resource::<MatchState>().rules.time_limit_secs as f32;
        let clock = world.resource::<MatchClock>();
        let time_left_secs = (limit - clock.tick as f32 * clock.dt_secs).max(0.0);
        ArenaSnapshot { time_left_secs, players, pickups }
    }

    fn outcome(world: &mut World) -> Option<ArenaOutcome> {
        let reason = world.resource::<MatchState>().ending?;
        let mut scores: Vec<(Arc<str>, u32)> = world
            .query::<(&Player, &Score)>()
            .iter(world)
            .map(|(p, s)| (p.sid.clone(), s.0))
            .collect();
        scores.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let winner = match scores.as_slice() {
            [first, second, ..] if first.1 == second.1 => None,
            [first, ..] => Some(first.0.clone()),
            [] => None,
        };
        Some(ArenaOutcome { reason, winner, scores })
    }

    fn hash_state(world: &mut World, hasher: &mut StableHasher) {
        use std::hash::Hasher;
        let mut entities = world.query::<(Entity, &Pos, Option<&Score>, Option<&Intent>)>();
        for (entity, pos, score, intent) in entities.iter(world) {
            hasher.write_u64(entity.to_bits());
            hasher.write_f32_bits(pos.x);
            hasher.write_f32_bits(pos.y);
            hasher.write_u32(score.map_or(u32::MAX, |s| s.0));
            if let Some(i) = intent {
                hasher.write_f32_bits(i.dx);
                hasher.write_f32_bits(i.dy);
            }
        }
    }
}
