//! The syscall seam: the trait [`Sys`], one method per system call that changes the machine,
//! and the types its methods take. Its implementations are the folder's other files:
//! `linux.rs` (the real calls, and the two ioctl/sendto calls on one fd that need `unsafe`),
//! `recorder.rs` (tests: a transcript of the calls a phase made), and `exec.rs` (starting a
//! program: fork and execve, with the child's setup in between). Only `sys/` has `unsafe`.
//!
//! Sequences of calls live in the phase modules (mounts, modules, bootpart, shutdown) so that
//! the recorder sees them; this folder holds no logic. Reading files under `/proc` and `/sys`
//! is not behind the seam: those readers take a `root: &Path` so tests give them a temp dir.

pub mod exec;
#[cfg(test)]
pub mod gate;
pub mod linux;
#[cfg(test)]
pub mod recorder;

use std::io;
use std::path::{Path, PathBuf};

pub use crate::net::link::RouteRequest;
pub use rustix::mount::MountFlags;

/// Kind of device node for `mknod(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A character device (`S_IFCHR`).
    Char,
    /// A block device (`S_IFBLK`).
    Block,
}

/// What `reboot(2)` should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reboot {
    /// `LINUX_REBOOT_CMD_RESTART`
    Restart,
    /// `LINUX_REBOOT_CMD_RESTART2` with `"0 tryboot"`: the Pi firmware boots `tryboot.txt`
    /// once, when the kernel is the Raspberry Pi fork (others restart as usual).
    Tryboot,
    /// `LINUX_REBOOT_CMD_POWER_OFF`
    PowerOff,
    /// `LINUX_REBOOT_CMD_HALT`
    Halt,
    /// `LINUX_REBOOT_CMD_CAD_OFF`: Ctrl-Alt-Del then sends SIGINT to PID 1 instead of rebooting.
    CtrlAltDelOff,
}

/// How `renameat2(2)` renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rename {
    /// `RENAME_EXCHANGE`: the two names swap their files at once (vfat since Linux 6.0).
    Exchange,
    /// `RENAME_NOREPLACE`: fails with `EEXIST` rather than replace the target.
    NoReplace,
}

/// Whom `kill(2)` signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// A process group (`-pgid`).
    Group(i32),
    /// Every process but PID 1 itself (`-1`).
    All,
}

