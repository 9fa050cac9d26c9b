//! The flags of `shmex bench`, which every benchmark reads.

/// Flags of `shmex bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum, default_value = "all")]
    pub what: What,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Fewer iterations, for a quick look (figures are noisier).
    #[arg(long)]
    pub quick: bool,
    /// Repeat each figure this many times and report the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// Where the durable rows write their journals and databases (a
    /// directory made for the run inside it, removed at the end) [default:
    /// where journals go by default, $XDG_STATE_HOME/shmex].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

/// Which benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// The producer/consumer channel against pipes, sockets and eventfd.
    Channel,
    /// The exchange: trades per second, lock hold times, snapshots.
    Exchange,
    /// Both.
    All,
}
