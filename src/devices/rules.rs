//! Device nodes: the `[[device]]` rules of init.toml (mode, owner, group, symlink for every
//! device whose name matches) and, when the kernel has no devtmpfs, creating and removing the
//! nodes themselves as `mdev` does. Acts on parsed uevents; which events arrive is `hotplug`'s
//! business, and the matching is pure ([`rule_matches`], [`link_path`]).

use std::path::{Path, PathBuf};

use crate::config::DeviceRule;
use crate::devices::uevent::{Action, Uevent};
use crate::fnmatch::fnmatch;
use crate::sys::{NodeKind, Sys};

/// Mode of a node created without devtmpfs when neither the kernel (`DEVMODE`) nor a rule
/// says otherwise: mdev's default.
const DEFAULT_NODE_MODE: u32 = 0o660;

/// Whether `rule` applies to the device `devname` (relative to /dev) of `subsystem` whose
/// kernel name is `kernel_name`.
pub fn rule_matches(rule: &DeviceRule, subsystem: &str, devname: &str, kernel_name: &str) -> bool {
    let name_ok = fnmatch(&rule.match_, devname) || fnmatch(&rule.match_, kernel_name);
    let subsystem_ok = rule
        .subsystem
        .as_deref()
        .is_none_or(|s| fnmatch(s, subsystem));
    name_ok && subsystem_ok
}

/// Where a rule's `symlink` goes: absolute as given, else under `dev`.
pub fn link_path(dev: &Path, symlink: &str) -> PathBuf {
    if symlink.starts_with('/') {
        PathBuf::from(symlink)
    } else {
        dev.join(symlink)
    }
}

/// The rules and how nodes come to exist.
pub struct Devices {
    rules: Vec<DeviceRule>,
    /// Create and remove nodes (no devtmpfs), rather than only adjust the kernel's.
    make_nodes: bool,
    /// `/dev`
    dev: PathBuf,
}

impl Devices {
    pub fn new(rules: Vec<DeviceRule>, make_nodes: bool, dev: &Path) -> Devices {
        Devices {
            rules,
            make_nodes,
            dev: dev.to_path_buf(),
        }
    }

    /// Replaces the rules (once the boot partition's init.toml is read).
    pub fn set_rules(&mut self, rules: Vec<DeviceRule>) {
        self.rules = rules;
    }

    /// Acts on one event of a device with a node: add → (node), rules; remove → links, (node).
    pub fn on_event(&self, sys: &mut dyn Sys, event: &Uevent) {
        let Some(devname) = event.devname() else {
            return;
        };
        let node = self.dev.join(devname);
        let rules: Vec<&DeviceRule> = self
            .rules
            .iter()
            .filter(|r| rule_matches(r, event.subsystem(), devname, event.kernel_name()))
            .collect();
        match event.action {
            Action::Add => {
                if self.make_nodes {
                    self.make_node(sys, event, &node);
                }
                for rule in rules {
                    self.apply(sys, rule, devname, &node);
                }
            }
            Action::Remove => {
                for link in rules.iter().filter_map(|r| r.symlink.as_deref()) {
                    let link = link_path(&self.dev, link);
                    if let Err(e) = sys.unlink(&link) {
                        log::debug!("device {devname}: cannot remove {}: {e}", link.display());
                    }
                }
                if self.make_nodes {
                    if let Err(e) = sys.unlink(&node) {
                        log::debug!("device {devname}: cannot remove {}: {e}", node.display());
                    }
                }
            }
            _ => {}
        }
    }

