//! The header at the start of every managed segment (the design's rule 2).
//!
//! 256 bytes, all atomics, at offset 0; the payload follows at
//! [`HEADER_SIZE`]. [`Header`] is the one description of the layout: the
//! creator writes the fields through it, and readers (which may hold a
//! read-only attach, where no typed view is allowed) read a byte copy,
//! [`HeaderBytes`], through accessors at offsets derived from it
//! ([`offsets`], by `offset_of!`). The byte offsets are part of the format
//! (other tools read them); a test pins them:
//!
//! | offset | field | | offset | field |
//! |---:|---|---|---:|---|
//! | 0 | `magic` (u64) | | 56 | `total_size` (u64) |
//! | 8 | `version` (u32) | | 64 | `payload_size` (u64) |
//! | 12 | `state` (u32) | | 72 | `creator_uid` (u32) |
//! | 16 | `header_size` (u32) | | 76 | `creator_pid` (u32) |
//! | 20 | `kind` (u32) | | 80 | `creator_start` (u64) |
//! | 24 | `lifetime` (u32) | | 88 | `created_ns` (u64) |
//! | 28 | `word_bits` (u32) | | 96 | `type_name_len` (u32) |
//! | 32 | `fingerprint` (u64) | | 100 | `reserved` (u32) |
//! | 40 | `type_size` (u64) | | 104 | `type_name` (96 bytes) |
//! | 48 | `type_align` (u64) | | | |

// The `Shared` impl that `shared_struct!` generates is the only unsafe
// code here; the macro checks every field at compile time.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

use crate::Segment;

/// `"SHMEXSEG"` read as a native-endian `u64`.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"SHMEXSEG");
/// The header format this shmex writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the payload.
pub const HEADER_SIZE: usize = 256;
/// Longest type name kept in the header.
pub const TYPE_NAME_LEN: usize = 96;

/// `state` while the creator is still writing the segment.
pub const STATE_INITIALIZING: u32 = 0;
/// `state` once the payload is written (stored with release ordering).
pub const STATE_READY: u32 = 1;

crate::shared_struct! {
    /// The managed-segment header. Every field is written once by the
    /// creator before `state` becomes ready; `state` is the only field that
    /// changes afterwards.
    #[derive(Debug)]
    pub struct Header {
        /// [`MAGIC`].
        pub magic: AtomicU64,
        /// [`FORMAT_VERSION`].
        pub version: AtomicU32,
        /// [`STATE_INITIALIZING`] or [`STATE_READY`].
        pub state: AtomicU32,
        /// [`HEADER_SIZE`].
        pub header_size: AtomicU32,
        /// A [`Kind`](crate::Kind) code.
        pub kind: AtomicU32,
        /// A [`Lifetime`] code.
        pub lifetime: AtomicU32,
        /// `usize::BITS` of the creator.
        pub word_bits: AtomicU32,
        /// FNV-1a of the layout (type name, size, alignment, endianness,
        /// word size).
        pub fingerprint: AtomicU64,
        /// Size of the payload's main type.
        pub type_size: AtomicU64,
        /// Alignment of the payload's main type.
        pub type_align: AtomicU64,
        /// Whole segment size, header included.
        pub total_size: AtomicU64,
        /// Bytes after the header.
        pub payload_size: AtomicU64,
        /// Creator's uid.
        pub creator_uid: AtomicU32,
        /// Creator's pid.
        pub creator_pid: AtomicU32,
        /// Creator's start time (clock ticks after boot).
        pub creator_start: AtomicU64,
        /// Creation time, nanoseconds since the Unix epoch.
        pub created_ns: AtomicU64,
        /// Length of the type name.
        pub type_name_len: AtomicU32,
        /// Reserved, zero.
        pub reserved: AtomicU32,
        /// The payload's main type name, UTF-8, not NUL-terminated.
        pub type_name: [AtomicU8; TYPE_NAME_LEN],
    }
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SIZE);

/// The size of a field, for the check below that each accessor reads as
/// many bytes as its field holds.
const fn field_size<F>(_: fn(&Header) -> &F) -> usize {
    std::mem::size_of::<F>()
}

