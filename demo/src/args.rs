//! The words the demo box understands, as arguments (from init.toml's
//! `[box] args = [...]`) or as lines typed at its `demo> ` prompt.

use std::path::PathBuf;
use std::time::Duration;

/// What the box runs with no arguments at all.
pub const DEFAULT_ARGS: &[&str] = &["orphans=5", "check-zombies", "interactive"];

/// One line per word, printed by `help` at the prompt.
pub const HELP: &[&str] = &[
    "orphans=N         leave N orphans for PID 1 to reap",
    "check-zombies     wait up to 5 s for the orphans to be reaped, report zombies",
    "reap=N            hand PID 1 N zombies at once and time how fast it reaps them",
    "sleep=DURATION    sleep, e.g. 500ms or 2s",
    "exit=N            exit with status N (0-255)",
    "crash             abort (SIGABRT)",
    "write=PATH:TEXT   write TEXT and a newline to PATH (no fsync)",
    "slow-write=PATH:N write lines `line 1`..`line N` to PATH, 20 ms apart (no fsync)",
    "bulk-write=PATH:N write lines `line 1`..`line N` to PATH at once (no fsync): megabytes dirty",
    "hidden-writer=PATH  a process with an empty cmdline holding PATH open, ignoring SIGTERM",
    "hold-term         block SIGTERM: finish the work first (shutdown's grace period)",
    "poweroff-after=D  ask init to power off after D, while going on with the next words",
    "heartbeat=N       touch $BOXINIT_HEARTBEAT N times, 300 ms apart, then stop",
    "poweroff          ask init to power off (SIGUSR2 to PID 1)",
    "reboot            ask init to reboot (SIGTERM to PID 1)",
    "halt              ask init to halt (SIGUSR1 to PID 1)",
    "rss               show init's resident memory (VmRSS of PID 1, and its parts)",
    "ls=PATH           show PATH: kind (device numbers), mode, owner, group, link target",
    "cat=PATH          show the lines of PATH (e.g. a /sys attribute)",
    "wait-path=PATH    wait up to 20 s until PATH exists, then ls it",
    "wait-mount=PATH   wait up to 20 s until something is mounted on PATH",
    "wait-unmount=PATH wait up to 20 s until nothing is mounted on PATH",
    "modes=DIR/PRE*:N:MODE  wait until N files of DIR start with PRE and have MODE, count the modes",
    "chmod=DIR/PRE*:MODE    give the files of DIR that start with PRE the MODE",
    "uevent-flood=N    at real-time priority: N `change` uevents, then `add` for every block device",
    "clock             show the wall clock (UTC)",
    "addresses         show this machine's IPv4 addresses (with [network] dhcp, 10.0.2.15 in QEMU)",
    "serve=PORT        answer HTTP on PORT with one line, in the background (run --forward 8080:80)",
    "clock-not-before=PATH  say whether the clock is at or after the seconds in PATH",
    "wait              sleep forever",
    "interactive       read these words from stdin (not at the prompt)",
    "help              this list",
];

