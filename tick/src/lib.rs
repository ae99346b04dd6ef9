//! pylon-tick: the tick threads. A small pool of dedicated OS threads steps thousands of
//! shards each at their own fixed rate (or on events), fed by bounded lock-free command
//! channels and drained through per-subscriber mailboxes.
//!
//! Owns: placement ([`TickPool::spawn`]: least-loaded thread), fixed-step scheduling with
//! bounded catch-up ([`scheduler`]), the command enum ([`Command`]), subscriber mailboxes
//! ([`mailbox::Mailbox`], loom-checked), per-thread metrics ([`metrics`]), panic
//! containment (a panicking game stops its match, not the thread), idle removal.
//!
//! Must never: block on the I/O side's behalf (sending is `try_send`; delivering is a
//! mailbox store), read the wall clock except through [`Clock`], or depend on tokio, axum,
//! sqlx, rusqlite or redis (a tidy test checks).
//!
//! Entry points: [`TickPool::start`]`(config, clock)`, then [`TickPool::spawn`] a
//! [`pylon_shard::DynShard`] and talk to it through its [`ShardHandle`]. Tests drive the
//! same scheduler without threads through [`Stepper`].

//!
//! Under `--cfg loom` only [`mailbox`], [`waker`], [`gate`] and the `sync` shim are
//! compiled, for the model check: `RUSTFLAGS="--cfg loom" cargo test -p pylon-tick --release loom`.

pub mod gate;
pub mod mailbox;
mod sync;
pub mod waker;

#[cfg(not(loom))]
pub mod clock;
#[cfg(not(loom))]
pub mod command;
#[cfg(not(loom))]
pub mod config;
#[cfg(not(loom))]
pub mod error;
#[cfg(not(loom))]
pub mod metrics;
#[cfg(not(loom))]
pub mod persist;
#[cfg(not(loom))]
pub mod phases;
#[cfg(not(loom))]
pub mod pool;
#[cfg(not(loom))]
pub mod receipt;
#[cfg(not(loom))]
pub mod scheduler;
#[cfg(not(loom))]
pub mod status;
#[cfg(not(loom))]
pub mod stepper;

#[cfg(not(loom))]
pub use clock::{Clock, ManualClock, MonotonicClock};
#[cfg(not(loom))]
pub use command::{Command, InputFrom, ShardId};
#[cfg(not(loom))]
pub use config::TickConfig;
#[cfg(not(loom))]
pub use error::{SendError, StartError};
#[cfg(not(loom))]
pub use mailbox::Mailbox;
#[cfg(not(loom))]
pub use metrics::{Histogram, HistogramSnapshot, ThreadMetrics};
#[cfg(not(loom))]
pub use persist::{Persist, PersistSink};
#[cfg(not(loom))]
pub use pool::{ShardHandle, TickPool};
#[cfg(not(loom))]
pub use receipt::{InputReceipt, InputVerdict};
#[cfg(not(loom))]
pub use scheduler::Scheduler;
#[cfg(not(loom))]
pub use status::{ShardState, ShardStatus};
#[cfg(not(loom))]
pub use stepper::Stepper;