/// Declares, for every field of [`Header`], its offset in [`offsets`] (by
/// `offset_of!`), and for every scalar field an accessor on [`HeaderBytes`]
/// that reads it there, checked at compile time to be as wide as the field.
macro_rules! header_fields {
    (
        { $( $(#[$doc:meta])* $field:ident: $ty:ty => $konst:ident; )* }
        $(#[$name_doc:meta])* $name:ident: bytes => $name_konst:ident;
    ) => {
        /// Byte offsets of the header's fields, derived from [`Header`]
        /// (the format fixes them; see the table in the [module
        /// docs](super)).
        pub mod offsets {
            $( $(#[$doc])* pub const $konst: usize = std::mem::offset_of!(super::Header, $field); )*
            $(#[$name_doc])*
            pub const $name_konst: usize = std::mem::offset_of!(super::Header, $name);
        }

        // Each accessor reads as many bytes as its field holds, and the
        // fields listed here cover the whole struct (it has no padding).
        const _: () = {
            $( assert!(field_size(|h: &Header| &h.$field) == std::mem::size_of::<$ty>()); )*
            assert!(
                0 $( + field_size(|h: &Header| &h.$field) )*
                    + field_size(|h: &Header| &h.$name)
                    == std::mem::size_of::<Header>()
            );
        };

        impl HeaderBytes {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $field(&self) -> $ty {
                    <$ty>::from_ne_bytes(self.at::<{ std::mem::size_of::<$ty>() }>(offsets::$konst))
                }
            )*
        }
    };
}

header_fields! {
    {
        /// `magic`: `"SHMEXSEG"` as a native-endian `u64`.
        magic: u64 => MAGIC;
        /// `version`: the header format version.
        version: u32 => VERSION;
        /// `state`: initializing (0) or ready (1).
        state: u32 => STATE;
        /// `header_size`: bytes before the payload.
        header_size: u32 => HEADER_SIZE;
        /// `kind`: a kind code.
        kind: u32 => KIND;
        /// `lifetime`: a lifetime code.
        lifetime: u32 => LIFETIME;
        /// `word_bits`: `usize::BITS` of the creator.
        word_bits: u32 => WORD_BITS;
        /// `fingerprint`: of the payload's layout.
        fingerprint: u64 => FINGERPRINT;
        /// `type_size`: size of the payload's main type.
        type_size: u64 => TYPE_SIZE;
        /// `type_align`: alignment of the payload's main type.
        type_align: u64 => TYPE_ALIGN;
        /// `total_size`: the whole segment, header included.
        total_size: u64 => TOTAL_SIZE;
        /// `payload_size`: bytes after the header.
        payload_size: u64 => PAYLOAD_SIZE;
        /// `creator_uid`: the creator's uid.
        creator_uid: u32 => CREATOR_UID;
        /// `creator_pid`: the creator's pid.
        creator_pid: u32 => CREATOR_PID;
        /// `creator_start`: the creator's start time.
        creator_start: u64 => CREATOR_START;
        /// `created_ns`: creation time, nanoseconds since the Unix epoch.
        created_ns: u64 => CREATED_NS;
        /// `type_name_len`: length of the type name.
        type_name_len: u32 => TYPE_NAME_LEN;
        /// `reserved`: zero.
        reserved: u32 => RESERVED;
    }
    /// `type_name`: the payload's main type name.
    type_name: bytes => TYPE_NAME;
}

/// A copy of a segment's header bytes, read field by field through
/// accessors named after [`Header`]'s fields, at the [`offsets`] derived
/// from it. One copy is one snapshot, so validation sees fields that belong
/// together, and it needs no typed view (which a read-only attach refuses).
#[derive(Clone, Debug)]
pub struct HeaderBytes([u8; HEADER_SIZE]);

impl HeaderBytes {
    /// Copies the first [`HEADER_SIZE`] bytes of `seg`; a shorter segment
    /// is copied whole and reads as zeros past its end (check its length
    /// first where that matters).
    #[must_use]
    pub fn read(seg: &Segment) -> HeaderBytes {
        let mut bytes = [0u8; HEADER_SIZE];
        let n = seg.len().min(HEADER_SIZE);
        // Cannot fail: the range is inside the segment.
        let _ = seg.read_at(0, &mut bytes[..n]);
        HeaderBytes(bytes)
    }

    /// The stored type name's bytes: `type_name_len` of them, at most
    /// [`TYPE_NAME_LEN`].
    #[must_use]
    pub fn type_name(&self) -> &[u8] {
        let len = (self.type_name_len() as usize).min(TYPE_NAME_LEN);
        &self.0[offsets::TYPE_NAME..offsets::TYPE_NAME + len]
    }

    fn at<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.0[offset..offset + N]);
        b
    }
}

/// Whether a segment outlives its creator on purpose (design rule 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lifetime {
    /// Outlives its creator on purpose (a store others come back to);
    /// never stale.
    Persistent,
    /// Belongs to the processes attached to it (a rendezvous between
    /// them); stale once they are all dead.
    Owned,
}

impl Lifetime {
    /// The code stored in the header.
    #[must_use]
    pub fn code(self) -> u32 {
        match self {
            Lifetime::Persistent => 1,
            Lifetime::Owned => 2,
        }
    }

    /// The lifetime for a stored code.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Lifetime> {
        match code {
            1 => Some(Lifetime::Persistent),
            2 => Some(Lifetime::Owned),
            _ => None,
        }
    }

    /// Lowercase name for listings.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Lifetime::Persistent => "persistent",
            Lifetime::Owned => "owned",
        }
    }
}

