//! The card while the box runs and at its end: the box's health judged (`health`), a trial
//! promoted or reverted, the boot-loop brake released by a healthy box, the watchdog's coming
//! reset recorded before it comes, the time kept for `[time] save`, and the shutdown report
//! written before every reboot and power-off. Each a write window (`window`), each logged
//! once. The boot's part is `card.rs`'s.

use std::path::Path;
use std::time::{Duration, Instant};

use super::card::{Card, ThisTrial, CONFIG};
use super::files::{now_text, replace, write_state};
use super::health::{self, Seen, Verdict};
use super::report::{self, Report};
use super::state::{self, Ending, State};
use super::trial::{self, Facts};
use super::watch::{After, TimeSave};
use super::window::Window;
use crate::events::Exit;
use crate::supervision::event_loop::{Beats, Judge, Stop};
use crate::supervision::supervisor::Outcome;
use crate::sys::{Reboot, Sys};

impl Card {
    /// Where the box's output can be read from, for the reports.
    pub fn set_output(&mut self, tail: crate::supervision::relay::Tail) {
        self.run.output = Some(tail);
    }

    /// `[time] save`: the time program saves to tmpfs; PID 1 copies it to `target` every
    /// `interval` and at shutdown.
    pub fn keep_time(&mut self, target: &str, interval: Duration, now: Instant) {
        self.run.time = Some(TimeSave {
            target: target.trim_start_matches("./").to_string(),
            interval,
            next: crate::events::deadline_after(now, interval),
            saved: None,
        });
    }

    /// A healthy box: a trial promoted, the brake's count back to 0, in one window (said
    /// once it is written).
    fn healthy(&mut self, sys: &mut dyn Sys, how: &str) {
        self.run.judged = true;
        let trial = self.trial.clone();
        let dir = self.scribe.dir.clone();
        let was_safe = self.safe.is_some();
        let how = how.to_string();
        let writes = {
            let trial = trial.clone();
            move |w: &mut Window, state: &mut State| {
                state.unhealthy = 0;
                if let Some(t) = &trial {
                    if let Some(record) = state.trial.as_mut() {
                        record.phase = state::Phase::Promoting;
                    }
                    write_state(w, state, &dir)?;
                    if let Some(sha) = &t.config {
                        trial::promote(w, CONFIG, sha, &t.config_facts)?;
                    }
                    if let Some((name, sha)) = &t.box_ {
                        trial::promote(w, name, sha, &t.box_facts)?;
                    }
                    if let Some((slot, _)) = &t.bundle {
                        super::slots::commit(w, slot)?;
                    }
                    state.trial = None;
                }
                write_state(w, state, &dir)
            }
        };
        self.write_window(sys, "healthy box", writes, move |ok| {
            say_healthy(trial.as_ref(), &how, ok, was_safe);
            After::Nothing
        });
    }

