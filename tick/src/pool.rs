//! The tick pool: `threads` named OS threads (`pylon-tick-N`), each running a
//! [`Scheduler`] fed by its own bounded crossbeam channel. The I/O side holds
//! [`ShardHandle`]s: sending never blocks (a full channel is an error to report), and
//! urgent commands (joins, leaves, stops, inputs for event-driven shards) unpark the thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};
use pylon_shard::codec::InputPayload;
use pylon_shard::{Auth, DynShard, Outgoing, StopReason, SubscriberKey};

use crate::clock::Clock;
use crate::command::{Command, InputFrom, ShardId};
use crate::config::TickConfig;
use crate::error::{SendError, StartError};
use crate::mailbox::Mailbox;
use crate::metrics::ThreadMetrics;
use crate::receipt::{InputReceipt, InputVerdict};
use crate::scheduler::{Flow, Scheduler};
use crate::status::ShardStatus;

/// The sending side of one tick thread.
#[derive(Debug)]
struct Inbox {
    tx: Sender<Command>,
    thread: Thread,
    metrics: Arc<ThreadMetrics>,
}

impl Inbox {
    fn send(&self, command: Command, urgent: bool) -> Result<(), SendError> {
        match self.tx.try_send(command) {
            Ok(()) => {
                if urgent {
                    self.thread.unpark();
                }
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.metrics.commands_rejected.fetch_add(1, Ordering::Relaxed);
                Err(SendError::Full)
            }
            Err(TrySendError::Disconnected(_)) => Err(SendError::Closed),
        }
    }
}

/// A pool of tick threads. Dropping it shuts the threads down (see [`TickPool::shutdown`]).
pub struct TickPool {
    inboxes: Vec<Arc<Inbox>>,
    joins: Mutex<Vec<JoinHandle<()>>>,
    clock: Arc<dyn Clock>,
    next_id: AtomicU64,
}

impl TickPool {
    /// Starts `config.threads` tick threads reading `clock`.
    ///
    /// # Errors
    /// [`StartError`] when no thread was asked for or the OS refuses one.
    pub fn start(config: &TickConfig, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        Self::start_with_persistence(config, clock, None)
    }

    /// Like [`TickPool::start`], with every thread sending [`crate::Persist`] records to
    /// `sink` (saved states every `sink.every_ticks`, outcomes, drops).
    ///
    /// # Errors
    /// [`StartError`] when no thread was asked for or the OS refuses one.
    pub fn start_with_persistence(
        config: &TickConfig,
        clock: Arc<dyn Clock>,
        sink: Option<crate::PersistSink>,
    ) -> Result<Self, StartError> {
        if config.threads == 0 {
            return Err(StartError::NoThreads);
        }
        let mut inboxes = Vec::with_capacity(config.threads);
        let mut joins = Vec::with_capacity(config.threads);
        for n in 0..config.threads {
            let (tx, rx) = bounded(config.command_capacity.max(1));
            let metrics = Arc::new(ThreadMetrics::default());
            let mut scheduler = Scheduler::new(config, clock.clone(), metrics.clone());
            if let Some(sink) = &sink {
                scheduler.set_persistence(sink.clone());
            }
            let thread_clock = clock.clone();
            let budget = config.command_batch.max(1);
            let slack = config.wake_slack;
            let join = std::thread::Builder::new()
                .name(format!("pylon-tick-{n}"))
                .spawn(move || run_thread(&rx, scheduler, thread_clock.as_ref(), budget, slack))?;
            inboxes.push(Arc::new(Inbox { tx, thread: join.thread().clone(), metrics }));
            joins.push(join);
        }
        Ok(Self { inboxes, joins: Mutex::new(joins), clock, next_id: AtomicU64::new(1) })
    }

    /// Hands `shard` to the least-loaded thread and returns its handle.
    ///
    /// # Errors
    /// [`SendError`] when that thread's channel is full or the pool is shut down.
    pub fn spawn(&self, shard: Box<dyn DynShard>) -> Result<ShardHandle, SendError> {
        let inbox = self
            .inboxes
            .iter()
            .min_by_key(|i| i.metrics.load.load(Ordering::Relaxed))
            .ok_or(SendError::Closed)?;
        let hz = shard.tick_rate_hz();
        let load = u64::from(hz.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let status = Arc::new(ShardStatus::new(shard.game(), hz));
        inbox.metrics.load.fetch_add(load, Ordering::Relaxed);
        let create = Command::Create { shard: id, state: shard, status: status.clone() };
        if let Err(e) = inbox.send(create, true) {
            inbox.metrics.load.fetch_sub(load, Ordering::Relaxed);
            return Err(e);
        }
        Ok(ShardHandle { id, hz, inbox: inbox.clone(), status, clock: self.clock.clone() })
    }

    /// Each thread's metrics, in thread order.
    #[must_use]
    pub fn metrics(&self) -> Vec<Arc<ThreadMetrics>> {
        self.inboxes.iter().map(|i| i.metrics.clone()).collect()
    }

    /// The pool's clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Stops every shard (subscribers get `Stopped(Shutdown)`) and joins the threads.
    /// Idempotent. Waits at most `timeout` per thread for room in its channel.
    pub fn shutdown(&self, timeout: Duration) {
        for inbox in &self.inboxes {
            if inbox.tx.send_timeout(Command::Shutdown, timeout).is_ok() {
                inbox.thread.unpark();
            }
        }
        let joins = match self.joins.lock() {
            Ok(mut joins) => std::mem::take(&mut *joins),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for join in joins {
            if join.join().is_err() {
                tracing::error!("a tick thread panicked outside a shard");
            }
        }
    }
}

impl Drop for TickPool {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(5));
    }
}

