//! The change feeds' logic, free of any transport: [`Feeds`] publishes committed changes,
//! answers pulls and opens live [`Feed`]s; the api crate carries them over WebSocket and
//! SSE.
//!
//! A live feed starts from the durable log (`since`, `Last-Event-ID`, or the cursor the
//! caller last pulled: [`crate::cursors`]) and then follows the in-process hub. When it
//! falls behind the hub's buffer, or sees a gap in `seq` (commits published out of order),
//! it reads the log again, so nothing committed is ever skipped and nothing is delivered
//! twice. Every event passes the receiver's read policy ([`Policies::project`]): as it is,
//! as a delete of a row that left the receiver's view, or not at all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use pylon_storage::access::{Caller, Policies, Projection};
use pylon_storage::entity::EntityError;
use pylon_storage::{ChangeEvent, Store};
use tokio::sync::broadcast::error::RecvError;

use crate::cursors::{CursorKey, PullCursors};
use crate::hub::Hub;
use crate::published::Published;

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

/// The entity side's change feeds: the store's log, the policies, the live hub and the
/// remembered pull cursors.
pub struct Feeds {
    store: Store,
    policies: Arc<Policies>,
    hub: Hub<Published>,
    cursors: PullCursors,
}

impl Feeds {
    /// Feeds over `store` under `policies`; the hub keeps `buffer` events per subscriber.
    #[must_use]
    pub fn new(store: Store, policies: Arc<Policies>, buffer: usize) -> Self {
        Self { store, policies, hub: Hub::new(buffer), cursors: PullCursors::default() }
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

    /// Sends committed changes to every live feed of this process.
    pub fn publish(&self, changes: Vec<ChangeEvent>) {
        for change in changes {
            self.hub.publish(Arc::new(Published::new(change)));
        }
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
        let start = since.or_else(|| key.and_then(|k| self.cursors.start(k, Instant::now())));
        let (last, catching_up) = match start {
            Some(seq) => (seq, true),
            None => (self.store.latest_seq().await?, false),
        };
        Ok(Feed {
            feeds: Arc::clone(self),
            caller,
            rx,
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
            match self.rx.recv().await {
                Ok(e) if e.event.seq <= self.last => {}
                Ok(e) if e.event.seq == self.last + 1 => self.backlog.push_back(e),
                Ok(_) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// Reads the log again from the last delivered seq before following the hub (after
    /// an outage of whatever fed the hub).
    pub fn catch_up(&mut self) {
        self.catching_up = true;
    }

    /// The seq of the last event this feed passed (delivered or filtered out).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.last
    }
}
