//! The change feeds' logic, free of any transport: [`Feeds`] publishes committed changes,
//! answers pulls and opens live [`Feed`]s; the api crate carries them over WebSocket and
//! SSE.
//!
//! A live feed starts from the durable log (`since`, `Last-Event-ID`, or the cursor the
//! caller last pulled: [`crate::cursors`]) and then follows the in-process hub. The hub is
//! fed in `seq` order by the [`Sequencer`] (this process's commits and, through the
//! cluster bus, the other processes': [`crate::relay`]). When a feed falls behind the
//! hub's buffer, sees a gap in `seq`, or is told to catch up (the bus came back after an
//! outage), it reads the log again, so nothing committed is ever skipped and nothing is
//! delivered twice. Every event passes the receiver's read policy
//! ([`Policies::project`]): as it is, as a delete of a row that left the receiver's view,
//! or not at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use pylon_storage::access::{Caller, Policies, Projection};
use pylon_storage::entity::EntityError;
use pylon_storage::{ChangeEvent, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, watch};

use crate::bus::ClusterBus;
use crate::cursors::{CursorKey, PullCursors};
use crate::hub::Hub;
use crate::published::Published;
use crate::sequencer::Sequencer;

/// Changes a catch-up reads from the log per store call.
const CATCH_UP_PAGE: u32 = 500;

/// A page of `GET /api/sync/pull`, already filtered for its caller.
#[derive(Debug, Clone, Default)]
pub struct Pulled {
    /// The changes the caller may see, projected.
    pub changes: Vec<ChangeEvent>,
    /// The last seq of the page read (visible or not): the caller's next cursor.
    pub last_seq: u64,
    /// Whether more changes follow.
    pub has_more: bool,
}

/// How the feeds of this process kept in order and in step: counters for `/metrics`.
#[derive(Debug, Default)]
pub struct FeedCounters {
    /// Changes received from other processes over the bus.
    pub received: AtomicU64,
    /// Bus change envelopes that did not parse (dropped; the log has them).
    pub malformed: AtomicU64,
    /// Gaps in `seq` filled from the log by the relay.
    pub gap_fills: AtomicU64,
    /// Times every live feed was told to catch up from the log (the bus came back, or
    /// this process fell behind the bus).
    pub resyncs: AtomicU64,
}

/// The entity side's change feeds: the store's log, the policies, the live hub (fed in
/// order by the sequencer), the remembered pull cursors, and the cluster bus once
/// attached.
pub struct Feeds {
    store: Store,
    policies: Arc<Policies>,
    hub: Hub<Published>,
    cursors: PullCursors,
    bus: OnceLock<ClusterBus>,
    order: Mutex<Sequencer>,
    /// Wakes the relay when a gap opens (so it can time it).
    pub(crate) gap_opened: Notify,
    /// Bumped to make every live feed catch up from the log.
    resync: watch::Sender<u64>,
    counters: FeedCounters,
}

impl Feeds {
    /// Feeds over `store` under `policies`; the hub keeps `buffer` events per subscriber.
    #[must_use]
    pub fn new(store: Store, policies: Arc<Policies>, buffer: usize) -> Self {
        Self {
            store,
            policies,
            hub: Hub::new(buffer),
            cursors: PullCursors::default(),
            bus: OnceLock::new(),
            order: Mutex::new(Sequencer::default()),
            gap_opened: Notify::new(),
            resync: watch::Sender::new(0),
            counters: FeedCounters::default(),
        }
    }

    /// Publishes every committed change on `bus` too (the first bus attached stays;
    /// `false` if one already was). Receiving is [`crate::relay::run`]'s job.
    pub fn attach_bus(&self, bus: ClusterBus) -> bool {
        self.bus.set(bus).is_ok()
    }

    /// The relay's counters.
    #[must_use]
    pub fn counters(&self) -> &FeedCounters {
        &self.counters
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The compiled policies.
    #[must_use]
    pub fn policies(&self) -> &Arc<Policies> {
        &self.policies
    }

    /// Live subscribers of this process.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.hub.subscribers()
    }

    /// Sends committed changes to every live feed of this process, in `seq` order, and to
    /// the other processes over the cluster bus (never waiting for it).
    pub fn publish(&self, changes: Vec<ChangeEvent>) {
        for change in changes {
            if let Some(bus) = self.bus.get() {
                crate::relay::send(bus, &change);
            }
            self.offer(Arc::new(Published::new(change)));
        }
    }

    /// Hands one change to the sequencer and the released ones to the hub (under the
    /// sequencer's lock, so the hub sees them in order).
    pub(crate) fn offer(&self, change: Arc<Published>) {
        let mut order = self.order();
        let was_waiting = order.waiting();
        for released in order.offer(change, Instant::now()) {
            self.hub.publish(released);
        }
        if !was_waiting && order.waiting() {
            self.gap_opened.notify_one();
        }
    }

