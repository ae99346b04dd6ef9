//! `Shard<G>`: one match as a synchronous state machine. Commands come in through
//! `handle_*`, [`Shard::step`] runs one tick, frames come out through `drain_outgoing`.
//! No thread, socket, channel or clock: the caller decides when to step.
//!
//! [`DynShard`] is the object-safe face the tick threads drive, so one thread can own
//! matches of many game types.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::SingleThreadedExecutor;

use crate::codec::{Cached, InputPayload, Payload, decode_input};
use crate::game::{Auth, Game, JoinRejected, MatchClock, ShardLimits, Subscriber, SubscriberKey};
use crate::hash::StableHasher;
use crate::outgoing::{MatchEnd, Outgoing, SnapshotFrame, StopReason};
use crate::replay_log::{ReplayEvent, ReplayLog};
use crate::rng::ShardRng;

/// How a match is created: its seed, its parameters and whether to record a replay log.
#[derive(Debug, Clone, Default)]
pub struct MatchConfig {
    /// Seed of the match's [`ShardRng`]; same seed + same inputs = same match.
    pub seed: u64,
    /// Game parameters as JSON (`null` = the game's defaults).
    pub params: serde_json::Value,
    /// Record every join, leave and applied input (memory grows with the match).
    pub record_replay: bool,
}

/// A running match's state, written every N ticks (and at shutdown) so the match can
/// resume after a restart: the game's own state plus what the shard owns (tick, RNG).
/// Subscribers are not saved; they reconnect.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedMatch {
    /// The game type.
    pub game: String,
    /// The match parameters.
    pub params: serde_json::Value,
    /// The match seed.
    pub seed: u64,
    /// The last completed tick.
    pub tick: u64,
    /// The RNG's state.
    pub rng: [u64; 2],
    /// The game's state (`Game::save`).
    pub state: serde_json::Value,
}

/// Why an input was not queued. Counted by the caller, reported to the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputRejected {
    /// No subscriber with that key (it left, or was replaced by a reconnect).
    UnknownSubscriber,
    /// The subscriber already has `max_queued_inputs` inputs waiting for the next tick.
    QueueFull,
    /// The payload does not deserialize into the game's input type.
    Decode,
    /// The match has finished or stopped.
    Finished,
}

impl InputRejected {
    /// A stable lowercase label for metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownSubscriber => "unknown_subscriber",
            Self::QueueFull => "queue_full",
            Self::Decode => "decode",
            Self::Finished => "finished",
        }
    }
}

/// A successful join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// The new subscription's key.
    pub key: SubscriberKey,
    /// The key this join replaced (same sid reconnecting): its connection must be closed.
    pub replaced: Option<SubscriberKey>,
}

/// What one step did, for the caller's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepReport {
    /// Inputs applied at the start of the tick.
    pub inputs_applied: u32,
    /// Inputs refused by the game's `authorize_input`.
    pub inputs_unauthorized: u32,
    /// The match finished on this tick.
    pub finished: bool,
}

