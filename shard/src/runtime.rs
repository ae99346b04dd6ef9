//! `Shard<G>`: one match as a synchronous state machine. Commands come in through
//! `handle_*`, [`DynShard::step_with`] runs one tick (applying the raw inputs its caller
//! queued), frames come out through `take_snapshots` and `drain_outgoing`. No thread,
//! socket, channel or clock: the caller decides when to step.
//!
//! One tick produces one frame for the match: the shared snapshot payload (recycled from
//! an earlier tick once nobody holds it, so a warm tick allocates nothing), the own views
//! of subscribers whose game gives them one, and each subscriber's ack read beside it at
//! delivery. [`DynShard`] is the object-safe face the tick threads drive, so one thread can
//! own matches of many game types.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleGraph, SingleThreadedExecutor};

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
    /// Raw inputs ([`QueuedInput`]) dropped because they do not decode into the game's
    /// input type.
    pub inputs_undecodable: u32,
    /// The match finished on this tick.
    pub finished: bool,
}

/// One input as it arrived, queued raw by the caller (the tick thread keeps a queue per
/// shard) and decoded into the game's input type at the start of the step that applies
/// it, where the shard's memory is hot anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedInput {
    /// The sending subscription.
    pub key: SubscriberKey,
    /// The sender's sequence number (becomes its ack).
    pub client_seq: Option<u64>,
    /// The undecoded input.
    pub payload: InputPayload,
    /// Opaque caller value handed back by [`DynShard::drain_applied_stamps`].
    pub stamp: u64,
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
    /// Whether an event-driven shard has something to step for (besides raw inputs its
    /// caller holds).
    fn wants_step(&self) -> bool;
    /// The match's limits (subscribers, queued inputs per subscriber).
    fn limits(&self) -> ShardLimits;
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
    /// Whether `payload` decodes into the game's input type (for a sender that must be
    /// answered at once; the input is then queued raw and decoded again at its step).
    ///
    /// # Errors
    /// [`InputRejected::Decode`].
    fn check_input(&self, payload: &InputPayload) -> Result<(), InputRejected>;
    /// The key of the subscriber with this sid, if subscribed.
    fn find_subscriber(&self, sid: &str) -> Option<SubscriberKey>;
    /// Runs one tick with nothing but the inputs queued through `handle_input`.
    fn step(&mut self) -> StepReport;
    /// Runs one tick: the inputs queued through `handle_input`, then `inputs` in order
    /// (each decoded here; one that does not decode is dropped and counted, one whose
    /// subscriber is gone is dropped), then the schedule and the snapshots. Leaves
    /// `inputs` empty (its capacity kept).
    fn step_with(&mut self, inputs: &mut Vec<QueuedInput>) -> StepReport;
    /// Hands the last step's snapshot to `deliver`, once per subscriber that was there at
    /// that step, in key order: the shared payload (or the subscriber's own view) with the
    /// subscriber's ack beside it. Nothing after the first call for a step.
    fn take_snapshots(&mut self, deliver: &mut dyn FnMut(SubscriberKey, SnapshotFrame));
    /// Stops the match: every subscriber gets [`Outgoing::Stopped`].
    fn stop(&mut self, reason: StopReason);
    /// Moves the frames produced since the last drain into `out`: the last step's
    /// snapshots if nobody took them (older steps' are gone: like a mailbox, a shard keeps
    /// only the newest), then match end or stop frames.
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

/// Shared snapshot payloads a shard keeps for reuse. Two suffice when every subscriber
/// takes (or replaces) each tick's frame before the next; a delta-mode writer keeps recent
/// payloads as bases, and while it does the shard builds new ones.
const SNAPSHOT_POOL: usize = 4;

/// The last step's frame: one shared payload, and the subscribers' own views.
struct TickFrame<S> {
    /// Not yet taken.
    fresh: bool,
    /// Subscribers with a key below this were there at that step.
    keys_below: u32,
    /// What every subscriber without its own view receives.
    shared: Option<Payload>,
    /// Own views, in key order.
    own: Vec<(SubscriberKey, Payload)>,
    /// Shared payloads of earlier ticks, refilled once nobody else holds them.
    pool: Vec<Arc<Cached<S>>>,
}

impl<S> Default for TickFrame<S> {
    fn default() -> Self {
        Self { fresh: false, keys_below: 0, shared: None, own: Vec::new(), pool: Vec::new() }
    }
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
    frame: TickFrame<G::Snapshot>,
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
        // Build the schedule now, on the creating thread, not in the first tick on the
        // tick thread. A schedule that cannot be built fails again in its first tick,
        // where the panic stops only this match.
        if let Ok(_built) = schedule.initialize(&mut world) {
            // Built: the systems now live in the executable schedule, and the graph they
            // were ordered by (about 2 KiB per match) is not needed again, since a
            // match never adds systems after `setup`. An empty graph is "unchanged", so
            // later runs go straight to the executor.
            *schedule.graph_mut() = ScheduleGraph::new();
        }
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
            frame: TickFrame::default(),
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

