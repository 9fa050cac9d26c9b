//! Every system call for shared memory, in two small backend files.
#![allow(unsafe_code)]

pub(crate) mod posix;
pub(crate) mod sysv;

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&p| p > 0).unwrap_or(4096)
}
