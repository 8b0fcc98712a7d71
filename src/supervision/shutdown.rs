//! Orderly shutdown: TERM each program's process group, wait the grace period, TERM then KILL
//! everything left, reap, sync, unmount (remount read-only where unmount fails, naming the
//! processes that hold it), and finally `reboot(2)`. Every step says on the console how long
//! it took and what it had to kill. Deciding *when* to shut down
//! is `event_loop`'s job; ending the machine is only done from `main` through [`finish`].

use std::os::unix::ffi::OsStrExt;
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
    // Twice: the box and services, then the network and time programs.
    grace
        .saturating_add(grace)
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
    network: &[(String, i32)],
    grace: Duration,
    root: &Path,
) {
    let start = Instant::now();
    stop_processes(sys, events, groups, network, grace, root);
    sync_and_unmount(sys, root);
    log::info!("shutdown: done in {}", ms(start.elapsed()));
}

/// The first part of [`stop_everything`]: the programs in order ([`stop_in_order`]), then
/// every other process (SIGTERM, then SIGKILL; SIGKILL to all at once when a program outlived
/// its grace). Returns what happened, a line per step, for the shutdown report; the card is
/// still mounted, for it.
pub fn stop_processes(
    sys: &mut dyn Sys,
    events: Option<&Events>,
    groups: &[(String, i32)],
    network: &[(String, i32)],
    grace: Duration,
    root: &Path,
) -> Vec<String> {
    let start = Instant::now();
    let mut said = Vec::new();
    let stubborn = stop_in_order(sys, events, groups, network, grace, start);
    let names: Vec<&str> = groups
        .iter()
        .chain(network)
        .map(|(n, _)| n.as_str())
        .collect();
    if !names.is_empty() {
        said.push(match stubborn {
            false => format!("{} stopped after SIGTERM", names.join(", ")),
            true => format!(
                "{}: one still running after SIGTERM and the grace period",
                names.join(", ")
            ),
        });
    }
    // A group that outlived its grace ignored SIGTERM: no second round for it and whatever
    // it forks (a fork bomb would outrun every walk of /proc), SIGKILL to all at once.
    if stubborn {
        kill_all(sys, events, root);
        said.push("every other process killed (SIGKILL)".to_string());
    } else if events::has_children() || any_process_left(root) {
        let step = Instant::now();
        let _ = sys.kill(KillTarget::All, SIGTERM);
        // Every process descends from PID 1 (or from kthreadd): no child, no process left.
        // waitid is one syscall, where a walk of /proc costs one read per process.
        if !wait_until(events, TERM_ALL_GRACE, || !events::has_children()) {
            kill_all(sys, events, root);
            said.push("processes that ignored SIGTERM killed (SIGKILL)".to_string());
        }
        log::info!(
            "shutdown: other processes stopped in {}",
            ms(step.elapsed())
        );
    }
    said.push(format!("every process stopped in {}", ms(start.elapsed())));
    said
}

/// The box and the services first, each group SIGTERMed and given the grace; then the network
/// and time programs (`network`, in start order), stopped in reverse start order with a grace
/// of their own: a box that uploads its last state on SIGTERM keeps its address and route
/// (the DHCP client releases the lease when it stops). Returns whether a group outlived its
/// grace.
fn stop_in_order(
    sys: &mut dyn Sys,
    events: Option<&Events>,
    groups: &[(String, i32)],
    network: &[(String, i32)],
    grace: Duration,
    start: Instant,
) -> bool {
    let first = stop_groups(sys, events, groups, grace, start);
    let last: Vec<(String, i32)> = network.iter().rev().cloned().collect();
    let then = stop_groups(sys, events, &last, grace, start);
    first || then
}

