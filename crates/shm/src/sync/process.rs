//! Whether a process is alive, immune to pid reuse.

/// A process named by its pid *and* its start time (clock ticks after boot,
/// field 22 of `/proc/PID/stat`), so that a recycled pid is not mistaken for
/// the process that used it before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessId {
    /// The pid, in this pid namespace.
    pub pid: u32,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
}

/// Parses `/proc/PID/stat`: returns (state, start time).
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: skip to the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl ProcessId {
    /// This process.
    #[must_use]
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId::of(pid).unwrap_or(ProcessId { pid, start_time: 0 })
    }

    /// The process that has `pid` now, if any.
    #[must_use]
    pub fn of(pid: u32) -> Option<ProcessId> {
        stat(pid).map(|(_, start_time)| ProcessId { pid, start_time })
    }

    /// Whether this very process still runs: the pid exists, is not a
    /// zombie, and started when this one did. A start time of 0 (unknown)
    /// trusts the pid alone.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        if self.pid == 0 {
            return false;
        }
        match stat(self.pid) {
            Some((state, start)) => {
                !matches!(state, 'Z' | 'X' | 'x')
                    && (self.start_time == 0 || start == self.start_time)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_and_a_reused_pid_is_not() {
        let me = ProcessId::current();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        let reused = ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn a_reaped_child_is_dead_and_a_zombie_too() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id());
        // Not yet reaped: a zombie once it exits.
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Some(id) = id {
            assert!(!id.is_alive(), "a zombie counts as dead");
        }
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(!id.is_alive());
        }
    }
}