    /// A trial that failed: its files set aside with why, the state cleared, and a reboot
    /// into the previous box and config.
    fn revert(&mut self, sys: &mut dyn Sys, why: &str) -> Stop {
        self.run.judged = true;
        let Some(t) = self.trial.clone() else {
            return Stop {
                how: Reboot::Restart,
                why: why.to_string(),
            };
        };
        let dir = self.scribe.dir.clone();
        let boot = self.scribe.state.boot;
        let names: Vec<String> = (t.config.as_ref().map(|_| CONFIG.to_string()).into_iter())
            .chain(t.box_.as_ref().map(|(name, _)| name.clone()))
            .chain(t.bundle.as_ref().map(|(slot, _)| format!("{slot}bundle")))
            .collect();
        let (trial, reason) = (t.clone(), why.to_string());
        let writes = move |w: &mut Window, state: &mut State| {
            if trial.config.is_some() {
                let facts = Facts::read(&dir, CONFIG, false);
                let text = trial::failed_text(CONFIG, &reason, boot, &now_text(), CONFIG);
                trial::set_aside(w, CONFIG, &text, &facts)?;
            }
            if let Some((name, _)) = &trial.box_ {
                let facts = Facts::read(&dir, name, false);
                let text = trial::failed_text(name, &reason, boot, &now_text(), name);
                trial::set_aside(w, name, &text, &facts)?;
            }
            if let Some((slot, _)) = &trial.bundle {
                let text = super::slots::failed_text(slot, &reason, boot);
                super::slots::set_aside(w, slot, &text)?;
            }
            state.trial = None;
            write_state(w, state, &dir)
        };
        let failed: Vec<String> = names.iter().map(|n| format!("{n}.failed")).collect();
        let (tried, failed, reason) = (t.names(), failed.join(" and "), why.to_string());
        // said once the files are set aside, after the window's own line
        self.write_window(sys, "trial revert", writes, move |_| {
            log::error!(
                "trial: {tried} reverted: {reason}; kept as {failed} (why in .failed.txt); rebooting into the previous files"
            );
            After::Nothing
        });
        Stop {
            how: Reboot::Restart,
            why: format!("trial of {} reverted: {why}", t.names()),
        }
    }

    /// The watchdog stopped being petted (or is petted again): recorded before the reset
    /// comes, with a report of why, so the next boot can tell a watchdog reset from a power
    /// cut.
    fn watchdog_changed(&mut self, sys: &mut dyn Sys, starving: bool) {
        self.run.starving = starving;
        if !self.keeps_state() {
            return;
        }
        if !starving {
            let dir = self.scribe.dir.clone();
            let writes = move |w: &mut Window, state: &mut State| {
                state.ending = Ending::Running;
                write_state(w, state, &dir)
            };
            self.write_window(sys, "heartbeat back", writes, |_| After::Nothing);
            return;
        }
        let report = self.report_of(
            "the box's heartbeat stopped: boxinit no longer pets the watchdog, which resets the machine",
            "reset by the watchdog (expected)",
            Vec::new(),
        );
        self.write_report(sys, "watchdog report", report, Ending::Watchdog);
    }

    /// The report as it stands now.
    fn report_of(&self, why: &str, action: &str, shutdown: Vec<String>) -> Report {
        Report {
            boot: self.scribe.state.boot,
            why: why.to_string(),
            action: action.to_string(),
            uptime: uptime(),
            clock: now_text(),
            box_exit: self.run.last_exit.clone(),
            shutdown,
            log: crate::kmsg::recent(),
            box_output: self
                .run
                .output
                .as_ref()
                .map(|t| t.text())
                .unwrap_or_default(),
            pstore: Vec::new(),
        }
    }

    /// Writes `report` into the next report file and the state's `ending`, and the time, in
    /// one window.
    fn write_report(
        &mut self,
        sys: &mut dyn Sys,
        purpose: &'static str,
        mut report: Report,
        ending: Ending,
    ) {
        let enabled = self.report.enabled;
        let dir = self.scribe.dir.clone();
        let time = self
            .time_to_save()
            .filter(|(name, _)| !Path::new(name).is_absolute());
        let saved = time.as_ref().map(|(_, seconds)| *seconds);
        let writes = move |w: &mut Window, state: &mut State| {
            if let Some((name, seconds)) = &time {
                replace(w, &dir, name, &time_bytes(&dir.join(name), *seconds)?)?;
            }
            if enabled {
                // the boot as written (its record may have been written just before)
                report.boot = state.boot;
                let next = state.report % state::REPORTS + 1;
                replace(w, &dir, &state::report_file(next), &report::format(&report))?;
                state.report = next;
            }
            state.ending = ending;
            write_state(w, state, &dir)
        };
        self.write_window(sys, purpose, writes, move |ok| match (ok, saved) {
            (true, Some(seconds)) => After::TimeSaved(seconds),
            _ => After::Nothing,
        });
    }

