//! Running the box and the `[[service]]`s: starting each with its process setup, deciding what
//! an exit means (restart after a backoff, a crash loop, or an action for the whole machine),
//! SIGHUP's reload, and the event loop that reaps every child and pets the watchdog. Shutdown
//! itself is in `shutdown`; the loop only says which shutdown was asked for.

use std::collections::VecDeque;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{BoxConfig, CrashLoop, ExitAction, RestartPolicy};
use crate::events::{self, Event, Events, Exit};
use crate::supervision::backoff::Backoff;
use crate::supervision::watchdog::Watchdog;
use crate::sys::{exec::ChildSetup, KillTarget, Reboot, Sys};

/// The shell that `on_exit = "shell"` and `rescue = "shell"` run, when the initramfs has it.
pub const SHELL: &str = "/bin/sh";

const SIGTERM: i32 = nix::sys::signal::Signal::SIGTERM as i32;
const SIGKILL: i32 = nix::sys::signal::Signal::SIGKILL as i32;
const SIGHUP: i32 = nix::sys::signal::Signal::SIGHUP as i32;
const SIGINT: i32 = nix::sys::signal::Signal::SIGINT as i32;

/// How to start one program: everything `fork` and `execve` need, resolved and checked beforehand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// What log lines call it (`box`, or the service's name).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    pub setup: ChildSetup,
}

/// Resolves `[box]` (or a `[[service]]`) against the directory where the boot partition is
/// mounted (None: no boot partition, so the path must be absolute). Errors say which key.
pub fn program(cfg: &BoxConfig, boot_dir: Option<&Path>) -> Result<Program, String> {
    let name = cfg.name.clone().unwrap_or_else(|| "box".to_string());
    let program = match boot_dir {
        Some(dir) => dir.join(&cfg.path),
        None if Path::new(&cfg.path).is_absolute() => PathBuf::from(&cfg.path),
        None => {
            return Err(format!(
                "{name}: path {:?} is relative but there is no boot partition ([boot] device = \"none\"); give an absolute path",
                cfg.path
            ))
        }
    };
    let root = PathBuf::from("/");
    let base = boot_dir.unwrap_or(&root);
    let working_dir = match &cfg.working_dir {
        Some(dir) => base.join(dir),
        None => base.to_path_buf(),
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
    ];
    if let Some(dir) = boot_dir {
        env.push(("BOXINIT_BOOT".to_string(), dir.display().to_string()));
    }
    for (key, value) in &cfg.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    let console = match &cfg.console {
        Some(tty) => Some(
            CString::new(tty.as_str())
                .map_err(|_| format!("{name}: console {tty:?} contains a NUL byte"))?,
        ),
        None => None,
    };
    let umask = match &cfg.umask {
        Some(text) => {
            Some(crate::config::parse_umask(text).map_err(|e| format!("{name}: umask: {e}"))?)
        }
        None => None,
    };
    let mut rlimits = Vec::new();
    for (key, value) in &cfg.rlimits {
        let resource = crate::sys::exec::resource(key).ok_or_else(|| {
            format!(
                "{name}: rlimits: unknown limit `{key}` (known: {})",
                crate::config::RLIMITS.join(", ")
            )
        })?;
        rlimits.push((resource, *value));
    }
    if cfg.groups.len() > crate::sys::exec::MAX_GROUPS {
        return Err(format!(
            "{name}: groups: {} supplementary groups, at most {} are supported",
            cfg.groups.len(),
            crate::sys::exec::MAX_GROUPS
        ));
    }
    let ids = cfg.user.iter().chain(&cfg.group).chain(&cfg.groups);
    if ids.clone().any(|id| *id == u32::MAX) {
        return Err(format!("{name}: 4294967295 (-1) is not a user or group id"));
    }
    Ok(Program {
        name,
        program,
        args: cfg.args.clone(),
        env,
        working_dir,
        setup: ChildSetup {
            new_session: true,
            console,
            groups: cfg.groups.clone(),
            gid: cfg.group,
            uid: cfg.user,
            umask,
            rlimits,
            no_new_privs: cfg.no_new_privs,
        },
    })
}

