//! `Stepper`: a [`Scheduler`] on a [`ManualClock`] with no thread, for exact scheduling
//! tests: time moves only when the test moves it, and nothing ever sleeps.

use std::sync::Arc;

use pylon_shard::codec::InputPayload;
use pylon_shard::{Auth, DynShard, Outgoing, StopReason, SubscriberKey};

use crate::clock::ManualClock;
use crate::command::{Command, InputFrom, ShardId};
use crate::config::TickConfig;
use crate::mailbox::Mailbox;
use crate::metrics::ThreadMetrics;
use crate::receipt::{InputReceipt, InputVerdict};
use crate::scheduler::Scheduler;
use crate::status::ShardStatus;

/// A single-threaded scheduler harness driven by hand.
pub struct Stepper {
    /// The clock the scheduler reads.
    pub clock: Arc<ManualClock>,
    /// The scheduler's metrics.
    pub metrics: Arc<ThreadMetrics>,
    scheduler: Scheduler,
    next_id: ShardId,
}

impl Stepper {
    /// A stepper whose clock starts at `start_ns`.
    #[must_use]
    pub fn new(config: &TickConfig, start_ns: u64) -> Self {
        let clock = Arc::new(ManualClock::new(start_ns));
        let metrics = Arc::new(ThreadMetrics::default());
        let scheduler = Scheduler::new(config, clock.clone(), metrics.clone());
        Self { clock, metrics, scheduler, next_id: 1 }
    }

    /// Places a shard now; returns its id and status.
    pub fn spawn(&mut self, shard: Box<dyn DynShard>) -> (ShardId, Arc<ShardStatus>) {
        let id = self.next_id;
        self.next_id += 1;
        let status = Arc::new(ShardStatus::new(shard.game(), shard.tick_rate_hz()));
        self.send(Command::Create { shard: id, state: shard, status: status.clone() });
        (id, status)
    }

    /// Subscribes `sid` (as that user) with a fresh mailbox and returns the mailbox.
    pub fn join(&mut self, shard: ShardId, sid: &str) -> Arc<Mailbox<Outgoing>> {
        let mailbox = Arc::new(Mailbox::new(crate::mailbox::DEFAULT_RELIABLE_CAPACITY));
        let auth = Auth { user_id: sid.into(), is_admin: false };
        self.send(Command::Join { shard, sid: sid.into(), auth, mailbox: mailbox.clone() });
        mailbox
    }

    /// Sends an input from `key`.
    pub fn input(
        &mut self,
        shard: ShardId,
        key: SubscriberKey,
        client_seq: u64,
        payload: InputPayload,
    ) {
        let sent_at_ns = self.now();
        let from = InputFrom::Key(key);
        self.send(Command::Input {
            shard,
            from,
            client_seq: Some(client_seq),
            payload,
            sent_at_ns,
            receipt: None,
        });
    }

    /// Sends an input from `from` with a receipt; returns where its verdict arrives.
    pub fn input_with_receipt(
        &mut self,
        shard: ShardId,
        from: InputFrom,
        payload: InputPayload,
    ) -> Arc<Mailbox<InputVerdict>> {
        let (receipt, verdict) = InputReceipt::new();
        let sent_at_ns = self.now();
        let receipt = Some(receipt);
        self.send(Command::Input { shard, from, client_seq: None, payload, sent_at_ns, receipt });
        verdict
    }

    /// Stops a shard.
    pub fn stop(&mut self, shard: ShardId, reason: StopReason) {
        self.send(Command::Stop { shard, reason });
    }

    /// Handles one command at the current time, then runs what is due.
    pub fn send(&mut self, command: Command) {
        let now = self.now();
        self.scheduler.handle(command, now);
        self.scheduler.run_due(now);
    }

    /// The current fake time.
    #[must_use]
    pub fn now(&self) -> u64 {
        use crate::clock::Clock;
        self.clock.now_ns()
    }

    /// Moves time to each deadline up to `until_ns` in order, running what is due at each.
    pub fn run_until(&mut self, until_ns: u64) {
        while let Some(deadline) = self.scheduler.next_deadline() {
            if deadline > until_ns {
                break;
            }
            self.clock.set(deadline);
            self.scheduler.run_due(deadline);
        }
        self.clock.set(until_ns);
        self.scheduler.run_due(until_ns);
        self.scheduler.sweep_idle(until_ns);
    }

    /// Jumps time forward by `ns` without running anything in between (a stall), then
    /// runs what is due once.
    pub fn stall(&mut self, ns: u64) {
        self.clock.advance(ns);
        let now = self.now();
        self.scheduler.run_due(now);
    }

    /// The earliest deadline scheduled.
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        self.scheduler.next_deadline()
    }

    /// Shards owned.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.scheduler.len()
    }
}
