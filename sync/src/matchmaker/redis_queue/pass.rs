//! The matching side of the shared queue: leases (one matcher per queue), loading a led
//! queue, and committing a plan with one atomic script call per assignment.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use redis::{AsyncCommands, Pipeline};

use super::keys::Keys;
use super::scripts::evalsha;
use super::{RedisQueue, lock};
use crate::matchmaker::error::MatchmakerError;
use crate::matchmaker::memory::millis;
use crate::matchmaker::plan::Plan;
use crate::matchmaker::queue::{MatchHost, PassReport, QueueInput, hosted, plan_all};
use crate::matchmaker::ticket::{OpenSlot, QueueKey, Ticket, TicketId};

/// Commands per pipeline when loading tickets or committing a plan.
const PIPELINE_CHUNK: usize = 1024;

impl RedisQueue {
    /// One matching pass. See [`crate::matchmaker::Queue::run_pass_with`].
    ///
    /// # Errors
    /// Redis failures.
    pub async fn run_pass_with(&self, host: &dyn MatchHost) -> Result<PassReport, MatchmakerError> {
        let names: Vec<String> = self.conn.clone().smembers(self.keys.queues()).await?;
        let mut keys: Vec<QueueKey> = names
            .iter()
            .filter_map(|n| Keys::parse_queue_name(n))
            .filter(|k| self.rules.for_queue(k).is_some())
            .filter(|k| self.options.regions.is_empty() || self.options.regions.contains(&k.region))
            .collect();
        keys.sort();
        let led = self.take_leases(&keys).await?;
        let mut report = PassReport::default();
        if led.is_empty() {
            return Ok(report);
        }
        let slots = self.load_slots().await?;
        let mut inputs = Vec::with_capacity(led.len());
        for key in led {
            let tickets = self.load_queue(&key).await?;
            let slots = slots.iter().filter(|s| slot_matches(s, &key)).cloned().collect();
            inputs.push(QueueInput { key, tickets, slots });
        }
        let sizes: HashMap<QueueKey, usize> =
            inputs.iter().map(|q| (q.key.clone(), q.tickets.len())).collect();
        let now = self.clock.now_ms();
        for (key, plan) in plan_all(self.rules.clone(), inputs, now).await {
            let before = sizes.get(&key).copied().unwrap_or(0);
            let closed = self.commit(&key, plan, host, &mut report).await?;
            report.queued.insert(key, before.saturating_sub(closed));
        }
        Ok(report)
    }

