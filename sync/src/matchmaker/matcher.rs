//! The matcher task: runs [`Queue::run_pass`] on a fixed interval on the tokio runtime
//! (never on a tick thread, never inside a request), renews Redis leases every third of
//! their TTL in a task of its own (so a long pass cannot let them lapse), and broadcasts
//! what each pass committed to the process's subscribers (the API's push paths).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::queue::Queue;
use super::ticket::{Assignment, TicketId};

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
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the matcher of `queue` on the current tokio runtime.
#[must_use]
pub fn spawn_matcher(queue: Arc<Queue>, config: &MatcherConfig) -> MatcherHandle {
    let (events, _) = broadcast::channel(config.capacity.max(1));
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(pass_loop(
        queue.clone(),
        config.interval,
        events.clone(),
        stopped.clone(),
    ))];
    if let Some(ttl) = queue.lease_ttl() {
        tasks.push(tokio::spawn(renew_loop(queue.clone(), ttl / 3, stopped)));
    }
    MatcherHandle { queue, events, stop, tasks }
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

async fn pass_loop(
    queue: Arc<Queue>,
    interval: Duration,
    events: broadcast::Sender<MatchEvent>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
        }
        match queue.run_pass().await {
            Ok(report) => {
                for a in report.assignments {
                    let _ = events.send(MatchEvent::Matched(a));
                }
                for id in report.expired {
                    let _ = events.send(MatchEvent::Expired(id));
                }
            }
            Err(e) => tracing::warn!(error = %e, "matchmaker: pass failed"),
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