/// Starts a program in its own session and process group, on its console (init's fds 0-2
/// unless it has one), with a clean environment and its setup. Returns its pid.
pub fn spawn(spec: &Program) -> std::io::Result<i32> {
    crate::sys::exec::Exec::new(&spec.program, &spec.args, &spec.env, &spec.working_dir)?
        .spawn(&spec.setup)
    // The loop reaps the child with waitpid(-1).
}

/// Whether an exit calls for a restart under `policy`.
pub fn should_restart(policy: RestartPolicy, exit: Exit) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit != Exit::Code(0),
        RestartPolicy::Never => false,
    }
}

/// What the loop must do after a program ended for good (or crash-looped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Shut the machine down this way.
    Machine(Reboot),
    /// Run a shell on the console (or reboot when there is none).
    Shell,
    /// Nothing: the machine stays up.
    Wait,
}

/// What an `on_exit` (or crash-loop) action means for the loop.
pub fn outcome_of(action: ExitAction) -> Outcome {
    match action {
        ExitAction::Poweroff => Outcome::Machine(Reboot::PowerOff),
        ExitAction::Reboot => Outcome::Machine(Reboot::Restart),
        ExitAction::Halt => Outcome::Machine(Reboot::Halt),
        ExitAction::Shell => Outcome::Shell,
        ExitAction::Wait => Outcome::Wait,
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

/// Records a restart at `now` in `times` (the restarts within the window) and says whether it
/// is one too many: more than `limit.max` within `limit.within`. `max` 0 never is.
pub fn crash_looping(times: &mut VecDeque<Instant>, now: Instant, limit: &CrashLoop) -> bool {
    if limit.max == 0 {
        return false;
    }
    times.push_back(now);
    while let Some(first) = times.front() {
        if now.saturating_duration_since(*first) > limit.within {
            times.pop_front();
        } else {
            break;
        }
    }
    times.len() > usize::try_from(limit.max).unwrap_or(usize::MAX)
}

/// Where a program is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running as `pid` since `since`.
    Running { pid: i32, since: Instant },
    /// Waiting for its backoff delay to pass.
    Waiting { until: Instant },
    /// It will not be started again.
    Done,
}

/// What happens once a program stopped for a reload has exited.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    None,
    Replace(Box<(BoxConfig, Program)>),
    Remove,
}

/// One supervised program: its config, its policy and where it is.
pub struct Supervisor {
    cfg: BoxConfig,
    spec: Program,
    backoff: Backoff,
    restarts: VecDeque<Instant>,
    state: State,
    pending: Pending,
    /// A reload sent SIGTERM; SIGKILL at this time if it is still running.
    kill_at: Option<Instant>,
}

impl Supervisor {
    /// A supervisor whose program starts at the first `tick`.
    pub fn new(cfg: BoxConfig, spec: Program, now: Instant) -> Supervisor {
        let backoff = Backoff::from(&cfg.backoff);
        Supervisor {
            cfg,
            spec,
            backoff,
            restarts: VecDeque::new(),
            state: State::Waiting { until: now },
            pending: Pending::None,
            kill_at: None,
        }
    }

