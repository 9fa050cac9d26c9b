//! The id parsers on arbitrary text: `SegmentId::parse_key` (System V keys
//! as users type them) and `SegmentId::posix` (names). Neither may panic;
//! what they accept must be usable and print on one line, and a parsed key
//! must read back from its own spellings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shm::{Error, SegmentId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SegmentId::parse_key(text) {
        Ok(SegmentId::SysV(key)) => {
            assert_ne!(key, 0, "IPC_PRIVATE accepted from {text:?}");
            let t = text.trim();
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b"-xXo".contains(&b)),
                "{text:?} accepted as {key}"
            );
            let unsigned = t.strip_prefix('-').unwrap_or(t);
            assert!(
                !unsigned.contains('-'),
                "{text:?}: a sign inside the number"
            );
            for spelled in [key.to_string(), format!("{:#x}", key as u32)] {
                assert_eq!(
                    SegmentId::parse_key(&spelled).ok(),
                    Some(SegmentId::SysV(key))
                );
            }
        }
        Ok(other) => panic!("parse_key gave {other:?}"),
        Err(Error::Invalid(msg)) => assert!(!msg.contains('\n'), "{msg:?}"),
        Err(e) => panic!("parse_key gave {e:?}"),
    }
    match SegmentId::posix(text) {
        Ok(id) => {
            let SegmentId::Posix(name) = &id else {
                panic!("posix gave {id:?}")
            };
            assert!(!name.is_empty() && name.len() <= 255, "{name:?}");
            assert!(!name.contains('/') && !name.contains('\0'), "{name:?}");
            assert!(name != "." && name != "..");
            assert!(!id.to_string().chars().any(char::is_control), "{id}");
        }
        Err(Error::Invalid(msg)) => assert!(!msg.contains('\n'), "{msg:?}"),
        Err(e) => panic!("posix gave {e:?}"),
    }
});
