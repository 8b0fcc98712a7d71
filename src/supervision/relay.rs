//! The box's output through PID 1, so that its last lines can go into the shutdown report
//! (`[report] box_output`): the box gets the slave of a pseudo-terminal as its console (a
//! real tty: `isatty`, job control, line editing and Ctrl-C work as on the console), and a
//! thread of PID 1 copies the master's output to the console, keeping the last few KiB, and
//! what is typed on the console to the master. The console is put in raw mode meanwhile (the
//! pty does the line editing and the echo), and back at shutdown. The thread only reads and
//! writes these fds; it takes no lock PID 1's loop holds besides the tail's own.
//!
//! The master is non-blocking (issue 17, item 11): a box that does not read its console
//! while much is typed fills the pty's input (about 19 KiB on Linux 6.x), and a blocking
//! write of the typed bytes would stop the thread, so nothing would read the box's output,
//! and the box would block on its next write: both stuck for good. Typed bytes wait in a
//! queue of [`TYPED_MAX`] instead, written as the master takes them; beyond it they are
//! dropped, said once with their count (what a console does with input nobody reads, said).

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use crate::sys::Sys;

/// How much of the box's output is kept.
pub const TAIL_MAX: usize = 4 * 1024;

/// Typed bytes waiting for the box to make room in its pty (which holds about 19 KiB
/// itself), at most: beyond, they are dropped and counted.
pub const TYPED_MAX: usize = 4 * 1024;

/// The last bytes the box wrote, shared with the thread that copies them.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<u8>>>);

impl Tail {
    /// Appends `bytes`, dropping the oldest beyond [`TAIL_MAX`].
    pub fn push(&self, bytes: &[u8]) {
        let mut ring = match self.0.lock() {
            Ok(ring) => ring,
            Err(poisoned) => poisoned.into_inner(),
        };
        ring.extend(bytes);
        let extra = ring.len().saturating_sub(TAIL_MAX);
        ring.drain(..extra);
    }

    /// The kept output as text (the pty's `\r` gone).
    pub fn text(&self) -> String {
        let ring = match self.0.lock() {
            Ok(ring) => ring,
            Err(poisoned) => poisoned.into_inner(),
        };
        let bytes: Vec<u8> = ring.iter().copied().filter(|b| *b != b'\r').collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A running relay.
pub struct Relay {
    slave: CString,
    /// Kept open so the master never reads a hang-up between two runs of the box.
    _slave_fd: OwnedFd,
    tail: Tail,
    /// Written once to tell the thread to copy what is left and stop.
    stop: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The console's mode before, put back at the end.
    console_mode: Option<rustix::termios::Termios>,
}

impl Relay {
    /// Opens a pty whose slave the box's user (`uid`, `gid`) may open, and starts the thread.
    pub fn start(sys: &mut dyn Sys, uid: Option<u32>, gid: Option<u32>) -> io::Result<Relay> {
        use rustix::fs::{Mode, OFlags};
        let (master, slave) = open_pty()?;
        let slave_fd = rustix::fs::open(
            slave.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if uid.is_some() || gid.is_some() {
            let path = std::path::PathBuf::from(slave.to_string_lossy().into_owned());
            sys.chown(&path, uid, gid)?;
        }
        let stdin = rustix::stdio::stdin();
        let console_mode = match rustix::termios::isatty(stdin) {
            true => rustix::termios::tcgetattr(stdin).ok(),
            false => None,
        };
        if let Some(mode) = &console_mode {
            // Raw input (the pty edits lines, echoes and turns Ctrl-C into SIGINT), but keep
            // the output's newline translation for whatever else writes to the console.
            let mut raw = mode.clone();
            raw.make_raw();
            raw.output_modes |=
                rustix::termios::OutputModes::OPOST | rustix::termios::OutputModes::ONLCR;
            let _ = rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw);
        }
        let (stop_read, stop) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let tail = Tail::default();
        let thread_tail = tail.clone();
        let console = Console {
            input: console_mode.is_some().then(rustix::stdio::stdin),
            output: rustix::stdio::stdout(),
        };
        let thread = std::thread::Builder::new()
            .name("relay".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                copy(&master, &stop_read, &thread_tail, console);
            })?;
        Ok(Relay {
            slave,
            _slave_fd: slave_fd,
            tail,
            stop,
            thread: Some(thread),
            console_mode,
        })
    }

    /// The slave's path, the box's console.
    pub fn console(&self) -> CString {
        self.slave.clone()
    }

    /// The box's last output.
    pub fn tail(&self) -> Tail {
        self.tail.clone()
    }

    /// Copies what the box wrote and is still in the pty to the console, stops the thread
    /// (waiting at most `limit`), and puts the console's mode back.
    pub fn stop(mut self, limit: Duration) {
        let _ = rustix::io::write(&self.stop, b"x");
        if let Some(thread) = self.thread.take() {
            let deadline = std::time::Instant::now() + limit;
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        if let Some(mode) = &self.console_mode {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                mode,
            );
        }
    }
}

/// A new pty: its master, non-blocking (see the module's doc), and its slave's path.
fn open_pty() -> io::Result<(OwnedFd, CString)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    rustix::io::ioctl_fionbio(&master, true)?;
    let slave = ptsname(&master, Vec::new())?;
    Ok((master, slave))
}

