//! The change feeds across processes: every committed change goes out on the cluster bus
//! ([`send`], from [`crate::Feeds::publish`]) and the other processes' changes come in
//! ([`run`], one task per process), through the same [`crate::sequencer::Sequencer`] as
//! local ones, so the hub sees one ordered stream and every live feed applies its
//! receiver's read policy to it as to a local change.
//!
//! Nothing lost, nothing twice: the change log is shared (Postgres) and dense, so the bus
//! only has to be fast, not reliable. The relay task
//! - fills a gap in `seq` from the log once it stays open
//!   [`crate::sequencer::GAP_WAIT`] (an envelope lost or late);
//! - when the bus comes back after an outage (its generation changes) or this process
//!   fell behind the bus, skips the sequencer past the log's newest change and makes
//!   every live feed catch up from the log ([`crate::Feed::catch_up`]);
//! - with a Redis bus, compares the log's newest `seq` with what the hub has seen every
//!   [`WATERMARK_EVERY`], and fills from the log what stayed unseen across two checks
//!   (a change whose envelope was lost, with nothing after it to reveal the gap).
//!
//! Wire form of a change envelope's payload (compact JSON): the change event plus the
//! row before the write (`before`, for updates and deletes) so that receivers can apply
//! read policies: `{"seq":42,"entity":"Todo","row_id":"t1","kind":"update","data":{…},
//! "timestamp":"…","before":{…}}`.
//!
//! Must never: block a writer (publishing only queues), or deliver a change to a feed
//! around the sequencer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pylon_storage::ChangeEvent;
use pylon_storage::entity::{ChangeKind, Row};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::bus::{BusMode, ClusterBus, Envelope, Kind};
use crate::feed::Feeds;
use crate::published::Published;
use crate::sequencer::Sequencer;

/// How often a process with a Redis bus checks the log's newest `seq` against what its
/// hub has seen.
pub const WATERMARK_EVERY: Duration = Duration::from_secs(1);

/// Log pages of [`FILL_PAGE`] changes one gap fill reads at most; a longer gap is left to
/// the feeds (they read the log themselves when they see it).
const FILL_PAGES: usize = 8;
/// Changes per log read of a gap fill.
const FILL_PAGE: u32 = 500;

/// A change as it leaves on the bus.
#[derive(Serialize)]
struct ChangeOut<'a> {
    seq: u64,
    entity: &'a str,
    row_id: &'a str,
    kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Row>,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<&'a Row>,
}

/// A change as it arrives from the bus.
#[derive(Deserialize)]
struct ChangeIn {
    seq: u64,
    entity: String,
    row_id: String,
    kind: String,
    #[serde(default)]
    data: Option<Row>,
    timestamp: String,
    #[serde(default)]
    before: Option<Row>,
}

/// Queues `change` for the other processes (the no-op bus does nothing, not even
/// serialize it).
pub fn send(bus: &ClusterBus, change: &ChangeEvent) {
    let out = ChangeOut {
        seq: change.seq,
        entity: &change.entity,
        row_id: &change.row_id,
        kind: change.kind,
        data: change.data.as_ref(),
        timestamp: &change.timestamp,
        before: change.before.as_ref(),
    };
    if let Err(e) = bus.publish_json(Kind::Change, change.entity.as_str(), &out) {
        tracing::error!(error = %e, seq = change.seq, "a change did not serialize for the bus");
    }
}

/// Reads a change envelope's payload.
fn decode(envelope: &Envelope) -> Option<ChangeEvent> {
    let wire: ChangeIn = envelope.payload_as().ok()?;
    Some(ChangeEvent {
        seq: wire.seq,
        entity: wire.entity,
        row_id: wire.row_id,
        kind: ChangeKind::parse(&wire.kind)?,
        data: wire.data,
        timestamp: wire.timestamp,
        before: wire.before,
    })
}

/// Resolves once `shutdown` turns true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The relay task of this process: runs until `shutdown` turns true (see the module doc).
pub async fn run(feeds: Arc<Feeds>, bus: ClusterBus, mut shutdown: watch::Receiver<bool>) {
    let mut envelopes = bus.subscribe();
    let mut generations = bus.generations();
    let mut generations_open = true;
    let mut watermark = Watermark::new(bus.mode());
    start_at_latest(&feeds).await;
    loop {
        let deadline = feeds.gap_deadline();
        tokio::select! {
            biased;
            () = stopped(&mut shutdown) => return,
            changed = generations.changed(), if generations_open => match changed {
                Ok(()) => resync(&feeds).await,
                Err(_) => generations_open = false,
            },
            received = envelopes.recv() => match received {
                Ok(envelope) if envelope.kind == Kind::Change => receive(&feeds, &envelope),
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "change relay fell behind the cluster bus; feeds catch up from the log");
                    resync(&feeds).await;
                }
                // The bus closed (shutdown): nothing more will come.
                Err(RecvError::Closed) => stopped(&mut shutdown).await,
            },
            () = until(deadline) => fill(&feeds).await,
            () = feeds.gap_opened.notified() => {}
            () = watermark.tick() => watermark.check(&feeds).await,
        }
    }
}