/// The object-safe interface of a shard of any game. See [`Shard`] for the semantics.
pub trait DynShard: Send {
    /// The game type's name.
    fn game(&self) -> &'static str;
    /// Ticks per second, or 0 for event-driven.
    fn tick_rate_hz(&self) -> u32;
    /// Ticks stepped so far.
    fn tick(&self) -> u64;
    /// Current subscribers.
    fn subscriber_count(&self) -> usize;
    /// Inputs waiting for the next tick.
    fn queued_inputs(&self) -> usize;
    /// Finished or stopped: no more steps.
    fn is_finished(&self) -> bool;
    /// Whether an event-driven shard has something to step for.
    fn wants_step(&self) -> bool;
    /// Adds (or resumes) a subscriber.
    ///
    /// # Errors
    /// [`JoinRejected`] by the subscribe rule, the limits or the game.
    fn handle_join(&mut self, sid: Arc<str>, auth: &Auth) -> Result<Joined, JoinRejected>;
    /// Removes a subscriber; `false` when the key is unknown (already replaced or gone).
    fn handle_leave(&mut self, key: SubscriberKey) -> bool;
    /// Queues an input for the next tick. `stamp` is an opaque caller value handed back by
    /// [`DynShard::drain_applied_stamps`] when the input is applied (latency metrics).
    ///
    /// # Errors
    /// [`InputRejected`] when the input cannot be queued.
    fn handle_input(
        &mut self,
        key: SubscriberKey,
        client_seq: Option<u64>,
        payload: &InputPayload,
        stamp: u64,
    ) -> Result<(), InputRejected>;
    /// The key of the subscriber with this sid, if subscribed.
    fn find_subscriber(&self, sid: &str) -> Option<SubscriberKey>;
    /// Runs one tick.
    fn step(&mut self) -> StepReport;
    /// Stops the match: every subscriber gets [`Outgoing::Stopped`].
    fn stop(&mut self, reason: StopReason);
    /// Moves the frames produced since the last drain into `out`.
    fn drain_outgoing(&mut self, out: &mut Vec<(SubscriberKey, Outgoing)>);
    /// Moves the stamps of inputs applied since the last drain into `out` (inputs the game
    /// refused included: they were taken from the queue too).
    fn drain_applied_stamps(&mut self, out: &mut Vec<u64>);
    /// Moves the (subscriber, stamp) of inputs the game's `authorize_input` refused since
    /// the last drain into `out` (answers to HTTP inputs; empty in the common case).
    fn drain_refused(&mut self, out: &mut Vec<(SubscriberKey, u64)>);
    /// The game's state hash (replay checks).
    fn state_hash(&mut self) -> u64;
    /// The replay log, if recording.
    fn replay_log(&self) -> Option<&ReplayLog>;
    /// The match's state to persist, if the game supports it (`Game::save`).
    fn save(&mut self) -> Option<SavedMatch>;
    /// The outcome as JSON once finished (`Game::outcome`).
    fn outcome_json(&mut self) -> Option<serde_json::Value>;
}

struct Slot {
    sub: Subscriber,
    last_seq: Option<u64>,
    queued: u16,
}

struct Pending<I> {
    key: SubscriberKey,
    client_seq: Option<u64>,
    input: I,
    stamp: u64,
}

/// One match of game `G`.
pub struct Shard<G: Game> {
    params: G::Params,
    seed: u64,
    world: World,
    schedule: Schedule,
    tick: u64,
    rate_hz: u32,
    limits: ShardLimits,
    slots: Vec<Slot>,
    next_key: u32,
    pending: Vec<Pending<G::Input>>,
    outgoing: Vec<(SubscriberKey, Outgoing)>,
    applied_stamps: Vec<u64>,
    refused: Vec<(SubscriberKey, u64)>,
    finished: bool,
    membership_changed: bool,
    replay: Option<Box<ReplayLog>>,
}

impl<G: Game> Shard<G> {
    /// Builds a match: a fresh world with [`MatchClock`] and a seeded [`ShardRng`], then
    /// the game's `setup`.
    ///
    /// # Errors
    /// [`crate::ShardError::BadParams`] when `config.params` do not fit `G::Params`.
    pub fn new(config: &MatchConfig) -> Result<Self, crate::ShardError> {
        let params: G::Params = if config.params.is_null() {
            G::Params::default()
        } else {
            serde_json::from_value(config.params.clone())
                .map_err(|source| crate::ShardError::BadParams { game: G::NAME, source })?
        };
        let replay = config.record_replay.then(|| {
            Box::new(ReplayLog::new(
                G::NAME,
                config.seed,
                serde_json::to_value(&params).unwrap_or_default(),
            ))
        });
        Ok(Self::with_params(&params, config.seed, replay))
    }

