//! The subscriber task of a [`super::RedisBus`]: the process's one Redis subscription (to
//! the namespace's three channels), decoded and fanned out in-process through a bounded
//! broadcast; own envelopes and malformed messages are counted and dropped. It PINGs the
//! subscription every heartbeat and re-subscribes with backoff when it is lost, advancing
//! the generation each time it is back.
//!
//! Must never: panic on what arrives from Redis, or wait for a slow receiver (the
//! broadcast drops the oldest for it and tells it so).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::backoff::Backoff;
use super::envelope::{Channels, Envelope, decode};
use super::redis_bus::{Shared, stopped};
use super::status::bump;
use super::{CONNECT_TIMEOUT, HEARTBEAT_EVERY, PING_TIMEOUT};

/// Opens a pub/sub connection and subscribes to the namespace's channels, one
/// `SUBSCRIBE` per channel (each answers once, which is what the client expects).
pub(crate) async fn open_subscription(
    client: &redis::Client,
    channels: &Channels,
) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let mut pubsub = client.get_async_pubsub().await?;
    for name in channels.names() {
        pubsub.subscribe(name.as_str()).await?;
    }
    Ok(pubsub.split())
}

/// Why `serve` returned.
enum Ended {
    Lost,
    Stop,
}

/// The subscriber task's state.
pub(crate) struct Subscriber {
    client: redis::Client,
    shared: Arc<Shared>,
    out: broadcast::Sender<Arc<Envelope>>,
    shutdown: watch::Receiver<bool>,
    backoff: Backoff,
}

impl Subscriber {
    /// A subscriber fanning `client`'s messages out to `out` until `shutdown` turns true.
    pub(crate) fn new(
        client: redis::Client,
        shared: Arc<Shared>,
        out: broadcast::Sender<Arc<Envelope>>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self { client, shared, out, shutdown, backoff: Backoff::new() }
    }

    /// Runs until shutdown, starting on an established subscription (generation 1).
    pub(crate) async fn run(mut self, sink: PubSubSink, stream: PubSubStream) {
        let mut ended = self.serve(sink, stream).await;
        while let Ended::Lost = ended {
            self.set_up(false);
            self.shared.probe.notify_one();
            ended = match self.resubscribe().await {
                Some((sink, stream)) => {
                    self.shared.generation.send_modify(|generation| *generation += 1);
                    self.set_up(true);
                    self.serve(sink, stream).await
                }
                None => Ended::Stop,
            };
        }
        self.shared.subscriber_up.store(false, Ordering::Relaxed);
    }

    fn set_up(&self, up: bool) {
        self.shared.subscriber_up.store(up, Ordering::Relaxed);
        let addr = &self.shared.address;
        if up {
            let generation = *self.shared.generation.borrow();
            tracing::info!(bus = %addr, generation, "cluster bus: subscription re-established");
        } else {
            tracing::warn!(bus = %addr, "cluster bus: subscription lost");
        }
    }

    /// Delivers messages and heartbeats until the subscription ends, fails a PING, or
    /// shutdown.
    async fn serve(&mut self, mut sink: PubSubSink, mut stream: PubSubStream) -> Ended {
        let start = Instant::now() + HEARTBEAT_EVERY;
        let mut heartbeat = tokio::time::interval_at(start, HEARTBEAT_EVERY);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut self.shutdown) => return Ended::Stop,
                message = stream.next() => match message {
                    Some(message) => self.deliver(&message),
                    None => return Ended::Lost,
                },
                _ = heartbeat.tick() => {
                    let ping = sink.ping::<redis::Value>();
                    match tokio::time::timeout(PING_TIMEOUT, ping).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "cluster bus: subscription heartbeat failed");
                            return Ended::Lost;
                        }
                        Err(_) => return Ended::Lost,
                    }
                }
            }
        }
    }

    /// Decodes one message and hands it to the receivers, or counts why not.
    fn deliver(&self, message: &redis::Msg) {
        let counters = &self.shared.counters;
        let Some(kind) = self.shared.channels.kind_of(message.get_channel_name()) else {
            bump(&counters.malformed, 1);
            return;
        };
        match decode(message.get_payload_bytes(), kind) {
            Err(e) => {
                bump(&counters.malformed, 1);
                tracing::debug!(channel = kind.as_str(), error = %e, "cluster bus: malformed message dropped");
            }
            Ok(envelope) if envelope.instance_id == self.shared.instance => {
                bump(&counters.own_dropped, 1);
            }
            Ok(envelope) => {
                bump(&counters.received, 1);
                // No receiver right now is fine: nobody local wants it.
                let _ = self.out.send(Arc::new(envelope));
            }
        }
    }

    /// Waits out the backoff and tries again until subscribed (`None`: shutdown).
    async fn resubscribe(&mut self) -> Option<(PubSubSink, PubSubStream)> {
        loop {
            let delay = self.backoff.next_delay();
            let attempt = async {
                tokio::time::sleep(delay).await;
                tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    open_subscription(&self.client, &self.shared.channels),
                )
                .await
            };
            tokio::select! {
                biased;
                () = stopped(&mut self.shutdown) => return None,
                result = attempt => match result {
                    Ok(Ok(subscription)) => {
                        self.backoff.reset();
                        return Some(subscription);
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "cluster bus: resubscribe failed"),
                    Err(_) => tracing::debug!("cluster bus: resubscribe timed out"),
                },
            }
        }
    }
}
