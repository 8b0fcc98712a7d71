//! The benchmark's floor: a `/init` that makes only the system calls boxinit's job needs, in
//! order, and nothing else — no config, no scan, no logging framework, no supervision. It is
//! what `cargo xtask bench` measures boxinit against; it is not meant to be used.
//!
//! The job: mount proc, sysfs, devtmpfs and devpts; load each module of `/etc/floor.modules`
//! (paths in load order) with `finit_module(2)`; poll every millisecond until `/dev/vda1`
//! exists; mount it (vfat, read-only) on /boot; exec `/boot/box` with the words of
//! `/etc/floor.args`. It prints `floor: started at X.XXXs (CLOCK_BOOTTIME)` first, the
//! marker the benchmark reads, as boxinit does, and `floor: exec at X.XXXs` last.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{mount, MountFlags};
use rustix::time::{clock_gettime, ClockId};

/// The device the benchmark's disk shows up as (the first virtio disk's first partition).
const BOOT_DEVICE: &str = "/dev/vda1";
/// How long to wait for it before giving up.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    let started = clock_gettime(ClockId::Boottime);
    if !rustix::process::getpid().is_init() {
        // The initramfs links /sbin/modprobe etc. to /init; as any other pid there is no job.
        eprintln!("floor: runs as PID 1 only");
        std::process::exit(2);
    }
    if let Err(e) = run(started) {
        // Exiting makes the kernel panic, which ends the QEMU boot at once: the benchmark
        // then reports the missing box marker with this line.
        println!("floor: {e}");
        std::process::exit(1);
    }
}

fn run(started: rustix::time::Timespec) -> Result<(), String> {
    let nodev = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount_fs("proc", "/proc", "proc", nodev, c"")?;
    mount_fs("sysfs", "/sys", "sysfs", nodev, c"")?;
    mount_fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MountFlags::NOSUID,
        c"mode=0755",
    )?;
    let _ = rustix::fs::mkdir("/dev/pts", Mode::from_raw_mode(0o755));
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        c"gid=5,mode=620,ptmxmode=666",
    )?;
    println!(
        "floor: started at {}.{:03}s (CLOCK_BOOTTIME)",
        started.tv_sec,
        started.tv_nsec / 1_000_000
    );

    let modules = read("/etc/floor.modules")?;
    for path in modules.lines().filter(|l| !l.is_empty()) {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        match rustix::system::finit_module(&fd, c"", 0) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(format!("cannot load {path}: {e}")),
        }
    }

    let deadline = Instant::now() + BOOT_TIMEOUT;
    while rustix::fs::access(BOOT_DEVICE, rustix::fs::Access::EXISTS).is_err() {
        if Instant::now() >= deadline {
            return Err(format!("{BOOT_DEVICE} did not show up"));
        }
        sleep(Duration::from_millis(1));
    }
    mount_fs(
        BOOT_DEVICE,
        "/boot",
        "vfat",
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOATIME,
        c"",
    )?;

    let args = read("/etc/floor.args")?;
    let now = clock_gettime(ClockId::Boottime);
    println!(
        "floor: exec at {}.{:03}s (CLOCK_BOOTTIME)",
        now.tv_sec,
        now.tv_nsec / 1_000_000
    );
    let error = Command::new("/boot/box")
        .args(args.lines().filter(|l| !l.is_empty()))
        .current_dir("/boot")
        .exec();
    Err(format!("cannot run /boot/box: {error}"))
}

fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: &std::ffi::CStr,
) -> Result<(), String> {
    mount(source, target, fstype, flags, data)
        .map_err(|e| format!("cannot mount {fstype} on {target}: {e}"))
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}
