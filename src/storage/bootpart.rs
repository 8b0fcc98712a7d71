//! The boot partition: wait (bounded, woken by uevents) until the device that `[boot] device`
//! names shows up, then mount it on /boot, read-only unless configured otherwise. Reading
//! the disks is `scan`'s and `probe`'s job, choosing among them `search`'s.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{Boot, DeviceSpec};
use crate::events::Events;
use crate::storage::probe::DeviceProbes;
use crate::storage::scan::{self, Candidate};
use crate::storage::search::{self, OnUevent, Search};
use crate::sys::{MountFlags, Sys};

/// Finds the boot partition and mounts it on `target`, or mounts `seen` when a scan has just
/// found it (hotplug's wait before the second coldplug pass). Returns whether it is mounted;
/// every failure is logged with what was seen and how to fix it. The devices are read through
/// `probes` (hotplug's, shared with its grace wait and automount); the uevents read while
/// waiting are passed to `on_uevent`.
pub fn mount_boot(
    sys: &mut dyn Sys,
    events: &Events,
    boot: &Boot,
    target: &Path,
    seen: Option<Candidate>,
    probes: &DeviceProbes,
    on_uevent: OnUevent,
) -> bool {
    let started = Instant::now();
    let seen = seen.or_else(|| {
        wait_for(
            sys,
            events,
            &boot.device,
            boot.timeout,
            Path::new("/"),
            probes,
            on_uevent,
        )
    });
    let Some(found) = seen else {
        return false;
    };
    log::debug!(
        "phase boot partition scan, until found (part of the boot partition phase): {}us",
        started.elapsed().as_micros()
    );
    let flags = mount_flags(boot.read_only);
    let dev = found.dev.display().to_string();
    if found.fat.is_none() {
        log::error!(
            "boot partition {dev} ([boot] device = \"{}\") holds no FAT file system (no FAT boot sector): boxinit boots from a FAT partition; format it FAT32 (or FAT16), or point [boot] device at the FAT one",
            boot.device
        );
        return false;
    }
    let _ = sys.mkdir(target, 0o755);
    match sys.mount(&dev, target, "vfat", flags, "") {
        Ok(()) => {
            if found.fat.as_ref().is_some_and(|fat| fat.dirty) {
                log::warn!(
                    "boot partition {dev}: its FAT is marked dirty: it was not unmounted cleanly (power cut while it was being written, or pulled out of a computer without ejecting it), so a file written then may be damaged; check it on a computer: fsck.fat -a (Linux), First Aid (macOS Disk Utility), Check (Windows)"
                );
            }
            log::info!(
                "boot partition {dev} ({}) mounted {} on {} after {}ms",
                scan::describe(&found),
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
                "cannot mount the boot partition {dev} on {}: {e}; {}",
                target.display(),
                mount_failure_advice(&e)
            );
            false
        }
    }
}

