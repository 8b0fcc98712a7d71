//! Automount: a partition that appears and matches an `[[automount]]` rule (label, file system
//! type) is mounted where the rule says, and unmounted (lazily: the device is already gone)
//! when it is removed. Only FAT is recognised (`storage::scan` reads its boot sector), which is
//! what USB sticks and SD cards carry. Which events arrive is `hotplug`'s business.
//!
//! The boot sector is read off the event loop, by the probes the boot partition search used
//! too ([`DeviceProbes`]: a thread per device, never two at once for one device, so a dead
//! stick plugged in again and again costs one thread): a new device that is slow or never
//! answers holds up its probe's thread, not the loop; the loop picks the answer up at its next
//! [`Automounter::tick`] and gives up on it after [`PROBE_LIMIT`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Automount;
use crate::devices::uevent::{Action, Uevent};
use crate::storage::partition::FatInfo;
use crate::storage::probe::{Answer, DeviceProbes};
use crate::sys::{MountFlags, Sys};

/// How long a new partition may take to show its boot sector before it is left alone.
pub const PROBE_LIMIT: Duration = Duration::from_secs(5);
/// While probes are under way, the loop looks at them this often.
const PROBE_POLL: Duration = Duration::from_millis(50);

/// What was found on a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The type to pass to mount(2): `vfat`.
    pub fstype: &'static str,
    pub label: Option<String>,
}

/// The first rule that `found` satisfies: every condition it sets must hold (labels compared
/// without regard to case, as FAT stores them upper-case), and a rule without any condition
/// matches nothing.
pub fn matching_rule<'a>(rules: &'a [Automount], found: &Found) -> Option<&'a Automount> {
    rules.iter().find(|rule| {
        let label_ok = rule.label.as_deref().is_none_or(|want| {
            found
                .label
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(want))
        });
        let fstype_ok = rule.fstype.as_deref().is_none_or(|t| t == found.fstype);
        (rule.label.is_some() || rule.fstype.is_some()) && label_ok && fstype_ok
    })
}

/// Mount flags of an automount: never devices or set-uid programs from a stick.
fn flags(read_only: bool) -> MountFlags {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOATIME;
    if read_only {
        flags | MountFlags::RDONLY
    } else {
        flags
    }
}

/// The rules and what they mounted.
pub struct Automounter {
    rules: Vec<Automount>,
    /// devname -> mount point
    mounted: BTreeMap<String, PathBuf>,
    /// where `/dev` and `/proc` are read (`/`; a temp dir in tests)
    root: PathBuf,
    /// The reads of the devices (shared with the boot partition search).
    probes: DeviceProbes,
    /// devname -> when it came, while its boot sector is awaited
    waiting: BTreeMap<String, Instant>,
}

impl Automounter {
    pub fn new(rules: Vec<Automount>, root: &Path, probes: &DeviceProbes) -> Automounter {
        for rule in rules
            .iter()
            .filter(|r| r.label.is_none() && r.fstype.is_none())
        {
            log::error!(
                "[[automount]] for {}: set `label` or `fstype`, or it never matches",
                rule.path
            );
        }
        Automounter {
            rules,
            mounted: BTreeMap::new(),
            root: root.to_path_buf(),
            probes: probes.clone(),
            waiting: BTreeMap::new(),
        }
    }

    /// Replaces the rules (once the boot partition's init.toml is read); mounts stay.
    pub fn set_rules(&mut self, rules: Vec<Automount>) {
        let kept = std::mem::take(&mut self.mounted);
        let waiting = std::mem::take(&mut self.waiting);
        *self = Automounter::new(rules, &self.root, &self.probes);
        self.mounted = kept;
        self.waiting = waiting;
    }

    /// Mounts what the probes found since the last call, gives up on those that took longer
    /// than [`PROBE_LIMIT`], and says when to look again (None: no probe under way).
    pub fn tick(&mut self, sys: &mut dyn Sys, now: Instant) -> Option<Instant> {
        let waiting = std::mem::take(&mut self.waiting);
        for (devname, since) in waiting {
            match self.probes.ask(&devname) {
                Answer::Ready(look) => self.mount_found(sys, &devname, look.fat),
                Answer::NotYet { .. } if now.saturating_duration_since(since) > PROBE_LIMIT => {
                    // this warning names it: not the loop's about slow reads too
                    self.probes.mark_named(&devname);
                    log::warn!(
                        "automount: /dev/{devname} did not show its boot sector within {}; not mounted (a slow or failing device?)",
                        crate::config::format_duration(PROBE_LIMIT)
                    );
                }
                Answer::NotYet { .. } => {
                    self.waiting.insert(devname, since);
                }
                Answer::Lost => {}
            }
        }
        (!self.waiting.is_empty()).then(|| crate::events::deadline_after(now, PROBE_POLL))
    }

