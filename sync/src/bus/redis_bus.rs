//! [`RedisBus`]: the cluster bus on Redis PUB/SUB. A handle (cheap to clone) over a
//! bounded publish queue, one publisher task and one subscriber task.
//!
//! Owns: connecting (refusing an unreachable, silent or unauthorised server within
//! [`CONNECT_TIMEOUT`]), the non-blocking `publish`, the in-process fan-out of received
//! envelopes, status, and shutdown. Must never: block or await on the publish path, keep
//! the URL (it may hold a password), or outlive its last handle (dropping it stops the
//! tasks).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::value::RawValue;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use super::publisher::{Outgoing, Publisher, open_publisher};
use super::status::{Counters, bump, read};
use super::subscriber::{Subscriber, open_subscription};
use super::{
    BusError, BusMode, BusStatus, CLOSE_GRACE, CONNECT_TIMEOUT, Channels, Envelope, InstanceId,
    Kind, PUBLISH_QUEUE, PublishOutcome, RECEIVE_BUFFER,
};

/// State the handle and both tasks share.
pub(crate) struct Shared {
    pub(crate) instance: InstanceId,
    pub(crate) channels: Channels,
    /// `host:port` (never the URL: it may carry a password).
    pub(crate) address: String,
    pub(crate) counters: Counters,
    pub(crate) publisher_up: AtomicBool,
    pub(crate) subscriber_up: AtomicBool,
    /// How many times the subscription has been established.
    pub(crate) generation: watch::Sender<u64>,
    /// Asks the publisher to PING now (the subscriber lost its connection, so the
    /// publisher's is probably gone too: find out before the next heartbeat).
    pub(crate) probe: Notify,
}

/// Resolves once `shutdown` turns true or its sender is gone.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The cluster bus on Redis PUB/SUB. Clones share one connection pair and one queue.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Outgoing>,
    /// `None` after `close`, so receivers learn the bus is gone.
    received: Mutex<Option<broadcast::Sender<Arc<Envelope>>>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        let tasks = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.inner.shared;
        f.debug_struct("RedisBus")
            .field("address", &shared.address)
            .field("namespace", &shared.channels.namespace())
            .field("instance", &shared.instance)
            .finish_non_exhaustive()
    }
}

/// Parses a `redis://` URL (other schemes are refused by name).
fn open_client(url: &str) -> Result<redis::Client, BusError> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    if !scheme.eq_ignore_ascii_case("redis") {
        return Err(BusError::UnsupportedScheme { scheme: scheme.to_owned() });
    }
    redis::Client::open(url).map_err(|e| BusError::InvalidUrl { reason: e.to_string() })
}

