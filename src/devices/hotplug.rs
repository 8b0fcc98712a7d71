//! Devices from boot to shutdown: the modules the boot config names, coldplug (every device
//! present at boot), then each uevent as it arrives — its module, its node and rules
//! (`devices`), its automount. The boot sequence and the event loop call in here; finding
//! modaliases is `coldplug`'s job, loading `modules`', parsing messages `uevent`'s; once the
//! box runs, modules load on the loader thread (`load_thread`), never on the loop's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Config, DeviceSpec};
use crate::devices::automount::Automounter;
use crate::devices::load_thread::{self, Job, LoadThread, SecondPass};
use crate::devices::modules::{not_loaded, Loader, Summary};
use crate::devices::rules::Devices;
use crate::devices::uevent::{self, Action, Uevent};
use crate::devices::{coldplug, rules};
use crate::events::Events;
use crate::storage::extras::Extras;
use crate::storage::probe::{self, DeviceProbes};
use crate::storage::scan::Candidate;
use crate::storage::search::{self, Search};
use crate::sys::Sys;

/// The file system modules the boot partition needs, loaded with coldplug rather than left to
/// the kernel's request_module (one exec of `/sbin/modprobe` each, one after another).
/// FAT's default code page is 437 and its default iocharset `ascii`.
pub const BOOT_FS_MODULES: &[&str] = &["fs-vfat", "nls_cp437", "nls_ascii"];

/// How long boot keeps reading the uevents that coldplug's drivers cause: a device that never
/// stops sending events must not hold up the boot (the event loop handles the rest later).
const SETTLE_LIMIT: Duration = Duration::from_secs(3);

/// How long the boot partition may take to appear once the drivers that coldplug loads first
/// are in (an SD card is detected by a work queue some 100 ms after its host driver loads)
/// before the other devices' drivers are loaded too: the disk may be behind one of those (a
/// USB stick behind a Raspberry Pi's dwc2).
pub const BOOT_FIRST_GRACE: Duration = Duration::from_secs(2);

/// How long boot waits for the automount probes of the devices already there.
const BOOT_PROBE_LIMIT: Duration = Duration::from_secs(2);

/// Where module loading goes once the boot sequence hands over to the event loop.
enum AfterBoot {
    /// Still booting: modules load on this thread, in the boot sequence's order.
    Booting,
    /// Handed over ([`Hotplug::after_boot`]); the thread starts at the loop's first tick,
    /// once the box has been started, with the second pass as its first job.
    Ready {
        sys: Box<dyn Sys + Send>,
        second_pass: Option<Job>,
    },
    /// The loader thread runs; the loop sends it jobs.
    Thread(LoadThread),
    /// No thread could be had (out of memory): modules load on the loop's thread.
    Inline,
}

/// Everything that acts on device events.
pub struct Hotplug {
    loader: Option<Loader>,
    /// Load modules for new devices (`[modules] coldplug`).
    load_for_devices: bool,
    /// Coldplug's modules that can wait until the boot partition is mounted
    /// ([`coldplug::split_boot_first`]).
    deferred: Vec<String>,
    /// The first pass did not read sysfs (`[modules] boot` named the boot disk's modules):
    /// the second pass reads it.
    walk_pending: bool,
    /// Until the deferred modules are loaded or handed over, new devices' modules that are
    /// not [`coldplug::loads_first`] join them instead of loading at once.
    boot_first_only: bool,
    /// Where modules load once the box runs.
    after_boot: AfterBoot,
    devices: Devices,
    automount: Automounter,
    /// The reads of the block devices, a thread per device, shared by the boot partition
    /// waits and automount: never two at once for one device.
    probes: DeviceProbes,
    /// The archives to unpack where the second pass starts ([`Hotplug::set_extras`]).
    extras: Extras,
    /// `/` (a temp dir in tests): where `/sys` and `/dev` are read.
    root: PathBuf,
    /// `/dev` is not a devtmpfs (read once, from `/proc/mounts`): nodes are made by hand.
    make_nodes: bool,
    /// How many times lost uevents made it read sysfs again ([`Hotplug::rescan`]).
    rescans: u32,
}

