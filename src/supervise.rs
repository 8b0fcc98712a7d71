//! Running the box: starting it, deciding what its exit means (restart after a backoff, or an
//! action for the whole machine), and the event loop that reaps every child. Shutdown itself is
//! in `shutdown`; the loop only says which shutdown was asked for.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::config::{BoxConfig, ExitAction, RestartPolicy};
use crate::events::{self, Event, Events, Exit};
use crate::sys::Reboot;

/// How to start the box: everything `Command` needs, resolved against the boot partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
}

/// Resolves `[box]` against the directory where the boot partition is mounted.
pub fn box_spec(cfg: &BoxConfig, boot_dir: &Path) -> BoxSpec {
    let program = boot_dir.join(&cfg.path);
    let working_dir = match &cfg.working_dir {
        Some(dir) => boot_dir.join(dir),
        None => boot_dir.to_path_buf(),
    };
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_string(),
        ),
        ("HOME".to_string(), "/".to_string()),
        (
            "TERM".to_string(),
            std::env::var("TERM").unwrap_or_else(|_| "linux".to_string()),
        ),
        ("BOXINIT_BOOT".to_string(), boot_dir.display().to_string()),
    ];
    for (key, value) in &cfg.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    BoxSpec {
        program,
        args: cfg.args.clone(),
        env,
        working_dir,
    }
}

/// Starts the box in its own process group, on the console init has as fds 0-2, with a clean
/// environment. Returns its pid.
pub fn spawn(spec: &BoxSpec) -> std::io::Result<i32> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.working_dir)
        .process_group(0);
    crate::sys::unblock_signals_in_child(&mut command);
    let child = command.spawn()?;
    // Dropping `Child` neither waits nor kills: the loop reaps it with waitpid(-1).
    i32::try_from(child.id()).map_err(|_| std::io::Error::other("pid out of range"))
}

/// Whether an exit calls for a restart under `policy`.
pub fn should_restart(policy: RestartPolicy, exit: Exit) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit != Exit::Code(0),
        RestartPolicy::Never => false,
    }
}

/// What the machine does when the box will not run again.
pub fn reboot_for(action: ExitAction) -> Option<Reboot> {
    match action {
        ExitAction::Poweroff => Some(Reboot::PowerOff),
        ExitAction::Reboot => Some(Reboot::Restart),
        ExitAction::Halt => Some(Reboot::Halt),
        ExitAction::Wait => None,
    }
}

/// What a signal to PID 1 asks for (busybox init and erlinit conventions).
pub fn reboot_for_signal(signal: i32) -> Option<Reboot> {
    use nix::sys::signal::Signal::*;
    match nix::sys::signal::Signal::try_from(signal).ok()? {
        SIGTERM | SIGINT => Some(Reboot::Restart),
        SIGUSR1 | SIGPWR => Some(Reboot::Halt),
        SIGUSR2 => Some(Reboot::PowerOff),
        _ => None,
    }
}

/// Where the box is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running as `pid` since `since`.
    Running { pid: i32, since: Instant },
    /// Waiting for its backoff delay to pass.
    Waiting { until: Instant },
    /// It will not be started again.
    Done,
}

/// The supervised box: its spec, its policy and where it is.
pub struct Supervisor {
    spec: BoxSpec,
    restart: RestartPolicy,
    on_exit: ExitAction,
    backoff: Backoff,
    state: State,
}

impl Supervisor {
    /// A supervisor whose box starts at the first `tick`.
    pub fn new(spec: BoxSpec, cfg: &BoxConfig, now: Instant) -> Supervisor {
        let backoff = Backoff::new(
            cfg.backoff.initial,
            cfg.backoff.max,
            cfg.backoff.reset_after,
        );
        Supervisor {
            spec,
            restart: cfg.restart,
            on_exit: cfg.on_exit,
            backoff,
            state: State::Waiting { until: now },
        }
    }

    /// The box's process group, while it runs (it leads its own group).
    pub fn process_group(&self) -> Option<i32> {
        match self.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// When `tick` next has work to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            _ => None,
        }
    }

    /// Starts the box when its delay has passed. A box that cannot start counts as a failed run.
    pub fn tick(&mut self, now: Instant) -> Option<Reboot> {
        match self.state {
            State::Waiting { until } if until <= now => {}
            _ => return None,
        }
        match spawn(&self.spec) {
            Ok(pid) => {
                log::info!("started {} (pid {pid})", self.spec.program.display());
                self.state = State::Running { pid, since: now };
                None
            }
            Err(e) => {
                log::error!(
                    "cannot start {}: {e}; put your program on the boot partition as `box` or set [box] path in init.toml",
                    self.spec.program.display()
                );
                self.after_exit(Exit::Code(127), Duration::ZERO, now)
            }
        }
    }

    /// Handles a reaped child; returns a shutdown when the box's exit calls for one.
    pub fn on_reaped(&mut self, pid: i32, exit: Exit, now: Instant) -> Option<Reboot> {
        match self.state {
            State::Running {
                pid: box_pid,
                since,
            } if box_pid == pid => {
                log::info!("{} {exit}", self.spec.program.display());
                self.after_exit(exit, now.saturating_duration_since(since), now)
            }
            _ => {
                log::debug!("reaped orphan pid {pid} ({exit})");
                None
            }
        }
    }

    fn after_exit(&mut self, exit: Exit, ran_for: Duration, now: Instant) -> Option<Reboot> {
        if should_restart(self.restart, exit) {
            let delay = self.backoff.next_delay(ran_for);
            log::info!(
                "box restart delayed by {} (backoff)",
                humantime::format_duration(delay)
            );
            self.state = State::Waiting { until: now + delay };
            return None;
        }
        self.state = State::Done;
        let action = reboot_for(self.on_exit);
        match action {
            Some(how) => log::info!(
                "the box will not be restarted (restart = {:?}): {how:?}",
                self.restart
            ),
            None => log::info!("the box will not be restarted; waiting (on_exit = \"wait\")"),
        }
        action
    }
}

