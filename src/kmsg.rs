//! Logging: the `log` facade's backend, writing to `/dev/kmsg` once it exists and to the
//! console (stderr) before that. It does not decide what to log; callers do, once, where the
//! decision is made.
//!
//! It also keeps boxinit's own last lines (`recent`), bounded, for the shutdown report on
//! the card: the kernel's buffer is gone after the reboot.
//!
//! kmsg records carry their priority (`<3>` error … `<7>` debug), so the kernel prints them on
//! the console according to its own `loglevel=`/`quiet` setting and keeps them for `dmesg`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// How long lines that repeat are held back before their count is said anyway.
const REPEAT_SAY_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Consecutive identical lines collapsed, as syslogd does: the first is written, the ones
/// after it only counted, and `last message repeated N times` said before the next different
/// line (or after [`REPEAT_SAY_AFTER`] of repeats), so that a program failing in a loop
/// cannot flood the console or kmsg (the kernel's own rate limit is off for `/dev/kmsg` when
/// the command line says `printk.devkmsg=on`, and the console has none).
#[derive(Debug, Default)]
struct Repeats {
    last: Option<(log::Level, String)>,
    /// Lines held back since the last one written.
    held: u64,
    /// When the first of them came.
    since: Option<std::time::Instant>,
}

impl Repeats {
    /// For `message` at `now`: how many repeats to say first (and at what level), and whether
    /// to write the message itself.
    fn next(
        &mut self,
        level: log::Level,
        message: &str,
        now: std::time::Instant,
    ) -> (Option<(log::Level, u64)>, bool) {
        if let Some((last_level, last)) = &self.last {
            if *last_level == level && last == message {
                self.held += 1;
                let since = *self.since.get_or_insert(now);
                if now.saturating_duration_since(since) < REPEAT_SAY_AFTER {
                    return (None, false);
                }
                let held = std::mem::take(&mut self.held);
                self.since = None;
                return (Some((level, held)), false);
            }
        }
        let said = match (&self.last, self.held) {
            (Some((last_level, _)), held) if held > 0 => Some((*last_level, held)),
            _ => None,
        };
        self.held = 0;
        self.since = None;
        self.last = Some((level, message.to_string()));
        (said, true)
    }
}

static REPEATS: Mutex<Repeats> = Mutex::new(Repeats {
    last: None,
    held: 0,
    since: None,
});

/// The line that stands for `held` lines held back.
fn repeated(held: u64) -> String {
    match held {
        1 => "last message repeated 1 time".to_string(),
        n => format!("last message repeated {n} times"),
    }
}

/// The logger. Lines look like `boxinit: message` (kmsg adds the timestamp).
pub struct Kmsg {
    file: OnceLock<File>,
    /// Where lines go without kmsg once `/proc` is there: the console (fd 2) opened again as
    /// PID 1's own non-blocking open file description ([`open_console`]).
    console: OnceLock<OwnedFd>,
    /// Lines the console did not take ([`write_or_drop`]), to be said.
    dropped: AtomicU64,
}

static LOGGER: Kmsg = Kmsg {
    file: OnceLock::new(),
    console: OnceLock::new(),
    dropped: AtomicU64::new(0),
};

/// boxinit's last lines, `[seconds since boot] message`, oldest first.
static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
/// How many bytes of lines [`RECENT`] keeps.
const RECENT_MAX: usize = 12 * 1024;

/// Keeps `line` among the recent ones, dropping the oldest beyond [`RECENT_MAX`] bytes.
fn remember(line: String) {
    let mut recent = match RECENT.lock() {
        Ok(recent) => recent,
        Err(poisoned) => poisoned.into_inner(),
    };
    recent.push_back(line);
    let mut total: usize = recent.iter().map(String::len).sum();
    while total > RECENT_MAX {
        match recent.pop_front() {
            Some(old) => total -= old.len(),
            None => break,
        }
    }
}

/// boxinit's last lines (at most [`RECENT_MAX`] bytes), oldest first, each with the seconds
/// since boot when it was logged.
pub fn recent() -> Vec<String> {
    match RECENT.lock() {
        Ok(recent) => recent.iter().cloned().collect(),
        Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
    }
}

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