/// The layout of a payload's main type, as recorded in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Type name (`std::any::type_name`), at most [`TYPE_NAME_LEN`] bytes.
    pub type_name: String,
    /// `size_of`.
    pub size: u64,
    /// `align_of`.
    pub align: u64,
}

impl Layout {
    /// The layout of `T`.
    #[must_use]
    pub fn of<T>() -> Layout {
        let name = std::any::type_name::<T>();
        let mut end = name.len().min(TYPE_NAME_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        Layout {
            type_name: name[..end].to_owned(),
            size: std::mem::size_of::<T>() as u64,
            align: std::mem::align_of::<T>() as u64,
        }
    }

    /// The same layout, marked with a protocol version: bump it whenever the
    /// meaning of the payload's fields changes while their sizes do not, so
    /// that processes of the two versions refuse each other's segments
    /// instead of misreading them.
    #[must_use]
    pub fn versioned(mut self, version: u32) -> Layout {
        let suffix = format!("@v{version}");
        let mut end = self.type_name.len().min(TYPE_NAME_LEN - suffix.len());
        while !self.type_name.is_char_boundary(end) {
            end -= 1;
        }
        self.type_name.truncate(end);
        self.type_name.push_str(&suffix);
        self
    }

    /// FNV-1a over the type name, size, alignment, endianness and word size.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(self.type_name.as_bytes());
        eat(&self.size.to_le_bytes());
        eat(&self.align.to_le_bytes());
        eat(&[u8::from(cfg!(target_endian = "little")), usize::BITS as u8]);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::{Header, offsets};

    /// The offsets derived from the struct are the format's fixed byte
    /// positions, the table in the module docs: reordering or resizing a
    /// field fails here, never silently in a reader.
    #[test]
    fn offsets_are_the_documented_positions() {
        let table = [
            ("magic", offsets::MAGIC, 0),
            ("version", offsets::VERSION, 8),
            ("state", offsets::STATE, 12),
            ("header_size", offsets::HEADER_SIZE, 16),
            ("kind", offsets::KIND, 20),
            ("lifetime", offsets::LIFETIME, 24),
            ("word_bits", offsets::WORD_BITS, 28),
            ("fingerprint", offsets::FINGERPRINT, 32),
            ("type_size", offsets::TYPE_SIZE, 40),
            ("type_align", offsets::TYPE_ALIGN, 48),
            ("total_size", offsets::TOTAL_SIZE, 56),
            ("payload_size", offsets::PAYLOAD_SIZE, 64),
            ("creator_uid", offsets::CREATOR_UID, 72),
            ("creator_pid", offsets::CREATOR_PID, 76),
            ("creator_start", offsets::CREATOR_START, 80),
            ("created_ns", offsets::CREATED_NS, 88),
            ("type_name_len", offsets::TYPE_NAME_LEN, 96),
            ("reserved", offsets::RESERVED, 100),
            ("type_name", offsets::TYPE_NAME, 104),
        ];
        for (field, derived, fixed) in table {
            assert_eq!(derived, fixed, "offset of {field}");
        }
        assert_eq!(std::mem::size_of::<Header>(), 200);
        assert_eq!(std::mem::align_of::<Header>(), 8);
    }
}
