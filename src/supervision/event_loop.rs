//! PID 1's event loop once the box runs: reaps every child, ticks each supervisor (starts,
//! restarts), pets the watchdog, reloads on SIGHUP, passes uevents to whoever looks after
//! the devices and the box's exits and progress to whoever judges its run (a trial, the
//! boot-loop brake: `field`), and returns the shutdown that a signal, an exit action or a
//! verdict asked for, with why. The shutdown itself is `shutdown`'s; one program's life is
//! `supervisor`'s.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{BoxConfig, ExitAction};
use crate::events::{self, Event, Events, Exit};
use crate::supervision::program::{shell_program, Program, SHELL};
use crate::supervision::reload::Reload;
use crate::supervision::supervisor::{outcome_of, Outcome, Supervisor};
use crate::supervision::wait::{self, Facts};
use crate::supervision::watchdog::Watchdog;
use crate::sys::{Reboot, Sys};

/// At most this many children are reaped per wake-up of the loop (see `shutdown`'s own).
const REAP_BATCH: usize = 256;

const SIGHUP: i32 = nix::sys::signal::Signal::SIGHUP as i32;
const SIGINT: i32 = nix::sys::signal::Signal::SIGINT as i32;

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

/// The shutdown the loop ends with: how, and why in words (for the log and the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub how: Reboot,
    pub why: String,
}

/// What the watchdog's heartbeat has shown so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Beats {
    /// The box's heartbeat came at least once.
    pub seen: bool,
    /// boxinit stopped petting: the heartbeat is missing and a reset is coming.
    pub starving: bool,
}

/// Whoever judges the box's run (a trial, the boot-loop brake, the card's records: `field`).
pub trait Judge {
    /// The box exited (or could not start: status 127); `outcome` is what its supervisor
    /// decided. Returns a shutdown that replaces the outcome (a trial reverted).
    fn box_exited(
        &mut self,
        sys: &mut dyn Sys,
        exit: Exit,
        outcome: Option<Outcome>,
        now: Instant,
    ) -> Option<Stop>;
    /// Every turn of the loop: whether and since when the box runs, and its heartbeat.
    /// Returns a shutdown to make, and when to be called again at the latest.
    fn tick(
        &mut self,
        sys: &mut dyn Sys,
        now: Instant,
        running_since: Option<Instant>,
        beats: Beats,
    ) -> (Option<Stop>, Option<Instant>);
}

/// Nothing to judge (no card).
pub struct NoJudge;

impl Judge for NoJudge {
    fn box_exited(
        &mut self,
        _: &mut dyn Sys,
        _: Exit,
        _: Option<Outcome>,
        _: Instant,
    ) -> Option<Stop> {
        None
    }
    fn tick(
        &mut self,
        _: &mut dyn Sys,
        _: Instant,
        _: Option<Instant>,
        _: Beats,
    ) -> (Option<Stop>, Option<Instant>) {
        (None, None)
    }
}

/// What the loop needs besides its programs.
pub struct Loop<'a> {
    pub events: &'a Events,
    pub sys: &'a mut dyn Sys,
    /// The watchdog to pet, if any; the first program (the box) sends its heartbeat.
    pub watchdog: Option<&'a mut Watchdog>,
    /// SIGHUP: re-read init.toml, on a thread of its own (`reload`).
    pub reload: &'a mut Reload,
    /// What SIGINT (Ctrl-Alt-Del, with CAD turned off) does: `[system] ctrl_alt_del`.
    pub ctrl_alt_del: ExitAction,
    /// What acts on devices (hotplug).
    pub devices: &'a mut dyn DeviceEvents,
    /// What judges the box's run (`field::Card`, or [`NoJudge`]).
    pub judge: &'a mut dyn Judge,
}

/// What the loop hands to whoever looks after the devices.
pub trait DeviceEvents {
    /// A device event from the kernel (its module, node rules, automount).
    fn on_uevent(&mut self, sys: &mut dyn Sys, message: &[u8]);
    /// Device events were lost (the uevent socket overflowed): look at every device again.
    fn rescan(&mut self, sys: &mut dyn Sys);
    /// Called on every turn of the loop (work under way, such as automount probes); returns
    /// when to be called again at the latest.
    fn tick(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant>;
    /// Whether the kernel has the module (`wait_for`'s `module:NAME`).
    fn module_ready(&self, name: &str) -> bool;
    /// Whether coldplug is over (`wait_for`'s `coldplug`).
    fn coldplug_done(&self) -> bool;
}

/// What `wait_for` asks, answered from the machine under `root`, the supervisors started so
/// far and the devices.
struct LoopFacts<'a> {
    root: &'a Path,
    started: Vec<String>,
    devices: &'a dyn DeviceEvents,
}