    /// Applies the inputs queued through `handle_input`, then the raw `inputs`, in order.
    fn apply_inputs(&mut self, inputs: &mut Vec<QueuedInput>, report: &mut StepReport) {
        let mut pending = std::mem::take(&mut self.pending);
        for p in pending.drain(..) {
            self.apply_input(p.key, p.client_seq, p.input, p.stamp, report);
        }
        self.pending = pending;
        for raw in inputs.drain(..) {
            if self.slot_index(raw.key).is_none() {
                continue;
            }
            match decode_input::<G::Input>(&raw.payload) {
                Ok(input) => self.apply_input(raw.key, raw.client_seq, input, raw.stamp, report),
                Err(_) => report.inputs_undecodable += 1,
            }
        }
        for slot in &mut self.slots {
            slot.queued = 0;
        }
    }

    fn apply_input(
        &mut self,
        key: SubscriberKey,
        client_seq: Option<u64>,
        input: G::Input,
        stamp: u64,
        report: &mut StepReport,
    ) {
        let Some(index) = self.slot_index(key) else {
            return;
        };
        let slot = &mut self.slots[index];
        slot.last_seq = client_seq.max(slot.last_seq);
        self.applied_stamps.push(stamp);
        if !G::authorize_input(&self.world, &slot.sub, &input) {
            report.inputs_unauthorized += 1;
            self.refused.push((key, stamp));
            return;
        }
        report.inputs_applied += 1;
        if let Some(log) = self.replay.as_mut() {
            let value = serde_json::to_value(&input).unwrap_or_default();
            log.events.push(ReplayEvent::Input {
                tick: self.tick,
                key: key.0,
                client_seq,
                input: value,
            });
        }
        G::apply_input(&mut self.world, &self.slots[index].sub, input);
    }

    pub(crate) fn run_tick(&mut self, inputs: &mut Vec<QueuedInput>) -> StepReport {
        let mut report = StepReport::default();
        if self.finished {
            inputs.clear();
            return report;
        }
        self.tick += 1;
        let tick = self.tick;
        self.record(|| ReplayEvent::Tick { tick });
        self.world.resource_mut::<MatchClock>().tick = self.tick;
        self.apply_inputs(inputs, &mut report);
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

    /// Builds this tick's frame: own views where the game gives them, and the shared
    /// payload (refilled in place when an earlier one is free) if anybody needs it.
    fn emit_snapshots(&mut self) {
        let frame = &mut self.frame;
        frame.shared = None;
        frame.own.clear();
        frame.fresh = true;
        frame.keys_below = self.next_key;
        let mut anyone_shared = false;
        for slot in &self.slots {
            match G::snapshot_for(&mut self.world, &slot.sub) {
                Some(own) => frame.own.push((slot.sub.key, Cached::payload(own, G::ACK_KEY))),
                None => anyone_shared = true,
            }
        }
        if anyone_shared {
            frame.shared = Some(shared_payload::<G>(&mut self.world, &mut frame.pool));
        }
    }
}

/// The shared snapshot of this tick: a pooled payload nobody else holds, refilled in
/// place, or a new one (pooled while the pool has room).
fn shared_payload<G: Game>(world: &mut World, pool: &mut Vec<Arc<Cached<G::Snapshot>>>) -> Payload {
    for entry in pool.iter_mut() {
        if let Some(cached) = Arc::get_mut(entry) {
            G::snapshot_into(world, cached.refill());
            let payload: Payload = entry.clone();
            return payload;
        }
    }
    let fresh = Arc::new(Cached::new(G::snapshot(world), G::ACK_KEY));
    if pool.len() < SNAPSHOT_POOL {
        pool.push(fresh.clone());
    }
    fresh
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

    fn limits(&self) -> ShardLimits {
        self.limits
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

    fn check_input(&self, payload: &InputPayload) -> Result<(), InputRejected> {
        decode_input::<G::Input>(payload).map(drop).map_err(|_| InputRejected::Decode)
    }

    fn find_subscriber(&self, sid: &str) -> Option<SubscriberKey> {
        self.slots.iter().find(|s| &*s.sub.sid == sid).map(|s| s.sub.key)
    }

    fn step(&mut self) -> StepReport {
        self.run_tick(&mut Vec::new())
    }

    fn step_with(&mut self, inputs: &mut Vec<QueuedInput>) -> StepReport {
        self.run_tick(inputs)
    }

    fn take_snapshots(&mut self, deliver: &mut dyn FnMut(SubscriberKey, SnapshotFrame)) {
        let frame = &mut self.frame;
        if !std::mem::take(&mut frame.fresh) {
            return;
        }
        let mut own = frame.own.iter().peekable();
        for slot in self.slots.iter().take_while(|s| s.sub.key.0 < frame.keys_below) {
            let key = slot.sub.key;
            while own.next_if(|(k, _)| *k < key).is_some() {}
            let body = match own.next_if(|(k, _)| *k == key) {
                Some((_, payload)) => payload.clone(),
                None => match &frame.shared {
                    Some(payload) => payload.clone(),
                    None => continue,
                },
            };
            deliver(key, SnapshotFrame { tick: self.tick, ack: slot.last_seq, body });
        }
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
        self.take_snapshots(&mut |key, frame| out.push((key, Outgoing::Snapshot(frame))));
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
