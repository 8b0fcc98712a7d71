//! The card at boot: its state read, how the previous boot ended said in one line and kept
//! under `/run/boxinit/` for the box, what a cut left half done finished (a promotion) or
//! undone (a trial that never got its verdict), the new files to try recognised, the
//! boot-loop brake decided, and this boot recorded (before the box starts) in one write
//! window. The run (health, promotion, revert, reports) is `run.rs`'s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::health;

use super::copy;
use super::files::{self, now_text, report_blank, write_state};
use super::report;
use super::state::{self, Ending, Phase, State, Trial};
use super::trial::{self, beside, Facts};
use super::watch::After;
use super::window::{Scribe, Window};
use crate::config::{self, Config};
use crate::supervision::program::Program;
use crate::sys::Sys;

/// The card's config file, beside the box.
pub const CONFIG: &str = "init.toml";
/// What the box reads to learn how the previous boot ended.
pub const PREVIOUS_BOOT: &str = "run/boxinit/previous-boot.txt";
/// boxinit's own mount of the card, in a folder only root may enter: a write window
/// remounts it read-write, never `/boot`, so the box never sees the card writable.
pub const PRIVATE_MOUNT: &str = "run/boxinit/private/card";

/// This boot's trial: which files run new, and their digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThisTrial {
    /// `[box] path` and the digest of `PATH.new`.
    pub box_: Option<(String, String)>,
    /// The digest of `init.toml.new`.
    pub config: Option<String>,
    /// A whole bundle's slot (`b/`) and the digest of its `bundle.sha256` (`bundle.rs`).
    pub bundle: Option<(String, String)>,
    pub(crate) box_facts: Facts,
    pub(crate) config_facts: Facts,
}

impl ThisTrial {
    /// `box.new`, `init.toml.new and box.new`: what is tried, for messages.
    pub fn names(&self) -> String {
        let mut names = Vec::new();
        if self.config.is_some() {
            names.push(beside(CONFIG, "new"));
        }
        if let Some((name, _)) = &self.box_ {
            names.push(beside(name, "new"));
        }
        if let Some((slot, _)) = &self.bundle {
            names.push(format!("the bundle in {slot}"));
        }
        names.join(" and ")
    }
}

/// How a trial changes the box's program: `PATH.new` runs while it is on the card (until it
/// is promoted), with `BOXINIT_TRIAL=1`; and where the box says it is healthy
/// (`BOXINIT_VALIDATE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgramRules {
    new_box: Option<PathBuf>,
    new_config: Option<PathBuf>,
    validate: bool,
    /// This boot is a whole bundle's trial (`tryboot`).
    bundle: bool,
}

impl ProgramRules {
    /// `program` as this boot runs it.
    pub fn apply(&self, mut program: Program) -> Program {
        let mut trial = self.bundle || self.new_config.as_ref().is_some_and(|c| c.is_file());
        if let Some(new) = self.new_box.as_ref().filter(|new| new.is_file()) {
            program.program = new.clone();
            trial = true;
        }
        if trial {
            program.env.push(("BOXINIT_TRIAL".into(), "1".into()));
        }
        if self.validate {
            program.env.push((
                "BOXINIT_VALIDATE".into(),
                super::health::VALIDATE_FILE.into(),
            ));
        }
        program
    }

    /// The card's config file to read: `init.toml.new` while its trial is on the card.
    pub fn config_name(&self) -> String {
        match &self.new_config {
            Some(new) if new.is_file() => beside(CONFIG, "new"),
            _ => CONFIG.to_string(),
        }
    }
}

/// The config of safe mode: nothing reboots on its own (every exit and crash-loop action, and
/// the rescue, become "wait"), and the watchdog is petted without the box's heartbeat.
pub fn safe_config(mut cfg: Config) -> Config {
    use config::{ExitAction, RescueAction};
    for program in std::iter::once(&mut cfg.box_).chain(cfg.service.iter_mut()) {
        program.on_exit = ExitAction::Wait;
        program.crash_loop.action = ExitAction::Wait;
    }
    cfg.system.rescue = RescueAction::Wait;
    cfg.watchdog.heartbeat = None;
    cfg
}

