//! One supervised program's life as a state machine: started when its delay has passed, an
//! exit turned into a restart after a backoff, a crash loop, or an action for the whole
//! machine (`Outcome`), and a reload's stop-and-replace. The loop that drives every
//! supervisor is `event_loop`; what it runs is a resolved `program::Program`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{BoxConfig, CrashLoop, ExitAction, RestartPolicy};
use crate::events::{self, Exit};
use crate::supervision::backoff::Backoff;
use crate::supervision::program::{spawn_pending, Program};
use crate::supervision::runnable::{diagnose, User, DIAGNOSIS_LIMIT};
use crate::supervision::wait::{self, Facts};
use crate::sys::exec::{exec_outcome, ExecOutcome};
use crate::sys::{KillTarget, Reboot, Sys};

const SIGTERM: i32 = nix::sys::signal::Signal::SIGTERM as i32;
const SIGKILL: i32 = nix::sys::signal::Signal::SIGKILL as i32;

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
    /// Not started yet: waiting since `since` for its `wait_for`, checked again at
    /// `next_check` (or at any earlier tick), until `until`, when it starts anyway. `told`:
    /// the wait has been logged.
    Held {
        since: Instant,
        until: Instant,
        next_check: Instant,
        told: bool,
    },
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
    /// How many times it exited (or could not start), and the last time how.
    exits: u64,
    last_exit: Option<Exit>,
    /// Why it ended for good (the action taken), in words, once it has.
    why: String,
    /// It has been started at least once (what a `service:` wait asks).
    started: bool,
    /// The running child's exec pipe until its `execve` is known to be done
    /// ([`Supervisor::check_exec`]): the loop never waits for a child's exec.
    exec_pipe: Option<std::os::fd::OwnedFd>,
    /// Its exec failed, as read from the pipe by a tick before the child was reaped (the
    /// read takes the errno out of the pipe: kept here for [`Supervisor::on_reaped`]).
    exec_failed: Option<std::io::Error>,
}

/// Why a start failed when the error alone says so, before the file is looked at: fork's
/// EAGAIN is a full process table, not a wrong path.
fn start_failure_cause(e: &std::io::Error) -> Option<&'static str> {
    match rustix::io::Errno::from_io_error(e) {
        Some(rustix::io::Errno::AGAIN) => Some(
            "the process table is full (too many processes or threads: the kernel's pid_max or threads-max, or the user's nproc rlimit); it is retried with backoff",
        ),
        _ => None,
    }
}

impl Supervisor {
    /// A supervisor whose program starts at the first `tick`, or, with a `wait_for`, at the
    /// first tick that finds it all there (or at its `wait_timeout`).
    pub fn new(cfg: BoxConfig, spec: Program, now: Instant) -> Supervisor {
        let floor = crate::supervision::backoff::MIN_RESTART_DELAY;
        if cfg.backoff.initial < floor || cfg.backoff.max < floor {
            log::warn!(
                "{}: backoff below the floor of {}ms (initial {}, max {}): restarts wait at least that long",
                spec.name,
                floor.as_millis(),
                crate::config::format_duration(cfg.backoff.initial),
                crate::config::format_duration(cfg.backoff.max)
            );
        }
        let backoff = Backoff::from(&cfg.backoff);
        let state = match cfg.wait_for.is_empty() {
            true => State::Waiting { until: now },
            false => State::Held {
                since: now,
                until: events::deadline_after(now, cfg.wait_timeout),
                next_check: now,
                told: false,
            },
        };
        Supervisor {
            cfg,
            spec,
            backoff,
            restarts: VecDeque::new(),
            state,
            pending: Pending::None,
            kill_at: None,
            started: false,
            exits: 0,
            last_exit: None,
            why: String::new(),
            exec_pipe: None,
            exec_failed: None,
        }
    }

    /// How many times it exited or could not start (since it was configured).
    pub fn exits(&self) -> u64 {
        self.exits
    }

    /// How it last exited (127: it could not start).
    pub fn last_exit(&self) -> Option<Exit> {
        self.last_exit
    }

