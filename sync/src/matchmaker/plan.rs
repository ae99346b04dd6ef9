//! The matching algorithm: pure, synchronous and deterministic. Both queue backends load
//! a queue's tickets and open slots, call [`plan_queue`] with the time of the pass, and
//! commit what it decides (each assignment only if all its tickets are still queued).
//!
//! One pass over one queue:
//! 1. Tickets are ordered oldest first: by `created_at`, ties by ticket id.
//! 2. A ticket that waited longer than `ticket_timeout` expires and takes no part (so
//!    does one whose party no longer fits `max_players` after the rules changed).
//! 3. Backfill (rules with `backfill`): open slots in `match_id` order; each is filled
//!    first-fit by age: a ticket joins when its whole party fits the free slots and its
//!    skill is compatible with the slot's average skill and with every ticket already
//!    chosen for that slot.
//! 4. New matches: the oldest ticket not yet matched anchors a candidate match; every
//!    other unmatched ticket, oldest first, joins it when its whole party fits
//!    (`max_players`) and it is compatible with every member so far (first fit). The
//!    candidate forms when it reaches `max_players`, or `min_players` once its anchor has
//!    waited `fill_timeout`; otherwise it is dropped, its tickets stay queued, and the next
//!    unmatched ticket anchors. Older tickets are always considered before newer ones, so
//!    a newer ticket never takes a place an older compatible one could have had.
//!
//! Compatibility is pairwise (see [`super::SkillWindow`]); a group keeps the
//! intersection of its members' windows and its skill range so a check costs O(1).

use std::sync::Arc;

use super::rules::GameRules;
use super::ticket::{Assignment, OpenSlot, QueueKey, Ticket, TicketId, new_match_key};

/// What one pass decided for one queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Tickets that waited past `ticket_timeout`.
    pub expired: Vec<TicketId>,
    /// Matches decided, backfills first, in the order they formed.
    pub assignments: Vec<Assignment>,
}

/// One ticket as the pass sees it.
struct Cand {
    skill: Option<f64>,
    window: f64,
    size: u32,
    waited_ms: u64,
}

/// A match being assembled: its members and the skill constraints they impose.
struct Group {
    members: Vec<usize>,
    size: u32,
    /// Every member's skill window, intersected: a newcomer's skill must lie inside.
    lo: f64,
    hi: f64,
    /// The members' skill range: a newcomer's window must cover all of it.
    smin: f64,
    smax: f64,
}

impl Group {
    fn new(anchor_skill: Option<f64>) -> Self {
        let (smin, smax) = anchor_skill.map_or((f64::INFINITY, f64::NEG_INFINITY), |s| (s, s));
        Self { members: Vec::new(), size: 0, lo: f64::NEG_INFINITY, hi: f64::INFINITY, smin, smax }
    }

    fn accepts(&self, c: &Cand) -> bool {
        c.skill.is_none_or(|s| {
            s >= self.lo && s <= self.hi && self.smax - s <= c.window && s - self.smin <= c.window
        })
    }

    fn add(&mut self, i: usize, c: &Cand) {
        self.members.push(i);
        self.size += c.size;
        if let Some(s) = c.skill {
            self.lo = self.lo.max(s - c.window);
            self.hi = self.hi.min(s + c.window);
            self.smin = self.smin.min(s);
            self.smax = self.smax.max(s);
        }
    }
}

/// The unmatched tickets, as "next unmatched index at or after i" with path compression,
/// so scans skip matched tickets without visiting them again.
struct Free {
    next: Vec<usize>,
}

impl Free {
    fn new(n: usize) -> Self {
        Self { next: (0..=n).collect() }
    }

    fn find(&mut self, i: usize) -> usize {
        let mut root = i;
        while self.next[root] != root {
            root = self.next[root];
        }
        let mut j = i;
        while self.next[j] != root {
            let up = self.next[j];
            self.next[j] = root;
            j = up;
        }
        root
    }

    fn take(&mut self, i: usize) {
        self.next[i] = i + 1;
    }
}

