//! Reading a QEMU boot's console: until every expected line has been seen (QEMU is then
//! stopped), QEMU exits, or the time is up; and what is sent when a console line appears:
//! commands to QEMU's human monitor, lines typed on the console (QEMU's stdin), an HTTP
//! request from the host to a port QEMU forwards into the guest. Cleaning and matching the
//! lines is `qemu/transcript.rs`'s; what a scenario expects, the harness's.

use std::io::Read;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::qemu::transcript::{self, Ending};

/// `PATTERN => COMMAND` in `monitor` (or `console-input`): when a cleaned console line
/// matches PATTERN (`*` wildcards, as in `expected`), COMMAND goes to QEMU's human monitor
/// (or is typed on the console, a line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorStep {
    pub when: String,
    pub command: String,
}

/// Reads the console until every expected line is seen (then stops QEMU, unless the scenario
/// waits for it to exit), QEMU exits, or `timeout` passes. Returns the raw console and how
/// QEMU ended.
pub fn watch(
    child: &mut Child,
    expected: &[String],
    wait_for_exit: bool,
    timeout: Duration,
    monitor: Option<Monitor>,
) -> Result<(String, Ending)> {
    watch_settled(
        child,
        expected,
        wait_for_exit,
        (timeout, Duration::ZERO),
        monitor.into_iter().collect(),
        &mut || {},
    )
}

/// [`watch`], but QEMU is stopped only `settle` after every expected line was seen; and
/// `on_ending` is called once the console shows the machine on its way out (the init's
/// shutdown, or the kernel's last words: [`transcript::ending_begun`]): to let go of what would keep the
/// guest's power-off from finishing. A hung disk's held read does (`test/nbd_hang.rs`): the
/// guest kernel resets its virtio devices as it powers off, and QEMU drains the device's
/// requests inside that register write, holding the vCPU until the read ends.
pub fn watch_settled(
    child: &mut Child,
    expected: &[String],
    wait_for_exit: bool,
    (timeout, settle): (Duration, Duration),
    senders: Vec<Monitor>,
    on_ending: &mut dyn FnMut(),
) -> Result<(String, Ending)> {
    let watched = watch_with(
        child,
        Watch {
            expected,
            wait_for_exit,
            timeout,
            settle,
            senders,
            cut: None,
            marks: &[],
            cut_when_seen: false,
            on_ending,
        },
    )?;
    Ok((watched.raw, watched.ending))
}

/// How to watch one boot.
pub struct Watch<'a> {
    /// Lines to see, in order per source; once all are, QEMU is stopped `settle` later
    /// (unless `wait_for_exit`).
    pub expected: &'a [String],
    pub wait_for_exit: bool,
    pub timeout: Duration,
    pub settle: Duration,
    /// The monitor and the console's input: each sends its steps as their lines appear.
    pub senders: Vec<Monitor>,
    /// A power cut: once a cleaned console line matches the pattern, QEMU is killed this long
    /// after (ending [`Ending::PowerCut`]).
    pub cut: Option<(String, Duration)>,
    /// Patterns whose first matching console line is timed (from QEMU's start).
    pub marks: &'a [String],
    /// Kill QEMU (a power cut) as soon as every expected line has been seen.
    pub cut_when_seen: bool,
    /// Called once the console shows the machine on its way out ([`watch_settled`]).
    pub on_ending: &'a mut dyn FnMut(),
}

/// What a watched boot showed.
pub struct Watched {
    pub raw: String,
    pub ending: Ending,
    /// When each of [`Watch::marks`] first matched, after QEMU started.
    pub marks: Vec<Option<Duration>>,
}

