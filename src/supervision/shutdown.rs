//! Orderly shutdown: TERM each program's process group, wait the grace period, TERM then KILL
//! everything left, reap, sync, unmount (remount read-only where unmount fails, naming the
//! processes that hold it), and finally `reboot(2)`. Every step says on the console how long
//! it took and what it had to kill. Deciding *when* to shut down
//! is `event_loop`'s job; ending the machine is only done from `main` through [`finish`].

use std::path::Path;
use std::time::{Duration, Instant};

use crate::events::{self, Events};
use crate::mounts;
use crate::sys::{KillTarget, Reboot, Sys};

const SIGTERM: i32 = nix::sys::signal::Signal::SIGTERM as i32;
const SIGKILL: i32 = nix::sys::signal::Signal::SIGKILL as i32;

/// After `kill(-1, SIGTERM)`, how long the stragglers get before SIGKILL.
const TERM_ALL_GRACE: Duration = Duration::from_secs(1);
/// After SIGKILL, how long to wait for the kernel to hand back the bodies.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// How long sync and unmount may take before a watchdog stops being petted during shutdown:
/// a slow SD card with much dirty data takes seconds; one that never answers, for ever.
const SYNC_AND_UNMOUNT_LIMIT: Duration = Duration::from_secs(60);

/// How long a shutdown with this grace period may take at most, waits included: after that
/// the watchdog (if any) is no longer petted and resets a machine whose shutdown hangs.
pub fn time_limit(grace: Duration) -> Duration {
    grace
        .saturating_add(TERM_ALL_GRACE)
        .saturating_add(KILL_WAIT)
        .saturating_add(SYNC_AND_UNMOUNT_LIMIT)
}

/// Stops every process and unmounts what holds data. Ends with everything synced; the caller
/// then calls [`finish`].
///
/// `events` wakes the waits on SIGCHLD; without it (rescue before the signalfd exists) they
/// look every 50 ms.
pub fn stop_everything(
    sys: &mut dyn Sys,
    events: Option<&Events>,
    groups: &[(String, i32)],
    grace: Duration,
    root: &Path,
) {
    let start = Instant::now();
    stop_processes(sys, events, groups, grace, root);
    sync_and_unmount(sys, root);
    log::info!("shutdown: done in {}", ms(start.elapsed()));
}

/// The first part of [`stop_everything`]: each program's group asked to stop (SIGTERM, the
/// grace period), then every other process (SIGTERM, then SIGKILL). Returns what happened,
/// a line per step, for the shutdown report; the card is still mounted, for it.
pub fn stop_processes(
    sys: &mut dyn Sys,
    events: Option<&Events>,
    groups: &[(String, i32)],
    grace: Duration,
    root: &Path,
) -> Vec<String> {
    let start = Instant::now();
    let mut said = Vec::new();
    if !groups.is_empty() {
        for (_, pgid) in groups {
            // ESRCH: the group is already gone, which is what we want.
            let _ = sys.kill(KillTarget::Group(*pgid), SIGTERM);
        }
        wait_until(events, grace, || {
            groups.iter().all(|(_, g)| !group_alive(*g))
        });
        for (name, pgid) in groups {
            match group_alive(*pgid) {
                false => {
                    log::info!("shutdown: {name} stopped after {}", ms(start.elapsed()));
                    said.push(format!("{name} stopped after SIGTERM"));
                }
                true => {
                    log::warn!(
                        "shutdown: {name} still running {} after SIGTERM ([shutdown] grace)",
                        ms(start.elapsed())
                    );
                    said.push(format!(
                        "{name} still running after SIGTERM and the grace period"
                    ));
                }
            }
        }
    }
    if events::has_children() || any_process_left(root) {
        let step = Instant::now();
        let _ = sys.kill(KillTarget::All, SIGTERM);
        let done = wait_until(events, TERM_ALL_GRACE, || !any_process_left(root));
        if !done {
            let left = processes_left(root);
            log::warn!(
                "shutdown: killing {} process(es) that ignored SIGTERM: {}",
                left.len(),
                left.join(", ")
            );
            said.push(format!("killed (SIGKILL): {}", left.join(", ")));
            let _ = sys.kill(KillTarget::All, SIGKILL);
            wait_until(events, KILL_WAIT, || !any_process_left(root));
        }
        log::info!(
            "shutdown: other processes stopped in {}",
            ms(step.elapsed())
        );
    }
    said.push(format!("every process stopped in {}", ms(start.elapsed())));
    said
}