/// Hands one change from another process to the sequencer.
fn receive(feeds: &Feeds, envelope: &Envelope) {
    let counters = feeds.counters();
    match decode(envelope) {
        Some(change) => {
            counters.received.fetch_add(1, Ordering::Relaxed);
            feeds.offer(Arc::new(Published::new(change)));
        }
        None => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(from = %envelope.instance_id, "malformed change envelope dropped");
        }
    }
}

/// The sequencer starts after the log's newest change (feeds opened before this read the
/// log themselves).
async fn start_at_latest(feeds: &Feeds) {
    match feeds.store().latest_seq().await {
        Ok(latest) => {
            feeds.with_order(|order| order.skip_to(latest + 1, Instant::now()));
        }
        Err(e) => tracing::warn!(error = %e, "change relay: cannot read the newest seq"),
    }
}

/// After a bus outage or a lag: the sequencer skips past the log's newest change, and
/// every live feed catches up from the log.
async fn resync(feeds: &Feeds) {
    start_at_latest(feeds).await;
    feeds.resync_feeds();
}

/// Fills the sequencer's gap from the log: reads after the last released change and
/// offers what it finds, at most [`FILL_PAGES`] pages; releases what still waits if the
/// log cannot close the gap.
async fn fill(feeds: &Feeds) {
    feeds.counters().gap_fills.fetch_add(1, Ordering::Relaxed);
    for _ in 0..FILL_PAGES {
        let Some(after) = feeds.released() else { break };
        let page = match feeds.store().changes_since(after, FILL_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, after, "change relay: cannot fill a gap from the log");
                break;
            }
        };
        for change in page.changes {
            feeds.offer(Arc::new(Published::new(change)));
        }
        if !page.has_more {
            break;
        }
    }
    feeds.with_order(Sequencer::release);
}

/// The periodic comparison of the log's newest `seq` with the hub's (Redis bus only).
struct Watermark {
    every: Option<tokio::time::Interval>,
    /// A newest `seq` the hub had not seen at the last check.
    unseen: Option<u64>,
}

impl Watermark {
    fn new(mode: BusMode) -> Self {
        let every = (mode == BusMode::Redis).then(|| {
            let start = tokio::time::Instant::now() + WATERMARK_EVERY;
            let mut every = tokio::time::interval_at(start, WATERMARK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        });
        Self { every, unseen: None }
    }

    async fn tick(&mut self) {
        match &mut self.every {
            Some(every) => {
                every.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Fills from the log when a `seq` the log had at the last check is still unseen.
    async fn check(&mut self, feeds: &Feeds) {
        let Ok(latest) = feeds.store().latest_seq().await else { return };
        let seen = feeds.released().unwrap_or(0);
        if let Some(unseen) = self.unseen.take()
            && unseen > seen
        {
            tracing::debug!(
                unseen,
                seen,
                "change relay: a change never arrived; filling from the log"
            );
            fill(feeds).await;
        }
        let seen = feeds.released().unwrap_or(0);
        if latest > seen {
            self.unseen = Some(latest);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::bus::InstanceId;

    /// A change survives the bus's wire form with the row before the write, which the
    /// feeds' JSON never shows.
    #[test]
    fn wire_keeps_the_row_before() {
        let row = |v: serde_json::Value| v.as_object().unwrap().clone();
        let change = ChangeEvent {
            seq: 7,
            entity: "Note".into(),
            row_id: "n1".into(),
            kind: ChangeKind::Update,
            data: Some(row(json!({"id": "n1", "owner": "b"}))),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            before: Some(row(json!({"id": "n1", "owner": "a"}))),
        };
        let out = ChangeOut {
            seq: change.seq,
            entity: &change.entity,
            row_id: &change.row_id,
            kind: change.kind,
            data: change.data.as_ref(),
            timestamp: &change.timestamp,
            before: change.before.as_ref(),
        };
        let payload = serde_json::value::to_raw_value(&out).unwrap();
        let envelope = Envelope::new(InstanceId::new("x"), Kind::Change, "Note", payload);
        assert_eq!(decode(&envelope).unwrap(), change);
        let bad = serde_json::value::to_raw_value(&json!({"seq": 1, "kind": "upsert"})).unwrap();
        assert!(decode(&Envelope::new(InstanceId::new("x"), Kind::Change, "", bad)).is_none());
    }
}