    /// Why it ended for good and what that does, in words: empty until it has.
    pub fn why(&self) -> &str {
        &self.why
    }

    /// When its current run started, while it runs.
    pub fn running_since(&self) -> Option<Instant> {
        match self.state {
            State::Running { since, .. } => Some(since),
            _ => None,
        }
    }

    /// Whether it has been started at least once.
    pub fn has_started(&self) -> bool {
        self.started
    }

    /// Whether it is waiting for its `wait_for` (not started yet).
    pub fn is_held(&self) -> bool {
        matches!(self.state, State::Held { .. })
    }

    /// What log lines call it.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What it runs.
    pub fn spec(&self) -> &Program {
        &self.spec
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
            State::Held {
                until, next_check, ..
            } => Some(until.min(next_check)),
            _ => None,
        };
        waiting.into_iter().chain(self.kill_at).min()
    }

    /// Starts the program when its delay has passed and its `wait_for` is there (or its
    /// timeout has passed: then an error names what never came); a program that cannot start
    /// counts as a failed run. Kills one that outlived a reload's grace period.
    pub fn tick(&mut self, sys: &mut dyn Sys, now: Instant, facts: &dyn Facts) -> Option<Outcome> {
        self.check_exec();
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
        let due = match self.state {
            State::Waiting { until } => until <= now,
            State::Held { .. } => !self.still_held(now, facts),
            _ => false,
        };
        if !due {
            return None;
        }
        match spawn_pending(&self.spec) {
            Ok((pid, pipe)) => {
                log::info!(
                    "started {} {} (pid {pid})",
                    self.name(),
                    self.spec.program.display()
                );
                self.state = State::Running { pid, since: now };
                self.exec_pipe = Some(pipe);
                self.started = true;
                None
            }
            Err(e) => {
                self.log_start_failure(&e);
                self.after_exit(Exit::Code(127), Duration::ZERO, now)
            }
        }
    }

    /// While its child has not exec'd yet: asks its pipe, without waiting; the pipe is
    /// closed once the program runs. A failure is kept in the pipe for [`on_reaped`]: the
    /// child exits with 127 right after writing it.
    ///
    /// [`on_reaped`]: Supervisor::on_reaped
    fn check_exec(&mut self) {
        let Some(pipe) = &self.exec_pipe else {
            return;
        };
        match exec_outcome(pipe) {
            ExecOutcome::Pending => {}
            ExecOutcome::Running => self.exec_pipe = None,
            ExecOutcome::Failed(e) => {
                self.exec_pipe = None;
                self.exec_failed = Some(e);
            }
        }
    }

    /// A start that failed, in words: the error, and what is wrong with the file itself
    /// (wrong architecture, missing loader or interpreter, not executable for its user) when
    /// that is it.
    fn log_start_failure(&self, e: &std::io::Error) {
        let user = User::of(&self.spec);
        // The file is read on a thread, waited for a moment: a hung card must not hold the loop.
        let diagnosis = match start_failure_cause(e) {
            Some(cause) => Some(Err(cause.to_string())),
            None => diagnose(&self.spec.program, &user, DIAGNOSIS_LIMIT),
        };
        match diagnosis {
            Some(Err(why)) => log::error!(
                "cannot start {} {}: {e}: {why}",
                self.name(),
                self.spec.program.display()
            ),
            Some(Ok(())) => log::error!(
                "cannot start {} {}: {e}; check its path (a box goes on the boot partition as `box`), console, user and rlimits in init.toml",
                self.name(),
                self.spec.program.display()
            ),
            None => log::error!(
                "cannot start {} {}: {e}; its file could not be looked at within {}ms (a slow or hung disk?); check the disk, then its path, console, user and rlimits",
                self.name(),
                self.spec.program.display(),
                DIAGNOSIS_LIMIT.as_millis()
            ),
        }
    }

    /// Whether it may start at `now` as far as its `wait_for` goes (met, or timed out: then
    /// logged as in [`Supervisor::tick`]); for a box that PID 1 execs, which has no loop.
    pub fn ready(&mut self, now: Instant, facts: &dyn Facts) -> bool {
        if !self.is_held() {
            return true;
        }
        if self.still_held(now, facts) {
            return false;
        }
        self.state = State::Waiting { until: now };
        true
    }

    /// A held program's `wait_for` checked at `now`: true while something is missing and the
    /// timeout has not passed. Logs when the wait begins, and how it ended.
    fn still_held(&mut self, now: Instant, facts: &dyn Facts) -> bool {
        let State::Held {
            since, until, told, ..
        } = self.state
        else {
            return false;
        };
        let missing = wait::missing(&self.cfg.wait_for, facts);
        let waited = now.saturating_duration_since(since).as_millis();
        if missing.is_empty() {
            if told {
                log::info!(
                    "{}: {} there after {waited}ms (wait_for)",
                    self.name(),
                    wait::list(&self.cfg.wait_for.iter().collect::<Vec<_>>())
                );
            }
            return false;
        }
        if now >= until {
            log::error!(
                "{}: {} never came within {} (wait_for); starting it anyway",
                self.name(),
                wait::list(&missing),
                crate::config::format_duration(self.cfg.wait_timeout)
            );
            return false;
        }
        if !told {
            log::info!(
                "{} waits for {} (wait_for, at most {})",
                self.name(),
                wait::list(&missing),
                crate::config::format_duration(self.cfg.wait_timeout)
            );
        }
        self.state = State::Held {
            since,
            until,
            next_check: events::deadline_after(now, wait::RECHECK),
            told: true,
        };
        true
    }

    /// Handles a reaped child; returns what the machine must do when this exit calls for it.
    /// `false` in the second place: the child was not this program.
    pub fn on_reaped(&mut self, pid: i32, exit: Exit, now: Instant) -> (Option<Outcome>, bool) {
        let since = match self.state {
            State::Running { pid: mine, since } if mine == pid => since,
            _ => return (None, false),
        };
        // The child is gone: its pipe holds its errno if a step before the program failed
        // (unless a tick read it already).
        let failed = match self.exec_pipe.take().map(|pipe| exec_outcome(&pipe)) {
            Some(ExecOutcome::Failed(e)) => Some(e),
            _ => self.exec_failed.take(),
        };
        if let Some(e) = &failed {
            self.log_start_failure(e);
        } else {
            log::info!("{} {} {exit}", self.name(), self.spec.program.display());
        }
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
            Pending::None if failed.is_some() => {
                (self.after_exit(Exit::Code(127), Duration::ZERO, now), true)
            }
            Pending::None => (
                self.after_exit(exit, now.saturating_duration_since(since), now),
                true,
            ),
        }
    }

    fn after_exit(&mut self, exit: Exit, ran_for: Duration, now: Instant) -> Option<Outcome> {
        self.exits += 1;
        self.last_exit = Some(exit);
        if should_restart(self.cfg.restart, exit) {
            if crash_looping(&mut self.restarts, now, &self.cfg.crash_loop) {
                self.state = State::Done;
                let limit = &self.cfg.crash_loop;
                self.why = format!(
                    "crash loop of {}: more than {} restarts within {}, the last one {} (crash_loop.action = \"{}\")",
                    self.name(),
                    limit.max,
                    crate::config::format_duration(limit.within),
                    exit,
                    limit.action
                );
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
        self.why = format!(
            "{} {exit} and is not restarted (restart = \"{}\", on_exit = \"{}\")",
            self.name(),
            self.cfg.restart,
            self.cfg.on_exit
        );
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
    pub fn reconfigure(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::supervision::program::resolve;
    use crate::supervision::wait::testing::Table;
    use crate::sys::recorder::Recorder;
    use std::path::Path;

    #[test]
    fn a_full_process_table_is_named_not_the_path() {
        let eagain = std::io::Error::from_raw_os_error(rustix::io::Errno::AGAIN.raw_os_error());
        assert!(start_failure_cause(&eagain)
            .is_some_and(|cause| cause.starts_with("the process table is full")));
        let enoent = std::io::Error::from_raw_os_error(rustix::io::Errno::NOENT.raw_os_error());
        assert_eq!(start_failure_cause(&enoent), None);
    }

    /// `/bin/true` supervised, with `wait_for`.
    fn waiting(wait_for: &[&str], now: Instant) -> Supervisor {
        let cfg = BoxConfig {
            path: "/bin/true".into(),
            wait_for: wait_for.iter().map(|w| w.parse().unwrap()).collect(),
            wait_timeout: Duration::from_secs(5),
            ..Config::default().box_
        };
        let spec = resolve(&cfg, None).unwrap();
        Supervisor::new(cfg, spec, now)
    }

    /// Reaps the program `sup` started, if it did.
    fn reap(sup: &Supervisor) {
        if let Some(pid) = sup.process_group() {
            let pid = rustix::process::Pid::from_raw(pid).unwrap();
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
    }

    #[test]
    fn a_wait_for_holds_the_start_until_all_is_there() {
        let now = Instant::now();
        let mut sup = waiting(&["/dev/spidev0.0", "module:spidev"], now);
        let mut rec = Recorder::new();
        assert!(sup.is_held() && !sup.has_started());
        // nothing there: held, and checked again soon
        assert_eq!(sup.tick(&mut rec, now, &Table(vec![])), None);
        assert!(sup.is_held());
        assert_eq!(
            sup.deadline(),
            Some(now + crate::supervision::wait::RECHECK)
        );
        // half of it: still held
        let later = now + Duration::from_secs(1);
        sup.tick(&mut rec, later, &Table(vec!["/dev/spidev0.0"]));
        assert!(sup.is_held() && sup.process_group().is_none());
        // all of it: started
        let all = Table(vec!["/dev/spidev0.0", "module:spidev"]);
        sup.tick(&mut rec, later, &all);
        assert!(!sup.is_held() && sup.has_started(), "{:?}", sup.state);
        reap(&sup);
    }

    #[test]
    fn at_its_timeout_a_program_starts_without_what_never_came() {
        let now = Instant::now();
        let mut sup = waiting(&["net:eth0", "time-synced"], now);
        let mut rec = Recorder::new();
        let nothing = Table(vec![]);
        sup.tick(&mut rec, now + Duration::from_millis(4999), &nothing);
        assert!(sup.is_held());
        assert_eq!(sup.deadline(), Some(now + Duration::from_secs(5)));
        sup.tick(&mut rec, now + Duration::from_secs(5), &nothing);
        assert!(!sup.is_held() && sup.has_started(), "{:?}", sup.state);
        reap(&sup);
        // `ready` (exec mode) says the same
        let mut exec = waiting(&["coldplug"], now);
        assert!(!exec.ready(now, &nothing));
        assert!(exec.ready(now, &Table(vec!["coldplug"])));
        assert_eq!(exec.state, State::Waiting { until: now });
    }

    #[test]
    fn a_reload_keeps_a_wait_or_starts_a_new_one() {
        let now = Instant::now();
        let mut sup = waiting(&["service:db"], now);
        let mut rec = Recorder::new();
        sup.tick(&mut rec, now, &Table(vec![]));
        let held = sup.state;
        // the same configuration: the same wait, its timeout unchanged
        let same = (sup.cfg.clone(), sup.spec.clone());
        let later = now + Duration::from_secs(2);
        sup.reconfigure(Some(same), Duration::from_secs(1), &mut rec, later);
        assert_eq!(sup.state, held);
        // another wait_for: a new wait from the reload on, nothing killed
        let mut changed = sup.cfg.clone();
        changed.wait_for = vec!["/dev/watchdog".parse().unwrap()];
        let spec = sup.spec.clone();
        sup.reconfigure(
            Some((changed, spec)),
            Duration::from_secs(1),
            &mut rec,
            later,
        );
        assert_eq!(rec.transcript(), "");
        assert!(sup.is_held());
        assert_eq!(sup.deadline(), Some(later));
        sup.tick(&mut rec, later, &Table(vec!["service:db"]));
        assert!(sup.is_held(), "the old need no longer counts");
        sup.tick(&mut rec, later, &Table(vec!["/dev/watchdog"]));
        assert!(sup.has_started());
        reap(&sup);
        // gone from the configuration while waiting: never started
        let mut gone = waiting(&["coldplug"], now);
        gone.reconfigure(None, Duration::from_secs(1), &mut rec, now);
        assert_eq!(gone.state, State::Done);
        assert_eq!(gone.tick(&mut rec, now, &Table(vec!["coldplug"])), None);
        assert!(!gone.has_started());
    }

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

    fn supervisor(cfg: &BoxConfig, now: Instant) -> Supervisor {
        let spec = resolve(cfg, Some(Path::new("/nonexistent"))).unwrap();
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

    /// The default box (no such program) started by a tick, and its child waited for (not
    /// reaped through the supervisor): the supervisor, the pid, the child's exit status.
    fn started_missing(now: Instant) -> (Supervisor, i32, Option<i32>) {
        let cfg = Config::default().box_;
        let mut sup = supervisor(&cfg, now);
        // The tick does not wait for the child's execve (issue 17: it may read a hung card):
        // the child is running, and how its exec went comes when it is reaped.
        assert_eq!(sup.tick(&mut Recorder::new(), now, &Table(vec![])), None);
        let State::Running { pid, .. } = sup.state else {
            panic!("{:?}", sup.state);
        };
        assert!(sup.exec_pipe.is_some());
        let status = rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        )
        .unwrap()
        .unwrap()
        .1;
        (sup, pid, status.exit_status())
    }

    #[test]
    fn a_missing_program_counts_as_a_failed_run() {
        let now = Instant::now();
        let (mut sup, pid, status) = started_missing(now);
        assert_eq!(status, Some(127));
        let (outcome, mine) = sup.on_reaped(pid, Exit::Code(127), now);
        assert!(mine);
        assert_eq!(outcome, None);
        assert!(matches!(sup.state, State::Waiting { .. }));
        assert_eq!(sup.last_exit(), Some(Exit::Code(127)));
        assert!(sup.exec_pipe.is_none());
    }

    /// A tick that reads the failed exec's errno before the child is reaped (a loop that
    /// turns often, as while the card is written): still a start failure, not an exit.
    #[test]
    fn a_failed_exec_read_by_a_tick_is_still_a_start_failure() {
        let now = Instant::now();
        let (mut sup, pid, _) = started_missing(now);
        // the child has written its errno and exited; a tick reads the pipe first
        sup.check_exec();
        assert!(sup.exec_pipe.is_none());
        let kept = sup.exec_failed.as_ref().map(|e| e.raw_os_error());
        assert_eq!(kept, Some(Some(2)), "ENOENT kept for the reaping");
        // the reaping says it as a start failure (with the diagnosis), and takes it
        let (_, mine) = sup.on_reaped(pid, Exit::Code(127), now);
        assert!(mine);
        assert!(sup.exec_failed.is_none());
        assert_eq!(sup.last_exit(), Some(Exit::Code(127)));
    }

    /// A child that exec'd: its exit is its own, not a start failure.
    #[test]
    fn a_started_program_exits_with_its_own_status() {
        let mut cfg = Config::default().box_;
        cfg.path = "/bin/sh".into();
        cfg.args = vec!["-c".into(), "exit 3".into()];
        let now = Instant::now();
        let spec = resolve(&cfg, None).unwrap();
        let mut sup = Supervisor::new(cfg, spec, now);
        sup.tick(&mut Recorder::new(), now, &Table(vec![]));
        let State::Running { pid, .. } = sup.state else {
            panic!("{:?}", sup.state);
        };
        let status = rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        )
        .unwrap()
        .unwrap()
        .1;
        assert_eq!(status.exit_status(), Some(3));
        sup.on_reaped(pid, Exit::Code(3), now);
        assert_eq!(sup.last_exit(), Some(Exit::Code(3)));
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
        let spec = resolve(&changed, Some(Path::new("/nonexistent"))).unwrap();
        sup.reconfigure(Some((changed, spec)), Duration::from_secs(1), &mut rec, now);
        assert_eq!(rec.transcript(), "kill(Group(42), 15)\n");
        // Still running a second later: SIGKILL.
        sup.tick(&mut rec, now + Duration::from_secs(1), &Table(vec![]));
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