/// The card mounted at `dir` and what boxinit keeps on it.
pub struct Card {
    /// Where the card is mounted and written, and the state it holds (`window`'s).
    pub(crate) scribe: Scribe,
    /// Where `/run` and `/sys` are (`/`; a temp dir in tests).
    pub(crate) root: PathBuf,
    pub(crate) update: config::update::Update,
    pub(crate) report: config::update::Report,
    pub(crate) trial: Option<ThisTrial>,
    /// Files found incomplete, set aside at the boot's window: (name, why).
    pub(crate) set_aside: Vec<(String, String, Facts)>,
    /// Safe mode: the brake holds, and why.
    pub(crate) safe: Option<String>,
    /// The run's watch (health, reports, the time), `run.rs`'s.
    pub(crate) run: super::watch::RunState,
    /// What the firmware said of this boot, and a `tryboot` to ask for (`bundle.rs`).
    pub(crate) bundle: super::slots::BundleRun,
}

impl Card {
    /// Reads the card's state, says how the previous boot ended (and keeps that under
    /// `/run/boxinit/` for the box), and finishes what a cut left half done: a promotion is
    /// completed, a trial that never got its verdict reverted. `read_only`: how it is mounted.
    pub fn open(sys: &mut dyn Sys, dir: &Path, read_only: bool, root: &Path) -> Card {
        let path = dir.join(state::STATE_FILE);
        let (state, state_len) = match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let (state, bad) = state::parse(&text);
                if !bad.is_empty() {
                    log::warn!(
                        "card: {} has lines boxinit cannot read, left as they are: {}",
                        state::STATE_FILE,
                        bad.join("; ")
                    );
                }
                (state, bytes.len())
            }
            Err(_) => (State::default(), 0),
        };
        let mut card = Card {
            scribe: Scribe {
                dir: dir.to_path_buf(),
                private: private_mount(sys, dir, root),
                read_only,
                state,
                state_len,
                unwritable: false,
            },
            root: root.to_path_buf(),
            update: config::update::Update::default(),
            report: config::update::Report::default(),
            trial: None,
            set_aside: Vec::new(),
            safe: None,
            run: super::watch::RunState::default(),
            bundle: super::slots::BundleRun::read(root),
        };
        card.say_previous_boot();
        if !card.bundle_at_open(sys) {
            card.finish_previous_trial(sys);
        }
        card
    }

    /// The config and mount mode the boot settled on (`[update]`, `[report]`,
    /// `[boot] read_only` as applied).
    pub fn configure(&mut self, cfg: &Config, read_only: bool) {
        self.update = cfg.update.clone();
        self.report = cfg.report.clone();
        self.scribe.read_only = read_only;
    }

    /// Whether anything is kept on the card this boot.
    pub(crate) fn keeps_state(&self) -> bool {
        self.update.enabled || self.report.enabled
    }

    /// One line on how the previous boot ended, from the state's `ending` and the newest
    /// report; the line and that report go to `/run/boxinit/previous-boot.txt`.
    fn say_previous_boot(&mut self) {
        let s = &self.scribe.state;
        let report_name = state::report_file(s.report);
        let report_text = (s.report > 0)
            .then(|| std::fs::read(self.scribe.dir.join(&report_name)).ok())
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).trim_end().to_string());
        let summary = report_text.as_deref().and_then(report::summary);
        let of_last_boot = summary.as_ref().filter(|(boot, ..)| *boot == s.boot);
        let line = match (s.ending, of_last_boot) {
            (Ending::Unknown, _) => {
                log::info!("card: no boot recorded on this card yet");
                return;
            }
            (Ending::Report, Some((_, why, action, uptime))) => {
                let line = format!(
                    "previous boot ({}): {action} after {uptime}: {why} (report in {report_name})",
                    s.boot
                );
                log::info!("{line}");
                line
            }
            (Ending::Watchdog, Some((_, why, _, uptime))) => {
                let line = format!(
                    "previous boot ({}): reset by the watchdog after {uptime}: {why} (report in {report_name})",
                    s.boot
                );
                log::warn!("{line}");
                line
            }
            _ => {
                let line = format!(
                    "previous boot ({}) ended without a shutdown report: power loss, or a reset nobody asked for (the watchdog, a kernel crash)",
                    s.boot
                );
                log::warn!("{line}");
                line
            }
        };
        let mut text = format!("{line}\n");
        if let (Some(report), Some(_)) = (&report_text, of_last_boot) {
            text.push('\n');
            text.push_str(report);
            text.push('\n');
        }
        let out = self.root.join(PREVIOUS_BOOT);
        if let Some(parent) = out.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(&out, text) {
            log::warn!("card: cannot write {}: {e}", out.display());
        }
        self.run.previous_without_report = matches!(s.ending, Ending::Running);
    }

    /// A promotion a cut interrupted is finished; a trial whose boot ended without a verdict
    /// (power loss, a reset, the watchdog) is reverted. Both before the config is read.
    fn finish_previous_trial(&mut self, sys: &mut dyn Sys) {
        let Some(t) = self.scribe.state.trial.clone() else {
            return;
        };
        let box_facts = t
            .box_
            .as_ref()
            .map(|(name, _)| Facts::read(&self.scribe.dir, name, true));
        let config_facts = t
            .config
            .as_ref()
            .map(|_| Facts::read(&self.scribe.dir, CONFIG, true));
        let why = match t.phase {
            Phase::Promoting => None,
            Phase::Started | Phase::Requested => Some(format!(
                "the boot that tried it (boot {}) ended without a verdict: power loss, or a reset (the watchdog?) before the box was validated",
                t.boot
            )),
        };
        let dir = self.scribe.dir.clone();
        let boot = self.scribe.state.boot;
        let result = self.window(sys, "finishing the last trial", |w, state| {
            for (name, sha, facts) in trial_files(&t, box_facts.as_ref(), config_facts.as_ref()) {
                match &why {
                    None => trial::promote(w, name, sha, facts)?,
                    // only the file that was tried: a newer copy is a new trial
                    Some(why) if facts.new.as_deref() == Some(sha) || facts.new.is_none() => {
                        let text = trial::failed_text(name, why, boot, &now_text(), name);
                        trial::set_aside(w, name, &text, facts)?;
                    }
                    Some(_) => {}
                }
            }
            state.trial = None;
            write_state(w, state, &dir)
        });
        let names = ThisTrial {
            box_: t.box_.clone(),
            config: t.config.clone(),
            ..ThisTrial::default()
        }
        .names();
        match (&why, result) {
            (None, true) => {
                log::info!("trial: finished promoting {names}, which a cut had interrupted")
            }
            (Some(why), true) => log::error!(
                "trial: {names} reverted: {why}; set aside as .failed, the previous files run"
            ),
            (_, false) => {}
        }
    }

    /// Looks for `init.toml.new`: complete (its `.sha256`, and it must load: `load` says,
    /// with the config it gives) it is tried this boot and its config returned; incomplete,
    /// it is set aside at the boot's window and never read again.
    pub fn try_config(
        &mut self,
        load: &mut dyn FnMut(&Path) -> Result<Config, String>,
    ) -> Option<Config> {
        if !self.update.enabled {
            return None;
        }
        let name = beside(CONFIG, "new");
        let path = self.scribe.dir.join(&name);
        let bytes = std::fs::read(&path).ok()?;
        let sha_file = std::fs::read_to_string(self.scribe.dir.join(beside(&name, "sha256"))).ok();
        let mut loaded = None;
        let verdict = copy::check_config(
            &name,
            &bytes,
            sha_file.as_deref(),
            load(&path).map(|cfg| loaded = Some(cfg)),
        );
        let facts = Facts::read(&self.scribe.dir, CONFIG, false);
        match verdict {
            Ok(sha) => {
                let trial = self.trial.get_or_insert_with(ThisTrial::default);
                trial.config_facts = Facts {
                    new: Some(sha.clone()),
                    ..facts
                };
                trial.config = Some(sha);
                loaded
            }
            Err(why) => {
                log::error!("trial: {name} is not tried: {why}; it is set aside as {CONFIG}.failed (the reason in {CONFIG}.failed.txt)");
                self.set_aside.push((CONFIG.to_string(), why, facts));
                None
            }
        }
    }

    /// Looks for the box's `PATH.new` (`[box] path` of the config this boot runs, relative to
    /// the card); complete, it is tried this boot, else set aside.
    pub fn try_box(&mut self, cfg: &Config) {
        let path = cfg.box_.path.trim_start_matches("./");
        if !self.update.enabled || Path::new(path).is_absolute() {
            return;
        }
        let name = beside(path, "new");
        let Ok(bytes) = std::fs::read(self.scribe.dir.join(&name)) else {
            return;
        };
        if cfg.box_.mode == config::Mode::Exec {
            log::warn!("trial: {name} is not tried: with mode = \"exec\" the box becomes PID 1 and nothing is left to judge it; it stays on the card as it is");
            return;
        }
        let sha_file = std::fs::read_to_string(self.scribe.dir.join(beside(&name, "sha256"))).ok();
        let facts = Facts::read(&self.scribe.dir, path, false);
        match copy::check_program(&name, &bytes, sha_file.as_deref()) {
            Ok(sha) => {
                let trial = self.trial.get_or_insert_with(ThisTrial::default);
                // the digest just computed, not read again at the promotion
                trial.box_facts = Facts {
                    new: Some(sha.clone()),
                    ..facts
                };
                trial.box_ = Some((path.to_string(), sha));
            }
            Err(why) => {
                log::error!("trial: {name} is not tried: {why}; it is set aside as {path}.failed (the reason in {path}.failed.txt)");
                self.set_aside.push((path.to_string(), why, facts));
            }
        }
    }

    /// The boot's window, before the box starts: the incomplete copies set aside, a missing
    /// state file and reports created (a card made by hand), and this boot recorded: its
    /// number, "running", one more boot without a healthy box, the trial. Decides the
    /// boot-loop brake first: `boot_loop_limit` boots in a row without a healthy box and no
    /// new file to try mean safe mode.
    pub fn begin(&mut self, sys: &mut dyn Sys) {
        let limit = self.update.boot_loop_limit;
        let held = self.scribe.state.unhealthy;
        if self.update.enabled && limit > 0 && held >= limit {
            match &self.trial {
                Some(t) => log::warn!(
                    "boot-loop brake: {held} boots in a row without a healthy box, but {} is new on the card: trying it",
                    t.names()
                ),
                None => {
                    self.safe = Some(format!(
                        "{held} boots in a row did not reach a healthy box ([update] boot_loop_limit = {limit})"
                    ));
                }
            }
        }
        if !self.keeps_state() && self.set_aside.is_empty() {
            return;
        }
        // A trial, and files to set aside, are recorded before the box starts; an ordinary
        // boot's record waits until the box runs (the first turn of the loop), so that the
        // window costs the box's start nothing.
        if self.trial.is_some() || !self.set_aside.is_empty() {
            if !self.boot_window(sys) {
                // Nothing recorded, so nothing may be tried: a revert needs the record.
                self.trial = None;
                self.safe = None;
                return;
            }
        } else {
            self.run.boot_pending = true;
        }
        if let Some(t) = self.trial.as_ref().filter(|_| !self.bundle.requesting) {
            log::info!(
                "trial: {} on this boot (recorded on the card before it starts); validated by [update] validate = \"{}\" within {}",
                t.names(),
                self.update.validate,
                config::format_duration(self.update.deadline)
            );
        }
        if let Some(why) = &self.safe {
            log::error!("safe mode: {why}. boxinit will not reboot on its own: the box runs with every exit and crash-loop action turned into \"wait\", the watchdog is petted without heartbeats. Fix the card (copy a fixed box as box.new or config as init.toml.new, or set unhealthy=0 in {}), then power-cycle", state::STATE_FILE);
        }
        self.start_watch(Instant::now());
    }

    /// This boot's record on the card, in one window: the incomplete copies set aside, a
    /// missing state file and reports created (a card made by hand), a report for a previous
    /// boot that left none (with pstore's records), and the boot itself: its number,
    /// "running", one more boot without a healthy box, the trial. Written at once; returns
    /// whether it was.
    pub(crate) fn boot_window(&mut self, sys: &mut dyn Sys) -> bool {
        let record = self.boot_record();
        record(sys, &mut self.scribe)
    }

    /// An ordinary boot's record (`boot_window`), once the box runs: as the run's writes are.
    pub(crate) fn record_boot_later(&mut self, sys: &mut dyn Sys) {
        let record = self.boot_record();
        self.write(sys, "boot", move |sys, scribe| {
            record(sys, scribe);
            After::Nothing
        });
    }

    /// The boot's record as a write, with what it needs from the card: to do now, or on
    /// the writer thread (which reads the card and pstore there too).
    fn boot_record(&mut self) -> impl FnOnce(&mut dyn Sys, &mut Scribe) -> bool + Send + 'static {
        self.run.boot_pending = false;
        let trial = self.trial.clone();
        let set_aside = std::mem::take(&mut self.set_aside);
        let (update, keeps) = (self.update.enabled, self.keeps_state());
        let root = self.root.clone();
        let reports = self.report.enabled;
        let previous_without_report = self.run.previous_without_report;
        let phase = match self.bundle.requesting {
            true => Phase::Requested,
            false => Phase::Started,
        };
        move |sys: &mut dyn Sys, scribe: &mut Scribe| {
            let dir = scribe.dir.clone();
            let missing = files::missing_reports(&dir);
            super::pstore::mount(sys, &root);
            let records = super::pstore::read(&root);
            let late = (reports && (previous_without_report || !records.is_empty()))
                .then(|| late_report(&scribe.state, &records));
            let state_missing = scribe.state_len == 0;
            let boot = scribe.state.boot + 1;
            let created = scribe.window(sys, "boot", |w, state| {
                for (name, why, facts) in &set_aside {
                    let text = trial::failed_text(name, why, boot, &now_text(), name);
                    trial::set_aside(w, name, &text, facts)?;
                }
                if !keeps {
                    return Ok(());
                }
                if !dir.join(state::DIR).is_dir() {
                    w.mkdir(state::DIR)?;
                }
                for name in &missing {
                    files::replace(w, &dir, name, &report_blank(name))?;
                }
                if let Some((n, bytes)) = &late {
                    files::replace(w, &dir, &state::report_file(*n), bytes)?;
                    state.report = *n;
                }
                state.boot = boot;
                state.ending = Ending::Running;
                if update {
                    // the boot that asks for a tryboot runs no box: it is not counted
                    if phase != Phase::Requested {
                        state.unhealthy = state.unhealthy.saturating_add(1);
                    }
                    state.trial = trial.as_ref().map(|t| Trial {
                        phase,
                        boot,
                        box_: t.box_.clone(),
                        config: t.config.clone(),
                        bundle: t.bundle.clone(),
                    });
                }
                write_state(w, state, &dir)
            });
            if created && (state_missing || !missing.is_empty()) && keeps {
                log::info!(
                    "card: made {} (a card not made by cargo xtask; from now on they are only overwritten in place)",
                    if state_missing {
                        format!("{} and the report files", state::STATE_FILE)
                    } else {
                        missing.join(", ")
                    }
                );
            }
            if created && late.is_some() {
                super::pstore::clear(sys, &records);
            }
            created
        }
    }

    /// The box's health is judged from now: the validation file made (any user may touch it)
    /// and the deadline set.
    pub(crate) fn start_watch(&mut self, now: Instant) {
        if !self.update.enabled {
            self.run.judged = true;
            return;
        }
        let path = self
            .root
            .join(health::VALIDATE_FILE.trim_start_matches('/'));
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::remove_file(&path);
        if std::fs::write(&path, "").is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
        }
        self.run.validate_mtime = health::mtime(&path);
        self.run.deadline = Some(crate::events::deadline_after(now, self.update.deadline));
    }

    /// How this boot's trial changes the box's program (and the config's name), for the boot
    /// and for a reload.
    pub fn program_rules(&self) -> ProgramRules {
        let trial = self.trial.as_ref().filter(|_| self.update.enabled);
        ProgramRules {
            new_box: trial
                .and_then(|t| t.box_.as_ref())
                .map(|(name, _)| self.scribe.dir.join(beside(name, "new"))),
            new_config: trial
                .filter(|t| t.config.is_some())
                .map(|_| self.scribe.dir.join(beside(CONFIG, "new"))),
            validate: self.update.enabled,
            bundle: trial.is_some_and(|t| t.bundle.is_some()),
        }
    }

    /// Whether this boot runs in safe mode (and why).
    pub fn safe_mode(&self) -> Option<&str> {
        self.safe.as_deref()
    }

    /// A write window (`Scribe::window`), at once.
    pub(crate) fn window(
        &mut self,
        sys: &mut dyn Sys,
        purpose: &'static str,
        writes: impl FnOnce(&mut Window, &mut State) -> std::io::Result<()>,
    ) -> bool {
        self.scribe.window(sys, purpose, writes)
    }
}

