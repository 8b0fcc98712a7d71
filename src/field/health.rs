//! Whether the box has shown it is healthy, and when it is too late: `[update] validate`
//! (its run lasted `healthy_after`; it touched `$BOXINIT_VALIDATE`; its first watchdog
//! heartbeat), against the boot's deadline. Pure: what was observed in, a verdict out.

use std::time::{Duration, Instant, SystemTime};

use crate::config::update::Validate;

/// The file the box touches (or writes) to say it is healthy.
pub const VALIDATE_FILE: &str = "/run/boxinit/validate";

/// How often the validation file is looked at while no verdict is in.
pub const POLL: Duration = Duration::from_millis(250);

/// A verdict on the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy, and how it showed it.
    Healthy(String),
    /// The deadline passed first.
    Overdue,
}

/// What was observed of the box so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// Its current run started then (None: it is not running).
    pub running_since: Option<Instant>,
    /// It touched the validation file.
    pub touched: bool,
    /// Its watchdog heartbeat came at least once.
    pub heartbeat: bool,
}

/// The verdict at `now`, or None (with when to look again) while there is none yet.
pub fn judge(
    validate: Validate,
    healthy_after: Duration,
    deadline: Instant,
    now: Instant,
    seen: Seen,
) -> Result<Verdict, Instant> {
    if seen.touched {
        return Ok(Verdict::Healthy(format!("it touched {VALIDATE_FILE}")));
    }
    if validate == Validate::Heartbeat && seen.heartbeat {
        return Ok(Verdict::Healthy("its first heartbeat came".into()));
    }
    let up_at = seen
        .running_since
        .filter(|_| validate == Validate::Uptime)
        .map(|since| crate::events::deadline_after(since, healthy_after));
    if up_at.is_some_and(|at| at <= now) {
        return Ok(Verdict::Healthy(format!(
            "it ran {} without exiting",
            crate::config::format_duration(healthy_after)
        )));
    }
    if now >= deadline {
        return Ok(Verdict::Overdue);
    }
    let poll = crate::events::deadline_after(now, POLL);
    Err(up_at
        .into_iter()
        .chain([deadline, poll])
        .min()
        .unwrap_or(deadline))
}

/// The validation file's modification time, if it exists.
pub fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let deadline = t0 + s(60);
        let running = Seen {
            running_since: Some(t0),
            ..Seen::default()
        };
        let touched = Seen {
            touched: true,
            ..Seen::default()
        };
        let beat = Seen {
            heartbeat: true,
            running_since: Some(t0),
            ..Seen::default()
        };
        use Validate::*;
        let healthy = |r: Result<Verdict, Instant>| matches!(r, Ok(Verdict::Healthy(_)));
        // uptime: healthy once the run lasted healthy_after
        assert!(!healthy(judge(Uptime, s(10), deadline, t0 + s(9), running)));
        assert!(healthy(judge(Uptime, s(10), deadline, t0 + s(10), running)));
        // a box that is not running has not lasted
        assert!(!healthy(judge(
            Uptime,
            s(10),
            deadline,
            t0 + s(30),
            Seen::default()
        )));
        // the file validates whatever the mode; uptime does not count in file mode
        for mode in [Uptime, File, Heartbeat] {
            assert!(healthy(judge(mode, s(10), deadline, t0, touched)), "{mode}");
        }
        assert!(!healthy(judge(File, s(10), deadline, t0 + s(30), running)));
        // the heartbeat counts only in heartbeat mode
        assert!(healthy(judge(Heartbeat, s(10), deadline, t0, beat)));
        assert!(!healthy(judge(File, s(10), deadline, t0, beat)));
        // past the deadline without a sign: overdue
        assert_eq!(
            judge(File, s(10), deadline, t0 + s(60), running),
            Ok(Verdict::Overdue)
        );
        // while waiting: look again at the poll interval at the latest
        let again = judge(Uptime, s(10), deadline, t0, running).unwrap_err();
        assert_eq!(again, t0 + POLL);
        let again = judge(Uptime, s(10), deadline, t0 + s(10) - POLL / 2, running);
        assert_eq!(again.unwrap_err(), t0 + s(10));
    }
}
