//! Devices from boot to shutdown: the modules the boot config names, coldplug (every device
//! present at boot), then each uevent as it arrives — its module, its node and rules
//! (`devices`), its automount. The boot sequence and the event loop call in here; finding
//! modaliases is `coldplug`'s job, loading `modules`', parsing messages `uevent`'s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Config, DeviceSpec};
use crate::devices::automount::Automounter;
use crate::devices::modules::{Loader, Summary};
use crate::devices::rules::Devices;
use crate::devices::uevent::{self, Action, Uevent};
use crate::devices::{coldplug, rules};
use crate::events::Events;
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

/// The coldplug modules left for after the boot partition: loaded by [`Deferred::load`], on a
/// thread of its own once the box runs (`[modules] coldplug_after_box`).
pub struct Deferred {
    loader: Loader,
    modules: Vec<String>,
}

impl Deferred {
    /// Loads the modules (the uevents of their devices go to the event loop); one log line.
    pub fn load(self, sys: &mut dyn Sys) {
        let started = Instant::now();
        let summary = self.loader.load(sys, &self.modules);
        log_deferred(summary, started, "after the box started");
    }
}

fn log_deferred(summary: Summary, started: Instant, when: &str) {
    log::info!(
        "modules of the other devices ({when}): {} loaded, {} already there, {} failed in {}ms",
        summary.loaded,
        summary.already,
        summary.failed,
        started.elapsed().as_millis()
    );
}
/// How long boot waits for the automount probes of the devices already there.
const BOOT_PROBE_LIMIT: Duration = Duration::from_secs(2);