/// Decides expiries and matches for one queue at time `now_ms` (Unix ms). `tickets` are
/// the queue's queued tickets in any order; `slots` its open slots (ignored unless
/// `rules.backfill`). The result depends only on the arguments.
#[must_use]
pub fn plan_queue(
    key: &QueueKey,
    rules: &GameRules,
    tickets: &[Arc<Ticket>],
    slots: &[OpenSlot],
    now_ms: u64,
) -> Plan {
    let mut order: Vec<&Arc<Ticket>> = tickets.iter().collect();
    order.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    let timeout = millis(rules.ticket_timeout);
    let cands: Vec<Cand> = order
        .iter()
        .map(|t| {
            let waited_ms = now_ms.saturating_sub(t.created_at);
            Cand {
                skill: t.skill,
                window: rules.skill_window.width(waited_ms),
                size: u32::try_from(t.party.len()).unwrap_or(u32::MAX),
                waited_ms,
            }
        })
        .collect();
    let mut plan = Plan::default();
    let mut free = Free::new(order.len());
    for (i, c) in cands.iter().enumerate() {
        if c.waited_ms > timeout || c.size > rules.max_players {
            plan.expired.push(order[i].id.clone());
            free.take(i);
        }
    }
    let mut pass = Pass { key, order: &order, cands: &cands, free, now_ms, plan };
    if rules.backfill {
        pass.backfill(slots);
    }
    pass.new_matches(rules);
    pass.plan
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The state of one pass over one queue.
struct Pass<'a> {
    key: &'a QueueKey,
    order: &'a [&'a Arc<Ticket>],
    cands: &'a [Cand],
    free: Free,
    now_ms: u64,
    plan: Plan,
}

impl Pass<'_> {
    /// Adds unmatched tickets other than `skip`, oldest first, while they fit `cap`.
    fn fill(&mut self, group: &mut Group, cap: u32, skip: usize) {
        let n = self.cands.len();
        let mut i = self.free.find(0);
        while i < n && group.size < cap {
            let c = &self.cands[i];
            if i != skip && c.size <= cap - group.size && group.accepts(c) {
                group.add(i, c);
            }
            i = self.free.find(i + 1);
        }
    }

    fn backfill(&mut self, slots: &[OpenSlot]) {
        let mut slots: Vec<&OpenSlot> = slots.iter().filter(|s| s.free > 0).collect();
        slots.sort_by(|a, b| a.match_id.cmp(&b.match_id));
        for slot in slots {
            let mut group = Group::new(slot.average_skill);
            self.fill(&mut group, slot.free, usize::MAX);
            if !group.members.is_empty() {
                self.emit(group, slot.match_id.clone(), true);
            }
        }
    }

    fn new_matches(&mut self, rules: &GameRules) {
        let n = self.cands.len();
        let fill_timeout = millis(rules.fill_timeout);
        let mut anchor = self.free.find(0);
        while anchor < n {
            let mut group = Group::new(None);
            group.add(anchor, &self.cands[anchor]);
            self.fill(&mut group, rules.max_players, anchor);
            let full = group.size >= rules.max_players;
            let enough =
                group.size >= rules.min_players && self.cands[anchor].waited_ms >= fill_timeout;
            if full || enough {
                let key = new_match_key(&self.key.region, &self.order[anchor].id);
                self.emit(group, key, false);
            }
            anchor = self.free.find(anchor + 1);
        }
    }

    fn emit(&mut self, mut group: Group, match_key: String, backfill: bool) {
        group.members.sort_unstable();
        let anchor = group.members.first().map(|&i| self.order[i]);
        let params = if backfill { None } else { anchor.and_then(|t| t.params.clone()) };
        let mut tickets = Vec::with_capacity(group.members.len());
        let mut created_at = Vec::with_capacity(group.members.len());
        let mut party_sizes = Vec::with_capacity(group.members.len());
        let mut players = Vec::with_capacity(group.size as usize);
        let (mut sum, mut rated) = (0.0, 0_u32);
        for &i in &group.members {
            self.free.take(i);
            let t = self.order[i];
            tickets.push(t.id.clone());
            created_at.push(t.created_at);
            party_sizes.push(u32::try_from(t.party.len()).unwrap_or(u32::MAX));
            players.extend(t.party.iter().cloned());
            if let Some(s) = t.skill {
                sum += s;
                rated += 1;
            }
        }
        self.plan.assignments.push(Assignment {
            match_key,
            region: self.key.region.clone(),
            game: self.key.game.clone(),
            mode: self.key.mode.clone(),
            tickets,
            players,
            backfill,
            average_skill: (rated > 0).then(|| sum / f64::from(rated)),
            matched_at: self.now_ms,
            created_at,
            party_sizes,
            params,
        });
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