    /// Waits (up to `limit`) for the probes under way and mounts what they find: at boot, so
    /// that what is plugged in already is mounted before the box starts.
    pub fn settle(&mut self, sys: &mut dyn Sys, limit: Duration) {
        let deadline = crate::events::deadline_after(Instant::now(), limit);
        while self.tick(sys, Instant::now()).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Acts on a block device event.
    pub fn on_event(&mut self, sys: &mut dyn Sys, event: &Uevent) {
        if event.subsystem() != "block"
            || self.rules.is_empty() && self.mounted.is_empty() && self.waiting.is_empty()
        {
            return;
        }
        let Some(devname) = event.devname() else {
            return;
        };
        match event.action {
            Action::Add => self.mount(sys, devname),
            Action::Remove => self.unmount(sys, devname),
            _ => {}
        }
    }

    /// Starts a look at a new device's boot sector, off the loop (unless one is under way:
    /// its answer will do); [`Automounter::tick`] mounts what it finds.
    fn mount(&mut self, _sys: &mut dyn Sys, devname: &str) {
        if self.mounted.contains_key(devname)
            || self.waiting.contains_key(devname)
            || self.is_mounted(devname)
        {
            return;
        }
        let _ = self.probes.ask(devname);
        self.waiting.insert(devname.to_string(), Instant::now());
    }

    /// A probe's answer: mount the partition when it is FAT and a rule wants it.
    fn mount_found(&mut self, sys: &mut dyn Sys, devname: &str, fat: Option<FatInfo>) {
        let Some(fat) = fat else {
            return;
        };
        let found = Found {
            fstype: "vfat",
            label: fat.label,
        };
        let Some(rule) = matching_rule(&self.rules, &found) else {
            return;
        };
        let target = PathBuf::from(&rule.path);
        let mut dir = PathBuf::new();
        for part in target.components() {
            dir.push(part);
            if matches!(part, std::path::Component::Normal(_)) {
                let _ = sys.mkdir(&dir, 0o755);
            }
        }
        let dev = format!("/dev/{devname}");
        let label = found.label.as_deref().unwrap_or("none");
        match sys.mount(
            &dev,
            &target,
            found.fstype,
            flags(rule.read_only),
            &rule.options,
        ) {
            Ok(()) => {
                log::info!(
                    "automount: {dev} ({}, label {label}) mounted {} on {}",
                    found.fstype,
                    if rule.read_only {
                        "read-only"
                    } else {
                        "read-write"
                    },
                    target.display()
                );
                self.mounted.insert(devname.to_string(), target);
            }
            Err(e) => log::warn!(
                "automount: cannot mount {dev} ({}, label {label}) on {}: {e}",
                found.fstype,
                target.display()
            ),
        }
    }

    fn unmount(&mut self, sys: &mut dyn Sys, devname: &str) {
        // Gone while being looked at: its answer no longer matters.
        self.waiting.remove(devname);
        let Some(target) = self.mounted.remove(devname) else {
            return;
        };
        match sys.unmount_detach(&target) {
            Ok(()) => log::info!(
                "automount: /dev/{devname} removed, {} unmounted",
                target.display()
            ),
            Err(e) => log::warn!(
                "automount: /dev/{devname} removed, cannot unmount {}: {e}",
                target.display()
            ),
        }
    }

    /// Whether `/dev/<devname>` is mounted already (the boot partition, or by the box).
    fn is_mounted(&self, devname: &str) -> bool {
        let dev = Path::new("/dev").join(devname);
        match crate::mounts::read_mounts(&self.root) {
            Ok(mounts) => mounts.iter().any(|m| Path::new(&m.source) == dev),
            Err(e) => {
                log::warn!("automount: {e}; mounting /dev/{devname} as if it were not mounted");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::uevent;
    use crate::sys::recorder::Recorder;

    fn rules(text: &str) -> Vec<Automount> {
        #[derive(serde::Deserialize)]
        struct Rules {
            automount: Vec<Automount>,
        }
        toml::from_str::<Rules>(text).unwrap().automount
    }

    #[test]
    fn rule_choice() {
        let rules = rules(
            "[[automount]]\nlabel = \"stick\"\npath = \"/mnt/stick\"\n\
             [[automount]]\nfstype = \"vfat\"\nlabel = \"DATA\"\npath = \"/data\"\n\
             [[automount]]\nfstype = \"ext4\"\npath = \"/mnt/ext\"\n\
             [[automount]]\npath = \"/never\"\n",
        );
        let found = |label: Option<&str>| Found {
            fstype: "vfat",
            label: label.map(str::to_string),
        };
        let path = |f: &Found| matching_rule(&rules, f).map(|r| r.path.as_str());
        assert_eq!(path(&found(Some("STICK"))), Some("/mnt/stick"));
        assert_eq!(path(&found(Some("data"))), Some("/data"));
        assert_eq!(path(&found(Some("OTHER"))), None);
        assert_eq!(path(&found(None)), None);
        assert!(rules[0].read_only && rules[0].options.is_empty());
    }

    /// A disk image with one FAT16 volume labelled STICK, as /dev/vdb1 under a temp root.
    fn fake_root(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("boxinit-automount-{name}-{}", std::process::id()));
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        let mut sector = vec![0u8; 512 * 64];
        // a minimal FAT16 boot sector: jump, OEM, BPB, extended BPB with label and fs type
        sector[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        sector[3..11].copy_from_slice(b"MSWIN4.1");
        sector[11..13].copy_from_slice(&512u16.to_le_bytes());
        sector[13] = 4;
        sector[14..16].copy_from_slice(&1u16.to_le_bytes());
        sector[16] = 2;
        sector[17..19].copy_from_slice(&512u16.to_le_bytes());
        sector[19..21].copy_from_slice(&20000u16.to_le_bytes());
        sector[21] = 0xF8;
        sector[22..24].copy_from_slice(&20u16.to_le_bytes());
        sector[38] = 0x29;
        sector[39..43].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        sector[43..54].copy_from_slice(b"STICK      ");
        sector[54..62].copy_from_slice(b"FAT16   ");
        sector[510] = 0x55;
        sector[511] = 0xAA;
        std::fs::write(root.join("dev/vdb1"), &sector).unwrap();
        std::fs::write(root.join("proc/mounts"), "/dev/vda1 /boot vfat ro 0 0\n").unwrap();
        root
    }

    #[test]
    fn mounts_on_add_unmounts_on_remove() {
        let root = fake_root("add");
        let mut am = Automounter::new(
            rules("[[automount]]\nlabel = \"stick\"\npath = \"/mnt/stick\"\nread_only = false\noptions = \"utf8\"\n"),
            &root,
            &crate::storage::probe::for_devices(&root),
        );
        let mut rec = Recorder::new();
        let ev = |action: &str, dev: &str| {
            uevent::parse(
                format!("{action}@/devices/x/block/{dev}\0SUBSYSTEM=block\0DEVNAME={dev}")
                    .as_bytes(),
            )
            .unwrap()
        };
        am.on_event(&mut rec, &ev("add", "vdb1"));
        am.on_event(&mut rec, &ev("add", "vdb1")); // twice: mounted once
        am.on_event(&mut rec, &ev("add", "vdc")); // no such device: nothing
        am.settle(&mut rec, Duration::from_secs(5));
        am.on_event(&mut rec, &ev("add", "vdb1"));
        am.settle(&mut rec, Duration::from_secs(5));
        am.on_event(&mut rec, &ev("remove", "vdb1"));
        am.on_event(&mut rec, &ev("remove", "vdb1"));
        assert_eq!(
            rec.transcript(),
            "mkdir(/mnt, 755)\n\
             mkdir(/mnt/stick, 755)\n\
             mount(/dev/vdb1, /mnt/stick, vfat, MountFlags(NOATIME | NODEV | NOSUID), \"utf8\")\n\
             umount(/mnt/stick, MNT_DETACH)\n"
        );
        // what is mounted already (the boot partition) is left alone
        std::fs::write(root.join("proc/mounts"), "/dev/vdb1 /boot vfat ro 0 0\n").unwrap();
        let mut rec = Recorder::new();
        am.on_event(&mut rec, &ev("add", "vdb1"));
        am.settle(&mut rec, Duration::from_secs(5));
        assert_eq!(rec.transcript(), "");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_device_that_never_answers_does_not_stall_the_loop() {
        let root = fake_root("hung");
        // vdc1 never answers.
        let fifo = root.join("dev/vdc1");
        crate::storage::probe::make_hung_device(&fifo);
        let mut am = Automounter::new(
            rules("[[automount]]\nlabel = \"stick\"\npath = \"/mnt/stick\"\n"),
            &root,
            &crate::storage::probe::for_devices(&root),
        );
        let mut rec = Recorder::new();
        let ev = |dev: &str| {
            uevent::parse(
                format!("add@/devices/x/block/{dev}\0SUBSYSTEM=block\0DEVNAME={dev}").as_bytes(),
            )
            .unwrap()
        };
        let t0 = Instant::now();
        am.on_event(&mut rec, &ev("vdc1"));
        am.on_event(&mut rec, &ev("vdb1"));
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        // The stick that answers is mounted; the hung one keeps the loop coming back, briefly.
        am.settle(&mut rec, Duration::from_millis(500));
        assert!(rec.transcript().contains("mount(/dev/vdb1, /mnt/stick"));
        let next = am.tick(&mut rec, Instant::now()).unwrap();
        assert!(next <= Instant::now() + PROBE_POLL);
        // After the limit it is given up on: nothing more to look at.
        assert_eq!(am.tick(&mut rec, Instant::now() + PROBE_LIMIT * 2), None);
        crate::storage::probe::release_hung_device(&fifo);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
