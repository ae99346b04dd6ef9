//! One behavioural suite for both matchmaker queues (in memory and Redis), driven by a
//! fake clock: every rule of the matchmaker issue, with the same answers from both.
//! Each `memory::x` / `redis::x` pair runs the function `x` below.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

#[path = "matchmaker_common.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{T0, ticket};
use pylon_sync::matchmaker::{
    Assignment, AssignmentCursor, FakeClock, MatchHost, MatchmakerError, NewTicket, OpenSlot,
    Queue, TicketId, TicketStatus,
};

async fn submit(q: &Queue, t: NewTicket) -> TicketId {
    q.submit(t).await.unwrap().id.clone()
}

async fn status(q: &Queue, id: &TicketId) -> TicketStatus {
    q.status(id).await.unwrap().status
}

/// Parties are kept whole: a party of 3, a pair and solos become matches of exactly 4
/// where each party's members are together and contiguous, and a party that does not fit
/// what is left waits instead of being split.
async fn parties_kept_whole(q: &Queue, clock: &FakeClock) {
    let trio = submit(q, ticket("quad", &["t1", "t2", "t3"], None)).await;
    clock.advance(Duration::from_millis(1));
    let pair = submit(q, ticket("quad", &["p1", "p2"], None)).await;
    clock.advance(Duration::from_millis(1));
    let solo = submit(q, ticket("quad", &["s1"], None)).await;
    clock.advance(Duration::from_millis(1));
    let report = q.run_pass().await.unwrap();
    assert_eq!(report.assignments.len(), 1);
    let a = &report.assignments[0];
    assert_eq!(a.tickets, [trio.clone(), solo.clone()]);
    assert_eq!(a.players, ["t1", "t2", "t3", "s1"]);
    assert!(matches!(status(q, &pair).await, TicketStatus::Queued { position: 1, .. }));
    submit(q, ticket("quad", &["p3", "p4"], None)).await;
    let report = q.run_pass().await.unwrap();
    assert_eq!(report.assignments[0].players, ["p1", "p2", "p3", "p4"]);
    let TicketStatus::Matched(m) = status(q, &trio).await else { panic!("trio not matched") };
    assert_eq!(m.tickets, [trio, solo]);
}

/// Two tickets 400 skill apart match only once both windows (100 + 50/s) reach 400:
/// not after 5.9 s, yes after 6 s of waiting.
async fn skill_window_widens(q: &Queue, clock: &FakeClock) {
    let lo = submit(q, ticket("duel", &["lo"], Some(1000.0))).await;
    let hi = submit(q, ticket("duel", &["hi"], Some(1400.0))).await;
    assert!(q.run_pass().await.unwrap().assignments.is_empty());
    clock.advance(Duration::from_millis(5_900));
    assert!(q.run_pass().await.unwrap().assignments.is_empty());
    assert!(matches!(status(q, &lo).await, TicketStatus::Queued { .. }));
    clock.advance(Duration::from_millis(100));
    let report = q.run_pass().await.unwrap();
    let matched: BTreeSet<_> = report.assignments[0].tickets.iter().cloned().collect();
    assert_eq!(matched, BTreeSet::from([lo, hi]));
}

/// A ticket waiting longer than the timeout (120 s) expires: its status says so, it
/// cannot be cancelled, and its player may queue again.
async fn timeout_expires(q: &Queue, clock: &FakeClock) {
    let id = submit(q, ticket("quad", &["alone"], None)).await;
    clock.advance(Duration::from_secs(120));
    assert!(q.run_pass().await.unwrap().expired.is_empty());
    clock.advance(Duration::from_millis(1));
    assert_eq!(q.run_pass().await.unwrap().expired, std::slice::from_ref(&id));
    assert_eq!(status(q, &id).await, TicketStatus::Expired);
    assert!(matches!(q.cancel(&id).await, Err(MatchmakerError::Expired(_))));
    submit(q, ticket("quad", &["alone"], None)).await;
}

