//! Typed errors of the tick crate.

use thiserror::Error;

/// Why a command could not be handed to a tick thread. The I/O side reports these; it is
/// never blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The thread's command channel is full (the thread is overloaded); try again later.
    #[error("tick thread command queue is full")]
    Full,
    /// The pool has shut down.
    #[error("tick pool is shut down")]
    Closed,
}

/// Why the pool could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// Zero threads were asked for.
    #[error("tick pool needs at least one thread")]
    NoThreads,
    /// The OS refused to create a thread.
    #[error("cannot spawn tick thread: {0}")]
    Spawn(#[from] std::io::Error),
}