    pub(crate) fn with_params(
        params: &G::Params,
        seed: u64,
        replay: Option<Box<ReplayLog>>,
    ) -> Self {
        let rate_hz = G::tick_rate_hz(params).min(128);
        let mut world = World::new();
        world.insert_resource(MatchClock {
            tick: 0,
            dt_secs: if rate_hz == 0 { 0.0 } else { 1.0 / rate_hz as f32 },
        });
        world.insert_resource(ShardRng::new(seed));
        let mut schedule = Schedule::default();
        // Deterministic, and no task pool: a match runs on the tick thread that owns it.
        schedule.set_executor(SingleThreadedExecutor::new());
        G::setup(params, &mut world, &mut schedule);
        Self {
            params: params.clone(),
            seed,
            world,
            schedule,
            tick: 0,
            rate_hz,
            limits: G::limits(params),
            slots: Vec::new(),
            next_key: 0,
            pending: Vec::new(),
            outgoing: Vec::new(),
            applied_stamps: Vec::new(),
            refused: Vec::new(),
            finished: false,
            membership_changed: false,
            replay,
        }
    }

    /// Rebuilds a match from a [`SavedMatch`]: a fresh world from `setup`, then the tick,
    /// the RNG and the game's state. It continues from the saved tick.
    ///
    /// # Errors
    /// [`crate::ShardError::BadParams`] or [`crate::ShardError::Restore`].
    pub fn restore(saved: &SavedMatch) -> Result<Self, crate::ShardError> {
        let params: G::Params = if saved.params.is_null() {
            G::Params::default()
        } else {
            serde_json::from_value(saved.params.clone())
                .map_err(|source| crate::ShardError::BadParams { game: G::NAME, source })?
        };
        let mut shard = Self::with_params(&params, saved.seed, None);
        shard.tick = saved.tick;
        shard.world.resource_mut::<MatchClock>().tick = saved.tick;
        shard.world.insert_resource(ShardRng::from_state(saved.rng));
        G::restore(&mut shard.world, &saved.state)
            .map_err(|reason| crate::ShardError::Restore { game: G::NAME, reason })?;
        Ok(shard)
    }

    /// The match world (tests and tools; games reach it through their systems).
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// Queues an already-decoded input (replay and tests use this; the wire path decodes
    /// first through [`DynShard::handle_input`]).
    ///
    /// # Errors
    /// [`InputRejected`] when the input cannot be queued.
    pub fn handle_typed_input(
        &mut self,
        key: SubscriberKey,
        client_seq: Option<u64>,
        input: G::Input,
        stamp: u64,
    ) -> Result<(), InputRejected> {
        if self.finished {
            return Err(InputRejected::Finished);
        }
        let max = self.limits.max_queued_inputs;
        let slot = self.slot_mut(key).ok_or(InputRejected::UnknownSubscriber)?;
        if slot.queued >= max {
            return Err(InputRejected::QueueFull);
        }
        slot.queued += 1;
        self.pending.push(Pending { key, client_seq, input, stamp });
        Ok(())
    }

    pub(crate) fn sid_of(&self, key: SubscriberKey) -> Option<Arc<str>> {
        self.slot_index(key).map(|i| self.slots[i].sub.sid.clone())
    }

    /// Queues an input ignoring the per-subscriber queue limit (replay: the log holds only
    /// inputs that were accepted live).
    pub(crate) fn force_input(
        &mut self,
        key: SubscriberKey,
        client_seq: Option<u64>,
        input: G::Input,
    ) -> Result<(), InputRejected> {
        self.slot_index(key).ok_or(InputRejected::UnknownSubscriber)?;
        self.pending.push(Pending { key, client_seq, input, stamp: 0 });
        Ok(())
    }

    fn slot_index(&self, key: SubscriberKey) -> Option<usize> {
        self.slots.binary_search_by_key(&key, |s| s.sub.key).ok()
    }

    fn slot_mut(&mut self, key: SubscriberKey) -> Option<&mut Slot> {
        let index = self.slot_index(key)?;
        self.slots.get_mut(index)
    }

    fn record(&mut self, event: impl FnOnce() -> ReplayEvent) {
        if let Some(log) = self.replay.as_mut() {
            log.events.push(event());
        }
    }

