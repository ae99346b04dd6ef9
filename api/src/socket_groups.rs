//! Socket groups: every subscribed shard socket runs inside one of a few long-lived tasks
//! (16 per runtime worker), chosen by its match, not as a task of its own.
//!
//! Why: a tick thread publishes a frame to each subscriber's mailbox and wakes it. When
//! every socket is a tokio task, each of those wakes is a task scheduled from outside the
//! runtime (a push on the shared inject queue, often a futex to unpark a worker), and a
//! match of 8 players costs 8 of them per tick. Inside a group, a socket is one future of
//! a [`FuturesUnordered`]: its wake is a push on the group's own ready queue, and only the
//! group task is scheduled, once for however many of its sockets woke since its last poll.
//! The group then polls just those sockets, one after the other, on one worker.
//!
//! The sockets of one match share a group (its id picks the group), so a tick's frames to
//! a match's players wake one group. There are many more groups than workers: a group is
//! the unit the runtime can move between workers, and with one group per worker a worker
//! preempted by the OS (the machine busy) held every socket of its group until it ran
//! again (measured: 4,000 bots on two cores, p99 0.9 s with one group per worker, 0.15 s
//! with a task per socket).
//!
//! A socket that panics ends alone (`catch_unwind`: its guards still run as it unwinds);
//! its group and the other sockets go on. Each socket future is tracked by the server's
//! `TaskTracker` as before, so graceful shutdown waits for it exactly as for a task.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::OnceLock;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

type Socket = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The groups of one server; created empty, started on first use (inside the runtime).
#[derive(Default)]
pub(crate) struct SocketGroups {
    groups: OnceLock<Vec<mpsc::UnboundedSender<Socket>>>,
}

impl std::fmt::Debug for SocketGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketGroups")
            .field("groups", &self.groups.get().map_or(0, Vec::len))
            .finish_non_exhaustive()
    }
}

impl SocketGroups {
    /// Runs `socket` in the group of `key` (the match id). Must be called inside the
    /// tokio runtime.
    pub(crate) fn run(&self, key: &str, socket: impl Future<Output = ()> + Send + 'static) {
        let groups = self.groups.get_or_init(start);
        let socket: Socket = Box::pin(socket);
        let index = usize::try_from(fnv1a(key.as_bytes())).unwrap_or(0) % groups.len().max(1);
        let refused = match groups.get(index) {
            Some(group) => group.send(socket).err().map(|mpsc::error::SendError(s)| s),
            None => Some(socket),
        };
        if let Some(socket) = refused {
            // The group is gone (the runtime is shutting down): run it alone.
            tokio::spawn(guarded(socket));
        }
    }
}

/// Groups per runtime worker.
const GROUPS_PER_WORKER: usize = 16;

/// The groups, each a task holding its sockets.
fn start() -> Vec<mpsc::UnboundedSender<Socket>> {
    let workers = tokio::runtime::Handle::current().metrics().num_workers().max(1);
    (0..workers * GROUPS_PER_WORKER)
        .map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(group(rx));
            tx
        })
        .collect()
}

async fn group(mut incoming: mpsc::UnboundedReceiver<Socket>) {
    let mut sockets = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            socket = incoming.recv(), if open => match socket {
                Some(socket) => sockets.push(guarded(socket)),
                None => open = false,
            },
            Some(()) = sockets.next(), if !sockets.is_empty() => {}
            else => return,
        }
    }
}

/// FNV-1a: a fixed, cheap spread of match ids over the groups.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A socket whose panic ends only itself.
async fn guarded(socket: Socket) {
    if AssertUnwindSafe(socket).catch_unwind().await.is_err() {
        tracing::error!("a shard socket panicked; it was closed, its group goes on");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Sockets run to completion inside groups, and one that panics does not stop the
    /// others of its group.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_sockets_and_survives_a_panic() {
        let groups = SocketGroups::default();
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..50 {
            let done = Arc::clone(&done);
            groups.run(&format!("match-{}", i % 5), async move {
                tokio::task::yield_now().await;
                assert!(i != 7, "socket 7 panics on purpose");
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::Relaxed) < 49 {
            assert!(tokio::time::Instant::now() < deadline, "sockets did not finish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Still usable after the panic.
        let again = Arc::clone(&done);
        groups.run("match-0", async move {
            again.fetch_add(1, Ordering::Relaxed);
        });
        while done.load(Ordering::Relaxed) < 50 {
            assert!(tokio::time::Instant::now() < deadline, "the group stopped after a panic");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
