//! The publisher task of a [`super::RedisBus`]: drains the bounded publish queue into
//! Redis (`PUBLISH`, pipelined in batches), PINGs the connection every heartbeat so the
//! `publisher_up` flag flips within about a second of Redis going away, and reconnects
//! with backoff.
//!
//! Must never: make a publisher wait (it only ever reads the queue), or keep envelopes
//! while the bus is down: they are dropped and counted, because change events are
//! recovered from the durable log and presence is ephemeral.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::aio::MultiplexedConnection;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::backoff::Backoff;
use super::envelope::{Kind, encode};
use super::redis_bus::{Shared, stopped};
use super::status::bump;
use super::{CONNECT_TIMEOUT, HEARTBEAT_EVERY, PING_TIMEOUT, PUBLISH_BATCH};

/// One envelope on the publish queue (the instance id is stamped when it is encoded).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) kind: Kind,
    pub(crate) topic: String,
    pub(crate) payload: Box<RawValue>,
}

/// Where the task goes next.
enum Step {
    Connected(MultiplexedConnection),
    Lost,
    Stop,
}

/// Opens the publishing connection and proves it answers (`PING`).
pub(crate) async fn open_publisher(
    client: &redis::Client,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(PING_TIMEOUT);
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    redis::cmd("PING").query_async::<()>(&mut conn).await?;
    Ok(conn)
}

/// The publisher task's state.
pub(crate) struct Publisher {
    client: redis::Client,
    shared: Arc<Shared>,
    queue: mpsc::Receiver<Outgoing>,
    shutdown: watch::Receiver<bool>,
    backoff: Backoff,
    batch: Vec<Outgoing>,
}

impl Publisher {
    /// A publisher draining `queue` into `client`'s server until `shutdown` turns true.
    pub(crate) fn new(
        client: redis::Client,
        shared: Arc<Shared>,
        queue: mpsc::Receiver<Outgoing>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let batch = Vec::with_capacity(PUBLISH_BATCH);
        Self { client, shared, queue, shutdown, backoff: Backoff::new(), batch }
    }

    /// Runs until shutdown (or until every handle is gone), starting on `conn`.
    pub(crate) async fn run(mut self, conn: MultiplexedConnection) {
        let mut step = Step::Connected(conn);
        loop {
            step = match step {
                Step::Connected(conn) => {
                    self.set_up(true);
                    self.serve(conn).await
                }
                Step::Lost => {
                    self.set_up(false);
                    self.reconnect().await
                }
                Step::Stop => break,
            };
        }
        self.set_up(false);
        self.queue.close();
        let left = self.queue.len();
        bump(&self.shared.counters.dropped_down, left);
    }

    fn set_up(&self, up: bool) {
        let was = self.shared.publisher_up.swap(up, Ordering::Relaxed);
        if was != up {
            let addr = &self.shared.address;
            if up {
                tracing::info!(bus = %addr, "cluster bus: publisher connected");
            } else {
                tracing::warn!(bus = %addr, "cluster bus: publisher down");
            }
        }
    }

    /// Publishes and heartbeats on `conn` until it fails or shutdown.
    async fn serve(&mut self, mut conn: MultiplexedConnection) -> Step {
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + HEARTBEAT_EVERY, HEARTBEAT_EVERY);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut self.shutdown) => {
                    self.flush(&mut conn).await;
                    return Step::Stop;
                }
                n = self.queue.recv_many(&mut self.batch, PUBLISH_BATCH) => {
                    if n == 0 {
                        return Step::Stop;
                    }
                    if let Err(e) = self.send(&mut conn).await {
                        tracing::debug!(error = %e, "cluster bus: publish failed");
                        return Step::Lost;
                    }
                }
                () = self.shared.probe.notified() => {
                    if !ping(&mut conn).await {
                        return Step::Lost;
                    }
                }
                _ = heartbeat.tick() => {
                    if !ping(&mut conn).await {
                        return Step::Lost;
                    }
                }
            }
        }
    }

    /// Sends the batch as one pipeline; counts it published, or dropped if that fails.
    async fn send(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        let shared = &self.shared;
        for out in self.batch.drain(..) {
            match encode(&shared.instance, out.kind, &out.topic, &out.payload) {
                Ok(bytes) => {
                    pipe.cmd("PUBLISH").arg(shared.channels.name(out.kind)).arg(bytes).ignore();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cluster bus: envelope could not be encoded");
                    bump(&shared.counters.malformed, 1);
                }
            }
        }
        let n = pipe.len();
        if n == 0 {
            return Ok(());
        }
        let sent = tokio::time::timeout(PING_TIMEOUT, pipe.query_async::<()>(conn)).await;
        let result = sent.unwrap_or_else(|_| Err(timed_out()));
        let counter =
            if result.is_ok() { &shared.counters.published } else { &shared.counters.dropped_down };
        bump(counter, n);
        result
    }

    /// At shutdown: sends whatever is still queued, once, within the ping timeout.
    async fn flush(&mut self, conn: &mut MultiplexedConnection) {
        while self.batch.len() < PUBLISH_BATCH {
            match self.queue.try_recv() {
                Ok(out) => self.batch.push(out),
                Err(_) => break,
            }
        }
        let _ = self.send(conn).await;
    }

    /// Waits out the backoff (dropping what is queued meanwhile), then tries to
    /// reconnect, until connected or shutdown.
    async fn reconnect(&mut self) -> Step {
        loop {
            let until = Instant::now() + self.backoff.next_delay();
            loop {
                tokio::select! {
                    biased;
                    () = stopped(&mut self.shutdown) => return Step::Stop,
                    n = self.queue.recv_many(&mut self.batch, PUBLISH_BATCH) => {
                        if n == 0 {
                            return Step::Stop;
                        }
                        bump(&self.shared.counters.dropped_down, n);
                        self.batch.clear();
                    }
                    () = tokio::time::sleep_until(until) => break,
                }
            }
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, open_publisher(&self.client));
            tokio::select! {
                biased;
                () = stopped(&mut self.shutdown) => return Step::Stop,
                result = attempt => match result {
                    Ok(Ok(conn)) => {
                        self.backoff.reset();
                        return Step::Connected(conn);
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "cluster bus: publisher reconnect failed"),
                    Err(_) => tracing::debug!("cluster bus: publisher reconnect timed out"),
                },
            }
        }
    }
}

/// PINGs `conn`; false when it failed or did not answer within the ping timeout.
async fn ping(conn: &mut MultiplexedConnection) -> bool {
    let ping = redis::cmd("PING");
    match tokio::time::timeout(PING_TIMEOUT, ping.query_async::<()>(conn)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "cluster bus: heartbeat failed");
            false
        }
        Err(_) => false,
    }
}

/// The error a pipeline that outlived the ping timeout reports.
fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "publish timed out"))
}
