//! The local waiters of the matchmaker's pushes: the SSE streams of tickets
//! (`GET /api/matchmaker/tickets/:id/events`) and the sync sockets of players (`/ws`),
//! registered by ticket id or user id. A ready assignment is handed to every waiter of
//! its tickets and of its players on this process (each process does the same with the
//! assignments it hears of on the cluster bus).
//!
//! Bounded: each waiter holds at most [`WAITER_CAPACITY`] pushes; a full one loses the
//! push (the SSE stream still re-reads the ticket's status on its own), and nothing ever
//! waits on a slow waiter. A waiter deregisters itself when dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pylon_sync::matchmaker::{Assignment, TicketId};
use tokio::sync::mpsc;

/// Pushes one waiter holds before more are dropped (a ticket gets one, a player a few).
pub const WAITER_CAPACITY: usize = 8;

/// What a waiter is told.
#[derive(Debug, Clone)]
pub enum Push {
    /// The ticket (or one of the player's tickets) is in this match, which exists.
    Matched(Arc<Assignment>),
    /// The ticket expired before a match was found.
    Expired,
    /// The ticket was cancelled.
    Cancelled,
}

type Senders = Vec<(u64, mpsc::Sender<Push>)>;

#[derive(Default)]
struct Registry {
    tickets: HashMap<String, Senders>,
    users: HashMap<String, Senders>,
}

/// Every waiter of this process.
#[derive(Default)]
pub struct Waiters {
    next: AtomicU64,
    inner: Mutex<Registry>,
}

#[derive(Debug, Clone)]
enum Key {
    Ticket(String),
    User(String),
}

/// One registered waiter; dropping it deregisters it.
pub struct Waiter {
    rx: mpsc::Receiver<Push>,
    key: Key,
    id: u64,
    waiters: Arc<Waiters>,
}

fn lock(m: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    // Every critical section is one map update; a poisoned map is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Hands `push` to every sender of `list` that has room; how many took it.
fn send_all(list: Option<&Senders>, push: &Push) -> usize {
    list.map_or(0, |senders| {
        senders.iter().filter(|(_, tx)| tx.try_send(push.clone()).is_ok()).count()
    })
}

impl Waiters {
    /// A waiter for ticket `id` (an SSE stream).
    #[must_use]
    pub fn ticket(self: &Arc<Self>, id: &TicketId) -> Waiter {
        self.register(Key::Ticket(id.as_str().to_owned()))
    }

    /// A waiter for the matches of player `user` (a sync socket).
    #[must_use]
    pub fn user(self: &Arc<Self>, user: &str) -> Waiter {
        self.register(Key::User(user.to_owned()))
    }

    fn register(self: &Arc<Self>, key: Key) -> Waiter {
        let (tx, rx) = mpsc::channel(WAITER_CAPACITY);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut inner = lock(&self.inner);
        let map = match &key {
            Key::Ticket(t) => inner.tickets.entry(t.clone()),
            Key::User(u) => inner.users.entry(u.clone()),
        };
        map.or_default().push((id, tx));
        drop(inner);
        Waiter { rx, key, id, waiters: Arc::clone(self) }
    }

    /// Pushes a ready assignment to the waiters of its tickets and players here; how many
    /// (ticket waiters, player waiters) took it.
    pub fn matched(&self, assignment: &Arc<Assignment>) -> (usize, usize) {
        let push = Push::Matched(Arc::clone(assignment));
        let inner = lock(&self.inner);
        let tickets =
            assignment.tickets.iter().map(|t| send_all(inner.tickets.get(t.as_str()), &push)).sum();
        let users = assignment.players.iter().map(|u| send_all(inner.users.get(u), &push)).sum();
        (tickets, users)
    }

    /// Tells the waiters of ticket `id` here that it closed without a match.
    pub fn closed(&self, id: &TicketId, push: &Push) {
        send_all(lock(&self.inner).tickets.get(id.as_str()), push);
    }

    /// Waiters registered now: (by ticket, by player).
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        let inner = lock(&self.inner);
        let count = |m: &HashMap<String, Senders>| m.values().map(Vec::len).sum();
        (count(&inner.tickets), count(&inner.users))
    }
}

impl Waiter {
    /// The next push (cancel-safe); pending forever once none can come.
    pub async fn recv(&mut self) -> Push {
        match self.rx.recv().await {
            Some(push) => push,
            None => std::future::pending().await,
        }
    }
}

/// The next push of `waiter`, or pending forever without one (a socket without a
/// session, a server without the matchmaker).
pub async fn next(waiter: Option<&mut Waiter>) -> Push {
    match waiter {
        Some(w) => w.recv().await,
        None => std::future::pending().await,
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut inner = lock(&self.waiters.inner);
        let (map, name) = match &self.key {
            Key::Ticket(t) => (&mut inner.tickets, t),
            Key::User(u) => (&mut inner.users, u),
        };
        if let Some(list) = map.get_mut(name) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(name);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn assignment(tickets: &[&str], players: &[&str]) -> Arc<Assignment> {
        Arc::new(Assignment {
            match_key: "eu-abcdefghijkl".into(),
            region: "eu".into(),
            game: "arena".into(),
            mode: None,
            tickets: tickets.iter().map(|t| TicketId::from(*t)).collect(),
            players: players.iter().map(|p| (*p).to_owned()).collect(),
            backfill: false,
            average_skill: None,
            matched_at: 0,
            created_at: vec![0; tickets.len()],
            party_sizes: vec![1; tickets.len()],
            params: None,
        })
    }

    /// A ready assignment reaches the waiters of its tickets and of its players, not
    /// others'; a dropped waiter is gone from the registry.
    #[tokio::test]
    async fn pushes_reach_their_waiters_only() {
        let waiters = Arc::new(Waiters::default());
        let mut by_ticket = waiters.ticket(&TicketId::from("eu-t1"));
        let mut by_user = waiters.user("u2");
        let mut other = waiters.user("u9");
        let a = assignment(&["eu-t1", "eu-t2"], &["u1", "u2"]);
        assert_eq!(waiters.matched(&a), (1, 1));
        assert!(matches!(by_ticket.recv().await, Push::Matched(got) if Arc::ptr_eq(&got, &a)));
        assert!(matches!(by_user.recv().await, Push::Matched(_)));
        assert!(other.rx.try_recv().is_err());
        waiters.closed(&TicketId::from("eu-t1"), &Push::Expired);
        assert!(matches!(by_ticket.recv().await, Push::Expired));
        drop((by_ticket, by_user));
        assert_eq!(waiters.counts(), (0, 1));
    }

    /// A waiter that does not read loses pushes past its capacity; the sender never
    /// waits.
    #[test]
    fn a_full_waiter_drops() {
        let waiters = Arc::new(Waiters::default());
        let _w = waiters.user("u1");
        let a = assignment(&["eu-t1"], &["u1"]);
        for _ in 0..WAITER_CAPACITY {
            assert_eq!(waiters.matched(&a), (0, 1));
        }
        assert_eq!(waiters.matched(&a), (0, 0));
    }
}
