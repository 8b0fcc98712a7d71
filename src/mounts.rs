//! Early filesystems: proc, sysfs, /dev (devtmpfs or a tmpfs with the essential nodes),
//! devpts, tmpfs on /run, /tmp and /dev/shm, and the /dev links. Also the pure reading of
//! `/proc/mounts` that shutdown uses to choose the unmount order. The boot partition's mount is
//! in `bootpart`.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::sys::{MountFlags, NodeKind, Sys};

/// One early mount, as data.
struct Early {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MountFlags,
    data: &'static str,
    /// Boot cannot go on without it (proc, sysfs, /dev).
    essential: bool,
}

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);
const NOSUID_NODEV: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV);

/// In order: each target's parent is mounted before it.
const EARLY: &[Early] = &[
    Early {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        essential: true,
    },
    Early {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        essential: true,
    },
    // /dev is handled by mount_dev (devtmpfs or the tmpfs fallback).
    Early {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
        data: "gid=5,mode=620,ptmxmode=666",
        essential: false,
    },
    Early {
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        // config::tmpfs's default; [system] can change it once the config is read.
        data: "mode=1777,size=10%",
        essential: false,
    },
    Early {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        // config::tmpfs's default; [system] can change it once the config is read.
        data: "mode=0755,size=10%",
        essential: false,
    },
    Early {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        // config::tmpfs's default; [system] can change it once the config is read.
        data: "mode=1777,size=25%",
        essential: false,
    },
];

/// Whether `path` lies under a mount point the init covers at start (`/dev` and each
/// [`EARLY`] target): what a PID-namespace test keeps there vanishes once boxinit runs.
pub fn hidden_by_early_mounts(path: &Path) -> bool {
    std::iter::once("/dev")
        .chain(EARLY.iter().map(|e| e.target))
        .any(|target| path.starts_with(target))
}

/// Gives `/run`, `/tmp` and `/dev/shm` the sizes `[system]` asks for; they were mounted with
/// the defaults before any config was read, so only a size that differs is a remount. A
/// failed remount (less than the tmpfs holds already) keeps the default and says so.
pub fn resize_tmpfs(sys: &mut dyn Sys, system: &crate::config::System) {
    use crate::config::tmpfs::{DEFAULT_RUN_SIZE, DEFAULT_SHM_SIZE, DEFAULT_TMP_SIZE};
    for (target, size, default) in [
        ("/dev/shm", &system.shm_size, DEFAULT_SHM_SIZE),
        ("/run", &system.run_size, DEFAULT_RUN_SIZE),
        ("/tmp", &system.tmp_size, DEFAULT_TMP_SIZE),
    ] {
        if size == default {
            continue;
        }
        match sys.remount_with(Path::new(target), NOSUID_NODEV, &format!("size={size}")) {
            Ok(()) => log::info!("{target}: a tmpfs of at most {size}"),
            Err(e) => log::warn!(
                "cannot make {target} a tmpfs of {size}: {e}; it stays at {default} of the RAM"
            ),
        }
    }
}

/// Nodes a tmpfs /dev needs when the kernel has no devtmpfs: (name, major, minor, mode).
const ESSENTIAL_NODES: &[(&str, u32, u32, u32)] = &[
    ("console", 5, 1, 0o600),
    ("null", 1, 3, 0o666),
    ("zero", 1, 5, 0o666),
    ("full", 1, 7, 0o666),
    ("random", 1, 8, 0o666),
    ("urandom", 1, 9, 0o666),
    ("kmsg", 1, 11, 0o644),
    ("tty", 5, 0, 0o666),
];

/// Links every program expects in /dev: (link, target).
const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// An early mount that boot cannot do without failed.
#[derive(Debug)]
pub struct EarlyMountError {
    pub target: &'static str,
    pub fstype: &'static str,
    pub error: io::Error,
}

impl std::fmt::Display for EarlyMountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot mount {} on {}: {}",
            self.fstype, self.target, self.error
        )
    }
}

/// What `mount_early` did that the log should mention.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EarlyReport {
    /// devtmpfs was missing and /dev is a tmpfs with the essential nodes.
    pub dev_fallback: bool,
    /// Non-essential mounts or links that failed, as log lines.
    pub warnings: Vec<String>,
}

/// Mounts the kernel filesystems. Fails only when proc, sysfs or /dev cannot be had.
pub fn mount_early(sys: &mut dyn Sys) -> Result<EarlyReport, EarlyMountError> {
    let mut report = EarlyReport::default();
    let (first, rest) = EARLY.split_at(2);
    for m in first {
        mount_one(sys, m, &mut report)?;
    }
    report.dev_fallback = mount_dev(sys)?;
    for m in rest {
        mount_one(sys, m, &mut report)?;
    }
    for (link, target) in DEV_LINKS {
        match sys.symlink(Path::new(target), Path::new(link)) {
            // devtmpfs may already provide the node (/dev/ptmx): keep the kernel's.
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                report
                    .warnings
                    .push(format!("cannot link {link} -> {target}: {e}"));
            }
            _ => {}
        }
    }
    Ok(report)
}

