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

pub mod clock;
pub mod command;
pub mod config;
pub mod error;
pub mod mailbox;
pub mod metrics;
pub mod pool;
pub mod scheduler;
pub mod status;
pub mod stepper;
mod sync;
pub mod waker;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use command::{Command, InputFrom, ShardId};
pub use config::TickConfig;
pub use error::{SendError, StartError};
pub use mailbox::Mailbox;
pub use metrics::{Histogram, HistogramSnapshot, ThreadMetrics};
pub use pool::{ShardHandle, TickPool};
pub use scheduler::Scheduler;
pub use status::{ShardState, ShardStatus};
pub use stepper::Stepper;