/// The system calls the init makes to change the machine. Each method is one syscall.
pub trait Sys {
    /// [`mount(2)`](https://man7.org/linux/man-pages/man2/mount.2.html).
    fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()>;
    /// [`umount2(2)`](https://man7.org/linux/man-pages/man2/umount.2.html) without flags.
    fn unmount(&mut self, target: &Path) -> io::Result<()>;
    /// [`mount(2)`] with `MS_REMOUNT | flags`: read-only when unmount fails at shutdown, or
    /// read-write when the boot partition's own init.toml asks for it.
    fn remount(&mut self, target: &Path, flags: MountFlags) -> io::Result<()>;
    /// [`mount(2)`] with `MS_REMOUNT | flags` and file-system options: a tmpfs's `size=`.
    fn remount_with(&mut self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()>;
    /// [`mkdir(2)`](https://man7.org/linux/man-pages/man2/mkdir.2.html).
    fn mkdir(&mut self, path: &Path, mode: u32) -> io::Result<()>;
    /// [`mknod(2)`](https://man7.org/linux/man-pages/man2/mknod.2.html).
    fn mknod(
        &mut self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()>;
    /// [`symlink(2)`](https://man7.org/linux/man-pages/man2/symlink.2.html): `link` points to `target`.
    fn symlink(&mut self, target: &Path, link: &Path) -> io::Result<()>;
    /// [`unlink(2)`](https://man7.org/linux/man-pages/man2/unlink.2.html): a device node or
    /// symlink of a device that went away.
    fn unlink(&mut self, path: &Path) -> io::Result<()>;
    /// [`chmod(2)`](https://man7.org/linux/man-pages/man2/chmod.2.html), for device rules.
    fn chmod(&mut self, path: &Path, mode: u32) -> io::Result<()>;
    /// [`lchown(2)`](https://man7.org/linux/man-pages/man2/chown.2.html); `None` leaves that id.
    fn chown(&mut self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()>;
    /// [`umount2(2)`](https://man7.org/linux/man-pages/man2/umount2.2.html) with `MNT_DETACH`:
    /// for a file system whose device is already gone (an automounted stick pulled out).
    fn unmount_detach(&mut self, target: &Path) -> io::Result<()>;
    /// `open(2)` + `write(2)` of a whole small file, for `/proc/sys` knobs.
    fn write_file(&mut self, path: &Path, contents: &str) -> io::Result<()>;
    /// A new file with these contents: `open(2)` with `O_CREAT | O_EXCL | O_NOFOLLOW` (an
    /// existing file or link is `EEXIST`), `write(2)` of it all, `fchmod(2)` to `mode` (not
    /// narrowed by the umask). For the extras unpacked from the card, each under a temporary
    /// name that [`Sys::rename`] then gives its own.
    fn create_file(&mut self, path: &Path, mode: u32, contents: &[u8]) -> io::Result<()>;
    /// `open(2)` of an existing file for writing (no `O_CREAT`, no `O_TRUNC`), `fstat(2)`, and
    /// [`pwrite(2)`](https://man7.org/linux/man-pages/man2/pwrite.2.html) of `contents` at
    /// offset 0: the file is overwritten in place. Fails with `EINVAL` when its length is not
    /// `contents.len()`: on FAT a write of another length changes the allocation table.
    fn overwrite(&mut self, path: &Path, contents: &[u8]) -> io::Result<()>;
    /// `open(2)` with `O_CREAT | O_EXCL` (mode 0644, as the file system allows: no `fchmod`,
    /// which vfat refuses for a mode its mount options do not give) and `write(2)` of a new
    /// file on the card.
    fn create(&mut self, path: &Path, contents: &[u8]) -> io::Result<()>;
    /// `open(2)` + [`fdatasync(2)`](https://man7.org/linux/man-pages/man2/fdatasync.2.html):
    /// a file's data on the disk (it flushes the inode's pages whichever fd wrote them).
    fn fdatasync(&mut self, path: &Path) -> io::Result<()>;
    /// `open(2)` + [`fsync(2)`](https://man7.org/linux/man-pages/man2/fsync.2.html): a
    /// directory after an entry in it was created, renamed or removed, or a new file.
    fn fsync(&mut self, path: &Path) -> io::Result<()>;
    /// `open(2)` + [`syncfs(2)`](https://man7.org/linux/man-pages/man2/syncfs.2.html): the
    /// file system holding `path`, before it is remounted read-only.
    fn syncfs(&mut self, path: &Path) -> io::Result<()>;
    /// [`renameat2(2)`](https://man7.org/linux/man-pages/man2/renameat2.2.html): `Exchange`
    /// for a promotion, `NoReplace` where an existing `to` must stay (`EEXIST`).
    fn rename(&mut self, from: &Path, to: &Path, how: Rename) -> io::Result<()>;
    /// `open(2)` + [`finit_module(2)`](https://man7.org/linux/man-pages/man2/finit_module.2.html).
    fn finit_module(&mut self, path: &Path, params: &str) -> io::Result<()>;
    /// [`Sys::finit_module`] for modules that do not depend on each other, results in order.
    /// By default one after another (so the recorder's transcript is ordered); [`linux::Linux`]
    /// makes the calls from one thread each, so the kernel can run the modules' init
    /// functions (and the device probes they start) at the same time.
    fn finit_modules(&mut self, modules: &[(PathBuf, String)]) -> Vec<io::Result<()>> {
        modules
            .iter()
            .map(|(path, params)| self.finit_module(path, params))
            .collect()
    }
    /// [`sethostname(2)`](https://man7.org/linux/man-pages/man2/sethostname.2.html).
    fn sethostname(&mut self, name: &str) -> io::Result<()>;
    /// [`kill(2)`](https://man7.org/linux/man-pages/man2/kill.2.html).
    fn kill(&mut self, target: KillTarget, signal: i32) -> io::Result<()>;
    /// [`sync(2)`](https://man7.org/linux/man-pages/man2/sync.2.html).
    fn sync(&mut self);
    /// [`reboot(2)`](https://man7.org/linux/man-pages/man2/reboot.2.html). Returns only on error
    /// (or for [`Reboot::CtrlAltDelOff`]).
    fn reboot(&mut self, how: Reboot) -> io::Result<()>;
    /// One [rtnetlink(7)](https://man7.org/linux/man-pages/man7/rtnetlink.7.html) request
    /// (link up, address, route) on a `NETLINK_ROUTE` socket, waiting for the kernel's ACK.
    fn netlink_route(&mut self, request: &RouteRequest) -> io::Result<()>;
    /// [`clock_settime(2)`](https://man7.org/linux/man-pages/man2/clock_settime.2.html) of
    /// `CLOCK_REALTIME` to nanoseconds since 1970: a step.
    fn clock_settime(&mut self, unix_nanos: i128) -> io::Result<()>;
    /// [`adjtimex(2)`](https://man7.org/linux/man-pages/man2/adjtimex.2.html) with
    /// `ADJ_OFFSET_SINGLESHOT`: slew the clock by `micros` gently (0.5 ms per second), as
    /// adjtime(3) does, instead of a step that applications would see as a jump.
    fn adjtime(&mut self, micros: i64) -> io::Result<()>;
}
