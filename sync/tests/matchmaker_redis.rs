//! The shared Redis queue with two matchers (two instance ids, one namespace), as two
//! processes of one region run it: tickets sent through both are matched exactly once,
//! and when the lease holder dies the other takes over within 5 s.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

#[path = "matchmaker_common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ticket;
use futures_util::future::join_all;
use pylon_sync::matchmaker::{
    Assignment, Clock, MatchEvent, MatcherConfig, Queue, SystemClock, TicketId, TicketStatus,
    spawn_matcher,
};
use tokio::sync::broadcast;

const LEASE: Duration = Duration::from_secs(1);

fn fast() -> MatcherConfig {
    MatcherConfig { interval: Duration::from_millis(50), ..MatcherConfig::default() }
}

async fn two_queues(url: &str, ns: &str) -> (Arc<Queue>, Arc<Queue>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let a = common::redis_queue(url, ns, "instance-a", clock.clone(), LEASE).await;
    let b = common::redis_queue(url, ns, "instance-b", clock, LEASE).await;
    (Arc::new(a), Arc::new(b))
}

/// Drains the assignments already received on `rx` into `into`.
fn drain(rx: &mut broadcast::Receiver<MatchEvent>, into: &mut Vec<Arc<Assignment>>) {
    while let Ok(event) = rx.try_recv() {
        if let MatchEvent::Matched(a) = event {
            into.push(a);
        }
    }
}

/// Polls until every ticket in `ids` is matched, or panics at `deadline`.
async fn until_matched(q: &Queue, ids: &[TicketId], deadline: Duration) {
    let start = Instant::now();
    loop {
        let mut pending = 0;
        for id in ids {
            if !matches!(q.status(id).await.unwrap().status, TicketStatus::Matched(_)) {
                pending += 1;
            }
        }
        if pending == 0 {
            return;
        }
        assert!(start.elapsed() < deadline, "{pending} tickets unmatched after {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 64 solo tickets, four pairs and two parties of four (80 players), submitted
/// concurrently through two processes whose matchers both run: every ticket ends in
/// exactly one assignment (the union of both matchers' output covers each once), every
/// match has 8 players with parties whole, and each status agrees with its assignment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_matchers_share_one_queue() {
    let Some(url) = common::redis_url("two_matchers_share_one_queue").await else { return };
    let ns = common::namespace("share");
    let (qa, qb) = two_queues(&url, &ns).await;
    let (ma, mb) = (spawn_matcher(qa.clone(), &fast()), spawn_matcher(qb.clone(), &fast()));
    let (mut ra, mut rb) = (ma.subscribe(), mb.subscribe());
    let mut parties: Vec<Vec<String>> = (0..64).map(|i| vec![format!("solo{i}")]).collect();
    parties.extend((0..4).map(|i| vec![format!("pa{i}"), format!("pb{i}")]));
    parties.extend((0..2).map(|i| (0..4).map(|j| format!("q{i}m{j}")).collect()));
    let submits = parties.iter().enumerate().map(|(i, party)| {
        let q = if i % 2 == 0 { qa.clone() } else { qb.clone() };
        let party: Vec<&str> = party.iter().map(String::as_str).collect();
        let t = ticket("arena", &party, None);
        async move { q.submit(t).await.unwrap() }
    });
    let tickets = join_all(submits).await;
    let ids: Vec<TicketId> = tickets.iter().map(|t| t.id.clone()).collect();
    until_matched(&qa, &ids, Duration::from_secs(20)).await;
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while all.iter().map(|a: &Arc<Assignment>| a.tickets.len()).sum::<usize>() < ids.len() {
        assert!(Instant::now() < deadline, "events missing");
        drain(&mut ra, &mut all);
        drain(&mut rb, &mut all);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut seen: BTreeMap<TicketId, String> = BTreeMap::new();
    for a in &all {
        assert_eq!(a.players.len(), 8, "{a:?}");
        for id in &a.tickets {
            assert!(seen.insert(id.clone(), a.match_key.clone()).is_none(), "{id} matched twice");
        }
    }
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), ids.iter().cloned().collect());
    for t in &tickets {
        let TicketStatus::Matched(a) = qb.status(&t.id).await.unwrap().status else { panic!() };
        assert_eq!(seen[&t.id], a.match_key);
        let start = a.players.iter().position(|p| *p == t.party[0]).unwrap();
        assert_eq!(a.players[start..start + t.party.len()], t.party[..], "party split");
    }
    ma.stop().await;
    mb.stop().await;
    common::cleanup(&url, &ns).await;
}

/// Submits one full arena match of solo tickets named `<tag><n>` through `q`.
async fn eight(q: &Queue, tag: &str) -> Vec<TicketId> {
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            q.submit(ticket("arena", &[&format!("{tag}{i}")], None)).await.unwrap().id.clone(),
        );
    }
    ids
}