impl RedisBus {
    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`),
    /// subscribes to `namespace`'s channels and starts the publisher and subscriber
    /// tasks. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// The URL or namespace is invalid, or the server refused the connection, did not
    /// answer within [`CONNECT_TIMEOUT`], or rejected the credentials.
    pub async fn connect(
        url: &str,
        namespace: &str,
        instance: InstanceId,
    ) -> Result<Self, BusError> {
        let channels = Channels::new(namespace)?;
        let client = open_client(url)?;
        let address = client.get_connection_info().addr.to_string();
        let both = async {
            let conn = open_publisher(&client).await?;
            let (sink, stream) = open_subscription(&client, &channels).await?;
            Ok::<_, redis::RedisError>((conn, sink, stream))
        };
        let (conn, sink, stream) = match tokio::time::timeout(CONNECT_TIMEOUT, both).await {
            Ok(Ok(both)) => both,
            Ok(Err(e)) => return Err(BusError::classify(&address, e)),
            Err(_) => return Err(BusError::Timeout { addr: address, after: CONNECT_TIMEOUT }),
        };
        let shared = Arc::new(Shared {
            instance,
            channels,
            address,
            counters: Counters::default(),
            publisher_up: AtomicBool::new(true),
            subscriber_up: AtomicBool::new(true),
            generation: watch::Sender::new(1),
            probe: Notify::new(),
        });
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        let (received, _) = broadcast::channel(RECEIVE_BUFFER);
        let (shutdown, _) = watch::channel(false);
        let publisher = Publisher::new(client.clone(), shared.clone(), rx, shutdown.subscribe());
        let subscriber =
            Subscriber::new(client, shared.clone(), received.clone(), shutdown.subscribe());
        let tasks =
            vec![tokio::spawn(publisher.run(conn)), tokio::spawn(subscriber.run(sink, stream))];
        let received = Mutex::new(Some(received));
        let inner = Inner { shared, queue, received, shutdown, tasks: Mutex::new(tasks) };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Queues an envelope for the other instances and returns at once: never blocks,
    /// never awaits. When the bus is down or the queue ([`PUBLISH_QUEUE`]) is full the
    /// envelope is dropped and counted; that is safe, because change events are
    /// recovered from the durable log by the feeds and presence is ephemeral.
    pub fn publish(
        &self,
        kind: Kind,
        topic: impl Into<String>,
        payload: Box<RawValue>,
    ) -> PublishOutcome {
        let counters = &self.inner.shared.counters;
        if !self.inner.shared.publisher_up.load(Ordering::Relaxed) {
            bump(&counters.dropped_down, 1);
            return PublishOutcome::DroppedDown;
        }
        match self.inner.queue.try_send(Outgoing { kind, topic: topic.into(), payload }) {
            Ok(()) => PublishOutcome::Queued,
            Err(TrySendError::Full(_)) => {
                bump(&counters.dropped_full, 1);
                PublishOutcome::DroppedFull
            }
            Err(TrySendError::Closed(_)) => {
                bump(&counters.dropped_down, 1);
                PublishOutcome::DroppedDown
            }
        }
    }

    /// A receiver of the other instances' envelopes, from now on. One that falls more
    /// than [`RECEIVE_BUFFER`] behind gets `RecvError::Lagged` (and should catch up from
    /// the log); after [`RedisBus::close`] receivers get `RecvError::Closed`.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        let received = self.inner.received.lock().unwrap_or_else(PoisonError::into_inner);
        match received.as_ref() {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// A watch of the subscription generation (see [`BusStatus::generation`]): it
    /// changes each time the bus comes back after an outage.
    #[must_use]
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.inner.shared.generation.subscribe()
    }

    /// This process's id, stamped on every envelope it publishes.
    #[must_use]
    pub fn instance_id(&self) -> &InstanceId {
        &self.inner.shared.instance
    }

    /// The namespace (channel prefix).
    #[must_use]
    pub fn namespace(&self) -> &str {
        self.inner.shared.channels.namespace()
    }

    /// The server's `host:port` (never the password), for logs.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.inner.shared.address
    }

    /// The current state and counters.
    #[must_use]
    pub fn status(&self) -> BusStatus {
        let shared = &self.inner.shared;
        let c = &shared.counters;
        let publisher_up = shared.publisher_up.load(Ordering::Relaxed);
        let subscriber_up = shared.subscriber_up.load(Ordering::Relaxed);
        let queue = &self.inner.queue;
        BusStatus {
            mode: BusMode::Redis,
            up: publisher_up && subscriber_up,
            publisher_up,
            subscriber_up,
            generation: *shared.generation.borrow(),
            published: read(&c.published),
            received: read(&c.received),
            dropped_full: read(&c.dropped_full),
            dropped_down: read(&c.dropped_down),
            malformed: read(&c.malformed),
            own_dropped: read(&c.own_dropped),
            queued: queue.max_capacity() - queue.capacity(),
        }
    }

    /// Stops both tasks: what is already queued is sent (best effort), the connections
    /// close, receivers get `Closed`, and later publishes are dropped as down. Waits at
    /// most [`CLOSE_GRACE`]. Idempotent; dropping the last handle does the same without
    /// the flush.
    pub async fn close(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.received.lock().unwrap_or_else(PoisonError::into_inner).take();
        let tasks: Vec<_> =
            self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..).collect();
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}
