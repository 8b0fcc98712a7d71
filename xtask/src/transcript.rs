//! The QEMU console as the boot scenarios see it: cleaned of what changes from run to run,
//! then matched line by line, in order, against a scenario's `expected` file. Pure text work;
//! running QEMU is `scenario.rs`'s job.

/// How a QEMU boot ended, as the console (and the harness) tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    PowerOff,
    Reboot,
    Halt,
    Panic,
    /// QEMU was still running when the harness had seen everything and stopped it.
    StoppedByTest,
    /// QEMU exited without any of the kernel's last words.
    Exited,
}

impl Ending {
    /// The synthetic last line of a transcript.
    pub fn line(self) -> &'static str {
        match self {
            Ending::PowerOff => "qemu: power-off",
            Ending::Reboot => "qemu: reboot",
            Ending::Halt => "qemu: halt",
            Ending::Panic => "qemu: panic",
            Ending::StoppedByTest => "qemu: stopped by the test",
            Ending::Exited => "qemu: exited",
        }
    }
}

/// The kernel's last words, read from the raw console.
pub fn ending_of(raw_console: &str) -> Ending {
    if raw_console.contains("Kernel panic") {
        Ending::Panic
    } else if raw_console.contains("reboot: Power down") {
        Ending::PowerOff
    } else if raw_console.contains("reboot: Restarting system")
        // A watchdog reset (softdog's emergency_restart prints no "reboot:" line).
        || raw_console.contains("softdog: Initiating system reboot")
    {
        Ending::Reboot
    } else if raw_console.contains("reboot: System halted") {
        Ending::Halt
    } else {
        Ending::Exited
    }
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
                carry = Some(line[..at].to_string());
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
            "in" | "after" if is_duration(word.trim_end_matches([')', ',', ';'])) => Some(format!(
                "N{}{}",
                unit(word.trim_end_matches([')', ',', ';'])),
                trailing(word)
            )),
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
                   demo: pid 77\r\ndemo: hel[    3.1] boxinit: x\r\nlo\r\ndemo: a [b] c\r\n";
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
            ]
        );
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
    }
}