impl Hotplug {
    /// Reads the module index under `root` and takes the rules of `cfg`.
    pub fn new(cfg: &Config, cmdline: &str, root: &Path) -> Hotplug {
        Hotplug::with_probes(cfg, cmdline, root, probe::for_devices(root))
    }

    /// [`Hotplug::new`], reading the block devices through `probes` (a test's may hang).
    pub fn with_probes(cfg: &Config, cmdline: &str, root: &Path, probes: DeviceProbes) -> Hotplug {
        // No module wanted, no index read (and no complaint where there is none, as in a
        // PID-namespace test).
        let wants_modules =
            cfg.modules.coldplug || !cfg.modules.load.is_empty() || !cfg.modules.boot.is_empty();
        let loader = wants_modules
            .then(|| Loader::open(root, &cfg.modules.params, cmdline, cfg.modules.parallel))
            .flatten();
        let make_nodes = !rules::dev_is_devtmpfs(root);
        Hotplug {
            make_nodes,
            loader,
            load_for_devices: cfg.modules.coldplug,
            deferred: Vec::new(),
            walk_pending: false,
            boot_first_only: false,
            after_boot: AfterBoot::Booting,
            devices: Devices::new(cfg.device.clone(), make_nodes, &root.join("dev")),
            automount: Automounter::new(cfg.automount.clone(), root, &probes),
            probes,
            extras: Extras::default(),
            root: root.to_path_buf(),
            rescans: 0,
        }
    }