/// Gives the lines that go to the console (`BOXINIT_LOG=console`, or no `/dev/kmsg`) an open
/// file description of their own, non-blocking: fd 2 opened again through `/proc` (call once
/// it is mounted). fds 0-2 themselves stay blocking: they are the kernel's open file
/// description of `/dev/console`, which a program without a `console` of its own inherits,
/// and `O_NONBLOCK` there would be its too. Without `/proc` (or for a socket) stderr is kept.
pub fn open_console() -> std::io::Result<()> {
    let fd = reopen_nonblocking(2)?;
    // A second call keeps the first.
    let _ = LOGGER.console.set(fd);
    Ok(())
}

/// `fd` opened again for writing, as a new open file description with `O_NONBLOCK`.
fn reopen_nonblocking(fd: i32) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(
        format!("/proc/self/fd/{fd}").as_str(),
        flags,
        Mode::empty(),
    )?)
}

/// Writes `text` to the non-blocking `fd` without waiting: a console that does not take it
/// now (stopped with Ctrl-S, a full pipe) loses the line, counted in `dropped`, instead of
/// holding PID 1's loop; the count is said before the next line it takes. A line cut short
/// counts as lost. (kmsg, when there is one, has every line.)
fn write_or_drop(fd: BorrowedFd<'_>, text: &str, dropped: &AtomicU64) {
    let lost = dropped.load(Ordering::SeqCst);
    let text = match lost {
        0 => text.to_string(),
        n => format!("boxinit: {n} log lines dropped: the console was not taking output\n{text}"),
    };
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        match rustix::io::write(fd, rest) {
            Ok(n) if n > 0 => rest = rest.get(n..).unwrap_or_default(),
            Err(rustix::io::Errno::INTR) => {}
            // EAGAIN (not taking output now), 0, or an error: the rest is dropped
            _ => break,
        }
    }
    match rest.len() == text.len() {
        true => {
            dropped.fetch_add(1, Ordering::SeqCst);
        }
        false => {
            dropped.fetch_sub(lost, Ordering::SeqCst);
            if !rest.is_empty() {
                dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
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

/// The longest write `/dev/kmsg` takes, prefix and newline included: the kernel refuses
/// (EINVAL) a record longer than `LOG_LINE_MAX`, 1024 - 32 bytes in 6.1 (`devkmsg_write` in
/// kernel/printk/printk.c; newer kernels take 1024). The line is then lost entirely.
pub const RECORD_MAX: usize = 992;

/// Formats one record as kmsg lines: every line of a multi-line message gets its own record,
/// since the kernel keeps one line per record, and a line too long for one record is split
/// into several (at a space where there is one), each with the `boxinit: ` prefix.
fn format_record(level: log::Level, message: &str) -> String {
    let prefix = format!("<{}>boxinit: ", priority(level));
    // room for the text of one record: the prefix and the newline take the rest
    let room = RECORD_MAX.saturating_sub(prefix.len() + 1).max(1);
    let mut out = String::with_capacity(message.len() + prefix.len() + 1);
    for line in message.lines() {
        let mut rest = line;
        loop {
            let (piece, tail) = next_piece(rest, room);
            out.push_str(&prefix);
            out.push_str(piece);
            out.push('\n');
            if tail.is_empty() {
                break;
            }
            rest = tail;
        }
    }
    out
}

/// The first piece of `line` that fits in `room` bytes, and the rest: cut after the last space
/// that fits (the space is dropped), else at the last character boundary that fits, and never
/// empty while `line` is not.
fn next_piece(line: &str, room: usize) -> (&str, &str) {
    if line.len() <= room {
        return (line, "");
    }
    let mut end = room;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    // After the last ", " (the items of a list stay whole), else after the last space.
    let head = line.get(..end).unwrap_or_default();
    let at = head
        .rfind(", ")
        .map(|comma| comma + 1)
        .or_else(|| head.rfind(' '));
    let cut = match at {
        Some(space) if space > 0 => space + 1,
        // no whole character fits: take one anyway
        _ if end == 0 => line.chars().next().map_or(line.len(), char::len_utf8),
        _ => end,
    };
    let (head, tail) = line.split_at(cut);
    (head.trim_end_matches(' '), tail)
}

/// `line` cut into the pieces [`format_record`] writes.
#[cfg(test)]
fn split_line(line: &str, room: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = line;
    loop {
        let (piece, tail) = next_piece(rest, room);
        pieces.push(piece);
        if tail.is_empty() {
            return pieces;
        }
        rest = tail;
    }
}

impl log::Log for Kmsg {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let (said, write) = match REPEATS.lock() {
            Ok(mut repeats) => repeats.next(record.level(), &message, std::time::Instant::now()),
            Err(poisoned) => {
                poisoned
                    .into_inner()
                    .next(record.level(), &message, std::time::Instant::now())
            }
        };
        if let Some((level, held)) = said {
            self.write(level, &repeated(held));
        }
        if write {
            self.write(record.level(), &message);
        }
    }

    fn flush(&self) {}
}

impl Kmsg {
    /// One message out: kept among the recent lines, written to kmsg (or the console).
    fn write(&self, level: log::Level, message: &str) {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        remember(format!(
            "[{:5}.{:03}] {message}",
            t.tv_sec,
            t.tv_nsec / 1_000_000
        ));
        let text = format_record(level, message);
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
                // Without kmsg (before /dev exists, BOXINIT_LOG=console): plain lines on the
                // console, without the priority prefix; never waiting once /proc is there.
                let plain: String = text
                    .lines()
                    .map(|l| format!("{}\n", strip_priority(l)))
                    .collect();
                match self.console.get() {
                    Some(fd) => write_or_drop(fd.as_fd(), &plain, &self.dropped),
                    None => {
                        let _ = std::io::stderr().write_all(plain.as_bytes());
                    }
                }
            }
        }
    }
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

    /// Issue 17: a line repeated in a loop is written once, then counted; the count is said
    /// before the next different line, or after 10 s of repeats.
    #[test]
    fn repeated_lines_are_collapsed() {
        use log::Level::{Error, Info};
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = Repeats::default();
        type Step = (
            log::Level,
            &'static str,
            u64,
            Option<(log::Level, u64)>,
            bool,
        );
        let script: &[Step] = &[
            (Error, "cannot x", 0, None, true),
            (Error, "cannot x", 1, None, false),
            (Error, "cannot x", 2, None, false),
            (Info, "other", 3, Some((Error, 2)), true),
            // the same text at another level is another line
            (Error, "other", 4, None, true),
            (Error, "other", 5, None, false),
            (Error, "other", 9_000, None, false),
            // held back for 10 s: said, and counting starts again
            (Error, "other", 10_005, Some((Error, 3)), false),
            (Error, "other", 10_006, None, false),
            (Info, "done", 10_007, Some((Error, 1)), true),
            (Info, "done2", 10_008, None, true),
        ];
        for (n, (level, message, ms, said, write)) in script.iter().enumerate() {
            assert_eq!(
                r.next(*level, message, at(*ms)),
                (*said, *write),
                "step {n}: {message}"
            );
        }
        assert_eq!(repeated(1), "last message repeated 1 time");
        assert_eq!(repeated(7), "last message repeated 7 times");
    }

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
    fn long_lines_are_split_into_records_the_kernel_takes() {
        // The boot partition's error lists every block device seen: far over 1 KiB.
        let devices: Vec<String> = (0..60)
            .map(|i| format!("/dev/vd{i}1 (FAT, label DISK{i}, UUID 1234-ABCD)"))
            .collect();
        let message = format!("boot partition LABEL=BOOT not found after 10s; block devices seen: {}; set [boot] device", devices.join(", "));
        assert!(message.len() > 2 * RECORD_MAX);
        let text = format_record(log::Level::Error, &message);
        let records: Vec<&str> = text.split_inclusive('\n').collect();
        assert!(records.len() >= 3, "{records:?}");
        for record in &records {
            assert!(
                record.len() <= RECORD_MAX,
                "{} bytes: {record}",
                record.len()
            );
            assert!(record.starts_with("<3>boxinit: ") && record.ends_with('\n'));
        }
        // Nothing is lost: the pieces put back together (a space where they were cut) are the line.
        let joined: Vec<&str> = records
            .iter()
            .map(|r| r.trim_start_matches("<3>boxinit: ").trim_end_matches('\n'))
            .collect();
        assert_eq!(joined.join(" "), message);
        // Cut at a space, so a device's description stays whole at the end of a piece.
        assert!(joined[0].ends_with(','), "{}", joined[0]);
    }

    #[test]
    fn splitting_never_cuts_a_character_and_always_progresses() {
        assert_eq!(split_line("", 5), [""]);
        assert_eq!(split_line("abc", 5), ["abc"]);
        assert_eq!(split_line("aaaaaaaaaa", 4), ["aaaa", "aaaa", "aa"]);
        assert_eq!(split_line("ab cd ef", 5), ["ab", "cd ef"]);
        assert_eq!(split_line("ééé", 3), ["é", "é", "é"]);
        assert_eq!(split_line("€x", 1), ["€", "x"]);
    }

    #[test]
    fn recent_lines_are_kept_and_bounded() {
        for i in 0..2000 {
            remember(format!("line {i}"));
        }
        let kept = recent();
        assert!(kept.iter().map(String::len).sum::<usize>() <= RECENT_MAX);
        assert_eq!(kept.last().map(String::as_str), Some("line 1999"));
        assert!(!kept.iter().any(|l| l == "line 0"));
    }

    #[test]
    fn console_lines_lose_the_priority() {
        assert_eq!(strip_priority("<6>boxinit: x"), "boxinit: x");
        assert_eq!(strip_priority("boxinit: <x>"), "boxinit: <x>");
    }
}

