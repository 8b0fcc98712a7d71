//! The boot partition: wait (bounded, woken by uevents) until the device that `[boot] device`
//! names shows up, then mount it on /boot, read-only unless configured otherwise. Reading
//! partition tables and FAT boot sectors is `partition`'s job.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::Boot;
use crate::events::Events;
use crate::storage::partition::{self, Candidate, DeviceSpec};
use crate::sys::{MountFlags, Sys};

/// What the wait does with each uevent it reads (load the new device's module: `hotplug`).
pub type OnUevent<'a> = &'a mut dyn FnMut(&mut dyn Sys, &[u8]);

/// Finds the boot partition and mounts it on `target`. Returns whether it is mounted; every
/// failure is logged with what was seen and how to fix it. The uevents read while waiting are
/// passed to `on_uevent`.
pub fn mount_boot(
    sys: &mut dyn Sys,
    events: &Events,
    boot: &Boot,
    target: &Path,
    on_uevent: OnUevent,
) -> bool {
    let started = Instant::now();
    let Some(found) = wait_for(
        sys,
        events,
        &boot.device,
        boot.timeout,
        Path::new("/"),
        on_uevent,
    ) else {
        return false;
    };
    log::debug!(
        "phase boot partition scan, until found (part of the boot partition phase): {}us",
        started.elapsed().as_micros()
    );
    let flags = mount_flags(boot.read_only);
    let dev = found.dev.display().to_string();
    let _ = sys.mkdir(target, 0o755);
    match sys.mount(&dev, target, "vfat", flags, "") {
        Ok(()) => {
            log::info!(
                "boot partition {dev} ({}) mounted {} on {} after {}ms",
                describe(&found),
                if boot.read_only {
                    "read-only"
                } else {
                    "read-write"
                },
                target.display(),
                started.elapsed().as_millis()
            );
            true
        }
        Err(e) => {
            log::error!(
                "cannot mount the boot partition {dev} on {}: {e}; is it FAT, and are the vfat, nls_cp437 and nls_ascii modules in the initramfs (cargo xtask initramfs --modules)?",
                target.display()
            );
            false
        }
    }
}

/// Starts reading `path` (the box) into the page cache in the background and returns at once
/// (`posix_fadvise(POSIX_FADV_WILLNEED)`), so that the disk reads of exec overlap with the
/// work left before the box starts (reading the boot partition's config). Only a hint: the
/// file is not changed, and any error (no such file: the config may name another) is ignored.
///
/// <https://man7.org/linux/man-pages/man2/posix_fadvise.2.html>
pub fn prefetch(path: &Path) {
    use rustix::fs::{fadvise, open, Advice, Mode, OFlags};
    if let Ok(fd) = open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        let _ = fadvise(&fd, 0, None, Advice::WillNeed);
    }
}

/// nosuid, nodev, noatime (no write per read on a flash card), and ro unless asked otherwise.
/// Not noexec: the box lives there.
fn mount_flags(read_only: bool) -> MountFlags {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOATIME;
    if read_only {
        flags | MountFlags::RDONLY
    } else {
        flags
    }
}

/// The boot partition's own init.toml may change `[boot] read_only`, which is only known once
/// it is mounted: remount it to match.
pub fn apply_read_only(sys: &mut dyn Sys, mounted_read_only: bool, wanted: &Boot, target: &Path) {
    if mounted_read_only == wanted.read_only {
        return;
    }
    let mode = if wanted.read_only {
        "read-only"
    } else {
        "read-write"
    };
    match sys.remount(target, mount_flags(wanted.read_only)) {
        Ok(()) => log::info!(
            "boot partition remounted {mode} ([boot] read_only = {})",
            wanted.read_only
        ),
        Err(e) => log::error!("cannot remount the boot partition {mode}: {e}; it stays as it was"),
    }
}

/// Scans the block devices until one matches `spec` or `timeout` passes. Between scans it
/// sleeps until the kernel announces a device (uevent), not on a fixed period; each uevent
/// goes to `on_uevent` first (it may load the driver of the disk being waited for).
pub fn wait_for(
    sys: &mut dyn Sys,
    events: &Events,
    spec: &DeviceSpec,
    timeout: Duration,
    root: &Path,
    on_uevent: OnUevent,
) -> Option<Candidate> {
    let deadline = crate::events::deadline_after(Instant::now(), timeout);
    loop {
        let candidates = partition::scan(root);
        if let Some(found) = partition::select(&candidates.found, spec) {
            return Some(found.clone());
        }
        let now = Instant::now();
        if now >= deadline {
            log::error!(
                "boot partition {spec} not found after {}; block devices seen: {}; set [boot] device in the built-in init.toml or boxinit.boot= on the kernel command line (LABEL=, UUID=, PARTUUID=, /dev/..., auto), and check that the disk's driver is loaded",
                crate::config::format_duration(timeout),
                seen(&candidates.found)
            );
            for e in &candidates.errors {
                log::error!("  {e}");
            }
            return None;
        }
        // A new device means: look again. Signals stay queued for the main loop.
        for message in events.wait_uevent(deadline.saturating_duration_since(now)) {
            on_uevent(sys, &message);
        }
    }
}

fn seen(candidates: &[Candidate]) -> String {
    if candidates.is_empty() {
        return "none".to_string();
    }
    candidates
        .iter()
        .map(|c| format!("{} ({})", c.dev.display(), describe(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(c: &Candidate) -> String {
    match &c.fat {
        Some(fat) => format!(
            "FAT, label {}, UUID {}",
            fat.label.as_deref().unwrap_or("none"),
            fat.uuid
        ),
        None => "not FAT".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Recorder;

    #[test]
    fn prefetch_leaves_the_file_as_it_was_and_ignores_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("boxinit-prefetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("box");
        std::fs::write(&file, b"\x7fELF box").unwrap();
        let before = std::fs::metadata(&file).unwrap();
        prefetch(&file);
        prefetch(&dir.join("missing"));
        prefetch(&dir);
        assert_eq!(std::fs::read(&file).unwrap(), b"\x7fELF box");
        let after = std::fs::metadata(&file).unwrap();
        assert_eq!(before.len(), after.len());
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remounts_only_when_the_mode_changes() {
        let mut boot = crate::config::Config::default().boot;
        let mut rec = Recorder::new();
        apply_read_only(&mut rec, true, &boot, Path::new("/boot"));
        assert_eq!(rec.transcript(), "");
        boot.read_only = false;
        apply_read_only(&mut rec, true, &boot, Path::new("/boot"));
        assert_eq!(
            rec.transcript(),
            "remount(/boot, MountFlags(NOATIME | NODEV | NOSUID))\n"
        );
    }
}