    fn join(&mut self, sid: Arc<str>, auth: &Auth) -> Result<Joined, JoinRejected> {
        if self.finished {
            return Err(JoinRejected::Finished);
        }
        if !G::may_subscribe(auth, &sid) {
            return Err(JoinRejected::Forbidden);
        }
        self.admit(sid, auth.is_admin)
    }

    /// Adds or resumes `sid` without the subscribe rule (already checked, or replaying).
    pub(crate) fn admit(&mut self, sid: Arc<str>, is_admin: bool) -> Result<Joined, JoinRejected> {
        let key = SubscriberKey(self.next_key);
        if let Some(index) = self.slots.iter().position(|s| s.sub.sid == sid) {
            // A reconnect: the subscriber keeps its state and pending inputs under a new key.
            let mut slot = self.slots.remove(index);
            let old = slot.sub.key;
            slot.sub.key = key;
            for pending in self.pending.iter_mut().filter(|p| p.key == old) {
                pending.key = key;
            }
            self.slots.push(slot);
            self.next_key += 1;
            self.record(|| ReplayEvent::Resume { old: old.0, key: key.0 });
            return Ok(Joined { key, replaced: Some(old) });
        }
        if self.slots.len() >= self.limits.max_subscribers {
            return Err(JoinRejected::Full);
        }
        let mut sub = Subscriber { key, sid: sid.clone(), is_admin, entity: None };
        sub.entity = G::handle_join(&mut self.world, &sub)?;
        self.slots.push(Slot { sub, last_seq: None, queued: 0 });
        self.next_key += 1;
        self.membership_changed = true;
        self.record(|| ReplayEvent::Join { key: key.0, sid: sid.to_string(), is_admin });
        Ok(Joined { key, replaced: None })
    }

    pub(crate) fn leave(&mut self, key: SubscriberKey) -> bool {
        let Some(index) = self.slot_index(key) else {
            return false;
        };
        let slot = self.slots.remove(index);
        self.pending.retain(|p| p.key != key);
        if !self.finished {
            G::handle_leave(&mut self.world, &slot.sub);
        }
        self.membership_changed = true;
        self.record(|| ReplayEvent::Leave { key: key.0 });
        true
    }

    fn apply_pending(&mut self, report: &mut StepReport) {
        let mut pending = std::mem::take(&mut self.pending);
        for p in pending.drain(..) {
            let Some(index) = self.slot_index(p.key) else {
                continue;
            };
            let slot = &mut self.slots[index];
            slot.last_seq = p.client_seq.max(slot.last_seq);
            self.applied_stamps.push(p.stamp);
            if !G::authorize_input(&self.world, &slot.sub, &p.input) {
                report.inputs_unauthorized += 1;
                self.refused.push((p.key, p.stamp));
                continue;
            }
            report.inputs_applied += 1;
            if let Some(log) = self.replay.as_mut() {
                let input = serde_json::to_value(&p.input).unwrap_or_default();
                log.events.push(ReplayEvent::Input {
                    tick: self.tick,
                    key: p.key.0,
                    client_seq: p.client_seq,
                    input,
                });
            }
            G::apply_input(&mut self.world, &self.slots[index].sub, p.input);
        }
        self.pending = pending;
        for slot in &mut self.slots {
            slot.queued = 0;
        }
    }

    pub(crate) fn run_tick(&mut self) -> StepReport {
        let mut report = StepReport::default();
        if self.finished {
            return report;
        }
        self.tick += 1;
        let tick = self.tick;
        self.record(|| ReplayEvent::Tick { tick });
        self.world.resource_mut::<MatchClock>().tick = self.tick;
        self.apply_pending(&mut report);
        self.membership_changed = false;
        self.schedule.run(&mut self.world);
        self.emit_snapshots();
        if let Some(outcome) = G::outcome(&mut self.world) {
            self.finished = true;
            report.finished = true;
            let end = MatchEnd { tick: self.tick, outcome: Cached::payload(outcome, None) };
            for slot in &self.slots {
                self.outgoing.push((slot.sub.key, Outgoing::MatchEnd(end.clone())));
            }
        }
        report
    }

