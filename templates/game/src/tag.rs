//! Tag: one player is "it"; touching another player passes "it" on (the touched player
//! cannot pass it straight back for a moment). A round lasts `round_secs`; the player who
//! was "it" for the least time wins. Each player sees only the players near them (area of
//! interest), and every snapshot carries the player's last processed input (`ack`), so a
//! client can predict its own movement.
//!
//! The whole game is this file: its types, its systems and the `Game` hooks. State lives
//! in the match's ECS world; time is the tick count times the fixed step; randomness is
//! the match's seeded `ShardRng`. So a match replays bit for bit.

use std::sync::Arc;

use pylon::aoi::Grid;
use pylon::prelude::*;
use serde::{Deserialize, Serialize};

/// Side of the square field, in world units.
const FIELD: f32 = 1000.0;
/// How far a player sees.
const VIEW_RADIUS: f32 = 250.0;
/// How close "it" must get to tag someone.
const TOUCH_RADIUS: f32 = 12.0;
/// World units per second at full steer.
const SPEED: f32 = 220.0;
/// After a tag, the new "it" cannot tag back for this long.
const TAG_COOLDOWN_SECS: f32 = 1.0;

/// The game type (no data: the state is in the world).
pub struct Tag;

/// Match parameters, from the create request (`{"game":"tag","params":{…}}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TagParams {
    /// Ticks per second.
    pub tick_rate_hz: u32,
    /// Players per match.
    pub max_players: usize,
    /// Length of the round.
    pub round_secs: f32,
}

impl Default for TagParams {
    fn default() -> Self {
        Self { tick_rate_hz: 30, max_players: 8, round_secs: 120.0 }
    }
}

/// One input: where to run (each axis clamped to -1..1).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Steer {
    /// Left/right.
    pub dx: f32,
    /// Up/down.
    pub dy: f32,
}

/// What one player sees.
#[derive(Debug, Serialize)]
pub struct View {
    /// Who is "it" (a sid), if anyone.
    pub it: Option<Arc<str>>,
    /// Seconds left in the round.
    pub time_left_secs: f32,
    /// The players within view: themselves included.
    pub players: Vec<PlayerView>,
}

/// One visible player.
#[derive(Debug, Serialize)]
pub struct PlayerView {
    /// Subscriber id.
    pub id: Arc<str>,
    /// Position.
    pub x: f32,
    /// Position.
    pub y: f32,
    /// Seconds spent as "it" so far.
    pub it_secs: f32,
}

/// The round's result.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The player who was "it" for the least time.
    pub winner: Option<Arc<str>>,
    /// Seconds as "it", per player.
    pub it_secs: Vec<(Arc<str>, f32)>,
}

#[derive(Component)]
struct Runner {
    sid: Arc<str>,
    x: f32,
    y: f32,
    steer: Steer,
    it_secs: f32,
}

#[derive(Resource, Default)]
struct It {
    who: Option<Entity>,
    cooldown_secs: f32,
}

#[derive(Resource)]
struct Spatial(Grid<Entity>);

#[derive(Resource)]
struct Round {
    left_secs: f32,
}

fn run(clock: Res<MatchClock>, mut runners: Query<&mut Runner>) {
    for mut r in &mut runners {
        r.x = (r.x + r.steer.dx * SPEED * clock.dt_secs).clamp(0.0, FIELD);
        r.y = (r.y + r.steer.dy * SPEED * clock.dt_secs).clamp(0.0, FIELD);
    }
}

fn index(mut spatial: ResMut<Spatial>, runners: Query<(Entity, &Runner)>) {
    spatial.0.clear();
    for (entity, r) in &runners {
        spatial.0.insert(entity, r.x, r.y);
    }
}

fn tag(
    clock: Res<MatchClock>,
    spatial: Res<Spatial>,
    mut it: ResMut<It>,
    mut runners: Query<&mut Runner>,
    mut near: Local<Vec<Entity>>,
) {
    it.cooldown_secs = (it.cooldown_secs - clock.dt_secs).max(0.0);
    let Some(chaser) = it.who else { return };
    let Ok(mut c) = runners.get_mut(chaser) else { return };
    c.it_secs += clock.dt_secs;
    if it.cooldown_secs > 0.0 {
        return;
    }
    near.clear();
    spatial.0.query_radius(c.x, c.y, TOUCH_RADIUS, &mut near);
    // The grid returns keys in a fixed order, so the same match always tags the same one.
    if let Some(caught) = near.iter().copied().find(|e| *e != chaser) {
        it.who = Some(caught);
        it.cooldown_secs = TAG_COOLDOWN_SECS;
    }
}

fn countdown(clock: Res<MatchClock>, mut round: ResMut<Round>) {
    round.left_secs = (round.left_secs - clock.dt_secs).max(0.0);
}

impl Game for Tag {
    type Params = TagParams;
    type Input = Steer;
    type Snapshot = View;
    type Outcome = Outcome;

    const NAME: &'static str = "tag";
    const ACK_KEY: Option<&'static str> = Some("ack");
    const LISTED: bool = true;

    fn tick_rate_hz(params: &TagParams) -> u32 {
        params.tick_rate_hz.clamp(1, 60)
    }

