//! Parking, as the [module's doc](super) explains it: a publish that
//! wakes a parked peer, and one side's parking across its waits.

use std::cell::Cell;
use std::sync::atomic::compiler_fence;

use shm::sync::atomic::{Ordering, fence};

use super::{AWAKE, Control, PARKED, SLEEPY};
use crate::error::Side;

/// Runs `store` (a release store by `me` that gives the peer something to
/// do), then wakes the peer if it is parked.
#[inline]
pub(super) fn announce<C: Control + ?Sized>(ctl: &C, me: Side, store: impl FnOnce()) {
    let peer = ctl.park(me.other());
    let state = ctl.light(me, || {
        store();
        // The look must follow the store in the instruction stream, for the
        // peer's heavy barrier to split them in that order.
        compiler_fence(Ordering::SeqCst);
        peer.load(Ordering::Relaxed)
    });
    if state != AWAKE {
        wake_if_parked(ctl, me.other());
    }
}

#[inline(never)]
fn wake_if_parked<C: Control + ?Sized>(ctl: &C, peer: Side) {
    fence(Ordering::SeqCst);
    let word = ctl.park(peer);
    if word.load(Ordering::Relaxed) == PARKED
        && word
            .compare_exchange(PARKED, SLEEPY, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        ctl.wake(peer);
    }
}

/// What [`Parker::begin`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Park {
    /// Sleep on the park word while it holds [`PARKED`], then call
    /// [`Parker::end`].
    Sleep,
    /// There is news after all: do not sleep.
    News,
    /// A heavy barrier of this side failed, so its peer may miss that it
    /// parks: sleep only briefly (a nap), then call [`Parker::end`].
    Nap,
}

/// One side's parking, across its waits.
#[derive(Debug)]
pub struct Parker {
    side: Side,
    /// A heavy barrier failed: this side never becomes [`AWAKE`] again, and
    /// only naps.
    broken: Cell<bool>,
}

impl Parker {
    /// The parking of `side`, which starts [`SLEEPY`].
    #[must_use]
    pub fn new(side: Side) -> Parker {
        Parker {
            side,
            broken: Cell::new(false),
        }
    }

    /// The side that parks.
    #[must_use]
    pub fn side(&self) -> Side {
        self.side
    }

    /// The first half of parking: announces it (leaving [`AWAKE`] through a
    /// heavy barrier), then looks for `news` (the peer's publishes that
    /// would end the wait) once more.
    ///
    /// If the heavy barrier fails, a light section of the peer that saw
    /// [`AWAKE`] may stay unseen by this side, and the peer may go on
    /// seeing [`AWAKE`] (nothing orders its loads after this side's
    /// stores): from then on, a sleep could miss its wake-up, so this side
    /// only naps ([`Park::Nap`]).
    pub fn begin<C: Control + ?Sized>(&self, ctl: &C, news: impl FnOnce() -> bool) -> Park {
        let own = ctl.park(self.side);
        if own.load(Ordering::Relaxed) == AWAKE {
            own.store(SLEEPY, Ordering::Relaxed);
            if !ctl.heavy_barrier(self.side) {
                self.broken.set(true);
            }
        }
        own.store(PARKED, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if news() {
            own.store(SLEEPY, Ordering::Relaxed);
            return Park::News;
        }
        if self.broken.get() {
            Park::Nap
        } else {
            Park::Sleep
        }
    }

    /// The second half of parking: after the sleep (woken, timed out or
    /// interrupted).
    pub fn end<C: Control + ?Sized>(&self, ctl: &C) {
        let _ = ctl.park(self.side).compare_exchange(
            PARKED,
            SLEEPY,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The wait is over (call only between waits, never while parked).
    /// With `covered` (the heavy barrier reaches the peer), lets the peer
    /// skip its fence from now on, until this side next parks; never after
    /// a heavy barrier failed.
    pub fn done<C: Control + ?Sized>(&self, ctl: &C, covered: bool) {
        let own = ctl.park(self.side);
        if covered && !self.broken.get() && own.load(Ordering::Relaxed) == SLEEPY {
            own.store(AWAKE, Ordering::Relaxed);
        }
    }
}