/// Typed bytes on their way to the box: queued while its pty is full, at most
/// [`TYPED_MAX`]; the rest dropped, counted and said.
#[derive(Default)]
struct Typed {
    queue: VecDeque<u8>,
    /// Dropped since the box last took all that was queued.
    dropped: usize,
    /// Dropped in all.
    total: usize,
}

impl Typed {
    /// Queues `bytes`, dropping what does not fit.
    fn push(&mut self, bytes: &[u8]) {
        let room = TYPED_MAX.saturating_sub(self.queue.len());
        let (kept, lost) = bytes.split_at(bytes.len().min(room));
        self.queue.extend(kept);
        self.drop_bytes(lost.len());
    }

    fn drop_bytes(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if self.dropped == 0 {
            log::warn!(
                "relay: the box is not reading its console; what is typed is dropped until it does"
            );
        }
        self.dropped = self.dropped.saturating_add(n);
        self.total = self.total.saturating_add(n);
    }

    /// Writes what the master takes now, without waiting.
    fn send(&mut self, master: &OwnedFd) {
        while !self.queue.is_empty() {
            let (front, _) = self.queue.as_slices();
            match rustix::io::write(master, front) {
                Ok(n) if n > 0 => {
                    self.queue.drain(..n.min(self.queue.len()));
                }
                Err(rustix::io::Errno::INTR) => {}
                // full: the rest when it has room
                Ok(_) | Err(rustix::io::Errno::AGAIN) => break,
                // (should not happen: our slave stays open) not waited for
                Err(_) => {
                    let n = self.queue.len();
                    self.queue.clear();
                    self.drop_bytes(n);
                }
            }
        }
        if self.queue.is_empty() {
            self.say_dropped();
        }
    }

    /// Says how much was dropped, once the box took what was queued (or at the end).
    fn say_dropped(&mut self) {
        if self.dropped > 0 {
            log::warn!(
                "relay: dropped {} typed byte(s) the box did not read",
                self.dropped
            );
            self.dropped = 0;
        }
    }
}

/// The console's side of the relay: what is typed (`None`: not relayed, the console is no
/// tty) and where the box's output goes. Init's stdin and stdout; pipes in the tests.
struct Console<'a> {
    input: Option<BorrowedFd<'a>>,
    output: BorrowedFd<'a>,
}