/// SIGTERM to each group in order, then up to `grace` for all of them to end; one line each.
/// Returns whether one is still there.
fn stop_groups(
    sys: &mut dyn Sys,
    events: Option<&Events>,
    groups: &[(String, i32)],
    grace: Duration,
    start: Instant,
) -> bool {
    if groups.is_empty() {
        return false;
    }
    for (_, pgid) in groups {
        // ESRCH: the group is already gone, which is what we want.
        let _ = sys.kill(KillTarget::Group(*pgid), SIGTERM);
    }
    if groups.iter().any(|(_, g)| group_alive(*g)) {
        wait_until(events, grace, || {
            groups.iter().all(|(_, g)| !group_alive(*g))
        });
    }
    for (name, pgid) in groups {
        match group_alive(*pgid) {
            false => log::info!("shutdown: {name} stopped after {}", ms(start.elapsed())),
            true => log::warn!(
                "shutdown: {name} still running {} after SIGTERM ([shutdown] grace)",
                ms(start.elapsed())
            ),
        }
    }
    groups.iter().any(|(_, g)| group_alive(*g))
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
    let mounts = match mounts::read_mounts(root) {
        Ok(mounts) => mounts,
        Err(e) => {
            log::error!("shutdown: {e}; nothing is unmounted, only synced");
            Vec::new()
        }
    };
    for entry in mounts::unmount_order(&mounts) {
        let target = entry.target.as_path();
        let step = Instant::now();
        match sys.unmount(target) {
            Ok(()) => log::info!(
                "shutdown: unmounted {} in {}",
                target.display(),
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
                        target.display()
                    );
                    continue;
                }
                match sys.remount(target, crate::sys::MountFlags::RDONLY) {
                    Ok(()) => log::warn!(
                        "shutdown: cannot unmount {} ({e}{held}); remounted it read-only",
                        target.display()
                    ),
                    Err(e2) => log::error!(
                        "shutdown: cannot unmount {} ({e}{held}) nor remount it read-only ({e2})",
                        target.display()
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
            Reboot::Tryboot => "rebooting with tryboot (RESTART2 \"0 tryboot\")",
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

/// At most this many children are reaped between two looks at the clock: a fork bomb's
/// members die as fast as PID 1 reaps them, and reaping "until none is left" never ended
/// (scenario 135: no line for 90 s after the power-off was asked for).
const REAP_BATCH: usize = 256;

/// Polls `done` while reaping, until it holds or `limit` passes. Returns whether it held.
fn wait_until(events: Option<&Events>, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = events::deadline_after(Instant::now(), limit);
    loop {
        let mut reaped = 0;
        while reaped < REAP_BATCH && events::reap_one().is_some() {
            reaped += 1;
        }
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if reaped == REAP_BATCH {
            continue;
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

/// At most this many processes are named in the SIGKILL line; the rest are counted.
const NAMED_AT_MOST: usize = 20;

/// `kill(-1, SIGKILL)` first, then the names of what it hit: killed processes can no longer
/// fork, and they stay listed in /proc (dying or as zombies) until they are reaped after.
fn kill_all(sys: &mut dyn Sys, events: Option<&Events>, root: &Path) {
    let step = Instant::now();
    let _ = sys.kill(KillTarget::All, SIGKILL);
    let killed = processes_left(root);
    if !killed.is_empty() {
        log::warn!(
            "shutdown: killed {} process(es) still running after SIGTERM: {}",
            killed.len(),
            name_some(&killed, NAMED_AT_MOST)
        );
    }
    if !wait_until(events, KILL_WAIT, || !events::has_children()) {
        log::warn!(
            "shutdown: processes still there {} after SIGKILL (stuck in the kernel: a hung disk or driver?): {}",
            ms(step.elapsed()),
            name_some(&processes_left(root), NAMED_AT_MOST)
        );
    }
}

/// `names` joined, the first `at_most` of them and a count of the rest.
fn name_some(names: &[String], at_most: usize) -> String {
    let shown = names.get(..at_most).unwrap_or(names).join(", ");
    match names.len().saturating_sub(at_most) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// What `/proc/PID/stat` says about a process that shutdown needs.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    comm: String,
    ppid: u32,
    flags: u64,
}

/// `PF_KTHREAD` in the flags of `/proc/PID/stat` (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

impl Stat {
    /// Parses `pid (comm) state ppid pgrp session tty tpgid flags ...`; the name may hold
    /// spaces and parentheses, so the fields are counted from the last `)`.
    fn parse(bytes: &[u8]) -> Option<Stat> {
        let open = bytes.iter().position(|&b| b == b'(')?;
        let close = bytes.iter().rposition(|&b| b == b')')?;
        let comm = String::from_utf8_lossy(bytes.get(open + 1..close)?).into_owned();
        let rest = std::str::from_utf8(bytes.get(close + 1..)?).ok()?;
        let mut fields = rest.split_ascii_whitespace();
        let ppid = fields.nth(1)?.parse().ok()?;
        let flags = fields.nth(4)?.parse().ok()?;
        Some(Stat { comm, ppid, flags })
    }

    /// A kernel thread: `PF_KTHREAD`, or kthreadd's child. Not an empty cmdline, which a
    /// process can give itself (and a zombie has).
    fn is_kernel_thread(&self, pid: u32) -> bool {
        self.flags & PF_KTHREAD != 0 || self.ppid == 2 || pid == 2
    }
}

/// The pids under `root/proc` with their `stat`, those that vanish meanwhile left out.
fn each_process(root: &Path) -> Vec<(u32, std::path::PathBuf, Stat)> {
    let Ok(dir) = std::fs::read_dir(root.join("proc")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = Stat::parse(&std::fs::read(entry.path().join("stat")).ok()?)?;
            Some((pid, entry.path(), stat))
        })
        .collect()
}

/// Processes other than PID 1 and kernel threads, as "pid (name)", zombies included.
fn processes_left(root: &Path) -> Vec<String> {
    let mut left: Vec<(u32, String)> = each_process(root)
        .into_iter()
        .filter(|(pid, _, stat)| *pid != 1 && !stat.is_kernel_thread(*pid))
        .map(|(pid, _, stat)| (pid, format!("{pid} ({})", stat.comm)))
        .collect();
    left.sort_unstable();
    left.into_iter().map(|(_, name)| name).collect()
}

/// Whether this PID 1 is the machine's, not a PID namespace's (whose reboot(2) ends only it).
pub fn is_first_pid_namespace(root: &Path) -> bool {
    // The first PID namespace has the kernel threads; kthreadd is its PID 2.
    std::fs::read_to_string(root.join("proc/2/comm")).is_ok_and(|c| c.trim() == "kthreadd")
}

/// Processes that use something under the mount point `target` (cwd, root, program, an open
/// file or a mapped one), as "pid (name)": who kept an unmount busy.
fn holders(root: &Path, target: &Path) -> Vec<String> {
    let under = |link: &Path| link.starts_with(target);
    let mut found = Vec::new();
    for (pid, proc, stat) in each_process(root) {
        // Kernel threads share PID 1's cwd and root (they are all cloned with CLONE_FS from
        // the first task): they hold nothing.
        if pid != 1 && stat.is_kernel_thread(pid) {
            continue;
        }
        let links = ["cwd", "root", "exe"]
            .iter()
            .filter_map(|l| std::fs::read_link(proc.join(l)).ok());
        let fds = std::fs::read_dir(proc.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok());
        let maps = std::fs::read(proc.join("maps")).unwrap_or_default();
        let mapped = maps
            .split(|&b| b == b'\n')
            .filter_map(|l| {
                l.split(|b| b.is_ascii_whitespace())
                    .filter(|f| !f.is_empty())
                    .nth(5)
            })
            .any(|p| under(Path::new(std::ffi::OsStr::from_bytes(p))));
        let uses = mapped || links.chain(fds).any(|l| under(&l));
        // "/" holds everything: only the processes using it directly would be noise.
        if uses && target != Path::new("/") {
            found.push((pid, format!("{pid} ({})", stat.comm)));
        }
    }
    found.sort_unstable();
    found.into_iter().map(|(_, name)| name).collect()
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

    /// A `/proc/PID/stat` line: name, parent and flags where shutdown reads them.
    fn stat(pid: &str, comm: &str, ppid: u32, flags: u64) -> String {
        format!("{pid} ({comm}) S {ppid} 1 1 0 -1 {flags} 0 0 0 0 0 0 0 0 20 0 1 0\n")
    }

    #[test]
    fn holders_of_a_mount() {
        let root = std::env::temp_dir().join(format!("boxinit-holders-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (pid, comm, cwd, fd, ppid, flags) in [
            ("1", "init", "/", "/dev/console", 0, 0x400100),
            ("2", "kthreadd", "/data", "/dev/null", 0, 0x208040),
            ("50", "box", "/data/work", "/dev/null", 1, 0x400100),
            ("51", "logger", "/", "/data/log.txt", 1, 0x400000),
            ("52", "other", "/database", "/dev/null", 1, 0x400000),
            // Emptied its cmdline: still a process holding /data.
            ("9", "hidden", "/data", "/dev/null", 1, 0x400000),
        ] {
            let dir = root.join("proc").join(pid);
            std::fs::create_dir_all(dir.join("fd")).unwrap();
            std::fs::write(dir.join("stat"), stat(pid, comm, ppid, flags)).unwrap();
            std::fs::write(dir.join("cmdline"), "").unwrap();
            std::os::unix::fs::symlink(cwd, dir.join("cwd")).unwrap();
            std::os::unix::fs::symlink(fd, dir.join("fd/3")).unwrap();
        }
        assert_eq!(
            holders(&root, Path::new("/data")),
            ["9 (hidden)", "50 (box)", "51 (logger)"]
        );
        assert!(holders(&root, Path::new("/boot")).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn kernel_threads_are_told_by_their_flags_not_their_cmdline() {
        let root = std::env::temp_dir().join(format!("boxinit-procs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (pid, comm, ppid, flags) in [
            ("1", "init", 0, 0x400100),
            ("2", "kthreadd", 0, 0x208040),
            ("15", "kworker/0:1", 2, 0x4208060),
            // PF_KTHREAD alone (a kernel thread whose parent is not kthreadd).
            ("16", "irq/9-acpi", 1, 0x208040),
            // A process that emptied its cmdline, and a zombie (whose cmdline is empty too).
            ("77", "box", 1, 0x400100),
            ("78", "gone) (x", 1, 0x40042c),
        ] {
            let dir = root.join("proc").join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cmdline"), "").unwrap();
            std::fs::write(dir.join("stat"), stat(pid, comm, ppid, flags)).unwrap();
        }
        assert_eq!(processes_left(&root), ["77 (box)", "78 (gone) (x)"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_network_stops_after_the_box_in_reverse_start_order() {
        // Groups that no longer exist (past any pid_max): signalled, nothing to wait for.
        let g = |name: &str, pgid: i32| (name.to_string(), pgid);
        let groups = [g("box", 2_000_000_001), g("logger", 2_000_000_002)];
        let network = [
            g("dhcp-eth0", 2_000_000_003),
            g("time", 2_000_000_004),
            g("wifi-wlan0", 2_000_000_005),
        ];
        let mut rec = Recorder::new();
        let stubborn = stop_in_order(
            &mut rec,
            None,
            &groups,
            &network,
            Duration::ZERO,
            Instant::now(),
        );
        assert!(!stubborn);
        let signalled: Vec<String> = rec
            .transcript()
            .lines()
            .map(|l| l.replace("kill(Group(", "").replace("), 15)", ""))
            .collect();
        assert_eq!(
            signalled,
            [
                "2000000001",
                "2000000002",
                "2000000005",
                "2000000004",
                "2000000003"
            ]
        );
    }

    #[test]
    fn stat_lines() {
        let line = b"4242 (a b) c) R 7 4242 4242 0 -1 4194560 90 0 0 0 0 0 0 0 20 0 1 0 99\n";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                comm: "a b) c".into(),
                ppid: 7,
                flags: 4194560
            })
        );
        for bad in [
            &b""[..],
            b"12 (x",
            b"12 (x) R",
            b"12 (x) R 1 1 1 0 -1",
            b"12 (x) R y",
        ] {
            assert_eq!(Stat::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn many_killed_are_counted_past_the_first_named() {
        let names: Vec<String> = (1..=25).map(|n| format!("{n} (bomb)")).collect();
        let line = name_some(&names, 20);
        assert!(line.starts_with("1 (bomb), 2 (bomb)"), "{line}");
        assert!(line.ends_with("20 (bomb) and 5 more"), "{line}");
        assert_eq!(name_some(&names[..2], 20), "1 (bomb), 2 (bomb)");
    }
}
