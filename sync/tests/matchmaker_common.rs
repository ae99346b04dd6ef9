//! Helpers shared by the matchmaker tests (included with `#[path]`): the test rules, the
//! two backends built on one fake clock, and the Redis skip rule.
//!
//! Redis comes from `PYLON_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); when it does
//! not answer a test prints `SKIPPED: <test> needs redis` and passes, unless
//! `PYLON_TEST_REQUIRE_SERVICES=1`. Every test uses its own random namespace and deletes
//! its keys at the end.

#![allow(dead_code, reason = "each test binary uses a part")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use pylon_sync::matchmaker::{
    Clock, FakeClock, GameRules, MemoryQueue, NewTicket, Queue, QueueOptions, RedisOptions,
    RedisQueue, Rules,
};

/// The fake clock's start: a realistic Unix time in ms.
pub const T0: u64 = 1_700_000_000_000;

/// `quad`: 4 players; `duel`: 2; `br`: 4 with backfill; `ffa`: 2..=4 with modes
/// `casual` (default) and `ranked`, fill timeout 10 s.
pub fn rules() -> Arc<Rules> {
    let mut rules = Rules::new();
    rules.register("quad", GameRules::fixed(4)).unwrap();
    rules.register("duel", GameRules::fixed(2)).unwrap();
    rules.register("br", GameRules::fixed(4).with_backfill(true)).unwrap();
    rules.register("arena", GameRules::fixed(8)).unwrap();
    let mut ffa = GameRules::flexible(2, 4).with_modes(["casual", "ranked"]);
    ffa.fill_timeout = Duration::from_secs(10);
    rules.register("ffa", ffa).unwrap();
    Arc::new(rules)
}

/// A ticket for `game` in region `eu` with `party` (owner first) and `skill`.
pub fn ticket(game: &str, party: &[&str], skill: Option<f64>) -> NewTicket {
    NewTicket {
        game: game.to_owned(),
        mode: None,
        region: "eu".to_owned(),
        party: party.iter().map(|p| (*p).to_owned()).collect(),
        skill,
        params: None,
    }
}

/// The in-memory queue on a fresh fake clock.
pub fn memory_queue() -> (Queue, FakeClock) {
    let clock = FakeClock::new(T0);
    let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
    (MemoryQueue::new(rules(), clock_dyn, QueueOptions::default()).into(), clock)
}

fn require_services() -> bool {
    std::env::var("PYLON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The test Redis's URL, or `None` after printing `SKIPPED` (a failure when services are
/// required).
pub async fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("PYLON_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await
    };
    let why = match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(())) => return Some(url),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 3 s".to_owned(),
    };
    assert!(!require_services(), "{test} needs redis: {why}");
    eprintln!("SKIPPED: {test} needs redis");
    None
}

/// A namespace no other test (or earlier run) uses.
pub fn namespace(test: &str) -> String {
    format!("pylon-test-mm-{test}-{}", pylon_storage::new_id().unwrap())
}

/// A Redis queue of `instance` in `ns` on `clock`, with a lease TTL of `lease`.
pub async fn redis_queue(
    url: &str,
    ns: &str,
    instance: &str,
    clock: Arc<dyn Clock>,
    lease: Duration,
) -> Queue {
    let mut options = RedisOptions::new(ns, instance);
    options.lease_ttl = lease;
    RedisQueue::connect(url, rules(), clock, options).await.unwrap().into()
}

/// Deletes every key of namespace `ns`.
pub async fn cleanup(url: &str, ns: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{ns}:*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL").arg(keys).query_async::<()>(&mut conn).await.unwrap();
    }
}
