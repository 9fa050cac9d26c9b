//! `eventfd(2)`: a kernel counter behind a file descriptor, which benchmarks
//! measure as a baseline for waking another process.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Creates an eventfd with counter 0, close-on-exec. Read and write it as a
/// `File` of 8-byte native-endian counts.
///
/// # Errors
///
/// The errno, e.g. `EMFILE` when out of descriptors.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes only integers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn counts_add_up_and_reading_resets() {
        let mut f = std::fs::File::from(super::eventfd().unwrap());
        f.write_all(&3u64.to_ne_bytes()).unwrap();
        f.write_all(&4u64.to_ne_bytes()).unwrap();
        let mut b = [0u8; 8];
        f.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 7);
    }
}