/// Everything that acts on device events.
pub struct Hotplug {
    loader: Option<Loader>,
    /// Load modules for new devices (`[modules] coldplug`).
    load_for_devices: bool,
    /// Coldplug's modules that can wait until the boot partition is mounted
    /// ([`coldplug::split_boot_first`]).
    deferred: Vec<String>,
    /// Until the deferred modules are loaded or taken, new devices' modules that are not
    /// [`coldplug::loads_first`] join them instead of loading at once.
    boot_first_only: bool,
    devices: Devices,
    automount: Automounter,
    /// The reads of the block devices, a thread per device, shared by the boot partition
    /// waits and automount: never two at once for one device.
    probes: DeviceProbes,
    /// `/` (a temp dir in tests): where `/sys` and `/dev` are read.
    root: PathBuf,
    /// `/dev` is not a devtmpfs (read once, from `/proc/mounts`): nodes are made by hand.
    make_nodes: bool,
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
        let wants_modules = cfg.modules.coldplug || !cfg.modules.load.is_empty();
        let loader = wants_modules
            .then(|| Loader::open(root, &cfg.modules.params, cmdline, cfg.modules.parallel))
            .flatten();
        let make_nodes = !rules::dev_is_devtmpfs(root);
        Hotplug {
            make_nodes,
            loader,
            load_for_devices: cfg.modules.coldplug,
            deferred: Vec::new(),
            boot_first_only: false,
            devices: Devices::new(cfg.device.clone(), make_nodes, &root.join("dev")),
            automount: Automounter::new(cfg.automount.clone(), root, &probes),
            probes,
            root: root.to_path_buf(),
        }
    }

    /// Boot: the named modules, then (with `coldplug`) the modules of the present devices that
    /// can hold the boot partition ([`coldplug::loads_first`]), the boot file system's, and
    /// those of the devices their drivers bring up, read from the uevent socket until it is
    /// quiet. One log line with the counts and the time. The other devices' modules wait for
    /// [`Hotplug::load_deferred`] or [`Hotplug::take_deferred`].
    pub fn boot(&mut self, sys: &mut dyn Sys, events: &Events, cfg: &Config) {
        let started = Instant::now();
        if self.make_nodes() {
            // no devtmpfs: the disks present must have nodes before the boot partition scan
            self.replay(sys);
        }
        let Some(loader) = &self.loader else {
            return;
        };
        let mut wanted: Vec<String> = cfg.modules.load.clone();
        let mut devices = 0;
        let mut walk = Duration::ZERO;
        if self.load_for_devices {
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
            if self.load_for_devices {
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
            if messages.is_empty() {
                break;
            }
            for message in messages {
                summary += self.handle(sys, &message);
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
        if self.deferred.is_empty() || *spec == DeviceSpec::None {
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
        self.boot_first_only = false;
        let modules = not_loaded(&self.root, std::mem::take(&mut self.deferred));
        let Some(loader) = self.loader.as_ref().filter(|_| !modules.is_empty()) else {
            return;
        };
        let started = Instant::now();
        let mut summary = loader.load(sys, &modules);
        summary += self.settle(sys, events);
        log_deferred(summary, started, when);
    }

    /// The modules coldplug left for after the boot partition, to load away from the boot
    /// sequence ([`Deferred::load`] on a thread); None when there are none.
    pub fn take_deferred(&mut self) -> Option<Deferred> {
        self.boot_first_only = false;
        let modules = not_loaded(&self.root, std::mem::take(&mut self.deferred));
        if modules.is_empty() {
            return None;
        }
        let loader = self.loader.clone()?;
        Some(Deferred { loader, modules })
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
        }
        self.devices.set_rules(cfg.device.clone());
        self.automount.set_rules(cfg.automount.clone());
        if cfg.device.is_empty() && cfg.automount.is_empty() && !self.make_nodes() {
            return;
        }
        self.replay(sys);
    }

    /// The devices already there, as if each had just been added: nodes (without devtmpfs),
    /// rules, automounts (waiting a bounded time for their probes, so that the box finds
    /// them mounted). No modules: coldplug has done those.
    fn replay(&mut self, sys: &mut dyn Sys) {
        match coldplug::device_nodes(&self.root) {
            Ok(nodes) => {
                for (devpath, text) in nodes {
                    let event = uevent::from_sysfs(&devpath, &text);
                    self.devices.on_event(sys, &event);
                    self.automount.on_event(sys, &event);
                }
                self.automount.settle(sys, BOOT_PROBE_LIMIT);
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

    /// Timers of the event loop: the automount probes under way, and reads that have taken
    /// too long (named in a warning, once). Returns when to come back.
    pub fn tick(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant> {
        let automount = self.automount.tick(sys, now);
        let slow = search::name_slow(&self.probes, now);
        automount.into_iter().chain(slow).min()
    }

    /// One message from the uevent socket: its module, its node and rules, its automount.
    pub fn handle(&mut self, sys: &mut dyn Sys, message: &[u8]) -> Summary {
        match uevent::parse(message) {
            Some(event) => self.handle_event(sys, &event),
            None => Summary::default(),
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
        if let (Action::Add, true, Some(loader), Some(alias)) = (
            &event.action,
            self.load_for_devices,
            &self.loader,
            event.modalias(),
        ) {
            let mut modules = not_loaded(
                &self.root,
                coldplug::modules_for(&loader.index, [alias.to_string()].iter()),
            );
            if self.boot_first_only {
                let (first, rest) = coldplug::split_boot_first(&loader.index, modules);
                self.deferred.extend(rest);
                modules = first;
            }
            if !modules.is_empty() {
                summary = loader.load(sys, &modules);
                log::info!(
                    "hotplug: {} {} needs {}: {} loaded, {} failed",
                    event.subsystem(),
                    event.kernel_name(),
                    modules.join(" "),
                    summary.loaded,
                    summary.failed
                );
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

    fn tick(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant> {
        Hotplug::tick(self, sys, now)
    }
}

/// `names` without the modules the kernel already has ([`crate::devices::modules::is_loaded`]), each
/// once: a device whose driver is loaded costs no log line and no plan.
fn not_loaded(root: &Path, names: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .filter(|name| seen.insert(crate::devices::modindex::normalize(name)))
        .filter(|name| !crate::devices::modules::is_loaded(root, name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::probe::{fake::Hang, Probes};
    use crate::storage::scan::Look;
    use crate::sys::recorder::Recorder;

    /// A root with a module tree for the running kernel's release and a devtmpfs /dev.
    fn fake_root(name: &str) -> (PathBuf, String) {
        let root =
            std::env::temp_dir().join(format!("boxinit-hotplug-{name}-{}", std::process::id()));
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let dir = root.join("lib/modules").join(&release);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("modules.dep"),
            "kernel/virtio_rng.ko:\nkernel/virtio_blk.ko:\nkernel/virtio_pci.ko:\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("modules.alias"),
            "alias virtio:d00000004v* virtio_rng\nalias virtio:d00000002v* virtio_blk\n\
             alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("sys/module/virtio_pci")).unwrap();
        std::fs::write(root.join("sys/module/virtio_pci/initstate"), "live\n").unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("proc/mounts"), "devtmpfs /dev devtmpfs rw 0 0\n").unwrap();
        (root, dir.display().to_string())
    }

    #[test]
    fn a_hot_added_device_gets_its_module_and_its_node_its_rule() {
        let (root, dir) = fake_root("events");
        let cfg = Config {
            device: vec![toml::from_str("match = \"hwrng\"\nmode = \"0640\"").unwrap()],
            ..Config::default()
        };
        let mut hotplug = Hotplug::new(&cfg, "virtio_rng.current_quality=1000", &root);
        let mut rec = Recorder::new();
        for message in [
            // the PCI function: its driver is loaded already
            &b"add@/devices/pci0000:00/0000:00:03.0\0ACTION=add\0SUBSYSTEM=pci\0MODALIAS=pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00"[..],
            b"add@/devices/pci0000:00/0000:00:03.0/virtio1\0ACTION=add\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000004v00001AF4",
            b"add@/devices/virtual/misc/hwrng\0ACTION=add\0SUBSYSTEM=misc\0MAJOR=10\0MINOR=183\0DEVNAME=hwrng",
            b"remove@/devices/pci0000:00/0000:00:03.0/virtio1\0ACTION=remove\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000004v00001AF4",
            b"libudev\0garbage",
        ] {
            hotplug.handle(&mut rec, message);
        }
        assert_eq!(
            rec.transcript(),
            format!(
                "finit_module({dir}/kernel/virtio_rng.ko, \"current_quality=1000\")\n\
                 chmod({}/dev/hwrng, 640)\n",
                root.display()
            )
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn until_the_boot_partition_other_devices_modules_wait() {
        let (root, dir) = fake_root("boot-first");
        let release_dir = PathBuf::from(&dir);
        std::fs::write(
            release_dir.join("modules.dep"),
            "kernel/drivers/char/hw_random/virtio-rng.ko:\nkernel/drivers/block/virtio_blk.ko:\n\
             kernel/drivers/virtio/virtio_pci.ko:\n",
        )
        .unwrap();
        let mut hotplug = Hotplug::new(&Config::default(), "", &root);
        hotplug.boot_first_only = true;
        let mut rec = Recorder::new();
        for message in [
            &b"add@/devices/pci0000:00/0000:00:03.0/virtio1\0ACTION=add\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000004v00001AF4"[..],
            b"add@/devices/pci0000:00/0000:00:04.0/virtio2\0ACTION=add\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000002v00001AF4",
        ] {
            hotplug.handle(&mut rec, message);
        }
        // the disk's driver at once, the RNG's left for after the boot partition
        assert_eq!(
            rec.transcript(),
            format!("finit_module({dir}/kernel/drivers/block/virtio_blk.ko, \"\")\n")
        );
        let deferred = hotplug.take_deferred().unwrap();
        assert_eq!(deferred.modules, ["virtio_rng"]);
        deferred.load(&mut rec);
        assert!(rec
            .transcript()
            .ends_with("/kernel/drivers/char/hw_random/virtio-rng.ko, \"\")\n"));
        // from then on every device's module loads at once
        assert!(hotplug.take_deferred().is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A dead USB stick unplugged and plugged back many times, while an `[[automount]]`
    /// rule waits for sticks: its first read never ends, and no other thread is started.
    #[test]
    fn a_dead_stick_plugged_in_again_and_again_costs_one_thread() {
        let (root, _) = fake_root("dead-stick");
        #[derive(serde::Deserialize)]
        struct Rules {
            automount: Vec<crate::config::Automount>,
        }
        let rules: Rules =
            toml::from_str("[[automount]]\nlabel = \"stick\"\npath = \"/mnt/stick\"\n").unwrap();
        let cfg = Config {
            automount: rules.automount,
            ..Config::default()
        };
        let hang = Hang::default();
        let probes = Probes::new(hang.reader(&["sdb1"], |_| Look::default()));
        let mut hotplug = Hotplug::with_probes(&cfg, "", &root, probes.clone());
        let mut rec = Recorder::new();
        let event = |action: &str| {
            format!("{action}@/devices/usb1/1-1/host0/block/sdb/sdb1\0ACTION={action}\0SUBSYSTEM=block\0DEVNAME=sdb1")
        };
        for _ in 0..50 {
            hotplug.handle(&mut rec, event("add").as_bytes());
            hotplug.tick(&mut rec, Instant::now());
            hotplug.handle(&mut rec, event("remove").as_bytes());
        }
        hotplug.handle(&mut rec, event("add").as_bytes());
        assert_eq!(hang.reads(1), 1);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!((hang.reads(1), probes.reading()), (1, 1));
        // given up on after the automount's limit, and nothing mounted
        let later = Instant::now() + crate::devices::automount::PROBE_LIMIT * 2;
        hotplug.tick(&mut rec, later);
        assert_eq!(rec.transcript(), "");
        hang.release();
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The grace wait and the boot partition wait after it read a device that hangs with one
    /// thread between them.
    #[test]
    fn the_boot_waits_share_the_read_of_a_hung_device() {
        let (root, _) = fake_root("boot-waits");
        let class = root.join("sys/class/block");
        std::fs::create_dir_all(class.join("vda")).unwrap();
        std::fs::create_dir_all(class.join("vda1")).unwrap();
        std::fs::write(class.join("vda1/partition"), "1\n").unwrap();
        let hang = Hang::default();
        let probes = Probes::new(hang.reader(&["vda1"], |_| Look::default()));
        let mut hotplug = Hotplug::with_probes(&Config::default(), "", &root, probes.clone());
        hotplug.deferred = vec!["virtio_rng".to_string()];
        let events = Events::open().unwrap();
        let spec: DeviceSpec = "LABEL=BOOT".parse().unwrap();
        let mut rec = Recorder::new();
        let limit = Duration::from_millis(300);
        let t0 = Instant::now();
        assert_eq!(
            hotplug.before_boot_partition(&mut rec, &events, &spec, limit),
            None
        );
        let found = crate::storage::bootpart::wait_for(
            &mut rec,
            &events,
            &spec,
            limit,
            &root,
            &hotplug.probes(),
            &mut |_, _| {},
        );
        assert_eq!(found, None);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert_eq!((hang.reads(1), probes.reading()), (1, 1));
        hang.release();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn without_devtmpfs_present_devices_get_nodes() {
        let (root, _) = fake_root("mdev");
        std::fs::write(root.join("proc/mounts"), "tmpfs /dev tmpfs rw 0 0\n").unwrap();
        let disk = root.join("sys/devices/pci0000:00/0000:00:02.0/virtio0/block/vda");
        std::fs::create_dir_all(disk.join("vda1")).unwrap();
        std::fs::write(disk.join("dev"), "253:0\n").unwrap();
        std::fs::write(
            disk.join("uevent"),
            "MAJOR=253\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
        )
        .unwrap();
        std::fs::write(disk.join("vda1/dev"), "253:1\n").unwrap();
        std::fs::write(
            disk.join("vda1/uevent"),
            "MAJOR=253\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("sys/class/block")).unwrap();
        std::os::unix::fs::symlink(&disk, root.join("sys/class/block/vda")).unwrap();
        std::os::unix::fs::symlink(disk.join("vda1"), root.join("sys/class/block/vda1")).unwrap();
        let mut hotplug = Hotplug::new(&Config::default(), "", &root);
        assert!(hotplug.make_nodes());
        let mut rec = Recorder::new();
        hotplug.replay(&mut rec);
        let dev = root.join("dev");
        assert_eq!(
            rec.transcript(),
            format!(
                "mknod({0}/vda, Block, 660, 253:0)\nmknod({0}/vda1, Block, 660, 253:1)\n",
                dev.display()
            )
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn already_loaded_modules_are_not_asked_for_again() {
        let root = std::env::temp_dir().join(format!("boxinit-hotplug-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sys/module/virtio_pci")).unwrap();
        std::fs::write(root.join("sys/module/virtio_pci/initstate"), "live\n").unwrap();
        let names = ["virtio-pci", "virtio_blk", "virtio-blk", "fs-vfat"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(not_loaded(&root, names), ["virtio_blk", "fs-vfat"]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
