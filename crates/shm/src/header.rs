//! The header at the start of every managed segment (the design's rule 2).
//!
//! 256 bytes, all atomics, at offset 0; the payload follows at
//! [`HEADER_SIZE`]. The byte offsets of the fields are part of the format
//! (tests and other tools read them), so they are fixed here.

// The `Shared` impl that `shared_struct!` generates is the only unsafe
// code here; the macro checks every field at compile time.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64};

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
        /// A [`Kind`] code.
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

/// Byte offsets of header fields (stable format).
pub mod offsets {
    /// `magic`.
    pub const MAGIC: usize = 0;
    /// `version`.
    pub const VERSION: usize = 8;
    /// `state`.
    pub const STATE: usize = 12;
    /// `kind`.
    pub const KIND: usize = 20;
    /// `lifetime`.
    pub const LIFETIME: usize = 24;
    /// `fingerprint`.
    pub const FINGERPRINT: usize = 32;
    /// `type_size`.
    pub const TYPE_SIZE: usize = 40;
}

/// What a managed segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Plain bytes (`shmex segment create`).
    Bytes,
    /// A producer/consumer ring.
    Channel,
    /// A currency exchange.
    Exchange,
}

impl Kind {
    /// The code stored in the header.
    #[must_use]
    pub fn code(self) -> u32 {
        match self {
            Kind::Bytes => 1,
            Kind::Channel => 2,
            Kind::Exchange => 3,
        }
    }

    /// The kind for a stored code.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Kind> {
        match code {
            1 => Some(Kind::Bytes),
            2 => Some(Kind::Channel),
            3 => Some(Kind::Exchange),
            _ => None,
        }
    }

    /// Lowercase name for listings.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bytes => "bytes",
            Kind::Channel => "channel",
            Kind::Exchange => "exchange",
        }
    }
}

/// Whether a segment outlives its creator on purpose (design rule 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lifetime {
    /// Outlives its creator (an exchange, a plain `segment create`); never
    /// stale.
    Persistent,
    /// Belongs to the processes attached to it (a channel, a held segment);
    /// stale once they are all dead.
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
