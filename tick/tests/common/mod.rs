//! Shared helpers for the tick crate's tests: games, payloads, mailbox draining.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]
#![allow(dead_code, reason = "each test binary uses a different subset")]

use bevy_ecs::prelude::*;
use pylon_shard::codec::InputPayload;
use pylon_shard::games::arena::Arena;
use pylon_shard::{
    DynShard, Game, JoinRejected, MatchConfig, Outgoing, Shard, Subscriber, SubscriberKey,
};
use pylon_tick::Mailbox;

/// An arena match at `hz` that lasts far longer than any test.
pub fn arena(hz: u32) -> Box<dyn DynShard> {
    let params = serde_json::json!({"tick_rate_hz": hz, "time_limit_secs": 100_000});
    Box::new(Shard::<Arena>::new(&MatchConfig { seed: 3, params, record_replay: false }).unwrap())
}

/// A JSON input payload.
pub fn json(text: &str) -> InputPayload {
    InputPayload::json(text.as_bytes().to_vec())
}

/// Everything waiting in a mailbox.
pub fn drain(mailbox: &Mailbox<Outgoing>) -> Vec<Outgoing> {
    std::iter::from_fn(|| mailbox.try_recv()).collect()
}

/// Takes the `Joined` frame that must be first in a fresh subscriber's mailbox.
pub fn joined_key(mailbox: &Mailbox<Outgoing>) -> SubscriberKey {
    match mailbox.try_recv() {
        Some(Outgoing::Joined { key, .. }) => key,
        other => panic!("expected Joined, got {other:?}"),
    }
}

/// A game whose system panics once any subscriber sends `true`.
pub struct Boom;

#[derive(Resource, Default)]
struct Armed(bool);

fn explode(armed: Res<Armed>) {
    assert!(!armed.0, "boom: the game panicked on purpose");
}

impl Game for Boom {
    type Params = ();
    type Input = bool;
    type Snapshot = bool;
    type Outcome = ();
    const NAME: &'static str = "boom";

    fn tick_rate_hz(_: &()) -> u32 {
        20
    }
    fn setup(_: &(), world: &mut World, schedule: &mut Schedule) {
        world.init_resource::<Armed>();
        schedule.add_systems(explode);
    }
    fn handle_join(_: &mut World, _: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
        Ok(None)
    }
    fn apply_input(world: &mut World, _: &Subscriber, arm: bool) {
        world.resource_mut::<Armed>().0 |= arm;
    }
    fn snapshot(world: &mut World) -> bool {
        world.resource::<Armed>().0
    }
    fn outcome(_: &mut World) -> Option<()> {
        None
    }
}
