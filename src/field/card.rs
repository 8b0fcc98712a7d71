//! The card at boot: its state read, how the previous boot ended said in one line and kept
//! under `/run/boxinit/` for the box, what a cut left half done finished (a promotion) or
//! undone (a trial that never got its verdict), the new files to try recognised, the
//! boot-loop brake decided, and this boot recorded (before the box starts) in one write
//! window. The run (health, promotion, revert, reports) is `run.rs`'s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::copy;
use super::report;
use super::state::{self, Ending, Phase, State, Trial};
use super::trial::{self, beside, Facts};
use super::window::Window;
use crate::config::{self, Config};
use crate::supervision::program::Program;
use crate::sys::Sys;

/// The card's config file, beside the box.
pub const CONFIG: &str = "init.toml";
/// What the box reads to learn how the previous boot ended.
pub const PREVIOUS_BOOT: &str = "run/boxinit/previous-boot.txt";

/// This boot's trial: which files run new, and their digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThisTrial {
    /// `[box] path` and the digest of `PATH.new`.
    pub box_: Option<(String, String)>,
    /// The digest of `init.toml.new`.
    pub config: Option<String>,
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
}

impl ProgramRules {
    /// `program` as this boot runs it.
    pub fn apply(&self, mut program: Program) -> Program {
        let mut trial = self.new_config.as_ref().is_some_and(|c| c.is_file());
        if let Some(new) = self.new_box.as_ref().filter(|new| new.is_file()) {
            program.program = new.clone();
            trial = true;
        }
        if trial {
            program.env.push(("BOXINIT_TRIAL".into(), "1".into()));
        }
        if self.validate {
            program
                .env
                .push(("BOXINIT_VALIDATE".into(), super::health::VALIDATE_FILE.into()));
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
    pub(crate) dir: PathBuf,
    /// Where `/run` and `/sys` are (`/`; a temp dir in tests).
    pub(crate) root: PathBuf,
    /// The card is mounted read-only: each write window remounts it.
    pub(crate) read_only: bool,
    pub(crate) state: State,
    /// The state file's length on the card (0: missing).
    pub(crate) state_len: usize,
    /// Reports missing or of the wrong length, made at the boot's window.
    pub(crate) missing: Vec<String>,
    pub(crate) update: config::update::Update,
    pub(crate) report: config::update::Report,
    /// A write window could not open (a write-protected card): no more attempts.
    pub(crate) unwritable: bool,
    pub(crate) trial: Option<ThisTrial>,
    /// Files found incomplete, set aside at the boot's window: (name, why).
    pub(crate) set_aside: Vec<(String, String, Facts)>,
    /// Safe mode: the brake holds, and why.
    pub(crate) safe: Option<String>,
    /// The run's watch (health, reports, the time), `run.rs`'s.
    pub(crate) run: super::run::RunState,
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
            dir: dir.to_path_buf(),
            root: root.to_path_buf(),
            read_only,
            state,
            state_len,
            missing: Vec::new(),
            update: config::update::Update::default(),
            report: config::update::Report::default(),
            unwritable: false,
            trial: None,
            set_aside: Vec::new(),
            safe: None,
            run: super::run::RunState::default(),
        };
        card.say_previous_boot();
        card.finish_previous_trial(sys);
        card
    }

    /// The config and mount mode the boot settled on (`[update]`, `[report]`,
    /// `[boot] read_only` as applied).
    pub fn configure(&mut self, cfg: &Config, read_only: bool) {
        self.update = cfg.update.clone();
        self.report = cfg.report.clone();
        self.read_only = read_only;
    }

    /// Whether anything is kept on the card this boot.
    pub(crate) fn keeps_state(&self) -> bool {
        self.update.enabled || self.report.enabled
    }