    fn limits(params: &TagParams) -> ShardLimits {
        ShardLimits { max_subscribers: params.max_players.clamp(1, 64), ..ShardLimits::default() }
    }

    fn setup(params: &TagParams, world: &mut World, schedule: &mut Schedule) {
        world.init_resource::<It>();
        world.insert_resource(Spatial(Grid::new(FIELD, FIELD, VIEW_RADIUS)));
        world.insert_resource(Round { left_secs: params.round_secs.max(1.0) });
        schedule.add_systems((run, index, tag, countdown).chain());
    }

    fn handle_join(world: &mut World, who: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
        let mut rng = world.resource_mut::<ShardRng>();
        let (x, y) = (rng.range_f32(0.0, FIELD), rng.range_f32(0.0, FIELD));
        let runner = Runner { sid: who.sid.clone(), x, y, steer: Steer::default(), it_secs: 0.0 };
        let entity = world.spawn(runner).id();
        world.resource_mut::<It>().who.get_or_insert(entity);
        Ok(Some(entity))
    }

    fn handle_leave(world: &mut World, who: &Subscriber) {
        let Some(entity) = who.entity else { return };
        world.despawn(entity);
        // "It" left: pass it to whoever remains (the first in the world's order).
        if world.resource::<It>().who == Some(entity) {
            let next = world.query_filtered::<Entity, With<Runner>>().iter(world).next();
            world.resource_mut::<It>().who = next;
        }
    }

    fn apply_input(world: &mut World, who: &Subscriber, steer: Steer) {
        let Some(mut r) = who.entity.and_then(|e| world.get_mut::<Runner>(e)) else { return };
        r.steer = Steer { dx: steer.dx.clamp(-1.0, 1.0), dy: steer.dy.clamp(-1.0, 1.0) };
    }

    fn snapshot(world: &mut World) -> View {
        // Subscribers without a runner (spectators) see the whole field.
        let players = world
            .query::<&Runner>()
            .iter(world)
            .map(|r| PlayerView { id: r.sid.clone(), x: r.x, y: r.y, it_secs: r.it_secs })
            .collect();
        View { it: it_sid(world), time_left_secs: world.resource::<Round>().left_secs, players }
    }

    fn snapshot_for(world: &mut World, who: &Subscriber) -> Option<View> {
        let me = world.get::<Runner>(who.entity?)?;
        let mut near = Vec::new();
        world.resource::<Spatial>().0.query_radius(me.x, me.y, VIEW_RADIUS, &mut near);
        let players = near
            .into_iter()
            .filter_map(|e| world.get::<Runner>(e))
            .map(|r| PlayerView { id: r.sid.clone(), x: r.x, y: r.y, it_secs: r.it_secs })
            .collect();
        let time_left_secs = world.resource::<Round>().left_secs;
        Some(View { it: it_sid(world), time_left_secs, players })
    }

    fn outcome(world: &mut World) -> Option<Outcome> {
        if world.resource::<Round>().left_secs > 0.0 {
            return None;
        }
        let mut it_secs: Vec<(Arc<str>, f32)> =
            world.query::<&Runner>().iter(world).map(|r| (r.sid.clone(), r.it_secs)).collect();
        it_secs.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Some(Outcome { winner: it_secs.first().map(|(sid, _)| sid.clone()), it_secs })
    }
}

fn it_sid(world: &World) -> Option<Arc<str>> {
    let entity = world.resource::<It>().who?;
    world.get::<Runner>(entity).map(|r| r.sid.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pylon::{Auth, DynShard, MatchConfig, Outgoing, Shard};

    fn joined(shard: &mut Shard<Tag>, sid: &str) -> pylon::SubscriberKey {
        let auth = Auth { user_id: sid.into(), is_admin: false };
        shard.handle_join(sid.into(), &auth).map(|j| j.key).unwrap_or(pylon::SubscriberKey(0))
    }

    /// A round ends on time with a winner, and the same seed and inputs replay to the same
    /// state (no clock, no unseeded randomness).
    #[test]
    fn a_round_ends_and_replays_identically() {
        let params = serde_json::json!({"round_secs": 2.0, "tick_rate_hz": 10});
        let play = || {
            let config = MatchConfig { seed: 7, params: params.clone(), record_replay: false };
            let mut shard = Shard::<Tag>::new(&config).ok()?;
            let keys = [joined(&mut shard, "ann"), joined(&mut shard, "ben")];
            for tick in 0..40u64 {
                let steer = Steer { dx: 1.0, dy: if tick % 2 == 0 { 1.0 } else { -1.0 } };
                let _ = shard.handle_typed_input(keys[(tick % 2) as usize], Some(tick), steer, 0);
                shard.step();
            }
            let mut out = Vec::new();
            shard.drain_outgoing(&mut out);
            let ended = out.iter().any(|(_, f)| matches!(f, Outgoing::MatchEnd(_)));
            Some((ended, shard.state_hash()))
        };
        let (first, second) = (play(), play());
        assert_eq!(first.map(|f| f.0), Some(true), "the round ended");
        assert_eq!(first, second, "same seed and inputs, same match");
    }
}