impl Facts for LoopFacts<'_> {
    fn path_exists(&self, path: &str) -> bool {
        wait::under(self.root, path).exists()
    }
    fn module_ready(&self, name: &str) -> bool {
        self.devices.module_ready(name)
    }
    fn interface_addressed(&self, glob: &str) -> bool {
        wait::lease_exists(self.root, glob)
    }
    fn time_synced(&self) -> bool {
        wait::under(self.root, wait::TIME_SYNCED).exists()
    }
    fn service_started(&self, name: &str) -> bool {
        self.started.iter().any(|s| s == name)
    }
    fn coldplug_done(&self) -> bool {
        self.devices.coldplug_done()
    }
}

/// The event loop: reaps every child, restarts programs, pets the watchdog, reloads on
/// SIGHUP, passes device events to hotplug and the box's exits to the judge, and returns the
/// shutdown that a signal, an exit action or a verdict asked for.
pub fn run(ctx: Loop<'_>, supervisors: &mut Vec<Supervisor>) -> Stop {
    let Loop {
        events,
        sys,
        mut watchdog,
        reload,
        ctrl_alt_del,
        devices,
        judge,
    } = ctx;
    // The box's exits the judge has been told of (a reload's new supervisor starts at 0).
    let mut box_exits = 0;
    // The last round reaped a whole batch: more zombies may wait, so no sleep before the next.
    let mut more_to_reap = false;
    loop {
        let now = Instant::now();
        if supervisors.iter().any(Supervisor::is_held) {
            // Device events already queued are handled before a wait is judged met, so that
            // a program waiting for a device finds its node rules applied.
            handle_uevents(events, sys, devices, Duration::ZERO);
        }
        // A reload's reading, once it is in (it reads off the loop: the card may hang).
        let (reloaded, reload_at) = reload.tick(now);
        if let Some((programs, grace)) = reloaded.flatten() {
            apply_reload(supervisors, programs, grace, sys, now);
        }
        let box_before = supervisors.first().and_then(Supervisor::process_group);
        for i in 0..supervisors.len() {
            let facts = LoopFacts {
                root: Path::new("/"),
                started: started_names(supervisors),
                devices: &*devices,
            };
            let outcome = supervisors
                .get_mut(i)
                .and_then(|s| s.tick(sys, now, &facts));
            if let Some(stop) = judge_box(judge, sys, supervisors, &mut box_exits, outcome, now) {
                return stop;
            }
            let why = supervisors.get(i).map(|s| s.why().to_string());
            if let Some(stop) = act(outcome, why, supervisors) {
                return stop;
            }
        }
        let box_after = supervisors.first().and_then(Supervisor::process_group);
        let mut beats = Beats::default();
        if let Some(wd) = watchdog.as_deref_mut() {
            // A box waiting for its wait_for owes no heartbeat yet.
            let box_held = supervisors.first().is_some_and(Supervisor::is_held);
            if box_held || (box_after.is_some() && box_after != box_before) {
                wd.box_started(now);
            }
            wd.tick(now);
            beats = Beats {
                seen: wd.heartbeat_seen(),
                starving: wd.starving(),
            };
        }
        let running_since = supervisors.first().and_then(Supervisor::running_since);
        let (verdict, judge_at) = judge.tick(sys, now, running_since, beats);
        if let Some(stop) = verdict {
            return stop;
        }
        let devices_at = devices.tick(sys, now);
        let deadline = supervisors
            .iter()
            .filter_map(Supervisor::deadline)
            .chain(watchdog.as_deref().map(Watchdog::deadline))
            .chain(devices_at)
            .chain(judge_at)
            .chain(reload_at)
            .min();
        let timeout = match more_to_reap {
            true => Some(Duration::ZERO),
            false => deadline.map(|d| d.saturating_duration_since(Instant::now())),
        };
        let arrived = match events.wait(timeout) {
            Ok(arrived) => arrived,
            Err(e) => {
                log::error!("event loop: poll failed: {e}; retrying in 1s");
                std::thread::sleep(Duration::from_secs(1));
                Vec::new()
            }
        };
        // Reap on every wake-up, not only on SIGCHLD: signals coalesce, and reaping is cheap.
        // A batch at a time: a fork bomb's orphans die as fast as they are reaped, and the
        // signals (a power-off asked for) and the watchdog come between two batches.
        let mut reaped = 0;
        while let Some((pid, exit)) = (reaped < REAP_BATCH).then(events::reap_one).flatten() {
            reaped += 1;
            let now = Instant::now();
            let mut outcome = None;
            let mut mine = None;
            for (i, s) in supervisors.iter_mut().enumerate() {
                let (o, matched) = s.on_reaped(pid, exit, now);
                if matched {
                    outcome = o;
                    mine = Some(i);
                    break;
                }
            }
            let Some(i) = mine else {
                log::debug!("reaped orphan pid {pid} ({exit})");
                continue;
            };
            if let Some(stop) = judge_box(judge, sys, supervisors, &mut box_exits, outcome, now) {
                return stop;
            }
            let why = supervisors.get(i).map(|s| s.why().to_string());
            if let Some(stop) = act(outcome, why, supervisors) {
                return stop;
            }
        }
        more_to_reap = reaped == REAP_BATCH;
        for event in arrived {
            let signal = match event {
                Event::Signal(signal) => signal,
                Event::Uevent(message) => {
                    devices.on_uevent(sys, &message);
                    continue;
                }
                Event::UeventsLost => {
                    devices.rescan(sys);
                    continue;
                }
            };
            if signal == SIGHUP {
                reload.asked(Instant::now());
                continue;
            }
            if signal == SIGINT {
                log::info!("received SIGINT (Ctrl-Alt-Del): ctrl_alt_del = \"{ctrl_alt_del}\"");
                let why = format!("Ctrl-Alt-Del (ctrl_alt_del = \"{ctrl_alt_del}\")");
                if let Some(stop) = act(Some(outcome_of(ctrl_alt_del)), Some(why), supervisors) {
                    return stop;
                }
                continue;
            }
            if let Some(how) = reboot_for_signal(signal) {
                log::info!("received {}: {how:?}", signal_name(signal));
                return Stop {
                    how,
                    why: format!("asked for by {} to PID 1", signal_name(signal)),
                };
            }
        }
    }
}

