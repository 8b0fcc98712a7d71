//! The card's state file, `boxinit/state.txt`: `key=value` lines padded with spaces to a fixed
//! length, so that it is overwritten in place at every boot (same length: no FAT metadata
//! changes) and stays readable, and editable, from any computer. What it holds: the boot
//! count, how the current boot is ending (`running` until a report is written), the boots in
//! a row without a healthy box (the brake), the newest report, and a trial under way. Pure:
//! text in, text out; the files are written by `card.rs` through a write window.

use std::fmt::Write as _;

/// The folder on the card that holds boxinit's own files.
pub const DIR: &str = "boxinit";
/// The state file, relative to the boot partition.
pub const STATE_FILE: &str = "boxinit/state.txt";
/// Its length: every write is exactly this long (or as long as the file found, when someone
/// lengthened it on a computer).
pub const STATE_LEN: usize = 1024;
/// How many shutdown reports are kept, `boxinit/report-1.txt` ..
pub const REPORTS: u8 = 4;
/// The length of each report file.
pub const REPORT_LEN: usize = 16 * 1024;

/// `boxinit/report-N.txt`.
pub fn report_file(n: u8) -> String {
    format!("{DIR}/report-{n}.txt")
}

/// How the current (or, read at boot, the previous) boot ended, as far as the card knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// No boot recorded yet (a new card).
    #[default]
    Unknown,
    /// The boot is under way: no report written. Found at the next boot: it ended without
    /// one (power loss, a reset nobody asked for).
    Running,
    /// A shutdown report was written (`report`); the machine went down as it says.
    Report,
    /// boxinit stopped petting the watchdog (the report says why): a reset was coming.
    Watchdog,
}

impl Ending {
    fn word(self) -> &'static str {
        match self {
            Ending::Unknown => "none",
            Ending::Running => "running",
            Ending::Report => "report",
            Ending::Watchdog => "watchdog",
        }
    }

    fn from_word(word: &str) -> Option<Ending> {
        [
            Ending::Unknown,
            Ending::Running,
            Ending::Report,
            Ending::Watchdog,
        ]
        .into_iter()
        .find(|e| e.word() == word)
    }
}

/// Where a trial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A whole bundle's trial asked of the firmware: recorded before the reboot with
    /// `tryboot`; the next boot is the trial (with the firmware's flag) or comes back
    /// without it (`bundle.rs`).
    Requested,
    /// Recorded before the new box or config started; no verdict yet.
    Started,
    /// Validated: the files are being exchanged (a boot that finds this finishes it).
    Promoting,
}

/// A trial of a new box and/or config, as recorded before it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub phase: Phase,
    /// The boot (count) that started it.
    pub boot: u64,
    /// `[box] path` (relative to the card) and the sha256 of `PATH.new`, when the box is tried.
    pub box_: Option<(String, String)>,
    /// The sha256 of `init.toml.new`, when the config is tried.
    pub config: Option<String>,
    /// A whole bundle tried through the firmware's `tryboot`: its slot (`b/`) and the sha256
    /// of its `bundle.sha256`.
    pub bundle: Option<(String, String)>,
}

/// Everything the state file holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// Boots counted on this card (this one included, once written at boot).
    pub boot: u64,
    pub ending: Ending,
    /// Boots in a row that did not reach a healthy box (this one included until it does).
    pub unhealthy: u32,
    /// The newest report, 1..=[`REPORTS`]; 0: none yet.
    pub report: u8,
    pub trial: Option<Trial>,
}

const HEADER: &str = "# boxinit's state, rewritten in place at every boot (README: \"Updating a box in the field\").\n# unhealthy=0 lets a machine held by the boot-loop brake reboot normally again.\n";

/// The file's text, padded with spaces and ending in a newline to exactly `len` bytes; None
/// when it does not fit (a `[box] path` of hundreds of characters).
pub fn format(state: &State, len: usize) -> Option<Vec<u8>> {
    let mut text = String::from(HEADER);
    let _ = writeln!(text, "boot={}", state.boot);
    let _ = writeln!(text, "ending={}", state.ending.word());
    let _ = writeln!(text, "unhealthy={}", state.unhealthy);
    let _ = writeln!(text, "report={}", state.report);
    match &state.trial {
        None => text.push_str("trial=none\n"),
        Some(t) => {
            let phase = match t.phase {
                Phase::Requested => "requested",
                Phase::Started => "started",
                Phase::Promoting => "promoting",
            };
            let _ = writeln!(text, "trial={phase}");
            let _ = writeln!(text, "trial_boot={}", t.boot);
            if let Some((path, sha)) = &t.box_ {
                let _ = writeln!(text, "trial_box={path}");
                let _ = writeln!(text, "trial_box_sha256={sha}");
            }
            if let Some(sha) = &t.config {
                let _ = writeln!(text, "trial_config_sha256={sha}");
            }
            if let Some((slot, sha)) = &t.bundle {
                let _ = writeln!(text, "trial_bundle={slot}");
                let _ = writeln!(text, "trial_bundle_sha256={sha}");
            }
        }
    }
    pad(text, len)
}

/// `text`, spaces, a newline: exactly `len` bytes, or None when `text` is longer.
pub fn pad(text: String, len: usize) -> Option<Vec<u8>> {
    let mut bytes = text.into_bytes();
    if bytes.len() + 1 > len {
        return None;
    }
    bytes.resize(len - 1, b' ');
    bytes.push(b'\n');
    Some(bytes)
}

