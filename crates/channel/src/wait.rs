//! How a blocked side waits: spin briefly, then yield, then park on a futex.
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How a side waits for its peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Spin for a few microseconds, then yield the CPU for a while, then park
    /// on a futex until woken. Where only one CPU is allowed, spinning can
    /// only delay the peer, so it yields at once.
    #[default]
    Adaptive,
    /// Never park: lowest latency, one CPU kept busy while waiting (on a
    /// single allowed CPU it yields between looks instead of spinning).
    Spin,
    /// Park at once: no CPU used while waiting, a futex wake per hand-off.
    Park,
}

/// Time spent spinning before yielding (adaptive).
const SPIN_FOR: Duration = Duration::from_micros(20);
/// Time spent yielding before parking (adaptive).
const YIELD_UNTIL: Duration = Duration::from_micros(200);
/// A parked side wakes at least this often to check its peer's liveness.
pub(crate) const PARK_SLICE: Duration = Duration::from_millis(100);
/// Spins between the slow checks (deadline, signals, peer liveness); a
/// power of two.
const SPINS_PER_CHECK: u32 = 4096;
/// Spins between looks at the clock while deciding to stop spinning; a
/// power of two.
const CLOCK_EVERY: u32 = 64;

fn single_cpu() -> bool {
    static SINGLE: OnceLock<bool> = OnceLock::new();
    *SINGLE.get_or_init(|| shm::sys::allowed_cpus().len() <= 1)
}

/// The state of one wait.
#[derive(Debug)]
pub(crate) struct Backoff {
    mode: Wait,
    spins: u32,
    started: Option<Instant>,
}

/// What [`Backoff::snooze`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Snooze {
    /// Spun a little; not yet time to look at the clock.
    Spun,
    /// Waited (spun a while, yielded or parked): time for the slow checks.
    Waited,
}

impl Backoff {
    pub(crate) fn new(mode: Wait) -> Backoff {
        Backoff {
            mode,
            spins: 0,
            started: None,
        }
    }

    /// Waits a little. `parked` is this side's futex word; `news` says,
    /// after this side has announced that it parks, whether there is
    /// something to do after all. `limit` bounds a park.
    pub(crate) fn snooze(
        &mut self,
        parked: &AtomicU32,
        news: impl Fn() -> bool,
        limit: Option<Duration>,
    ) -> Snooze {
        let single = single_cpu();
        let phase = match self.mode {
            Wait::Park => Phase::Park,
            Wait::Spin if single => Phase::Yield,
            Wait::Spin => Phase::Spin,
            // Looking at the clock costs more than a spin: do it every
            // CLOCK_EVERY spins only.
            Wait::Adaptive if !single && self.spins & (CLOCK_EVERY - 1) != 0 => Phase::Spin,
            Wait::Adaptive => {
                let started = *self.started.get_or_insert_with(Instant::now);
                let spent = started.elapsed();
                if spent < SPIN_FOR && !single {
                    Phase::Spin
                } else if spent < YIELD_UNTIL {
                    Phase::Yield
                } else {
                    Phase::Park
                }
            }
        };
        match phase {
            Phase::Spin => {
                std::hint::spin_loop();
                self.spins = self.spins.wrapping_add(1);
                if self.spins & (SPINS_PER_CHECK - 1) == 0 {
                    Snooze::Waited
                } else {
                    Snooze::Spun
                }
            }
            Phase::Yield => {
                self.spins = 0;
                std::thread::yield_now();
                Snooze::Waited
            }
            Phase::Park => {
                park(parked, news, limit);
                Snooze::Waited
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Spin,
    Yield,
    Park,
}

/// Announces that this side parks, re-checks, and sleeps on the futex word
/// until the peer clears it, a signal arrives or `limit` (at most
/// [`PARK_SLICE`]) passes.
fn park(parked: &AtomicU32, news: impl Fn() -> bool, limit: Option<Duration>) {
    let slice = limit.map_or(PARK_SLICE, |l| l.min(PARK_SLICE));
    parked.store(1, Ordering::SeqCst);
    if !news() && !slice.is_zero() {
        let _ = shm::sync::futex::wait(parked, 1, Some(slice));
    }
    parked.store(0, Ordering::SeqCst);
}