/// Sync, then unmount what holds data (read-only where it stays busy), so that a card mounted
/// read-write is left clean: the end of every way down, the orderly one, rescue and
/// `reboot -f` alike.
pub fn sync_and_unmount(sys: &mut dyn Sys, root: &Path) {
    let step = Instant::now();
    sys.sync();
    log::info!("shutdown: synced in {}", ms(step.elapsed()));
    // In a PID namespace (tests, containers) the file systems are the host's: a read-only
    // remount would change the host's superblock, so only this namespace's unmounts are done.
    unmount_all(sys, root, is_first_pid_namespace(root));
}

/// `reboot -f`, `poweroff -f`, `halt -f` (run as any pid but 1): no orderly shutdown, no
/// process is asked to stop, but the file systems are synced and unmounted (or remounted
/// read-only where busy) before `reboot(2)`. Returns only when `reboot(2)` failed.
pub fn force(sys: &mut dyn Sys, how: Reboot, root: &Path) -> std::io::Error {
    sync_and_unmount(sys, root);
    match sys.reboot(how) {
        Ok(()) => std::io::Error::other("reboot(2) returned"),
        Err(e) => e,
    }
}

/// Unmounts what holds data, innermost first; remounts read-only what cannot be unmounted.
pub fn unmount_all(sys: &mut dyn Sys, root: &Path, remount_read_only: bool) {
    let text = std::fs::read_to_string(root.join("proc/mounts")).unwrap_or_default();
    for entry in mounts::unmount_order(&mounts::parse_mounts(&text)) {
        let target = Path::new(&entry.target);
        let step = Instant::now();
        match sys.unmount(target) {
            Ok(()) => log::info!(
                "shutdown: unmounted {} in {}",
                entry.target,
                ms(step.elapsed())
            ),
            Err(e) => {
                let held = match holders(root, target).as_slice() {
                    [] => String::new(),
                    users => format!(", held by {}", users.join(", ")),
                };
                if !remount_read_only {
                    log::warn!(
                        "shutdown: cannot unmount {} ({e}{held}); left as it is (a PID namespace shares it with the host)",
                        entry.target
                    );
                    continue;
                }
                match sys.remount(target, crate::sys::MountFlags::RDONLY) {
                    Ok(()) => log::warn!(
                        "shutdown: cannot unmount {} ({e}{held}); remounted it read-only",
                        entry.target
                    ),
                    Err(e2) => log::error!(
                        "shutdown: cannot unmount {} ({e}{held}) nor remount it read-only ({e2})",
                        entry.target
                    ),
                }
            }
        }
    }
    sys.sync();
}

/// The last call: `reboot(2)`. PID 1 must not return from here, so when the kernel refuses,
/// it says so and sleeps for ever.
pub fn finish(sys: &mut dyn Sys, how: Reboot) -> ! {
    log::info!(
        "{}",
        match how {
            Reboot::PowerOff => "powering off",
            Reboot::Halt => "halting",
            _ => "rebooting",
        }
    );
    if let Err(e) = sys.reboot(how) {
        log::error!("reboot({how:?}) failed: {e}; the machine stays up with nothing running");
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Polls `done` while reaping, until it holds or `limit` passes. Returns whether it held.
fn wait_until(events: Option<&Events>, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = events::deadline_after(Instant::now(), limit);
    loop {
        while events::reap_one().is_some() {}
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        // SIGCHLD wakes us early; the short cap catches processes that are not our children.
        let nap = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(50));
        match events {
            Some(events) => {
                let _ = events.wait(Some(nap));
            }
            None => std::thread::sleep(nap),
        }
    }
}

fn group_alive(pgid: i32) -> bool {
    // kill(-pgid, 0) succeeds while any member of the group exists (zombies included, which
    // wait_until reaps before asking).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(-pgid), None).is_ok()
}

/// Processes other than PID 1 and kernel threads, as "pid (name)".
fn processes_left(root: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(root.join("proc")) else {
        return Vec::new();
    };
    let mut left = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == 1 {
            continue;
        }
        // Kernel threads have an empty cmdline; user processes (even zombies' parents) do not.
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.is_empty() {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        left.push(format!("{pid} ({})", comm.trim()));
    }
    left
}

/// Whether this PID 1 is the machine's, not a PID namespace's (whose reboot(2) ends only it).
pub fn is_first_pid_namespace(root: &Path) -> bool {
    // The first PID namespace has the kernel threads; kthreadd is its PID 2.
    std::fs::read_to_string(root.join("proc/2/comm")).is_ok_and(|c| c.trim() == "kthreadd")
}

/// Processes that use something under the mount point `target` (cwd, root, program, an open
/// file or a mapped one), as "pid (name)": who kept an unmount busy.
fn holders(root: &Path, target: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(root.join("proc")) else {
        return Vec::new();
    };
    let under = |link: &Path| link.starts_with(target);
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let proc = entry.path();
        let links = ["cwd", "root", "exe"]
            .iter()
            .filter_map(|l| std::fs::read_link(proc.join(l)).ok());
        let fds = std::fs::read_dir(proc.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok());
        // Kernel threads (empty cmdline) share PID 1's cwd and root (they are all cloned with
        // CLONE_FS from the first task): they hold nothing.
        let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
        if cmdline.is_empty() && pid != 1 {
            continue;
        }
        let maps = std::fs::read_to_string(proc.join("maps")).unwrap_or_default();
        let mapped = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .any(|p| under(Path::new(p)));
        let uses = mapped || links.chain(fds).any(|l| under(&l));
        // "/" holds everything: only the processes using it directly would be noise.
        if uses && target != Path::new("/") {
            let comm = std::fs::read_to_string(proc.join("comm")).unwrap_or_default();
            found.push(format!("{pid} ({})", comm.trim()));
        }
    }
    found.sort();
    found
}

