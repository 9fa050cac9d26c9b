//! Surviving a segment that shrinks under this process (design rule 8).
//!
//! Whoever can write a POSIX segment's file can also `ftruncate` it, and
//! the next access to a page past the new end raises `SIGBUS`, whose
//! default action kills the process without a word. So every POSIX mapping
//! is entered in a fixed table of atomics, which a `SIGBUS` handler reads
//! without locks or allocation. On a fault inside a registered mapping the
//! handler maps anonymous zero pages over the whole of it (`mmap` with
//! `MAP_FIXED`, a plain system call), marks it lost and returns: the
//! faulting access completes, reading zeros, and the layers above ask
//! [`is_lost`] (through `Segment::check_intact`) before they trust what
//! they read, and report the truncation. A `SIGBUS` anywhere else goes to
//! the handler that was there before (Rust's own, which tells stack
//! overflows apart), or, if there was none, kills the process as it would
//! have died without this module.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

/// Mappings one process can have registered at once.
pub(crate) const SLOTS: usize = 4096;

// A slot's word: the phase in the low two bits, a generation above them
// that every change of phase bumps, so that the handler can tell a slot
// it read whole from one that changed under it.
const FREE: u64 = 0;
const CLAIMED: u64 = 1;
const ACTIVE: u64 = 2;
const PHASE: u64 = 3;
const STEP: u64 = 4;

struct Slot {
    word: AtomicU64,
    start: AtomicUsize,
    len: AtomicUsize,
    writable: AtomicBool,
    counted: AtomicBool,
    lost: AtomicBool,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            word: AtomicU64::new(FREE),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            writable: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            lost: AtomicBool::new(false),
        }
    }
}

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

/// Counted mappings lost so far in this process (observers' mappings are
/// not counted: a listing handles its own).
static LOST: AtomicU64 = AtomicU64::new(0);

/// The `SIGBUS` action before ours, to hand other faults to.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// A registered mapping: the index of its slot (also the index of
/// whatever tables the caller keeps beside this one).
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) index: usize,
}

/// Enters the mapping `[start, start + len)` in the table, installing the
/// handler first if this is the first one. `counted`: whether its loss
/// counts for [`lost_count`]. `None` when the table is full.
pub(crate) fn register(
    start: usize,
    len: usize,
    writable: bool,
    counted: bool,
) -> Option<Registration> {
    install();
    for (index, slot) in TABLE.iter().enumerate() {
        let w = slot.word.load(Ordering::Relaxed);
        if w & PHASE != FREE {
            continue;
        }
        let claimed = (w & !PHASE) + STEP + CLAIMED;
        if slot
            .word
            .compare_exchange(w, claimed, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        slot.start.store(start, Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
        slot.writable.store(writable, Ordering::Relaxed);
        slot.counted.store(counted, Ordering::Relaxed);
        slot.lost.store(false, Ordering::Relaxed);
        slot.word
            .store((claimed & !PHASE) + STEP + ACTIVE, Ordering::Release);
        return Some(Registration { index });
    }
    None
}

/// Takes the mapping out of the table; call before unmapping it.
pub(crate) fn unregister(r: &Registration) {
    let slot = &TABLE[r.index];
    let w = slot.word.load(Ordering::Relaxed);
    slot.word
        .store((w & !PHASE) + STEP + FREE, Ordering::Release);
}

/// Whether the mapping in slot `index` lost its segment (it now reads
/// zeros): one atomic load.
#[inline]
pub(crate) fn is_lost(index: usize) -> bool {
    TABLE[index].lost.load(Ordering::Acquire)
}

/// Whether the mapping in slot `index` counts for [`lost_count`].
pub(crate) fn is_counted(index: usize) -> bool {
    TABLE[index].counted.load(Ordering::Relaxed)
}

/// Marks the mapping in slot `index` lost without a fault: its file was
/// found shorter than the mapping. Later faults in it are rescued as usual.
pub(crate) fn mark_lost(index: usize) {
    let slot = &TABLE[index];
    if !slot.lost.swap(true, Ordering::AcqRel) && slot.counted.load(Ordering::Relaxed) {
        LOST.fetch_add(1, Ordering::Release);
    }
}

/// Counted mappings lost so far in this process: one atomic load.
pub(crate) fn lost_count() -> u64 {
    LOST.load(Ordering::Acquire)
}

fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction is plain data; all-zero is a valid start.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only reads the current one into `old`.
        unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) };
        let _ = PREVIOUS.set(old);
        // SAFETY: sigaction is plain data; all-zero is a valid start.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_sigbus as extern "C" fn(_, _, _) as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa.sa_mask` is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is fully initialized and the handler only does
        // async-signal-safe work (atomics, mmap, sigaction, raise).
        unsafe { libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) };
    });
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: no preconditions; the location is valid for the thread's life.
    let errno_at = unsafe { libc::__errno_location() };
    // SAFETY: `errno_at` points to this thread's errno.
    let errno = unsafe { *errno_at };
    // SAFETY: the kernel hands an SA_SIGINFO handler a valid siginfo.
    let info_ref = unsafe { &*info };
    let code = info_ref.si_code;
    // SAFETY: for SIGBUS the kernel fills in si_addr.
    let addr = unsafe { info_ref.si_addr() } as usize;
    // Only a fault (si_code > 0) carries the address it happened at; a
    // SIGBUS sent with kill(2) is never ours to absorb.
    if !(code > 0 && rescue(addr)) {
        hand_on(sig, info, ctx);
    }
    // SAFETY: as above.
    unsafe { *errno_at = errno };
}

/// Maps zero pages over the registered mapping that holds `addr`; whether
/// there was one.
fn rescue(addr: usize) -> bool {
    for slot in &TABLE {
        let w = slot.word.load(Ordering::Acquire);
        if w & PHASE != ACTIVE {
            continue;
        }
        let start = slot.start.load(Ordering::Relaxed);
        let len = slot.len.load(Ordering::Relaxed);
        let writable = slot.writable.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if slot.word.load(Ordering::Relaxed) != w || addr.wrapping_sub(start) >= len {
            continue;
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: `[start, start + len)` is a mapping of a live `Segment`
        // (registered until it unmaps it, and the fault inside it shows it
        // is in use, so not being unmapped); replacing it with private
        // zero pages changes what its readers see, never which memory is
        // theirs.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                prot,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return false;
        }
        if !slot.lost.swap(true, Ordering::AcqRel) && slot.counted.load(Ordering::Relaxed) {
            LOST.fetch_add(1, Ordering::Release);
        }
        return true;
    }
    false
}

/// A SIGBUS that is not ours: the previous handler, or the default action.
fn hand_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if let Some(old) = PREVIOUS.get()
        && old.sa_sigaction != libc::SIG_DFL
        && old.sa_sigaction != libc::SIG_IGN
    {
        if old.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the kernel returned this as the handler installed with
            // SA_SIGINFO, so it has the three-argument signature.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(old.sa_sigaction) };
            f(sig, info, ctx);
        } else {
            // SAFETY: the kernel returned this as a one-argument handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(old.sa_sigaction) };
            f(sig);
        }
        return;
    }
    // SAFETY: sigaction is plain data; all-zero is SIG_DFL with no flags.
    let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: restores the default action; async-signal-safe.
    unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
    // Pending until this handler returns (the signal is blocked while it
    // runs), then fatal, as if this handler had never been installed.
    // SAFETY: async-signal-safe.
    unsafe { libc::raise(sig) };
}