/// The event loop: reaps every child, restarts the box, and returns the shutdown that a signal
/// or the box's exit asked for.
pub fn run(events: &Events, supervisor: &mut Supervisor) -> Reboot {
    loop {
        if let Some(how) = supervisor.tick(Instant::now()) {
            return how;
        }
        let timeout = supervisor
            .deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        let arrived = match events.wait(timeout) {
            Ok(arrived) => arrived,
            Err(e) => {
                log::error!("event loop: poll failed: {e}; retrying in 1s");
                std::thread::sleep(Duration::from_secs(1));
                Vec::new()
            }
        };
        // Reap on every wake-up, not only on SIGCHLD: signals coalesce, and reaping is cheap.
        while let Some((pid, exit)) = events::reap_one() {
            if let Some(how) = supervisor.on_reaped(pid, exit, Instant::now()) {
                return how;
            }
        }
        for event in arrived {
            if let Event::Signal(signal) = event {
                if let Some(how) = reboot_for_signal(signal) {
                    log::info!("received {}: {how:?}", signal_name(signal));
                    return how;
                }
            }
        }
    }
}

/// The name of a signal number, for messages.
pub fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {signal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn restart_policies() {
        use RestartPolicy::*;
        let table = [
            (Always, Exit::Code(0), true),
            (Always, Exit::Signal(9), true),
            (OnFailure, Exit::Code(0), false),
            (OnFailure, Exit::Code(1), true),
            (OnFailure, Exit::Signal(6), true),
            (Never, Exit::Code(1), false),
        ];
        for (policy, exit, want) in table {
            assert_eq!(should_restart(policy, exit), want, "{policy:?} {exit:?}");
        }
    }

    #[test]
    fn signals_follow_busybox_conventions() {
        assert_eq!(
            reboot_for_signal(libc_sig("SIGTERM")),
            Some(Reboot::Restart)
        );
        assert_eq!(reboot_for_signal(libc_sig("SIGUSR1")), Some(Reboot::Halt));
        assert_eq!(reboot_for_signal(libc_sig("SIGPWR")), Some(Reboot::Halt));
        assert_eq!(
            reboot_for_signal(libc_sig("SIGUSR2")),
            Some(Reboot::PowerOff)
        );
        assert_eq!(reboot_for_signal(libc_sig("SIGINT")), Some(Reboot::Restart));
        assert_eq!(reboot_for_signal(libc_sig("SIGCHLD")), None);
        assert_eq!(reboot_for_signal(libc_sig("SIGHUP")), None);
    }

    fn libc_sig(name: &str) -> i32 {
        name.parse::<nix::sys::signal::Signal>().unwrap() as i32
    }

    #[test]
    fn box_spec_resolves_against_the_boot_partition() {
        let mut cfg = Config::default().box_;
        cfg.args = vec!["a".into()];
        cfg.env.insert("PATH".into(), "/x".into());
        cfg.working_dir = Some("data".into());
        let spec = box_spec(&cfg, Path::new("/boot"));
        assert_eq!(spec.program, Path::new("/boot/box"));
        assert_eq!(spec.working_dir, Path::new("/boot/data"));
        assert!(spec.env.contains(&("PATH".into(), "/x".into())));
        assert!(spec.env.contains(&("BOXINIT_BOOT".into(), "/boot".into())));
        assert_eq!(spec.env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        cfg.path = "/bin/sh".into();
        assert_eq!(
            box_spec(&cfg, Path::new("/boot")).program,
            Path::new("/bin/sh")
        );
    }

    #[test]
    fn exits_restart_with_growing_delays_then_act() {
        let mut cfg = Config::default().box_;
        cfg.restart = RestartPolicy::OnFailure;
        cfg.on_exit = ExitAction::Poweroff;
        let now = Instant::now();
        let spec = box_spec(&cfg, Path::new("/nonexistent"));
        let mut sup = Supervisor::new(spec, &cfg, now);
        let mut delays = Vec::new();
        for _ in 0..3 {
            sup.state = State::Running {
                pid: 42,
                since: now,
            };
            assert_eq!(sup.on_reaped(42, Exit::Code(1), now), None);
            delays.push(sup.deadline().unwrap() - now);
        }
        assert_eq!(
            delays,
            [
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400)
            ]
        );
        // An orphan's exit changes nothing.
        assert_eq!(sup.on_reaped(7, Exit::Code(0), now), None);
        sup.state = State::Running {
            pid: 42,
            since: now,
        };
        assert_eq!(
            sup.on_reaped(42, Exit::Code(0), now),
            Some(Reboot::PowerOff)
        );
        assert_eq!(sup.state, State::Done);
    }

    #[test]
    fn a_missing_program_counts_as_a_failed_run() {
        let cfg = Config::default().box_;
        let now = Instant::now();
        let mut sup = Supervisor::new(box_spec(&cfg, Path::new("/nonexistent")), &cfg, now);
        assert_eq!(sup.tick(now), None);
        assert!(matches!(sup.state, State::Waiting { .. }));
    }
}
