//! How a blocked side waits: spin briefly, then yield, then park on a futex.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::ring::{Control, PARKED, Park, Parker};

/// How a side waits for its peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Spin for a few microseconds, then yield the CPU for a while, then park
    /// on a futex until woken. Where both ends may only run on the same
    /// single CPU, spinning can only delay the peer, so it yields at once.
    #[default]
    Adaptive,
    /// Never park: lowest latency, one CPU kept busy while waiting (where
    /// both ends may only run on the same single CPU, it yields between
    /// looks instead of spinning).
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
/// How long a side sleeps at most where a wake-up may be lost
/// ([`Park::Nap`], after its heavy barrier failed).
const NAP: Duration = Duration::from_millis(1);
/// Spins between the slow checks (deadline, signals, peer liveness); a
/// power of two.
const SPINS_PER_CHECK: u32 = 4096;
/// Spins between looks at the clock while deciding to stop spinning; a
/// power of two.
const CLOCK_EVERY: u32 = 64;

/// Where a side may run, as it tells its peer: 0 not known (not attached),
/// `c + 1` only on CPU `c`, [`MANY_CPUS`] on more than one.
pub(crate) fn cpus_code() -> u64 {
    match shm::sys::allowed_cpus()[..] {
        [c] => c as u64 + 1,
        _ => MANY_CPUS,
    }
}

/// [`cpus_code`] of a side that may run on more than one CPU.
pub(crate) const MANY_CPUS: u64 = u64::MAX;

/// Whether spinning is useless: this side may only run on one CPU, and so
/// may its peer, the same one (or the peer is not known yet).
pub(crate) fn must_yield(mine: u64, peer: u64) -> bool {
    mine != MANY_CPUS && (peer == 0 || peer == mine)
}

/// The state of one wait.
#[derive(Debug)]
pub(crate) struct Backoff {
    mode: Wait,
    /// Both ends share one CPU: yield instead of spinning.
    single: bool,
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
    pub(crate) fn new(mode: Wait, single: bool) -> Backoff {
        Backoff {
            mode,
            single,
            spins: 0,
            started: None,
        }
    }

    /// Waits a little. `parker` parks this side; `news` says, after this
    /// side has announced that it parks, whether there is something to do
    /// after all. `limit` bounds a park.
    pub(crate) fn snooze<C: Control + ?Sized>(
        &mut self,
        ctl: &C,
        parker: &Parker,
        news: impl FnOnce() -> bool,
        limit: Option<Duration>,
    ) -> Snooze {
        let single = self.single;
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
                park(ctl, parker, news, limit);
                Snooze::Waited
            }
        }
    }

    /// The wait is over: unless this side parks on every wait, the peer may
    /// stop fencing for it until it next parks (`peer_covered`: the heavy
    /// barrier reaches the peer). A side that parks after spinning and
    /// yielding pays one heavy barrier per park, small next to the time it
    /// waited before parking.
    pub(crate) fn done<C: Control + ?Sized>(&self, ctl: &C, parker: &Parker, peer_covered: bool) {
        parker.done(ctl, peer_covered && self.mode != Wait::Park);
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Spin,
    Yield,
    Park,
}

/// Announces that this side parks, re-checks, and sleeps on its park word
/// until the peer wakes it, a signal arrives or `limit` (at most
/// [`PARK_SLICE`], or [`NAP`] while a wake-up may be lost) passes.
fn park<C: Control + ?Sized>(
    ctl: &C,
    parker: &Parker,
    news: impl FnOnce() -> bool,
    limit: Option<Duration>,
) {
    let most = match parker.begin(ctl, news) {
        Park::News => return,
        Park::Sleep => PARK_SLICE,
        Park::Nap => NAP,
    };
    let slice = limit.map_or(most, |l| l.min(most));
    if !slice.is_zero() {
        let _ = shm::sync::futex::wait(ctl.park(parker.side()), PARKED, Some(slice));
    }
    parker.end(ctl);
}

#[cfg(test)]
mod tests {
    use super::{MANY_CPUS, must_yield};

    #[test]
    fn spinning_stops_only_where_both_ends_share_one_cpu() {
        // Pinned apart (as the benchmark pins them): spin.
        assert!(!must_yield(1, 2));
        // Either may move: spin.
        assert!(!must_yield(MANY_CPUS, 1));
        assert!(!must_yield(1, MANY_CPUS));
        assert!(!must_yield(MANY_CPUS, MANY_CPUS));
        assert!(!must_yield(MANY_CPUS, 0));
        // Both confined to CPU 0 (a one-CPU machine, or pinned together).
        assert!(must_yield(1, 1));
        // Confined to one CPU, the peer not attached yet: do not spin.
        assert!(must_yield(3, 0));
    }
}
