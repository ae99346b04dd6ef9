//! [`Hub`]: the in-process, bounded broadcast of committed change events to every live
//! feed of this process. Never blocks a publisher: a subscriber that lags past the buffer
//! is told so and catches up from the durable log.

use std::sync::Arc;

use tokio::sync::broadcast;

/// Events a subscriber may lag behind before it must catch up from the durable log
/// (default of [`Hub::new`]).
pub const DEFAULT_BUFFER: usize = 4096;

/// A bounded broadcast of events to every live feed.
#[derive(Debug)]
pub struct Hub<T> {
    tx: broadcast::Sender<Arc<T>>,
}

impl<T> Clone for Hub<T> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<T: Send + Sync + 'static> Hub<T> {
    /// A hub keeping at most `buffer` undelivered events per subscriber.
    #[must_use]
    pub fn new(buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(buffer.max(1));
        Self { tx }
    }

    /// Sends `event` to every subscriber; never blocks. Returns how many got it.
    pub fn publish(&self, event: Arc<T>) -> usize {
        self.tx.send(event).unwrap_or(0)
    }

    /// A new subscription, starting with the next published event.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<T>> {
        self.tx.subscribe()
    }

    /// Live subscribers.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// Every subscriber gets every event in order; one that lags past the buffer is told
    /// so (and catches up from the log) instead of blocking the publisher.
    #[tokio::test]
    async fn fan_out_and_lag() {
        let hub = Hub::new(4);
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        for i in 0..3u32 {
            assert_eq!(hub.publish(Arc::new(i)), 2);
        }
        for i in 0..3u32 {
            assert_eq!(*a.recv().await.unwrap(), i);
        }
        for i in 3..10u32 {
            hub.publish(Arc::new(i));
        }
        assert!(matches!(b.recv().await, Err(broadcast::error::RecvError::Lagged(_))));
    }
}
