//! The per-thread scheduling core: owns many shards, steps each on its own fixed grid of
//! deadlines, routes commands in and frames out. It reads time only through a [`Clock`]
//! and never sleeps, so tests drive it exactly (see [`crate::Stepper`]).
//!
//! Inputs are queued raw beside each shard (its `Entry`), checked only against the
//! subscriber list and its queue limit, and handed to the shard at its next step, which
//! decodes them: an arriving input touches the scheduler's own small records, never the
//! match's memory. After a step, the shard's one frame (a shared payload, each
//! subscriber's ack beside it) goes into the subscribers' mailboxes without allocating.
//!
//! Deadlines: shard `s` with rate `hz` is due at `start + k * 1e9 / hz` ns for k = 1, 2, …
//! computed from `k` each time, never by adding periods, so rounding never accumulates into
//! drift. `start` is the shard's phase slot at or after its creation (see `crate::phases`: shards of one rate share a few slots, so one wake steps several). A shard found `n` grid points late
//! runs `min(n, max_catch_up_ticks)` steps back to back and skips (counts) the rest; its
//! next deadline stays on the grid.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use pylon_shard::codec::InputPayload;
use pylon_shard::{
    Auth, DynShard, InputRejected, Outgoing, QueuedInput, SnapshotFrame, StopReason, SubscriberKey,
};

use crate::clock::Clock;
use crate::command::{Command, InputFrom, ShardId};
use crate::config::TickConfig;
use crate::mailbox::Mailbox;
use crate::metrics::ThreadMetrics;
use crate::persist::{Persist, PersistSink};
use crate::receipt::{InputReceipt, InputVerdict};
use crate::status::{ShardState, ShardStatus};

const NS_PER_SEC: u64 = 1_000_000_000;
const SWEEP_INTERVAL_NS: u64 = NS_PER_SEC;

type Outbox = Arc<Mailbox<Outgoing>>;

/// Shard ids are sequential integers from the pool: a multiply-shift hash spreads them
/// well and costs a few cycles, where the default SipHash would cost tens of ns per command.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap<V> = HashMap<ShardId, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Whether the thread should keep running after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// A `Shutdown` command was handled: every shard is stopped.
    Shutdown,
}

struct Entry {
    id: ShardId,
    shard: Box<dyn DynShard>,
    status: Arc<ShardStatus>,
    /// The subscribers, in key order (the shard's order too).
    subs: Vec<Sub>,
    /// Raw inputs for the next step, in arrival order.
    inputs: Vec<QueuedInput>,
    /// `ShardLimits::max_queued_inputs` of the shard.
    max_queued: u16,
    hz: u32,
    /// Its phase slot (`crate::phases`).
    slot: u16,
    /// An event-driven shard is in `Scheduler::ready`.
    in_ready: bool,
    start_ns: u64,
    k: u64,
    last_activity_ns: u64,
    /// Receipts of queued inputs, answered after the tick that takes them (HTTP inputs
    /// only: empty for socket traffic).
    receipts: Vec<Awaiting>,
}

/// One subscriber of a shard, as the scheduler sees it.
struct Sub {
    key: SubscriberKey,
    /// Inputs of this subscriber in `Entry::inputs`.
    queued: u16,
    mailbox: Outbox,
}

/// A queued input whose sender waits for its verdict.
struct Awaiting {
    key: SubscriberKey,
    stamp: u64,
    receipt: InputReceipt,
}

/// The parts of `Command::Input` the scheduler uses.
struct InputArgs {
    from: InputFrom,
    client_seq: Option<u64>,
    payload: InputPayload,
    sent_at_ns: u64,
    receipt: Option<InputReceipt>,
}

