//! Coldplug: the modules for the devices that exist before anyone listened for uevents. One
//! pass over sysfs collects every `modalias` (where sysfs keeps them: bus and class devices
//! and the CPU, the same set as a walk of all of `/sys/devices` at a third of the cost), the
//! matching modules of `modules.alias` are loaded (all matches, as udev and `mdev -s` do),
//! and the devices those drivers create (a virtio disk behind virtio_pci) are then picked up
//! from the uevent socket by `hotplug`, not by walking again. What a module is and how it
//! loads is `modules`' job.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::devices::modindex::ModuleIndex;

/// Every distinct `modalias` under `root/sys/devices`, sorted: the reference that
/// [`known_modaliases`] is tested against. Symlinks are not followed (sysfs is full of them,
/// and some loop), unreadable entries are skipped.
#[cfg(test)]
pub fn modaliases(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack: Vec<PathBuf> = vec![root.join("sys/devices")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() && entry.file_name() == "modalias" {
                if let Some(alias) = read_modalias(&entry.path()) {
                    found.insert(alias);
                }
            }
        }
    }
    found
}

/// Every distinct `modalias` where sysfs keeps them, sorted: the devices of every bus
/// (`sys/bus/*/devices/*`), of every class (`sys/class/*/*`: input devices, DMI) and the CPU
/// (`sys/devices/system/cpu`). The same set as [`modaliases`] for a few dozen directory reads
/// instead of one per sysfs directory: 15 ms rather than 60-150 ms under QEMU TCG.
pub fn known_modaliases(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let sys = root.join("sys");
    let mut add = |path: PathBuf| {
        if let Some(alias) = read_modalias(&path) {
            found.insert(alias);
        }
    };
    add(sys.join("devices/system/cpu/modalias"));
    let listings = [("bus", "devices"), ("class", "")];
    for (top, sub) in listings {
        let Ok(groups) = std::fs::read_dir(sys.join(top)) else {
            continue;
        };
        for group in groups.flatten() {
            let Ok(devices) = std::fs::read_dir(group.path().join(sub)) else {
                continue;
            };
            for device in devices.flatten() {
                add(device.path().join("modalias"));
            }
        }
    }
    found
}

fn read_modalias(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let alias = text.trim();
    (!alias.is_empty()).then(|| alias.to_string())
}

/// The modules that serve `aliases`, each once, in the order first matched; built-in ones
/// are left out (nothing to load).
pub fn modules_for<'a>(
    index: &ModuleIndex,
    aliases: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut modules: Vec<String> = Vec::new();
    for alias in aliases {
        for module in index.lookup_alias(alias) {
            if !index.is_builtin(&module) && !modules.contains(&module) {
                modules.push(module);
            }
        }
    }
    modules
}

/// Where, under `kernel/` (or `updates/`, `extra/`) in `modules.dep`, live the drivers that can bring up the disk that
/// holds the boot partition (SD/MMC hosts, block, ATA, SCSI, NVMe, virtio transports, USB host
/// controllers and USB storage), the file systems, and the hardware watchdogs (a watchdog
/// should be armed early, and `[watchdog]` opens its device before the box starts). Coldplug
/// loads these first, so that the boot partition is mounted before the drivers of every other
/// device (a Pi's USB stack, sound, RNG) are loaded. By path rather than by alias: one list
/// serves every bus, and `modules.dep` is read anyway. The USB controllers of SoCs that are
/// also gadgets (dwc2, dwc3) are not here: on a Raspberry Pi they bring up the whole USB stack
/// (0.45 s under QEMU), and a boot partition on a USB disk is still found (see
/// `Hotplug::wait_for_boot_device`).
pub const BOOT_FIRST_DIRS: &[&str] = &[
    "drivers/mmc/",
    "drivers/block/",
    "drivers/ata/",
    "drivers/scsi/",
    "drivers/nvme/",
    "drivers/virtio/",
    "drivers/usb/host/",
    "drivers/usb/storage/",
    "drivers/watchdog/",
    "fs/",
];

/// Whether `module` is one of the drivers coldplug loads first ([`BOOT_FIRST_DIRS`]), judged
/// by its path in `modules.dep`; a module the index does not know is not.
pub fn loads_first(index: &ModuleIndex, module: &str) -> bool {
    index.path_of(module).is_some_and(|path| {
        // `kernel/drivers/mmc/...`, or `updates/...`, `extra/...` for modules built apart
        let path = path.split_once('/').map_or(path, |(_, within)| within);
        BOOT_FIRST_DIRS.iter().any(|dir| path.starts_with(dir))
    })
}

/// `modules` split into those to load before the boot partition is looked for
/// ([`loads_first`]) and the rest, each in the order given.
pub fn split_boot_first(index: &ModuleIndex, modules: Vec<String>) -> (Vec<String>, Vec<String>) {
    modules
        .into_iter()
        .partition(|module| loads_first(index, module))
}

