//! The matchmaker's metrics on `/metrics` (`pylon_matchmaker_*`; the dashboard charts the
//! gauges and lists the rest): queue lengths per game, mode and region (from this
//! process's last pass: with Redis, the queues whose lease it holds), time to match per
//! queue (a histogram, observed by the process that committed the match), tickets
//! created, matched, expired and cancelled, matches made, backfills, pushes and open
//! backfill seats.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use pylon_sync::matchmaker::{Assignment, QueueKey};

use crate::metrics::{counter, gauge, header};

/// Upper bounds (seconds) of the time-to-match buckets.
pub const WAIT_BUCKETS: [f64; 12] =
    [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];

/// One queue's time-to-match histogram.
#[derive(Debug, Default, Clone)]
struct Waits {
    buckets: [u64; WAIT_BUCKETS.len()],
    count: u64,
    sum_ms: u64,
}

/// Ticket events counted in `pylon_matchmaker_tickets_total{event=…}`.
#[derive(Debug, Clone, Copy)]
pub enum TicketEvent {
    /// Queued through `POST /api/matchmaker/tickets` on this process.
    Created = 0,
    /// In a match committed by this process's matcher.
    Matched = 1,
    /// Expired in this process's matcher.
    Expired = 2,
    /// Cancelled through this process.
    Cancelled = 3,
}

const TICKET_EVENTS: [&str; 4] = ["created", "matched", "expired", "cancelled"];

/// Counters of the matchmaker service.
#[derive(Debug, Default)]
pub struct MatchmakerMetrics {
    tickets: [AtomicU64; 4],
    /// Matches this process made for the matchmaker.
    pub matches: AtomicU64,
    /// Backfill assignments committed by this process's matcher.
    pub backfills: AtomicU64,
    /// Matches that could not be made (tick threads full, the match cap): the tickets
    /// stay queued.
    pub host_failures: AtomicU64,
    /// Assignments pushed on ticket SSE streams.
    pub pushes_sse: AtomicU64,
    /// Match frames pushed on sync sockets.
    pub pushes_socket: AtomicU64,
    /// Ticket requests redirected to another region (307).
    pub redirects: AtomicU64,
    waits: Mutex<BTreeMap<QueueKey, Waits>>,
}

/// What the render reads besides the counters.
pub struct Gauges<'a> {
    /// Tickets queued per queue after this process's last pass.
    pub queued: &'a BTreeMap<QueueKey, usize>,
    /// Matches with free seats offered, and those seats.
    pub offered: (u64, u64),
    /// Local waiters: SSE streams, sync sockets.
    pub waiters: (usize, usize),
}

