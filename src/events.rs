//! The event sources of the single-threaded loop: a signalfd for every signal (all are blocked,
//! none has a handler), the kernel's netlink uevent socket, and `waitpid` for reaping. `poll`
//! waits on both fds with the next timer as its timeout. What to do with an event is decided in
//! `supervision` (`event_loop`, `supervisor`) and `shutdown`, not here.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::event::{PollFd, PollFlags};
use rustix::process::{WaitOptions, WaitStatus};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit(code)`.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with status {code}"),
            Exit::Signal(sig) => match Signal::try_from(*sig) {
                Ok(s) => write!(f, "was killed by {}", s.as_str()),
                Err(_) => write!(f, "was killed by signal {sig}"),
            },
        }
    }
}

/// Blocks every signal for PID 1, so none is lost or runs a handler: they are read from the
/// signalfd instead. Children get an empty mask back: see `sys::Exec`.
pub fn block_all_signals() -> io::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None)?;
    Ok(())
}

/// The empty signal mask a program starts with (a child between fork and exec, or PID 1
/// about to exec the box): one `sigprocmask(2)`, async-signal-safe, nothing allocated.
pub fn unblock_all_signals() -> io::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    Ok(())
}

/// What woke the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A signal arrived (`SIGCHLD`, `SIGTERM`, ...), as its number.
    Signal(i32),
    /// The kernel announced a device change (the raw uevent message).
    Uevent(Vec<u8>),
    /// The uevent socket's buffer overflowed (`ENOBUFS`): some messages were dropped by the
    /// kernel, which ones is unknown; whoever looks after devices reads sysfs again.
    UeventsLost,
}

/// The uevent socket's receive buffer: big enough for a burst of a few thousand messages
/// (each takes 1-4 KiB of socket memory) while the loop is busy. The kernel's default
/// (`net.core.rmem_default`, 208 KiB) overflowed with a few hundred. Memory is only taken
/// while messages wait, not reserved; systemd-udevd asks for 128 MiB.
pub const UEVENT_BUFFER: usize = 8 * 1024 * 1024;

/// Where device events go as raw messages (the boot waits' callbacks), lost ones are passed
/// on as this empty message: the kernel never sends an empty one.
pub const LOST: &[u8] = b"";

/// What one drain of the uevent socket found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// The messages, in the order they came.
    pub messages: Vec<Vec<u8>>,
    /// A read said `ENOBUFS`: messages were dropped before these.
    pub lost: bool,
}

/// Reads messages with `read` (one `recv` on the non-blocking socket each) until it has none
/// left. `ENOBUFS` is the kernel saying the buffer overflowed: noted, and reading goes on
/// (the messages after the overflow are still there); `EINTR` is retried; anything else
/// (`EAGAIN`: empty) ends the drain.
pub fn drain(mut read: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> Drained {
    let mut drained = Drained::default();
    let mut buf = [0u8; 8192];
    loop {
        match read(&mut buf) {
            Ok(0) => break,
            Ok(n) => drained
                .messages
                .push(buf.get(..n).unwrap_or_default().to_vec()),
            Err(rustix::io::Errno::NOBUFS) => drained.lost = true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    drained
}

/// The loop's fds.
pub struct Events {
    signals: SignalFd,
    uevents: Option<OwnedFd>,
    /// An overflow seen by [`Events::wait_uevent`], for [`Events::take_lost`].
    lost: std::sync::atomic::AtomicBool,
}

impl Events {
    /// Opens the signalfd (all signals) and, when the kernel allows it, the uevent socket.
    /// The uevent socket is opened early so that no device event between module loading and
    /// the boot partition wait is missed.
    pub fn open() -> io::Result<Events> {
        let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
        let signals = SignalFd::with_flags(&SigSet::all(), flags)?;
        let uevents = match open_uevent_socket() {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!(
                    "cannot open the uevent socket ({e}): device waits fall back to polling"
                );
                None
            }
        };
        Ok(Events {
            signals,
            uevents,
            lost: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether uevents were lost since the last call (the socket's buffer overflowed during a
    /// [`Events::wait_uevent`]); the caller reads sysfs again.
    pub fn take_lost(&self) -> bool {
        self.lost.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    fn drain_uevents(&self, fd: &OwnedFd) -> Vec<Vec<u8>> {
        let drained = drain(|buf| rustix::io::read(fd, buf));
        if drained.lost {
            self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        drained.messages
    }

    /// Waits up to `timeout` (forever when `None`) and returns what arrived, possibly nothing.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<Vec<Event>> {
        self.poll(timeout)?;
        let mut events = Vec::new();
        while let Ok(Some(info)) = self.signals.read_signal() {
            events.push(Event::Signal(info.ssi_signo as i32));
        }
        if let Some(fd) = &self.uevents {
            events.extend(self.drain_uevents(fd).into_iter().map(Event::Uevent));
        }
        if self.take_lost() {
            events.push(Event::UeventsLost);
        }
        Ok(events)
    }

    /// Sleeps until a uevent arrives or `timeout` passes (just sleeps without a uevent socket),
    /// and drains what arrived; an overflow is kept for [`Events::take_lost`]. Signals are left queued in the signalfd for the main loop.
    pub fn wait_uevent(&self, timeout: Duration) -> Vec<Vec<u8>> {
        let Some(fd) = &self.uevents else {
            std::thread::sleep(timeout.min(POLL_FALLBACK));
            return Vec::new();
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let _ = rustix::event::poll(&mut fds, Some(&timespec(timeout)));
        self.drain_uevents(fd)
    }

    fn poll(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut fds = vec![PollFd::new(&self.signals, PollFlags::IN)];
        if let Some(fd) = &self.uevents {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        let timespec = timeout.map(timespec);
        match rustix::event::poll(&mut fds, timespec.as_ref()) {
            Ok(_) => Ok(()),
            // A signal interrupted poll: the signalfd read that follows picks it up.
            Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// `now + d` for a timer, without the panic of `Instant + Duration` on overflow: a duration
/// too long for the clock (a config with "1000000y") means "about never" (a century).
pub fn deadline_after(now: std::time::Instant, d: Duration) -> std::time::Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(d.min(CENTURY))
        .or_else(|| now.checked_add(Duration::from_secs(3600)))
        .unwrap_or(now)
}

/// Without a uevent socket, device waits look again this often.
const POLL_FALLBACK: Duration = Duration::from_millis(20);

fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// A netlink socket bound to the kernel's uevent multicast group, non-blocking.
fn open_uevent_socket() -> io::Result<OwnedFd> {
    use rustix::net::{netlink, AddressFamily, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        Some(netlink::KOBJECT_UEVENT),
    )?;
    // Group 1 is the kernel's own uevents (udev's re-broadcasts are group 2).
    rustix::net::bind(fd.as_fd(), &netlink::SocketAddrNetlink::new(0, 1))?;
    enlarge_buffer(&fd);
    Ok(fd)
}

/// Gives the uevent socket [`UEVENT_BUFFER`]: `SO_RCVBUFFORCE` (PID 1 has CAP_NET_ADMIN; it
/// passes `net.core.rmem_max`, 208 KiB by default), else `SO_RCVBUF` (capped at rmem_max: a
/// PID-namespace test without the capability). A socket left at the default still works;
/// overflows are caught by the rescan ([`Event::UeventsLost`]).
fn enlarge_buffer(fd: &OwnedFd) {
    use rustix::net::sockopt;
    if sockopt::set_socket_recv_buffer_size_force(fd, UEVENT_BUFFER).is_ok() {
        return;
    }
    if let Err(e) = sockopt::set_socket_recv_buffer_size(fd, UEVENT_BUFFER) {
        log::debug!("uevent socket: cannot enlarge its buffer ({e}); it keeps the kernel's");
    }
}

/// Reaps one exited child without blocking. `None` when no child has exited (or none is left).
pub fn reap_one() -> Option<(i32, Exit)> {
    loop {
        // wait() is waitpid(-1): any child. (rustix's waitpid(None) is waitpid(0), which only
        // sees children in init's own process group, and the box has a group of its own.)
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => return Some((pid.as_raw_nonzero().get(), exit_of(status))),
            Ok(None) => return None,
            Err(rustix::io::Errno::INTR) => continue,
            // ECHILD: no children at all, the usual end of a reaping round.
            Err(_) => return None,
        }
    }
}

/// Whether any child is left (running or not yet reaped).
pub fn has_children() -> bool {
    // waitid answers ECHILD only when no child exists at all; WNOWAIT leaves a zombie for
    // reap_one to collect.
    use rustix::process::{WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    !matches!(
        rustix::process::waitid(WaitId::All, options),
        Err(rustix::io::Errno::CHILD)
    )
}

fn exit_of(status: WaitStatus) -> Exit {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: an overflow of the uevent socket (ENOBUFS) is reported, not taken for the
    /// end of the queue, and the messages after it are still read.
    #[test]
    fn an_overflow_is_reported_and_reading_goes_on() {
        use rustix::io::Errno;
        let script: Vec<rustix::io::Result<&[u8]>> = vec![
            Ok(b"add@/a"),
            Err(Errno::NOBUFS),
            Ok(b"add@/b"),
            Err(Errno::INTR),
            Ok(b"add@/c"),
            Err(Errno::AGAIN),
            Ok(b"never read"),
        ];
        let mut script = script.into_iter();
        let drained = drain(|buf| {
            let bytes = script.next().unwrap_or(Err(Errno::AGAIN))?;
            buf[..bytes.len()].copy_from_slice(bytes);
            Ok(bytes.len())
        });
        assert!(drained.lost);
        assert_eq!(
            drained.messages,
            [b"add@/a".to_vec(), b"add@/b".to_vec(), b"add@/c".to_vec()]
        );
        let quiet = drain(|_| Err(Errno::AGAIN));
        assert_eq!(quiet, Drained::default());
    }

    #[test]
    fn deadlines_never_overflow() {
        let now = std::time::Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(deadline_after(now, Duration::MAX) > now + Duration::from_secs(3600));
    }

    #[test]
    fn exit_descriptions() {
        assert_eq!(Exit::Code(3).to_string(), "exited with status 3");
        assert_eq!(Exit::Signal(9).to_string(), "was killed by SIGKILL");
        assert_eq!(Exit::Signal(99).to_string(), "was killed by signal 99");
    }
}

#[cfg(test)]
mod reap_tests {
    #[test]
    fn reaps_a_child_in_another_process_group() {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("true")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        drop(child);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let got = super::reap_one();
        assert_eq!(got, Some((pid, super::Exit::Code(0))));
    }
}

#[cfg(test)]
mod mask_tests {
    #[test]
    fn children_start_with_no_blocked_signals() {
        super::block_all_signals().unwrap();
        let setup = crate::sys::exec::ChildSetup {
            new_session: true,
            ..Default::default()
        };
        let sleep = crate::sys::exec::Exec::new(
            std::path::Path::new("/bin/sleep"),
            &["5".to_string()],
            &[],
            std::path::Path::new("/"),
        )
        .unwrap();
        let pid = sleep.spawn(&setup).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line.rsplit('\t').next().unwrap(), 16).unwrap()
        };
        let (blocked, ignored) = (field("SigBlk:"), field("SigIgn:"));
        let pid = rustix::process::Pid::from_raw(pid);
        rustix::process::kill_process(pid.unwrap(), rustix::process::Signal::KILL).unwrap();
        rustix::process::waitpid(pid, rustix::process::WaitOptions::empty()).unwrap();
        assert_eq!(blocked, 0, "blocked signals");
        // PID 1's std runtime ignores SIGPIPE (bit 13 - 1); the box must not inherit that.
        assert_eq!(ignored & (1 << 12), 0, "SIGPIPE ignored");
    }
}
