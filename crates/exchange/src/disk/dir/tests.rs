//! Tests of the parent module.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::disk::testutil::{identity, tempdir};

#[test]
fn default_dirs_follow_xdg() {
    let name = SegmentId::posix("shmex-exchange").unwrap();
    let key = SegmentId::sysv(0x162e).unwrap();
    let os = |s: &'static str| Some(OsStr::new(s));
    assert_eq!(
        default_dir(&name, os("/state"), os("/home/a")).unwrap(),
        Path::new("/state/shmex/shmex-exchange")
    );
    assert_eq!(
        default_dir(&key, None, os("/home/a")).unwrap(),
        Path::new("/home/a/.local/state/shmex/key-0x0000162e")
    );
    assert_eq!(
        default_dir(&name, os(""), os("/home/a")).unwrap(),
        Path::new("/home/a/.local/state/shmex/shmex-exchange")
    );
    assert_eq!(
        default_dir(&name, os("relative"), os("/h")).unwrap(),
        Path::new("/h/.local/state/shmex/shmex-exchange")
    );
    assert!(matches!(
        default_dir(&name, os("x"), os("")),
        Err(DiskError::NoStateDir)
    ));
    assert!(matches!(
        default_dir(&name, None, None),
        Err(DiskError::NoStateDir)
    ));
    assert_eq!(dir_name(&SegmentId::sysv(-1).unwrap()), "key-0xffffffff");
}

#[test]
fn identity_round_trips() {
    for seg in [
        SegmentId::posix("a-b").unwrap(),
        SegmentId::sysv(-5).unwrap(),
    ] {
        let mut id = identity(u64::MAX - 3);
        id.segment = seg;
        let text = id.to_toml();
        assert_eq!(Identity::from_toml(&text).unwrap(), id, "{text}");
    }
    let text = identity(1).to_toml();
    let newer = text.replace("version = 1", "version = 2");
    assert!(
        Identity::from_toml(&newer)
            .unwrap_err()
            .contains("version 2")
    );
    let bad = text.replace("mode = \"0600\"", "mode = \"999\"");
    assert!(Identity::from_toml(&bad).unwrap_err().contains("mode"));
    assert!(Identity::from_toml("x = 1").is_err());
}

#[test]
fn created_directories_are_private_and_reopen() {
    let t = tempdir();
    let path = t.path().join("state/shmex/ex");
    let id = identity(42);
    let d = JournalDir::create(&path, &id, false).unwrap();
    assert_eq!(d.path(), path);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let f = std::fs::metadata(path.join(IDENTITY)).unwrap();
    assert_eq!(f.permissions().mode() & 0o777, 0o600);
    assert_eq!(d.names().unwrap(), [IDENTITY]);
    let d2 = JournalDir::open(&path, Some(42)).unwrap();
    assert_eq!(d2.identity(), &id);
    assert!(matches!(
        JournalDir::open(&path, Some(43)),
        Err(DiskError::Foreign {
            expected: 43,
            found: 42,
            ..
        })
    ));
    // A second exchange in the same place is refused, or replaces it.
    let e = JournalDir::create(&path, &identity(7), false).unwrap_err();
    assert!(
        matches!(
            e,
            DiskError::Occupied {
                exchange_id: 42,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("--purge"));
    d.write_atomic("journal-00000000000000000001.log", b"x")
        .unwrap();
    let d3 = JournalDir::create(&path, &identity(7), true).unwrap();
    assert_eq!(d3.names().unwrap(), [IDENTITY]);
    assert_eq!(JournalDir::open(&path, None).unwrap().exchange_id(), 7);
    d3.purge().unwrap();
    assert!(!path.exists());
}

#[test]
fn empty_directories_are_used_and_foreign_ones_refused() {
    let t = tempdir();
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    JournalDir::create(&empty, &identity(1), false).unwrap();
    let full = t.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    let e = JournalDir::create(&full, &identity(1), true).unwrap_err();
    assert!(
        matches!(&e, DiskError::NotOurs { entry, .. } if entry == "notes.txt"),
        "{e}"
    );
    assert!(full.join("notes.txt").exists());
    // purge leaves what it did not make, and says so.
    std::fs::remove_file(full.join("notes.txt")).unwrap();
    let d = JournalDir::create(&full, &identity(1), false).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    assert!(matches!(d.purge(), Err(DiskError::NotOurs { .. })));
    assert!(full.join("notes.txt").exists());
    assert!(!full.join(IDENTITY).exists());
}

#[test]
fn unsafe_directories_are_refused() {
    let t = tempdir();
    let real = t.path().join("real");
    JournalDir::create(&real, &identity(1), false).unwrap();
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let e = JournalDir::open(&link, None).unwrap_err();
    assert!(matches!(e, DiskError::Symlink { .. }), "{e}");
    assert!(e.to_string().contains("symbolic link"));
    assert!(matches!(
        JournalDir::create(&link, &identity(1), true),
        Err(DiskError::Symlink { .. })
    ));
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o770)).unwrap();
    let e = JournalDir::open(&real, None).unwrap_err();
    assert!(matches!(e, DiskError::Writable { mode: 0o770, .. }), "{e}");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = t.path().join("file");
    std::fs::write(&file, "").unwrap();
    assert!(matches!(
        JournalDir::open(&file, None),
        Err(DiskError::NotADirectory { .. })
    ));
    assert!(matches!(
        JournalDir::open(&t.path().join("none"), None),
        Err(DiskError::Missing { .. })
    ));
    // A symbolic link inside is not followed either.
    std::fs::remove_file(real.join(IDENTITY)).unwrap();
    std::os::unix::fs::symlink(&file, real.join(IDENTITY)).unwrap();
    assert!(matches!(
        JournalDir::open(&real, None),
        Err(DiskError::Symlink { .. })
    ));
    std::fs::remove_file(real.join(IDENTITY)).unwrap();
    std::fs::create_dir(real.join(IDENTITY)).unwrap();
    assert!(matches!(
        JournalDir::open(&real, None),
        Err(DiskError::NotAFile { .. })
    ));
    std::fs::remove_dir(real.join(IDENTITY)).unwrap();
    std::fs::write(real.join(IDENTITY), "format = 1").unwrap();
    assert!(matches!(
        JournalDir::open(&real, None),
        Err(DiskError::Identity { .. })
    ));
}

#[test]
fn directories_and_files_of_another_user_are_refused() {
    // Only root can give a file away.
    if shm::sys::euid() != 0 {
        return;
    }
    let t = tempdir();
    let path = t.path().join("j");
    let d = JournalDir::create(&path, &identity(1), false).unwrap();
    std::os::unix::fs::chown(path.join(IDENTITY), Some(65534), None).unwrap();
    let e = JournalDir::open(&path, None).unwrap_err();
    assert!(
        matches!(
            e,
            DiskError::Owner {
                owner: 65534,
                euid: 0,
                ..
            }
        ),
        "{e}"
    );
    std::os::unix::fs::chown(path.join(IDENTITY), Some(0), None).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let e = JournalDir::open(&path, None).unwrap_err();
    assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
    std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    d.purge().unwrap();
}

#[test]
fn exchange_ids_are_random() {
    let a = new_exchange_id().unwrap();
    let b = new_exchange_id().unwrap();
    assert_ne!(a, b);
    assert_ne!(a, 0);
}