/// Bind-mounts the card at `dir` on `root`'s [`PRIVATE_MOUNT`]. A bind mount shares the
/// card's superblock but has its own read-only flag: a window's remount of this mount makes
/// the superblock writable and this mount writable, while `/boot` keeps its read-only flag.
/// None (said in the debug log) when it cannot be made.
fn private_mount(sys: &mut dyn Sys, dir: &Path, root: &Path) -> Option<PathBuf> {
    let target = root.join(PRIVATE_MOUNT);
    let folder = target.parent()?;
    let run = folder.parent()?;
    let made = [(run, 0o755), (folder, 0o700), (&target, 0o700)]
        .into_iter()
        .try_for_each(|(d, mode)| match sys.mkdir(d, mode) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        })
        .and_then(|()| {
            let source = dir.to_string_lossy();
            sys.mount(&source, &target, "", crate::sys::MountFlags::BIND, "")
        });
    match made {
        Ok(()) => Some(target),
        Err(e) => {
            log::warn!(
                "card: no private mount at {} ({e}); write windows remount {} itself, so the box sees it writable while they last",
                target.display(),
                dir.display()
            );
            None
        }
    }
}

/// The files a recorded trial tried, with the digests and what is on the card.
fn trial_files<'a>(
    t: &'a Trial,
    box_facts: Option<&'a Facts>,
    config_facts: Option<&'a Facts>,
) -> Vec<(&'a str, &'a str, &'a Facts)> {
    let mut files = Vec::new();
    if let (Some(sha), Some(f)) = (&t.config, config_facts) {
        files.push((CONFIG, sha.as_str(), f));
    }
    if let (Some((name, sha)), Some(f)) = (&t.box_, box_facts) {
        files.push((name.as_str(), sha.as_str(), f));
    }
    files
}

#[cfg(test)]
#[path = "card_tests.rs"]
pub(crate) mod tests;

/// The report of a previous boot that ended without one (a power cut, a reset, a kernel
/// crash), written now into the next report file with the kernel's pstore records if there
/// are any: (its number, its bytes).
fn late_report(state: &State, records: &[(String, String, PathBuf)]) -> (u8, Vec<u8>) {
    let why = match records.is_empty() {
        true => "it ended without a shutdown report: power loss, or a reset nobody asked for (the watchdog, a kernel crash); written at the next boot",
        false => "it ended without a shutdown report, and the kernel kept records of a crash (pstore, below); written at the next boot",
    };
    let report = report::Report {
        boot: state.boot,
        why: why.to_string(),
        action: "none recorded".to_string(),
        clock: now_text(),
        pstore: records
            .iter()
            .map(|(name, text, _)| (name.clone(), text.clone()))
            .collect(),
        ..report::Report::default()
    };
    (state.report % state::REPORTS + 1, report::format(&report))
}