    /// What log lines call it.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its process group, while it runs (it leads its own session and group).
    pub fn process_group(&self) -> Option<i32> {
        match self.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// When `tick` next has work to do.
    pub fn deadline(&self) -> Option<Instant> {
        let waiting = match self.state {
            State::Waiting { until } => Some(until),
            _ => None,
        };
        waiting.into_iter().chain(self.kill_at).min()
    }

    /// Starts the program when its delay has passed (a program that cannot start counts as a
    /// failed run), and kills one that outlived a reload's grace period.
    pub fn tick(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Outcome> {
        if let (Some(at), Some(pgid)) = (self.kill_at, self.process_group()) {
            if at <= now {
                log::warn!(
                    "{}: still running after SIGTERM, sending SIGKILL",
                    self.name()
                );
                // ESRCH: it is gone already, which is what we want.
                let _ = sys.kill(KillTarget::Group(pgid), SIGKILL);
                self.kill_at = None;
            }
        }
        match self.state {
            State::Waiting { until } if until <= now => {}
            _ => return None,
        }
        match spawn(&self.spec) {
            Ok(pid) => {
                log::info!(
                    "started {} {} (pid {pid})",
                    self.name(),
                    self.spec.program.display()
                );
                self.state = State::Running { pid, since: now };
                None
            }
            Err(e) => {
                // What is wrong with the file itself, in words (wrong architecture, missing
                // loader or interpreter, not executable for its user), when that is it.
                let user = crate::supervision::exec::User::of(&self.spec);
                match crate::supervision::exec::check_program(&self.spec.program, &user) {
                    Err(why) => log::error!(
                        "cannot start {} {}: {e}: {why}",
                        self.name(),
                        self.spec.program.display()
                    ),
                    Ok(()) => log::error!(
                        "cannot start {} {}: {e}; check its path (a box goes on the boot partition as `box`), console, user and rlimits in init.toml",
                        self.name(),
                        self.spec.program.display()
                    ),
                }
                self.after_exit(Exit::Code(127), Duration::ZERO, now)
            }
        }
    }

    /// Handles a reaped child; returns what the machine must do when this exit calls for it.
    /// `false` in the second place: the child was not this program.
    pub fn on_reaped(&mut self, pid: i32, exit: Exit, now: Instant) -> (Option<Outcome>, bool) {
        let since = match self.state {
            State::Running { pid: mine, since } if mine == pid => since,
            _ => return (None, false),
        };
        log::info!("{} {} {exit}", self.name(), self.spec.program.display());
        self.kill_at = None;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Replace(new) => {
                let (cfg, spec) = *new;
                log::info!("{}: starting it with the new configuration", spec.name);
                *self = Supervisor::new(cfg, spec, now);
                (None, true)
            }
            Pending::Remove => {
                self.state = State::Done;
                (None, true)
            }
            Pending::None => (
                self.after_exit(exit, now.saturating_duration_since(since), now),
                true,
            ),
        }
    }

    fn after_exit(&mut self, exit: Exit, ran_for: Duration, now: Instant) -> Option<Outcome> {
        if should_restart(self.cfg.restart, exit) {
            if crash_looping(&mut self.restarts, now, &self.cfg.crash_loop) {
                self.state = State::Done;
                let limit = &self.cfg.crash_loop;
                log::error!(
                    "{}: crash loop, more than {} restarts within {}: {} (crash_loop.action)",
                    self.name(),
                    limit.max,
                    crate::config::format_duration(limit.within),
                    limit.action
                );
                return Some(outcome_of(limit.action));
            }
            let delay = self.backoff.next_delay(ran_for);
            log::info!(
                "{} restart delayed by {} (backoff)",
                self.name(),
                crate::config::format_duration(delay)
            );
            self.state = State::Waiting {
                until: events::deadline_after(now, delay),
            };
            return None;
        }
        self.state = State::Done;
        log::info!(
            "{} will not be restarted (restart = \"{}\"): on_exit = \"{}\"",
            self.name(),
            self.cfg.restart,
            self.cfg.on_exit
        );
        Some(outcome_of(self.cfg.on_exit))
    }

    /// SIGHUP found a new configuration for this program (None: it is gone from init.toml).
    /// An unchanged one is left alone; a running one gets SIGTERM, `grace`, then SIGKILL, and
    /// is replaced (or dropped) once reaped.
    fn reconfigure(
        &mut self,
        new: Option<(BoxConfig, Program)>,
        grace: Duration,
        sys: &mut dyn Sys,
        now: Instant,
    ) {
        if let Some((cfg, spec)) = &new {
            if *cfg == self.cfg && *spec == self.spec {
                return;
            }
        }
        match (self.process_group(), new) {
            (Some(pgid), new) => {
                log::info!(
                    "{}: configuration changed, stopping it (SIGTERM, then SIGKILL after {})",
                    self.name(),
                    crate::config::format_duration(grace)
                );
                let _ = sys.kill(KillTarget::Group(pgid), SIGTERM);
                self.kill_at = Some(events::deadline_after(now, grace));
                self.pending = match new {
                    Some(new) => Pending::Replace(Box::new(new)),
                    None => Pending::Remove,
                };
            }
            (None, Some((cfg, spec))) => {
                log::info!("{}: configuration changed, starting it", spec.name);
                *self = Supervisor::new(cfg, spec, now);
            }
            (None, None) => self.state = State::Done,
        }
    }
}

/// A re-read configuration: the programs in order (box first) and the reload grace period.
pub type Reloaded = (Vec<(BoxConfig, Program)>, Duration);

/// What the loop needs besides its programs.
pub struct Loop<'a> {
    pub events: &'a Events,
    pub sys: &'a mut dyn Sys,
    /// The watchdog to pet, if any; the first program (the box) sends its heartbeat.
    pub watchdog: Option<&'a mut Watchdog>,
    /// SIGHUP: re-read init.toml; None when it cannot be read (it says why).
    pub reload: &'a mut dyn FnMut() -> Option<Reloaded>,
    /// What SIGINT (Ctrl-Alt-Del, with CAD turned off) does: `[system] ctrl_alt_del`.
    pub ctrl_alt_del: ExitAction,
    /// What acts on devices (hotplug).
    pub devices: &'a mut dyn DeviceEvents,
}