/// The thread: master to console (and the tail), console to master, until told to stop;
/// then what is left in the master. Never waits on the master (non-blocking, see
/// [`open_pty`]). Returns the count of typed bytes dropped.
fn copy(master: &OwnedFd, stop: &OwnedFd, tail: &Tail, console: Console<'_>) -> usize {
    let mut buf = [0u8; 4096];
    let mut typed_bytes = Typed::default();
    let mut input = console.input;
    loop {
        let to_master = match typed_bytes.queue.is_empty() {
            true => PollFlags::IN,
            false => PollFlags::IN | PollFlags::OUT,
        };
        let mut fds = vec![
            PollFd::new(master, to_master),
            PollFd::new(stop, PollFlags::IN),
        ];
        if let Some(input) = &input {
            fds.push(PollFd::new(input, PollFlags::IN));
        }
        if rustix::event::poll(&mut fds, None).is_err() {
            continue;
        }
        let ready = |i: usize| fds.get(i).map_or(PollFlags::empty(), |f| f.revents());
        let (from_master, stopping, typed) = (ready(0), ready(1), ready(2));
        if from_master.contains(PollFlags::IN) {
            forward(master, &mut buf, tail, console.output);
        } else if from_master.intersects(PollFlags::HUP | PollFlags::ERR) {
            // no slave open (should not happen: ours stays open): do not spin
            std::thread::sleep(Duration::from_millis(50));
        }
        if let (Some(from), false) = (input, typed.is_empty()) {
            match rustix::io::read(from, &mut buf) {
                Ok(n) if n > 0 => typed_bytes.push(buf.get(..n).unwrap_or_default()),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                // a hung-up console reads as ready and empty for ever: not polled again
                end => {
                    let why = match end {
                        Err(e) => e.to_string(),
                        Ok(_) => "end of file".into(),
                    };
                    log::warn!("relay: the console's input ended ({why}); what is typed no longer reaches the box");
                    input = None;
                }
            }
        }
        if !typed_bytes.queue.is_empty() {
            typed_bytes.send(master);
        }
        if !stopping.is_empty() {
            // what the box wrote last, still in the pty
            loop {
                let mut one = [PollFd::new(master, PollFlags::IN)];
                match rustix::event::poll(&mut one, Some(&rustix::time::Timespec::default())) {
                    Ok(n) if n > 0 && one[0].revents().contains(PollFlags::IN) => {
                        if !forward(master, &mut buf, tail, console.output) {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            typed_bytes.say_dropped();
            return typed_bytes.total;
        }
    }
}

/// One read from the master, written to the console and kept; false when nothing came.
fn forward(master: &OwnedFd, buf: &mut [u8], tail: &Tail, output: BorrowedFd<'_>) -> bool {
    match rustix::io::read(master, &mut *buf) {
        Ok(n) if n > 0 => {
            let bytes = buf.get(..n).unwrap_or_default();
            let _ = write_all(output, bytes);
            tail.push(bytes);
            true
        }
        _ => false,
    }
}

fn write_all(fd: impl AsFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(&fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_bytes_as_text() {
        let tail = Tail::default();
        tail.push(b"first\r\n");
        assert_eq!(tail.text(), "first\n");
        let big: Vec<u8> = (0..TAIL_MAX + 100).map(|i| b'a' + (i % 26) as u8).collect();
        tail.push(&big);
        let text = tail.text();
        assert_eq!(text.len(), TAIL_MAX);
        assert!(!text.contains("first"));
        assert!(big.ends_with(text.as_bytes()));
    }

    /// Issue 17, item 11: a box that does not read its console while much is typed, and
    /// writes much meanwhile. A real pty (the box's side: its slave, in the default cooked
    /// mode), pipes for the console. Before: the thread blocked writing typed bytes to the
    /// master (the pty holds about 19 KiB unread), so it no longer read the box's output,
    /// whose writes blocked in turn once the other way was full (about 14 KiB): both stuck
    /// for good.
    #[test]
    fn typed_input_the_box_does_not_read_does_not_stop_its_output() {
        use std::sync::mpsc;
        const OUTPUT: usize = 1024 * 1024;
        const TYPED: usize = 256 * 1024;
        let (master, slave) = open_pty().expect("a pty");
        let slave = rustix::fs::open(
            slave.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let (typed_read, typed_write) = rustix::pipe::pipe().unwrap();
        let (out_read, out_write) = rustix::pipe::pipe().unwrap();
        let (stop_read, stop) = rustix::pipe::pipe().unwrap();
        let tail = Tail::default();
        let thread_tail = tail.clone();
        let relay = std::thread::spawn(move || {
            let console = Console {
                input: Some(typed_read.as_fd()),
                output: out_write.as_fd(),
            };
            copy(&master, &stop_read, &thread_tail, console)
        });
        // the console's screen: counts what reaches it
        let screen = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut seen = 0;
            while let Ok(n @ 1..) = rustix::io::read(&out_read, &mut buf) {
                seen += n;
            }
            seen
        });
        // the keyboard: lines the box never reads
        let (typed_done, typed_done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let line = [b"typed line, never read".as_slice(), &[b'x'; 41], b"\n"].concat();
            for _ in 0..TYPED / line.len() {
                write_all(&typed_write, &line).unwrap();
            }
            let _ = typed_done.send(());
            // the keyboard stays plugged in
            std::thread::sleep(Duration::from_secs(3600));
        });
        std::thread::sleep(Duration::from_millis(200));
        // the box: writes much, reads nothing
        let (box_done, box_done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let line = [b"box output".as_slice(), &[b'y'; 53], b"\n"].concat();
            for _ in 0..OUTPUT / line.len() {
                write_all(&slave, &line).unwrap();
            }
            let _ = box_done.send(());
            std::thread::sleep(Duration::from_secs(3600));
        });
        box_done_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the box's 1 MiB of output reached the console within 20 s");
        typed_done_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the relay took what was typed within 20 s");
        write_all(&stop, b"x").unwrap();
        let dropped = relay.join().unwrap();
        // the pty and the queue hold some, the rest is dropped
        assert!(
            (TYPED - 20 * 1024 - TYPED_MAX..TYPED).contains(&dropped),
            "{dropped} typed bytes dropped"
        );
        let seen = screen.join().unwrap();
        assert!(seen >= OUTPUT, "only {seen} bytes reached the console");
        assert!(tail
            .text()
            .ends_with(&format!("box output{}\n", "y".repeat(53))));
    }

    /// A console whose input ends (a hang-up: ready to read, and empty, for ever) is no
    /// longer polled: before, the thread read nothing in a loop, a core's worth of CPU.
    #[test]
    fn an_input_that_ended_is_not_read_in_a_loop() {
        let (master, _slave_name) = open_pty().expect("a pty");
        let (typed_read, typed_write) = rustix::pipe::pipe().unwrap();
        drop(typed_write);
        let (_out_read, out_write) = rustix::pipe::pipe().unwrap();
        let (stop_read, stop) = rustix::pipe::pipe().unwrap();
        let relay = std::thread::spawn(move || {
            let console = Console {
                input: Some(typed_read.as_fd()),
                output: out_write.as_fd(),
            };
            copy(&master, &stop_read, &Tail::default(), console);
            rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime)
        });
        std::thread::sleep(Duration::from_millis(500));
        write_all(&stop, b"x").unwrap();
        let cpu = relay.join().unwrap();
        let cpu = Duration::new(cpu.tv_sec as u64, cpu.tv_nsec as u32);
        assert!(
            cpu < Duration::from_millis(100),
            "the relay used {cpu:?} of CPU"
        );
    }
}
