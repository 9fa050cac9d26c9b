//! Whose segments this process attaches to (design rule 8).
//!
//! Whoever owns a segment can change any byte of it at any moment, so
//! attaching to another user's segment is trusting that user: a process
//! attaches only to existing segments that its own effective user owns,
//! unless it allows other owners on purpose with [`allow_owner`].
//! Listing and inspecting (which read a copy of the header and never hand
//! the segment to a layer above) are always allowed.

use std::sync::{PoisonError, RwLock};

static ALLOWED: RwLock<Vec<u32>> = RwLock::new(Vec::new());

/// Lets this process attach to existing segments that user `uid` owns,
/// besides its own effective user's.
///
/// # Examples
///
/// ```
/// // Trust segments that root made.
/// shm::allow_owner(0);
/// ```
pub fn allow_owner(uid: u32) {
    let mut all = ALLOWED.write().unwrap_or_else(PoisonError::into_inner);
    if !all.contains(&uid) {
        all.push(uid);
    }
}

/// Whether this process attaches to existing segments owned by `uid`.
#[must_use]
pub fn owner_allowed(uid: u32) -> bool {
    uid == crate::sys::euid()
        || ALLOWED
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&uid)
}