fn run_thread(
    rx: &Receiver<Command>,
    mut scheduler: Scheduler,
    clock: &dyn Clock,
    budget: usize,
    slack: Duration,
) {
    loop {
        let now = clock.now_ns();
        for _ in 0..budget {
            match rx.try_recv() {
                Ok(command) => {
                    if scheduler.handle(command, now) == Flow::Shutdown {
                        return;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    scheduler.handle(Command::Shutdown, now);
                    return;
                }
            }
        }
        scheduler.run_due(clock.now_ns());
        scheduler.sweep_idle(clock.now_ns());
        let now = clock.now_ns();
        let wake = scheduler.next_wake(now);
        if wake > now && rx.is_empty() {
            std::thread::park_timeout(Duration::from_nanos(wake - now) + slack);
        }
    }
}

/// The I/O side's reference to one shard. Cheap to clone; every method returns at once.
#[derive(Clone)]
pub struct ShardHandle {
    id: ShardId,
    /// The shard's tick rate (fixed at creation; kept here so that an input does not read
    /// the status block, a cache miss per input on the I/O side).
    hz: u32,
    inbox: Arc<Inbox>,
    status: Arc<ShardStatus>,
    clock: Arc<dyn Clock>,
}

impl ShardHandle {
    /// The pool-unique shard id.
    #[must_use]
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// The shard's live status (tick, subscribers, queue, state).
    #[must_use]
    pub fn status(&self) -> &ShardStatus {
        &self.status
    }

    /// Subscribes `sid`; `Joined` or `JoinRejected` arrives in `mailbox`, then frames.
    ///
    /// # Errors
    /// [`SendError`] when the thread's channel is full or the pool is down.
    pub fn join(
        &self,
        sid: Arc<str>,
        auth: Auth,
        mailbox: Arc<Mailbox<Outgoing>>,
    ) -> Result<(), SendError> {
        self.inbox.send(Command::Join { shard: self.id, sid, auth, mailbox }, true)
    }

    /// Unsubscribes.
    ///
    /// # Errors
    /// [`SendError`] when the thread's channel is full or the pool is down.
    pub fn leave(&self, key: SubscriberKey) -> Result<(), SendError> {
        self.inbox.send(Command::Leave { shard: self.id, key }, true)
    }

    /// Queues one input for the next tick.
    ///
    /// # Errors
    /// [`SendError::Full`] when the thread is overloaded (the input is dropped and counted;
    /// tell the sender), or [`SendError::Closed`].
    pub fn input(
        &self,
        from: InputFrom,
        client_seq: Option<u64>,
        payload: InputPayload,
    ) -> Result<(), SendError> {
        self.send_input(from, client_seq, payload, None)
    }

    /// Queues one input and returns where the shard's [`InputVerdict`] arrives: after the
    /// tick that takes it (applied, or refused by the game), or at once when the shard
    /// refuses it on arrival. The mailbox ends without a verdict when the match ends first.
    ///
    /// # Errors
    /// [`SendError::Full`] when the thread is overloaded, or [`SendError::Closed`].
    pub fn input_with_receipt(
        &self,
        from: InputFrom,
        client_seq: Option<u64>,
        payload: InputPayload,
    ) -> Result<Arc<Mailbox<InputVerdict>>, SendError> {
        let (receipt, verdict) = InputReceipt::new();
        self.send_input(from, client_seq, payload, Some(receipt))?;
        Ok(verdict)
    }

    fn send_input(
        &self,
        from: InputFrom,
        client_seq: Option<u64>,
        payload: InputPayload,
        receipt: Option<InputReceipt>,
    ) -> Result<(), SendError> {
        let urgent = self.hz == 0;
        let sent_at_ns = self.clock.now_ns();
        let command =
            Command::Input { shard: self.id, from, client_seq, payload, sent_at_ns, receipt };
        self.inbox.send(command, urgent)
    }

    /// Stops the match.
    ///
    /// # Errors
    /// [`SendError`] when the thread's channel is full or the pool is down.
    pub fn stop(&self, reason: StopReason) -> Result<(), SendError> {
        self.inbox.send(Command::Stop { shard: self.id, reason }, true)
    }
}