/// What the loop hands to whoever looks after the devices.
pub trait DeviceEvents {
    /// A device event from the kernel (its module, node rules, automount).
    fn on_uevent(&mut self, sys: &mut dyn Sys, message: &[u8]);
    /// Called on every turn of the loop (work under way, such as automount probes); returns
    /// when to be called again at the latest.
    fn tick(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant>;
}

/// The event loop: reaps every child, restarts programs, pets the watchdog, reloads on
/// SIGHUP, passes device events to hotplug, and returns the shutdown that a signal or an exit
/// action asked for.
pub fn run(ctx: Loop<'_>, supervisors: &mut Vec<Supervisor>) -> Reboot {
    let Loop {
        events,
        sys,
        mut watchdog,
        reload,
        ctrl_alt_del,
        devices,
    } = ctx;
    loop {
        let now = Instant::now();
        let box_before = supervisors.first().and_then(Supervisor::process_group);
        for i in 0..supervisors.len() {
            let outcome = supervisors.get_mut(i).and_then(|s| s.tick(sys, now));
            if let Some(how) = act(outcome, supervisors) {
                return how;
            }
        }
        let box_after = supervisors.first().and_then(Supervisor::process_group);
        if let Some(wd) = watchdog.as_deref_mut() {
            if box_after.is_some() && box_after != box_before {
                wd.box_started(now);
            }
            wd.tick(now);
        }
        let devices_at = devices.tick(sys, now);
        let deadline = supervisors
            .iter()
            .filter_map(Supervisor::deadline)
            .chain(watchdog.as_deref().map(Watchdog::deadline))
            .chain(devices_at)
            .min();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
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
            let now = Instant::now();
            let mut outcome = None;
            let mut mine = false;
            for s in supervisors.iter_mut() {
                let (o, matched) = s.on_reaped(pid, exit, now);
                if matched {
                    outcome = o;
                    mine = true;
                    break;
                }
            }
            if !mine {
                log::debug!("reaped orphan pid {pid} ({exit})");
            }
            if let Some(how) = act(outcome, supervisors) {
                return how;
            }
        }
        for event in arrived {
            let signal = match event {
                Event::Signal(signal) => signal,
                Event::Uevent(message) => {
                    devices.on_uevent(sys, &message);
                    continue;
                }
            };
            if signal == SIGHUP {
                log::info!("received SIGHUP: re-reading the configuration");
                if let Some((programs, grace)) = reload() {
                    apply_reload(supervisors, programs, grace, sys, Instant::now());
                }
                continue;
            }
            if signal == SIGINT {
                log::info!("received SIGINT (Ctrl-Alt-Del): ctrl_alt_del = \"{ctrl_alt_del}\"");
                if let Some(how) = act(Some(outcome_of(ctrl_alt_del)), supervisors) {
                    return how;
                }
                continue;
            }
            if let Some(how) = reboot_for_signal(signal) {
                log::info!("received {}: {how:?}", signal_name(signal));
                return how;
            }
        }
    }
}