/// Tells the judge of an exit of the box (the first supervisor) it has not seen yet.
fn judge_box(
    judge: &mut dyn Judge,
    sys: &mut dyn Sys,
    supervisors: &[Supervisor],
    seen: &mut u64,
    outcome: Option<Outcome>,
    now: Instant,
) -> Option<Stop> {
    let the_box = supervisors.first()?;
    let exits = the_box.exits();
    if exits < *seen {
        // replaced by a reload: a new count
        *seen = exits;
    }
    if exits == *seen {
        return None;
    }
    *seen = exits;
    let exit = the_box.last_exit()?;
    judge.box_exited(sys, exit, outcome, now)
}

/// `mode = "exec"`: the box's `wait_for`, checked before PID 1 becomes the box (no loop
/// comes after): device events handled as they come (their modules, rules, automounts), the
/// needs checked on each and every [`wait::RECHECK`], until all are there or the timeout.
pub fn wait_before_exec(
    events: &Events,
    sys: &mut dyn Sys,
    devices: &mut dyn DeviceEvents,
    program: &mut Supervisor,
) {
    loop {
        let now = Instant::now();
        handle_uevents(events, sys, devices, Duration::ZERO);
        let facts = LoopFacts {
            root: Path::new("/"),
            started: Vec::new(),
            devices: &*devices,
        };
        if program.ready(now, &facts) {
            return;
        }
        let at = program.deadline().unwrap_or(now);
        handle_uevents(events, sys, devices, at.saturating_duration_since(now));
    }
}

/// The uevents that arrive within `timeout` to `devices`, and a rescan when some were lost.
fn handle_uevents(
    events: &Events,
    sys: &mut dyn Sys,
    devices: &mut dyn DeviceEvents,
    timeout: Duration,
) {
    for message in events.wait_uevent(timeout) {
        devices.on_uevent(sys, &message);
    }
    if events.take_lost() {
        devices.rescan(sys);
    }
}

/// The names of the programs started so far (`wait_for`'s `service:NAME`).
fn started_names(supervisors: &[Supervisor]) -> Vec<String> {
    supervisors
        .iter()
        .filter(|s| s.has_started())
        .map(|s| s.name().to_string())
        .collect()
}

/// Carries out an outcome: a machine action ends the loop (with `why`), a shell is started.
fn act(
    outcome: Option<Outcome>,
    why: Option<String>,
    supervisors: &mut Vec<Supervisor>,
) -> Option<Stop> {
    let why = why.unwrap_or_default();
    match outcome? {
        Outcome::Machine(how) => Some(Stop { how, why }),
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
                    Some(Stop {
                        how: Reboot::Restart,
                        why: format!("{why}; no {SHELL} for the shell action"),
                    })
                }
            }
        }
    }
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
        if new.is_none() && s.name() == "shell" && s.spec().program == Path::new(SHELL) {
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
}
