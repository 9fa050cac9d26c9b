//! Segments that start with a validated header.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::header::{self, HEADER_SIZE, Header, HeaderBytes, Layout, Lifetime, offsets};
use crate::sync::ProcessId;
use crate::{Access, Error, Kind, Segment, SegmentId, Shared};

/// How to create a managed segment.
#[derive(Clone, Debug)]
pub struct ManagedOptions {
    /// What it holds.
    pub kind: Kind,
    /// Whether it outlives its creator.
    pub lifetime: Lifetime,
    /// Permission bits (default 0600).
    pub mode: u32,
    /// The payload's main type; openers must expect the same.
    pub layout: Layout,
    /// Bytes after the header (at least `layout.size`).
    pub payload_size: u64,
}

/// A segment whose header has been written (by us) or validated (by us).
///
/// The payload starts at offset [`HEADER_SIZE`]; the `payload_*` methods
/// count from there.
#[derive(Debug)]
pub struct Managed {
    seg: Segment,
}

/// How long openers wait for a creator to mark its segment ready.
pub const DEFAULT_READY_WAIT: Duration = Duration::from_secs(2);

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Managed {
    /// Creates a segment exclusively, writes its header, runs `init` on it
    /// (to lay out the payload), then marks it ready. If `init` fails, the
    /// segment is removed and its error returned.
    ///
    /// # Errors
    ///
    /// As [`Segment::create`], or `init`'s error.
    pub fn create<E: From<Error>>(
        id: &SegmentId,
        opts: &ManagedOptions,
        init: impl FnOnce(&Managed) -> Result<(), E>,
    ) -> Result<Managed, E> {
        if opts.payload_size < opts.layout.size {
            return Err(Error::Invalid(format!(
                "payload of {} bytes cannot hold a {} of {} bytes",
                opts.payload_size, opts.layout.type_name, opts.layout.size
            ))
            .into());
        }
        let total = opts
            .payload_size
            .checked_add(HEADER_SIZE as u64)
            .ok_or_else(|| {
                Error::Invalid(format!("payload size {} is too large", opts.payload_size))
            })?;
        // A POSIX segment gets its name only once it is ready: no other
        // process ever sees it half made, and a creator that dies first
        // leaves nothing behind.
        let seg = Segment::create_unnamed(id, total, opts.mode)?;
        let mut m = Managed { seg };
        let written = (|| {
            let h = m.header();
            let me = ProcessId::current();
            h.version.store(header::FORMAT_VERSION, Ordering::Relaxed);
            h.header_size.store(HEADER_SIZE as u32, Ordering::Relaxed);
            h.kind.store(opts.kind.code(), Ordering::Relaxed);
            h.lifetime.store(opts.lifetime.code(), Ordering::Relaxed);
            h.word_bits.store(usize::BITS, Ordering::Relaxed);
            h.fingerprint
                .store(opts.layout.fingerprint(), Ordering::Relaxed);
            h.type_size.store(opts.layout.size, Ordering::Relaxed);
            h.type_align.store(opts.layout.align, Ordering::Relaxed);
            h.total_size.store(total, Ordering::Relaxed);
            h.payload_size.store(opts.payload_size, Ordering::Relaxed);
            h.creator_uid.store(crate::sys::euid(), Ordering::Relaxed);
            h.creator_pid.store(me.pid, Ordering::Relaxed);
            h.creator_start.store(me.start_time, Ordering::Relaxed);
            h.created_ns.store(now_ns(), Ordering::Relaxed);
            let name = opts.layout.type_name.as_bytes();
            h.type_name_len.store(name.len() as u32, Ordering::Relaxed);
            for (dst, b) in h.type_name.iter().zip(name) {
                dst.store(*b, Ordering::Relaxed);
            }
            h.magic.store(header::MAGIC, Ordering::Release);
            init(&m)?;
            h.state.store(header::STATE_READY, Ordering::Release);
            m.check_intact().map_err(Error::from)?;
            Ok::<(), E>(())
        })()
        .and_then(|()| Ok(m.seg.publish()?));
        match written {
            Ok(()) => Ok(m),
            Err(e) => {
                let _ = m.seg.remove_this();
                Err(e)
            }
        }
    }

    /// Opens a managed segment holding `kind` with payload type `layout`,
    /// waiting at most `wait` for its creator to finish, and validates the
    /// whole header.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::NotReady`],
    /// [`Error::Foreign`] for a segment without a managed header, or
    /// [`Error::Incompatible`] saying exactly what differs.
    pub fn open(
        id: &SegmentId,
        access: Access,
        kind: Kind,
        layout: &Layout,
        wait: Duration,
    ) -> Result<Managed, Error> {
        let m = Self::open_any(id, access, wait)?;
        m.expect(kind, layout)?;
        Ok(m)
    }

    /// Opens any managed segment, validating the header but not the kind
    /// or payload type (for tools that work on segments of every kind).
    ///
    /// # Errors
    ///
    /// As [`Managed::open`].
    pub fn open_any(id: &SegmentId, access: Access, wait: Duration) -> Result<Managed, Error> {
        let start = Instant::now();
        loop {
            let attempt = Segment::open(id, access).and_then(|seg| {
                let checked = check(&seg);
                // Zeros read from a file that shrank say nothing of it.
                seg.check_intact()?;
                checked?;
                Ok(seg)
            });
            match attempt {
                Ok(seg) => return Ok(Managed { seg }),
                Err(
                    Error::NotReady { .. } | Error::Incompatible { .. } | Error::Foreign { .. },
                ) if start.elapsed() < wait && still_initializing(id) => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(Error::NotReady { what, .. }) => {
                    return Err(Error::NotReady {
                        what,
                        waited_ms: start.elapsed().as_millis() as u64,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Validates an observer's view (no liveness lock, read-only).
    pub(crate) fn observe(seg: Segment) -> Result<Managed, Error> {
        check(&seg)?;
        Ok(Managed { seg })
    }

    /// Checks that the segment holds `kind` with payload type `layout`.
    ///
    /// # Errors
    ///
    /// [`Error::Incompatible`] naming what differs.
    pub fn expect(&self, kind: Kind, layout: &Layout) -> Result<(), Error> {
        let what = self.seg.id().to_string();
        let have = self.kind();
        if have != kind {
            return Err(Error::Incompatible {
                what,
                reason: format!("holds {}, not {}", have.a(), kind.a()),
            });
        }
        let (name, size, align) = (
            self.type_name().escape_debug().to_string(),
            self.type_size(),
            self.type_align(),
        );
        if name != layout.type_name || size != layout.size || align != layout.align {
            return Err(Error::Incompatible {
                what,
                reason: format!(
                    "holds a {name} of {size} bytes (align {align}) but this shmex expects a {} of {} bytes (align {}): it was made by another version of shmex",
                    layout.type_name, layout.size, layout.align
                ),
            });
        }
        Ok(())
    }

    /// The header, for the creator (which holds the segment read-write).
    fn header(&self) -> &Header {
        self.seg
            .view::<Header>(0)
            .expect("a created segment is read-write and holds a header")
    }

    /// A copy of the header, to read fields from (a read-only attach
    /// cannot take a typed view).
    fn snapshot(&self) -> HeaderBytes {
        HeaderBytes::read(&self.seg)
    }

    /// The underlying segment (offsets count from byte 0, the header).
    #[must_use]
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The key or name.
    #[must_use]
    pub fn id(&self) -> &SegmentId {
        self.seg.id()
    }

    /// What it holds (named if this crate knows the code or it was
    /// registered with [`register_kind`](crate::register_kind)).
    #[must_use]
    pub fn kind(&self) -> Kind {
        Kind::from_code(self.snapshot().kind())
    }

    /// Its lifetime, if the code is known.
    #[must_use]
    pub fn lifetime(&self) -> Option<Lifetime> {
        Lifetime::from_code(self.snapshot().lifetime())
    }

    /// The payload's main type name.
    #[must_use]
    pub fn type_name(&self) -> String {
        String::from_utf8_lossy(self.snapshot().type_name()).into_owned()
    }

    /// The payload's main type size.
    #[must_use]
    pub fn type_size(&self) -> u64 {
        self.snapshot().type_size()
    }

    /// The payload's main type alignment.
    #[must_use]
    pub fn type_align(&self) -> u64 {
        self.snapshot().type_align()
    }

    /// The creating process.
    #[must_use]
    pub fn creator(&self) -> ProcessId {
        let h = self.snapshot();
        ProcessId {
            pid: h.creator_pid(),
            start_time: h.creator_start(),
        }
    }

    /// The creator's uid.
    #[must_use]
    pub fn creator_uid(&self) -> u32 {
        self.snapshot().creator_uid()
    }

    /// Creation time, nanoseconds since the Unix epoch.
    #[must_use]
    pub fn created_ns(&self) -> u64 {
        self.snapshot().created_ns()
    }

    /// Bytes after the header.
    #[must_use]
    pub fn payload_len(&self) -> usize {
        self.seg.len() - HEADER_SIZE
    }

    /// A typed view at `offset` into the payload.
    ///
    /// # Errors
    ///
    /// As [`Segment::view`].
    pub fn payload_view<T: Shared>(&self, offset: usize) -> Result<&T, Error> {
        self.seg.view(
            HEADER_SIZE
                .checked_add(offset)
                .ok_or_else(|| Error::OutOfBounds("offset overflow".into()))?,
        )
    }

    /// A typed slice at `offset` into the payload.
    ///
    /// # Errors
    ///
    /// As [`Segment::view_slice`].
    pub fn payload_slice<T: Shared>(&self, offset: usize, count: usize) -> Result<&[T], Error> {
        self.seg.view_slice(
            HEADER_SIZE
                .checked_add(offset)
                .ok_or_else(|| Error::OutOfBounds("offset overflow".into()))?,
            count,
        )
    }

    /// Copies payload bytes at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] past the end.
    pub fn read_payload(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.bounds(offset, buf.len())?;
        self.seg.read_at(HEADER_SIZE + offset, buf)
    }

    /// Copies `data` to payload `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] past the end; [`Error::ReadOnly`] on a
    /// read-only attach.
    pub fn write_payload(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.bounds(offset, data.len())?;
        self.seg.write_at(HEADER_SIZE + offset, data)
    }

    fn bounds(&self, offset: usize, len: usize) -> Result<(), Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.payload_len() => Ok(()),
            _ => Err(Error::OutOfBounds(format!(
                "offset {offset} + length {len} is past the end of segment {} (payload of {} bytes)",
                self.seg.id(),
                self.payload_len()
            ))),
        }
    }

    /// As [`Segment::check_intact`]: `Err` once the segment shrank under
    /// this process.
    ///
    /// # Errors
    ///
    /// [`Truncated`](crate::Truncated).
    #[inline]
    pub fn check_intact(&self) -> Result<(), crate::Truncated> {
        self.seg.check_intact()
    }

    /// Removes the segment (this one, by id). Attached processes keep it
    /// until they detach.
    ///
    /// # Errors
    ///
    /// As [`Segment::remove_this`].
    pub fn remove(&self) -> Result<(), Error> {
        self.seg.remove_this()
    }
}

/// A segment that exists but whose header is still all zeroes (or whose
/// POSIX file is still empty) may be one its creator is writing now.
fn still_initializing(id: &SegmentId) -> bool {
    match Segment::open_observer(id) {
        // An empty POSIX file (never anything that is no regular file).
        Err(Error::Incompatible { .. }) => Segment::posix_empty(id),
        Ok(seg) => {
            // Too short for the state word: a creator may still be sizing it.
            seg.len() < offsets::STATE + std::mem::size_of::<u32>() || {
                let h = HeaderBytes::read(&seg);
                (h.magic() == 0 || h.magic() == header::MAGIC)
                    && h.state() == header::STATE_INITIALIZING
            }
        }
        Err(_) => false,
    }
}

/// Validates the header of `seg`: every field, in the order that gives the
/// most useful message.
fn check(seg: &Segment) -> Result<(), Error> {
    let what = seg.id().to_string();
    let bad = |reason: String| Error::Incompatible {
        what: what.clone(),
        reason,
    };
    let foreign = |reason: String| Error::Foreign {
        what: what.clone(),
        reason,
    };
    if seg.len() < HEADER_SIZE {
        return Err(foreign(format!(
            "is {} bytes, too small for a shmex header: it was not made by shmex",
            seg.len()
        )));
    }
    let h = HeaderBytes::read(seg);
    let magic = h.magic();
    if magic == 0 && h.state() == header::STATE_INITIALIZING {
        return Err(Error::NotReady {
            what: what.clone(),
            waited_ms: 0,
        });
    }
    if magic == header::MAGIC.swap_bytes() {
        return Err(bad(
            "was made on a machine of the other byte order and cannot be used here".into(),
        ));
    }
    if magic != header::MAGIC {
        return Err(foreign("is not a shmex segment (no shmex header)".into()));
    }
    let version = h.version();
    if version != header::FORMAT_VERSION {
        return Err(bad(format!(
            "has header format version {version}, but this shmex reads version {}: use the shmex that made it",
            header::FORMAT_VERSION
        )));
    }
    let bits = h.word_bits();
    if bits != usize::BITS {
        return Err(bad(format!(
            "was made on a {bits}-bit machine; this one is {}-bit",
            usize::BITS
        )));
    }
    if h.header_size() as usize != HEADER_SIZE {
        return Err(bad(format!(
            "is corrupted: header size {} instead of {HEADER_SIZE}",
            h.header_size()
        )));
    }
    let (total, payload) = (h.total_size(), h.payload_size());
    if total != seg.len() as u64 || payload.checked_add(HEADER_SIZE as u64) != Some(total) {
        return Err(bad(format!(
            "is corrupted: its header says {total} bytes (payload {payload}) but the segment has {}",
            seg.len()
        )));
    }
    // Any other code is a kind of a layer above: `expect` judges it.
    if h.kind() == 0 {
        return Err(bad("is corrupted: its kind code is 0".into()));
    }
    if Lifetime::from_code(h.lifetime()).is_none() {
        return Err(bad(format!(
            "is corrupted or newer: unknown lifetime code {}",
            h.lifetime()
        )));
    }
    if h.type_name_len() as usize > header::TYPE_NAME_LEN {
        return Err(bad("is corrupted: type name too long".into()));
    }
    let layout = Layout {
        type_name: String::from_utf8(h.type_name().to_vec())
            .map_err(|_| bad("is corrupted: type name is not UTF-8".into()))?,
        size: h.type_size(),
        align: h.type_align(),
    };
    if layout.fingerprint() != h.fingerprint() {
        return Err(bad(
            "is corrupted: its layout fingerprint does not match its layout".into(),
        ));
    }
    if layout.size > payload {
        return Err(bad(format!(
            "is corrupted: type of {} bytes in a payload of {payload}",
            layout.size
        )));
    }
    match h.state() {
        header::STATE_READY => Ok(()),
        header::STATE_INITIALIZING => Err(Error::NotReady { what, waited_ms: 0 }),
        s => Err(bad(format!("is corrupted: unknown state {s}"))),
    }
}
