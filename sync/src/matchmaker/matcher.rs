//! The matcher task: runs [`Queue::run_pass_with`] on a fixed interval on the tokio
//! runtime (never on a tick thread, never inside a request), renews Redis leases every
//! third of their TTL in a task of its own (so a long pass cannot let them lapse),
//! broadcasts what each pass committed to the process's subscribers (the API's push
//! paths) and keeps the queue lengths of the last pass (metrics).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::queue::{KeepKeys, MatchHost, Queue};
use super::ticket::{Assignment, QueueKey, TicketId};

/// Tickets still queued after the last pass, per queue this process matched then.
pub type QueueLengths = Arc<BTreeMap<QueueKey, usize>>;

/// Default [`MatcherConfig::interval`]: a pass every 250 ms.
pub const DEFAULT_PASS_INTERVAL: Duration = Duration::from_millis(250);
/// Default [`MatcherConfig::capacity`]: events a slow subscriber may lag behind.
pub const DEFAULT_EVENT_CAPACITY: usize = 4096;

/// How often the matcher runs and how much it buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatcherConfig {
    /// Time between the starts of two passes ([`DEFAULT_PASS_INTERVAL`]).
    pub interval: Duration,
    /// Broadcast capacity ([`DEFAULT_EVENT_CAPACITY`]); a subscriber that lags further is
    /// told so and reads [`Queue::status`] instead.
    pub capacity: usize,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self { interval: DEFAULT_PASS_INTERVAL, capacity: DEFAULT_EVENT_CAPACITY }
    }
}

/// What a pass of this process committed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MatchEvent {
    /// A match was decided: create it (or add to it, for backfill) and tell its players.
    Matched(Arc<Assignment>),
    /// A ticket waited past its timeout.
    Expired(TicketId),
}

/// The running matcher of one [`Queue`].
#[derive(Debug)]
pub struct MatcherHandle {
    queue: Arc<Queue>,
    events: broadcast::Sender<MatchEvent>,
    lengths: watch::Receiver<QueueLengths>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the matcher of `queue` on the current tokio runtime; the caller makes the
/// matches after each commit, under the planned keys ([`KeepKeys`]).
#[must_use]
pub fn spawn_matcher(queue: Arc<Queue>, config: &MatcherConfig) -> MatcherHandle {
    spawn_matcher_with(queue, config, Arc::new(KeepKeys))
}

/// Starts the matcher of `queue` with `host` making each match before its commit (see
/// [`MatchHost`]).
#[must_use]
pub fn spawn_matcher_with(
    queue: Arc<Queue>,
    config: &MatcherConfig,
    host: Arc<dyn MatchHost>,
) -> MatcherHandle {
    let (events, _) = broadcast::channel(config.capacity.max(1));
    let (stop, stopped) = watch::channel(false);
    let (lengths_tx, lengths) = watch::channel(QueueLengths::default());
    let pass = Pass { queue: queue.clone(), host, events: events.clone(), lengths: lengths_tx };
    let mut tasks = vec![tokio::spawn(pass_loop(pass, config.interval, stopped.clone()))];
    if let Some(ttl) = queue.lease_ttl() {
        tasks.push(tokio::spawn(renew_loop(queue.clone(), ttl / 3, stopped)));
    }
    MatcherHandle { queue, events, lengths, stop, tasks }
}

impl MatcherHandle {
    /// Events committed by this process's passes from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<MatchEvent> {
        self.events.subscribe()
    }

    /// The queue this matcher runs.
    #[must_use]
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Tickets still queued after this process's last pass, per queue it matched (with
    /// Redis: the queues whose lease it held).
    #[must_use]
    pub fn queue_lengths(&self) -> QueueLengths {
        self.lengths.borrow().clone()
    }

    /// Stops after the pass in flight and releases this process's leases, so another
    /// process takes over at once (graceful shutdown).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(e) = self.queue.release_leases().await {
            tracing::warn!(error = %e, "matchmaker: releasing leases failed");
        }
    }

    /// Stops at once without releasing anything, as a crash would: leases lapse after
    /// their TTL and another process takes over then.
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the pass task holds.
struct Pass {
    queue: Arc<Queue>,
    host: Arc<dyn MatchHost>,
    events: broadcast::Sender<MatchEvent>,
    lengths: watch::Sender<QueueLengths>,
}

/// A failing pass (Redis down) is logged at most this often, with the count in between.
const WARN_EVERY: Duration = Duration::from_secs(10);

async fn pass_loop(pass: Pass, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failures: (Option<tokio::time::Instant>, u64) = (None, 0);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        match pass.queue.run_pass_with(&*pass.host).await {
            Ok(report) => {
                for a in report.assignments {
                    let _ = pass.events.send(MatchEvent::Matched(a));
                }
                for id in report.expired {
                    let _ = pass.events.send(MatchEvent::Expired(id));
                }
                let _ = pass.lengths.send(Arc::new(report.queued));
            }
            Err(e) => {
                failures.1 += 1;
                if failures.0.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(error = %e, failed_passes = failures.1, "matchmaker: pass failed");
                    failures = (Some(tokio::time::Instant::now()), 0);
                }
            }
        }
    }
}

async fn renew_loop(queue: Arc<Queue>, every: Duration, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = queue.renew_leases().await {
            tracing::warn!(error = %e, "matchmaker: lease renewal failed");
        }
    }
}