/// Reads the console as `watch` says; see [`Watch`].
pub fn watch_with(child: &mut Child, watch: Watch<'_>) -> Result<Watched> {
    let Watch {
        expected,
        wait_for_exit,
        timeout,
        settle,
        mut senders,
        cut,
        marks,
        cut_when_seen,
        on_ending,
    } = watch;
    let Some(mut stdout) = child.stdout.take() else {
        bail!("QEMU's stdout is not piped")
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let deadline = started + timeout;
    let mut raw = Vec::new();
    let mut seen_marks: Vec<Option<Duration>> = vec![None; marks.len()];
    // monitor commands sent, added to the transcript at the end (not amid a console line)
    let mut sent: Vec<String> = Vec::new();
    // When every expected line has been seen (and QEMU is to be stopped), stop it then.
    let mut stop_at: Option<Instant> = None;
    let mut cut_at: Option<Instant> = None;
    // Whether the console has shown the guest's end (on_ending called).
    let mut ended = false;
    let ending = loop {
        let now = Instant::now();
        if cut_at.is_some_and(|at| now >= at) {
            let _ = child.kill();
            let _ = child.wait();
            break Ending::PowerCut;
        }
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            raw.extend_from_slice(
                format!("\nqemu: timeout after {}s\n", timeout.as_secs()).as_bytes(),
            );
            break Ending::Exited;
        }
        let wait = match cut_at {
            Some(at) => at
                .saturating_duration_since(now)
                .min(Duration::from_millis(200)),
            None => (deadline - now).min(Duration::from_millis(200)),
        };
        let mut got = false;
        match rx.recv_timeout(wait) {
            Ok(bytes) => {
                raw.extend_from_slice(&bytes);
                got = true;
                if !ended && transcript::ending_begun(&String::from_utf8_lossy(&raw)) {
                    ended = true;
                    on_ending();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                break transcript::ending_of(&String::from_utf8_lossy(&raw));
            }
        }
        let mut seen = match got || !senders.is_empty() {
            true => transcript::clean(&String::from_utf8_lossy(&raw)),
            false => Vec::new(),
        };
        // what was sent counts as seen (`qemu: console: TEXT`, `qemu: forward 80: ANSWER`):
        // a step may wait for the answer of another, and the scenario may end on one
        seen.extend(sent.iter().map(|s| format!("qemu: {s}")));
        if got {
            for (mark, at) in marks.iter().zip(seen_marks.iter_mut()) {
                if at.is_none() && seen.iter().any(|l| transcript::line_matches(mark, l)) {
                    *at = Some(started.elapsed());
                }
            }
            if let Some((pattern, delay)) = &cut {
                if cut_at.is_none() && seen.iter().any(|l| transcript::line_matches(pattern, l)) {
                    cut_at = Some(Instant::now() + *delay);
                }
            }
        }
        let mut sent_now = false;
        for sender in &mut senders {
            let new = sender.send_due(&seen);
            sent_now |= !new.is_empty();
            seen.extend(new.iter().map(|s| format!("qemu: {s}")));
            sent.extend(new);
        }
        // a cut boot with no lines of its own (the kernel never reaches the init) is cut once
        // the kernel has panicked: the power-cycle a hung machine gets
        let panicked = || String::from_utf8_lossy(&raw).contains("Kernel panic - not syncing");
        let all_seen = (got || sent_now)
            && (!expected.is_empty() || (cut_when_seen && panicked()))
            && stop_at.is_none()
            && cut_at.is_none()
            && transcript::first_missing(expected, &seen).is_none();
        if all_seen && cut_when_seen {
            cut_at = Some(Instant::now());
        } else if all_seen && !wait_for_exit && cut.is_none() {
            stop_at = Some(Instant::now() + settle);
        }
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            let _ = child.kill();
            let _ = child.wait();
            break Ending::StoppedByTest;
        }
    };
    let _ = reader.join();
    for line in sent {
        raw.extend_from_slice(format!("\nqemu: {line}\n").as_bytes());
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let mut text = String::from_utf8_lossy(&raw).into_owned();
    if !stderr.trim().is_empty() {
        text.push_str("\nqemu stderr: ");
        text.push_str(&stderr);
    }
    Ok(Watched {
        raw: text,
        ending,
        marks: seen_marks,
    })
}

/// Where steps are sent, QEMU's human monitor on a unix socket, the console (QEMU's
/// stdin, the serial port) or the host's end of forwarded ports, and the steps still to send.
pub struct Monitor {
    target: Target,
    pending: std::collections::VecDeque<MonitorStep>,
    /// `monitor` or `console`: what the transcript's `qemu: WHAT: TEXT` line says
    what: &'static str,
}

/// What a step is sent to.
enum Target {
    /// A step's text, a line.
    Stream(Box<dyn std::io::Write + Send>),
    /// A step's text is a guest port: an HTTP request to the host port forwarded to it
    /// (guest port, host port), as `curl http://127.0.0.1:HOST` after `run --forward`.
    Http(Vec<(u16, u16)>),
}

impl Monitor {
    /// Connects to the socket QEMU creates at start-up (waiting up to 10 s for it); what the
    /// monitor answers is read and dropped by a thread, so QEMU never blocks writing to it.
    pub fn connect(socket: &Path, steps: Vec<MonitorStep>) -> Result<Monitor> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match std::os::unix::net::UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot connect to QEMU's monitor at {}", socket.display())
                    })
                }
            }
        };
        let mut reader = stream.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
        Ok(Monitor {
            target: Target::Stream(Box::new(stream)),
            pending: steps.into(),
            what: "monitor",
        })
    }

    /// Lines typed on the console: written to QEMU's stdin, which `-serial stdio` makes the
    /// guest's serial port.
    pub fn console(stdin: std::process::ChildStdin, steps: Vec<MonitorStep>) -> Monitor {
        Monitor {
            target: Target::Stream(Box::new(stdin)),
            pending: steps.into(),
            what: "console",
        }
    }

    /// HTTP requests from the host: each step's text is a guest port, reached through the
    /// host port `ports` forwards to it (guest, host: QEMU's `hostfwd`, as `run --forward`
    /// sets it up); the transcript gets `qemu: forward GUEST: ` and the answer's last line.
    pub fn http(ports: Vec<(u16, u16)>, steps: Vec<MonitorStep>) -> Monitor {
        Monitor {
            target: Target::Http(ports),
            pending: steps.into(),
            what: "forward",
        }
    }

    /// Sends every step whose line has appeared in `seen` (in order: a step waits for the
    /// one before it); returns what was sent, for the transcript.
    fn send_due(&mut self, seen: &[String]) -> Vec<String> {
        use std::io::Write;
        let mut sent = Vec::new();
        while let Some(step) = self.pending.front() {
            if !seen.iter().any(|l| transcript::line_matches(&step.when, l)) {
                break;
            }
            let command = step.command.clone();
            self.pending.pop_front();
            let what = self.what;
            match &mut self.target {
                Target::Stream(stream) => {
                    let ok = stream
                        .write_all(format!("{command}\n").as_bytes())
                        .and_then(|()| stream.flush())
                        .is_ok();
                    sent.push(if ok {
                        format!("{what}: {command}")
                    } else {
                        format!("{what}: cannot send `{command}`")
                    });
                }
                Target::Http(ports) => {
                    let host = ports
                        .iter()
                        .find(|(guest, _)| guest.to_string() == command)
                        .map(|&(_, host)| host);
                    let answer = match host {
                        Some(host) => http_get(host).unwrap_or_else(|e| format!("no answer ({e})")),
                        None => "not forwarded".to_string(),
                    };
                    sent.push(format!("{what} {command}: {answer}"));
                }
            }
        }
        sent
    }
}

/// `GET /` on the host's 127.0.0.1:`port`; the last line of the answer's body. QEMU's user
/// network accepts the host's connection before the guest does and closes it when the guest
/// refuses: an empty answer is tried again, three times in all.
fn http_get(port: u16) -> std::io::Result<String> {
    use std::io::Write;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut answer = Vec::new();
    for _ in 0..3 {
        let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        answer.clear();
        // a reset after the answer is QEMU closing: what came is the answer
        let _ = stream.read_to_end(&mut answer);
        if !answer.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let text = String::from_utf8_lossy(&answer);
    let body = text.split_once("\r\n\r\n").map_or(&*text, |(_, body)| body);
    match body.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        Some(line) => Ok(line.to_string()),
        None => Err(std::io::Error::other("an empty answer")),
    }
}
