//! The answer to one input, for senders that must say what happened to it (the HTTP input
//! route). Socket inputs carry no receipt: they pay nothing for this.
//!
//! A receipt is a [`Mailbox`] with a one-frame reliable ring: the tick thread pushes one
//! [`InputVerdict`] and closes it; the sender awaits `poll_recv`. So the hand-off is the
//! loom-checked mailbox protocol (push, close, wake) and nothing new. A receipt dropped
//! unfilled (its shard ended or panicked first, or the command was dropped at shutdown)
//! closes the mailbox, so the sender sees `None` at once instead of waiting for a verdict
//! that never comes.

use std::sync::Arc;

use pylon_shard::InputRejected;

use crate::mailbox::Mailbox;

/// What the shard did with one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputVerdict {
    /// Applied at the start of a tick.
    Applied,
    /// Queued, then refused by the game's `authorize_input` at the tick that took it.
    Unauthorized,
    /// Refused when it arrived (unknown subscriber, full queue, undecodable, match over),
    /// or dropped before its tick because the subscriber left (`UnknownSubscriber`).
    Rejected(InputRejected),
}

/// The tick thread's side of a receipt: filled once, closed when dropped.
#[derive(Debug)]
pub struct InputReceipt(Arc<Mailbox<InputVerdict>>);

impl InputReceipt {
    /// A receipt and the mailbox its verdict arrives in (the sender keeps the mailbox).
    #[must_use]
    pub fn new() -> (Self, Arc<Mailbox<InputVerdict>>) {
        let mailbox = Arc::new(Mailbox::new(1));
        (Self(Arc::clone(&mailbox)), mailbox)
    }

    /// Delivers the verdict (then closes the mailbox).
    pub fn fill(self, verdict: InputVerdict) {
        // A fresh one-slot ring always has room for its only frame.
        let _ = self.0.push_reliable(verdict);
    }
}

impl Drop for InputReceipt {
    fn drop(&mut self) {
        self.0.close();
    }
}