/// Cancelling removes a queued ticket (it is never matched; its players may queue
/// again); a second cancel and a cancel of a matched ticket are refused; an unknown id is
/// not found.
async fn cancellation(q: &Queue, clock: &FakeClock) {
    let gone = submit(q, ticket("duel", &["c1"], None)).await;
    q.cancel(&gone).await.unwrap();
    assert_eq!(status(q, &gone).await, TicketStatus::Cancelled);
    assert!(matches!(q.cancel(&gone).await, Err(MatchmakerError::Cancelled(_))));
    clock.advance(Duration::from_millis(1));
    let a = submit(q, ticket("duel", &["c2"], None)).await;
    let b = submit(q, ticket("duel", &["c1"], None)).await;
    let report = q.run_pass().await.unwrap();
    assert_eq!(report.assignments.len(), 1);
    assert!(!report.assignments[0].tickets.contains(&gone));
    assert!(matches!(q.cancel(&a).await, Err(MatchmakerError::AlreadyMatched(_))));
    assert!(matches!(status(q, &b).await, TicketStatus::Matched(_)));
    let unknown = TicketId::from("nope");
    assert!(matches!(q.cancel(&unknown).await, Err(MatchmakerError::NotFound(_))));
    assert!(matches!(q.status(&unknown).await, Err(MatchmakerError::NotFound(_))));
}

/// One open ticket per player: neither the owner nor a party member of an open ticket may
/// be in another (the error names the user and the open ticket); once matched they may.
async fn one_ticket_per_player(q: &Queue, _clock: &FakeClock) {
    let first = submit(q, ticket("quad", &["own", "mate"], None)).await;
    for party in [&["own"][..], &["mate"], &["x", "mate"], &["y", "own", "z"]] {
        match q.submit(ticket("quad", party, None)).await {
            Err(MatchmakerError::AlreadyQueued { user, ticket }) => {
                assert!(user == "own" || user == "mate");
                assert_eq!(ticket, first);
            }
            other => panic!("{party:?}: {other:?}"),
        }
    }
    submit(q, ticket("quad", &["m3", "m4"], None)).await;
    assert_eq!(q.run_pass().await.unwrap().assignments.len(), 1);
    submit(q, ticket("duel", &["own"], None)).await;
    submit(q, ticket("duel", &["mate"], None)).await;
}

/// Backfill: a running match's free slots are filled from compatible tickets (oldest
/// first) before a new match forms; the slot's count goes down as it fills; games
/// without backfill refuse slots.
async fn backfill_first(q: &Queue, clock: &FakeClock) {
    let slot = |free| OpenSlot {
        match_id: "eu-running0001".into(),
        region: "eu".into(),
        game: "br".into(),
        mode: None,
        free,
        average_skill: Some(1000.0),
    };
    q.set_slot(slot(2)).await.unwrap();
    let mut ids = Vec::new();
    for (i, skill) in [1000.0, 2000.0, 1020.0, 990.0, 2010.0, 2020.0, 1990.0].iter().enumerate() {
        ids.push(submit(q, ticket("br", &[&format!("b{i}")], Some(*skill))).await);
        clock.advance(Duration::from_millis(1));
    }
    let report = q.run_pass().await.unwrap();
    assert_eq!(report.assignments.len(), 2);
    let (fill, fresh) = (&report.assignments[0], &report.assignments[1]);
    assert!(fill.backfill && fill.match_key == "eu-running0001");
    assert_eq!(fill.tickets, [ids[0].clone(), ids[2].clone()]);
    assert!(!fresh.backfill);
    assert_eq!(fresh.tickets, [ids[1].clone(), ids[4].clone(), ids[5].clone(), ids[6].clone()]);
    // The slot is used up: the next compatible ticket waits for a new match.
    assert!(q.run_pass().await.unwrap().assignments.is_empty());
    q.set_slot(slot(1)).await.unwrap();
    let report = q.run_pass().await.unwrap();
    assert_eq!(report.assignments[0].tickets, [ids[3].clone()]);
    let mut plain = slot(1);
    plain.game = "quad".into();
    assert!(matches!(q.set_slot(plain).await, Err(MatchmakerError::BackfillDisabled { .. })));
    q.remove_slot("eu-running0001").await.unwrap();
}

