//! The API layer's side of the cluster bus (docs/REGIONS.md): connecting it at start
//! ([`connect`], which the binary calls and which refuses an unreachable bus), the tasks
//! that run beside the server ([`spawn`]: the change relay of `pylon_sync::relay`, and
//! the receiver of presence envelopes and notices), what `/readyz` and `/metrics` say
//! about it, and the logout notice.
//!
//! Must never: make a request wait on the bus. Publishing only queues; a bus that is down
//! drops what is published (the change log and the sessions are in the database) and
//! shows on `/readyz` (503 naming `cluster_bus`) and in `pylon_cluster_bus_up`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pylon_sync::bus::{BusError, BusStatus, ClusterBus, Envelope, InstanceId, Kind};
use pylon_sync::{Notice, relay};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::metrics::{counter, gauge, header};

/// How often idle room members are looked for.
const ROOM_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Connects the cluster bus named by `url` (`None`: the no-op bus of a lone process)
/// under `namespace`, with a freshly minted instance id, and logs the instance id, the
/// bus mode, its address and namespace.
///
/// # Errors
/// A Redis bus that does not answer within `pylon_sync::bus::CONNECT_TIMEOUT`, refuses
/// the connection or the credentials, or an invalid URL or namespace: boot refuses.
pub async fn connect(url: Option<&str>, namespace: &str) -> Result<ClusterBus, BusError> {
    let bus = ClusterBus::connect(url, namespace, InstanceId::mint()).await?;
    tracing::info!(
        instance_id = %bus.instance_id(),
        bus = bus.mode().as_str(),
        address = bus.address().unwrap_or("-"),
        namespace = bus.namespace(),
        "cluster bus"
    );
    Ok(bus)
}

/// Starts the tasks that run beside the server: the change relay (when there is an
/// entity store) and the receiver of presence envelopes and notices, with the sweep of
/// idle room members. They end when shutdown starts.
pub(crate) fn spawn(state: &AppState) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(feeds) = &state.entities {
        feeds.attach_bus(state.bus.clone());
        let relay = relay::run(Arc::clone(feeds), state.bus.clone(), state.shutdown.clone());
        tasks.push(tokio::spawn(relay));
    }
    tasks.push(tokio::spawn(receive(state.clone())));
    tasks
}

/// Receives the other processes' presence envelopes and notices until shutdown.
async fn receive(state: AppState) {
    let mut envelopes = state.bus.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut sweep = tokio::time::interval(ROOM_SWEEP_EVERY);
    loop {
        tokio::select! {
            biased;
            () = crate::shutting_down(&mut shutdown) => return,
            received = envelopes.recv() => match received {
                Ok(envelope) => dispatch(&state, &envelope),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fell behind the cluster bus: presence frames dropped");
                }
                Err(RecvError::Closed) => {
                    crate::shutting_down(&mut shutdown).await;
                    return;
                }
            },
            _ = sweep.tick() => state.presence.sweep(std::time::Instant::now()),
        }
    }
}

fn dispatch(state: &AppState, envelope: &Envelope) {
    match envelope.kind {
        Kind::Presence => state.presence.receive(envelope),
        Kind::Notification => match Notice::from_envelope(envelope) {
            Some(notice) => handle_notice(state, &notice),
            None => tracing::debug!(topic = %envelope.topic, "unknown notice ignored"),
        },
        _ => {}
    }
}

fn handle_notice(state: &AppState, notice: &Notice) {
    match notice {
        Notice::MatchReady { assignment } => {
            if let Some(mm) = &state.matchmaking {
                mm.ready(assignment);
            }
        }
        Notice::SessionEnded { .. } => {
            let Some(key) = notice.session_key() else { return };
            if state.live.end(&key, crate::auth::unix_now()) {
                state.metrics.sessions_ended[0].fetch_add(1, Ordering::Relaxed);
                tracing::info!("session logged out on another process: live connections closed");
            }
        }
        _ => tracing::debug!("notice of no concern to this process"),
    }
}

/// Tells the other processes that the session `key` logged out (never waits).
pub(crate) fn session_ended(state: &AppState, key: &[u8; 32]) {
    Notice::session_ended(key).publish(&state.bus);
}

/// Whether the bus is up, for `/readyz`: the no-op bus always is.
#[must_use]
pub fn ready(bus: &ClusterBus) -> bool {
    bus.status().up
}

/// The cluster bus, relay and presence metrics (Prometheus text).
pub(crate) fn render(out: &mut String, state: &AppState) {
    let status = state.bus.status();
    bus_section(out, &status);
    if let Some(feeds) = &state.entities {
        let c = feeds.counters();
        let read = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let name = "pylon_feed_changes_received_total";
        counter(out, name, "Changes received from other processes.", read(&c.received));
        let name = "pylon_feed_changes_malformed_total";
        counter(out, name, "Change envelopes that did not parse.", read(&c.malformed));
        let name = "pylon_feed_gap_fills_total";
        counter(out, name, "Gaps in seq filled from the change log.", read(&c.gap_fills));
        let name = "pylon_feed_resyncs_total";
        counter(out, name, "Times every live feed caught up from the log.", read(&c.resyncs));
    }
    let p = state.presence.counters();
    let read = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let (sockets, rooms) = state.presence.sizes();
    gauge(out, "pylon_presence_sockets", "Sync sockets registered for presence.", sockets as u64);
    gauge(out, "pylon_presence_rooms", "HTTP rooms in this process's replica.", rooms as u64);
    counter(out, "pylon_presence_relayed_total", "Frames relayed.", read(&p.relayed));
    counter(out, "pylon_presence_delivered_total", "Frames handed to sockets.", read(&p.delivered));
    let name = "pylon_presence_dropped_total";
    counter(out, name, "Frames dropped: a socket's outbox was full.", read(&p.dropped));
}

fn bus_section(out: &mut String, s: &BusStatus) {
    let help = "1 when the cluster bus is connected (always, without a bus).";
    gauge(out, "pylon_cluster_bus_up", help, u64::from(s.up));
    let help = "How many times the bus subscription was established.";
    gauge(out, "pylon_cluster_bus_generation", help, s.generation);
    counter(out, "pylon_cluster_bus_published_total", "Envelopes sent.", s.published);
    let help = "Envelopes received from other processes.";
    counter(out, "pylon_cluster_bus_received_total", help, s.received);
    header(out, "pylon_cluster_bus_dropped_total", "Envelopes dropped, by reason.", "counter");
    let _ = writeln!(out, "pylon_cluster_bus_dropped_total{{reason=\"full\"}} {}", s.dropped_full);
    let _ = writeln!(out, "pylon_cluster_bus_dropped_total{{reason=\"down\"}} {}", s.dropped_down);
    let _ = writeln!(out, "pylon_cluster_bus_dropped_total{{reason=\"own\"}} {}", s.own_dropped);
    let help = "Messages that were not a valid envelope.";
    counter(out, "pylon_cluster_bus_malformed_total", help, s.malformed);
    let help = "Envelopes waiting to be sent.";
    gauge(out, "pylon_cluster_bus_queued", help, s.queued as u64);
}
