//! Reading a QEMU boot's console: until every expected line has been seen (QEMU is then
//! stopped), QEMU exits, or the time is up; and what is sent when a console line appears:
//! commands to QEMU's human monitor, lines typed on the console (QEMU's stdin). Cleaning and matching the lines is `qemu/transcript.rs`'s; what a
//! scenario expects, the harness's.

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
    mut senders: Vec<Monitor>,
    on_ending: &mut dyn FnMut(),
) -> Result<(String, Ending)> {
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
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    // monitor commands sent, added to the transcript at the end (not amid a console line)
    let mut sent: Vec<String> = Vec::new();
    // When every expected line has been seen (and QEMU is to be stopped), stop it then.
    let mut stop_at: Option<Instant> = None;
    // Whether the console has shown the guest's end (on_ending called).
    let mut ended = false;
    let ending = loop {
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            raw.extend_from_slice(
                format!("\nqemu: timeout after {}s\n", timeout.as_secs()).as_bytes(),
            );
            break Ending::Exited;
        }
        match rx.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
            Ok(bytes) => {
                raw.extend_from_slice(&bytes);
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
        if !senders.is_empty() {
            let seen = transcript::clean(&String::from_utf8_lossy(&raw));
            for sender in &mut senders {
                sent.extend(sender.send_due(&seen));
            }
        }
        if !wait_for_exit && !expected.is_empty() && stop_at.is_none() {
            let seen = transcript::clean(&String::from_utf8_lossy(&raw));
            if transcript::first_missing(expected, &seen).is_none() {
                stop_at = Some(Instant::now() + settle);
            }
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
    Ok((text, ending))
}

/// Where steps are sent, QEMU's human monitor on a unix socket or the console (QEMU's
/// stdin, the serial port), and the steps still to send.
pub struct Monitor {
    stream: Box<dyn std::io::Write + Send>,
    pending: std::collections::VecDeque<MonitorStep>,
    /// `monitor` or `console`: what the transcript's `qemu: WHAT: TEXT` line says
    what: &'static str,
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
            stream: Box::new(stream),
            pending: steps.into(),
            what: "monitor",
        })
    }

    /// Lines typed on the console: written to QEMU's stdin, which `-serial stdio` makes the
    /// guest's serial port.
    pub fn console(stdin: std::process::ChildStdin, steps: Vec<MonitorStep>) -> Monitor {
        Monitor {
            stream: Box::new(stdin),
            pending: steps.into(),
            what: "console",
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
            let ok = self
                .stream
                .write_all(format!("{command}\n").as_bytes())
                .and_then(|()| self.stream.flush())
                .is_ok();
            let what = self.what;
            sent.push(if ok {
                format!("{what}: {command}")
            } else {
                format!("{what}: cannot send `{command}`")
            });
        }
        sent
    }
}