/// Fairness: positions follow age; the oldest compatible tickets are matched first and a
/// newer ticket never jumps an older compatible one.
async fn fairness_order(q: &Queue, clock: &FakeClock) {
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(submit(q, ticket("quad", &[&format!("f{i}")], Some(1000.0))).await);
        clock.advance(Duration::from_millis(10));
    }
    for (i, id) in ids.iter().enumerate() {
        let TicketStatus::Queued { position, waiting_secs } = status(q, id).await else {
            panic!("not queued")
        };
        assert_eq!(position, i as u64 + 1);
        assert!(waiting_secs > 0.0);
    }
    let report = q.run_pass().await.unwrap();
    assert_eq!(report.assignments.len(), 1);
    assert_eq!(report.assignments[0].tickets, ids[..4]);
    assert!(matches!(status(q, &ids[4]).await, TicketStatus::Queued { position: 1, .. }));
}

/// Flexible sizes (2..=4, fill timeout 10 s): three tickets wait for a fourth until the
/// oldest has waited 10 s, then form a match of three; modes are separate queues.
async fn flexible_sizes(q: &Queue, clock: &FakeClock) {
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit(q, ticket("ffa", &[&format!("x{i}")], None)).await);
        clock.advance(Duration::from_millis(1));
    }
    let mut ranked = ticket("ffa", &["r0"], None);
    ranked.mode = Some("ranked".into());
    let ranked = q.submit(ranked).await.unwrap();
    assert_eq!(ranked.mode.as_deref(), Some("ranked"));
    clock.advance(Duration::from_millis(9_996));
    assert!(q.run_pass().await.unwrap().assignments.is_empty());
    clock.advance(Duration::from_millis(1));
    let report = q.run_pass().await.unwrap();
    assert_eq!(report.assignments.len(), 1);
    assert_eq!(report.assignments[0].tickets, ids);
    assert_eq!(report.assignments[0].mode.as_deref(), Some("casual"));
    assert!(matches!(status(q, &ranked.id).await, TicketStatus::Queued { .. }));
}

/// Bad tickets are refused with typed errors: unknown game or mode, empty, repeated or
/// oversized parties, non-finite skill, bad region.
async fn validation(q: &Queue, _clock: &FakeClock) {
    let err = |r: Result<_, MatchmakerError>| r.err().unwrap();
    assert!(matches!(
        err(q.submit(ticket("chess", &["a"], None)).await),
        MatchmakerError::UnknownGame { .. }
    ));
    let mut moded = ticket("quad", &["a"], None);
    moded.mode = Some("ranked".into());
    assert!(matches!(err(q.submit(moded).await), MatchmakerError::UnknownMode { .. }));
    assert!(matches!(err(q.submit(ticket("quad", &[], None)).await), MatchmakerError::EmptyParty));
    let dup = ticket("quad", &["a", "a"], None);
    assert!(matches!(err(q.submit(dup).await), MatchmakerError::DuplicateMember { .. }));
    let big = ticket("duel", &["a", "b", "c"], None);
    assert!(matches!(err(q.submit(big).await), MatchmakerError::PartyTooLarge { size: 3, max: 2 }));
    let nan = ticket("duel", &["a"], Some(f64::NAN));
    assert!(matches!(err(q.submit(nan).await), MatchmakerError::InvalidSkill));
    let mut far = ticket("duel", &["a"], None);
    far.region = "eu:x".into();
    assert!(matches!(
        err(q.submit(far).await),
        MatchmakerError::InvalidName { what: "region", .. }
    ));
}