/// One thing for the box to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `orphans=N`: spawn a parent that spawns N children and exits at once.
    Orphans(u32),
    /// `check-zombies`: wait for the orphans to be reaped, then report zombies.
    CheckZombies,
    /// `reap=N`: hand PID 1 N zombies at once and time their reaping.
    Reap(u32),
    /// `sleep=DURATION`.
    Sleep(Duration),
    /// `exit=N`.
    Exit(u8),
    /// `crash`: abort.
    Crash,
    /// `write=PATH:TEXT`.
    Write {
        /// The file to create or truncate.
        path: PathBuf,
        /// Written followed by a newline.
        text: String,
    },
    /// `slow-write=PATH:N`.
    SlowWrite {
        /// The file to create or truncate.
        path: PathBuf,
        /// How many lines.
        lines: u32,
    },
    /// `bulk-write=PATH:N`: the lines of `slow-write` without the pauses, buffered, so that
    /// N = 1,500,000 leaves 18 MB of dirty pages for the shutdown's sync.
    BulkWrite {
        /// The file to create or truncate.
        path: PathBuf,
        /// How many lines.
        lines: u32,
    },
    /// `hidden-writer=PATH`: a process that empties its cmdline and holds PATH open.
    HiddenWriter(PathBuf),
    /// `hold-term`: block SIGTERM.
    HoldTerm,
    /// `poweroff-after=DURATION`: a thread asks init to power off later.
    PoweroffAfter(Duration),
    /// `heartbeat=N`: N heartbeats to the watchdog, then none.
    Heartbeat(u32),
    /// `poweroff`, `reboot` or `halt`: signal PID 1, then sleep forever.
    AskInit(InitRequest),
    /// `rss`: print PID 1's VmRSS.
    Rss,
    /// `ls=PATH`: describe one file (a device node, a link).
    Ls(PathBuf),
    /// `cat=PATH`: print a file's lines.
    Cat(PathBuf),
    /// `wait-path=PATH`: wait until it exists.
    WaitPath(PathBuf),
    /// `wait-mount=PATH` (true) or `wait-unmount=PATH` (false).
    WaitMount(PathBuf, bool),
    /// `modes=DIR/PREFIX*:N:MODE`: wait for N device nodes, all with MODE.
    Modes {
        /// Where the nodes are.
        dir: PathBuf,
        /// The start of their names.
        prefix: String,
        /// How many to wait for.
        count: usize,
        /// The mode they should all get.
        mode: u32,
    },
    /// `chmod=DIR/PREFIX*:MODE`.
    Chmod {
        /// Where the nodes are.
        dir: PathBuf,
        /// The start of their names.
        prefix: String,
        /// Their new mode.
        mode: u32,
    },
    /// `uevent-flood=N`: N uevents PID 1 cannot read as they come, then an `add` per disk.
    UeventFlood(u32),
    /// `clock`: print the wall clock.
    Clock,
    /// `addresses`: print the IPv4 addresses of this machine.
    Addresses,
    /// `serve=PORT`: answer HTTP on PORT from a thread.
    Serve(u16),
    /// `clock-not-before=PATH`: compare the clock with the seconds since 1970 in a file.
    ClockNotBefore(PathBuf),
    /// `wait`: sleep forever.
    Wait,
    /// `interactive`: read words from stdin.
    Interactive,
    /// `help`: list the words.
    Help,
}

/// What the box can ask of the init, with busybox-init's signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitRequest {
    /// SIGUSR2.
    Poweroff,
    /// SIGTERM.
    Reboot,
    /// SIGUSR1.
    Halt,
}

impl InitRequest {
    /// The word, as in `demo: asking init to <word>`.
    pub fn name(self) -> &'static str {
        match self {
            InitRequest::Poweroff => "poweroff",
            InitRequest::Reboot => "reboot",
            InitRequest::Halt => "halt",
        }
    }
}

/// Why a word could not be turned into an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a word the box knows: `demo: unknown argument <x>`.
    Unknown,
    /// A known key with a value that does not fit, and why.
    BadValue(String),
}