/// Carries out an outcome: a machine action ends the loop, a shell is started.
fn act(outcome: Option<Outcome>, supervisors: &mut Vec<Supervisor>) -> Option<Reboot> {
    match outcome? {
        Outcome::Machine(how) => Some(how),
        Outcome::Wait => {
            log::info!("waiting (on_exit = \"wait\"): the machine stays up; send SIGTERM to PID 1 to reboot");
            None
        }
        Outcome::Shell => {
            match shell_program() {
                Some((cfg, spec)) => {
                    log::info!("starting a shell ({SHELL}) on the console; the machine reboots when it exits");
                    supervisors.push(Supervisor::new(cfg, spec, Instant::now()));
                    None
                }
                None => {
                    log::error!("no {SHELL} in this initramfs for a shell: rebooting instead (add busybox as /bin/sh to get one)");
                    Some(Reboot::Restart)
                }
            }
        }
    }
}

/// The rescue shell: `/bin/sh` on init's console, never restarted, reboot when it exits.
pub fn shell_program() -> Option<(BoxConfig, Program)> {
    if !Path::new(SHELL).exists() {
        return None;
    }
    let cfg = BoxConfig {
        name: Some("shell".to_string()),
        path: SHELL.to_string(),
        restart: RestartPolicy::Never,
        on_exit: ExitAction::Reboot,
        ..BoxConfig::default()
    };
    let spec = program(&cfg, None).ok()?;
    Some((cfg, spec))
}