/// The assignment log gives every committed assignment once, in order, to a poller, and
/// a cursor taken now skips the earlier ones.
async fn assignment_log(q: &Queue, _clock: &FakeClock) {
    let mut from_start = AssignmentCursor::default();
    for i in 0..3 {
        submit(q, ticket("duel", &[&format!("l{i}a")], None)).await;
        submit(q, ticket("duel", &[&format!("l{i}b")], None)).await;
        q.run_pass().await.unwrap();
    }
    let mut now = q.assignment_cursor().await.unwrap();
    let all = q.poll_assignments(&mut from_start, 2).await.unwrap();
    let rest = q.poll_assignments(&mut from_start, 10).await.unwrap();
    assert_eq!((all.len(), rest.len()), (2, 1));
    assert!(q.poll_assignments(&mut from_start, 10).await.unwrap().is_empty());
    assert!(q.poll_assignments(&mut now, 10).await.unwrap().is_empty());
    submit(q, ticket("duel", &["l9a"], None)).await;
    submit(q, ticket("duel", &["l9b"], None)).await;
    let made = q.run_pass().await.unwrap().assignments;
    assert_eq!(q.poll_assignments(&mut now, 10).await.unwrap(), made);
}

/// A match host that names each match it makes (`eu_2-madeN`), or declines them all.
#[derive(Debug, Default)]
struct Namer {
    made: AtomicUsize,
    decline: AtomicBool,
    abandoned: Mutex<Vec<String>>,
}

impl MatchHost for Namer {
    fn host(&self, _a: &Assignment) -> Option<String> {
        if self.decline.load(Ordering::SeqCst) {
            return None;
        }
        Some(format!("eu_2-made{}", self.made.fetch_add(1, Ordering::SeqCst) + 1))
    }

    fn abandon(&self, a: &Assignment) {
        self.abandoned.lock().unwrap().push(a.match_key.clone());
    }
}

/// The host makes each match before its assignment is committed: a host that declines
/// leaves the tickets queued (nothing committed, nothing abandoned); the next pass's
/// host makes the match once, and the report, the log and both tickets' statuses name
/// the host's id instead of the planned key.
async fn host_names_the_match(q: &Queue, _clock: &FakeClock) {
    let a = submit(q, ticket("duel", &["h1"], None)).await;
    let b = submit(q, ticket("duel", &["h2"], None)).await;
    let host = Namer::default();
    host.decline.store(true, Ordering::SeqCst);
    assert!(q.run_pass_with(&host).await.unwrap().assignments.is_empty());
    assert!(matches!(status(q, &a).await, TicketStatus::Queued { .. }));
    host.decline.store(false, Ordering::SeqCst);
    let mut cursor = q.assignment_cursor().await.unwrap();
    let report = q.run_pass_with(&host).await.unwrap();
    assert_eq!(report.assignments.len(), 1);
    assert_eq!(report.assignments[0].match_key, "eu_2-made1");
    assert_eq!(host.made.load(Ordering::SeqCst), 1);
    for id in [&a, &b] {
        let TicketStatus::Matched(m) = status(q, id).await else { panic!("{id} not matched") };
        assert_eq!(m.match_key, "eu_2-made1");
    }
    let logged = q.poll_assignments(&mut cursor, 10).await.unwrap();
    assert_eq!(logged[0].match_key, "eu_2-made1");
    assert!(host.abandoned.lock().unwrap().is_empty());
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let (q, clock) = super::common::memory_queue();
                    super::$name(&q, &clock).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let test = concat!("redis::", stringify!($name));
                    let Some(url) = super::common::redis_url(test).await else { return };
                    let ns = super::common::namespace(stringify!($name));
                    let clock = super::FakeClock::new(super::T0);
                    let dyn_clock: super::Arc<dyn pylon_sync::matchmaker::Clock> =
                        super::Arc::new(clock.clone());
                    let lease = super::Duration::from_secs(30);
                    let q = super::common::redis_queue(&url, &ns, "solo", dyn_clock, lease).await;
                    super::$name(&q, &clock).await;
                    super::common::cleanup(&url, &ns).await;
                }
            )*
        }
    };
}

suite!(
    parties_kept_whole,
    skill_window_widens,
    timeout_expires,
    cancellation,
    one_ticket_per_player,
    backfill_first,
    fairness_order,
    flexible_sizes,
    validation,
    assignment_log,
    host_names_the_match,
);
