//! A warm arena match allocates nothing per tick: inputs arriving as commands, queued raw,
//! decoded and applied, the schedule run, the snapshot refilled in place and delivered to
//! every subscriber's mailbox. Counted by a global allocator that counts, per thread, the
//! allocations made while a test has switched counting on.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
#![cfg(not(loom))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use common::{arena, joined_key};
use pylon_shard::codec::InputPayload;
use pylon_shard::{Outgoing, SubscriberKey};
use pylon_tick::{Mailbox, Stepper, TickConfig};

const SEC: u64 = 1_000_000_000;
const HZ: u64 = 20;
const PLAYERS: usize = 8;

thread_local! {
    /// Whether this thread counts its allocations now, and how many it counted.
    static COUNTING: Cell<(bool, u64)> = const { Cell::new((false, 0)) };
}

struct Counting;

fn count() {
    // `try_with`: the allocator may be called while this thread's locals are torn down.
    let _ = COUNTING.try_with(|c| {
        let (on, n) = c.get();
        if on {
            c.set((on, n + 1));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> u64 {
    COUNTING.with(|c| c.set((true, 0)));
    f();
    COUNTING.with(|c| {
        let (_, n) = c.get();
        c.set((false, 0));
        n
    })
}

/// An arena match of eight players on a fake clock, warmed up.
struct Match {
    stepper: Stepper,
    id: u64,
    players: Vec<(SubscriberKey, Arc<Mailbox<Outgoing>>)>,
    tick_end: u64,
    seq: u64,
}

impl Match {
    fn new() -> Self {
        let mut stepper = Stepper::new(&TickConfig::default(), 0);
        let (id, _) = stepper.spawn(arena(20));
        let players = (0..PLAYERS)
            .map(|p| {
                let mailbox = stepper.join(id, &format!("p{p}"));
                (joined_key(&mailbox), mailbox)
            })
            .collect();
        let tick_end = stepper.next_deadline().unwrap();
        Self { stepper, id, players, tick_end, seq: 0 }
    }

    /// One tick period: one input per player (static bytes, as a socket frame owned by
    /// its connection costs the tick thread nothing), then the tick.
    fn tick(&mut self, take_frames: bool) {
        const INPUTS: [&[u8]; 2] = [br#"{"dx":1,"dy":0.5}"#, br#"{"dx":-0.25,"dy":-1}"#];
        self.seq += 1;
        let bytes = INPUTS[(self.seq % 2) as usize];
        for (key, _) in &self.players {
            let payload = InputPayload::json(bytes);
            self.stepper.input(self.id, *key, self.seq, payload);
        }
        self.stepper.run_until(self.tick_end);
        self.tick_end += SEC / HZ;
        if take_frames {
            for (_, mailbox) in &self.players {
                assert!(matches!(mailbox.try_recv(), Some(Outgoing::Snapshot(_))));
            }
        }
    }
}

/// The counter sees allocations (so a zero below means none, not a blind counter).
#[test]
fn the_counter_counts() {
    let n = allocations_in(|| {
        std::hint::black_box(vec![1_u8; 16]);
    });
    assert_eq!(n, 1);
}

/// Nobody reads: each tick's snapshot replaces the unsent one in every mailbox (the density
/// benchmark's slow-reader path).
#[test]
fn a_warm_arena_tick_allocates_nothing_when_nobody_reads() {
    let mut game = Match::new();
    for _ in 0..20 {
        game.tick(false);
    }
    let allocations = allocations_in(|| {
        for _ in 0..100 {
            game.tick(false);
        }
    });
    assert_eq!(allocations, 0, "allocations in 100 warm ticks");
    assert_eq!(game.stepper.metrics.ticks.load(std::sync::atomic::Ordering::Relaxed), 120);
}

/// Every subscriber takes every frame (a writer keeping up): still nothing allocated, on
/// the tick side or by taking the frames.
#[test]
fn a_warm_arena_tick_allocates_nothing_when_every_frame_is_taken() {
    let mut game = Match::new();
    for _ in 0..20 {
        game.tick(true);
    }
    let allocations = allocations_in(|| {
        for _ in 0..100 {
            game.tick(true);
        }
    });
    assert_eq!(allocations, 0, "allocations in 100 warm ticks");
}