fn mount_one(
    sys: &mut dyn Sys,
    m: &Early,
    report: &mut EarlyReport,
) -> Result<(), EarlyMountError> {
    ensure_dir(sys, m.target);
    match sys.mount(m.source, Path::new(m.target), m.fstype, m.flags, m.data) {
        Ok(()) => Ok(()),
        // Already mounted (for example by a kernel with CONFIG_DEVTMPFS_MOUNT): nothing to do.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => Ok(()),
        Err(error) if m.essential => Err(EarlyMountError {
            target: m.target,
            fstype: m.fstype,
            error,
        }),
        Err(e) => {
            report
                .warnings
                .push(format!("cannot mount {} on {}: {e}", m.fstype, m.target));
            Ok(())
        }
    }
}

/// devtmpfs, or a tmpfs with `mknod` of the essential nodes. Returns whether it fell back.
fn mount_dev(sys: &mut dyn Sys) -> Result<bool, EarlyMountError> {
    ensure_dir(sys, "/dev");
    let flags = MountFlags::NOSUID;
    match sys.mount(
        "devtmpfs",
        Path::new("/dev"),
        "devtmpfs",
        flags,
        "mode=0755",
    ) {
        Ok(()) => return Ok(false),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
            return Ok(false)
        }
        Err(_) => {}
    }
    sys.mount("tmpfs", Path::new("/dev"), "tmpfs", flags, "mode=0755")
        .map_err(|error| EarlyMountError {
            target: "/dev",
            fstype: "tmpfs",
            error,
        })?;
    for (name, major, minor, mode) in ESSENTIAL_NODES {
        let path = Path::new("/dev").join(name);
        // A node that cannot be made is reported by whoever opens it later; go on.
        let _ = sys.mknod(&path, NodeKind::Char, *mode, *major, *minor);
    }
    Ok(true)
}

fn ensure_dir(sys: &mut dyn Sys, path: &str) {
    // EEXIST is the usual case (the initramfs ships the directories); other errors show up
    // as the mount's own error right after.
    let _ = sys.mkdir(Path::new(path), 0o755);
}

/// One line of `/proc/mounts`. Source and target are bytes as the kernel gave them (a mount
/// point need not be UTF-8), the octal escapes (`\040` for a space) decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub source: OsString,
    pub target: PathBuf,
    pub fstype: String,
    pub options: String,
}

/// Reads and parses `root/proc/mounts` as bytes; the error names the file.
pub fn read_mounts(root: &Path) -> io::Result<Vec<MountEntry>> {
    let path = root.join("proc/mounts");
    std::fs::read(&path)
        .map(|bytes| parse_mounts(&bytes))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))
}

/// Parses `/proc/mounts` (octal escapes such as `\040` for a space are decoded).
pub fn parse_mounts(bytes: &[u8]) -> Vec<MountEntry> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut fields = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|f| !f.is_empty());
            let source = unescape(fields.next()?);
            let target = unescape(fields.next()?);
            let fstype = String::from_utf8_lossy(fields.next()?).into_owned();
            let options = String::from_utf8_lossy(fields.next().unwrap_or(b"")).into_owned();
            Some(MountEntry {
                source: OsString::from_vec(source),
                target: PathBuf::from(OsString::from_vec(target)),
                fstype,
                options,
            })
        })
        .collect()
}

fn unescape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Kernel API filesystems that hold no data and that the init itself keeps using until the
/// end: they are never unmounted.
const API_FILESYSTEMS: &[&str] = &[
    "rootfs",
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "securityfs",
    "debugfs",
    "tracefs",
    "cgroup",
    "cgroup2",
    "pstore",
    "bpf",
    "configfs",
    "efivarfs",
    "mqueue",
    "hugetlbfs",
    "fusectl",
    "binfmt_misc",
];