/// Parses one argument: `key=value` or a bare word.
pub fn parse(word: &str) -> Result<Action, ParseError> {
    let (key, value) = match word.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (word, None),
    };
    let bad = |why: &str| ParseError::BadValue(why.to_string());
    match (key, value) {
        ("orphans", Some(n)) => n
            .parse()
            .map(Action::Orphans)
            .map_err(|_| bad("expected a count, e.g. orphans=5")),
        ("reap", Some(n)) => n
            .parse()
            .map(Action::Reap)
            .map_err(|_| bad("expected a count, e.g. reap=200")),
        ("sleep", Some(d)) => parse_duration(d).map(Action::Sleep).map_err(|e| bad(&e)),
        ("exit", Some(n)) => n
            .parse()
            .map(Action::Exit)
            .map_err(|_| bad("expected a status from 0 to 255")),
        ("write", Some(spec)) => match spec.split_once(':') {
            Some((path, text)) if !path.is_empty() => Ok(Action::Write {
                path: PathBuf::from(path),
                text: text.to_string(),
            }),
            _ => Err(bad("expected write=PATH:TEXT")),
        },
        ("slow-write", Some(spec)) => match spec.rsplit_once(':') {
            Some((path, n)) if !path.is_empty() => n
                .parse()
                .map(|lines| Action::SlowWrite {
                    path: PathBuf::from(path),
                    lines,
                })
                .map_err(|_| bad("expected slow-write=PATH:N")),
            _ => Err(bad("expected slow-write=PATH:N")),
        },
        ("bulk-write", Some(spec)) => match spec.rsplit_once(':') {
            Some((path, n)) if !path.is_empty() => n
                .parse()
                .map(|lines| Action::BulkWrite {
                    path: PathBuf::from(path),
                    lines,
                })
                .map_err(|_| bad("expected bulk-write=PATH:N")),
            _ => Err(bad("expected bulk-write=PATH:N")),
        },
        ("poweroff-after", Some(d)) => parse_duration(d)
            .map(Action::PoweroffAfter)
            .map_err(|e| bad(&e)),
        ("heartbeat", Some(n)) => n
            .parse()
            .map(Action::Heartbeat)
            .map_err(|_| bad("expected a count, e.g. heartbeat=5")),
        ("hold-term", None) => Ok(Action::HoldTerm),
        ("hidden-writer", Some(path)) if !path.is_empty() => {
            Ok(Action::HiddenWriter(PathBuf::from(path)))
        }
        ("check-zombies", None) => Ok(Action::CheckZombies),
        ("crash", None) => Ok(Action::Crash),
        ("poweroff", None) => Ok(Action::AskInit(InitRequest::Poweroff)),
        ("reboot", None) => Ok(Action::AskInit(InitRequest::Reboot)),
        ("halt", None) => Ok(Action::AskInit(InitRequest::Halt)),
        ("rss", None) => Ok(Action::Rss),
        ("ls", Some(path)) if !path.is_empty() => Ok(Action::Ls(PathBuf::from(path))),
        ("cat", Some(path)) if !path.is_empty() => Ok(Action::Cat(PathBuf::from(path))),
        ("wait-path", Some(path)) if !path.is_empty() => Ok(Action::WaitPath(PathBuf::from(path))),
        ("wait-mount", Some(path)) if !path.is_empty() => {
            Ok(Action::WaitMount(PathBuf::from(path), true))
        }
        ("wait-unmount", Some(path)) if !path.is_empty() => {
            Ok(Action::WaitMount(PathBuf::from(path), false))
        }
        ("modes", Some(spec)) => crate::modes::parse(spec)
            .map(|(dir, prefix, count, mode)| Action::Modes {
                dir,
                prefix,
                count,
                mode,
            })
            .ok_or_else(|| bad("expected modes=DIR/PREFIX*:N:MODE, e.g. modes=/dev/sd*:512:0600")),
        ("chmod", Some(spec)) => spec
            .rsplit_once(':')
            .and_then(|(pattern, mode)| {
                let (dir, prefix) = crate::modes::pattern(pattern)?;
                Some(Action::Chmod {
                    dir,
                    prefix,
                    mode: crate::modes::mode(mode)?,
                })
            })
            .ok_or_else(|| bad("expected chmod=DIR/PREFIX*:MODE, e.g. chmod=/dev/sd*:0660")),
        ("uevent-flood", Some(n)) => n
            .parse()
            .map(Action::UeventFlood)
            .map_err(|_| bad("expected a count, e.g. uevent-flood=50000")),
        ("wait", None) => Ok(Action::Wait),
        ("clock", None) => Ok(Action::Clock),
        ("addresses", None) => Ok(Action::Addresses),
        ("serve", Some(port)) => port
            .parse()
            .map(Action::Serve)
            .map_err(|_| bad("expected a port, e.g. serve=80")),
        ("clock-not-before", Some(path)) if !path.is_empty() => {
            Ok(Action::ClockNotBefore(PathBuf::from(path)))
        }
        ("interactive", None) => Ok(Action::Interactive),
        ("help", None) => Ok(Action::Help),
        _ => Err(ParseError::Unknown),
    }
}

