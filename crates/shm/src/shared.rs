//! The marker for types that may live in shared memory.
#![allow(unsafe_code)]

use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64,
};

/// A type that may be placed in shared memory and viewed through `&Self` by
/// several processes at once.
///
/// # Safety
///
/// An implementor must be `#[repr(C)]` or `#[repr(transparent)]` (or a
/// primitive), contain no pointers, references or file descriptors, accept
/// every bit pattern as a valid value (memory from another process may hold
/// anything), and allow concurrent mutation through `&Self`: every byte that
/// may change after the segment is ready lies inside an atomic. Implement it
/// with [`shared_struct!`](crate::shared_struct), which checks all of this.
pub unsafe trait Shared: Sync {}

macro_rules! shared_atomics {
    ($($t:ty),*) => {$(
        // SAFETY: atomics of integers are repr(transparent) over the integer,
        // accept every bit pattern and are mutated through `&self`.
        unsafe impl Shared for $t {}
    )*};
}
shared_atomics!(
    AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicI8, AtomicI16, AtomicI32, AtomicI64
);

// SAFETY: an array of `Shared` elements is laid out contiguously with no
// padding between elements beyond theirs, so it inherits every property.
unsafe impl<T: Shared, const N: usize> Shared for [T; N] {}

/// Declares `#[repr(C)]` structs whose fields are all [`Shared`], and
/// implements [`Shared`] for them.
///
/// Field types are checked at compile time, so a plain `u64` or a pointer
/// is refused.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, AtomicU64};
/// shm::shared_struct! {
///     /// A counter two processes share.
///     pub struct Counter {
///         /// Bumped by everyone.
///         pub value: AtomicU64,
///         /// Unused padding to keep the size a multiple of 8.
///         pub spare: [AtomicU32; 2],
///     }
/// }
/// ```
#[macro_export]
macro_rules! shared_struct {
    ($(
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty ),*
        }
        const _: () = {
            const fn assert_shared<T: $crate::Shared>() {}
            $( assert_shared::<$ty>(); )*
        };
        // SAFETY: repr(C), and every field is `Shared` (checked above), so
        // the struct has no pointers, accepts every bit pattern and is
        // mutated only through atomics.
        unsafe impl $crate::Shared for $name {}
    )*};
}