fn any_process_left(root: &Path) -> bool {
    !processes_left(root).is_empty()
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::Recorder;

    #[test]
    fn unmount_all_remounts_read_only_what_is_busy() {
        let root = std::env::temp_dir().join(format!("boxinit-shutdown-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/mounts"),
            "proc /proc proc rw 0 0\n/dev/vda1 /boot vfat rw 0 0\n/dev/vdb1 /data vfat rw 0 0\n",
        )
        .unwrap();
        let mut rec = Recorder::new();
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::Unmount { target } if target == "/boot"),
            16,
        );
        unmount_all(&mut rec, &root, true);
        assert_eq!(
            rec.transcript(),
            "umount(/data)\numount(/boot)\nremount(/boot, MountFlags(RDONLY))\nsync()\n"
        );
        // In a PID namespace: no read-only remount of the host's file systems.
        let mut rec = Recorder::new();
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::Unmount { target } if target == "/boot"),
            16,
        );
        unmount_all(&mut rec, &root, false);
        assert_eq!(rec.transcript(), "umount(/data)\numount(/boot)\nsync()\n");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn reboot_f_unmounts_before_rebooting() {
        let root = std::env::temp_dir().join(format!("boxinit-force-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/mounts"),
            "proc /proc proc rw 0 0\n/dev/vda1 /boot vfat rw 0 0\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("proc/2")).unwrap();
        std::fs::write(root.join("proc/2/comm"), "kthreadd\n").unwrap();
        let mut rec = Recorder::new();
        // The box that ran `reboot -f` still runs from /boot: read-only, then reboot.
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::Unmount { target } if target == "/boot"),
            16,
        );
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::Reboot { .. }),
            1,
        );
        let e = force(&mut rec, Reboot::Restart, &root);
        assert_eq!(e.raw_os_error(), Some(1));
        assert_eq!(
            rec.transcript(),
            "sync()\numount(/boot)\nremount(/boot, MountFlags(RDONLY))\nsync()\nreboot(Restart)\n"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn holders_of_a_mount() {
        let root = std::env::temp_dir().join(format!("boxinit-holders-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (pid, comm, cwd, fd) in [
            ("1", "init", "/", "/dev/console"),
            ("2", "kthreadd", "/data", "/dev/null"),
            ("50", "box", "/data/work", "/dev/null"),
            ("51", "logger", "/", "/data/log.txt"),
            ("52", "other", "/database", "/dev/null"),
        ] {
            let dir = root.join("proc").join(pid);
            std::fs::create_dir_all(dir.join("fd")).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            // A kernel thread has an empty cmdline (and PID 1's cwd, which it shares).
            let cmdline = if comm == "kthreadd" { "" } else { "x\0" };
            std::fs::write(dir.join("cmdline"), cmdline).unwrap();
            std::os::unix::fs::symlink(cwd, dir.join("cwd")).unwrap();
            std::os::unix::fs::symlink(fd, dir.join("fd/3")).unwrap();
        }
        assert_eq!(
            holders(&root, Path::new("/data")),
            ["50 (box)", "51 (logger)"]
        );
        assert!(holders(&root, Path::new("/boot")).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn kernel_threads_are_not_processes_left() {
        let root = std::env::temp_dir().join(format!("boxinit-procs-{}", std::process::id()));
        for (pid, cmdline, comm) in [
            ("1", "init", "init"),
            ("2", "", "kthreadd"),
            ("77", "box\0", "box"),
        ] {
            let dir = root.join("proc").join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cmdline"), cmdline).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        }
        assert_eq!(processes_left(&root), ["77 (box)"]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