    /// At shutdown (the programs stopped, the card still mounted): the report of why, with
    /// how the stop went, and the time, after the writes under way; waited for as long as
    /// the disks write.
    pub fn shutdown(&mut self, sys: &mut dyn Sys, stop: &Stop, stopped: Vec<String>) {
        if self.run.boot_pending {
            self.record_boot_later(sys);
        }
        let elsewhere = self
            .time_to_save()
            .is_some_and(|(name, _)| Path::new(&name).is_absolute());
        if elsewhere || !self.keeps_state() {
            self.save_time(sys);
        }
        if self.keeps_state() {
            let action = match stop.how {
                Reboot::PowerOff => "power-off",
                Reboot::Halt => "halt",
                _ => "reboot",
            };
            let report = self.report_of(&stop.why, action, stopped);
            self.write_report(sys, "shutdown report", report, Ending::Report);
        }
        self.finish_writes();
    }

    /// The time the time program last saved, if newer than what the card has: (the file,
    /// relative to the card or absolute, and the seconds).
    fn time_to_save(&self) -> Option<(String, i64)> {
        let t = self.run.time.as_ref()?;
        let text = std::fs::read_to_string(
            self.root
                .join(crate::net::TIME_SAVED.trim_start_matches('/')),
        )
        .ok()?;
        let seconds = crate::net::clock::parse_seconds(&text)?;
        if t.saved.is_some_and(|s| s >= seconds) {
            return None;
        }
        Some((t.target.clone(), seconds))
    }

    pub(crate) fn saved_time(&mut self, seconds: i64) {
        if let Some(t) = self.run.time.as_mut() {
            t.saved = Some(seconds);
        }
    }

    /// `[time] save`: the time copied to its file, on the card in a window, or on another
    /// disk (an absolute path) overwritten in place without one.
    fn save_time(&mut self, sys: &mut dyn Sys) {
        let Some((name, seconds)) = self.time_to_save() else {
            return;
        };
        if Path::new(&name).is_absolute() {
            self.write(sys, "time", move |sys, _| {
                match save_elsewhere(sys, Path::new(&name), seconds) {
                    Ok(()) => After::TimeSaved(seconds),
                    Err(e) => {
                        log::warn!("time: cannot save the time to {name}: {e}");
                        After::Nothing
                    }
                }
            });
            return;
        }
        let dir = self.scribe.dir.clone();
        let writes = move |w: &mut Window, _: &mut State| {
            replace(w, &dir, &name, &time_bytes(&dir.join(&name), seconds)?)
        };
        self.write_window(sys, "time", writes, move |ok| match ok {
            true => After::TimeSaved(seconds),
            false => After::Nothing,
        });
    }

    /// Every `[time] interval`: the time copied to its file.
    fn tick_time(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant> {
        let t = self.run.time.as_mut()?;
        if now < t.next {
            return Some(t.next);
        }
        t.next = crate::events::deadline_after(now, t.interval);
        let next = t.next;
        self.save_time(sys);
        Some(next)
    }
}

impl Judge for Card {
    fn box_exited(
        &mut self,
        sys: &mut dyn Sys,
        exit: Exit,
        outcome: Option<Outcome>,
        _now: Instant,
    ) -> Option<Stop> {
        self.run.last_exit = Some(format!("{exit} at {} of uptime", report::seconds(uptime())));
        if self.run.judged || self.trial.is_none() {
            return None;
        }
        // A clean exit the policy restarts is not a failure; any other exit before the
        // verdict is.
        if exit == Exit::Code(0) && outcome.is_none() {
            return None;
        }
        let why = match outcome {
            Some(_) => format!("the box {exit} and was not restarted, before it was validated"),
            None => format!("the box {exit} before it was validated"),
        };
        Some(self.revert(sys, &why))
    }

