//! Unit tests of the matching algorithm with explicit times (the fake clock of the
//! queue tests, reduced to `now` arguments).

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::matchmaker::rules::GameRules;
use crate::matchmaker::ticket::{OpenSlot, QueueKey, Ticket, TicketId};

const T0: u64 = 1_700_000_000_000;

fn key() -> QueueKey {
    QueueKey { region: "eu".into(), game: "arena".into(), mode: None }
}

fn ticket(id: &str, at_ms: u64, party: &[&str], skill: Option<f64>) -> Arc<Ticket> {
    Arc::new(Ticket {
        id: TicketId::from(id),
        region: "eu".into(),
        game: "arena".into(),
        mode: None,
        party: party.iter().map(|s| (*s).to_owned()).collect(),
        skill,
        params: None,
        created_at: T0 + at_ms,
    })
}

fn solo(id: &str, at_ms: u64, skill: Option<f64>) -> Arc<Ticket> {
    ticket(id, at_ms, &[id], skill)
}

fn ids(plan: &Plan) -> Vec<Vec<&str>> {
    plan.assignments.iter().map(|a| a.tickets.iter().map(TicketId::as_str).collect()).collect()
}

/// Parties are never split: with room for 4, a party of 3 and solos fill the match as
/// whole units in age order, and a party that does not fit the remaining room is skipped
/// (not cut) and waits for the next match.
#[test]
fn parties_stay_whole() {
    let rules = GameRules::fixed(4);
    let tickets = vec![
        solo("a", 0, None),
        ticket("p", 1, &["p1", "p2", "p3"], None),
        ticket("q", 2, &["q1", "q2"], None),
        solo("b", 3, None),
        solo("c", 4, None),
    ];
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 10);
    assert_eq!(ids(&plan), vec![vec!["a", "p"], vec!["q", "b", "c"]]);
    assert_eq!(plan.assignments[0].players, ["a", "p1", "p2", "p3"]);
    assert_eq!(plan.assignments[1].players, ["q1", "q2", "b", "c"]);
    assert_eq!(plan.assignments[0].party_sizes, [1, 3]);
    assert_eq!(plan.assignments[0].created_at, [T0, T0 + 1]);
    let ticket_of = |user| plan.assignments[1].ticket_of(user).map(TicketId::as_str);
    assert_eq!((ticket_of("q2"), ticket_of("c"), ticket_of("a")), (Some("q"), Some("c"), None));
}

/// A new match carries its anchor's (oldest ticket's) params, which it is created with;
/// a backfill carries none.
#[test]
fn anchor_params_travel_with_the_match() {
    let rules = GameRules::fixed(2).with_backfill(true);
    let with = |id: &str, at: u64, p: serde_json::Value| {
        let mut t = (*solo(id, at, None)).clone();
        t.params = Some(p);
        Arc::new(t)
    };
    let tickets = vec![
        with("a", 0, serde_json::json!({"map": 1})),
        with("b", 1, serde_json::json!({"map": 2})),
    ];
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 10);
    assert_eq!(plan.assignments[0].params, Some(serde_json::json!({"map": 1})));
    let slot = OpenSlot {
        match_id: "eu-running".into(),
        region: "eu".into(),
        game: "arena".into(),
        mode: None,
        free: 2,
        average_skill: None,
    };
    let plan = plan_queue(&key(), &rules, &tickets, &[slot], T0 + 10);
    assert!(plan.assignments[0].backfill && plan.assignments[0].params.is_none());
}

/// Two tickets 400 points apart do not match at first (window 100); each window widens by
/// 50/s, so they match once both waited (400 - 100) / 50 = 6 s, and not a moment before.
#[test]
fn skill_window_widens_with_waiting() {
    let rules = GameRules::fixed(2);
    let tickets = vec![solo("lo", 0, Some(1000.0)), solo("hi", 0, Some(1400.0))];
    for secs in [0, 3, 5] {
        let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + secs * 1000);
        assert!(plan.assignments.is_empty(), "matched after {secs} s");
    }
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 5_999);
    assert!(plan.assignments.is_empty());
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 6_000);
    assert_eq!(ids(&plan), vec![vec!["hi", "lo"]], "same age: ordered by id");
}

/// Compatibility needs both windows: a fresh ticket (window 100) does not join an old one
/// (unbounded window) 500 points away, until the fresh one has waited long enough too.
/// A ticket without skill matches anyone.
#[test]
fn both_windows_must_agree_and_no_skill_matches_anyone() {
    let rules = GameRules::fixed(2);
    let tickets = vec![solo("old", 0, Some(1000.0)), solo("new", 40_000, Some(1500.0))];
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 40_000);
    assert!(plan.assignments.is_empty());
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 48_000);
    assert_eq!(ids(&plan), vec![vec!["old", "new"]]);
    let tickets = vec![solo("x", 0, Some(0.0)), solo("y", 1, None)];
    assert_eq!(ids(&plan_queue(&key(), &rules, &tickets, &[], T0 + 1)), vec![vec!["x", "y"]]);
}

/// Every pair in a match is compatible, not only each ticket with the anchor: 900 and
/// 1100 are both within 100 of 1000 but 200 apart, so they never share a match of 3.
#[test]
fn compatibility_is_pairwise() {
    let rules = GameRules::fixed(3);
    let tickets = vec![
        solo("a", 0, Some(1000.0)),
        solo("b", 1, Some(900.0)),
        solo("c", 2, Some(1100.0)),
        solo("d", 3, Some(950.0)),
    ];
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 3);
    assert_eq!(ids(&plan), vec![vec!["a", "b", "d"]]);
}

