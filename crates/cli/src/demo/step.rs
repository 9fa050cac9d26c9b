//! How the demo shows a step, and runs `shmex` as a separate process.

use std::process::Stdio;

use anyhow::Context as _;

use crate::support::exe;

/// Announces a step.
pub fn step(text: &str) {
    println!("\n==> {text}");
}

/// Runs `shmex ARGS` as a separate process, echoing the command line and
/// indenting its output.
pub fn shmex(args: &[&str]) -> anyhow::Result<String> {
    println!("    $ shmex {}", args.join(" "));
    let out = exe::output(
        exe::command()?
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
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