/// Reads the file's text: unknown keys and `#` lines are skipped (a newer boxinit's keys, a
/// comment), spaces and `\r` (an editor on Windows) trimmed. Returns the state and the lines
/// it could not read, for one warning.
pub fn parse(text: &str) -> (State, Vec<String>) {
    let mut state = State::default();
    let mut bad = Vec::new();
    let mut phase = None;
    let (mut trial_boot, mut box_path, mut box_sha, mut config_sha) = (0, None, None, None);
    let (mut bundle_slot, mut bundle_sha) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bad.push(line.to_string());
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let ok = match key {
            "boot" => value.parse().map(|v| state.boot = v).is_ok(),
            "ending" => Ending::from_word(value).map(|e| state.ending = e).is_some(),
            "unhealthy" => value.parse().map(|v| state.unhealthy = v).is_ok(),
            "report" => value
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= REPORTS)
                .map(|n| state.report = n)
                .is_some(),
            "trial" => match value {
                "none" => true,
                "requested" => {
                    phase = Some(Phase::Requested);
                    true
                }
                "started" => {
                    phase = Some(Phase::Started);
                    true
                }
                "promoting" => {
                    phase = Some(Phase::Promoting);
                    true
                }
                _ => false,
            },
            "trial_boot" => value.parse().map(|v| trial_boot = v).is_ok(),
            "trial_box" => {
                box_path = Some(value.to_string());
                !value.is_empty()
            }
            "trial_box_sha256" => {
                box_sha = Some(value.to_ascii_lowercase());
                is_digest(value)
            }
            "trial_config_sha256" => {
                config_sha = Some(value.to_ascii_lowercase());
                is_digest(value)
            }
            "trial_bundle" => {
                bundle_slot = Some(value.to_string());
                !value.is_empty()
            }
            "trial_bundle_sha256" => {
                bundle_sha = Some(value.to_ascii_lowercase());
                is_digest(value)
            }
            _ => true,
        };
        if !ok {
            bad.push(line.to_string());
        }
    }
    state.trial = phase.map(|phase| Trial {
        phase,
        boot: trial_boot,
        box_: box_path.zip(box_sha),
        config: config_sha,
        bundle: bundle_slot.zip(bundle_sha),
    });
    (state, bad)
}

/// 64 hex digits.
pub fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A report file that holds no report yet.
pub fn blank_report(n: u8) -> Vec<u8> {
    let text =
        format!("boxinit shutdown report {n} of {REPORTS}: empty, no boot has ended here yet.\n");
    pad(text, REPORT_LEN).unwrap_or_default()
}

/// The files a card needs, with their first contents: the state file and the blank reports.
/// `cargo xtask image` and `bundle` write them; boxinit creates them once on a card made by
/// hand.
pub fn initial_files() -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        STATE_FILE.to_string(),
        format(&State::default(), STATE_LEN).unwrap_or_default(),
    )];
    for n in 1..=REPORTS {
        files.push((report_file(n), blank_report(n)));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_at_a_fixed_length() {
        let states = [
            State::default(),
            State {
                boot: 12,
                ending: Ending::Running,
                unhealthy: 3,
                report: 2,
                trial: Some(Trial {
                    phase: Phase::Promoting,
                    boot: 11,
                    box_: Some(("bin/app".into(), "ab".repeat(32))),
                    config: Some("cd".repeat(32)),
                    bundle: Some(("b/".into(), "ef".repeat(32))),
                }),
            },
            State {
                boot: 1,
                ending: Ending::Watchdog,
                unhealthy: 0,
                report: 4,
                trial: Some(Trial {
                    phase: Phase::Started,
                    boot: 1,
                    box_: None,
                    config: Some("0".repeat(64)),
                    bundle: None,
                }),
            },
            State {
                boot: 2,
                trial: Some(Trial {
                    phase: Phase::Requested,
                    boot: 2,
                    box_: None,
                    config: None,
                    bundle: Some(("a/".into(), "1".repeat(64))),
                }),
                ..State::default()
            },
        ];
        for state in states {
            let bytes = format(&state, STATE_LEN).unwrap();
            assert_eq!(bytes.len(), STATE_LEN);
            assert!(bytes.ends_with(b" \n"));
            let (back, bad) = parse(std::str::from_utf8(&bytes).unwrap());
            assert_eq!(back, state);
            assert!(bad.is_empty(), "{bad:?}");
        }
        // a path too long to fit
        let long = State {
            trial: Some(Trial {
                phase: Phase::Started,
                boot: 1,
                box_: Some(("x".repeat(2000), "0".repeat(64))),
                config: None,
                bundle: None,
            }),
            ..State::default()
        };
        assert_eq!(format(&long, STATE_LEN), None);
    }

    #[test]
    fn a_hand_edited_file_still_reads() {
        let text = "# mine\r\nboot = 7\r\nunhealthy=0\r\nwhat=ever\r\nreport=9\r\nnonsense\r\ntrial=started\r\ntrial_box=box\r\ntrial_box_sha256=XYZ\r\n";
        let (state, bad) = parse(text);
        assert_eq!(state.boot, 7);
        assert_eq!(state.report, 0, "a report number out of range is ignored");
        assert_eq!(bad, ["report=9", "nonsense", "trial_box_sha256=XYZ"]);
        // a trial with a box path but no usable digest tries no box
        assert_eq!(state.trial.map(|t| t.box_.is_some()), Some(true));
        let (empty, bad) = parse("");
        assert_eq!((empty, bad.len()), (State::default(), 0));
    }

    #[test]
    fn initial_files_are_preallocated() {
        let files = initial_files();
        assert_eq!(files.len(), 1 + usize::from(REPORTS));
        assert_eq!(files[0].0, "boxinit/state.txt");
        assert_eq!(files[0].1.len(), STATE_LEN);
        for (name, bytes) in &files[1..] {
            assert!(name.starts_with("boxinit/report-"), "{name}");
            assert_eq!(bytes.len(), REPORT_LEN);
        }
    }
}
