//! The card while the box runs and at its end: the box's health judged (`health`), a trial
//! promoted or reverted, the boot-loop brake released by a healthy box, the watchdog's coming
//! reset recorded before it comes, the time kept for `[time] save`, and the shutdown report
//! written before every reboot and power-off. Each a write window (`window`), each logged
//! once. The boot's part is `card.rs`'s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::card::{Card, CONFIG};
use super::files::{now_text, replace, write_state};
use super::health::{self, Seen, Verdict};
use super::report::{self, Report};
use super::state::{self, Ending};
use super::trial::{self, Facts};
use super::watch::TimeSave;
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

    /// A healthy box: a trial promoted, the brake's count back to 0, in one window.
    fn healthy(&mut self, sys: &mut dyn Sys, how: &str) {
        self.run.judged = true;
        let trial = self.trial.clone();
        let dir = self.scribe.dir.clone();
        let was_safe = self.safe.is_some();
        let ok = self.window(sys, "healthy box", |w, state| {
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
        });
        if let Some(t) = &trial {
            if ok {
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
        } else {
            log::info!("box healthy ({how})");
        }
        if was_safe && ok {
            log::info!("boot-loop brake released: the box is healthy; the next boots reboot as configured again");
        }
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
        let mut names = Vec::new();
        self.window(sys, "trial revert", |w, state| {
            if t.config.is_some() {
                let facts = Facts::read(&dir, CONFIG, false);
                let text = trial::failed_text(CONFIG, why, boot, &now_text(), CONFIG);
                trial::set_aside(w, CONFIG, &text, &facts)?;
                names.push(CONFIG.to_string());
            }
            if let Some((name, _)) = &t.box_ {
                let facts = Facts::read(&dir, name, false);
                let text = trial::failed_text(name, why, boot, &now_text(), name);
                trial::set_aside(w, name, &text, &facts)?;
                names.push(name.clone());
            }
            if let Some((slot, _)) = &t.bundle {
                let text = super::slots::failed_text(slot, why, boot);
                super::slots::set_aside(w, slot, &text)?;
                names.push(format!("{slot}bundle"));
            }
            state.trial = None;
            write_state(w, state, &dir)
        });
        let failed: Vec<String> = names.iter().map(|n| format!("{n}.failed")).collect();
        log::error!(
            "trial: {} reverted: {why}; kept as {} (why in .failed.txt); rebooting into the previous files",
            t.names(),
            failed.join(" and ")
        );
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
            self.window(sys, "heartbeat back", |w, state| {
                state.ending = Ending::Running;
                write_state(w, state, &dir)
            });
            return;
        }
        let report = self.report_of(
            "the box's heartbeat stopped: boxinit no longer pets the watchdog, which resets the machine",
            "reset by the watchdog (expected)",
            Vec::new(),
        );
        self.write_report(sys, "watchdog report", &report, Ending::Watchdog);
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
        report: &Report,
        ending: Ending,
    ) {
        let enabled = self.report.enabled;
        let bytes = report::format(report);
        let dir = self.scribe.dir.clone();
        let time = self.time_to_save();
        let next = self.scribe.state.report % state::REPORTS + 1;
        let saved = self.window(sys, purpose, |w, state| {
            if let Some((name, bytes, _)) = &time {
                if !Path::new(name).is_absolute() {
                    replace(w, &dir, name, bytes)?;
                }
            }
            if enabled {
                replace(w, &dir, &state::report_file(next), &bytes)?;
                state.report = next;
            }
            state.ending = ending;
            write_state(w, state, &dir)
        });
        if saved {
            if let Some((_, _, seconds)) = time {
                self.saved_time(seconds);
            }
        }
    }

    /// At shutdown (the programs stopped, the card still mounted): the report of why, with
    /// how the stop went, and the time.
    pub fn shutdown(&mut self, sys: &mut dyn Sys, stop: &Stop, stopped: Vec<String>) {
        if self.run.boot_pending {
            self.boot_window(sys);
        }
        self.save_time_elsewhere(sys);
        if !self.keeps_state() {
            if let Some((name, bytes, seconds)) = self.time_to_save() {
                let dir = self.scribe.dir.clone();
                if self.window(sys, "time", |w, _| replace(w, &dir, &name, &bytes)) {
                    self.saved_time(seconds);
                }
            }
            return;
        }
        let action = match stop.how {
            Reboot::PowerOff => "power-off",
            Reboot::Halt => "halt",
            _ => "reboot",
        };
        let report = self.report_of(&stop.why, action, stopped);
        self.write_report(sys, "shutdown report", &report, Ending::Report);
    }

    /// The time the time program last saved, if newer than what the card has: (the file,
    /// its new bytes, the seconds).
    fn time_to_save(&self) -> Option<(String, Vec<u8>, i64)> {
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
        let path = target_path(&self.scribe.dir, &t.target);
        let len = std::fs::metadata(&path)
            .map(|m| m.len() as usize)
            .unwrap_or(0)
            .max(24);
        let bytes = state::pad(seconds.to_string(), len)?;
        Some((t.target.clone(), bytes, seconds))
    }

    fn saved_time(&mut self, seconds: i64) {
        if let Some(t) = self.run.time.as_mut() {
            t.saved = Some(seconds);
        }
    }

    /// `[time] save` on another disk (an absolute path): overwritten in place, no window.
    fn save_time_elsewhere(&mut self, sys: &mut dyn Sys) {
        let Some((name, bytes, seconds)) = self.time_to_save() else {
            return;
        };
        if !Path::new(&name).is_absolute() {
            return;
        }
        let path = PathBuf::from(&name);
        let done = sys
            .overwrite(&path, &bytes)
            .or_else(|_| {
                let _ = sys.unlink(&path);
                sys.create(&path, &bytes)
            })
            .and_then(|()| sys.fdatasync(&path));
        match done {
            Ok(()) => self.saved_time(seconds),
            Err(e) => log::warn!("time: cannot save the time to {name}: {e}"),
        }
    }

    /// Every `[time] interval`: the time copied to the card.
    fn tick_time(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant> {
        let t = self.run.time.as_mut()?;
        if now < t.next {
            return Some(t.next);
        }
        t.next = crate::events::deadline_after(now, t.interval);
        let next = t.next;
        self.save_time_elsewhere(sys);
        if let Some((name, bytes, seconds)) = self.time_to_save() {
            let dir = self.scribe.dir.clone();
            if self.window(sys, "time", |w, _| replace(w, &dir, &name, &bytes)) {
                self.saved_time(seconds);
            }
        }
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
        if self.run.boot_pending {
            self.boot_window(sys);
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

fn target_path(dir: &Path, target: &str) -> PathBuf {
    if Path::new(target).is_absolute() {
        PathBuf::from(target)
    } else {
        dir.join(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::field::card::tests::card_with;
    use crate::sys::recorder::Recorder;

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
        let (dir, root) = card_with("report", &[]);
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