/// Waits for `ids` to be matched and returns which matcher's events carried them.
async fn matched_by(
    ids: &[TicketId],
    ra: &mut broadcast::Receiver<MatchEvent>,
    rb: &mut broadcast::Receiver<MatchEvent>,
    deadline: Duration,
) -> &'static str {
    let start = Instant::now();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    loop {
        drain(ra, &mut a);
        drain(rb, &mut b);
        for (name, got) in [("a", &a), ("b", &b)] {
            if got.iter().any(|m| m.tickets.iter().any(|t| ids.contains(t))) {
                return name;
            }
        }
        assert!(start.elapsed() < deadline, "not matched within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The lease holder matches while it lives (the other process never does); when it dies
/// (its tasks stop without releasing the 1 s lease), the other process takes the lease
/// and matches the tickets queued meanwhile within 5 s. A graceful stop hands over too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_holder_dies_and_the_other_takes_over() {
    let Some(url) = common::redis_url("lease_holder_dies_and_the_other_takes_over").await else {
        return;
    };
    let ns = common::namespace("failover");
    let (qa, qb) = two_queues(&url, &ns).await;
    let ma = spawn_matcher(qa.clone(), &fast());
    let mut ra = ma.subscribe();
    let first = eight(&qa, "first").await;
    let (_, mut none) = broadcast::channel(1);
    assert_eq!(matched_by(&first, &mut ra, &mut none, Duration::from_secs(5)).await, "a");
    let mb = spawn_matcher(qb.clone(), &fast());
    let mut rb = mb.subscribe();
    for round in 0..3 {
        let ids = eight(&qb, &format!("r{round}-")).await;
        assert_eq!(matched_by(&ids, &mut ra, &mut rb, Duration::from_secs(5)).await, "a");
    }
    ma.abort();
    let died = Instant::now();
    let queued = eight(&qa, "orphan").await;
    assert_eq!(matched_by(&queued, &mut ra, &mut rb, Duration::from_secs(5)).await, "b");
    let took = died.elapsed();
    eprintln!("takeover after {took:?}");
    assert!(took < Duration::from_secs(5));
    until_matched(&qa, &queued, Duration::from_secs(1)).await;
    let ma = spawn_matcher(qa.clone(), &fast());
    let mut ra = ma.subscribe();
    mb.stop().await;
    let handed = Instant::now();
    let last = eight(&qb, "last").await;
    assert_eq!(matched_by(&last, &mut ra, &mut rb, Duration::from_secs(2)).await, "a");
    eprintln!("graceful hand-over after {:?}", handed.elapsed());
    ma.stop().await;
    common::cleanup(&url, &ns).await;
}

/// Closes a ticket behind the queue's back (its hash says `cancelled`) while the match of
/// its assignment is being made, as a `DELETE` on another process racing the pass would.
struct Racer {
    conn: std::sync::Mutex<redis::Connection>,
    ticket_key: String,
    abandoned: std::sync::Mutex<Vec<String>>,
}

impl std::fmt::Debug for Racer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Racer").field("ticket_key", &self.ticket_key).finish_non_exhaustive()
    }
}

impl pylon_sync::matchmaker::MatchHost for Racer {
    fn host(&self, _a: &Assignment) -> Option<String> {
        let mut conn = self.conn.lock().unwrap();
        redis::cmd("HSET")
            .arg(&self.ticket_key)
            .arg("status")
            .arg("cancelled")
            .exec(&mut conn)
            .unwrap();
        Some("eu_1-racedmatch1".into())
    }

    fn abandon(&self, a: &Assignment) {
        self.abandoned.lock().unwrap().push(a.match_key.clone());
    }
}

/// Redis: an assignment whose ticket closed between the plan and the commit is refused
/// by the commit script, and the host is told to abandon the match it made (named by the
/// host's id); the other ticket stays queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commit_is_abandoned() {
    let Some(url) = common::redis_url("refused_commit_is_abandoned").await else { return };
    let ns = common::namespace("abandon");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let q = common::redis_queue(&url, &ns, "solo", clock, Duration::from_secs(30)).await;
    let a = q.submit(ticket("duel", &["ra"], None)).await.unwrap().id.clone();
    let b = q.submit(ticket("duel", &["rb"], None)).await.unwrap().id.clone();
    let client = redis::Client::open(url.as_str()).unwrap();
    let racer = Racer {
        conn: std::sync::Mutex::new(client.get_connection().unwrap()),
        ticket_key: format!("{ns}:mm:t:{a}"),
        abandoned: std::sync::Mutex::new(Vec::new()),
    };
    let report = q.run_pass_with(&racer).await.unwrap();
    assert!(report.assignments.is_empty());
    assert_eq!(*racer.abandoned.lock().unwrap(), ["eu_1-racedmatch1"]);
    assert!(matches!(q.status(&b).await.unwrap().status, TicketStatus::Queued { .. }));
    common::cleanup(&url, &ns).await;
}
