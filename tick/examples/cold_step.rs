//! The density run's per-match work on one thread, without threads or channels: N arena
//! matches of 8 players on one [`Stepper`] (fake clock), every player sending one input
//! per tick, mailboxes never drained (each new snapshot replaces the unsent one). Prints
//! wall time, allocations and bytes per match-tick, and heap and resident memory per
//! match. Repeatable under `valgrind --tool=callgrind` (run two round counts and divide
//! the difference in instructions by the difference in match-ticks).
//!
//! `cargo run --release -p pylon-tick --example cold_step -- MATCHES ROUNDS [WARM]`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a measuring tool fails loudly")]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use pylon_shard::codec::InputPayload;
use pylon_shard::games::arena::Arena;
use pylon_shard::{MatchConfig, Outgoing, Shard, SubscriberKey};
use pylon_tick::{Stepper, TickConfig};

/// Counts every allocation and the bytes live, over mimalloc (the server's allocator).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
static FREED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to mimalloc unchanged; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED_BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(new_size as u64, Relaxed);
        FREED_BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SEC: u64 = 1_000_000_000;
const HZ: u64 = 20;
const PLAYERS: usize = 8;
/// Inputs are sent in this many slices per tick period, and after each slice the shards due
/// by its end run in one pass, as a tick thread drains its channel and then steps every
/// shard due since its last wake (at 20 Hz, slices of 1 ms).
const SLICES: u64 = 50;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn live_bytes() -> u64 {
    ALLOC_BYTES.load(Relaxed).saturating_sub(FREED_BYTES.load(Relaxed))
}

/// One tick period: every player's input, in slices between passes over the shards due.
fn round(stepper: &mut Stepper, players: &[(u64, SubscriberKey)], input: &InputPayload, seq: u64) {
    let slice = SEC / HZ / SLICES;
    let per_slice = players.len().div_ceil(SLICES as usize);
    for chunk in players.chunks(per_slice) {
        for &(id, key) in chunk {
            stepper.input(id, key, seq, input.clone());
        }
        stepper.stall(slice);
    }
}

/// The measured rounds (a function of its own, for `--toggle-collect=cold_step::measured`).
#[inline(never)]
fn measured(
    stepper: &mut Stepper,
    players: &[(u64, SubscriberKey)],
    payloads: &[InputPayload; 4],
    mut seq: u64,
    rounds: u64,
) {
    for _ in 0..rounds {
        seq += 1;
        round(stepper, players, &payloads[(seq % 4) as usize], seq);
    }
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let matches = args.first().copied().unwrap_or(2_000);
    let rounds = args.get(1).copied().unwrap_or(20);
    let warm = args.get(2).copied().unwrap_or(10);
    let (rss0, live0) = (rss_bytes(), live_bytes());
    let mut stepper = Stepper::new(&TickConfig::default(), SEC);
    let params = serde_json::json!({
        "tick_rate_hz": HZ, "max_players": PLAYERS, "time_limit_secs": 1_000_000,
        "score_limit": u32::MAX,
    });
    let mut players: Vec<(u64, SubscriberKey)> = Vec::new();
    let mut mailboxes = Vec::new();
    for m in 0..matches {
        let config = MatchConfig { seed: m, params: params.clone(), record_replay: false };
        let (id, _) = stepper.spawn(Box::new(Shard::<Arena>::new(&config).unwrap()));
        for p in 0..PLAYERS {
            let mailbox = stepper.join(id, &format!("m{m}p{p}"));
            let Some(Outgoing::Joined { key, .. }) = mailbox.try_recv() else { panic!("join") };
            players.push((id, key));
            mailboxes.push(mailbox);
        }
    }
    let payloads = [
        InputPayload::json(&br#"{"dx":1,"dy":0}"#[..]),
        InputPayload::json(&br#"{"dx":0,"dy":1}"#[..]),
        InputPayload::json(&br#"{"dx":-1,"dy":0.5}"#[..]),
        InputPayload::json(&br#"{"dx":0.25,"dy":-1}"#[..]),
    ];
    let mut seq = 0;
    for _ in 0..warm {
        seq += 1;
        round(&mut stepper, &players, &payloads[(seq % 4) as usize], seq);
    }
    let (rss1, live1) = (rss_bytes(), live_bytes());
    let (allocs0, bytes0) = (ALLOCS.load(Relaxed), ALLOC_BYTES.load(Relaxed));
    let ticks0 = stepper.metrics.ticks.load(Relaxed);
    let started = Instant::now();
    measured(&mut stepper, &players, &payloads, seq, rounds);
    let took = started.elapsed();
    let ticks = stepper.metrics.ticks.load(Relaxed) - ticks0;
    let allocs = ALLOCS.load(Relaxed) - allocs0;
    let bytes = ALLOC_BYTES.load(Relaxed) - bytes0;
    let applied = stepper.metrics.inputs_applied.load(Relaxed);
    println!(
        "cold_step matches={matches} rounds={rounds} match_ticks={ticks} \
         ns_per_match_tick={:.0} allocs_per_match_tick={:.2} bytes_per_match_tick={:.0} \
         heap_per_match_kib={:.1} rss_per_match_kib={:.1} inputs_applied={applied}",
        took.as_nanos() as f64 / ticks.max(1) as f64,
        allocs as f64 / ticks.max(1) as f64,
        bytes as f64 / ticks.max(1) as f64,
        live1.saturating_sub(live0) as f64 / matches as f64 / 1024.0,
        rss1.saturating_sub(rss0) as f64 / matches as f64 / 1024.0,
    );
    drop(mailboxes);
}
