//! Errors of the channel's operations, one enum per operation.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

/// One end of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The producer.
    Sender,
    /// The consumer.
    Receiver,
}

impl Side {
    /// The other end.
    #[must_use]
    pub fn other(self) -> Side {
        match self {
            Side::Sender => Side::Receiver,
            Side::Receiver => Side::Sender,
        }
    }

    /// Where this side's word sits in a per-side pair (`[T; 2]`) of the
    /// shared layout: part of the in-segment format.
    #[inline]
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) const fn index(self) -> usize {
        match self {
            Side::Sender => 0,
            Side::Receiver => 1,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Sender => "sender",
            Side::Receiver => "receiver",
        })
    }
}

/// Why a channel could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The segment layer refused (permissions, no space, a foreign or
    /// incompatible segment by that name, …).
    #[error(transparent)]
    Segment(#[from] shm::Error),
    /// That end of the channel is taken by a live process.
    #[error(
        "channel {channel} already has a {side} (pid {pid}): a channel has one sender and one receiver"
    )]
    Busy {
        /// The channel.
        channel: String,
        /// The end that is taken.
        side: Side,
        /// Who holds it.
        pid: u32,
    },
    /// A capacity the ring cannot have.
    #[error("invalid capacity {capacity}: a channel holds messages of 1 byte to 1 TiB")]
    Capacity {
        /// The capacity asked for.
        capacity: u64,
    },
    /// The segment kept changing under the opener (created and removed by
    /// others in a loop).
    #[error(
        "channel {channel} could not be attached: it was removed and re-created repeatedly while opening; try again"
    )]
    Unstable {
        /// The channel.
        channel: String,
    },
    /// The segment's ring description does not match its size.
    #[error("channel {channel} is corrupted: {reason}; remove it with `shmex segment rm`")]
    Corrupt {
        /// The channel.
        channel: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a message could not be sent (or space reserved).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The message is larger than the channel's capacity.
    #[error(
        "message of {len} bytes is larger than the capacity of channel {channel} ({max} bytes): create the channel with a larger capacity"
    )]
    TooLarge {
        /// The channel.
        channel: String,
        /// The message's length.
        len: usize,
        /// The largest message the channel takes.
        max: usize,
    },
    /// No room now (`try_send`, `try_reserve`).
    #[error("channel {channel} is full")]
    Full {
        /// The channel.
        channel: String,
    },
    /// No room within the timeout.
    #[error("timed out after {} s waiting for room in channel {channel}", secs(*after))]
    Timeout {
        /// The channel.
        channel: String,
        /// How long it waited.
        after: Duration,
    },
    /// The receiver closed its end: nothing sent now would be read.
    #[error("the receiver of channel {channel} has closed it")]
    ReceiverClosed {
        /// The channel.
        channel: String,
    },
    /// The receiver died without closing.
    #[error("peer gone: the receiver of channel {channel} (pid {pid}) died")]
    PeerGone {
        /// The channel.
        channel: String,
        /// The receiver's pid.
        pid: u32,
    },
    /// A termination signal arrived while waiting.
    #[error("interrupted by signal {signal} while sending on channel {channel}")]
    Interrupted {
        /// The channel.
        channel: String,
        /// The signal number.
        signal: i32,
    },
    /// Another process truncated the channel's segment under this one.
    #[error(transparent)]
    Truncated(#[from] shm::Truncated),
    /// The channel's shared state is impossible: another process wrote
    /// into the segment.
    #[error("channel {channel} is corrupted: {what}; another process wrote into it")]
    Corrupted {
        /// The channel.
        channel: String,
        /// What was found.
        what: Corruption,
    },
}

/// Why no message was received.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing now (`try_recv`).
    #[error("channel {channel} is empty")]
    Empty {
        /// The channel.
        channel: String,
    },
    /// Nothing within the timeout.
    #[error("timed out after {} s waiting for a message on channel {channel}", secs(*after))]
    Timeout {
        /// The channel.
        channel: String,
        /// How long it waited.
        after: Duration,
    },
    /// The sender died without closing; every message it had committed was
    /// received first.
    #[error("peer gone: the sender of channel {channel} (pid {pid}) died before closing it")]
    PeerGone {
        /// The channel.
        channel: String,
        /// The sender's pid.
        pid: u32,
    },
    /// The sender stopped before the end of its input (it was interrupted);
    /// every message it had committed was received first.
    #[error("the sender of channel {channel} stopped before the end of its input")]
    Aborted {
        /// The channel.
        channel: String,
    },
    /// A termination signal arrived while waiting.
    #[error("interrupted by signal {signal} while receiving on channel {channel}")]
    Interrupted {
        /// The channel.
        channel: String,
        /// The signal number.
        signal: i32,
    },
    /// Another process truncated the channel's segment under this one:
    /// nothing read from it since is a message.
    #[error(transparent)]
    Truncated(#[from] shm::Truncated),
    /// The channel's shared state is impossible: another process wrote
    /// into the segment. Messages received before may have been changed.
    #[error("channel {channel} is corrupted: {what}; another process wrote into it")]
    Corrupted {
        /// The channel.
        channel: String,
        /// What was found.
        what: Corruption,
    },
}

/// Shared state of a channel that its protocol never writes: what a
/// process that can write the segment, other than its two ends, left there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Corruption {
    /// A frame header that cannot be where it is.
    Frame {
        /// Ring offset of the header.
        offset: usize,
        /// What it held.
        value: u64,
    },
    /// A consumer position that the receiver did not publish, or that the
    /// sender cannot accept (not a multiple of 8, behind an earlier one,
    /// or past what was sent).
    Tail {
        /// What it held.
        value: u64,
    },
    /// A side's state word holds no state.
    State {
        /// Whose word.
        side: Side,
        /// What it held.
        value: u32,
    },
    /// The sender closed the stream at another position than the one the
    /// receiver reached.
    End {
        /// Bytes the sender says it committed.
        closed_at: u64,
        /// Bytes the receiver passed.
        reached: u64,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Corruption::Frame { offset, value } => {
                write!(
                    f,
                    "impossible frame header {value:#x} at ring offset {offset}"
                )
            }
            Corruption::Tail { value } => write!(f, "impossible consumer position {value:#x}"),
            Corruption::State { side, value } => write!(f, "impossible {side} state {value:#x}"),
            Corruption::End { closed_at, reached } => write!(
                f,
                "the sender closed it at byte {closed_at} but the receiver reached byte {reached}"
            ),
        }
    }
}

fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}