    /// Renews the leases already held and tries to take the others (`SET NX PX`);
    /// releases held leases of queues no longer listed; returns the queues this process
    /// leads now.
    async fn take_leases(&self, keys: &[QueueKey]) -> Result<Vec<QueueKey>, MatchmakerError> {
        let ttl = millis(self.options.lease_ttl).max(1).to_string();
        let me = self.options.instance_id.clone();
        let held = lock(&self.leases).clone();
        let gone: Vec<&QueueKey> = held.iter().filter(|k| keys.binary_search(k).is_err()).collect();
        if keys.is_empty() && gone.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            let lease = self.keys.lease(key);
            if held.contains(key) {
                pipe.add_command(evalsha(
                    &self.scripts.renew,
                    &[lease],
                    &[me.clone(), ttl.clone()],
                ));
            } else {
                pipe.cmd("SET").arg(lease).arg(&me).arg("NX").arg("PX").arg(&ttl);
            }
        }
        for key in &gone {
            pipe.add_command(evalsha(
                &self.scripts.release,
                &[self.keys.lease(key)],
                std::slice::from_ref(&me),
            ));
        }
        let answers: Vec<redis::Value> = self.query(&pipe).await?;
        let mut led = Vec::new();
        let mut leases = lock(&self.leases);
        for key in gone {
            leases.remove(key);
            lock(&self.cache).remove(key);
        }
        for (key, answer) in keys.iter().zip(answers) {
            if matches!(answer, redis::Value::Okay | redis::Value::Int(1)) {
                if leases.insert(key.clone()) {
                    tracing::info!(queue = %key, instance = %me, "matchmaker: lease taken");
                }
                led.push(key.clone());
            } else if leases.remove(key) {
                tracing::warn!(queue = %key, instance = %me, "matchmaker: lease lost");
                lock(&self.cache).remove(key);
            }
        }
        Ok(led)
    }

    /// Runs a pipeline, reloading the scripts once if Redis forgot them (restart,
    /// `SCRIPT FLUSH`).
    async fn query<T: redis::FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, MatchmakerError> {
        let mut conn = self.conn.clone();
        match pipe.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                self.scripts.load(&mut conn).await?;
                Ok(pipe.query_async(&mut conn).await?)
            }
            other => Ok(other?),
        }
    }

    async fn load_slots(&self) -> Result<Vec<OpenSlot>, MatchmakerError> {
        let raw: HashMap<String, String> = self.conn.clone().hgetall(self.keys.slots()).await?;
        let mut slots: Vec<OpenSlot> = raw
            .into_iter()
            .filter_map(|(id, json)| match serde_json::from_str(&json) {
                Ok(slot) => Some(slot),
                Err(e) => {
                    tracing::warn!(match_id = %id, error = %e, "matchmaker: bad open slot ignored");
                    None
                }
            })
            .collect();
        slots.sort_by(|a, b| a.match_id.cmp(&b.match_id));
        Ok(slots)
    }

    /// The queued tickets of a led queue: ids from the sorted set, data from the cache
    /// or (for new ids) from their hashes in pipelined `HGET`s.
    async fn load_queue(&self, key: &QueueKey) -> Result<Vec<Arc<Ticket>>, MatchmakerError> {
        let mut conn = self.conn.clone();
        let queue = self.keys.queue(key);
        let ids: Vec<String> = conn.zrange(&queue, 0, -1).await?;
        if ids.is_empty() {
            let _: i64 = self
                .scripts
                .tidy
                .key(&queue)
                .key(self.keys.queues())
                .arg(Keys::queue_name(key))
                .invoke_async(&mut conn)
                .await?;
        }
        let known = lock(&self.cache).remove(key).unwrap_or_default();
        let missing: Vec<&String> =
            ids.iter().filter(|id| !known.contains_key(id.as_str())).collect();
        let mut fetched = HashMap::with_capacity(missing.len());
        for chunk in missing.chunks(PIPELINE_CHUNK) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hget(self.keys.ticket(&TicketId::from(id.as_str())), "data");
            }
            let datas: Vec<Option<String>> = self.query(&pipe).await?;
            for (id, data) in chunk.iter().zip(datas) {
                self.decode_loaded(&queue, id, data, &mut fetched).await?;
            }
        }
        let mut tickets = Vec::with_capacity(ids.len());
        let mut cache = HashMap::with_capacity(ids.len());
        for id in ids {
            let id = TicketId::from(id);
            if let Some(t) = known.get(&id).or_else(|| fetched.get(&id)) {
                tickets.push(t.clone());
                cache.insert(id, t.clone());
            }
        }
        lock(&self.cache).insert(key.clone(), cache);
        Ok(tickets)
    }

    /// Decodes one fetched ticket; an id whose hash is gone (it outlived its TTL) is
    /// dropped from the queue, an undecodable one is skipped with a warning.
    async fn decode_loaded(
        &self,
        queue: &str,
        id: &str,
        data: Option<String>,
        into: &mut HashMap<TicketId, Arc<Ticket>>,
    ) -> Result<(), MatchmakerError> {
        let Some(data) = data else {
            let _: i64 = self.conn.clone().zrem(queue, id).await?;
            return Ok(());
        };
        match serde_json::from_str::<Ticket>(&data) {
            Ok(t) => {
                into.insert(t.id.clone(), Arc::new(t));
            }
            Err(e) => {
                tracing::warn!(ticket = %id, error = %e, "matchmaker: corrupt ticket skipped")
            }
        }
        Ok(())
    }
}

fn slot_matches(slot: &OpenSlot, key: &QueueKey) -> bool {
    slot.region == key.region && slot.game == key.game && slot.mode == key.mode
}

impl RedisQueue {
    /// Writes a plan back: expiries through `CLOSE`, each assignment `host` accepts
    /// through `COMMIT` (atomic; refused when the lease moved or a ticket closed
    /// meanwhile, and then abandoned). Returns how many tickets it closed.
    async fn commit(
        &self,
        key: &QueueKey,
        plan: Plan,
        host: &dyn MatchHost,
        report: &mut PassReport,
    ) -> Result<usize, MatchmakerError> {
        let cached = lock(&self.cache).get(key).cloned().unwrap_or_default();
        let mut closed = self.expire(&plan.expired, &cached, report).await?;
        for chunk in plan.assignments.chunks(PIPELINE_CHUNK / 4) {
            let accepted: Vec<_> = chunk.iter().filter_map(|a| hosted(host, a.clone())).collect();
            let mut pipe = redis::pipe();
            for a in &accepted {
                let (keys, args) = self.commit_parts(key, a, &cached)?;
                pipe.add_command(evalsha(&self.scripts.commit, &keys, &args));
            }
            let answers: Vec<String> = match self.query(&pipe).await {
                Ok(answers) => answers,
                Err(e) => {
                    accepted.iter().for_each(|a| host.abandon(a));
                    return Err(e);
                }
            };
            for (a, answer) in accepted.into_iter().zip(answers) {
                match answer.as_str() {
                    "ok" => {
                        closed += a.tickets.len();
                        report.assignments.push(Arc::new(a));
                        continue;
                    }
                    "lease" => self.lost_lease(key),
                    other => {
                        tracing::debug!(queue = %key, outcome = other, "matchmaker: assignment skipped")
                    }
                }
                host.abandon(&a);
            }
        }
        Ok(closed)
    }