    /// `mknod` as mdev does: block devices for the `block` subsystem, character otherwise,
    /// with the kernel's `DEVMODE` when it gives one; parent directories created.
    fn make_node(&self, sys: &mut dyn Sys, event: &Uevent, node: &Path) {
        let Some((major, minor)) = event.dev_number() else {
            return;
        };
        let kind = if event.subsystem() == "block" {
            NodeKind::Block
        } else {
            NodeKind::Char
        };
        let mode = event
            .get("DEVMODE")
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(DEFAULT_NODE_MODE);
        make_parents(sys, &self.dev, node);
        match sys.mknod(node, kind, mode, major, minor) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => log::warn!(
                "cannot create the device node {} ({major}:{minor}): {e}",
                node.display()
            ),
        }
    }

    fn apply(&self, sys: &mut dyn Sys, rule: &DeviceRule, devname: &str, node: &Path) {
        let mut done = Vec::new();
        if let Some(mode) = rule.mode {
            match sys.chmod(node, mode) {
                Ok(()) => done.push(format!("mode {mode:04o}")),
                Err(e) => log::warn!(
                    "device rule `{}`: cannot chmod {}: {e}",
                    rule.match_,
                    node.display()
                ),
            }
        }
        if rule.owner.is_some() || rule.group.is_some() {
            match sys.chown(node, rule.owner, rule.group) {
                Ok(()) => {
                    if let Some(uid) = rule.owner {
                        done.push(format!("owner {uid}"));
                    }
                    if let Some(gid) = rule.group {
                        done.push(format!("group {gid}"));
                    }
                }
                Err(e) => log::warn!(
                    "device rule `{}`: cannot chown {}: {e}",
                    rule.match_,
                    node.display()
                ),
            }
        }
        if let Some(symlink) = &rule.symlink {
            let link = link_path(&self.dev, symlink);
            make_parents(sys, &self.dev, &link);
            let mut result = sys.symlink(node, &link);
            if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists) {
                // a link left from a device that had the name before: point it at this one
                let _ = sys.unlink(&link);
                result = sys.symlink(node, &link);
            }
            match result {
                Ok(()) => done.push(format!("link {}", link.display())),
                Err(e) => log::warn!(
                    "device rule `{}`: cannot link {} -> {}: {e}",
                    rule.match_,
                    link.display(),
                    node.display()
                ),
            }
        }
        if !done.is_empty() {
            log::info!("device {devname}: {}", done.join(", "));
        }
    }
}

/// Creates the directories between `dev` and `path` (`/dev/input` for `/dev/input/event0`).
fn make_parents(sys: &mut dyn Sys, dev: &Path, path: &Path) {
    let Some(parent) = path.parent() else {
        return;
    };
    let Ok(below) = parent.strip_prefix(dev) else {
        return;
    };
    let mut dir = dev.to_path_buf();
    for part in below.components() {
        dir.push(part);
        let _ = sys.mkdir(&dir, 0o755);
    }
}