    /// Boot: the named modules, then (with `coldplug`) the modules of the present devices that
    /// can hold the boot partition ([`coldplug::loads_first`]) — or, when `[modules] boot`
    /// names them, those, without reading sysfs — the boot file system's, and those of the
    /// devices their drivers bring up, read from the uevent socket until it is quiet. One log
    /// line with the counts and the time. The other devices' modules wait for
    /// [`Hotplug::load_deferred`] or [`Hotplug::after_boot`].
    pub fn boot(&mut self, sys: &mut dyn Sys, events: &Events, cfg: &Config) {
        let started = Instant::now();
        if self.make_nodes() {
            // no devtmpfs: the disks present must have nodes before the boot partition scan
            self.replay(sys, true);
        }
        let Some(loader) = &self.loader else {
            return;
        };
        let mut wanted: Vec<String> = cfg.modules.boot.clone();
        wanted.extend(cfg.modules.load.iter().cloned());
        let mut devices = 0;
        let mut walk = Duration::ZERO;
        if self.load_for_devices && !cfg.modules.boot.is_empty() {
            // the boot disk's modules are named: sysfs is read after the boot partition
            log::debug!(
                "coldplug: first [modules] boot: {}",
                cfg.modules.boot.join(" ")
            );
            self.walk_pending = true;
            self.boot_first_only = true;
        } else if self.load_for_devices {
            let aliases = coldplug::known_modaliases(&self.root);
            devices = aliases.len();
            walk = started.elapsed();
            let needed = not_loaded(&self.root, coldplug::modules_for(&loader.index, &aliases));
            let (first, rest) = coldplug::split_boot_first(&loader.index, needed);
            log::debug!(
                "coldplug: first {}; after the boot partition {}",
                first.join(" "),
                rest.join(" ")
            );
            wanted.extend(first);
            self.deferred = rest;
            self.boot_first_only = true;
        }
        if self.load_for_devices {
            for name in BOOT_FS_MODULES {
                if loader.index.knows(name) {
                    wanted.push(name.to_string());
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        let mut summary = loader.load(sys, &wanted);
        if self.load_for_devices {
            summary += self.settle(sys, events);
        }
        log::info!(
            "modules: {} loaded, {} already there, {} failed in {}ms{}",
            summary.loaded,
            summary.already,
            summary.failed,
            started.elapsed().as_millis(),
            if self.load_for_devices && !self.walk_pending {
                format!(
                    " (coldplug: {devices} device aliases read in {}ms)",
                    walk.as_millis()
                )
            } else {
                String::new()
            }
        );
    }

    /// The drivers just loaded announced their devices (a virtio disk behind virtio_pci):
    /// load for those too, until no new event comes.
    fn settle(&mut self, sys: &mut dyn Sys, events: &Events) -> Summary {
        let mut summary = Summary::default();
        let settle_until = crate::events::deadline_after(Instant::now(), SETTLE_LIMIT);
        while Instant::now() < settle_until {
            let messages = events.wait_uevent(Duration::ZERO);
            let lost = events.take_lost();
            if messages.is_empty() && !lost {
                break;
            }
            for message in messages {
                summary += self.handle(sys, &message);
            }
            if lost {
                summary += self.rescan(sys);
            }
        }
        summary
    }

    /// Before the boot partition is looked for: when coldplug left modules for later, wait
    /// up to `grace` for a device that `spec` names; if none comes, load the other devices'
    /// modules now (the disk may be behind one of them), so the wait that follows can find it.
    /// The partition found, for the mount not to search again. The devices are read through
    /// [`Hotplug::probes`], as the wait that follows reads them: a device that hangs here
    /// gets no second thread there.
    pub fn before_boot_partition(
        &mut self,
        sys: &mut dyn Sys,
        events: &Events,
        spec: &DeviceSpec,
        grace: Duration,
    ) -> Option<Candidate> {
        if (self.deferred.is_empty() && !self.walk_pending) || *spec == DeviceSpec::None {
            return None;
        }
        let deadline = crate::events::deadline_after(Instant::now(), grace);
        let mut search = Search::new(spec, &self.root, &self.probes);
        let found = search::run(sys, events, &mut search, deadline, &mut |sys, message| {
            self.handle(sys, message);
        });
        if found.is_some() {
            return found;
        }
        log::info!(
            "boot partition {spec} not there {}ms after the storage drivers: loading the other devices' drivers too",
            grace.as_millis()
        );
        self.load_deferred_now(sys, events, "before the boot partition");
        None
    }

    /// Loads the modules coldplug left for after the boot partition, and those of the devices
    /// their drivers bring up; one log line. Nothing when there are none.
    pub fn load_deferred(&mut self, sys: &mut dyn Sys, events: &Events) {
        self.load_deferred_now(sys, events, "before the box starts");
    }

    fn load_deferred_now(&mut self, sys: &mut dyn Sys, events: &Events, when: &str) {
        let pass = self.take_second_pass();
        let Some(loader) = &self.loader else {
            pass.extras.unpack(sys);
            return;
        };
        let started = Instant::now();
        let mut summary = load_thread::second_pass(loader, sys, pass);
        summary += self.settle(sys, events);
        load_thread::log_second_pass(summary, started, when);
    }

    /// The archives of `[boot] extras` (on the boot partition, now mounted): unpacked where
    /// the second pass starts, before the box ([`Hotplug::load_deferred`]) or on the loader
    /// thread.
    pub fn set_extras(&mut self, extras: Extras) {
        self.extras = extras;
    }

    /// What coldplug's second pass has to do, taken: from now on nothing waits for it.
    fn take_second_pass(&mut self) -> SecondPass {
        self.boot_first_only = false;
        SecondPass {
            modules: std::mem::take(&mut self.deferred),
            walk: std::mem::take(&mut self.walk_pending),
            extras: std::mem::take(&mut self.extras),
            coldplug: self.load_for_devices,
        }
    }

    /// The boot sequence is done: from now on modules load on the loader thread, which
    /// makes its system calls through `sys` and starts at the event loop's first tick (once
    /// the box has been started) with what coldplug left for after the boot partition.
    /// Without a module index there is no thread: the extras are unpacked here.
    pub fn after_boot(&mut self, mut sys: Box<dyn Sys + Send>) {
        let pass = self.take_second_pass();
        self.after_boot = match self.loader {
            Some(_) => AfterBoot::Ready {
                sys,
                second_pass: (!pass.is_empty()).then_some(Job::SecondPass(pass)),
            },
            // nothing can ever be loaded
            None => {
                pass.extras.unpack(sys.as_mut());
                AfterBoot::Inline
            }
        };
    }

    /// Starts the loader thread once it is due ([`AfterBoot::Ready`]) and has work: the second
    /// pass, or with `for_job` a device's modules (no thread for a machine that never needs
    /// one). Without a thread (out of memory) the second pass runs here, and later loads too.
    fn start_loading(&mut self, sys: &mut dyn Sys, for_job: bool) {
        match &self.after_boot {
            AfterBoot::Ready { second_pass, .. } if for_job || second_pass.is_some() => {}
            _ => return,
        }
        let (
            AfterBoot::Ready {
                sys: theirs,
                second_pass,
            },
            Some(loader),
        ) = (
            std::mem::replace(&mut self.after_boot, AfterBoot::Inline),
            &self.loader,
        )
        else {
            return;
        };
        match LoadThread::spawn(loader.clone(), theirs, second_pass.clone()) {
            Ok(thread) => self.after_boot = AfterBoot::Thread(thread),
            Err(e) => {
                log::warn!(
                    "cannot start the module loading thread: {e}; modules load in the event loop"
                );
                if let Some(Job::SecondPass(pass)) = second_pass {
                    let started = Instant::now();
                    let summary = load_thread::second_pass(loader, sys, pass);
                    load_thread::log_second_pass(summary, started, "in the event loop");
                }
            }
        }
    }

    /// A new device's modules during the boot sequence: at once when they can hold the boot
    /// partition, else (until the second pass) with the second pass.
    fn load_while_booting(&mut self, sys: &mut dyn Sys, alias: &str, what: &str) -> Summary {
        let Some(loader) = &self.loader else {
            return Summary::default();
        };
        let mut modules = not_loaded(
            &self.root,
            coldplug::modules_for(&loader.index, [alias.to_string()].iter()),
        );
        if self.boot_first_only {
            let (first, rest) = coldplug::split_boot_first(&loader.index, modules);
            self.deferred.extend(rest);
            modules = first;
        }
        load_thread::load_for(loader, sys, &modules, what)
    }

    /// A new device's modalias once the box runs: to the loader thread (or loaded here when
    /// there is none).
    fn load_after_boot(&mut self, sys: &mut dyn Sys, alias: &str, what: String) {
        self.start_loading(sys, true);
        let job = Job::Device {
            alias: alias.to_string(),
            what,
        };
        let job = match &self.after_boot {
            AfterBoot::Thread(thread) => match thread.send(job) {
                Ok(()) => return,
                Err(job) => job,
            },
            _ => job,
        };
        if let (Job::Device { alias, what }, Some(loader)) = (job, &self.loader) {
            load_thread::device(loader, sys, &alias, &what);
        }
    }

    /// Whether the module `name` is there (loaded and live, or built in): `wait_for`'s
    /// `module:NAME`.
    pub fn module_ready(&self, name: &str) -> bool {
        match &self.loader {
            Some(loader) => loader.has(name),
            None => crate::devices::modules::is_live(&self.root, name),
        }
    }

    /// Whether coldplug is done: the second pass is over and no module load is queued
    /// (`wait_for`'s `coldplug`). Devices that a driver announces later are not counted
    /// until their uevent arrives.
    pub fn coldplug_done(&self) -> bool {
        match &self.after_boot {
            AfterBoot::Booting => {
                self.deferred.is_empty() && !self.walk_pending && self.extras.is_empty()
            }
            AfterBoot::Ready { second_pass, .. } => second_pass.is_none(),
            AfterBoot::Thread(thread) => thread.idle(),
            AfterBoot::Inline => true,
        }
    }

    /// Once the boot partition's init.toml is read: its extra modules and parameters, its
    /// device and automount rules, applied to the devices that are already there.
    pub fn configure(&mut self, sys: &mut dyn Sys, cfg: &Config, cmdline: &str) {
        let wants_modules = cfg.modules.coldplug || !cfg.modules.load.is_empty();
        if self.loader.is_none() && wants_modules {
            self.loader = Loader::open(
                &self.root,
                &cfg.modules.params,
                cmdline,
                cfg.modules.parallel,
            );
        }
        if let Some(loader) = &mut self.loader {
            loader.params = crate::devices::modules::merge_params(&cfg.modules.params, cmdline);
            loader.parallel = cfg.modules.parallel;
            let extra = not_loaded(&self.root, cfg.modules.load.clone());
            if !extra.is_empty() {
                let summary = loader.load(sys, &extra);
                log::info!(
                    "modules from the boot partition's init.toml: {} loaded, {} already there, {} failed",
                    summary.loaded,
                    summary.already,
                    summary.failed
                );
            }
        }
        self.load_for_devices = cfg.modules.coldplug;
        if !self.load_for_devices {
            // the boot partition's init.toml turned coldplug off: no second pass either
            self.deferred.clear();
            self.walk_pending = false;
        }
        self.devices.set_rules(cfg.device.clone());
        self.automount.set_rules(cfg.automount.clone());
        if cfg.device.is_empty() && cfg.automount.is_empty() && !self.make_nodes() {
            return;
        }
        self.replay(sys, true);
    }

    /// The devices already there, as if each had just been added: nodes (without devtmpfs),
    /// rules, automounts (waiting a bounded time for their probes, so that the box finds
    /// them mounted). No modules: coldplug has done those.
    fn replay(&mut self, sys: &mut dyn Sys, settle: bool) {
        match coldplug::device_nodes(&self.root) {
            Ok(nodes) => {
                for (devpath, text) in nodes {
                    let event = uevent::from_sysfs(&devpath, &text);
                    self.devices.on_event(sys, &event);
                    self.automount.on_event(sys, &event);
                }
                if settle {
                    self.automount.settle(sys, BOOT_PROBE_LIMIT);
                }
            }
            Err(e) => log::warn!(
                "cannot list {}: {e}; device rules apply to new devices only",
                self.root.join("sys/class").display()
            ),
        }
    }

    fn make_nodes(&self) -> bool {
        self.make_nodes
    }

    /// The reads of the block devices, for the boot partition wait (the same threads).
    pub fn probes(&self) -> DeviceProbes {
        self.probes.clone()
    }

    /// Timers of the event loop: the loader thread's start for the second pass (at the first
    /// tick, once the box has been started), the automount probes under way, and reads that
    /// have taken too long (named in a warning, once). Returns when to come back.
    pub fn tick(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant> {
        self.start_loading(sys, false);
        let automount = self.automount.tick(sys, now);
        let slow = search::name_slow(&self.probes, now);
        automount.into_iter().chain(slow).min()
    }

    /// One message from the uevent socket: its module, its node and rules, its automount;
    /// [`crate::events::LOST`]: the [`Hotplug::rescan`].
    pub fn handle(&mut self, sys: &mut dyn Sys, message: &[u8]) -> Summary {
        if message == crate::events::LOST {
            return self.rescan(sys);
        }
        match uevent::parse(message) {
            Some(event) => self.handle_event(sys, &event),
            None => Summary::default(),
        }
    }

    /// Uevents were lost (the socket's buffer overflowed): every device sysfs shows is
    /// looked at again, as coldplug's walk does, so that none is missed: its modules (the
    /// boot's split into now and later kept; once the box runs, on the loader thread), what
    /// was read from the block devices forgotten, nodes, rules and automounts as for an add
    /// (without waiting for the automount probes: the loop's tick mounts what they find).
    /// Said once at warn, later ones at debug. A device that went meanwhile keeps its
    /// automount until the next remove (lazily unmounted mounts of a gone device hurt none).
    pub fn rescan(&mut self, sys: &mut dyn Sys) -> Summary {
        self.rescans += 1;
        if self.rescans == 1 {
            log::warn!("uevents were lost (the uevent socket's buffer overflowed): reading sysfs again so that no device is missed; later ones are logged at debug");
        } else {
            log::debug!(
                "uevents lost again: sysfs read again (rescan {})",
                self.rescans
            );
        }
        let mut summary = Summary::default();
        if let (true, Some(loader)) = (self.load_for_devices, &self.loader) {
            match self.after_boot {
                AfterBoot::Booting => {
                    let aliases = coldplug::known_modaliases(&self.root);
                    let mut modules =
                        not_loaded(&self.root, coldplug::modules_for(&loader.index, &aliases));
                    if self.boot_first_only {
                        let (first, rest) = coldplug::split_boot_first(&loader.index, modules);
                        self.deferred.extend(rest);
                        modules = first;
                    }
                    if !modules.is_empty() {
                        summary = loader.load(sys, &modules);
                    }
                }
                _ => self.rescan_after_boot(sys),
            }
        }
        if let Ok(names) = std::fs::read_dir(self.root.join("sys/class/block")) {
            for name in names.flatten() {
                self.probes.forget(&name.file_name().to_string_lossy());
            }
        }
        self.replay(sys, false);
        summary
    }

    /// The rescan's modules once the box runs: a walk on the loader thread (here without one).
    fn rescan_after_boot(&mut self, sys: &mut dyn Sys) {
        self.start_loading(sys, true);
        let pass = SecondPass {
            walk: true,
            coldplug: true,
            ..SecondPass::default()
        };
        let job = match &self.after_boot {
            AfterBoot::Thread(thread) => match thread.send(Job::SecondPass(pass)) {
                Ok(()) => return,
                Err(job) => job,
            },
            _ => Job::SecondPass(pass),
        };
        if let (Job::SecondPass(pass), Some(loader)) = (job, &self.loader) {
            let started = Instant::now();
            let summary = load_thread::second_pass(loader, sys, pass);
            load_thread::log_second_pass(summary, started, "after lost uevents");
        }
    }

    fn handle_event(&mut self, sys: &mut dyn Sys, event: &Uevent) -> Summary {
        log::debug!(
            "uevent {:?} {} ({})",
            event.action,
            event.devpath,
            event.subsystem()
        );
        let mut summary = Summary::default();
        if let (Action::Add, true, Some(alias)) = (
            &event.action,
            self.load_for_devices && self.loader.is_some(),
            event.modalias(),
        ) {
            let what = format!("{} {}", event.subsystem(), event.kernel_name());
            match self.after_boot {
                AfterBoot::Booting => summary = self.load_while_booting(sys, alias, &what),
                _ => self.load_after_boot(sys, alias, what),
            }
        }
        if let (Action::Add | Action::Change | Action::Remove, "block", Some(name)) =
            (&event.action, event.subsystem(), event.devname())
        {
            // what was read from it no longer holds (another card, a new partition table)
            self.probes.forget(name);
        }
        self.devices.on_event(sys, event);
        self.automount.on_event(sys, event);
        summary
    }
}

impl crate::supervision::event_loop::DeviceEvents for Hotplug {
    fn on_uevent(&mut self, sys: &mut dyn Sys, message: &[u8]) {
        self.handle(sys, message);
    }

    fn rescan(&mut self, sys: &mut dyn Sys) {
        Hotplug::rescan(self, sys);
    }

    fn tick(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant> {
        Hotplug::tick(self, sys, now)
    }

    fn module_ready(&self, name: &str) -> bool {
        Hotplug::module_ready(self, name)
    }

    fn coldplug_done(&self) -> bool {
        Hotplug::coldplug_done(self)
    }
}

#[cfg(test)]
#[path = "hotplug_tests.rs"]
mod tests;
