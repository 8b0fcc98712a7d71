//! The QEMU console as the boot scenarios see it: cleaned of what changes from run to run,
//! then matched line by line, in order, against a scenario's `expected` file. Pure text work;
//! reading QEMU's console is `qemu/console.rs`'s, what a scenario expects `test/`'s.

/// How a QEMU boot ended, as the console (and the harness) tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    PowerOff,
    /// The init asked for it (`reboot(2)`: the kernel's `reboot: Restarting system`).
    Reboot,
    /// A watchdog expired and reset the machine; nobody asked for a reboot.
    WatchdogReset,
    Halt,
    Panic,
    /// QEMU was still running when the harness had seen everything and stopped it.
    StoppedByTest,
    /// QEMU exited without any of the kernel's last words.
    Exited,
    /// The harness killed QEMU, as a power cut would end the machine (multi-boot scenarios).
    PowerCut,
}

impl Ending {
    /// The synthetic last line of a transcript.
    pub fn line(self) -> &'static str {
        match self {
            Ending::PowerOff => "qemu: power-off",
            Ending::Reboot => "qemu: reboot",
            Ending::WatchdogReset => "qemu: watchdog reset",
            Ending::Halt => "qemu: halt",
            Ending::Panic => "qemu: panic",
            Ending::StoppedByTest => "qemu: stopped by the test",
            Ending::Exited => "qemu: exited",
            Ending::PowerCut => "qemu: power cut",
        }
    }

    /// The ending a line of `expected` names (`qemu: reboot`), if it is one.
    pub fn named(line: &str) -> Option<Ending> {
        [
            Ending::PowerOff,
            Ending::Reboot,
            Ending::WatchdogReset,
            Ending::Halt,
            Ending::Panic,
            Ending::StoppedByTest,
            Ending::Exited,
            Ending::PowerCut,
        ]
        .into_iter()
        .find(|e| e.line() == line.trim())
    }
}

/// A scenario's expected lines as boots: each boot's lines end with the `qemu:` line that says
/// how it ends; lines after the last such line are a last boot that the harness stops.
pub fn split_boots(expected: &[String]) -> Vec<Vec<String>> {
    let mut boots = vec![Vec::new()];
    for line in expected {
        if let Some(boot) = boots.last_mut() {
            boot.push(line.clone());
        }
        if Ending::named(line).is_some() {
            boots.push(Vec::new());
        }
    }
    if boots.len() > 1 && boots.last().is_some_and(Vec::is_empty) {
        boots.pop();
    }
    boots
}

/// The kernel's last words, read from the raw console.
pub fn ending_of(raw_console: &str) -> Ending {
    if raw_console.contains("Kernel panic") {
        Ending::Panic
    } else if raw_console.contains(WATCHDOG_RESET) {
        // Checked before the init's own endings: a watchdog that fires during an orderly
        // shutdown still means the shutdown did not finish.
        Ending::WatchdogReset
    } else if raw_console.contains("reboot: Power down") {
        Ending::PowerOff
    } else if raw_console.contains("reboot: Restarting system") {
        Ending::Reboot
    } else if raw_console.contains("reboot: System halted") {
        Ending::Halt
    } else {
        Ending::Exited
    }
}

/// Whether the console shows the machine on its way out: the init's shutdown steps (also
/// those of `poweroff -f`, boxinit as a tool), its last line before `reboot(2)`
/// (`shutdown::finish`), or the kernel's last words.
pub fn ending_begun(raw_console: &str) -> bool {
    [
        "boxinit: shutdown: ",
        "boxinit: powering off",
        "boxinit: rebooting",
        "boxinit: halting",
    ]
    .iter()
    .any(|words| raw_console.contains(words))
        || ending_of(raw_console) != Ending::Exited
}

/// What softdog prints when it resets the machine: it calls `emergency_restart()`, which
/// prints no `reboot:` line (drivers/watchdog/softdog.c).
const WATCHDOG_RESET: &str = "softdog: Initiating system reboot";

/// Words that fail every scenario wherever they appear on the console: PID 1 died (the
/// kernel's panic message), Rust's panic message (on PID 1's stderr, the console), and the
/// init's panic hook.
pub const FORBIDDEN: &[&str] = &["Attempted to kill init", "panicked", "internal error"];

/// The raw console lines that hold a [`FORBIDDEN`] word, timestamps cut.
pub fn forbidden_lines(raw_console: &str) -> Vec<String> {
    raw_console
        .lines()
        .map(|l| strip_timestamp(l.trim_end_matches('\r')).trim())
        .filter(|l| FORBIDDEN.iter().any(|word| l.contains(word)))
        .map(str::to_string)
        .collect()
}

