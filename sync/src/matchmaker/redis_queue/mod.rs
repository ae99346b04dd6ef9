//! The shared queue: tickets in Redis, so every process of a region accepts tickets and
//! one of them (the holder of the queue's lease) matches them. Key layout: [`keys`];
//! atomicity: [`scripts`]; the matching side (leases, load, commit): `pass.rs`.

mod keys;
mod pass;
mod scripts;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use self::keys::Keys;
use self::scripts::Scripts;
use super::clock::{Clock, secs_between};
use super::error::MatchmakerError;
use super::memory::{millis, resolve_slot};
use super::queue::{AssignmentCursor, QueueOptions};
use super::rules::Rules;
use super::ticket::{
    Assignment, NewTicket, OpenSlot, QueueKey, Ticket, TicketId, TicketState, TicketStatus,
};

/// Default [`RedisOptions::lease_ttl`]: a queue's matcher holds its lease for 3 s and
/// renews it every second, so another process takes over about 3 s after it dies.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);

/// How a process joins the shared queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prefix of every key (the cluster namespace), so deploys sharing a Redis do not
    /// collide.
    pub namespace: String,
    /// This process's id, stored in the leases it holds.
    pub instance_id: String,
    /// Lease lifetime ([`DEFAULT_LEASE_TTL`]); renewed every third of it.
    pub lease_ttl: Duration,
    /// Regions whose queues this process may match; empty: all. A process normally
    /// matches only its own region, where it creates the matches.
    pub regions: Vec<String>,
    /// Retention and log settings.
    pub queue: QueueOptions,
}

impl RedisOptions {
    /// Options with the defaults for `namespace` and `instance_id`.
    #[must_use]
    pub fn new(namespace: &str, instance_id: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            instance_id: instance_id.to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
            regions: Vec::new(),
            queue: QueueOptions::default(),
        }
    }
}

