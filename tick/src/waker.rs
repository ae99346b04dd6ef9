//! `AtomicWaker`: one registered task waker, set by the consumer and fired by the producer
//! without a lock. Three states: idle, registering, waking. A wake that races a
//! registration is never lost: the registering side sees the waking bit and wakes itself.

use std::task::Waker;

use crate::sync::{AtomicU8, Ordering, UnsafeCell};

const IDLE: u8 = 0;
const REGISTERING: u8 = 0b01;
const WAKING: u8 = 0b10;

/// A lock-free slot for the consumer's waker.
pub struct AtomicWaker {
    state: AtomicU8,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the `waker` cell is only touched by whoever moved `state` out of IDLE (the
// registering side holds REGISTERING, the waking side holds WAKING taken from IDLE), so
// no two threads access it at once; `Waker` itself is Send + Sync.
unsafe impl Send for AtomicWaker {}
// SAFETY: see above.
unsafe impl Sync for AtomicWaker {}

impl Default for AtomicWaker {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AtomicWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicWaker").finish_non_exhaustive()
    }
}

impl AtomicWaker {
    /// An empty slot.
    #[must_use]
    pub fn new() -> Self {
        Self { state: AtomicU8::new(IDLE), waker: UnsafeCell::new(None) }
    }

    /// Stores `waker` to be woken by the next [`AtomicWaker::wake`]. Consumer side: one
    /// caller at a time.
    pub fn register(&self, waker: &Waker) {
        match self.state.compare_exchange(IDLE, REGISTERING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: REGISTERING gives this thread exclusive access to the cell.
                self.waker.with_mut(|slot| unsafe {
                    match &*slot {
                        Some(old) if old.will_wake(waker) => {}
                        _ => *slot = Some(waker.clone()),
                    }
                });
                if self
                    .state
                    .compare_exchange(REGISTERING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    // A wake arrived while registering: it could not take the waker, so
                    // deliver it here.
                    // SAFETY: the state is still REGISTERING|WAKING; the waker holds off.
                    let pending = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                    self.state.swap(IDLE, Ordering::AcqRel);
                    if let Some(w) = pending {
                        w.wake();
                    }
                }
            }
            // A wake is in progress: make sure the caller polls again.
            Err(_) => waker.wake_by_ref(),
        }
    }

    /// Wakes the registered waker, if any. Producer side; never blocks.
    pub fn wake(&self) {
        if self.state.fetch_or(WAKING, Ordering::AcqRel) == IDLE {
            // SAFETY: we moved the state from IDLE to WAKING: exclusive access.
            let waker = self.waker.with_mut(|slot| unsafe { (*slot).take() });
            self.state.fetch_and(!WAKING, Ordering::Release);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}
