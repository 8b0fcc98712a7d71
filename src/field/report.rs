//! The shutdown report: what boxinit writes to the card before every reboot and power-off
//! (why, uptime, the box's last exit, how the shutdown went, boxinit's own last lines, the
//! box's last output, pstore records), padded to the report files' fixed length, the oldest
//! lines dropped first when it would not fit; and, read back at the next boot, the one line
//! that says how that boot ended. Pure text.

use std::fmt::Write as _;
use std::time::Duration;

use super::state::{pad, REPORT_LEN};

/// Everything one report says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The boot (count) it is about.
    pub boot: u64,
    /// Why the machine goes down, in words.
    pub why: String,
    /// What it does: "power-off", "reboot", "halt", or "reset by the watchdog (expected)".
    pub action: String,
    pub uptime: Duration,
    /// The wall clock then, as a date (not synced, maybe).
    pub clock: String,
    /// The box's last exit, when it exited.
    pub box_exit: Option<String>,
    /// How the shutdown went, a line per step (empty when it has not happened yet).
    pub shutdown: Vec<String>,
    /// boxinit's own last lines, oldest first.
    pub log: Vec<String>,
    /// The box's last output.
    pub box_output: String,
    /// pstore records (name, text): the kernel's panic dumps and console of the last crash.
    pub pstore: Vec<(String, String)>,
}

/// The most a report keeps of the box's output and of each pstore record (their tails).
pub const OUTPUT_MAX: usize = 4 * 1024;
pub const PSTORE_MAX: usize = 3 * 1024;

/// The report as its file holds it: exactly `REPORT_LEN` bytes. The log's oldest lines go
/// first, then the output's and the pstore records' oldest bytes, until it fits.
pub fn format(report: &Report) -> Vec<u8> {
    let mut log = report.log.as_slice();
    loop {
        let text = text_of(report, log);
        if text.len() < REPORT_LEN || log.is_empty() {
            return match text.len() < REPORT_LEN {
                true => pad(text, REPORT_LEN).unwrap_or_default(),
                false => cut_to_fit(text),
            };
        }
        // drop a tenth of the lines at a time (at least one)
        let drop = (log.len() / 10).max(1);
        log = log.get(drop..).unwrap_or_default();
    }
}

/// A text still too long once the log is gone: its end cut off.
fn cut_to_fit(text: String) -> Vec<u8> {
    let mut end = REPORT_LEN.saturating_sub(40).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = text.get(..end).unwrap_or_default().to_string();
    cut.push_str("\n[cut: the report is full]\n");
    pad(cut, REPORT_LEN).unwrap_or_default()
}

fn text_of(report: &Report, log: &[String]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "boxinit shutdown report");
    let _ = writeln!(t, "boot: {}", report.boot);
    let _ = writeln!(t, "why: {}", report.why);
    let _ = writeln!(t, "action: {}", report.action);
    let uptime = match report.uptime.is_zero() {
        true => "unknown".to_string(),
        false => seconds(report.uptime),
    };
    let _ = writeln!(t, "uptime: {uptime}");
    let _ = writeln!(t, "clock: {}", report.clock);
    let _ = writeln!(
        t,
        "box's last exit: {}",
        report.box_exit.as_deref().unwrap_or("it did not exit")
    );
    if !report.shutdown.is_empty() {
        let _ = writeln!(t, "\n-- shutdown");
        for line in &report.shutdown {
            let _ = writeln!(t, "{line}");
        }
    }
    for (name, text) in &report.pstore {
        let _ = writeln!(t, "\n-- pstore {name} (last {} bytes)", PSTORE_MAX);
        t.push_str(tail(text, PSTORE_MAX));
        if !t.ends_with('\n') {
            t.push('\n');
        }
    }
    if !report.box_output.is_empty() {
        let _ = writeln!(t, "\n-- the box's last output");
        t.push_str(tail(&report.box_output, OUTPUT_MAX));
        if !t.ends_with('\n') {
            t.push('\n');
        }
    }
    let _ = writeln!(t, "\n-- boxinit's last lines");
    for line in log {
        let _ = writeln!(t, "{line}");
    }
    let _ = writeln!(t, "-- end of report");
    t
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.get(start..).unwrap_or_default()
}

/// `12.3s`, `4m05s`, `2h03m`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{}.{}s", s, d.subsec_millis() / 100),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// What a report file says at its top: (boot, why, action, uptime), as read back at boot.
pub fn summary(text: &str) -> Option<(u64, String, String, String)> {
    let mut fields = (None, None, None, None);
    for line in text.lines().take(12) {
        if let Some(v) = line.strip_prefix("boot: ") {
            fields.0 = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("why: ") {
            fields.1 = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("action: ") {
            fields.2 = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("uptime: ") {
            fields.3 = Some(v.trim().to_string());
        }
    }
    Some((
        fields.0?,
        fields.1?,
        fields.2?,
        fields.3.unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            boot: 7,
            why: "crash loop of box: more than 3 restarts within 1m (crash_loop.action = reboot)"
                .into(),
            action: "reboot".into(),
            uptime: Duration::from_millis(12_345),
            clock: "2026-12-06 10:00:00 UTC".into(),
            box_exit: Some("exited with status 3".into()),
            shutdown: vec!["box stopped after 3ms".into()],
            log: (0..20).map(|i| format!("[ {i}.000] line {i}")).collect(),
            box_output: "demo: crashing\n".into(),
            pstore: vec![("dmesg-ramoops-0".into(), "Oops\n".into())],
        }
    }

    #[test]
    fn a_report_reads_back_and_fills_its_file() {
        let bytes = format(&report());
        assert_eq!(bytes.len(), REPORT_LEN);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("boxinit shutdown report\nboot: 7\nwhy: crash loop"));
        for part in [
            "uptime: 12.3s",
            "box's last exit: exited with status 3",
            "-- shutdown\nbox stopped after 3ms",
            "-- pstore dmesg-ramoops-0",
            "-- the box's last output\ndemo: crashing\n",
            "[ 19.000] line 19\n-- end of report",
        ] {
            assert!(text.contains(part), "{part}");
        }
        assert_eq!(
            summary(&text),
            Some((7, report().why, "reboot".to_string(), "12.3s".to_string()))
        );
        assert_eq!(summary("boxinit shutdown report 1 of 4: empty"), None);
    }

    #[test]
    fn a_long_log_and_output_lose_their_oldest_parts() {
        let mut r = report();
        r.log = (0..2000)
            .map(|i| format!("line {i} {}", "x".repeat(40)))
            .collect();
        r.box_output = (0..1000).map(|i| format!("out {i}\n")).collect();
        let text = String::from_utf8(format(&r)).unwrap();
        assert_eq!(text.len(), REPORT_LEN);
        assert!(text.contains("line 1999 ") && !text.contains("line 0 "));
        assert!(text.contains("out 999\n") && !text.contains("out 0\n"));
        assert!(text.trim_end().ends_with("-- end of report"));
        // a why that alone fills the file is cut, never a panic
        r.why = "é".repeat(REPORT_LEN);
        assert_eq!(format(&r).len(), REPORT_LEN);
    }

    #[test]
    fn durations_and_tails() {
        assert_eq!(seconds(Duration::from_millis(900)), "0.9s");
        assert_eq!(seconds(Duration::from_secs(245)), "4m05s");
        assert_eq!(seconds(Duration::from_secs(7380)), "2h03m");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("ab", 10), "ab");
    }
}
