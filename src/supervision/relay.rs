//! The box's output through PID 1, so that its last lines can go into the shutdown report
//! (`[report] box_output`): the box gets the slave of a pseudo-terminal as its console (a
//! real tty: `isatty`, job control, line editing and Ctrl-C work as on the console), and a
//! thread of PID 1 copies the master's output to the console, keeping the last few KiB, and
//! what is typed on the console to the master. The console is put in raw mode meanwhile (the
//! pty does the line editing and the echo), and back at shutdown. The thread only reads and
//! writes these fds; it takes no lock PID 1's loop holds besides the tail's own.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use crate::sys::Sys;

/// How much of the box's output is kept.
pub const TAIL_MAX: usize = 4 * 1024;

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
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let slave = ptsname(&master, Vec::new())?;
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
        let relay_input = console_mode.is_some();
        let thread = std::thread::Builder::new()
            .name("relay".into())
            .stack_size(64 * 1024)
            .spawn(move || copy(&master, &stop_read, &thread_tail, relay_input))?;
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

/// The thread: master to console (and the tail), console to master, until told to stop;
/// then what is left in the master.
fn copy(master: &OwnedFd, stop: &OwnedFd, tail: &Tail, relay_input: bool) {
    let stdin = rustix::stdio::stdin();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = vec![
            PollFd::new(master, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        if relay_input {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        if rustix::event::poll(&mut fds, None).is_err() {
            continue;
        }
        let ready = |i: usize| fds.get(i).map_or(PollFlags::empty(), |f| f.revents());
        let (from_master, stopping, typed) = (ready(0), ready(1), ready(2));
        if from_master.contains(PollFlags::IN) {
            forward(master, &mut buf, tail);
        } else if from_master.intersects(PollFlags::HUP | PollFlags::ERR) {
            // no slave open (should not happen: ours stays open): do not spin
            std::thread::sleep(Duration::from_millis(50));
        }
        if typed.contains(PollFlags::IN) {
            if let Ok(n) = rustix::io::read(stdin, &mut buf) {
                let _ = write_all(master, buf.get(..n).unwrap_or_default());
            }
        }
        if !stopping.is_empty() {
            // what the box wrote last, still in the pty
            loop {
                let mut one = [PollFd::new(master, PollFlags::IN)];
                match rustix::event::poll(&mut one, Some(&rustix::time::Timespec::default())) {
                    Ok(n) if n > 0 && one[0].revents().contains(PollFlags::IN) => {
                        if !forward(master, &mut buf, tail) {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        }
    }
}

/// One read from the master, written to the console and kept; false when nothing came.
fn forward(master: &OwnedFd, buf: &mut [u8], tail: &Tail) -> bool {
    match rustix::io::read(master, &mut *buf) {
        Ok(n) if n > 0 => {
            let bytes = buf.get(..n).unwrap_or_default();
            let _ = write_all(rustix::stdio::stdout(), bytes);
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
}
