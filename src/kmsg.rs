//! Logging: the `log` facade's backend, writing to `/dev/kmsg` once it exists and to the
//! console (stderr) before that. It does not decide what to log; callers do, once, where the
//! decision is made.
//!
//! kmsg records carry their priority (`<3>` error … `<7>` debug), so the kernel prints them on
//! the console according to its own `loglevel=`/`quiet` setting and keeps them for `dmesg`.

use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;

/// The logger. Lines look like `boxinit: message` (kmsg adds the timestamp).
pub struct Kmsg {
    file: OnceLock<File>,
}

static LOGGER: Kmsg = Kmsg {
    file: OnceLock::new(),
};

/// Installs the logger (writing to stderr until [`open_kmsg`] succeeds) at `level`.
pub fn init(level: log::LevelFilter) {
    // set_logger fails only when a logger is already set: then ours is the one in place.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Switches the output to `/dev/kmsg`. Call after `/dev` is mounted.
pub fn open_kmsg() -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open("/dev/kmsg")?;
    // A second call keeps the first file: both point at the same kmsg.
    let _ = LOGGER.file.set(file);
    Ok(())
}

/// The kmsg priority of a log level (syslog numbering).
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Formats one record as kmsg lines: every line of a multi-line message gets its own record,
/// since the kernel keeps one line per record.
fn format_record(level: log::Level, message: &str) -> String {
    let mut out = String::new();
    for line in message.lines() {
        out.push_str(&format!("<{}>boxinit: {}\n", priority(level), line));
    }
    out
}

impl log::Log for Kmsg {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = format_record(record.level(), &record.args().to_string());
        match self.file.get() {
            // One write(2) per kmsg record: the kernel takes one record per write. Each keeps
            // its newline: a record without one stays open for a continuation, and the console
            // shows it only when the next message arrives.
            Some(mut file) => {
                for line in text.split_inclusive('\n') {
                    let _ = file.write_all(line.as_bytes());
                }
            }
            None => {
                // Before /dev exists: plain lines on the console, without the priority prefix.
                let plain: String = text
                    .lines()
                    .map(|l| format!("{}\n", strip_priority(l)))
                    .collect();
                let _ = std::io::stderr().write_all(plain.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

fn strip_priority(line: &str) -> &str {
    match line.split_once('>') {
        Some((prefix, rest)) if prefix.starts_with('<') => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_line_with_priority() {
        assert_eq!(
            format_record(log::Level::Error, "a\nb"),
            "<3>boxinit: a\n<3>boxinit: b\n"
        );
        assert_eq!(format_record(log::Level::Info, "x"), "<6>boxinit: x\n");
        assert_eq!(format_record(log::Level::Debug, "x"), "<7>boxinit: x\n");
    }

    #[test]
    fn console_lines_lose_the_priority() {
        assert_eq!(strip_priority("<6>boxinit: x"), "boxinit: x");
        assert_eq!(strip_priority("boxinit: <x>"), "boxinit: <x>");
    }
}