/// The sysfs devices that have a node: `(devpath under /sys, uevent file text)` of each
/// `root/sys/class/*/*` (block devices included) with a `dev` file. For device rules and for
/// creating nodes when there is no devtmpfs, as `mdev -s` does.
pub fn device_nodes(root: &Path) -> io::Result<Vec<(String, String)>> {
    let class = root.join("sys/class");
    let sys_dir = std::fs::canonicalize(root.join("sys")).unwrap_or_else(|_| root.join("sys"));
    let mut out = Vec::new();
    let mut classes: Vec<_> = std::fs::read_dir(&class)?.flatten().collect();
    classes.sort_unstable_by_key(|e| e.file_name());
    for class_dir in classes {
        let Ok(devices) = std::fs::read_dir(class_dir.path()) else {
            continue;
        };
        let mut devices: Vec<_> = devices.flatten().collect();
        devices.sort_unstable_by_key(|e| e.file_name());
        for device in devices {
            let path = device.path();
            if !path.join("dev").is_file() {
                continue;
            }
            let Ok(bytes) = std::fs::read(path.join("uevent")) else {
                continue;
            };
            let text = utf8_lines(&bytes);
            // /sys/class/X/Y links to /sys/devices/...: the devpath is that, without /sys
            let devpath = std::fs::canonicalize(&path)
                .ok()
                .and_then(|real| {
                    real.strip_prefix(&sys_dir)
                        .ok()
                        .map(|p| format!("/{}", p.display()))
                })
                .unwrap_or_else(|| format!("/class/{}", path.display()));
            let subsystem = class_dir.file_name().to_string_lossy().into_owned();
            out.push((devpath, format!("{text}\nSUBSYSTEM={subsystem}\n")));
        }
    }
    Ok(out)
}

