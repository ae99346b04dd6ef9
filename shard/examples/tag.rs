//! A complete game in one file: tag, written against the public `Game` API only.
//!
//! One player is "it"; touching another player passes "it" on. Each player sees only the
//! players within 250 units (area of interest through `aoi::Grid` in `snapshot_for`).
//! Run it with `cargo run -p pylon-shard --example tag`.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use pylon_shard::aoi::Grid;
use pylon_shard::{
    Auth, DynShard, Game, JoinRejected, MatchClock, MatchConfig, Outgoing, Shard, Subscriber,
};
use serde::{Deserialize, Serialize};

const FIELD: f32 = 1000.0;
const VIEW_RADIUS: f32 = 250.0;
const TOUCH: f32 = 10.0;

/// The game type.
struct Tag;

/// Steering input.
#[derive(Serialize, Deserialize)]
struct Steer {
    dx: f32,
    dy: f32,
}

/// What one player sees.
#[derive(Serialize)]
struct View {
    it: Option<Arc<str>>,
    visible: Vec<(Arc<str>, f32, f32)>,
}

#[derive(Component)]
struct Runner {
    sid: Arc<str>,
    x: f32,
    y: f32,
    dx: f32,
    dy: f32,
}

#[derive(Resource, Default)]
struct It(Option<Entity>);

#[derive(Resource)]
struct Spatial(Grid<Entity>);

fn run(clock: Res<MatchClock>, mut runners: Query<&mut Runner>) {
    for mut r in &mut runners {
        r.x = (r.x + r.dx * 200.0 * clock.dt_secs).clamp(0.0, FIELD);
        r.y = (r.y + r.dy * 200.0 * clock.dt_secs).clamp(0.0, FIELD);
    }
}

fn index(mut spatial: ResMut<Spatial>, runners: Query<(Entity, &Runner)>) {
    spatial.0.clear();
    for (entity, r) in &runners {
        spatial.0.insert(entity, r.x, r.y);
    }
}

fn touch(spatial: Res<Spatial>, mut it: ResMut<It>, runners: Query<&Runner>) {
    let Some(chaser) = it.0 else { return };
    let Ok(c) = runners.get(chaser) else { return };
    let mut near = Vec::new();
    spatial.0.query_radius(c.x, c.y, TOUCH, &mut near);
    if let Some(caught) = near.into_iter().find(|e| *e != chaser) {
        it.0 = Some(caught);
    }
}

impl Game for Tag {
    type Params = ();
    type Input = Steer;
    type Snapshot = View;
    type Outcome = ();
    const NAME: &'static str = "tag";

    fn tick_rate_hz(_: &()) -> u32 {
        30
    }

    fn setup(_: &(), world: &mut World, schedule: &mut Schedule) {
        world.init_resource::<It>();
        world.insert_resource(Spatial(Grid::new(FIELD, FIELD, VIEW_RADIUS)));
        schedule.add_systems((run, index, touch).chain());
    }

    fn handle_join(world: &mut World, who: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
        let rng = &mut world.resource_mut::<pylon_shard::rng::ShardRng>();
        let (x, y) = (rng.range_f32(0.0, FIELD), rng.range_f32(0.0, FIELD));
        let entity = world.spawn(Runner { sid: who.sid.clone(), x, y, dx: 0.0, dy: 0.0 }).id();
        let mut it = world.resource_mut::<It>();
        it.0.get_or_insert(entity);
        Ok(Some(entity))
    }

    fn apply_input(world: &mut World, who: &Subscriber, steer: Steer) {
        let Some(mut r) = who.entity.and_then(|e| world.get_mut::<Runner>(e)) else {
            return;
        };
        r.dx = steer.dx.clamp(-1.0, 1.0);
        r.dy = steer.dy.clamp(-1.0, 1.0);
    }

    fn snapshot(world: &mut World) -> View {
        View { it: it_sid(world), visible: Vec::new() }
    }

    fn snapshot_for(world: &mut World, who: &Subscriber) -> Option<View> {
        let me = world.get::<Runner>(who.entity?)?;
        let (x, y) = (me.x, me.y);
        let mut near = Vec::new();
        world.resource::<Spatial>().0.query_radius(x, y, VIEW_RADIUS, &mut near);
        let visible = near
            .into_iter()
            .filter_map(|e| world.get::<Runner>(e))
            .map(|r| (r.sid.clone(), r.x, r.y))
            .collect();
        Some(View { it: it_sid(world), visible })
    }

    fn outcome(_: &mut World) -> Option<()> {
        None
    }
}

fn it_sid(world: &World) -> Option<Arc<str>> {
    let entity = world.resource::<It>().0?;
    world.get::<Runner>(entity).map(|r| r.sid.clone())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut shard = Shard::<Tag>::new(&MatchConfig { seed: 11, ..MatchConfig::default() })?;
    for name in ["ann", "ben", "cy"] {
        let auth = Auth { user_id: name.into(), is_admin: false };
        shard.handle_join(name.into(), &auth).map_err(|why| format!("join refused: {why:?}"))?;
    }
    let mut out = Vec::new();
    for _ in 0..30 {
        shard.step();
    }
    shard.drain_outgoing(&mut out);
    for (key, frame) in out.iter().rev().take(3) {
        if let Outgoing::Snapshot(s) = frame {
            let json =
                s.body.json().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            println!("tick {} subscriber {}: {json}", s.tick, key.0);
        }
    }
    Ok(())
}