    /// Closes the expired tickets of a plan; how many it closed.
    async fn expire(
        &self,
        expired: &[TicketId],
        cached: &HashMap<TicketId, Arc<Ticket>>,
        report: &mut PassReport,
    ) -> Result<usize, MatchmakerError> {
        let mut closed = 0;
        for chunk in expired.chunks(PIPELINE_CHUNK) {
            let mut pipe = redis::pipe();
            let tickets: Vec<&Arc<Ticket>> = chunk.iter().filter_map(|id| cached.get(id)).collect();
            for t in &tickets {
                let (keys, args) = self.close_parts(t, "expired");
                pipe.add_command(evalsha(&self.scripts.close, &keys, &args));
            }
            let answers: Vec<String> = self.query(&pipe).await?;
            for (t, answer) in tickets.iter().zip(answers) {
                if answer == "ok" {
                    report.expired.push(t.id.clone());
                    closed += 1;
                }
            }
        }
        Ok(closed)
    }

    fn lost_lease(&self, key: &QueueKey) {
        if lock(&self.leases).remove(key) {
            tracing::warn!(queue = %key, "matchmaker: lease lost before commit");
        }
    }

    fn close_parts(&self, t: &Ticket, status: &str) -> (Vec<String>, Vec<String>) {
        let mut keys = vec![self.keys.ticket(&t.id), self.keys.queue(&t.queue_key())];
        keys.extend(t.party.iter().map(|u| self.keys.player(u)));
        let args = vec![t.id.to_string(), status.to_owned(), self.retention_ms().to_string()];
        (keys, args)
    }

    fn commit_parts(
        &self,
        key: &QueueKey,
        a: &crate::matchmaker::Assignment,
        cached: &HashMap<TicketId, Arc<Ticket>>,
    ) -> Result<(Vec<String>, Vec<String>), MatchmakerError> {
        let mut keys =
            vec![self.keys.lease(key), self.keys.queue(key), self.keys.log(), self.keys.slots()];
        keys.extend(a.tickets.iter().map(|id| self.keys.ticket(id)));
        let players: BTreeSet<&str> = a
            .tickets
            .iter()
            .filter_map(|id| cached.get(id))
            .flat_map(|t| t.party.iter().map(String::as_str))
            .collect();
        keys.extend(players.into_iter().map(|u| self.keys.player(u)));
        let json = serde_json::to_string(a).map_err(|e| MatchmakerError::Corrupt {
            key: a.match_key.clone(),
            reason: e.to_string(),
        })?;
        let mut args = vec![
            self.options.instance_id.clone(),
            json,
            self.retention_ms().to_string(),
            self.options.queue.log_capacity.max(1).to_string(),
            if a.backfill { a.match_key.clone() } else { String::new() },
            a.players.len().to_string(),
            a.tickets.len().to_string(),
        ];
        args.extend(a.tickets.iter().map(ToString::to_string));
        Ok((keys, args))
    }

    /// Renews every held lease (compare-and-renew); drops those another process took.
    ///
    /// # Errors
    /// Redis failures.
    pub async fn renew_leases(&self) -> Result<(), MatchmakerError> {
        let held: Vec<QueueKey> = lock(&self.leases).iter().cloned().collect();
        if held.is_empty() {
            return Ok(());
        }
        let ttl = millis(self.options.lease_ttl).max(1).to_string();
        let me = self.options.instance_id.clone();
        let mut pipe = redis::pipe();
        for key in &held {
            pipe.add_command(evalsha(
                &self.scripts.renew,
                &[self.keys.lease(key)],
                &[me.clone(), ttl.clone()],
            ));
        }
        let renewed: Vec<i64> = self.query(&pipe).await?;
        for (key, ok) in held.iter().zip(renewed) {
            if ok != 1 {
                self.lost_lease(key);
            }
        }
        Ok(())
    }

    /// Releases every held lease (graceful stop), so another process takes over at once.
    ///
    /// # Errors
    /// Redis failures.
    pub async fn release_leases(&self) -> Result<(), MatchmakerError> {
        let held: Vec<QueueKey> = std::mem::take(&mut *lock(&self.leases)).into_iter().collect();
        let mut pipe = redis::pipe();
        for key in &held {
            pipe.add_command(evalsha(
                &self.scripts.release,
                &[self.keys.lease(key)],
                std::slice::from_ref(&self.options.instance_id),
            ));
        }
        if !held.is_empty() {
            let _: Vec<i64> = self.query(&pipe).await?;
        }
        lock(&self.cache).clear();
        Ok(())
    }
}