/// Parses `500ms` or `2s` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, to_duration): (&str, fn(u64) -> Duration) =
        if let Some(ms) = text.strip_suffix("ms") {
            (ms, Duration::from_millis)
        } else if let Some(s) = text.strip_suffix('s') {
            (s, Duration::from_secs)
        } else {
            return Err("expected a unit: 500ms or 2s".to_string());
        };
    number
        .parse()
        .map(to_duration)
        .map_err(|_| format!("expected a whole number before the unit, not {number:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_words() {
        assert_eq!(parse("check-zombies"), Ok(Action::CheckZombies));
        assert_eq!(parse("crash"), Ok(Action::Crash));
        assert_eq!(
            parse("poweroff"),
            Ok(Action::AskInit(InitRequest::Poweroff))
        );
        assert_eq!(parse("reboot"), Ok(Action::AskInit(InitRequest::Reboot)));
        assert_eq!(parse("halt"), Ok(Action::AskInit(InitRequest::Halt)));
        assert_eq!(parse("rss"), Ok(Action::Rss));
        assert_eq!(parse("ls=/dev/hwrng"), Ok(Action::Ls("/dev/hwrng".into())));
        assert_eq!(parse("cat=/sys/x"), Ok(Action::Cat("/sys/x".into())));
        assert_eq!(parse("clock"), Ok(Action::Clock));
        assert_eq!(parse("addresses"), Ok(Action::Addresses));
        assert_eq!(parse("serve=80"), Ok(Action::Serve(80)));
        assert!(matches!(parse("serve=http"), Err(ParseError::BadValue(_))));
        assert_eq!(
            parse("clock-not-before=/etc/t"),
            Ok(Action::ClockNotBefore("/etc/t".into()))
        );
        assert_eq!(parse("ls="), Err(ParseError::Unknown));
        assert_eq!(
            parse("wait-unmount=/mnt/x"),
            Ok(Action::WaitMount("/mnt/x".into(), false))
        );
        assert_eq!(parse("wait"), Ok(Action::Wait));
        assert_eq!(parse("interactive"), Ok(Action::Interactive));
        assert_eq!(parse("help"), Ok(Action::Help));
    }

    #[test]
    fn values() {
        assert_eq!(parse("orphans=5"), Ok(Action::Orphans(5)));
        assert_eq!(parse("reap=200"), Ok(Action::Reap(200)));
        assert_eq!(parse("exit=0"), Ok(Action::Exit(0)));
        assert_eq!(parse("exit=255"), Ok(Action::Exit(255)));
        assert_eq!(
            parse("sleep=500ms"),
            Ok(Action::Sleep(Duration::from_millis(500)))
        );
        assert_eq!(parse("sleep=2s"), Ok(Action::Sleep(Duration::from_secs(2))));
    }

    #[test]
    fn write_splits_at_the_first_colon_and_keeps_the_rest() {
        assert_eq!(
            parse("write=/boot/state.txt:a=b:c"),
            Ok(Action::Write {
                path: PathBuf::from("/boot/state.txt"),
                text: "a=b:c".to_string(),
            })
        );
        assert_eq!(
            parse("write=/tmp/empty:"),
            Ok(Action::Write {
                path: PathBuf::from("/tmp/empty"),
                text: String::new(),
            })
        );
        assert!(matches!(
            parse("write=nocolon"),
            Err(ParseError::BadValue(_))
        ));
        assert!(matches!(parse("write=:text"), Err(ParseError::BadValue(_))));
        assert_eq!(
            parse("bulk-write=/boot/a:b.txt:1500000"),
            Ok(Action::BulkWrite {
                path: PathBuf::from("/boot/a:b.txt"),
                lines: 1_500_000,
            })
        );
        for word in ["bulk-write=/boot/x", "bulk-write=:3", "bulk-write=/x:-1"] {
            assert!(
                matches!(parse(word), Err(ParseError::BadValue(_))),
                "{word}"
            );
        }
    }

    #[test]
    fn bad_values() {
        for word in [
            "orphans=",
            "orphans=-1",
            "orphans=many",
            "reap=",
            "reap=x",
            "exit=256",
            "exit=-1",
            "sleep=5",
            "sleep=ms",
            "sleep=1.5s",
            "sleep=2m",
        ] {
            assert!(
                matches!(parse(word), Err(ParseError::BadValue(_))),
                "{word} should be a bad value"
            );
        }
    }

    #[test]
    fn unknown_words() {
        for word in [
            "", "bogus", "orphans", "reap", "exit", "crash=1", "Poweroff", "=1",
        ] {
            assert_eq!(parse(word), Err(ParseError::Unknown), "{word}");
        }
    }

    #[test]
    fn defaults_parse() {
        assert!(DEFAULT_ARGS.iter().all(|word| parse(word).is_ok()));
    }
}