/// Whether the scenario wants QEMU to end a given way: its last expected line is `qemu: ...`.
pub fn expects_ending(expected: &[String]) -> bool {
    expected.last().is_some_and(|l| l.starts_with("qemu: "))
}

/// How the boot ended, when that is not what the scenario expected. A scenario without a
/// `qemu:` line expects the machine to keep running until the harness stops it: any ending the
/// console shows (a reboot, a watchdog reset, a power-off, a panic) fails it, even one that
/// began just before the harness stopped QEMU. With a `qemu:` line, the ending must be that one.
pub fn unexpected_ending(expected: &[String], raw_console: &str, ending: Ending) -> Option<String> {
    let seen = match ending {
        // QEMU was stopped, but the kernel may already have been on its way out.
        Ending::StoppedByTest => match ending_of(raw_console) {
            Ending::Exited => Ending::StoppedByTest,
            last_words => last_words,
        },
        other => other,
    };
    let want = match expected.last() {
        Some(line) if expects_ending(expected) => line.as_str(),
        _ => Ending::StoppedByTest.line(),
    };
    (!line_matches(want, seen.line())).then(|| {
        format!(
            "the boot ended with `{}`, the scenario expects `{want}`",
            seen.line()
        )
    })
}

/// Every way a finished run fails besides a missing expected line: forbidden words on the
/// console and an ending the scenario did not expect.
pub fn verdict(expected: &[String], raw_console: &str, ending: Ending) -> Vec<String> {
    let mut failures: Vec<String> = forbidden_lines(raw_console)
        .into_iter()
        .map(|line| format!("forbidden on the console: {line}"))
        .collect();
    failures.extend(unexpected_ending(expected, raw_console, ending));
    failures
}

/// Keeps the init's and the demo box's lines, without kernel timestamps, with run-dependent
/// values masked.
pub fn clean(raw_console: &str) -> Vec<String> {
    untangle(raw_console)
        .iter()
        .map(|l| strip_timestamp(l))
        .filter(|l| is_ours(l))
        .map(mask)
        .collect()
}

fn is_ours(line: &str) -> bool {
    line.starts_with("boxinit: ") || line.starts_with("demo: ") || line.starts_with("qemu: ")
}

/// The console's lines with the kernel's records put back on lines of their own. The box
/// writes to the tty and the kernel prints kmsg records on the same serial port, so a record
/// can land inside a line of the box's: `demo: hello[  3.0] boxinit: started box ...`, the
/// box's newline (or the rest of its line) following on the next line.
fn untangle(raw_console: &str) -> Vec<String> {
    let mut lines = Vec::new();
    // The start of a box's line that a kernel record interrupted, waiting for its end.
    let mut carry: Option<String> = None;
    for line in raw_console.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(head) = carry.take() {
            let continues = !line.trim_start().starts_with('[') && !is_ours(line);
            if continues {
                lines.push(format!("{head}{line}"));
                continue;
            }
            lines.push(head);
        }
        match mid_line_record(line) {
            Some(at) => {
                // the box's own line end (`\r` of its `\r\n`) may precede the record
                carry = Some(line[..at].trim_end_matches('\r').to_string());
                lines.push(line[at..].to_string());
            }
            None => lines.push(line.to_string()),
        }
    }
    lines.extend(carry);
    lines
}