impl MatchmakerMetrics {
    /// Counts one ticket event.
    pub fn count(&self, event: TicketEvent, n: u64) {
        self.tickets[event as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a committed assignment: its tickets matched, each one's wait observed.
    pub fn matched(&self, a: &Assignment) {
        self.count(TicketEvent::Matched, a.tickets.len() as u64);
        if a.backfill {
            self.backfills.fetch_add(1, Ordering::Relaxed);
        }
        let key = QueueKey { region: a.region.clone(), game: a.game.clone(), mode: a.mode.clone() };
        let mut waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
        let h = waits.entry(key).or_default();
        for created in &a.created_at {
            let ms = a.matched_at.saturating_sub(*created);
            let secs = ms as f64 / 1000.0;
            if let Some(i) = WAIT_BUCKETS.iter().position(|le| secs <= *le) {
                h.buckets[i] += 1;
            }
            h.count += 1;
            h.sum_ms += ms;
        }
    }

    /// The `pylon_matchmaker_*` families.
    pub fn render(&self, out: &mut String, g: &Gauges<'_>) {
        let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
        header(out, "pylon_matchmaker_queued", "Tickets queued after the last pass.", "gauge");
        for (key, n) in g.queued {
            let _ = writeln!(out, "pylon_matchmaker_queued{{{}}} {n}", labels(key));
        }
        let help = "Matchmaker tickets by event.";
        header(out, "pylon_matchmaker_tickets_total", help, "counter");
        for (event, n) in TICKET_EVENTS.iter().zip(&self.tickets) {
            let _ =
                writeln!(out, "pylon_matchmaker_tickets_total{{event=\"{event}\"}} {}", read(n));
        }
        self.render_waits(out);
        let help = "Matches made for the matchmaker by this process.";
        counter(out, "pylon_matchmaker_matches_total", help, read(&self.matches));
        let help = "Backfill assignments committed by this process.";
        counter(out, "pylon_matchmaker_backfills_total", help, read(&self.backfills));
        let help = "Matches that could not be made (their tickets stay queued).";
        counter(out, "pylon_matchmaker_host_failures_total", help, read(&self.host_failures));
        header(out, "pylon_matchmaker_pushes_total", "Assignments pushed, by path.", "counter");
        let _ = writeln!(
            out,
            "pylon_matchmaker_pushes_total{{path=\"sse\"}} {}",
            read(&self.pushes_sse)
        );
        let socket = read(&self.pushes_socket);
        let _ = writeln!(out, "pylon_matchmaker_pushes_total{{path=\"socket\"}} {socket}");
        let help = "Ticket requests redirected to another region.";
        counter(out, "pylon_matchmaker_redirects_total", help, read(&self.redirects));
        let help = "Running matches of this process offering free seats for backfill.";
        gauge(out, "pylon_matchmaker_backfill_matches", help, g.offered.0);
        let help = "Free seats offered for backfill.";
        gauge(out, "pylon_matchmaker_backfill_seats", help, g.offered.1);
        header(out, "pylon_matchmaker_waiters", "Local waiters of pushes, by path.", "gauge");
        let _ = writeln!(out, "pylon_matchmaker_waiters{{path=\"sse\"}} {}", g.waiters.0);
        let _ = writeln!(out, "pylon_matchmaker_waiters{{path=\"socket\"}} {}", g.waiters.1);
    }

    fn render_waits(&self, out: &mut String) {
        let name = "pylon_matchmaker_time_to_match_seconds";
        header(out, name, "Time from a ticket's creation to its match.", "histogram");
        let waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for (key, h) in &waits {
            let labels = labels(key);
            let mut cumulative = 0;
            for (le, n) in WAIT_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_ms as f64 / 1000.0);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
}

/// `game="…",mode="…",region="…"` (names are checked: letters, digits, `_`, `-`).
fn labels(key: &QueueKey) -> String {
    format!(
        "game=\"{}\",mode=\"{}\",region=\"{}\"",
        key.game,
        key.mode.as_deref().unwrap_or(""),
        key.region
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A committed assignment counts its tickets and observes each one's wait in its
    /// queue's histogram (cumulative buckets, sum in seconds).
    #[test]
    fn waits_per_queue() {
        let m = MatchmakerMetrics::default();
        let a = Assignment {
            match_key: "eu-m".into(),
            region: "eu".into(),
            game: "arena".into(),
            mode: None,
            tickets: vec!["eu-a".into(), "eu-b".into()],
            players: vec!["a".into(), "b".into()],
            backfill: false,
            average_skill: None,
            matched_at: 10_000,
            created_at: vec![9_800, 5_000],
            party_sizes: vec![1, 1],
            params: None,
        };
        m.matched(&a);
        let mut out = String::new();
        let queued = BTreeMap::new();
        m.render(&mut out, &Gauges { queued: &queued, offered: (0, 0), waiters: (0, 0) });
        let l = "game=\"arena\",mode=\"\",region=\"eu\"";
        assert!(out.contains(&format!(
            "pylon_matchmaker_time_to_match_seconds_bucket{{{l},le=\"0.25\"}} 1"
        )));
        assert!(
            out.contains(&format!(
                "pylon_matchmaker_time_to_match_seconds_bucket{{{l},le=\"5\"}} 2"
            ))
        );
        assert!(out.contains(&format!("pylon_matchmaker_time_to_match_seconds_sum{{{l}}} 5.2")));
        assert!(out.contains("pylon_matchmaker_tickets_total{event=\"matched\"} 2"));
    }
}