/// The lines of a sysfs `uevent` file that are UTF-8 text. A value the kernel copied from a
/// device (a name its firmware reports) can be any bytes; that line alone is dropped, so the
/// device keeps its node and rules (unless the dropped line was its `DEVNAME`).
fn utf8_lines(bytes: &[u8]) -> String {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("boxinit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn walks_sys_devices_once_without_following_links() {
        let root = temp_root("coldplug");
        let pci = "sys/devices/pci0000:00";
        write(
            &root,
            &format!("{pci}/0000:00:04.0/modalias"),
            "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00\n",
        );
        write(
            &root,
            &format!("{pci}/0000:00:05.0/modalias"),
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
        );
        write(
            &root,
            &format!("{pci}/0000:00:05.0/virtio1/modalias"),
            "virtio:d00000002v00001AF4\n",
        );
        // the same device class twice, an empty modalias, a modalias that is a directory
        write(
            &root,
            &format!("{pci}/0000:00:06.0/modalias"),
            "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00\n",
        );
        write(&root, "sys/devices/platform/empty/modalias", "\n");
        std::fs::create_dir_all(root.join("sys/devices/platform/odd/modalias")).unwrap();
        // a loop through a symlink must not be followed
        std::os::unix::fs::symlink(root.join("sys/devices"), root.join(format!("{pci}/loop")))
            .unwrap();
        let found = modaliases(&root);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            [
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
                "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00",
                "virtio:d00000002v00001AF4",
            ]
        );
        assert!(modaliases(&root.join("nonexistent")).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn known_places_find_what_the_full_walk_finds() {
        let root = temp_root("coldplug-known");
        let dev = |path: &str, alias: &str, links: &[&str]| {
            write(
                &root,
                &format!("sys/devices/{path}/modalias"),
                &format!("{alias}\n"),
            );
            for link in links {
                let link = root.join("sys").join(link);
                std::fs::create_dir_all(link.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(root.join("sys/devices").join(path), link).unwrap();
            }
        };
        dev(
            "pci0000:00/0000:00:04.0",
            "pci:v1AF4d1005",
            &["bus/pci/devices/0000:00:04.0"],
        );
        dev(
            "pci0000:00/0000:00:04.0/virtio1",
            "virtio:d04v1AF4",
            &["bus/virtio/devices/virtio1"],
        );
        dev(
            "platform/i8042/serio0/input/input0",
            "input:b0011",
            &["class/input/input0"],
        );
        dev("virtual/dmi/id", "dmi:bvnSeaBIOS", &["class/dmi/id"]);
        dev("system/cpu", "cpu:type:x86,ven0002", &[]);
        // the class device of a PCI disk has no modalias of its own
        write(
            &root,
            "sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/dev",
            "253:0\n",
        );
        std::fs::create_dir_all(root.join("sys/class/block")).unwrap();
        std::os::unix::fs::symlink(
            root.join("sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda"),
            root.join("sys/class/block/vda"),
        )
        .unwrap();
        let known = known_modaliases(&root);
        assert_eq!(known.len(), 5, "{known:?}");
        assert_eq!(known, modaliases(&root));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn every_match_once_builtins_left_out() {
        let index = ModuleIndex::parse(
            "kernel/virtio_pci.ko:\nkernel/virtio_blk.ko:\nkernel/virtio_rng.ko:\nkernel/crc.ko:\n",
            "kernel/rng_core.ko\n",
            "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n\
             alias virtio:d00000002v* virtio_blk\n\
             alias virtio:d00000004v* virtio_rng\n\
             alias virtio:d00000004v* rng_core\n\
             alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc\n",
        );
        let aliases: Vec<String> = [
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
            "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00",
            "virtio:d00000004v00001AF4",
            "virtio:d00000002v00001AF4",
            "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0094,00E5",
            "acpi:PNP0A03:",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            modules_for(&index, &aliases),
            ["virtio_pci", "virtio_rng", "virtio_blk", "crc"]
        );
    }

    #[test]
    fn storage_file_system_and_watchdog_drivers_go_first() {
        // the paths of Debian's arm64 kernel (raspi3b) and amd64 kernel (QEMU pc)
        let index = ModuleIndex::parse(
            "kernel/drivers/mmc/host/sdhci-iproc.ko: kernel/drivers/mmc/host/sdhci-pltfm.ko\n\
             kernel/drivers/mmc/host/sdhci-pltfm.ko:\n\
             kernel/drivers/usb/dwc2/dwc2.ko: kernel/drivers/usb/common/usb-common.ko\n\
             kernel/drivers/usb/common/usb-common.ko:\n\
             kernel/drivers/usb/host/xhci-pci.ko:\n\
             kernel/drivers/usb/storage/usb-storage.ko:\n\
             kernel/drivers/char/hw_random/bcm2835-rng.ko:\n\
             kernel/drivers/watchdog/bcm2835_wdt.ko:\n\
             kernel/drivers/virtio/virtio_pci.ko:\n\
             kernel/drivers/block/virtio_blk.ko:\n\
             kernel/drivers/scsi/sd_mod.ko:\n\
             kernel/drivers/ata/ahci.ko:\n\
             kernel/drivers/nvme/host/nvme.ko:\n\
             kernel/drivers/net/virtio_net.ko:\n\
             kernel/drivers/char/hw_random/virtio-rng.ko:\n\
             kernel/sound/arm/snd-bcm2835.ko:\n\
             kernel/fs/fat/vfat.ko:\n\
             kernel/drivers/mmc-extra/odd.ko:\n\
             updates/drivers/mmc/host/local.ko:\n",
            "",
            "",
        );
        let all: Vec<String> = [
            "dwc2",
            "sdhci_iproc",
            "bcm2835_rng",
            "bcm2835_wdt",
            "xhci_pci",
            "usb_storage",
            "virtio_pci",
            "virtio_net",
            "virtio_rng",
            "virtio_blk",
            "sd_mod",
            "ahci",
            "nvme",
            "snd_bcm2835",
            "vfat",
            "odd",
            "local",
            "not_in_the_index",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (first, rest) = split_boot_first(&index, all);
        assert_eq!(
            first,
            [
                "sdhci_iproc",
                "bcm2835_wdt",
                "xhci_pci",
                "usb_storage",
                "virtio_pci",
                "virtio_blk",
                "sd_mod",
                "ahci",
                "nvme",
                "vfat",
                "local",
            ]
        );
        assert_eq!(
            rest,
            [
                "dwc2",
                "bcm2835_rng",
                "virtio_net",
                "virtio_rng",
                "snd_bcm2835",
                "odd",
                "not_in_the_index",
            ]
        );
    }

    #[test]
    fn device_nodes_from_sys_class() {
        let root = temp_root("devnodes");
        let dev = "sys/devices/virtual/misc/hwrng";
        write(&root, &format!("{dev}/dev"), "10:183\n");
        // a value that is not UTF-8 (a name from the device's firmware) drops that line only
        std::fs::write(
            root.join(dev).join("uevent"),
            b"MAJOR=10\nNAME=caf\xe9\nMINOR=183\nDEVNAME=hwrng\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("sys/class/misc")).unwrap();
        std::os::unix::fs::symlink(root.join(dev), root.join("sys/class/misc/hwrng")).unwrap();
        // a class device without a node
        write(
            &root,
            "sys/class/net/lo/uevent",
            "INTERFACE=lo\nIFINDEX=1\n",
        );
        let nodes = device_nodes(&root).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].0, "/devices/virtual/misc/hwrng");
        assert!(nodes[0].1.contains("DEVNAME=hwrng\n") && nodes[0].1.ends_with("SUBSYSTEM=misc\n"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