/// Whether `/dev` is a devtmpfs, from `root/proc/mounts`; when it is not, nodes are made
/// here. Unreadable mounts count as devtmpfs (nothing is created that might clash).
pub fn dev_is_devtmpfs(root: &Path) -> bool {
    match crate::mounts::read_mounts(root) {
        Ok(mounts) => mounts
            .iter()
            .any(|m| m.target == Path::new("/dev") && m.fstype == "devtmpfs"),
        Err(e) => {
            log::warn!("devices: {e}; taking /dev for a devtmpfs (no node is made by hand)");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::uevent;
    use crate::sys::recorder::{Call, Recorder};

    fn rule(toml_text: &str) -> DeviceRule {
        toml::from_str(toml_text).unwrap()
    }

    fn event(parts: &[&str]) -> Uevent {
        uevent::parse(parts.join("\0").as_bytes()).unwrap()
    }

    #[test]
    fn matching() {
        let serial = rule("match = \"ttyAMA0\"\nsymlink = \"serial0\"");
        let usb = rule("match = \"ttyUSB*\"\nsubsystem = \"tty\"");
        let input = rule("match = \"input/event*\"");
        let events = rule("match = \"event[0-3]\"\nsubsystem = \"inp*\"");
        let cases = [
            (&serial, "tty", "ttyAMA0", "ttyAMA0", true),
            (&serial, "tty", "ttyAMA1", "ttyAMA1", false),
            (&usb, "tty", "ttyUSB3", "ttyUSB3", true),
            (&usb, "usb-serial", "ttyUSB3", "ttyUSB3", false),
            (&input, "input", "input/event2", "event2", true),
            (&events, "input", "input/event2", "event2", true),
            (&events, "input", "input/event4", "event4", false),
            (&events, "misc", "input/event2", "event2", false),
        ];
        for (rule, subsystem, devname, kernel, want) in cases {
            assert_eq!(
                rule_matches(rule, subsystem, devname, kernel),
                want,
                "{} {subsystem} {devname}",
                rule.match_
            );
        }
        assert_eq!(
            link_path(Path::new("/dev"), "serial0"),
            Path::new("/dev/serial0")
        );
        assert_eq!(
            link_path(Path::new("/dev"), "/run/rng"),
            Path::new("/run/rng")
        );
    }

    #[test]
    fn rules_on_add_and_remove_with_devtmpfs() {
        let rules = vec![
            rule("match = \"hwrng\"\nmode = \"0640\"\ngroup = 20\nsymlink = \"rng/entropy\""),
            rule("match = \"hw*\"\nsubsystem = \"misc\"\nowner = 5"),
            rule("match = \"vd*\""),
        ];
        let devices = Devices::new(rules, false, Path::new("/dev"));
        let mut rec = Recorder::new();
        rec.fail_when(|c| matches!(c, Call::Symlink { .. }), 17);
        let add = event(&[
            "add@/devices/virtual/misc/hwrng",
            "ACTION=add",
            "SUBSYSTEM=misc",
            "MAJOR=10",
            "MINOR=183",
            "DEVNAME=hwrng",
        ]);
        devices.on_event(&mut rec, &add);
        let remove = event(&[
            "remove@/devices/virtual/misc/hwrng",
            "SUBSYSTEM=misc",
            "DEVNAME=hwrng",
        ]);
        devices.on_event(&mut rec, &remove);
        // an event without a node changes nothing
        devices.on_event(
            &mut rec,
            &event(&["add@/devices/pci0000:00/x", "SUBSYSTEM=pci"]),
        );
        assert_eq!(
            rec.transcript(),
            "chmod(/dev/hwrng, 640)\n\
             chown(/dev/hwrng, -, 20)\n\
             mkdir(/dev/rng, 755)\n\
             symlink(/dev/rng/entropy -> /dev/hwrng)\n\
             unlink(/dev/rng/entropy)\n\
             symlink(/dev/rng/entropy -> /dev/hwrng)\n\
             chown(/dev/hwrng, 5, -)\n\
             unlink(/dev/rng/entropy)\n"
        );
    }

    #[test]
    fn nodes_without_devtmpfs() {
        let devices = Devices::new(
            vec![rule("match = \"event*\"\nmode = \"0600\"")],
            true,
            Path::new("/dev"),
        );
        let mut rec = Recorder::new();
        for e in [
            event(&[
                "add@/devices/x/input/input0/event0",
                "SUBSYSTEM=input",
                "MAJOR=13",
                "MINOR=64",
                "DEVNAME=input/event0",
            ]),
            event(&[
                "add@/devices/x/block/vdb/vdb1",
                "SUBSYSTEM=block",
                "MAJOR=253",
                "MINOR=17",
                "DEVNAME=vdb1",
            ]),
            event(&[
                "add@/devices/virtual/mem/null",
                "SUBSYSTEM=mem",
                "MAJOR=1",
                "MINOR=3",
                "DEVNAME=null",
                "DEVMODE=0666",
            ]),
            event(&[
                "remove@/devices/x/block/vdb/vdb1",
                "SUBSYSTEM=block",
                "MAJOR=253",
                "MINOR=17",
                "DEVNAME=vdb1",
            ]),
        ] {
            devices.on_event(&mut rec, &e);
        }
        assert_eq!(
            rec.transcript(),
            "mkdir(/dev/input, 755)\n\
             mknod(/dev/input/event0, Char, 660, 13:64)\n\
             chmod(/dev/input/event0, 600)\n\
             mknod(/dev/vdb1, Block, 660, 253:17)\n\
             mknod(/dev/null, Char, 666, 1:3)\n\
             unlink(/dev/vdb1)\n"
        );
    }

    #[test]
    fn devtmpfs_from_proc_mounts() {
        let root = std::env::temp_dir().join(format!("boxinit-devtmpfs-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/mounts"),
            "proc /proc proc rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\n",
        )
        .unwrap();
        assert!(dev_is_devtmpfs(&root));
        std::fs::write(
            root.join("proc/mounts"),
            "proc /proc proc rw 0 0\ntmpfs /dev tmpfs rw 0 0\n",
        )
        .unwrap();
        assert!(!dev_is_devtmpfs(&root));
        std::fs::remove_dir_all(&root).unwrap();
        assert!(dev_is_devtmpfs(&root));
    }
}