/// What shutdown unmounts, innermost first: the reverse of mount order, without `/` and the
/// kernel's API filesystems.
pub fn unmount_order(mounts: &[MountEntry]) -> Vec<MountEntry> {
    mounts
        .iter()
        .rev()
        .filter(|m| m.target != Path::new("/") && !API_FILESYSTEMS.contains(&m.fstype.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::Recorder;

    #[test]
    fn early_mounts_in_order() {
        let mut rec = Recorder::new();
        let report = mount_early(&mut rec).unwrap();
        assert!(!report.dev_fallback);
        let mounts: Vec<String> = rec
            .calls
            .iter()
            .filter_map(|c| match c {
                crate::sys::recorder::Call::Mount { target, fstype, .. } => {
                    Some(format!("{fstype} {target}"))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            mounts,
            [
                "proc /proc",
                "sysfs /sys",
                "devtmpfs /dev",
                "devpts /dev/pts",
                "tmpfs /dev/shm",
                "tmpfs /run",
                "tmpfs /tmp"
            ]
        );
        assert!(rec
            .transcript()
            .contains("symlink(/dev/fd -> /proc/self/fd)"));
    }

    #[test]
    fn paths_the_early_mounts_hide() {
        for hidden in [
            "/tmp/checkout/target",
            "/run/x",
            "/dev/shm/y",
            "/proc/1",
            "/tmp",
        ] {
            assert!(hidden_by_early_mounts(Path::new(hidden)), "{hidden}");
        }
        for kept in ["/work/boxinit/target", "/var/tmp/x", "/tmpfoo", "/"] {
            assert!(!hidden_by_early_mounts(Path::new(kept)), "{kept}");
        }
    }

    #[test]
    fn no_devtmpfs_falls_back_to_tmpfs_with_nodes() {
        let mut rec = Recorder::new();
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::Mount { fstype, .. } if fstype == "devtmpfs"),
            19,
        );
        let report = mount_early(&mut rec).unwrap();
        assert!(report.dev_fallback);
        let t = rec.transcript();
        assert!(t.contains("mount(tmpfs, /dev, tmpfs"), "{t}");
        assert!(t.contains("mknod(/dev/console, Char, 600, 5:1)"), "{t}");
        assert!(t.contains("mknod(/dev/null, Char, 666, 1:3)"), "{t}");
    }

    #[test]
    fn proc_failing_is_fatal_tmp_failing_is_a_warning() {
        let mut rec = Recorder::new();
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::Mount { target, .. } if target == "/proc"),
            1,
        );
        let err = mount_early(&mut rec).unwrap_err();
        assert_eq!(err.target, "/proc");
        assert!(
            err.to_string().starts_with("cannot mount proc on /proc: "),
            "{err}"
        );

        let mut rec = Recorder::new();
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::Mount { target, .. } if target == "/tmp"),
            12,
        );
        let report = mount_early(&mut rec).unwrap();
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(report.warnings[0].starts_with("cannot mount tmpfs on /tmp"));
    }

    #[test]
    fn already_mounted_is_fine() {
        let mut rec = Recorder::new();
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::Mount { .. }),
            16,
        );
        let report = mount_early(&mut rec).unwrap();
        assert!(report.warnings.is_empty());
    }

    #[test]
    fn unmount_order_is_reverse_and_skips_api_filesystems() {
        let text = "rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\n\
                    tmpfs /run tmpfs rw 0 0\n/dev/vda1 /boot vfat ro 0 0\n/dev/sdb1 /media/my\\040stick vfat rw 0 0\n";
        let order: Vec<PathBuf> = unmount_order(&parse_mounts(text.as_bytes()))
            .into_iter()
            .map(|m| m.target)
            .collect();
        assert_eq!(
            order,
            ["/media/my stick", "/boot", "/run"].map(PathBuf::from)
        );
    }

    #[test]
    fn mount_points_that_are_not_utf8_are_kept_as_bytes() {
        // A stick mounted by the box on a Latin-1 path: the line must not make the whole file
        // unreadable (it once did: read_to_string failed and shutdown unmounted nothing).
        let text = b"/dev/vda1 /boot vfat rw 0 0\n/dev/sda1 /media/caf\xe9\\040bar vfat rw 0 0\n";
        let order: Vec<Vec<u8>> = unmount_order(&parse_mounts(text))
            .into_iter()
            .map(|m| m.target.into_os_string().into_vec())
            .collect();
        assert_eq!(order, [b"/media/caf\xe9 bar".to_vec(), b"/boot".to_vec()]);
    }

    #[test]
    fn tmpfs_are_bounded_and_resized_only_when_asked() {
        use crate::config::tmpfs::{DEFAULT_RUN_SIZE, DEFAULT_SHM_SIZE, DEFAULT_TMP_SIZE};
        // Mounted before any config: with the defaults, whose sum leaves the RAM's rest.
        for (target, size) in [
            ("/run", DEFAULT_RUN_SIZE),
            ("/tmp", DEFAULT_TMP_SIZE),
            ("/dev/shm", DEFAULT_SHM_SIZE),
        ] {
            let early = EARLY.iter().find(|e| e.target == target).unwrap();
            assert!(
                early.data.ends_with(&format!(",size={size}")),
                "{target}: {}",
                early.data
            );
        }
        let mut rec = Recorder::new();
        resize_tmpfs(&mut rec, &crate::config::System::default());
        assert_eq!(rec.transcript(), "");
        let system = crate::config::System {
            tmp_size: "64m".into(),
            shm_size: "1%".into(),
            ..Default::default()
        };
        let mut rec = Recorder::new();
        rec.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::RemountWith { target, .. } if target == "/dev/shm"),
            16,
        );
        resize_tmpfs(&mut rec, &system);
        assert_eq!(
            rec.transcript(),
            "remount(/dev/shm, MountFlags(NODEV | NOSUID), \"size=1%\")\n\
             remount(/tmp, MountFlags(NODEV | NOSUID), \"size=64m\")\n"
        );
    }

    #[test]
    fn parse_mounts_tolerates_short_lines() {
        assert_eq!(parse_mounts(b"a b\n\n").len(), 0);
        assert_eq!(parse_mounts(b"a b c\n")[0].options, "");
        assert_eq!(unescape(b"x\\0"), b"x\\0");
    }
}
