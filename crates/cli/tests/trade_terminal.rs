//! The trade loop's two faces. Piped input (or a file) gets exactly the
//! answers it always got, byte for byte, with no prompt: the expected
//! output in `fixtures/trade_piped/` was captured from the release binary
//! before the terminal mode existed. A person at a terminal (tested in
//! `tmux`, which must be installed) gets a banner, a prompt, line editing
//! and history; an empty line is ignored; `quit` exits 0.
//!
//! Should the loop's answers change on purpose, regenerate the expected
//! output with `SHMEX_BLESS=1` and read the diff before committing it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::exchange::{Backend, Exchange};
use crate::support::process::{assert_ok, run_bounded, show, stdout, wait_exit};
use crate::support::wait_until;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trade_piped")
        .join(name)
}

/// Opens alice's account (opening is explicit: `exchange open`).
pub fn open_alice(ex: &Exchange) {
    assert_ok(&ex.run(&["open", "alice"]));
}

/// Compares `got` with the fixture `name`, or rewrites the fixture under
/// `SHMEX_BLESS=1`.
#[track_caller]
fn assert_fixture(got: &[u8], name: &str) {
    let path = fixture(name);
    if std::env::var_os("SHMEX_BLESS").is_some() {
        std::fs::write(&path, got).expect("write fixture");
        return;
    }
    let want = std::fs::read(&path).expect("read fixture");
    assert!(
        got == want.as_slice(),
        "the piped trade loop's output differs from {}:\n--- expected\n{}\n--- got\n{}",
        path.display(),
        String::from_utf8_lossy(&want),
        String::from_utf8_lossy(got)
    );
}

fn piped(json: bool, out: &str) {
    let input = std::fs::read(fixture("input")).expect("read input");
    let mut args = vec!["trade", "--account", "alice"];
    if json {
        args.push("--json");
    }
    // Through a pipe.
    let ex = Exchange::init(Backend::Posix, "trade-piped", &[]);
    open_alice(&ex);
    let o = ex.run_in(&args, &input);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(o.stderr.is_empty(), "{}", show(&o));
    assert_fixture(&o.stdout, out);
    // From a file.
    let ex = Exchange::init(Backend::Posix, "trade-file", &[]);
    open_alice(&ex);
    let input = std::fs::File::open(fixture("input")).expect("open input");
    let mut child = ex
        .cmd(&args)
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmex");
    // The answers are a few KiB: they fit in the pipe until read.
    let status = wait_exit(&mut child, "the trade loop");
    let mut got = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut got)
        .expect("read stdout");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_fixture(&got, out);
}

#[test]
fn piped_text_is_byte_identical() {
    piped(false, "text.out");
}

#[test]
fn piped_json_is_byte_identical() {
    piped(true, "json.out");
}

/// A tmux server of this test's own, on a socket in a temporary
/// directory, running one command in a window wide enough not to wrap;
/// killed when dropped.
struct Tmux {
    dir: tempfile::TempDir,
}

impl Tmux {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("tmux.sock")
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(self.socket());
        c
    }

    /// Starts `command` (a shell command line) in a new session.
    fn start(command: &str) -> Tmux {
        if Command::new("tmux").arg("-V").output().is_err() {
            panic!(
                "this test runs the trade loop in tmux, which is not installed: `apt-get install tmux` (.ci/run installs it)"
            );
        }
        let t = Tmux {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let o = run_bounded(
            t.tmux()
                .args(["new-session", "-d", "-x", "200", "-y", "50"])
                .arg(command),
            b"",
        );
        assert!(o.status.success(), "tmux new-session: {}", show(&o));
        t
    }

    fn keys(&self, keys: &[&str]) {
        let o = run_bounded(self.tmux().arg("send-keys").args(keys), b"");
        assert!(o.status.success(), "tmux send-keys: {}", show(&o));
    }

    /// What the window shows, less the empty lines at its bottom.
    fn screen(&self) -> String {
        let o = run_bounded(self.tmux().args(["capture-pane", "-p"]), b"");
        assert!(o.status.success(), "tmux capture-pane: {}", show(&o));
        stdout(&o).trim_end().to_owned()
    }

    #[track_caller]
    fn wait_for_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = crate::support::wait_for(|| {
            last = self.screen();
            cond(&last).then(|| last.clone())
        });
        found.unwrap_or_else(|| panic!("the screen never showed {what}:\n{last}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .tmux()
            .arg("kill-server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn on_a_terminal_a_prompt_editing_and_history() {
    let ex = Exchange::init(Backend::Posix, "trade-tty", &[]);
    open_alice(&ex);
    let status = tempfile::NamedTempFile::new().expect("temp file");
    let command = format!(
        "'{}' exchange {} trade --account alice; echo \"exit $?\" > '{}'",
        crate::support::process::bin().display(),
        ex.select.join(" "),
        status.path().display()
    );
    let tmux = Tmux::start(&command);

    // The banner names `help`, and the prompt waits.
    let screen = tmux.wait_for_screen("the banner and the prompt", |s| {
        s.lines().last() == Some("alice>")
    });
    let banner = screen.lines().next().unwrap_or_default();
    assert!(
        banner.contains("alice") && banner.contains("`help`") && banner.contains("`quit`"),
        "{screen}"
    );

    // A line typed, with a typo mended by the editor, and its answer.
    tmux.keys(&["buy DOLAR 1", "Left", "Left", "Left", "Left", "L", "Enter"]);
    tmux.wait_for_screen("the answer to the first buy", |s| {
        s.contains("alice> buy DOLLAR 1\nalice bought 1.00 DOLLAR at 13.72 for 13.72 TRY (seq ")
            && s.lines().last() == Some("alice>")
    });

    // An empty line is ignored: a new prompt, no error.
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_screen("a second prompt", |s| {
        s.lines().filter(|l| l.trim_end() == "alice>").count() == 2
    });
    assert!(!screen.contains("error"), "{screen}");

    // History: Up brings the buy back.
    tmux.keys(&["Up", "Enter"]);
    let screen = tmux.wait_for_screen("the answer to the repeated buy", |s| {
        s.matches("alice bought 1.00 DOLLAR").count() == 2 && s.lines().last() == Some("alice>")
    });

    // `quit` answers and exits 0.
    tmux.keys(&["quit", "Enter"]);
    wait_until("the loop has exited", || {
        std::fs::read_to_string(status.path()).is_ok_and(|s| s.ends_with('\n'))
    });
    let code = std::fs::read_to_string(status.path()).expect("status");
    assert_eq!(code.trim(), "exit 0", "{screen}");
    let balances = ex.accounts();
    let alice = balances
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "alice"))
        .unwrap_or_else(|| panic!("no alice: {balances}"));
    assert_eq!(alice["balances"]["DOLLAR"], "2.00", "{balances}");
}