impl Entry {
    fn deadline(&self, k: u64) -> u64 {
        let offset = u128::from(k) * u128::from(NS_PER_SEC) / u128::from(self.hz.max(1));
        self.start_ns.saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    /// The largest k whose deadline is at or before `now`.
    fn grid_index_at(&self, now: u64) -> u64 {
        let elapsed = u128::from(now.saturating_sub(self.start_ns));
        u64::try_from(elapsed * u128::from(self.hz) / u128::from(NS_PER_SEC)).unwrap_or(u64::MAX)
    }

    fn period_ns(&self) -> u64 {
        NS_PER_SEC / u64::from(self.hz.max(1))
    }

    fn load(&self) -> u64 {
        u64::from(self.hz.max(1))
    }

    fn sub_index(&self, key: SubscriberKey) -> Option<usize> {
        self.subs.binary_search_by_key(&key, |s| s.key).ok()
    }

    fn mailbox(&self, key: SubscriberKey) -> Option<&Outbox> {
        self.sub_index(key).map(|index| &self.subs[index].mailbox)
    }

    /// Removes a subscriber and drops its queued inputs.
    fn remove_sub(&mut self, key: SubscriberKey) -> Option<Outbox> {
        let index = self.sub_index(key)?;
        let sub = self.subs.remove(index);
        if sub.queued > 0 {
            self.inputs.retain(|input| input.key != key);
        }
        Some(sub.mailbox)
    }

    /// A reconnect: the subscription moves to a new key with its queued inputs, and the
    /// old connection's mailbox is returned to be closed.
    fn rekey_sub(
        &mut self,
        old: SubscriberKey,
        new: SubscriberKey,
        mailbox: Outbox,
    ) -> Option<Outbox> {
        let queued = self.sub_index(old).map_or(0, |index| self.subs[index].queued);
        let replaced = self.sub_index(old).map(|index| self.subs.remove(index).mailbox);
        for input in self.inputs.iter_mut().filter(|input| input.key == old) {
            input.key = new;
        }
        self.subs.push(Sub { key: new, queued, mailbox });
        replaced
    }

    /// Queues a raw input for the next step.
    fn queue_input(&mut self, input: QueuedInput) -> Result<(), InputRejected> {
        let max = self.max_queued;
        let index = self.sub_index(input.key).ok_or(InputRejected::UnknownSubscriber)?;
        let sub = &mut self.subs[index];
        if sub.queued >= max {
            return Err(InputRejected::QueueFull);
        }
        sub.queued += 1;
        self.inputs.push(input);
        Ok(())
    }

    /// Answers the receipts of `key`'s queued inputs: they were dropped with it.
    fn forget_receipts(&mut self, key: SubscriberKey) {
        if self.receipts.is_empty() {
            return;
        }
        let (gone, kept): (Vec<Awaiting>, Vec<Awaiting>) =
            self.receipts.drain(..).partition(|a| a.key == key);
        self.receipts = kept;
        for a in gone {
            a.receipt.fill(InputVerdict::Rejected(InputRejected::UnknownSubscriber));
        }
    }

    fn publish_status(&self) {
        self.status.update(
            self.shard.tick(),
            self.shard.subscriber_count(),
            self.shard.queued_inputs() + self.inputs.len(),
        );
    }

    fn prefetch_mailboxes(&self) {
        for sub in &self.subs {
            prefetch(Arc::as_ptr(&sub.mailbox).cast(), size_of::<Mailbox<Outgoing>>());
        }
    }

    /// Whether an event-driven shard has something to step for.
    fn wants_step(&self) -> bool {
        !self.inputs.is_empty() || self.shard.wants_step()
    }
}

/// Scratch state shared by every shard of the thread (buffers are reused every tick).
struct Ctx {
    clock: Arc<dyn Clock>,
    metrics: Arc<ThreadMetrics>,
    max_catch_up: u64,
    idle_timeout_ns: u64,
    out: Vec<(SubscriberKey, Outgoing)>,
    stamps: Vec<u64>,
    refused: Vec<(SubscriberKey, u64)>,
    gone: Vec<SubscriberKey>,
    persist: Option<PersistSink>,
}

impl Ctx {
    /// Hands `record` to persistence without waiting; counts it as skipped when full.
    fn persist(&self, record: Persist) {
        let Some(sink) = &self.persist else { return };
        match sink.tx.try_send(record) {
            Ok(()) => self.metrics.persisted.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.metrics.persist_skipped.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The shards of one thread: a slab plus an id index.
#[derive(Default)]
struct Shards {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    index: IdMap<usize>,
}

impl Shards {
    fn get_mut(&mut self, id: ShardId) -> Option<&mut Entry> {
        let slot = *self.index.get(&id)?;
        self.entries.get_mut(slot)?.as_mut()
    }

    /// Starts loading a shard's record (the first stage of `Scheduler::run_due`'s
    /// prefetch: its fields say where the rest is).
    fn prefetch_entry(&self, id: ShardId) {
        if let Some(entry) = self.index.get(&id).and_then(|&slot| self.entries.get(slot)) {
            prefetch(std::ptr::from_ref(entry).cast(), size_of::<Option<Entry>>());
        }
    }

    /// Starts loading what a shard's step touches first: the shard itself (its world and
    /// schedule are inline), its queued inputs, its subscriber list and its status block.
    fn prefetch_step(&self, id: ShardId) {
        let Some(entry) = self.index.get(&id).and_then(|&slot| self.entries.get(slot)?.as_ref())
        else {
            return;
        };
        let shard: &dyn DynShard = entry.shard.as_ref();
        prefetch(std::ptr::from_ref(shard).cast(), size_of_val(shard));
        prefetch(entry.inputs.as_ptr().cast(), size_of_val(entry.inputs.as_slice()));
        prefetch(entry.subs.as_ptr().cast(), size_of_val(entry.subs.as_slice()));
        prefetch(Arc::as_ptr(&entry.status).cast(), size_of::<ShardStatus>());
    }

    /// Starts loading a shard's mailboxes (the last stage: it reads the subscriber list,
    /// which the previous stage loaded).
    fn prefetch_mailboxes(&self, id: ShardId) {
        if let Some(entry) = self.index.get(&id).and_then(|&slot| self.entries.get(slot)?.as_ref())
        {
            entry.prefetch_mailboxes();
        }
    }

    fn insert(&mut self, entry: Entry) {
        let id = entry.id;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        };
        self.index.insert(id, slot);
    }

    fn remove(&mut self, id: ShardId) -> Option<Entry> {
        let slot = self.index.remove(&id)?;
        let entry = self.entries.get_mut(slot).and_then(Option::take);
        self.free.push(slot);
        entry
    }
}

/// One tick thread's shards and deadlines.
pub struct Scheduler {
    ctx: Ctx,
    shards: Shards,
    heap: BinaryHeap<Reverse<(u64, ShardId)>>,
    /// The fixed-rate shards due in this `run_due` pass, in deadline order (reused).
    due: Vec<(u64, ShardId)>,
    ready: Vec<ShardId>,
    phases: crate::phases::Phases,
    next_sweep_ns: u64,
    max_park_ns: u64,
}

impl Scheduler {
    /// An empty scheduler reading `clock` and recording into `metrics`.
    #[must_use]
    pub fn new(config: &TickConfig, clock: Arc<dyn Clock>, metrics: Arc<ThreadMetrics>) -> Self {
        let now = clock.now_ns();
        Self {
            ctx: Ctx {
                clock,
                metrics,
                max_catch_up: u64::from(config.max_catch_up_ticks.max(1)),
                idle_timeout_ns: u64::try_from(config.idle_timeout.as_nanos()).unwrap_or(u64::MAX),
                out: Vec::new(),
                stamps: Vec::new(),
                refused: Vec::new(),
                gone: Vec::new(),
                persist: None,
            },
            shards: Shards::default(),
            heap: BinaryHeap::new(),
            due: Vec::new(),
            ready: Vec::new(),
            phases: crate::phases::Phases::default(),
            next_sweep_ns: now.saturating_add(SWEEP_INTERVAL_NS),
            max_park_ns: u64::try_from(config.max_park.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Sends saved states, outcomes and drops to `sink` from now on.
    pub fn set_persistence(&mut self, sink: PersistSink) {
        self.ctx.persist = Some(sink);
    }

    /// Shards owned.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.index.len()
    }

    /// Whether no shard is owned.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.shards.index.is_empty()
    }

    /// Handles one command at time `now`.
    pub fn handle(&mut self, command: Command, now: u64) -> Flow {
        match command {
            Command::Create { shard, state, status } => self.create(shard, state, status, now),
            Command::Join { shard, sid, auth, mailbox } => {
                self.join(shard, sid, &auth, mailbox, now)
            }
            Command::Leave { shard, key } => {
                if let Some(entry) = self.shards.get_mut(shard) {
                    if let Some(mailbox) = entry.remove_sub(key) {
                        mailbox.close();
                    }
                    guarded(&self.ctx, entry, |s| s.handle_leave(key));
                    entry.forget_receipts(key);
                }
                self.after_command(shard);
            }
            Command::Input { shard, from, client_seq, payload, sent_at_ns, receipt } => {
                let args = InputArgs { from, client_seq, payload, sent_at_ns, receipt };
                self.input(shard, args, now);
            }
            Command::Stop { shard, reason } => self.stop(shard, reason),
            Command::Shutdown => {
                let ids: Vec<ShardId> = self.shards.index.keys().copied().collect();
                for id in ids {
                    self.stop(id, StopReason::Shutdown);
                }
                return Flow::Shutdown;
            }
        }
        Flow::Continue
    }

    fn join(&mut self, shard: ShardId, sid: Arc<str>, auth: &Auth, mailbox: Outbox, now: u64) {
        let Some(entry) = self.shards.get_mut(shard) else {
            reject_join(&mailbox);
            return;
        };
        entry.last_activity_ns = now;
        match guarded(&self.ctx, entry, |s| s.handle_join(sid, auth)) {
            Some(Ok(joined)) => {
                let frame =
                    Outgoing::Joined { key: joined.key, resumed: joined.replaced.is_some() };
                // A fresh mailbox has room: the push cannot overflow.
                let _ = mailbox.push_reliable(frame);
                let replaced = match joined.replaced {
                    Some(old) => entry.rekey_sub(old, joined.key, mailbox),
                    None => {
                        entry.subs.push(Sub { key: joined.key, queued: 0, mailbox });
                        None
                    }
                };
                if let Some(old) = replaced {
                    old.close();
                }
            }
            Some(Err(why)) => {
                let _ = mailbox.push_reliable(Outgoing::JoinRejected(why));
                mailbox.close();
            }
            None => reject_join(&mailbox),
        }
        self.after_command(shard);
    }

    /// Queues one input. Only an input the shard accepted counts as activity: inputs it
    /// refuses (a sid with no subscription, a full queue, bad bytes) never keep an
    /// otherwise idle match from its idle stop.
    ///
    /// A socket input (a key, no receipt) is queued raw after the subscriber and queue
    /// checks, without touching the shard; one with a receipt is decoded once on arrival
    /// too, so that a bad payload is answered at once.
    fn input(&mut self, shard: ShardId, args: InputArgs, now: u64) {
        let InputArgs { from, client_seq, payload, sent_at_ns, receipt } = args;
        let Some(entry) = self.shards.get_mut(shard) else {
            self.ctx.metrics.count_rejected(InputRejected::Finished);
            if let Some(receipt) = receipt {
                receipt.fill(InputVerdict::Rejected(InputRejected::Finished));
            }
            return;
        };
        let key = match &from {
            InputFrom::Key(key) => *key,
            InputFrom::Sid(sid) => {
                entry.shard.find_subscriber(sid).unwrap_or(SubscriberKey(u32::MAX))
            }
        };
        let checked = if receipt.is_none() || entry.sub_index(key).is_none() {
            Some(Ok(()))
        } else {
            guarded(&self.ctx, entry, |s| s.check_input(&payload))
        };
        let Some(checked) = checked else {
            // The game's decoder panicked: the match is over, and the dropped receipt says so.
            self.after_command(shard);
            return;
        };
        let queued = checked.and_then(|()| {
            entry.queue_input(QueuedInput { key, client_seq, payload, stamp: sent_at_ns })
        });
        match queued {
            Ok(()) => {
                entry.last_activity_ns = now;
                if let Some(receipt) = receipt {
                    entry.receipts.push(Awaiting { key, stamp: sent_at_ns, receipt });
                }
                if entry.hz == 0 && !entry.in_ready {
                    entry.in_ready = true;
                    self.ready.push(shard);
                }
            }
            Err(reason) => {
                self.ctx.metrics.count_rejected(reason);
                if let Some(receipt) = receipt {
                    receipt.fill(InputVerdict::Rejected(reason));
                }
            }
        }
    }

    fn create(
        &mut self,
        id: ShardId,
        shard: Box<dyn DynShard>,
        status: Arc<ShardStatus>,
        now: u64,
    ) {
        let hz = shard.tick_rate_hz();
        let (start_ns, slot) = self.phases.place(hz, now);
        let entry = Entry {
            start_ns,
            slot,
            id,
            max_queued: shard.limits().max_queued_inputs,
            shard,
            status,
            subs: Vec::new(),
            inputs: Vec::new(),
            hz,
            in_ready: false,
            k: 1,
            last_activity_ns: now,
            receipts: Vec::new(),
        };
        // A restored shard starts at its saved tick: show it before the first step.
        entry.publish_status();
        entry.status.set_state(ShardState::Running);
        if hz > 0 {
            self.heap.push(Reverse((entry.deadline(1), id)));
        }
        self.ctx.metrics.shards.fetch_add(1, Ordering::Relaxed);
        self.shards.insert(entry);
    }

    /// After a command: publish status, queue event-driven shards that now want a step,
    /// and drop shards that died while handling it. (Inputs skip this: their queue length
    /// in the status block is refreshed every tick, and a store per input would cost a
    /// cache miss per input.)
    fn after_command(&mut self, id: ShardId) {
        let Some(entry) = self.shards.get_mut(id) else {
            return;
        };
        if entry.shard.is_finished() {
            // Only a panic (the shard was replaced by `Dead`) finishes a shard outside a step.
            self.finish(id, ShardState::Panicked);
            return;
        }
        entry.publish_status();
        if entry.hz == 0 && !entry.in_ready && entry.wants_step() {
            entry.in_ready = true;
            self.ready.push(id);
        }
    }

    fn stop(&mut self, id: ShardId, reason: StopReason) {
        let Some(entry) = self.shards.get_mut(id) else {
            return;
        };
        if reason == StopReason::Shutdown {
            // Saved before it stops: the match resumes after the restart.
            if let Some(Some(saved)) = guarded(&self.ctx, entry, |s| s.save()) {
                self.ctx.persist(Persist::Saved { shard: id, saved: Box::new(saved) });
            }
        } else {
            self.ctx.persist(Persist::Dropped { shard: id });
        }
        guarded(&self.ctx, entry, |s| s.stop(reason));
        let state = match reason {
            StopReason::Panicked => ShardState::Panicked,
            StopReason::Idle => ShardState::Idle,
            _ => ShardState::Stopped,
        };
        self.finish(id, state);
    }

    /// Delivers what the shard still has to say, closes every mailbox, frees the shard.
    fn finish(&mut self, id: ShardId, state: ShardState) {
        let Some(mut entry) = self.shards.remove(id) else {
            return;
        };
        self.phases.release(entry.hz, entry.slot);
        deliver(&mut self.ctx, &mut entry);
        for sub in entry.subs.drain(..) {
            sub.mailbox.close();
        }
        entry.publish_status();
        if entry.status.state() != ShardState::Panicked {
            entry.status.set_state(state);
        }
        let metrics = &self.ctx.metrics;
        metrics.shards.fetch_sub(1, Ordering::Relaxed);
        metrics.load.fetch_sub(entry.load(), Ordering::Relaxed);
        metrics.shards_removed.fetch_add(1, Ordering::Relaxed);
    }

    /// Steps every shard whose deadline is at or before `now` (with bounded catch-up) and
    /// every event-driven shard that has something to step for.
    ///
    /// Thousands of matches share a thread, so each one's memory has left the caches by its
    /// next tick. The shards due are taken first, then stepped in order while the memory
    /// of the next ones is prefetched in stages, each reading only what the stage before
    /// loaded one step earlier: the record of the shard three ahead; the shard, inputs,
    /// subscriber list and status of the one two ahead; the mailboxes of the next. Their
    /// loads overlap the current step instead of stalling the next ones.
    pub fn run_due(&mut self, now: u64) {
        let mut due = std::mem::take(&mut self.due);
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            due.push((deadline, id));
        }
        for (i, &(deadline, id)) in due.iter().enumerate() {
            if let Some(&(_, ahead)) = due.get(i + 3) {
                self.shards.prefetch_entry(ahead);
            }
            if let Some(&(_, ahead)) = due.get(i + 2) {
                self.shards.prefetch_step(ahead);
            }
            if let Some(&(_, next)) = due.get(i + 1) {
                self.shards.prefetch_mailboxes(next);
            }
            self.run_fixed(id, deadline, now);
        }
        due.clear();
        self.due = due;
        let ready = std::mem::take(&mut self.ready);
        for &id in &ready {
            let Some(entry) = self.shards.get_mut(id) else {
                continue;
            };
            entry.in_ready = false;
            if entry.wants_step() {
                let alive = step_entry(&mut self.ctx, entry, None);
                self.settle(id, alive);
            }
        }
        self.ready = ready;
        self.ready.clear();
    }

    fn run_fixed(&mut self, id: ShardId, deadline: u64, now: u64) {
        let Some(entry) = self.shards.get_mut(id) else {
            return;
        };
        if entry.deadline(entry.k) != deadline {
            return; // a stale heap entry
        }
        let due = entry.grid_index_at(now).saturating_sub(entry.k) + 1;
        let run = due.min(self.ctx.max_catch_up);
        let mut alive = true;
        for i in 0..run {
            let at = entry.deadline(entry.k + i);
            alive = step_entry(&mut self.ctx, entry, Some(at));
            if !alive {
                break;
            }
        }
        entry.k += due;
        self.ctx.metrics.skipped_ticks.fetch_add(due - run, Ordering::Relaxed);
        if alive {
            self.heap.push(Reverse((entry.deadline(entry.k), id)));
        }
        self.settle(id, alive);
    }

    /// Removes a shard that finished, stopped or panicked during a step.
    fn settle(&mut self, id: ShardId, alive: bool) {
        let Some(entry) = self.shards.get_mut(id) else {
            return;
        };
        if !alive {
            self.ctx.persist(Persist::Dropped { shard: id });
            self.finish(id, ShardState::Panicked);
        } else if entry.shard.is_finished() {
            let record = Persist::Finished {
                shard: id,
                game: entry.shard.game(),
                tick: entry.shard.tick(),
                outcome: guarded(&self.ctx, entry, |s| s.outcome_json()).flatten(),
                replay: entry.shard.replay_log().map(|log| Box::new(log.clone())),
            };
            self.ctx.persist(record);
            self.finish(id, ShardState::Finished);
        }
    }

    /// Stops shards that had no subscribers and no input for the idle timeout. Runs at most
    /// once a second.
    pub fn sweep_idle(&mut self, now: u64) {
        if now < self.next_sweep_ns {
            return;
        }
        self.next_sweep_ns = now.saturating_add(SWEEP_INTERVAL_NS);
        let timeout = self.ctx.idle_timeout_ns;
        let idle: Vec<ShardId> = self
            .shards
            .entries
            .iter()
            .flatten()
            .filter(|e| e.subs.is_empty() && now.saturating_sub(e.last_activity_ns) >= timeout)
            .map(|e| e.id)
            .collect();
        for id in idle {
            self.stop(id, StopReason::Idle);
        }
    }

    /// When this thread must next wake: the earliest deadline, an idle sweep, or `now` if
    /// an event-driven shard is waiting; never later than `now + max_park`.
    #[must_use]
    pub fn next_wake(&self, now: u64) -> u64 {
        if !self.ready.is_empty() {
            return now;
        }
        let cap = now.saturating_add(self.max_park_ns).min(self.next_sweep_ns);
        self.heap.peek().map_or(cap, |Reverse((deadline, _))| (*deadline).min(cap))
    }

    /// The earliest shard deadline, if any fixed-rate shard is scheduled.
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }
}

fn reject_join(mailbox: &Outbox) {
    let _ = mailbox.push_reliable(Outgoing::JoinRejected(pylon_shard::JoinRejected::Finished));
    mailbox.close();
}

/// Runs `f` on the shard, containing a panic: the match is stopped (every subscriber gets
/// `Stopped(Panicked)`), counted, and `None` is returned. The thread keeps going.
fn guarded<R>(ctx: &Ctx, entry: &mut Entry, f: impl FnOnce(&mut dyn DynShard) -> R) -> Option<R> {
    if let Ok(value) = catch_unwind(AssertUnwindSafe(|| f(entry.shard.as_mut()))) {
        return Some(value);
    }
    ctx.metrics.panics.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        shard = entry.id,
        game = entry.shard.game(),
        "game code panicked; match stopped"
    );
    for sub in entry.subs.drain(..) {
        let _ = sub.mailbox.push_reliable(Outgoing::Stopped(StopReason::Panicked));
        sub.mailbox.close();
    }
    entry.inputs.clear();
    entry.status.set_state(ShardState::Panicked);
    // The shard may be half-updated: mark it so nothing steps it again before removal.
    entry.hz = 0;
    entry.shard = Box::new(Dead);
    None
}

/// Runs one step at (optional) deadline `at`; returns false if the game panicked.
fn step_entry(ctx: &mut Ctx, entry: &mut Entry, at: Option<u64>) -> bool {
    let started = ctx.clock.now_ns();
    if let Some(deadline) = at {
        ctx.metrics.lateness_us.record(started.saturating_sub(deadline) / 1_000);
    }
    let mut inputs = std::mem::take(&mut entry.inputs);
    let stepped = guarded(ctx, entry, |s| s.step_with(&mut inputs));
    inputs.clear();
    entry.inputs = inputs;
    for sub in &mut entry.subs {
        sub.queued = 0;
    }
    let Some(report) = stepped else {
        return false;
    };
    let ended = ctx.clock.now_ns();
    let took = ended.saturating_sub(started);
    let metrics = &ctx.metrics;
    metrics.tick_duration_us.record(took / 1_000);
    if entry.hz > 0 && took > entry.period_ns() {
        metrics.overruns.fetch_add(1, Ordering::Relaxed);
    }
    metrics.ticks.fetch_add(1, Ordering::Relaxed);
    metrics.inputs_applied.fetch_add(u64::from(report.inputs_applied), Ordering::Relaxed);
    metrics.inputs_unauthorized.fetch_add(u64::from(report.inputs_unauthorized), Ordering::Relaxed);
    if report.inputs_undecodable > 0 {
        metrics.count_rejected_many(InputRejected::Decode, u64::from(report.inputs_undecodable));
    }
    entry.shard.drain_applied_stamps(&mut ctx.stamps);
    entry.shard.drain_refused(&mut ctx.refused);
    if !entry.receipts.is_empty() {
        answer_receipts(ctx, entry);
    }
    ctx.refused.clear();
    for stamp in ctx.stamps.drain(..) {
        metrics.input_latency_us.record(started.saturating_sub(stamp) / 1_000);
    }
    // Status first: a subscriber that sees tick N in its mailbox then sees status >= N.
    entry.publish_status();
    deliver(ctx, entry);
    let every = ctx.persist.as_ref().map_or(0, |p| p.every_ticks);
    // Each match saves every `every` ticks, at a tick offset spread by its id: matches
    // created together (a burst, a restore) do not all save, and load the persister, in
    // the same tick.
    if every > 0
        && !report.finished
        && entry.shard.tick().wrapping_add(entry.id).is_multiple_of(every)
    {
        let id = entry.id;
        if let Some(Some(saved)) = guarded(ctx, entry, |s| s.save()) {
            ctx.persist(Persist::Saved { shard: id, saved: Box::new(saved) });
        }
    }
    true
}

/// Answers every waiting receipt after a step: every queued input was taken by it, so each
/// was applied, refused by the game, or dropped with its subscriber.
fn answer_receipts(ctx: &Ctx, entry: &mut Entry) {
    for a in entry.receipts.drain(..) {
        let verdict = if ctx.refused.contains(&(a.key, a.stamp)) {
            InputVerdict::Unauthorized
        } else if ctx.stamps.contains(&a.stamp) {
            InputVerdict::Applied
        } else {
            InputVerdict::Rejected(InputRejected::UnknownSubscriber)
        };
        a.receipt.fill(verdict);
    }
}

/// Moves the shard's frames into mailboxes: the step's snapshot (one shared payload, each
/// subscriber's ack beside it) into the latest slots, then the reliable frames. Drops
/// subscribers whose writer is gone or whose reliable queue overflowed.
fn deliver(ctx: &mut Ctx, entry: &mut Entry) {
    // Cold mailboxes (no pass ahead loaded them): load them all at once rather than one
    // after another. Lines already loaded make this a few no-op instructions.
    entry.prefetch_mailboxes();
    let Entry { shard, subs, .. } = entry;
    let mut next = 0;
    shard.take_snapshots(&mut |key: SubscriberKey, frame: SnapshotFrame| {
        // Both lists are in key order: one walk, no search.
        while subs.get(next).is_some_and(|s| s.key < key) {
            next += 1;
        }
        if let Some(sub) = subs.get(next).filter(|s| s.key == key) {
            sub.mailbox.publish_latest(Outgoing::Snapshot(frame));
        }
    });
    entry.shard.drain_outgoing(&mut ctx.out);
    for (key, frame) in ctx.out.drain(..) {
        let Some(mailbox) = entry.mailbox(key) else {
            continue;
        };
        let terminal = matches!(frame, Outgoing::MatchEnd(_) | Outgoing::Stopped(_));
        if frame.is_droppable() {
            mailbox.publish_latest(frame);
        } else if mailbox.push_reliable(frame).is_err() {
            ctx.metrics.mailbox_overflows.fetch_add(1, Ordering::Relaxed);
            ctx.gone.push(key);
        }
        if terminal {
            mailbox.close();
        }
    }
    ctx.gone.extend(entry.subs.iter().filter(|s| s.mailbox.is_consumer_gone()).map(|s| s.key));
    let mut gone = std::mem::take(&mut ctx.gone);
    for key in gone.drain(..) {
        if let Some(mailbox) = entry.remove_sub(key) {
            mailbox.close();
            // Game code: contained like every other call into the shard.
            guarded(ctx, entry, |s| s.handle_leave(key));
            entry.forget_receipts(key);
        }
    }
    ctx.gone = gone;
}

/// Asks the CPU to start loading the `len` bytes at `start` into its caches. A hint: it
/// never faults, whatever the address, and changes nothing (a no-op off x86_64).
fn prefetch(start: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        const LINE: usize = 64;
        let first = start.wrapping_sub(start.addr() % LINE);
        let lines = (start.addr() % LINE + len).div_ceil(LINE);
        for line in 0..lines {
            // SAFETY: a prefetch only hints at an address; it cannot fault or change
            // memory. SSE is part of the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(line * LINE).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}

/// Stands in for a shard whose game panicked until the scheduler removes it.
struct Dead;

impl DynShard for Dead {
    fn game(&self) -> &'static str {
        "dead"
    }
    fn tick_rate_hz(&self) -> u32 {
        0
    }
    fn tick(&self) -> u64 {
        0
    }
    fn subscriber_count(&self) -> usize {
        0
    }
    fn queued_inputs(&self) -> usize {
        0
    }
    fn is_finished(&self) -> bool {
        true
    }
    fn wants_step(&self) -> bool {
        false
    }
    fn limits(&self) -> pylon_shard::ShardLimits {
        pylon_shard::ShardLimits::default()
    }
    fn handle_join(
        &mut self,
        _: Arc<str>,
        _: &pylon_shard::Auth,
    ) -> Result<pylon_shard::Joined, pylon_shard::JoinRejected> {
        Err(pylon_shard::JoinRejected::Finished)
    }
    fn handle_leave(&mut self, _: SubscriberKey) -> bool {
        false
    }
    fn handle_input(
        &mut self,
        _: SubscriberKey,
        _: Option<u64>,
        _: &pylon_shard::codec::InputPayload,
        _: u64,
    ) -> Result<(), pylon_shard::InputRejected> {
        Err(pylon_shard::InputRejected::Finished)
    }
    fn check_input(&self, _: &InputPayload) -> Result<(), pylon_shard::InputRejected> {
        Err(pylon_shard::InputRejected::Finished)
    }
    fn find_subscriber(&self, _: &str) -> Option<SubscriberKey> {
        None
    }
    fn step(&mut self) -> pylon_shard::StepReport {
        pylon_shard::StepReport::default()
    }
    fn step_with(&mut self, inputs: &mut Vec<QueuedInput>) -> pylon_shard::StepReport {
        inputs.clear();
        pylon_shard::StepReport::default()
    }
    fn take_snapshots(&mut self, _: &mut dyn FnMut(SubscriberKey, SnapshotFrame)) {}
    fn stop(&mut self, _: StopReason) {}
    fn drain_outgoing(&mut self, _: &mut Vec<(SubscriberKey, Outgoing)>) {}
    fn drain_applied_stamps(&mut self, _: &mut Vec<u64>) {}
    fn drain_refused(&mut self, _: &mut Vec<(SubscriberKey, u64)>) {}
    fn save(&mut self) -> Option<pylon_shard::SavedMatch> {
        None
    }
    fn outcome_json(&mut self) -> Option<serde_json::Value> {
        None
    }
    fn state_hash(&mut self) -> u64 {
        0
    }
    fn replay_log(&self) -> Option<&pylon_shard::replay::ReplayLog> {
        None
    }
}
