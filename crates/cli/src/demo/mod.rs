//! `shmex demo`: the whole system on built-in defaults, start to finish,
//! in real separate processes, leaving nothing behind (or, with `--keep`,
//! a segment and an exchange under fixed names, to explore). Each part is
//! a file of its own; they share [`step`]'s way of showing and running a
//! step.
//!
//! A termination signal (Ctrl-C, SIGTERM, SIGHUP) stops the demo in its
//! current step: its child processes are killed, everything it made is
//! removed (also with `--keep`), and it exits with status 128 + the signal.

mod alphabet;
mod channel;
mod exchange;
mod segment;
mod step;

use std::process::ExitCode;

use anyhow::bail;
use shm::SegmentId;

use crate::support::error::Interrupted;
use crate::support::scratch;

/// Flags of `shmex demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leave the demo's segment and exchange behind, to explore with
    /// `shmex segment` and `shmex exchange`, under the fixed names
    /// PREFIX-segment and PREFIX-exchange; the demo ends by saying how to
    /// remove them.
    #[arg(long)]
    pub keep: bool,
    /// The start of the names that `--keep` leaves.
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "shmex-demo",
        requires = "keep"
    )]
    pub prefix: String,
}

/// The demo's segment and exchange: fixed names that stay with `--keep`,
/// names of this process's own otherwise.
pub struct Names {
    pub segment: SegmentId,
    pub exchange: SegmentId,
    pub keep: bool,
}

impl Names {
    fn new(args: &Args) -> anyhow::Result<Names> {
        if !args.keep {
            return Ok(Names {
                segment: SegmentId::posix(scratch::name("demo"))?,
                exchange: SegmentId::posix(scratch::unique_name("demo-exchange"))?,
                keep: false,
            });
        }
        let names = Names {
            segment: SegmentId::posix(format!("{}-segment", args.prefix))?,
            exchange: SegmentId::posix(format!("{}-exchange", args.prefix))?,
            keep: true,
        };
        // Refused before anything is made: an earlier `--keep` left them,
        // or they are someone else's.
        for (id, remove) in [
            (&names.segment, names.segment_rm()),
            (&names.exchange, names.exchange_rm()),
        ] {
            if shm::inspect(id).is_ok() {
                bail!(
                    "segment {id} exists already (an earlier `shmex demo --keep`?): remove it with `{remove}`, or choose other names with --prefix"
                );
            }
        }
        Ok(names)
    }

    /// The command that removes the kept segment.
    fn segment_rm(&self) -> String {
        format!("shmex segment rm --name {}", posix_name(&self.segment))
    }

    /// The command that removes the kept exchange.
    fn exchange_rm(&self) -> String {
        format!(
            "shmex exchange --exchange {} destroy",
            posix_name(&self.exchange)
        )
    }
}

/// The name of a POSIX segment, as `--name` and `--exchange` take it.
pub fn posix_name(id: &SegmentId) -> String {
    match id {
        SegmentId::Posix(n) => n.clone(),
        SegmentId::SysV(k) => k.to_string(),
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    // Before anything is made, so that a signal at any point finds the
    // guards that remove it.
    shm::sys::catch_termination();
    Interrupted::or_signal("the demo", show(args))
}

fn show(args: &Args) -> anyhow::Result<ExitCode> {
    let names = Names::new(args)?;
    println!("shmex demo: every step below runs in its own process, as separate programs would.");
    let segment = segment::run(&names)?;
    alphabet::run()?;
    channel::run()?;
    let exchange = exchange::run(&names)?;
    if !names.keep {
        step::step(
            "done: nothing is left behind (check with `shmex segment ls`, `ipcs -m`, `ls /dev/shm`).",
        );
        return Ok(ExitCode::SUCCESS);
    }
    Interrupted::check("the demo")?;
    segment.keep();
    if let Some(e) = exchange {
        e.keep();
    }
    let (seg, ex) = (posix_name(&names.segment), posix_name(&names.exchange));
    step::step("done: --keep left two segments for you to explore:");
    println!("    {seg}, Process A's segment:");
    println!("      shmex segment inspect --name {seg}");
    println!("      shmex segment read --name {seg} --len 20");
    println!("    {ex}, the exchange after the traders' run:");
    println!("      shmex exchange --exchange {ex} quote");
    println!("      shmex exchange --exchange {ex} accounts");
    println!("      shmex exchange --exchange {ex} journal --tail 10");
    println!("      shmex exchange --exchange {ex} trade --account alice");
    println!("    remove them with:");
    println!("      {}", names.segment_rm());
    println!("      {}", names.exchange_rm());
    Ok(ExitCode::SUCCESS)
}
