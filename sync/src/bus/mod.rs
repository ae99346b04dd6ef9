//! The cluster bus: how the processes of one deploy tell each other about committed
//! changes, presence and notifications. [`ClusterBus`] is either [`NoopBus`] (a lone
//! process: no cost, nobody else to hear) or [`RedisBus`] (Redis PUB/SUB), chosen by the
//! URL given to [`ClusterBus::connect`].
//!
//! Channels are `<namespace>:change`, `<namespace>:presence` and
//! `<namespace>:notification` ([`Channels`]), so unrelated deploys can share one Redis.
//! Every envelope carries its publisher's [`InstanceId`] and [`Kind`]; a process drops its
//! own on receipt. The wire form is compact JSON, documented in `envelope.rs`.
//!
//! Owns: the bus's connections, queue, tasks and counters. Must never: read the
//! environment (the caller passes URL, namespace and id), block a request (publish only
//! queues), or be the only copy of anything durable: a change envelope that is dropped
//! (queue full, bus down, a receiver lagging, an outage) is recovered by the feeds from
//! the database log, so the bus may lose messages but never data.

mod backoff;
mod envelope;
mod error;
mod noop;
mod publisher;
mod redis_bus;
mod status;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{broadcast, watch};

pub use envelope::{Channels, Envelope, InstanceId, Kind, MAX_NAMESPACE_LEN, WIRE_VERSION};
pub use error::BusError;
pub use noop::NoopBus;
pub use redis_bus::RedisBus;
pub use status::{BusMode, BusStatus, PublishOutcome};

/// The namespace when `PYLON_CLUSTER_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "pylon";

/// Envelopes that may wait for the publisher task before `publish` starts dropping them
/// (counted in `dropped_full`). A full queue means Redis is slower than this process
/// writes; at about 1 KiB an envelope it bounds the queue near 4 MiB.
pub const PUBLISH_QUEUE: usize = 4096;

/// Envelopes sent to Redis in one pipelined round trip, at most.
pub const PUBLISH_BATCH: usize = 256;

/// Received envelopes an in-process receiver may fall behind before it is told it lagged.
pub const RECEIVE_BUFFER: usize = 4096;

/// How long connecting (and each reconnect attempt) may take before it counts as a
/// timeout; boot refuses a bus that has not answered by then.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How often both connections are PINGed while up.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

/// How long a PING (or a publish round trip) may take before the connection is declared
/// lost; with [`HEARTBEAT_EVERY`] the bus reads as down within about a second.
pub const PING_TIMEOUT: Duration = Duration::from_millis(750);

/// First reconnect delay; it doubles per failed attempt (with jitter) up to
/// [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// Longest delay between reconnect attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long [`ClusterBus::close`] waits for each task before aborting it.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The cluster bus of this process. Clones share one bus.
#[derive(Debug, Clone)]
pub enum ClusterBus {
    /// A lone process: publishing does nothing, nothing is received.
    Noop(NoopBus),
    /// Redis PUB/SUB.
    Redis(RedisBus),
}

impl ClusterBus {
    /// The no-op bus (no URL configured).
    #[must_use]
    pub fn noop(namespace: &str, instance: InstanceId) -> Self {
        Self::Noop(NoopBus::new(namespace, instance))
    }

    /// The bus for `url`: `None` (or an empty string) gives the no-op bus at no cost;
    /// `redis://…` connects (see [`RedisBus::connect`]).
    ///
    /// # Errors
    /// A Redis bus that cannot be reached, answered or authenticated within
    /// [`CONNECT_TIMEOUT`], an unsupported URL, or an invalid namespace.
    pub async fn connect(
        url: Option<&str>,
        namespace: &str,
        instance: InstanceId,
    ) -> Result<Self, BusError> {
        match url.map(str::trim).filter(|url| !url.is_empty()) {
            None => Ok(Self::noop(namespace, instance)),
            Some(url) => Ok(Self::Redis(RedisBus::connect(url, namespace, instance).await?)),
        }
    }

    /// Hands `payload` (opaque JSON the caller defines) to the other instances under
    /// `kind` and `topic`, without waiting: see [`RedisBus::publish`] for when it is
    /// dropped and why that is safe.
    pub fn publish(
        &self,
        kind: Kind,
        topic: impl Into<String>,
        payload: Box<RawValue>,
    ) -> PublishOutcome {
        match self {
            Self::Noop(_) => PublishOutcome::Skipped,
            Self::Redis(bus) => bus.publish(kind, topic, payload),
        }
    }

    /// [`ClusterBus::publish`] of `value` as JSON; the no-op bus does not serialize it.
    ///
    /// # Errors
    /// `value` cannot be serialized as JSON (nothing was published).
    pub fn publish_json<T: Serialize + ?Sized>(
        &self,
        kind: Kind,
        topic: impl Into<String>,
        value: &T,
    ) -> Result<PublishOutcome, serde_json::Error> {
        match self {
            Self::Noop(_) => Ok(PublishOutcome::Skipped),
            Self::Redis(bus) => {
                Ok(bus.publish(kind, topic, serde_json::value::to_raw_value(value)?))
            }
        }
    }

    /// A receiver of the other instances' envelopes (never yields on the no-op bus).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        match self {
            Self::Noop(bus) => bus.subscribe(),
            Self::Redis(bus) => bus.subscribe(),
        }
    }

    /// A watch of the subscription generation: await `changed()` to learn that the bus
    /// came back after an outage (and catch up from the log).
    #[must_use]
    pub fn generations(&self) -> watch::Receiver<u64> {
        match self {
            Self::Noop(bus) => bus.generations(),
            Self::Redis(bus) => bus.generations(),
        }
    }

    /// State and counters for `/readyz` and `/metrics`.
    #[must_use]
    pub fn status(&self) -> BusStatus {
        match self {
            Self::Noop(bus) => bus.status(),
            Self::Redis(bus) => bus.status(),
        }
    }

    /// Which bus this is.
    #[must_use]
    pub fn mode(&self) -> BusMode {
        match self {
            Self::Noop(_) => BusMode::Noop,
            Self::Redis(_) => BusMode::Redis,
        }
    }

    /// This process's id.
    #[must_use]
    pub fn instance_id(&self) -> &InstanceId {
        match self {
            Self::Noop(bus) => bus.instance_id(),
            Self::Redis(bus) => bus.instance_id(),
        }
    }

    /// The namespace (channel prefix).
    #[must_use]
    pub fn namespace(&self) -> &str {
        match self {
            Self::Noop(bus) => bus.namespace(),
            Self::Redis(bus) => bus.namespace(),
        }
    }

    /// The Redis `host:port`, for the start-up log (`None` for the no-op bus).
    #[must_use]
    pub fn address(&self) -> Option<&str> {
        match self {
            Self::Noop(_) => None,
            Self::Redis(bus) => Some(bus.address()),
        }
    }

    /// Stops the background tasks (no-op bus: nothing to stop).
    pub async fn close(&self) {
        if let Self::Redis(bus) = self {
            bus.close().await;
        }
    }
}
