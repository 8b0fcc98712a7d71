//! What the dhcp, static and time programs do around their work: log to kmsg as `boxinit: ...` at the level
//! PID 1 runs at, block its stop signals and read them from a signalfd (so shutdown's SIGTERM
//! lets a DHCP client release its lease and the time program save the time), and wait for a
//! socket, a stop signal or a timeout. (The wifi program keeps its signals at their default,
//! so that the supplicant it starts gets them as they are.)

use std::net::UdpSocket;
use std::time::Duration;

use boxinit::{kmsg, net};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::event::{PollFd, PollFlags};

/// The signals a program reads from its signalfd: SIGTERM and SIGINT stop it, SIGHUP is
/// ignored.
fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

/// Logging to kmsg as `boxinit: ...`, at the level PID 1 runs at; SIGTERM, SIGINT and
/// SIGHUP blocked and read from the returned signalfd.
pub fn start(what: &str) -> Option<SignalFd> {
    let level = std::env::var(net::LOG_LEVEL_ENV)
        .ok()
        .and_then(|l| l.parse::<boxinit::config::LogLevel>().ok())
        .unwrap_or_default();
    kmsg::init(level.into());
    let _ = kmsg::open_kmsg();
    match signal_fd() {
        Ok(fd) => Some(fd),
        Err(e) => {
            log::error!("{what}: cannot set up its signals: {e}");
            None
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP blocked (in the calling thread: the program has no other when
/// it starts) and a signalfd that reads them.
pub fn signal_fd() -> nix::Result<SignalFd> {
    let set = stop_signals();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
}

/// What woke a wait.
pub enum Woke {
    Stop,
    Readable,
    Timeout,
}

/// Waits up to `timeout` for `socket` to be readable or a stop signal.
pub fn wait(signals: &SignalFd, socket: Option<&UdpSocket>, timeout: Duration) -> Woke {
    let mut fds = vec![PollFd::new(signals, PollFlags::IN)];
    if let Some(s) = socket {
        fds.push(PollFd::new(s, PollFlags::IN));
    }
    let ts = rustix::time::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(0) | Err(_) => return Woke::Timeout,
        Ok(_) => {}
    }
    let signalled = fds.first().is_some_and(|f| !f.revents().is_empty());
    // SIGTERM or SIGINT stop it; SIGHUP (blocked, so it cannot kill it) is read and ignored.
    if signalled {
        if let Ok(Some(info)) = signals.read_signal() {
            if info.ssi_signo != Signal::SIGHUP as u32 {
                return Woke::Stop;
            }
        }
    }
    if fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
        Woke::Readable
    } else {
        Woke::Timeout
    }
}