    /// One line on how the previous boot ended, from the state's `ending` and the newest
    /// report; the line and that report go to `/run/boxinit/previous-boot.txt`.
    fn say_previous_boot(&mut self) {
        let s = &self.state;
        let report_name = state::report_file(s.report);
        let report_text = (s.report > 0)
            .then(|| std::fs::read(self.dir.join(&report_name)).ok())
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
        let Some(t) = self.state.trial.clone() else {
            return;
        };
        let box_facts = t.box_.as_ref().map(|(name, _)| Facts::read(&self.dir, name, true));
        let config_facts = t.config.as_ref().map(|_| Facts::read(&self.dir, CONFIG, true));
        let why = match t.phase {
            Phase::Promoting => None,
            Phase::Started => Some(format!(
                "the boot that tried it (boot {}) ended without a verdict: power loss, or a reset (the watchdog?) before the box was validated",
                t.boot
            )),
        };
        let dir = self.dir.clone();
        let boot = self.state.boot;
        let result = self.window(sys, "finishing the last trial", |w, state| {
            for (name, sha, facts) in trial_files(&t, box_facts.as_ref(), config_facts.as_ref())
            {
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
            (None, true) => log::info!("trial: finished promoting {names}, which a cut had interrupted"),
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
        let path = self.dir.join(&name);
        let bytes = std::fs::read(&path).ok()?;
        let sha_file = std::fs::read_to_string(self.dir.join(beside(&name, "sha256"))).ok();
        let mut loaded = None;
        let verdict = copy::check_config(
            &name,
            &bytes,
            sha_file.as_deref(),
            load(&path).map(|cfg| loaded = Some(cfg)),
        );
        let facts = Facts::read(&self.dir, CONFIG, false);
        match verdict {
            Ok(sha) => {
                let trial = self.trial.get_or_insert_with(ThisTrial::default);
                trial.config = Some(sha);
                trial.config_facts = facts;
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
        let Ok(bytes) = std::fs::read(self.dir.join(&name)) else {
            return;
        };
        if cfg.box_.mode == config::Mode::Exec {
            log::warn!("trial: {name} is not tried: with mode = \"exec\" the box becomes PID 1 and nothing is left to judge it; it stays on the card as it is");
            return;
        }
        let sha_file = std::fs::read_to_string(self.dir.join(beside(&name, "sha256"))).ok();
        let facts = Facts::read(&self.dir, path, false);
        match copy::check_program(&name, &bytes, sha_file.as_deref()) {
            Ok(sha) => {
                let trial = self.trial.get_or_insert_with(ThisTrial::default);
                trial.box_ = Some((path.to_string(), sha));
                trial.box_facts = facts;
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
        let held = self.state.unhealthy;
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
        self.missing = super::run::missing_reports(&self.dir);
        super::pstore::mount(sys, &self.root);
        let records = super::pstore::read(&self.root);
        let late = self.late_report(&records);
        let trial = self.trial.clone();
        let set_aside = std::mem::take(&mut self.set_aside);
        let (update, keeps) = (self.update.enabled, self.keeps_state());
        let dir = self.dir.clone();
        let missing = std::mem::take(&mut self.missing);
        let state_missing = self.state_len == 0;
        let boot = self.state.boot + 1;
        let created = self.window(sys, "boot", |w, state| {
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
                super::run::replace(w, &dir, name, &report_blank(name))?;
            }
            if let Some((n, bytes)) = &late {
                super::run::replace(w, &dir, &state::report_file(*n), bytes)?;
                state.report = *n;
            }
            state.boot = boot;
            state.ending = Ending::Running;
            if update {
                state.unhealthy = state.unhealthy.saturating_add(1);
                state.trial = trial.as_ref().map(|t| Trial {
                    phase: Phase::Started,
                    boot,
                    box_: t.box_.clone(),
                    config: t.config.clone(),
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
        if !created {
            // Nothing recorded, so nothing may be tried: a trial's revert needs the record.
            self.trial = None;
            self.safe = None;
            return;
        }
        if let Some(t) = &self.trial {
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

    /// The report of a previous boot that ended without one (a power cut, a reset, a kernel
    /// crash), written now into the next report file with the kernel's pstore records if
    /// there are any: (its number, its bytes).
    fn late_report(&self, records: &[(String, String, PathBuf)]) -> Option<(u8, Vec<u8>)> {
        let nothing_to_say = !self.run.previous_without_report && records.is_empty();
        if !self.report.enabled || nothing_to_say {
            return None;
        }
        let why = match records.is_empty() {
            true => "it ended without a shutdown report: power loss, or a reset nobody asked for (the watchdog, a kernel crash); written at the next boot",
            false => "it ended without a shutdown report, and the kernel kept records of a crash (pstore, below); written at the next boot",
        };
        let report = report::Report {
            boot: self.state.boot,
            why: why.to_string(),
            action: "none recorded".to_string(),
            clock: now_text(),
            pstore: records
                .iter()
                .map(|(name, text, _)| (name.clone(), text.clone()))
                .collect(),
            ..report::Report::default()
        };
        Some((self.state.report % state::REPORTS + 1, report::format(&report)))
    }

    /// How this boot's trial changes the box's program (and the config's name), for the boot
    /// and for a reload.
    pub fn program_rules(&self) -> ProgramRules {
        let trial = self.trial.as_ref().filter(|_| self.update.enabled);
        ProgramRules {
            new_box: trial
                .and_then(|t| t.box_.as_ref())
                .map(|(name, _)| self.dir.join(beside(name, "new"))),
            new_config: trial
                .filter(|t| t.config.is_some())
                .map(|_| self.dir.join(beside(CONFIG, "new"))),
            validate: self.update.enabled,
        }
    }

    /// Whether this boot runs in safe mode (and why).
    pub fn safe_mode(&self) -> Option<&str> {
        self.safe.as_deref()
    }

    /// Opens a write window, runs `writes` with the state to change, closes it; the state
    /// is kept only when every write succeeded. Returns whether they did. A card that cannot
    /// be made writable is said once and not tried again.
    pub(crate) fn window(
        &mut self,
        sys: &mut dyn Sys,
        purpose: &'static str,
        writes: impl FnOnce(&mut Window, &mut State) -> std::io::Result<()>,
    ) -> bool {
        if self.unwritable {
            return false;
        }
        let mut w = match Window::open(sys, &self.dir, self.read_only, purpose) {
            Ok(w) => w,
            Err(e) => {
                log::error!("card: cannot make {} writable ({e}): boxinit keeps no state, trial or report on it this boot (a write-protected card?)", self.dir.display());
                self.unwritable = true;
                return false;
            }
        };
        let mut state = self.state.clone();
        let result = writes(&mut w, &mut state);
        w.close();
        match result {
            Ok(()) => {
                self.state_len = self.state_len.max(state::STATE_LEN);
                self.state = state;
                true
            }
            Err(e) => {
                log::error!("card: {purpose}: {e}; the card's state is as it was before this write");
                false
            }
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

/// Writes the state file: in place at its length on the card, or created when missing.
pub(crate) fn write_state(w: &mut Window, state: &State, dir: &Path) -> std::io::Result<()> {
    let on_card = std::fs::metadata(dir.join(state::STATE_FILE))
        .map(|m| m.len() as usize)
        .ok();
    let len = on_card
        .filter(|len| *len >= state::STATE_LEN)
        .unwrap_or(state::STATE_LEN);
    let bytes = state::format(state, len).ok_or_else(|| {
        std::io::Error::other("the state does not fit in its file (a [box] path that long?)")
    })?;
    match on_card {
        Some(l) if l == len => w.overwrite(state::STATE_FILE, &bytes),
        Some(_) => {
            w.remove(state::STATE_FILE)?;
            w.create(state::STATE_FILE, &bytes)
        }
        None => w.create(state::STATE_FILE, &bytes),
    }
}

/// A blank report for `boxinit/report-N.txt`.
fn report_blank(name: &str) -> Vec<u8> {
    let n = name
        .trim_start_matches("boxinit/report-")
        .trim_end_matches(".txt")
        .parse()
        .unwrap_or(0);
    state::blank_report(n)
}

/// The wall clock as a date, for files on the card.
pub(crate) fn now_text() -> String {
    crate::net::clock::date(crate::net::clock::now_seconds())
}
