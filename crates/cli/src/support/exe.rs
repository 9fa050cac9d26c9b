//! This very binary, run again: as a benchmark's or the demo's worker, or
//! as a separate `shmex` process; and child processes that never outlive
//! the one that started them, even when a termination signal stops it.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;

use super::error::Interrupted;

/// This very binary, to re-execute: `/proc/self/exe` still names it when
/// a rebuild has replaced the file on disk.
pub fn self_exe() -> anyhow::Result<PathBuf> {
    let proc = PathBuf::from("/proc/self/exe");
    if proc.exists() {
        return Ok(proc);
    }
    std::env::current_exe().context("cannot find the shmex binary to re-execute")
}

/// A command that runs this binary again, under the name it was started
/// with (so that it calls itself what this process does).
pub fn command() -> anyhow::Result<Command> {
    use std::os::unix::process::CommandExt as _;

    let mut cmd = Command::new(self_exe()?);
    if let Some(name) = std::env::args_os().next() {
        cmd.arg0(name);
    }
    Ok(cmd)
}

/// Runs `cmd` to its end and collects its piped output (see
/// [`Process::output`]).
pub fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    Process::spawn(cmd)?.output()
}

/// Runs `cmd` to its end (see [`Process::wait`]).
pub fn status(cmd: &mut Command) -> anyhow::Result<ExitStatus> {
    Process::spawn(cmd)?.wait()
}

/// A child process that is killed and reaped when this is dropped before
/// it ended, and whose waits a termination signal ends at once (once
/// [`shm::sys::catch_termination`] is in force): so that whatever stops
/// its parent, a failed step or Ctrl-C, stops it too.
#[derive(Debug)]
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `cmd`.
    pub fn spawn(cmd: &mut Command) -> anyhow::Result<Process> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        Ok(Process { child })
    }

    /// The child, for its pipes and its id.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for the child to end. A termination signal ends the wait with
    /// [`Interrupted`], the child killed.
    pub fn wait(&mut self) -> anyhow::Result<ExitStatus> {
        let mut nap = Duration::from_micros(100);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            // Sleeps as a futex wait that the signal handler wakes.
            if let Some(signal) = shm::sys::wait_for_termination(Some(nap)) {
                self.kill();
                return Err(Interrupted {
                    what: "the wait for a child process",
                    signal,
                }
                .into());
            }
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// Waits as [`Process::wait`] does, and returns what the child wrote
    /// to its piped stdout and stderr (each read by a thread of its own,
    /// so that no full pipe blocks it).
    pub fn output(mut self) -> anyhow::Result<Output> {
        let stdout = self.child.stdout.take().map(drain);
        let stderr = self.child.stderr.take().map(drain);
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout: joined(stdout).context("cannot read the child's stdout")?,
            stderr: joined(stderr).context("cannot read the child's stderr")?,
        })
    }

    /// Kills and reaps the child, if it still runs.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).map(|_| bytes)
    })
}

fn joined(reader: Option<JoinHandle<std::io::Result<Vec<u8>>>>) -> std::io::Result<Vec<u8>> {
    match reader {
        None => Ok(Vec::new()),
        Some(r) => r
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread panicked"))),
    }
}