    fn tick(
        &mut self,
        sys: &mut dyn Sys,
        now: Instant,
        running_since: Option<Instant>,
        beats: Beats,
    ) -> (Option<Stop>, Option<Instant>) {
        self.writes_done(now);
        let (stop, next) = self.judge(sys, now, running_since, beats);
        let written_at = self.writes_next_look(now);
        (stop, next.into_iter().chain(written_at).min())
    }
}

impl Card {
    /// A turn of the loop (`Judge::tick`) without the writes' results.
    fn judge(
        &mut self,
        sys: &mut dyn Sys,
        now: Instant,
        running_since: Option<Instant>,
        beats: Beats,
    ) -> (Option<Stop>, Option<Instant>) {
        if self.run.boot_pending {
            self.record_boot_later(sys);
        }
        if beats.starving != self.run.starving {
            self.watchdog_changed(sys, beats.starving);
        }
        let time_at = self.tick_time(sys, now);
        if self.run.judged {
            return (None, time_at);
        }
        let Some(deadline) = self.run.deadline else {
            return (None, time_at);
        };
        let path = self
            .root
            .join(health::VALIDATE_FILE.trim_start_matches('/'));
        let seen = Seen {
            running_since,
            touched: health::mtime(&path) != self.run.validate_mtime,
            heartbeat: beats.seen,
        };
        let verdict = health::judge(
            self.update.validate,
            self.update.healthy_after(),
            deadline,
            now,
            seen,
        );
        match verdict {
            Ok(Verdict::Healthy(how)) => {
                self.healthy(sys, &how);
                (None, time_at)
            }
            Ok(Verdict::Overdue) if self.trial.is_some() => {
                let why = format!(
                    "it was not validated within [update] deadline = \"{}\"",
                    crate::config::format_duration(self.update.deadline)
                );
                (Some(self.revert(sys, &why)), time_at)
            }
            Ok(Verdict::Overdue) => {
                self.run.judged = true;
                log::warn!(
                    "the box did not show it is healthy within [update] deadline = \"{}\" ([update] validate = \"{}\"): this boot counts toward the boot-loop brake ({} of {})",
                    crate::config::format_duration(self.update.deadline),
                    self.update.validate,
                    self.scribe.state.unhealthy,
                    self.update.boot_loop_limit
                );
                (None, time_at)
            }
            Err(again) => (None, time_at.into_iter().chain([again]).min()),
        }
    }
}

/// Seconds since boot (`CLOCK_BOOTTIME`).
pub fn uptime() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The lines that say a healthy box's window is written (a trial validated, the brake
/// released).
fn say_healthy(trial: Option<&ThisTrial>, how: &str, ok: bool, was_safe: bool) {
    match trial {
        Some(t) if ok => {
            let mut kept = Vec::new();
            if t.config.is_some() {
                kept.push(format!("{CONFIG}.new is now {CONFIG}"));
            }
            if let Some((name, _)) = &t.box_ {
                kept.push(format!("{name}.new is now {name}"));
            }
            if let Some((slot, _)) = &t.bundle {
                kept.push(format!("config.txt now names {slot} (the old slot is tryboot.txt's, for the next bundle)"));
            }
            let previous = match t.box_.is_some() || t.config.is_some() {
                true => "; the old files are .previous",
                false => "",
            };
            log::info!("trial: validated ({how}): {}{previous}", kept.join(", "));
        }
        Some(_) => {}
        None => log::info!("box healthy ({how})"),
    }
    if was_safe && ok {
        log::info!("boot-loop brake released: the box is healthy; the next boots reboot as configured again");
    }
}

/// The time `seconds` as `[time] save`'s file at `path` holds it: padded to the file's
/// length, 24 bytes at least.
fn time_bytes(path: &Path, seconds: i64) -> std::io::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map(|m| m.len() as usize)
        .unwrap_or(0)
        .max(24);
    state::pad(seconds.to_string(), len)
        .ok_or_else(|| std::io::Error::other(format!("{}: the time does not fit", path.display())))
}