/// Matchmaking queues shared through Redis by every process of a namespace.
pub struct RedisQueue {
    conn: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    rules: Arc<Rules>,
    clock: Arc<dyn Clock>,
    options: RedisOptions,
    /// Queues whose lease this process believes it holds (the commit script checks).
    leases: Mutex<BTreeSet<QueueKey>>,
    /// Ticket data of led queues, by queue: tickets never change once queued.
    cache: Mutex<HashMap<QueueKey, HashMap<TicketId, Arc<Ticket>>>>,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue").field("options", &self.options).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedisQueue {
    /// Connects to `url` (reconnecting on its own later) and loads the scripts.
    ///
    /// # Errors
    /// [`MatchmakerError::Redis`] when Redis does not answer.
    pub async fn connect(
        url: &str,
        rules: Arc<Rules>,
        clock: Arc<dyn Clock>,
        options: RedisOptions,
    ) -> Result<Self, MatchmakerError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(5))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Self::new(conn, rules, clock, options).await
    }

    /// Uses an existing connection (e.g. the cluster bus's) and loads the scripts.
    ///
    /// # Errors
    /// [`MatchmakerError::Redis`].
    pub async fn new(
        mut conn: ConnectionManager,
        rules: Arc<Rules>,
        clock: Arc<dyn Clock>,
        options: RedisOptions,
    ) -> Result<Self, MatchmakerError> {
        let scripts = Scripts::new();
        scripts.load(&mut conn).await?;
        Ok(Self {
            conn,
            keys: Keys::new(&options.namespace),
            scripts,
            rules,
            clock,
            options,
            leases: Mutex::new(BTreeSet::new()),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The rules tickets are validated and matched with.
    #[must_use]
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The lease lifetime.
    #[must_use]
    pub fn lease_ttl(&self) -> Duration {
        self.options.lease_ttl
    }

    fn retention_ms(&self) -> u64 {
        millis(self.options.queue.closed_retention).max(1)
    }

    /// Queues a ticket. See [`super::Queue::submit`].
    ///
    /// # Errors
    /// Validation errors, [`MatchmakerError::AlreadyQueued`], Redis failures.
    pub async fn submit(&self, new: NewTicket) -> Result<Arc<Ticket>, MatchmakerError> {
        let now = self.clock.now_ms();
        let id = TicketId::random_in(&new.region)?;
        let ticket = new.into_ticket(&self.rules, id, now)?;
        let key = ticket.queue_key();
        let timeout = self.rules.for_queue(&key).map_or(0, |r| millis(r.ticket_timeout));
        let ttl = timeout.saturating_add(self.retention_ms());
        let data = serde_json::to_string(&ticket).map_err(|e| corrupt(&ticket.id, &e))?;
        let mut call = self.scripts.submit.prepare_invoke();
        call.key(self.keys.ticket(&ticket.id)).key(self.keys.queue(&key)).key(self.keys.queues());
        for user in &ticket.party {
            call.key(self.keys.player(user));
        }
        call.arg(ticket.id.as_str()).arg(ticket.created_at).arg(data).arg(Keys::queue_name(&key));
        call.arg(ttl).arg(self.keys.ticket_prefix());
        let (member, held): (usize, String) = call.invoke_async(&mut self.conn.clone()).await?;
        if member > 0 {
            let user = ticket.party.get(member - 1).cloned().unwrap_or_default();
            return Err(MatchmakerError::AlreadyQueued { user, ticket: TicketId::from(held) });
        }
        Ok(Arc::new(ticket))
    }

    async fn load_ticket(
        &self,
        id: &TicketId,
    ) -> Result<(Ticket, String, Option<String>), MatchmakerError> {
        let fields: (Option<String>, Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.ticket(id))
            .arg(&["data", "status", "assignment"])
            .query_async(&mut self.conn.clone())
            .await?;
        let (Some(data), Some(status), assignment) = fields else {
            return Err(MatchmakerError::NotFound(id.clone()));
        };
        let ticket = serde_json::from_str(&data).map_err(|e| corrupt(id, &e))?;
        Ok((ticket, status, assignment))
    }

    /// A ticket and its status. See [`super::Queue::status`].
    ///
    /// # Errors
    /// [`MatchmakerError::NotFound`], Redis failures, a corrupt record.
    pub async fn status(&self, id: &TicketId) -> Result<TicketState, MatchmakerError> {
        let (ticket, status, assignment) = self.load_ticket(id).await?;
        let status = match (status.as_str(), assignment) {
            ("queued", _) => {
                let rank: Option<u64> = self
                    .conn
                    .clone()
                    .zrank(self.keys.queue(&ticket.queue_key()), id.as_str())
                    .await?;
                TicketStatus::Queued {
                    position: rank.unwrap_or(0) + 1,
                    waiting_secs: secs_between(ticket.created_at, self.clock.now_ms()),
                }
            }
            ("matched", Some(json)) => {
                let a: Assignment = serde_json::from_str(&json).map_err(|e| corrupt(id, &e))?;
                TicketStatus::Matched(Arc::new(a))
            }
            ("expired", _) => TicketStatus::Expired,
            ("cancelled", _) => TicketStatus::Cancelled,
            (other, _) => return Err(corrupt(id, &format!("status `{other}`"))),
        };
        Ok(TicketState { ticket: Arc::new(ticket), status })
    }

    /// Cancels a queued ticket. See [`super::Queue::cancel`].
    ///
    /// # Errors
    /// [`MatchmakerError::NotFound`], the closed status as an error, Redis failures.
    pub async fn cancel(&self, id: &TicketId) -> Result<(), MatchmakerError> {
        let (ticket, _, _) = self.load_ticket(id).await?;
        let call = self.close(&ticket, "cancelled");
        let outcome: String = call.invoke_async(&mut self.conn.clone()).await?;
        match outcome.as_str() {
            "ok" => Ok(()),
            "matched" => Err(MatchmakerError::AlreadyMatched(id.clone())),
            "expired" => Err(MatchmakerError::Expired(id.clone())),
            "cancelled" => Err(MatchmakerError::Cancelled(id.clone())),
            _ => Err(MatchmakerError::NotFound(id.clone())),
        }
    }

    /// The `CLOSE` script call for `ticket` with the new `status`.
    fn close(&self, ticket: &Ticket, status: &str) -> redis::ScriptInvocation<'_> {
        let mut call = self.scripts.close.prepare_invoke();
        call.key(self.keys.ticket(&ticket.id)).key(self.keys.queue(&ticket.queue_key()));
        for user in &ticket.party {
            call.key(self.keys.player(user));
        }
        call.arg(ticket.id.as_str()).arg(status).arg(self.retention_ms());
        call
    }

    /// Offers a running match's free slots. See [`super::Queue::set_slot`].
    ///
    /// # Errors
    /// Validation errors, Redis failures.
    pub async fn set_slot(&self, slot: OpenSlot) -> Result<(), MatchmakerError> {
        let slot = resolve_slot(&self.rules, slot)?;
        let mut conn = self.conn.clone();
        if slot.free == 0 {
            let _: i64 = conn.hdel(self.keys.slots(), &slot.match_id).await?;
        } else {
            let json = serde_json::to_string(&slot).map_err(|e| MatchmakerError::Corrupt {
                key: slot.match_id.clone(),
                reason: e.to_string(),
            })?;
            let _: i64 = conn.hset(self.keys.slots(), &slot.match_id, json).await?;
        }
        Ok(())
    }

    /// Withdraws a running match's open slots.
    ///
    /// # Errors
    /// Redis failures.
    pub async fn remove_slot(&self, match_id: &str) -> Result<(), MatchmakerError> {
        let _: i64 = self.conn.clone().hdel(self.keys.slots(), match_id).await?;
        Ok(())
    }

    /// Assignments committed after `cursor`. See [`super::Queue::poll_assignments`].
    ///
    /// # Errors
    /// Redis failures, a corrupt log entry.
    pub async fn poll_assignments(
        &self,
        cursor: &mut AssignmentCursor,
        max: usize,
    ) -> Result<Vec<Arc<Assignment>>, MatchmakerError> {
        // `(id`: exclusive start (Redis >= 6.2).
        let start = if cursor.0.is_empty() { "-".to_owned() } else { format!("({}", cursor.0) };
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.keys.log())
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(max.max(1))
            .query_async(&mut self.conn.clone())
            .await?;
        let mut out = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            let json = fields.get(1).map_or("", String::as_str);
            let a: Assignment =
                serde_json::from_str(json).map_err(|e| MatchmakerError::Corrupt {
                    key: format!("{}#{id}", self.keys.log()),
                    reason: e.to_string(),
                })?;
            out.push(Arc::new(a));
            cursor.0 = id;
        }
        Ok(out)
    }

    /// A cursor after every assignment so far. See [`super::Queue::assignment_cursor`].
    ///
    /// # Errors
    /// Redis failures.
    pub async fn assignment_cursor(&self) -> Result<AssignmentCursor, MatchmakerError> {
        let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.log())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(AssignmentCursor(last.into_iter().next().map_or_else(|| "0-0".to_owned(), |(id, _)| id)))
    }
}

fn corrupt(id: &TicketId, e: &dyn fmt::Display) -> MatchmakerError {
    MatchmakerError::Corrupt { key: id.to_string(), reason: e.to_string() }
}
