//! The Lua scripts that keep the shared queue consistent: each runs atomically in Redis,
//! so a ticket is created only when none of its players has an open one, and closed
//! (matched, expired, cancelled) at most once.
//!
//! Scripts receive every key they write in `KEYS`. `SUBMIT` also reads the hash of a
//! player's previous ticket by name (`ARGV[6]` prefix), so the queue runs on a single
//! Redis (or a primary with replicas), not on Redis Cluster.

use redis::Script;

/// `KEYS`: ticket hash, queue zset, queues set, then one player key per party member.
/// `ARGV`: ticket id, score, ticket JSON, queue name, ticket TTL ms, ticket key prefix.
/// Returns `{0, ""}` when queued, else `{i, id}`: party member `i` (1-based) already has
/// the open ticket `id`. A player key pointing at a closed ticket is stale and ignored.
const SUBMIT: &str = r"
for i = 4, #KEYS do
  local held = redis.call('GET', KEYS[i])
  if held and redis.call('HGET', ARGV[6] .. held, 'status') == 'queued' then
    return {i - 3, held}
  end
end
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[5])
end
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'status', 'queued')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
return {0, ''}
";

/// Closes a queued ticket as cancelled or expired.
/// `KEYS`: ticket hash, queue zset, then its player keys.
/// `ARGV`: ticket id, new status, retention ms.
/// Returns `ok`, `missing`, or the status the ticket already had.
const CLOSE: &str = r"
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'missing' end
if st ~= 'queued' then return st end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 'ok'
";

/// Commits one assignment if this instance still holds the queue's lease and every
/// ticket is still queued (and, for backfill, the slot still has room).
/// `KEYS`: lease, queue zset, log stream, slots hash, `n` ticket hashes, player keys.
/// `ARGV`: instance id, assignment JSON, retention ms, log capacity, backfilled match id
/// (empty for a new match), players added, `n`, then the `n` ticket ids.
/// Returns `ok`, `lease` (not the holder), `stale` (a ticket closed) or `slot`.
const COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lease' end
local n = tonumber(ARGV[7])
for i = 1, n do
  if redis.call('HGET', KEYS[4 + i], 'status') ~= 'queued' then return 'stale' end
end
if ARGV[5] ~= '' then
  local raw = redis.call('HGET', KEYS[4], ARGV[5])
  if not raw then return 'slot' end
  local slot = cjson.decode(raw)
  local take = tonumber(ARGV[6])
  if slot.free < take then return 'slot' end
  slot.free = slot.free - take
  if slot.free == 0 then
    redis.call('HDEL', KEYS[4], ARGV[5])
  else
    redis.call('HSET', KEYS[4], ARGV[5], cjson.encode(slot))
  end
end
for i = 1, n do
  redis.call('HSET', KEYS[4 + i], 'status', 'matched', 'assignment', ARGV[2])
  redis.call('PEXPIRE', KEYS[4 + i], ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[7 + i])
end
for i = 5 + n, #KEYS do
  local held = redis.call('GET', KEYS[i])
  for j = 1, n do
    if held == ARGV[7 + j] then redis.call('DEL', KEYS[i]) break end
  end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'a', ARGV[2])
return 'ok'
";

/// Compare-and-renew: `KEYS[1]` lease, `ARGV`: instance id, TTL ms. Returns 1 if renewed.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Compare-and-delete: `KEYS[1]` lease, `ARGV[1]` instance id. Returns 1 if released.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Forgets an empty queue: `KEYS`: queue zset, queues set; `ARGV[1]` queue name.
/// Atomic, so a ticket submitted meanwhile keeps its queue listed.
const TIDY: &str = r"
if redis.call('ZCARD', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
";

/// The compiled scripts (each knows its SHA1 for `EVALSHA`).
#[derive(Debug)]
pub(super) struct Scripts {
    pub submit: Script,
    pub close: Script,
    pub commit: Script,
    pub renew: Script,
    pub release: Script,
    pub tidy: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            submit: Script::new(SUBMIT),
            close: Script::new(CLOSE),
            commit: Script::new(COMMIT),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            tidy: Script::new(TIDY),
        }
    }

    /// Loads every script into Redis's script cache (before pipelined `EVALSHA`s).
    pub(super) async fn load(
        &self,
        conn: &mut redis::aio::ConnectionManager,
    ) -> redis::RedisResult<()> {
        for script in
            [&self.submit, &self.close, &self.commit, &self.renew, &self.release, &self.tidy]
        {
            script.load_async(conn).await?;
        }
        Ok(())
    }
}

/// An `EVALSHA` of `script` with `keys` and `args`, for a pipeline.
pub(super) fn evalsha(script: &Script, keys: &[String], args: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys).arg(args);
    cmd
}