/// `[time] save` on another disk: overwritten in place (made anew when that fails), then
/// `fdatasync`.
fn save_elsewhere(sys: &mut dyn Sys, path: &Path, seconds: i64) -> std::io::Result<()> {
    let bytes = time_bytes(path, seconds)?;
    sys.overwrite(path, &bytes)
        .or_else(|_| {
            let _ = sys.unlink(path);
            sys.create(path, &bytes)
        })
        .and_then(|()| sys.fdatasync(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::field::card::tests::card_with;
    use crate::sys::gate::Gate;
    use crate::sys::recorder::{Call, Recorder};
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    /// A card whose boot recorded a trial of box.new (a script), its window done.
    fn on_trial(tag: &str, cfg: &Config) -> (Card, PathBuf) {
        let (dir, root) = card_with(
            tag,
            &[
                ("box", b"old".as_slice()),
                ("box.new", b"#!/bin/sh\n".as_slice()),
            ],
        );
        let mut card = Card::open(&mut Recorder::new(), &dir, true, &root);
        card.configure(cfg, true);
        card.try_box(cfg);
        card.begin(&mut Recorder::new());
        assert!(card.scribe.state.trial.is_some());
        (card, dir)
    }

    fn short(rec: &Recorder, dir: &Path) -> String {
        super::super::card::tests::short(rec, dir)
    }

    #[test]
    fn a_failed_exit_before_the_verdict_reverts_and_reboots() {
        let (mut card, dir) = on_trial("exit", &Config::default());
        let mut rec = Recorder::new();
        let now = Instant::now();
        // a clean exit the policy restarts is no failure
        assert_eq!(card.box_exited(&mut rec, Exit::Code(0), None, now), None);
        let stop = card
            .box_exited(&mut rec, Exit::Signal(6), None, now)
            .unwrap();
        assert_eq!(stop.how, Reboot::Restart);
        assert!(
            stop.why
                .starts_with("trial of box.new reverted: the box was killed by SIGABRT"),
            "{}",
            stop.why
        );
        let t = short(&rec, &dir);
        assert!(
            t.contains("renameat2(B/box.new, B/box.failed, NoReplace)"),
            "{t}"
        );
        assert_eq!(card.scribe.state.trial, None);
        // judged: later exits change nothing
        assert_eq!(card.box_exited(&mut rec, Exit::Code(1), None, now), None);
    }

    #[test]
    fn a_touch_promotes_and_resets_the_brake() {
        let mut cfg = Config::default();
        cfg.update.validate = crate::config::update::Validate::File;
        let (mut card, dir) = on_trial("touch", &cfg);
        let mut rec = Recorder::new();
        let now = Instant::now();
        let (stop, again) = card.tick(&mut rec, now, Some(now), Beats::default());
        assert!(stop.is_none() && again.is_some());
        assert_eq!(rec.transcript(), "", "nothing written before a verdict");
        // the box touches the file: a newer mtime
        let validate = card
            .root
            .join(health::VALIDATE_FILE.trim_start_matches('/'));
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&validate, "ok").unwrap();
        let (stop, _) = card.tick(&mut rec, now, Some(now), Beats::default());
        assert!(stop.is_none());
        let t = short(&rec, &dir);
        assert!(
            t.contains("overwrite(B/boxinit/state.txt, 1024 bytes)\nfdatasync(B/boxinit/state.txt)\nrenameat2(B/box.new, B/box, Exchange)"),
            "{t}"
        );
        assert_eq!(
            (
                card.scribe.state.trial.as_ref(),
                card.scribe.state.unhealthy
            ),
            (None, 0)
        );
    }

    /// A recorder whose `fdatasync` waits until the gate opens (a card behind a large
    /// write-back), and the gate.
    fn held_card() -> (Recorder, Arc<Gate>, Arc<Mutex<Vec<Call>>>) {
        let gate = Arc::new(Gate::default());
        let (mut rec, calls) = Recorder::shared();
        let held = Arc::clone(&gate);
        rec.fail_when(
            move |call| {
                if matches!(call, Call::Fdatasync { .. }) {
                    held.wait();
                }
                false
            },
            5,
        );
        (rec, gate, calls)
    }

    #[test]
    fn a_slow_card_holds_up_no_turn_of_the_loop() {
        let mut cfg = Config::default();
        cfg.update.validate = crate::config::update::Validate::File;
        let (mut card, _) = on_trial("held", &cfg);
        let (writer_sys, gate, calls) = held_card();
        card.write_off_loop(Box::new(writer_sys));
        let validate = card
            .root
            .join(health::VALIDATE_FILE.trim_start_matches('/'));
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&validate, "ok").unwrap();
        // the verdict is in; its window waits on the card, the loop's turns do not
        let mut rec = Recorder::new();
        let started = Instant::now();
        for _ in 0..5 {
            let now = Instant::now();
            let (stop, again) = card.tick(&mut rec, now, Some(now), Beats::default());
            assert!(stop.is_none());
            assert!(again.is_some_and(|at| at <= now + super::super::writer::POLL));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(rec.transcript(), "", "nothing written by the loop");
        assert!(card.scribe.state.trial.is_some(), "not written yet");
        assert!(card.run.judged);
        // the card answers: the promotion is taken in at a later turn
        gate.release();
        let deadline = Instant::now() + Duration::from_secs(10);
        while card.scribe.state.trial.is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            card.tick(&mut rec, Instant::now(), None, Beats::default());
        }
        assert_eq!(
            (
                card.scribe.state.trial.as_ref(),
                card.scribe.state.unhealthy
            ),
            (None, 0)
        );
        let written = calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| format!("{c}\n"))
            .collect::<String>();
        assert!(written.contains("renameat2("), "{written}");
    }

    #[test]
    fn the_shutdown_report_comes_after_the_writes_under_way() {
        let (dir, root) = card_with("held-report", &[]);
        let mut card = Card::open(&mut Recorder::new(), &dir, true, &root);
        card.configure(&Config::default(), true);
        card.begin(&mut Recorder::new());
        let (writer_sys, gate, calls) = held_card();
        card.write_off_loop(Box::new(writer_sys));
        // the boot's record waits on the card
        let (_, again) = card.tick(&mut Recorder::new(), Instant::now(), None, Beats::default());
        assert!(again.is_some());
        assert_eq!(card.scribe.state.boot, 0, "not written yet");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            gate.release();
        });
        let stop = Stop {
            how: Reboot::PowerOff,
            why: "asked for by SIGUSR2 to PID 1".into(),
        };
        let mut rec = Recorder::new();
        card.shutdown(&mut rec, &stop, Vec::new());
        release.join().unwrap();
        // the boot's record, then the report after it, both by the thread; none by the loop
        assert_eq!(
            (card.scribe.state.boot, card.scribe.state.ending),
            (1, Ending::Report)
        );
        assert_eq!(rec.transcript(), "");
        let written: Vec<String> = calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let first = |name: &str| written.iter().position(|c| c.contains(name));
        assert!(first("state.txt") < first("report-1.txt"), "{written:?}");
        assert!(first("report-1.txt").is_some(), "{written:?}");
        // the report names the boot its record wrote (the loop's state had boot 0)
        let report = calls.lock().unwrap().iter().find_map(|c| match c {
            Call::Overwrite { path, contents } if path.ends_with("report-1.txt") => {
                Some(String::from_utf8_lossy(contents).to_string())
            }
            _ => None,
        });
        assert!(report.is_some_and(|r| r.contains("boot: 1\n")));
    }

    #[test]
    fn no_verdict_by_the_deadline() {
        let mut cfg = Config::default();
        cfg.update.validate = crate::config::update::Validate::File;
        cfg.update.deadline = Duration::from_secs(10);
        let (mut card, _) = on_trial("deadline", &cfg);
        let later = Instant::now() + Duration::from_secs(11);
        let (stop, _) = card.tick(&mut Recorder::new(), later, None, Beats::default());
        assert!(stop
            .unwrap()
            .why
            .contains("not validated within [update] deadline = \"10s\""));
        // without a trial the boot only counts toward the brake
        let (dir, root) = card_with("plain", &[]);
        let mut card = Card::open(&mut Recorder::new(), &dir, true, &root);
        card.configure(&cfg, true);
        card.begin(&mut Recorder::new());
        card.boot_window(&mut Recorder::new());
        let mut rec = Recorder::new();
        let (stop, _) = card.tick(&mut rec, later, None, Beats::default());
        assert!(stop.is_none() && card.run.judged);
        assert_eq!(
            (rec.transcript(), card.scribe.state.unhealthy),
            (String::new(), 1)
        );
    }

    #[test]
    fn the_watchdog_coming_and_the_shutdown_are_reported() {
        let (dir, root) = card_with("run-report", &[]);
        let mut card = Card::open(&mut Recorder::new(), &dir, true, &root);
        card.configure(&Config::default(), true);
        card.begin(&mut Recorder::new());
        let mut rec = Recorder::new();
        let starving = Beats {
            seen: true,
            starving: true,
        };
        card.tick(&mut rec, Instant::now(), None, starving);
        assert_eq!(
            (card.scribe.state.ending, card.scribe.state.report),
            (Ending::Watchdog, 1)
        );
        let t = short(&rec, &dir);
        assert!(
            t.contains("overwrite(B/boxinit/report-1.txt, 16384 bytes)"),
            "{t}"
        );
        let written: Vec<u8> = rec
            .calls
            .iter()
            .find_map(|c| match c {
                crate::sys::recorder::Call::Overwrite { path, contents }
                    if path.ends_with("report-1.txt") =>
                {
                    Some(contents.clone())
                }
                _ => None,
            })
            .unwrap();
        let text = String::from_utf8_lossy(&written);
        assert!(
            text.contains("action: reset by the watchdog (expected)"),
            "{text}"
        );
        let stop = Stop {
            how: Reboot::PowerOff,
            why: "asked for by SIGUSR2 to PID 1".into(),
        };
        card.shutdown(
            &mut Recorder::new(),
            &stop,
            vec!["box stopped after SIGTERM".into()],
        );
        assert_eq!(
            (card.scribe.state.ending, card.scribe.state.report),
            (Ending::Report, 2)
        );
    }

    #[test]
    fn the_time_is_copied_to_the_card_when_newer() {
        let (dir, root) = card_with("time", &[("clock.txt", b"1000\n".as_slice())]);
        let mut card = Card::open(&mut Recorder::new(), &dir, true, &root);
        card.configure(&Config::default(), true);
        let now = Instant::now();
        card.keep_time("clock.txt", Duration::from_secs(60), now);
        std::fs::create_dir_all(root.join("run/boxinit")).unwrap();
        std::fs::write(root.join("run/boxinit/time"), "1796083200\n").unwrap();
        let mut rec = Recorder::new();
        assert_eq!(
            card.tick_time(&mut rec, now),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(rec.transcript(), "", "not due yet");
        let due = now + Duration::from_secs(60);
        card.tick_time(&mut rec, due);
        let t = short(&rec, &dir);
        // the old file was 5 bytes: made anew at the padded length, once
        assert!(
            t.contains("unlink(B/clock.txt)\nfsync(B)\ncreate(B/clock.txt, 24 bytes)"),
            "{t}"
        );
        let mut rec = Recorder::new();
        card.tick_time(&mut rec, due + Duration::from_secs(60));
        assert_eq!(rec.transcript(), "", "nothing newer to save");
    }
}