#[cfg(test)]
mod console_tests {
    use super::*;

    /// Issue 17, item 11: a console that takes no output (here a full pipe) loses lines,
    /// counted, instead of holding PID 1: fd 2's own description stays blocking (shared with
    /// the box), the logger's is opened again non-blocking; the count is said afterwards.
    #[test]
    fn a_console_that_takes_no_output_loses_lines_instead_of_blocking() {
        use std::os::fd::AsRawFd;
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        let ours = reopen_nonblocking(writer.as_raw_fd()).unwrap();
        let shared = rustix::fs::fcntl_getfl(&writer).unwrap();
        assert!(
            !shared.contains(rustix::fs::OFlags::NONBLOCK),
            "fd 2 changed"
        );
        // fill the pipe (its size, written through the blocking fd: it fits)
        let size = rustix::pipe::fcntl_getpipe_size(&writer).unwrap();
        let full = vec![b'x'; size];
        assert_eq!(rustix::io::write(&writer, &full), Ok(size));
        let dropped = AtomicU64::new(0);
        let (tx, rx) = std::sync::mpsc::channel();
        let fd = ours.try_clone().unwrap();
        std::thread::spawn(move || {
            let dropped = AtomicU64::new(0);
            write_or_drop(fd.as_fd(), "boxinit: one\n", &dropped);
            write_or_drop(fd.as_fd(), "boxinit: two\n", &dropped);
            let _ = tx.send(dropped.load(Ordering::SeqCst));
        });
        let lost = rx.recv_timeout(std::time::Duration::from_secs(3));
        assert_eq!(lost, Ok(2), "the write waited for the console");
        // drained: the next line says how many were lost
        let mut buf = vec![0u8; 1 << 20];
        let _ = rustix::io::read(&reader, &mut buf);
        dropped.store(2, Ordering::SeqCst);
        rustix::fs::fcntl_setfl(&reader, rustix::fs::OFlags::NONBLOCK).unwrap();
        while rustix::io::read(&reader, &mut buf).is_ok_and(|n| n > 0) {}
        write_or_drop(ours.as_fd(), "boxinit: three\n", &dropped);
        let n = rustix::io::read(&reader, &mut buf).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&buf[..n]),
            "boxinit: 2 log lines dropped: the console was not taking output\nboxinit: three\n"
        );
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
    }
}
