//! The 64-byte header that journal files and checkpoints share.
//!
//! ```text
//!  0 [u8; 8] magic          8 u32 version          12 u32 header length (64)
//! 16 u64 exchange id       24 u64 sequence number  32 u64 time, ns
//! 40 [u8; 20] the format's own fields (zero if none)
//! 60 u32 crc32c of bytes 0..60
//! ```
#![forbid(unsafe_code)]

/// Bytes of a header.
pub(crate) const LEN: usize = 64;

/// What a header holds besides its magic and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub exchange_id: u64,
    pub seq: u64,
    pub time_ns: u64,
    pub extra: [u8; 20],
}

impl Header {
    /// The bytes of this header for a format of `magic` and `version`.
    pub(crate) fn encode(&self, magic: &[u8; 8], version: u32) -> [u8; LEN] {
        let mut h = [0; LEN];
        h[0..8].copy_from_slice(magic);
        h[8..12].copy_from_slice(&version.to_le_bytes());
        h[12..16].copy_from_slice(&(LEN as u32).to_le_bytes());
        h[16..24].copy_from_slice(&self.exchange_id.to_le_bytes());
        h[24..32].copy_from_slice(&self.seq.to_le_bytes());
        h[32..40].copy_from_slice(&self.time_ns.to_le_bytes());
        h[40..60].copy_from_slice(&self.extra);
        let crc = crc32c::crc32c(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Reads the header at the start of `bytes`: its magic, checksum,
    /// version and length must be right.
    pub(crate) fn decode(bytes: &[u8], magic: &[u8; 8], version: u32) -> Result<Header, String> {
        let Some(h) = bytes.get(..LEN) else {
            return Err(format!(
                "it is {} bytes, shorter than a header",
                bytes.len()
            ));
        };
        let w32 = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let w64 = |i: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        if h[0..8] != *magic {
            return Err(format!(
                "it does not start with {}",
                String::from_utf8_lossy(magic)
            ));
        }
        let crc = crc32c::crc32c(&h[..60]);
        if crc != w32(60) {
            return Err(format!(
                "header checksum mismatch: stored {:#010x}, computed {crc:#010x}",
                w32(60)
            ));
        }
        if w32(8) != version || w32(12) as usize != LEN {
            return Err(format!(
                "version {} with a {}-byte header, but this shmex reads version {version}",
                w32(8),
                w32(12)
            ));
        }
        let mut extra = [0; 20];
        extra.copy_from_slice(&h[40..60]);
        Ok(Header {
            exchange_id: w64(16),
            seq: w64(24),
            time_ns: w64(32),
            extra,
        })
    }
}