    /// Runs `f` on the sequencer and publishes what it releases.
    pub(crate) fn with_order(&self, f: impl FnOnce(&mut Sequencer) -> Vec<Arc<Published>>) {
        let mut order = self.order();
        for released in f(&mut order) {
            self.hub.publish(released);
        }
    }

    /// The last `seq` the hub has seen (`None` before any).
    pub(crate) fn released(&self) -> Option<u64> {
        self.order().released()
    }

    /// When the sequencer's open gap is due to be filled from the log.
    pub(crate) fn gap_deadline(&self) -> Option<Instant> {
        self.order().deadline()
    }

    /// Makes every live feed of this process catch up from the log.
    pub(crate) fn resync_feeds(&self) {
        self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        self.resync.send_modify(|epoch| *epoch += 1);
    }

    fn order(&self) -> MutexGuard<'_, Sequencer> {
        // Every critical section leaves the sequencer consistent; poisoning changes nothing.
        self.order.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The changes after `since` that `caller` may see, at most `limit` read; remembers
    /// the page's end as `key`'s cursor (see [`crate::cursors`]).
    ///
    /// # Errors
    /// [`EntityError::ResyncRequired`] and store errors.
    pub async fn pull(
        &self,
        caller: &Caller,
        key: Option<CursorKey>,
        since: u64,
        limit: u32,
    ) -> Result<Pulled, EntityError> {
        let page = self.store.changes_since(since, limit).await?;
        if let Some(key) = key {
            self.cursors.remember(key, page.last_seq, Instant::now());
        }
        let changes = page
            .changes
            .into_iter()
            .filter_map(|e| match self.policies.project(&e, caller)? {
                Projection::AsIs => Some(e),
                Projection::AsDelete => Some(e.as_delete()),
            })
            .collect();
        Ok(Pulled { changes, last_seq: page.last_seq, has_more: page.has_more })
    }

    /// Forgets remembered cursors that are too old (run now and then).
    pub fn sweep(&self) {
        self.cursors.sweep(Instant::now());
    }

    /// A live feed for `caller` from `since`; without it, from the cursor `key` last
    /// pulled, else from the newest change.
    ///
    /// # Errors
    /// Store errors.
    pub async fn open(
        self: &Arc<Self>,
        caller: Caller,
        since: Option<u64>,
        key: Option<CursorKey>,
    ) -> Result<Feed, EntityError> {
        // Subscribe first: nothing published after this point can be missed.
        let rx = self.hub.subscribe();
        let mut resync = self.resync.subscribe();
        resync.mark_unchanged();
        let start = since.or_else(|| key.and_then(|k| self.cursors.start(k, Instant::now())));
        let (last, catching_up) = match start {
            Some(seq) => (seq, true),
            None => (self.store.latest_seq().await?, false),
        };
        Ok(Feed {
            feeds: Arc::clone(self),
            caller,
            rx,
            resync,
            last,
            catching_up,
            backlog: VecDeque::new(),
        })
    }
}

/// The ordered, policy-filtered events of one subscriber.
pub struct Feed {
    feeds: Arc<Feeds>,
    caller: Caller,
    rx: tokio::sync::broadcast::Receiver<Arc<Published>>,
    resync: watch::Receiver<u64>,
    last: u64,
    catching_up: bool,
    backlog: VecDeque<Arc<Published>>,
}

impl Feed {
    /// The next event this caller may see, in seq order, with how they see it; `Err` when
    /// the log no longer holds what the feed needs (resync), `Ok(None)` when the hub is
    /// gone.
    ///
    /// # Errors
    /// [`EntityError::ResyncRequired`] and store errors.
    pub async fn next(&mut self) -> Result<Option<(Arc<Published>, Projection)>, EntityError> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if e.event.seq <= self.last {
                    continue;
                }
                self.last = e.event.seq;
                if let Some(p) = self.feeds.policies.project(&e.event, &self.caller) {
                    return Ok(Some((e, p)));
                }
                continue;
            }
            if self.catching_up {
                let page = self.feeds.store.changes_since(self.last, CATCH_UP_PAGE).await?;
                self.catching_up = page.has_more;
                self.backlog.extend(page.changes.into_iter().map(|c| Arc::new(Published::new(c))));
                if !self.backlog.is_empty() || self.catching_up {
                    continue;
                }
            }
            let received = tokio::select! {
                biased;
                changed = self.resync.changed() => match changed {
                    Ok(()) => {
                        self.catching_up = true;
                        continue;
                    }
                    Err(_) => return Ok(None),
                },
                received = self.rx.recv() => received,
            };
            match received {
                Ok(e) if e.event.seq <= self.last => {}
                Ok(e) if e.event.seq == self.last + 1 => self.backlog.push_back(e),
                Ok(_) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// Reads the log again from the last delivered seq before following the hub (after
    /// an outage of whatever fed the hub; [`Feeds`] does this for every live feed when
    /// the cluster bus comes back).
    pub fn catch_up(&mut self) {
        self.catching_up = true;
    }

    /// The seq of the last event this feed passed (delivered or filtered out).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.last
    }
}
