//! Segments are private by default: another user (uid 65534, through
//! `setpriv`) gets a one-line "permission denied" with exit status 1 on a
//! `0600` segment and changes nothing; `--mode 0666` lets it in.
//!
//! Needs root (to switch user) and util-linux's `setpriv`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::process::{assert_refused, show};
use crate::support::segment::{both_backends, bytes_of, cmd, create, remove, segment_ok};
use crate::support::{Cleanup, SegmentId, exists};

const NOBODY: &str = "65534";

/// The `shmex` binary where uid 65534 can run it: the built one if every
/// directory above it lets others through, else a copy in a fresh
/// world-readable directory (kept alive by the returned guard).
pub(crate) fn reachable_shmex() -> (Option<tempfile::TempDir>, PathBuf) {
    let built = crate::support::process::bin();
    if runs_as_nobody(&built) {
        return (None, built);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let copy = dir.path().join("shmex");
    std::fs::copy(&built, &copy).expect("copy shmex");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod shmex");
    assert!(
        runs_as_nobody(&copy),
        "uid {NOBODY} cannot run {}",
        copy.display()
    );
    (Some(dir), copy)
}

/// `shmex ARGS` as uid 65534, through `setpriv`, with no stdin.
pub(crate) fn nobody_cmd(bin: &Path, args: &[String]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
    ])
    .arg(bin)
    .args(args)
    .current_dir("/")
    .stdin(Stdio::null());
    c
}

pub(crate) fn nobody(bin: &Path, args: &[String]) -> Output {
    nobody_cmd(bin, args).output().expect("run setpriv")
}

fn runs_as_nobody(bin: &Path) -> bool {
    nobody(bin, &["--version".to_owned()]).status.success()
}

/// Runs `f` with a `shmex` that uid 65534 can run on one segment of each
/// backend, managed and raw, each created with `create_post` beforehand
/// and removed afterwards.
fn on_each_segment(create_post: &[&str], mut f: impl FnMut(&Path, &SegmentId, bool)) {
    assert_eq!(
        shm::sys::euid(),
        0,
        "this test switches user, so it must run as root"
    );
    let (_guard, bin) = reachable_shmex();
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "perm") {
        for raw in [false, true] {
            create(&id, raw, create_post);
            f(&bin, &id, raw);
            remove(&id);
        }
    }
}

#[test]
fn another_user_is_denied_a_0600_segment() {
    on_each_segment(&["--size", "4096"], |bin, id, _| {
        segment_ok("write", id, &["secret"]);
        let before = bytes_of(id);

        for (pre, post) in [
            (&["segment", "read"][..], &[][..]),
            (&["segment", "read"], &["--len", "6"]),
            (&["segment", "write"], &["stolen"]),
            (&["segment", "write"], &["--offset", "10", "x"]),
            (&["segment", "rm"], &[]),
        ] {
            let out = nobody(bin, &cmd(pre, id, post));
            assert_refused(&out, 1, &["permission denied"]);
            assert!(out.stdout.is_empty(), "{id} {pre:?}: {}", show(&out));
            assert!(
                exists(id),
                "{id}: {pre:?} {post:?} as uid {NOBODY} removed it"
            );
            assert_eq!(
                bytes_of(id),
                before,
                "{id}: {pre:?} {post:?} as uid {NOBODY} changed it"
            );
        }
    });
}

#[test]
fn another_user_may_use_a_0666_segment_on_purpose() {
    on_each_segment(&["--size", "4096", "--mode", "0666"], |bin, id, raw| {
        // Root's segment: uid 65534 attaches to it only when it says so.
        let write = cmd(
            &["segment", "write"],
            id,
            &["--allow-owner", "root", "from nobody"],
        );
        let out = nobody(bin, &write);
        assert_eq!(out.status.code(), Some(0), "{id} raw={raw}: {}", show(&out));
        let out = nobody(
            bin,
            &cmd(
                &["segment", "read"],
                id,
                &["--len", "11", "--allow-owner", "0"],
            ),
        );
        assert_eq!(out.status.code(), Some(0), "{id} raw={raw}: {}", show(&out));
        assert_eq!(out.stdout, b"from nobody");
        // And the owner sees what the other user wrote.
        let out = segment_ok("read", id, &["--len", "11"]);
        assert_eq!(out.stdout, b"from nobody");
    });
}