fn apply_reload(
    supervisors: &mut Vec<Supervisor>,
    programs: Vec<(BoxConfig, Program)>,
    grace: Duration,
    sys: &mut dyn Sys,
    now: Instant,
) {
    let mut programs: Vec<Option<(BoxConfig, Program)>> = programs.into_iter().map(Some).collect();
    for s in supervisors.iter_mut() {
        let new = programs
            .iter_mut()
            .find(|p| p.as_ref().is_some_and(|(_, spec)| spec.name == s.name()))
            .and_then(Option::take);
        // The shell started by an exit action is not in init.toml: leave it.
        if new.is_none() && s.name() == "shell" && s.spec.program == Path::new(SHELL) {
            continue;
        }
        s.reconfigure(new, grace, sys, now);
    }
    for (cfg, spec) in programs.into_iter().flatten() {
        log::info!("{}: new in the configuration, starting it", spec.name);
        supervisors.push(Supervisor::new(cfg, spec, now));
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
    use crate::sys::recorder::Recorder;

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
    fn exit_actions() {
        use ExitAction::*;
        let table = [
            (Poweroff, Outcome::Machine(crate::sys::Reboot::PowerOff)),
            (Reboot, Outcome::Machine(crate::sys::Reboot::Restart)),
            (Halt, Outcome::Machine(crate::sys::Reboot::Halt)),
            (Shell, Outcome::Shell),
            (Wait, Outcome::Wait),
        ];
        for (action, want) in table {
            assert_eq!(outcome_of(action), want, "{action}");
        }
    }

    #[test]
    fn signals_follow_busybox_conventions() {
        let table = [
            ("SIGTERM", Some(Reboot::Restart)),
            ("SIGUSR1", Some(Reboot::Halt)),
            ("SIGPWR", Some(Reboot::Halt)),
            ("SIGUSR2", Some(Reboot::PowerOff)),
            ("SIGINT", Some(Reboot::Restart)),
            ("SIGCHLD", None),
            ("SIGHUP", None),
        ];
        for (name, want) in table {
            assert_eq!(reboot_for_signal(libc_sig(name)), want, "{name}");
        }
    }

    fn libc_sig(name: &str) -> i32 {
        name.parse::<nix::sys::signal::Signal>().unwrap() as i32
    }

    #[test]
    fn crash_loop_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let limit = CrashLoop {
            max: 3,
            within: Duration::from_secs(1),
            action: ExitAction::Halt,
        };
        // (restart times in ms, whether the last one is one too many)
        let table: &[(&[u64], bool)] = &[
            (&[0], false),
            (&[0, 10, 20], false),
            (&[0, 10, 20, 30], true),
            (&[0, 10, 20, 1500], false),
            (&[0, 600, 1200, 1800, 2400], false),
            (&[0, 300, 600, 900, 1000], true),
        ];
        for (times, want) in table {
            let mut seen = VecDeque::new();
            let mut last = false;
            for t in *times {
                last = crash_looping(&mut seen, t0 + ms(*t), &limit);
            }
            assert_eq!(last, *want, "{times:?}");
        }
        let off = CrashLoop {
            max: 0,
            ..limit.clone()
        };
        let mut seen = VecDeque::new();
        assert!((0..100).all(|_| !crash_looping(&mut seen, t0, &off)));
        assert!(seen.is_empty());
    }

    #[test]
    fn program_resolves_against_the_boot_partition() {
        let mut cfg = Config::default().box_;
        cfg.args = vec!["a".into()];
        cfg.env.insert("PATH".into(), "/x".into());
        cfg.working_dir = Some("data".into());
        let spec = program(&cfg, Some(Path::new("/boot"))).unwrap();
        assert_eq!(spec.name, "box");
        assert_eq!(spec.program, Path::new("/boot/box"));
        assert_eq!(spec.working_dir, Path::new("/boot/data"));
        assert!(spec.env.contains(&("PATH".into(), "/x".into())));
        assert!(spec.env.contains(&("BOXINIT_BOOT".into(), "/boot".into())));
        assert_eq!(spec.env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(spec.setup.new_session);
        cfg.path = "/bin/sh".into();
        let spec = program(&cfg, Some(Path::new("/boot"))).unwrap();
        assert_eq!(spec.program, Path::new("/bin/sh"));
    }

    #[test]
    fn every_rlimit_name_is_a_resource() {
        for name in crate::config::RLIMITS {
            assert!(crate::sys::exec::resource(name).is_some(), "{name}");
        }
    }

    #[test]
    fn program_without_a_boot_partition() {
        let mut cfg = Config::default().box_;
        let err = program(&cfg, None).unwrap_err();
        assert!(err.contains("absolute"), "{err}");
        cfg.path = "/usr/bin/app".into();
        let spec = program(&cfg, None).unwrap();
        assert_eq!(spec.working_dir, Path::new("/"));
        assert!(!spec.env.iter().any(|(k, _)| k == "BOXINIT_BOOT"));
    }

    #[test]
    fn program_setup_from_config() {
        let mut cfg = Config::default().box_;
        cfg.path = "/app".into();
        cfg.user = Some(1000);
        cfg.group = Some(100);
        cfg.groups = vec![5, 20];
        cfg.umask = Some("027".into());
        cfg.rlimits.insert("nofile".into(), 512);
        cfg.no_new_privs = true;
        cfg.console = Some("/dev/ttyS1".into());
        let setup = program(&cfg, None).unwrap().setup;
        assert_eq!(setup.uid, Some(1000));
        assert_eq!(setup.gid, Some(100));
        assert_eq!(setup.groups, [5, 20]);
        assert_eq!(setup.umask, Some(0o027));
        assert_eq!(setup.rlimits, [(rustix::process::Resource::Nofile, 512)]);
        assert!(setup.no_new_privs);
        assert_eq!(setup.console.unwrap().to_str().unwrap(), "/dev/ttyS1");
        cfg.rlimits.insert("nofiles".into(), 1);
        assert!(program(&cfg, None)
            .unwrap_err()
            .contains("unknown limit `nofiles`"));
        cfg.rlimits.clear();
        cfg.umask = Some("999".into());
        assert!(program(&cfg, None).unwrap_err().contains("umask"));
        cfg.umask = None;
        cfg.user = Some(u32::MAX);
        assert!(program(&cfg, None).is_err());
        cfg.user = None;
        cfg.groups = (0..65).collect();
        assert!(program(&cfg, None).unwrap_err().contains("at most 64"));
    }

    fn supervisor(cfg: &BoxConfig, now: Instant) -> Supervisor {
        let spec = program(cfg, Some(Path::new("/nonexistent"))).unwrap();
        Supervisor::new(cfg.clone(), spec, now)
    }

    #[test]
    fn exits_restart_with_growing_delays_then_act() {
        let mut cfg = Config::default().box_;
        cfg.restart = RestartPolicy::OnFailure;
        cfg.on_exit = ExitAction::Poweroff;
        let now = Instant::now();
        let mut sup = supervisor(&cfg, now);
        let mut delays = Vec::new();
        for _ in 0..3 {
            sup.state = State::Running {
                pid: 42,
                since: now,
            };
            assert_eq!(sup.on_reaped(42, Exit::Code(1), now), (None, true));
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
        assert_eq!(sup.on_reaped(7, Exit::Code(0), now), (None, false));
        sup.state = State::Running {
            pid: 42,
            since: now,
        };
        assert_eq!(
            sup.on_reaped(42, Exit::Code(0), now),
            (Some(Outcome::Machine(Reboot::PowerOff)), true)
        );
        assert_eq!(sup.state, State::Done);
    }

    #[test]
    fn crash_loop_ends_restarts_with_its_action() {
        let mut cfg = Config::default().box_;
        cfg.crash_loop = CrashLoop {
            max: 2,
            within: Duration::from_secs(60),
            action: ExitAction::Halt,
        };
        let now = Instant::now();
        let mut sup = supervisor(&cfg, now);
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            sup.state = State::Running {
                pid: 42,
                since: now,
            };
            outcomes.push(sup.on_reaped(42, Exit::Code(1), now).0);
        }
        assert_eq!(outcomes, [None, None, Some(Outcome::Machine(Reboot::Halt))]);
        assert_eq!(sup.state, State::Done);
    }

    #[test]
    fn a_missing_program_counts_as_a_failed_run() {
        let cfg = Config::default().box_;
        let now = Instant::now();
        let mut sup = supervisor(&cfg, now);
        assert_eq!(sup.tick(&mut Recorder::new(), now), None);
        assert!(matches!(sup.state, State::Waiting { .. }));
    }

    #[test]
    fn reload_stops_what_changed_and_keeps_the_rest() {
        let cfg = Config::default().box_;
        let now = Instant::now();
        let mut sup = supervisor(&cfg, now);
        sup.state = State::Running {
            pid: 42,
            since: now,
        };
        let mut rec = Recorder::new();
        let same = (cfg.clone(), sup.spec.clone());
        sup.reconfigure(Some(same), Duration::from_secs(1), &mut rec, now);
        assert_eq!(rec.transcript(), "");
        let mut changed = cfg.clone();
        changed.args = vec!["v2".into()];
        let spec = program(&changed, Some(Path::new("/nonexistent"))).unwrap();
        sup.reconfigure(Some((changed, spec)), Duration::from_secs(1), &mut rec, now);
        assert_eq!(rec.transcript(), "kill(Group(42), 15)\n");
        // Still running a second later: SIGKILL.
        sup.tick(&mut rec, now + Duration::from_secs(1));
        assert_eq!(
            rec.transcript(),
            "kill(Group(42), 15)\nkill(Group(42), 9)\n"
        );
        // Once reaped it starts again at once, with the new args, and no restart policy applies.
        assert_eq!(sup.on_reaped(42, Exit::Signal(9), now), (None, true));
        assert_eq!(sup.spec.args, ["v2"]);
        assert_eq!(sup.deadline(), Some(now));
    }
}
