//! Matching 10,000 queued solo tickets (arena: 8 per match, skills uniform in 0..3000
//! from a seeded RNG, created 1 ms apart, matched 10 s after the first): the pure
//! algorithm, one pass of the in-memory queue (target < 1 s), and one pass of the Redis
//! queue including loading and the atomic commits (target < 3 s). Only the pass is timed;
//! queueing the tickets is setup. The Redis group is skipped with a note when
//! `PYLON_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) does not answer.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, reason = "bench")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::future::join_all;
use pylon_sync::matchmaker::{
    Clock, FakeClock, GameRules, MemoryQueue, NewTicket, Queue, QueueKey, QueueOptions,
    RedisOptions, RedisQueue, Rules, Ticket, TicketId, plan_queue,
};
use tokio::runtime::Runtime;

const TICKETS: usize = 10_000;
const T0: u64 = 1_700_000_000_000;

/// splitmix64: a tiny seeded generator, so every run queues the same skills.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1_u64 << 53) as f64
    }
}

fn skills() -> Vec<f64> {
    let mut rng = Rng(42);
    (0..TICKETS).map(|_| rng.next_f64() * 3000.0).collect()
}

fn rules() -> Arc<Rules> {
    let mut rules = Rules::new();
    rules.register("arena", GameRules::fixed(8)).unwrap();
    Arc::new(rules)
}

fn new_ticket(i: usize, skill: f64) -> NewTicket {
    NewTicket {
        game: "arena".into(),
        region: "eu".into(),
        party: vec![format!("user{i}")],
        skill: Some(skill),
        ..NewTicket::default()
    }
}

fn bench_core(c: &mut Criterion) {
    let key = QueueKey { region: "eu".into(), game: "arena".into(), mode: None };
    let rules = GameRules::fixed(8);
    let tickets: Vec<Arc<Ticket>> = skills()
        .into_iter()
        .enumerate()
        .map(|(i, skill)| {
            let t = new_ticket(i, skill);
            Arc::new(
                t.into_ticket(&self::rules(), TicketId::from(format!("t{i:06}")), T0 + i as u64)
                    .unwrap(),
            )
        })
        .collect();
    let plan = plan_queue(&key, &rules, &tickets, &[], T0 + 10_000);
    println!(
        "plan_queue: {} matches, {} tickets left",
        plan.assignments.len(),
        TICKETS - plan.assignments.len() * 8
    );
    let mut group = c.benchmark_group("matchmaker");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("plan_queue_10k", |b| {
        b.iter(|| plan_queue(&key, &rules, &tickets, &[], T0 + 10_000))
    });
    group.finish();
}

/// A queue with the 10,000 tickets, 1 ms apart, and the clock 10 s after the first.
async fn filled(queue: Queue, clock: &FakeClock) -> Queue {
    for (i, skill) in skills().into_iter().enumerate() {
        clock.set(T0 + i as u64);
        queue.submit(new_ticket(i, skill)).await.unwrap();
    }
    clock.set(T0 + 10_000);
    queue
}

fn bench_memory(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("matchmaker");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("memory_pass_10k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let clock = FakeClock::new(T0);
                let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
                let q = rt.block_on(filled(
                    MemoryQueue::new(rules(), dyn_clock, QueueOptions::default()).into(),
                    &clock,
                ));
                let start = Instant::now();
                let report = rt.block_on(q.run_pass()).unwrap();
                total += start.elapsed();
                assert!(report.assignments.len() > 1_000);
            }
            total
        });
    });
    group.finish();
}

fn redis_url() -> String {
    std::env::var("PYLON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis queue in a fresh namespace, or `None` when Redis does not answer.
async fn redis_queue(url: &str, n: u64, clock: Arc<dyn Clock>) -> Option<Queue> {
    let ns = format!("pylon-bench-mm-{}-{n}", pylon_storage::new_id().unwrap());
    let connect = RedisQueue::connect(url, rules(), clock, RedisOptions::new(&ns, "bench"));
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(q)) => Some(q.into()),
        _ => None,
    }
}

/// The 10,000 tickets submitted concurrently (the connection pipelines them).
async fn redis_filled(q: Queue, clock: &FakeClock) -> Queue {
    clock.set(T0);
    let skills = skills();
    for (chunk_no, chunk) in skills.chunks(1000).enumerate() {
        clock.set(T0 + chunk_no as u64 * 1000);
        join_all(
            chunk.iter().enumerate().map(|(i, s)| q.submit(new_ticket(chunk_no * 1000 + i, *s))),
        )
        .await;
    }
    clock.set(T0 + 10_000);
    q
}

async fn drop_namespace(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg("pylon-bench-mm-*").query_async(&mut conn).await.unwrap();
    for chunk in keys.chunks(1000) {
        redis::cmd("DEL").arg(chunk).query_async::<()>(&mut conn).await.unwrap();
    }
}

fn bench_redis(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let url = redis_url();
    let probe = rt.block_on(redis_queue(&url, 0, Arc::new(FakeClock::new(T0))));
    if probe.is_none() {
        println!("matchmaker/redis_pass_10k skipped: no redis at {url}");
        return;
    }
    let mut group = c.benchmark_group("matchmaker");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    let mut n = 0;
    group.bench_function("redis_pass_10k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let clock = FakeClock::new(T0);
                let q = rt.block_on(redis_queue(&url, n, Arc::new(clock.clone()))).unwrap();
                let q = rt.block_on(redis_filled(q, &clock));
                let start = Instant::now();
                let report = rt.block_on(q.run_pass()).unwrap();
                total += start.elapsed();
                assert!(report.assignments.len() > 1_000);
                rt.block_on(drop_namespace(&url));
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, bench_core, bench_memory, bench_redis);
criterion_main!(benches);
