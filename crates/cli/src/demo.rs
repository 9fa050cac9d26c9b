//! `shmex demo`: the whole system on built-in defaults, start to finish,
//! in real separate processes, leaving nothing behind.

use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use shm::SegmentId;

/// Flags of `shmex demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Removes the demo's segments even if a step fails.
struct Guard(Vec<SegmentId>);

impl Drop for Guard {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = shm::Segment::remove(id);
        }
    }
}

pub fn step(text: &str) {
    println!("\n==> {text}");
}

/// Runs `shmex ARGS` as a separate process, echoing the command line and
/// indenting its output.
pub fn shmex(args: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the shmex binary")?;
    println!("    $ shmex {}", args.join(" "));
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running shmex {}", args.join(" ")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in text.lines() {
        println!("      {line}");
    }
    if !out.status.success() {
        anyhow::bail!(
            "demo step `shmex {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text)
}

pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    println!("shmex demo: every step below runs in its own process, as separate programs would.");
    segments()?;
    alphabet()?;
    crate::cmd::channel::demo()?;
    crate::cmd::exchange::demo()?;
    step("done: nothing is left behind (check with `shmex segment ls`, `ipcs -m`, `ls /dev/shm`).");
    Ok(ExitCode::SUCCESS)
}

fn segments() -> anyhow::Result<()> {
    let name = format!("shmex-demo-{}", std::process::id());
    let _guard = Guard(vec![SegmentId::posix(name.clone())?]);
    step("A segment's life. Process A creates a 4 KiB POSIX segment (mode 0600, exclusive):");
    shmex(&["segment", "create", "--name", &name, "--size", "4K"])?;
    step("Process A writes into it and exits; the segment stays, as in the seed:");
    shmex(&["segment", "write", "--name", &name, "hello from process A"])?;
    step("Process B, a different process, attaches and reads the same bytes:");
    let got = shmex(&["segment", "read", "--name", &name, "--len", "20"])?;
    anyhow::ensure!(got == "hello from process A", "process B read {got:?}");
    step("Every segment has a header shmex validates; `inspect` shows it:");
    shmex(&["segment", "inspect", "--name", &name])?;
    step("Unlike the seed, shmex removes what it made:");
    shmex(&["segment", "rm", "--name", &name])?;
    Ok(())
}

fn alphabet() -> anyhow::Result<()> {
    // A key of our own, so the demo never collides with a seed program
    // running on 5678.
    let key = 0x5300_0000 | (std::process::id() as i32 & 0xFFFF);
    let key_text = key.to_string();
    let _guard = Guard(vec![SegmentId::sysv(key)?]);
    step(&format!(
        "The seed's producer and consumer on System V key {key}: the consumer starts first and waits for the whole alphabet."
    ));
    let exe = std::env::current_exe()?;
    println!("    $ shmex alphabet consume --key {key} &");
    let consumer = Command::new(&exe)
        .args(["alphabet", "consume", "--key", &key_text, "--timeout", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the consumer")?;
    shmex(&["alphabet", "produce", "--key", &key_text, "--timeout", "10"])?;
    let out = consumer.wait_with_output()?;
    let letters = String::from_utf8_lossy(&out.stdout);
    println!("      consumer printed: {}", letters.trim_end());
    anyhow::ensure!(out.status.success(), "the consumer failed");
    anyhow::ensure!(
        letters.trim_end() == "abcdefghijklmnopqrstuvwxyz",
        "the consumer printed {letters:?}"
    );
    println!(
        "    all 26 letters arrived, the producer saw '*' without spinning, and removed the segment."
    );
    Ok(())
}