/// Where a kernel record (`[   12.345678] `) starts inside a line, not at its start.
fn mid_line_record(line: &str) -> Option<usize> {
    let mut from = 1;
    while let Some(i) = line.get(from..)?.find('[') {
        let at = from + i;
        if strip_timestamp(&line[at..]).len() < line.len() - at {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn strip_timestamp(line: &str) -> &str {
    let trimmed = line.trim_start();
    match trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((stamp, rest)) if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') => rest,
        _ => line,
    }
}

/// The kernel's timestamp of a console line (`[    9.375364] ...`), in seconds.
fn timestamp(line: &str) -> Option<f64> {
    let (stamp, _) = line.trim_start().strip_prefix('[')?.split_once("] ")?;
    stamp.trim().parse().ok()
}

/// Seconds of guest time, by the kernel's timestamps, from the first kernel record whose
/// cleaned line matches `from` to the first one after it matching `to` (`*` wildcards, as in
/// `expected`): what a scenario's `within` bounds. Only kmsg records (the init's lines) carry
/// a timestamp; the box's lines do not.
pub fn seconds_between(raw_console: &str, from: &str, to: &str) -> Result<f64, String> {
    let stamped: Vec<(f64, String)> = untangle(raw_console)
        .iter()
        .filter_map(|l| Some((timestamp(l)?, mask(strip_timestamp(l)))))
        .collect();
    let Some(start) = stamped.iter().position(|(_, l)| line_matches(from, l)) else {
        return Err(format!("no timestamped line matches `{from}`"));
    };
    let (t0, rest) = match (stamped.get(start), stamped.get(start + 1..)) {
        (Some((t0, _)), Some(rest)) => (*t0, rest),
        _ => return Err(format!("no line after `{from}`")),
    };
    match rest.iter().find(|(_, l)| line_matches(to, l)) {
        Some((t1, _)) => Ok(t1 - t0),
        None => Err(format!("no timestamped line matches `{to}` after `{from}`")),
    }
}

/// Masks pids, measured durations, uptime and the boot clock.
pub fn mask(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let prev = if i > 0 {
            words[i - 1].trim_start_matches('(')
        } else {
            ""
        };
        let masked = match prev {
            "pid" if is_number(word.trim_end_matches([')', ',', ':'])) => {
                Some(format!("N{}", trailing(word)))
            }
            "in" | "after" if is_duration(word.trim_end_matches([')', ',', ';', ':'])) => {
                Some(format!(
                    "N{}{}",
                    unit(word.trim_end_matches([')', ',', ';', ':'])),
                    trailing(word)
                ))
            }
            "at" | "uptime" if is_duration(word) => Some("Ns".to_string()),
            _ => None,
        };
        out.push(masked.unwrap_or_else(|| word.to_string()));
    }
    out.join(" ")
}

fn trailing(word: &str) -> &str {
    let end = word.trim_end_matches([')', ',', ':', ';']).len();
    &word[end..]
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

fn unit(s: &str) -> &str {
    if s.ends_with("ms") {
        "ms"
    } else {
        "s"
    }
}

/// A measured duration as the init prints it: `12ms`, `0.912s`, `3s`.
fn is_duration(s: &str) -> bool {
    let number = s.strip_suffix("ms").or_else(|| s.strip_suffix('s'));
    match number {
        Some(n) => {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit() || c == '.')
                && n.chars().next().is_some_and(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return line.is_empty();
    };
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether the box's first `demo> ` prompt stayed the console's last output until `typed`
/// was typed there: the rest of the prompt's line is that text's echo (or nothing, the end of
/// the console). Otherwise the error names what landed after the prompt (a kernel or boxinit
/// line, typed over by the user).
pub fn prompt_stays_last(raw_console: &str, typed: &str) -> Result<(), String> {
    const PROMPT: &str = "demo> ";
    let Some(at) = raw_console.find(PROMPT) else {
        return Err("no `demo> ` prompt on the console".to_string());
    };
    let rest = raw_console.get(at + PROMPT.len()..).unwrap_or_default();
    let line = rest.split(['\r', '\n']).next().unwrap_or_default().trim();
    match line.is_empty() || line == typed {
        true => Ok(()),
        false => Err(format!("a line landed after the `demo> ` prompt: `{line}`")),
    }
}

/// Expected lines of a scenario: blank lines and `#` comments are skipped.
pub fn expected_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Who printed a cleaned line: `boxinit`, `demo` or `qemu`.
fn source(line: &str) -> &str {
    line.split(':').next().unwrap_or("")
}

/// The index of the first expected line that is not found. Order is checked per source: the
/// init's lines in the init's order, the box's in the box's; how the two interleave on the
/// console depends on when the kernel flushes kmsg, so it is not checked.
pub fn first_missing(expected: &[String], transcript: &[String]) -> Option<usize> {
    let mut cursors: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, pattern) in expected.iter().enumerate() {
        let src = source(pattern);
        let cursor = cursors.entry(src).or_insert(0);
        let rest = transcript.get(*cursor..).unwrap_or_default();
        match rest
            .iter()
            .position(|l| source(l) == src && line_matches(pattern, l))
        {
            Some(at) => *cursor += at + 1,
            None => return Some(i),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_lines_split_into_boots() {
        let lines: Vec<String> = [
            "boxinit: a",
            "qemu: reboot",
            "demo: b",
            "qemu: power cut",
            "boxinit: c",
            "qemu: monitor: x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let boots = split_boots(&lines);
        assert_eq!(boots.len(), 3);
        assert_eq!(boots[0], ["boxinit: a", "qemu: reboot"]);
        assert_eq!(boots[1], ["demo: b", "qemu: power cut"]);
        assert_eq!(boots[2], ["boxinit: c", "qemu: monitor: x"]);
        assert_eq!(split_boots(&lines[..2]).len(), 1);
        assert_eq!(split_boots(&[]), vec![Vec::<String>::new()]);
    }

    #[test]
    fn cleaning_keeps_our_lines_and_masks_what_varies() {
        let raw = "[    0.000000] Linux version 6.1\r\n[    1.234567] boxinit: started at 1.234s (CLOCK_BOOTTIME)\r\n\
                   demo: pid 77\r\n[    2.5] boxinit: setup done in 123ms\r\nrandom noise\r\n\
                   [    3.1] boxinit: started /boot/box (pid 80)\r\ndemo: uptime 1.50s\r\n\
                   boxinit: box restart delayed by 200ms (backoff)\r\nboxinit: shutdown: box stopped after 3ms\r\n";
        assert_eq!(
            clean(raw),
            [
                "boxinit: started at Ns (CLOCK_BOOTTIME)",
                "demo: pid N",
                "boxinit: setup done in Nms",
                "boxinit: started /boot/box (pid N)",
                "demo: uptime Ns",
                "boxinit: box restart delayed by 200ms (backoff)",
                "boxinit: shutdown: box stopped after Nms",
            ]
        );
    }

    #[test]
    fn kernel_records_inside_a_box_line_are_put_apart() {
        let raw = "demo: hello from the box[    3.005876] boxinit: started box /boot/box (pid 77)\r\n\r\n\
                   demo: pid 77\r\ndemo: hel[    3.1] boxinit: x\r\nlo\r\ndemo: a [b] c\r\n\
                   demo: bye\r[    5.8] boxinit: y\r\n\n";
        assert_eq!(
            clean(raw),
            [
                // A box line comes out once it is complete, after the record inside it.
                "boxinit: started box /boot/box (pid N)",
                "demo: hello from the box",
                "demo: pid N",
                "boxinit: x",
                "demo: hello",
                "demo: a [b] c",
                // the record after the box's `\r`, before its `\n`: no `\r` left in the line
                "boxinit: y",
                "demo: bye",
            ]
        );
    }

    #[test]
    fn the_prompt_stays_last() {
        let quiet = "demo: type help\r\ndemo> ls=/dev/console\r\ndemo: /dev/console char";
        assert_eq!(prompt_stays_last(quiet, "ls=/dev/console"), Ok(()));
        assert_eq!(prompt_stays_last("demo: type help\r\ndemo> ", "x"), Ok(()));
        let late = "demo> [    3.057053] sdhci: Secure Digital Host Controller\r\nls=/dev/console";
        assert_eq!(
            prompt_stays_last(late, "ls=/dev/console"),
            Err("a line landed after the `demo> ` prompt: `[    3.057053] sdhci: Secure Digital Host Controller`".into())
        );
        assert!(prompt_stays_last("demo: hello\n", "x").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(line_matches("a*c", "abbbc"));
        assert!(line_matches("a*", "a"));
        assert!(line_matches("*x*y", "1x2y"));
        assert!(!line_matches("a*c", "abd"));
        assert!(line_matches("plain", "plain"));
        assert!(!line_matches("plain", "plainer"));
    }

    #[test]
    fn in_order_matching_per_source() {
        let expected = expected_lines("# comment\ndemo: a\n\nboxinit: x\ndemo: c\n");
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            first_missing(
                &expected,
                &t(&["demo: a", "demo: b", "boxinit: x", "demo: c"])
            ),
            None
        );
        // The init's line may come before the box's on the console.
        assert_eq!(
            first_missing(&expected, &t(&["boxinit: x", "demo: a", "demo: c"])),
            None
        );
        // Within one source the order counts.
        assert_eq!(
            first_missing(&expected, &t(&["demo: c", "demo: a", "boxinit: x"])),
            Some(2)
        );
        assert_eq!(first_missing(&expected, &t(&["demo: a"])), Some(1));
    }

    #[test]
    fn guest_time_between_two_lines() {
        let raw = "[    1.500000] boxinit: modules: 3 loaded in 12ms\r\n\
                   demo: hello\r\n[    2.000000] boxinit: started box /boot/box (pid 80)\r\n\
                   [    4.250000] boxinit: started box /boot/box (pid 81)\r\n";
        let between = |from, to| seconds_between(raw, from, to);
        assert_eq!(
            between("boxinit: modules: *", "boxinit: started box *"),
            Ok(0.5)
        );
        assert_eq!(
            between("boxinit: started box *", "boxinit: started box *"),
            Ok(2.25)
        );
        assert!(between("demo: hello", "boxinit: *").is_err());
        assert!(between("boxinit: modules: *", "boxinit: powering off").is_err());
    }

    #[test]
    fn endings() {
        assert_eq!(
            ending_of("x\n[ 1.0] reboot: Power down\n"),
            Ending::PowerOff
        );
        assert_eq!(
            ending_of("Kernel panic - not syncing: Attempted to kill init!"),
            Ending::Panic
        );
        assert_eq!(ending_of("reboot: Restarting system"), Ending::Reboot);
        assert_eq!(ending_of(""), Ending::Exited);
        // A softdog reset is not a reboot the init asked for, even amid a shutdown.
        let reset = "[ 9.1] softdog: Initiating system reboot\r\n";
        assert_eq!(ending_of(reset), Ending::WatchdogReset);
        let amid = "[ 8.0] boxinit: rebooting\r\n[ 9.1] softdog: Initiating system reboot\r\n";
        assert_eq!(ending_of(amid), Ending::WatchdogReset);
        assert_eq!(Ending::WatchdogReset.line(), "qemu: watchdog reset");
        // the machine is on its way out from the init's first shutdown step on
        assert!(!ending_begun("[ 8.0] boxinit: setup done in 3ms\r\n"));
        assert!(ending_begun("[ 8.0] boxinit: shutdown: synced in 0ms\r\n"));
        assert!(ending_begun("[ 8.0] boxinit: powering off\r\n"));
        assert!(ending_begun(amid));
        assert!(ending_begun("x\n[ 1.0] reboot: Power down\n"));
    }

    #[test]
    fn forbidden_words_fail_any_scenario() {
        let raw = "[    0.5] boxinit: started at 0.5s\r\n\
                   thread 'main' panicked at src/main.rs:1:1:\r\n\
                   [    1.0] boxinit: internal error: boom; rebooting in 5s\r\n\
                   [    2.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\r\n\
                   demo: all good\r\n";
        assert_eq!(
            forbidden_lines(raw),
            [
                "thread 'main' panicked at src/main.rs:1:1:",
                "boxinit: internal error: boom; rebooting in 5s",
                "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
            ]
        );
        assert!(forbidden_lines("demo: hello\n[ 1.0] boxinit: powering off\n").is_empty());
        let expected = expected_lines("demo: hello\nqemu: power-off\n");
        let failures = verdict(&expected, raw, Ending::Panic);
        assert_eq!(failures.len(), 4, "{failures:?}");
        assert_eq!(
            failures[3],
            "the boot ended with `qemu: panic`, the scenario expects `qemu: power-off`"
        );
    }

    #[test]
    fn endings_the_scenario_did_not_expect() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let runs = t(&["demo: waiting"]);
        let powers_off = t(&["demo: waiting", "qemu: power-off"]);
        let resets = t(&["demo: waiting", "qemu: watchdog reset"]);
        let reboot = "[ 5.0] reboot: Restarting system\r\n";
        let softdog = "[ 5.0] softdog: Initiating system reboot\r\n";
        // (expected, raw console, how the harness saw QEMU end, failure or not)
        let table: &[(&[String], &str, Ending, bool)] = &[
            (&runs, "", Ending::StoppedByTest, false),
            // A scenario that stops early still fails on a reboot it did not ask for, even
            // one the harness cut short by stopping QEMU.
            (&runs, reboot, Ending::Reboot, true),
            (&runs, reboot, Ending::StoppedByTest, true),
            (&runs, softdog, Ending::StoppedByTest, true),
            (&runs, "", Ending::Exited, true),
            (&powers_off, "", Ending::PowerOff, false),
            (&powers_off, reboot, Ending::Reboot, true),
            (&powers_off, "", Ending::StoppedByTest, true),
            // A watchdog reset and a reboot the init asked for are told apart.
            (&resets, softdog, Ending::WatchdogReset, false),
            (&resets, reboot, Ending::Reboot, true),
        ];
        for (i, (expected, raw, ending, fails)) in table.iter().enumerate() {
            assert_eq!(
                unexpected_ending(expected, raw, *ending).is_some(),
                *fails,
                "row {i}: {ending:?}"
            );
        }
    }
}