/// Tickets older than `ticket_timeout` expire and take no part; younger ones stay.
#[test]
fn timeout_expires() {
    let rules = GameRules::fixed(2);
    let tickets = vec![solo("old", 0, None), solo("new", 100_000, None)];
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 120_000);
    assert!(plan.expired.is_empty());
    assert_eq!(ids(&plan), vec![vec!["old", "new"]]);
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 120_001);
    assert_eq!(plan.expired, [TicketId::from("old")]);
    assert!(plan.assignments.is_empty());
}

/// The oldest compatible tickets are matched first; a newer ticket never takes the place
/// of an older compatible one, and an older ticket that could not anchor a match of its
/// own still gets the first place in a later one it fits.
#[test]
fn fairness_oldest_first() {
    let rules = GameRules::fixed(2);
    let tickets = vec![
        solo("t5", 5, Some(1000.0)),
        solo("t1", 1, Some(2000.0)),
        solo("t2", 2, Some(1000.0)),
        solo("t4", 4, Some(1000.0)),
        solo("t3", 3, Some(2050.0)),
    ];
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 5);
    assert_eq!(ids(&plan), vec![vec!["t1", "t3"], vec!["t2", "t4"]]);
    let rules = GameRules::fixed(3);
    let tickets = vec![
        ticket("party", 0, &["p1", "p2"], Some(1000.0)),
        ticket("pair", 1, &["q1", "q2"], Some(1000.0)),
        solo("s", 2, Some(1000.0)),
        solo("late", 3, Some(1000.0)),
    ];
    let plan = plan_queue(&key(), &rules, &tickets, &[], T0 + 5);
    // The pair does not fit beside the party (2 + 2 > 3): first fit takes `s`; the pair
    // then anchors the next match with the remaining solo.
    assert_eq!(ids(&plan), vec![vec!["party", "s"], vec!["pair", "late"]]);
}

/// Backfill fills a running match's free slots from compatible tickets (oldest first)
/// before any new match forms, and ignores tickets outside the slot's skill.
#[test]
fn backfill_before_new_matches() {
    let rules = GameRules::fixed(2).with_backfill(true);
    let slot = OpenSlot {
        match_id: "eu-running".into(),
        region: "eu".into(),
        game: "arena".into(),
        mode: None,
        free: 2,
        average_skill: Some(1000.0),
    };
    let tickets = vec![
        solo("far", 0, Some(3000.0)),
        solo("a", 1, Some(1010.0)),
        solo("b", 2, Some(990.0)),
        solo("c", 3, Some(1000.0)),
        solo("d", 4, Some(3010.0)),
    ];
    let plan = plan_queue(&key(), &rules, &tickets, std::slice::from_ref(&slot), T0 + 5);
    assert_eq!(ids(&plan), vec![vec!["a", "b"], vec!["far", "d"]]);
    assert!(plan.assignments[0].backfill);
    assert_eq!(plan.assignments[0].match_key, "eu-running");
    assert!(!plan.assignments[1].backfill);
    let plain = GameRules::fixed(2);
    let plan = plan_queue(&key(), &plain, &tickets, &[slot], T0 + 5);
    assert_eq!(ids(&plan), vec![vec!["far", "d"], vec!["a", "b"]]);
}

/// Flexible sizes: a 2..=4 match forms at 4 at once; with 3 it waits until its oldest
/// ticket has waited `fill_timeout`, then forms with 3.
#[test]
fn flexible_size_with_fill_timeout() {
    let mut rules = GameRules::flexible(2, 4);
    rules.fill_timeout = Duration::from_secs(10);
    let three = vec![solo("a", 0, None), solo("b", 1_000, None), solo("c", 2_000, None)];
    assert!(plan_queue(&key(), &rules, &three, &[], T0 + 9_999).assignments.is_empty());
    let plan = plan_queue(&key(), &rules, &three, &[], T0 + 10_000);
    assert_eq!(ids(&plan), vec![vec!["a", "b", "c"]]);
    let mut five = three.clone();
    five.extend([solo("d", 3_000, None), solo("e", 4_000, None)]);
    let plan = plan_queue(&key(), &rules, &five, &[], T0 + 4_000);
    assert_eq!(ids(&plan), vec![vec!["a", "b", "c", "d"]]);
}

/// The same tickets in any input order give the same plan (ties broken by id), and the
/// match key is derived from the anchor: `<region>-` and 12 base32 characters.
#[test]
fn deterministic() {
    let rules = GameRules::fixed(2);
    let mut tickets: Vec<Arc<Ticket>> = (0..40_u32)
        .map(|i| solo(&format!("t{i:02}"), u64::from(i % 3) * 10, Some(f64::from(i % 7) * 40.0)))
        .collect();
    let first = plan_queue(&key(), &rules, &tickets, &[], T0 + 50);
    tickets.reverse();
    let second = plan_queue(&key(), &rules, &tickets, &[], T0 + 50);
    assert_eq!(first, second);
    let key0 = &first.assignments[0].match_key;
    assert_eq!(key0.len(), 3 + 12);
    assert!(key0.starts_with("eu-"));
    assert_eq!(
        first
            .assignments
            .iter()
            .map(|a| &a.match_key)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        first.assignments.len()
    );
}