    fn emit_snapshots(&mut self) {
        let mut shared: Option<Payload> = None;
        for index in 0..self.slots.len() {
            let who = &self.slots[index].sub;
            let body = match G::snapshot_for(&mut self.world, who) {
                Some(own) => Cached::payload(own, G::ACK_KEY),
                None => shared
                    .get_or_insert_with(|| {
                        Cached::payload(G::snapshot(&mut self.world), G::ACK_KEY)
                    })
                    .clone(),
            };
            let slot = &self.slots[index];
            let frame = SnapshotFrame { tick: self.tick, ack: slot.last_seq, body };
            self.outgoing.push((slot.sub.key, Outgoing::Snapshot(frame)));
        }
    }
}

impl<G: Game> DynShard for Shard<G> {
    fn game(&self) -> &'static str {
        G::NAME
    }

    fn tick_rate_hz(&self) -> u32 {
        self.rate_hz
    }

    fn tick(&self) -> u64 {
        self.tick
    }

    fn subscriber_count(&self) -> usize {
        self.slots.len()
    }

    fn queued_inputs(&self) -> usize {
        self.pending.len()
    }

    fn is_finished(&self) -> bool {
        self.finished
    }

    fn wants_step(&self) -> bool {
        !self.finished && (!self.pending.is_empty() || self.membership_changed)
    }

    fn handle_join(&mut self, sid: Arc<str>, auth: &Auth) -> Result<Joined, JoinRejected> {
        self.join(sid, auth)
    }

    fn handle_leave(&mut self, key: SubscriberKey) -> bool {
        self.leave(key)
    }

    fn handle_input(
        &mut self,
        key: SubscriberKey,
        client_seq: Option<u64>,
        payload: &InputPayload,
        stamp: u64,
    ) -> Result<(), InputRejected> {
        if self.finished {
            return Err(InputRejected::Finished);
        }
        if self.slot_index(key).is_none() {
            return Err(InputRejected::UnknownSubscriber);
        }
        let input = decode_input::<G::Input>(payload).map_err(|_| InputRejected::Decode)?;
        self.handle_typed_input(key, client_seq, input, stamp)
    }

    fn find_subscriber(&self, sid: &str) -> Option<SubscriberKey> {
        self.slots.iter().find(|s| &*s.sub.sid == sid).map(|s| s.sub.key)
    }

    fn step(&mut self) -> StepReport {
        self.run_tick()
    }

    fn stop(&mut self, reason: StopReason) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.pending.clear();
        for slot in &self.slots {
            self.outgoing.push((slot.sub.key, Outgoing::Stopped(reason)));
        }
    }

    fn drain_outgoing(&mut self, out: &mut Vec<(SubscriberKey, Outgoing)>) {
        out.append(&mut self.outgoing);
    }

    fn drain_applied_stamps(&mut self, out: &mut Vec<u64>) {
        out.append(&mut self.applied_stamps);
    }

    fn drain_refused(&mut self, out: &mut Vec<(SubscriberKey, u64)>) {
        out.append(&mut self.refused);
    }

    fn state_hash(&mut self) -> u64 {
        use std::hash::Hasher;
        let mut hasher = StableHasher::new();
        hasher.write_u64(self.tick);
        G::hash_state(&mut self.world, &mut hasher);
        hasher.finish()
    }

    fn replay_log(&self) -> Option<&ReplayLog> {
        self.replay.as_deref()
    }

    fn save(&mut self) -> Option<SavedMatch> {
        let state = G::save(&mut self.world)?;
        Some(SavedMatch {
            game: G::NAME.to_owned(),
            params: serde_json::to_value(&self.params).ok()?,
            seed: self.seed,
            tick: self.tick,
            rng: self.world.resource::<ShardRng>().state(),
            state,
        })
    }

    fn outcome_json(&mut self) -> Option<serde_json::Value> {
        G::outcome(&mut self.world).and_then(|o| serde_json::to_value(o).ok())
    }
}