/// What to do when the boot partition's mount failed, by its error: an I/O error is a damaged
/// card or file system (fsck), not a missing module.
fn mount_failure_advice(e: &std::io::Error) -> &'static str {
    match rustix::io::Errno::from_io_error(e) {
        Some(rustix::io::Errno::IO) => {
            "the card could not be read: its FAT may be damaged (check it on another machine with fsck.vfat -a) or the card failing (write the image to a new one)"
        }
        _ => {
            "is it FAT, and are the vfat, nls_cp437 and nls_ascii modules in the initramfs (cargo xtask initramfs --modules)?"
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
/// Not noexec: the box lives there. The card's write windows (`field::window`) remount with
/// the same flags.
pub fn mount_flags(read_only: bool) -> MountFlags {
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOATIME;
    if read_only {
        flags | MountFlags::RDONLY
    } else {
        flags
    }
}

/// The boot partition's own init.toml may change `[boot] read_only`, which is only known once
/// it is mounted: remount it to match. Returns how it is mounted now.
pub fn apply_read_only(
    sys: &mut dyn Sys,
    mounted_read_only: bool,
    wanted: &Boot,
    target: &Path,
) -> bool {
    if mounted_read_only == wanted.read_only {
        return mounted_read_only;
    }
    let mode = if wanted.read_only {
        "read-only"
    } else {
        "read-write"
    };
    match sys.remount(target, mount_flags(wanted.read_only)) {
        Ok(()) => {
            log::info!(
                "boot partition remounted {mode} ([boot] read_only = {})",
                wanted.read_only
            );
            wanted.read_only
        }
        Err(e) => {
            log::error!("cannot remount the boot partition {mode}: {e}; it stays as it was");
            mounted_read_only
        }
    }
}

/// Waits until the device `spec` names answers, or `timeout` passes (then logs what was
/// seen, and which devices did not answer). Between looks it sleeps until a read answers or
/// the kernel announces a device (uevent), not on a fixed period; each uevent goes to
/// `on_uevent` first (it may load the driver of the disk being waited for). Each device is
/// read by a probe thread of its own: a device that does not answer holds up that thread,
/// never the wait beyond its timeout, nor the other devices.
pub fn wait_for(
    sys: &mut dyn Sys,
    events: &Events,
    spec: &DeviceSpec,
    timeout: Duration,
    root: &Path,
    probes: &DeviceProbes,
    on_uevent: OnUevent,
) -> Option<Candidate> {
    let deadline = crate::events::deadline_after(Instant::now(), timeout);
    let mut search = Search::new(spec, root, probes);
    let found = search::run(sys, events, &mut search, deadline, on_uevent);
    if found.is_none() {
        search.report_not_found(timeout);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::Recorder;

    /// How many bytes of `path` are in the page cache, as util-linux's `fincore` (mincore(2))
    /// counts them: looking does not read the file, as a read would.
    fn resident(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux) is needed for this test");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// `prefetch` starts reading the file into the page cache: after it, a read needs no
    /// disk. (On a file system that keeps everything in memory, such as tmpfs, there is
    /// nothing to show: the test needs the temp dir on a disk, which it says.)
    #[test]
    fn prefetch_reads_the_file_into_the_page_cache_and_changes_nothing() {
        use rustix::fs::{fadvise, Advice};
        let dir = std::env::temp_dir().join(format!("boxinit-prefetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("box");
        let len = 256 * 1024;
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        file.sync_all().unwrap();
        // Out of the cache first: clean pages go at DONTNEED.
        fadvise(&file, 0, None, Advice::DontNeed).unwrap();
        assert_eq!(
            resident(&path),
            0,
            "{} stays in the page cache after POSIX_FADV_DONTNEED (a tmpfs?): this test needs \
             a temp dir on a disk",
            path.display()
        );
        let before = std::fs::metadata(&path).unwrap();
        prefetch(&path);
        let deadline = Instant::now() + Duration::from_secs(5);
        while resident(&path) < len as u64 {
            assert!(
                Instant::now() < deadline,
                "not in the page cache 5 s after prefetch"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // only read: the same bytes, size and time
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
        // what is not a file to read is left alone, without a panic
        prefetch(&dir.join("missing"));
        prefetch(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_device_that_never_answers_does_not_hold_the_wait_past_its_timeout() {
        let root = std::env::temp_dir().join(format!("boxinit-hung-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sys/class/block/vdb")).unwrap();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        let fifo = root.join("dev/vdb");
        crate::storage::probe::make_hung_device(&fifo);
        let events = Events::open().unwrap();
        let spec: DeviceSpec = "LABEL=BOOT".parse().unwrap();
        let t0 = Instant::now();
        let found = wait_for(
            &mut Recorder::new(),
            &events,
            &spec,
            Duration::from_millis(300),
            &root,
            &crate::storage::probe::for_devices(&root),
            &mut |_, _| {},
        );
        assert_eq!(found, None);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        crate::storage::probe::release_hung_device(&fifo);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_io_error_on_mount_suggests_fsck_not_modules() {
        let io = std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert!(mount_failure_advice(&io).contains("fsck.vfat"));
        let inval = std::io::Error::from_raw_os_error(rustix::io::Errno::INVAL.raw_os_error());
        assert!(mount_failure_advice(&inval).contains("modules"));
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
