//! The syscall seam: one trait method per system call that changes the machine, the Linux
//! implementation over rustix, and a recording double for tests.
//!
//! Sequences of calls live in the phase modules (mounts, modules, bootpart, shutdown) so that
//! the recorder sees them; this file holds no logic. Reading files under `/proc` and `/sys` is
//! not behind the seam: those readers take a `root: &Path` so tests give them a temp dir.

use std::ffi::CString;
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
    /// `LINUX_REBOOT_CMD_POWER_OFF`
    PowerOff,
    /// `LINUX_REBOOT_CMD_HALT`
    Halt,
    /// `LINUX_REBOOT_CMD_CAD_OFF`: Ctrl-Alt-Del then sends SIGINT to PID 1 instead of rebooting.
    CtrlAltDelOff,
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
    /// `open(2)` + [`finit_module(2)`](https://man7.org/linux/man-pages/man2/finit_module.2.html).
    fn finit_module(&mut self, path: &Path, params: &str) -> io::Result<()>;
    /// [`Sys::finit_module`] for modules that do not depend on each other, results in order.
    /// By default one after another (so the recorder's transcript is ordered); [`Linux`]
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

/// The real system calls, through rustix (and nix for `kill(-1)`, which rustix's `Pid` cannot express).
pub struct Linux;

fn c_string(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

impl Sys for Linux {
    fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        let data = c_string(data)?;
        rustix::mount::mount(source, target, fstype, flags, Some(data.as_c_str()))?;
        Ok(())
    }

    fn unmount(&mut self, target: &Path) -> io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty())?;
        Ok(())
    }

    fn remount(&mut self, target: &Path, flags: MountFlags) -> io::Result<()> {
        rustix::mount::mount_remount(target, flags, "")?;
        Ok(())
    }

    fn mkdir(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        rustix::fs::mkdir(path, rustix::fs::Mode::from_raw_mode(mode))?;
        Ok(())
    }

    fn mknod(
        &mut self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let file_type = match kind {
            NodeKind::Char => rustix::fs::FileType::CharacterDevice,
            NodeKind::Block => rustix::fs::FileType::BlockDevice,
        };
        let dev = rustix::fs::makedev(major, minor);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            file_type,
            rustix::fs::Mode::from_raw_mode(mode),
            dev,
        )?;
        Ok(())
    }

    fn symlink(&mut self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn unlink(&mut self, path: &Path) -> io::Result<()> {
        rustix::fs::unlink(path)?;
        Ok(())
    }

    fn chmod(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode))?;
        Ok(())
    }

    fn chown(&mut self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        // -1 means "leave it" to the kernel: that is what None is for
        let uid = uid
            .filter(|&u| u != u32::MAX)
            .map(rustix::fs::Uid::from_raw);
        let gid = gid
            .filter(|&g| g != u32::MAX)
            .map(rustix::fs::Gid::from_raw);
        rustix::fs::chownat(
            rustix::fs::CWD,
            path,
            uid,
            gid,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    fn unmount_detach(&mut self, target: &Path) -> io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?;
        Ok(())
    }

    fn write_file(&mut self, path: &Path, contents: &str) -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(contents.as_bytes())
    }

    fn finit_module(&mut self, path: &Path, params: &str) -> io::Result<()> {
        let file = std::fs::File::open(path)?;
        let params = c_string(params)?;
        rustix::system::finit_module(&file, &params, 0)?;
        Ok(())
    }

    fn finit_modules(&mut self, modules: &[(PathBuf, String)]) -> Vec<io::Result<()>> {
        if modules.len() < 2 {
            return modules
                .iter()
                .map(|(path, params)| self.finit_module(path, params))
                .collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = modules
                .iter()
                .map(|(path, params)| {
                    let spawned = std::thread::Builder::new()
                        .name("modload".into())
                        .stack_size(64 * 1024)
                        .spawn_scoped(scope, move || Linux.finit_module(path, params));
                    // No thread to be had: load it here, in turn.
                    spawned.map_err(|_| Linux.finit_module(path, params))
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| match handle {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("module loading thread failed"))),
                    Err(inline) => inline,
                })
                .collect()
        })
    }

    fn sethostname(&mut self, name: &str) -> io::Result<()> {
        rustix::system::sethostname(name.as_bytes())?;
        Ok(())
    }

    fn kill(&mut self, target: KillTarget, signal: i32) -> io::Result<()> {
        let signal = nix::sys::signal::Signal::try_from(signal).map_err(io::Error::from)?;
        let pid = match target {
            KillTarget::Group(pgid) => -pgid,
            KillTarget::All => -1,
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)?;
        Ok(())
    }

    fn sync(&mut self) {
        rustix::fs::sync();
    }

    fn reboot(&mut self, how: Reboot) -> io::Result<()> {
        use rustix::system::RebootCommand;
        let cmd = match how {
            Reboot::Restart => RebootCommand::Restart,
            Reboot::PowerOff => RebootCommand::PowerOff,
            Reboot::Halt => RebootCommand::Halt,
            Reboot::CtrlAltDelOff => RebootCommand::CadOff,
        };
        rustix::system::reboot(cmd)?;
        Ok(())
    }

    fn netlink_route(&mut self, request: &RouteRequest) -> io::Result<()> {
        use rustix::net::{netlink, AddressFamily, RecvFlags, SendFlags, SocketType};
        let fd = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)?; // protocol 0: NETLINK_ROUTE
        let seq = 1;
        let message = crate::net::link::encode(request, seq);
        let kernel = netlink::SocketAddrNetlink::new(0, 0);
        rustix::net::sendto(&fd, &message, SendFlags::empty(), &kernel)?;
        let mut buf = [0u8; 4096];
        loop {
            let (n, _) = rustix::net::recv(&fd, &mut buf, RecvFlags::empty())?;
            if let Some(result) =
                crate::net::link::decode_ack(buf.get(..n).unwrap_or_default(), seq)
            {
                return result;
            }
        }
    }

    fn clock_settime(&mut self, unix_nanos: i128) -> io::Result<()> {
        let timespec = rustix::time::Timespec {
            tv_sec: i64::try_from(unix_nanos.div_euclid(1_000_000_000))
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            tv_nsec: i64::try_from(unix_nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
        };
        rustix::time::clock_settime(rustix::time::ClockId::Realtime, timespec)?;
        Ok(())
    }

    fn adjtime(&mut self, micros: i64) -> io::Result<()> {
        // SAFETY: `timex` is a plain C struct for which all-zero is a valid value; adjtimex
        // reads and writes only that struct, which lives for the call. (rustix and nix have
        // no adjtimex; libc is already in the tree through them.)
        let result = unsafe {
            let mut tx: libc::timex = std::mem::zeroed();
            tx.modes = libc::ADJ_OFFSET_SINGLESHOT;
            tx.offset = micros as _;
            libc::adjtimex(&mut tx)
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// What a child does to itself between `fork` and `exec`, resolved beforehand so that the
/// child only makes system calls (no allocation, no locks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildSetup {
    /// `setsid(2)`: its own session and process group (not for `exec` mode: PID 1 keeps its).
    pub new_session: bool,
    /// A tty to open as fds 0-2 and make the controlling terminal (`TIOCSCTTY`).
    pub console: Option<CString>,
    /// `setgroups(2)`, applied when `gid` or `uid` is set or the list is not empty.
    pub groups: Vec<u32>,
    /// `setgid(2)`.
    pub gid: Option<u32>,
    /// `setuid(2)`, last: after it the child may no longer change the others.
    pub uid: Option<u32>,
    /// `umask(2)`.
    pub umask: Option<u32>,
    /// `setrlimit(2)` with soft = hard.
    pub rlimits: Vec<(rustix::process::Resource, u64)>,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    pub no_new_privs: bool,
}

/// How many supplementary groups a program may have (`[box] groups`): the child converts them
/// on its stack, where nothing may allocate.
pub const MAX_GROUPS: usize = 64;

/// The resource a `[box] rlimits` key names, as in `prlimit` (`config::RLIMITS`).
pub fn resource(name: &str) -> Option<rustix::process::Resource> {
    use rustix::process::Resource;
    Some(match name {
        "cpu" => Resource::Cpu,
        "fsize" => Resource::Fsize,
        "data" => Resource::Data,
        "stack" => Resource::Stack,
        "core" => Resource::Core,
        "rss" => Resource::Rss,
        "nproc" => Resource::Nproc,
        "nofile" => Resource::Nofile,
        "memlock" => Resource::Memlock,
        "as" => Resource::As,
        "locks" => Resource::Locks,
        "sigpending" => Resource::Sigpending,
        "msgqueue" => Resource::Msgqueue,
        "nice" => Resource::Nice,
        "rtprio" => Resource::Rtprio,
        "rttime" => Resource::Rttime,
        _ => return None,
    })
}

/// A program's `execve(2)` arguments, converted to C strings before any fork, so that the
/// child between `fork` and `execve` only reads memory and makes system calls. This replaces
/// std's `Command`, whose general machinery (PATH search, pipes for stdio, env merging) the
/// init does not use and which cost about 20 KiB of the static binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    path: CString,
    dir: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Exec {
    /// `program` run as argv[0] with `args`, in `dir`, with exactly `env`. Fails (naming what)
    /// when a string holds a NUL byte.
    pub fn new(
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        dir: &Path,
    ) -> io::Result<Exec> {
        use std::os::unix::ffi::OsStrExt;
        let c = |bytes: &[u8], what: &str| {
            CString::new(bytes).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what} contains a NUL byte"),
                )
            })
        };
        let path = c(program.as_os_str().as_bytes(), "the program path")?;
        let mut argv = vec![path.clone()];
        for arg in args {
            argv.push(c(arg.as_bytes(), "an argument")?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (key, value) in env {
            envp.push(c(
                format!("{key}={value}").as_bytes(),
                "an environment variable",
            )?);
        }
        Ok(Exec {
            dir: c(dir.as_os_str().as_bytes(), "the working directory")?,
            path,
            argv,
            envp,
        })
    }

    /// `fork(2)`, then in the child: the working directory, `setup`, and `execve(2)`. Returns
    /// the child's pid once it has exec'd, or the error of the step that failed: the child
    /// writes its errno to a close-on-exec pipe, which reads empty when `execve` succeeded
    /// (as std's `Command` does). A child that failed is reaped here.
    pub fn spawn(&self, setup: &ChildSetup) -> io::Result<i32> {
        let argv = pointers(&self.argv);
        let envp = pointers(&self.envp);
        let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // SAFETY: fork(2) in a process that is single-threaded whenever it spawns (the module
        // loader's threads are joined before it returns). The child runs `run_child`, which
        // only reads what was prepared above and makes raw system calls (see its comment),
        // and never returns: it exec's or calls _exit(2).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            let error = self.run_child(&argv, &envp, setup);
            let errno = error.raw_os_error().unwrap_or(libc::EINVAL).to_ne_bytes();
            let _ = rustix::io::write(&writer, &errno);
            // SAFETY: _exit(2) ends the child without running the parent's atexit handlers
            // or flushing its buffers.
            unsafe { libc::_exit(127) }
        }
        drop(writer);
        let mut errno = [0u8; 4];
        let read = loop {
            match rustix::io::read(&reader, &mut errno) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        };
        let error = match read {
            Ok(0) => return Ok(pid),
            Ok(4) => io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
            Ok(_) => io::Error::other("the child ended before telling how its exec went"),
            Err(e) => e.into(),
        };
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        );
        Err(error)
    }

    /// Becomes the program in this process (`mode = "exec"`): the working directory, `setup`,
    /// `execve(2)`. Returns only on error, and then the steps before it have been made.
    pub fn exec(&self, setup: &ChildSetup) -> io::Error {
        self.run_child(&pointers(&self.argv), &pointers(&self.envp), setup)
    }

    /// Between fork and exec: only raw system calls, nothing allocated (errors are errnos).
    fn run_child(
        &self,
        argv: &[*const libc::c_char],
        envp: &[*const libc::c_char],
        setup: &ChildSetup,
    ) -> io::Error {
        if let Err(e) = rustix::process::chdir(self.dir.as_c_str()) {
            return e.into();
        }
        if let Err(e) = child_setup(setup) {
            return e;
        }
        // SAFETY: `path` and every pointer in `argv`/`envp` point into C strings owned by
        // `self`, alive for the call, and both arrays end with a null pointer (`pointers`).
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        io::Error::last_os_error()
    }
}

/// The null-terminated pointer array `execve(2)` takes, pointing into `strings`.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child's setup, after its working directory and before `execve`: each step is one raw
/// system call through rustix or nix (setsid, open, ioctl, dup2, setgroups, setgid, setuid,
/// umask, setrlimit, prctl, sigaction, sigprocmask) and nothing allocates: `setup` was built
/// before the fork and is only read; the gid list is converted on the stack. Last, the signal
/// mask is cleared: PID 1 blocks every signal (they are read from a signalfd) and a blocked
/// mask survives `fork` and `exec`, so a box that inherited it would ignore the SIGTERM of
/// shutdown; and SIGPIPE goes back to its default, which std's runtime set to ignored in PID 1
/// and which `exec` would keep.
fn child_setup(setup: &ChildSetup) -> io::Result<()> {
    use rustix::process::{Gid, Uid};
    if setup.new_session {
        rustix::process::setsid()?;
    }
    if let Some(tty) = &setup.console {
        let fd = rustix::fs::open(
            tty.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
            rustix::fs::Mode::empty(),
        )?;
        if setup.new_session {
            rustix::process::ioctl_tiocsctty(&fd)?;
        }
        rustix::stdio::dup2_stdin(&fd)?;
        rustix::stdio::dup2_stdout(&fd)?;
        rustix::stdio::dup2_stderr(&fd)?;
        // When init had no fds 0-2 (no console at boot), the tty came back as one of them:
        // keep it open rather than close it when `fd` drops.
        if std::os::fd::AsRawFd::as_raw_fd(&fd) <= 2 {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
        }
    }
    // Limits before the ids: raising a hard limit (`nofile` above the kernel's 4096) needs
    // CAP_SYS_RESOURCE, which the child has as root and loses with `setuid`; after it, every
    // start of a box with a `user` and a higher limit failed with EPERM.
    for (resource, value) in &setup.rlimits {
        let limit = rustix::process::Rlimit {
            current: Some(*value),
            maximum: Some(*value),
        };
        rustix::process::setrlimit(*resource, limit)?;
    }
    if !setup.groups.is_empty() || setup.gid.is_some() || setup.uid.is_some() {
        const MAX: usize = MAX_GROUPS;
        let mut gids = [Gid::ROOT; MAX];
        let n = setup.groups.len().min(MAX);
        for (slot, gid) in gids.iter_mut().zip(&setup.groups) {
            *slot = Gid::from_raw_unchecked(*gid);
        }
        rustix::thread::set_thread_groups(gids.get(..n).unwrap_or_default())?;
    }
    if let Some(gid) = setup.gid {
        rustix::thread::set_thread_gid(Gid::from_raw_unchecked(gid))?;
    }
    if let Some(uid) = setup.uid {
        rustix::thread::set_thread_uid(Uid::from_raw_unchecked(uid))?;
    }
    if let Some(mask) = setup.umask {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
    }
    if setup.no_new_privs {
        rustix::thread::set_no_new_privs(true)?;
    }
    // std's Command reset SIGPIPE for the child; with our own fork/execve we do it.
    // SAFETY: SIG_DFL installs no handler; sigaction(2) is one system call.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )?;
    }
    crate::events::unblock_all_signals()
}

/// `WDIOC_SETTIMEOUT`: sets a watchdog device's timeout in seconds; returns the timeout the
/// driver actually chose (drivers round to what the hardware can do).
/// See <https://docs.kernel.org/watchdog/watchdog-api.html>.
pub fn watchdog_set_timeout(fd: std::os::fd::BorrowedFd<'_>, seconds: i32) -> io::Result<i32> {
    use rustix::ioctl::{opcode, Updater};
    const WDIOC_SETTIMEOUT: rustix::ioctl::Opcode = opcode::read_write::<std::ffi::c_int>(b'W', 6);
    let mut value: std::ffi::c_int = seconds;
    // SAFETY: WDIOC_SETTIMEOUT is _IOWR('W', 6, int): the kernel reads and writes one int,
    // which `value` is, and the pointer lives for the call.
    unsafe {
        let ctl = Updater::<WDIOC_SETTIMEOUT, std::ffi::c_int>::new(&mut value);
        rustix::ioctl::ioctl(fd, ctl)?;
    }
    Ok(value)
}

#[cfg(test)]
mod exec_tests {
    use super::*;

    fn wait(pid: i32) -> Option<rustix::process::WaitStatus> {
        let pid = rustix::process::Pid::from_raw(pid);
        rustix::process::waitpid(pid, rustix::process::WaitOptions::empty())
            .unwrap()
            .map(|(_, status)| status)
    }

    #[test]
    fn a_child_gets_its_arguments_environment_and_directory() {
        let dir = std::env::temp_dir().join(format!("boxinit-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exec = Exec::new(
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                "echo \"$0|$1|$GREETING|$(pwd)|$HOME\" > out".into(),
                "zero".into(),
                "one two".into(),
            ],
            &[("GREETING".into(), "hello there".into())],
            &dir,
        )
        .unwrap();
        let status = wait(exec.spawn(&ChildSetup::default()).unwrap()).unwrap();
        assert_eq!(status.exit_status(), Some(0));
        let out = std::fs::read_to_string(dir.join("out")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            out,
            format!("zero|one two|hello there|{}|\n", dir.display())
        );
    }

    #[test]
    fn what_fails_before_exec_comes_back_as_the_error_and_the_child_is_reaped() {
        let missing = Exec::new(Path::new("/nonexistent/box"), &[], &[], Path::new("/")).unwrap();
        let e = missing.spawn(&ChildSetup::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let no_dir =
            Exec::new(Path::new("/bin/true"), &[], &[], Path::new("/nonexistent")).unwrap();
        let e = no_dir.spawn(&ChildSetup::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let bad_tty = ChildSetup {
            new_session: true,
            console: Some(CString::new("/nonexistent/tty").unwrap()),
            ..Default::default()
        };
        let ok = Exec::new(Path::new("/bin/true"), &[], &[], Path::new("/")).unwrap();
        assert!(ok.spawn(&bad_tty).is_err());
        let nul = Exec::new(
            Path::new("/bin/true"),
            &["a\0b".into()],
            &[],
            Path::new("/"),
        );
        assert_eq!(
            nul.unwrap_err().to_string(),
            "an argument contains a NUL byte"
        );
    }
}

/// One recorded system call: the transcript of what a phase did.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: MountFlags,
        data: String,
    },
    Unmount {
        target: String,
    },
    Remount {
        target: String,
        flags: MountFlags,
    },
    Mkdir {
        path: String,
        mode: u32,
    },
    Mknod {
        path: String,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    },
    Symlink {
        target: String,
        link: String,
    },
    Unlink {
        path: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    Chown {
        path: String,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    UnmountDetach {
        target: String,
    },
    WriteFile {
        path: String,
        contents: String,
    },
    FinitModule {
        path: String,
        params: String,
    },
    Sethostname {
        name: String,
    },
    Kill {
        target: KillTarget,
        signal: i32,
    },
    Sync,
    Reboot {
        how: Reboot,
    },
    NetlinkRoute {
        request: RouteRequest,
    },
    ClockSettime {
        unix_nanos: i128,
    },
    Adjtime {
        micros: i64,
    },
}

#[cfg(test)]
impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                write!(
                    f,
                    "mount({source}, {target}, {fstype}, {flags:?}, {data:?})"
                )
            }
            Call::Unmount { target } => write!(f, "umount({target})"),
            Call::Remount { target, flags } => write!(f, "remount({target}, {flags:?})"),
            Call::Mkdir { path, mode } => write!(f, "mkdir({path}, {mode:o})"),
            Call::Mknod {
                path,
                kind,
                mode,
                major,
                minor,
            } => {
                write!(f, "mknod({path}, {kind:?}, {mode:o}, {major}:{minor})")
            }
            Call::Symlink { target, link } => write!(f, "symlink({link} -> {target})"),
            Call::Unlink { path } => write!(f, "unlink({path})"),
            Call::Chmod { path, mode } => write!(f, "chmod({path}, {mode:o})"),
            Call::Chown { path, uid, gid } => {
                let id = |v: &Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
                write!(f, "chown({path}, {}, {})", id(uid), id(gid))
            }
            Call::UnmountDetach { target } => write!(f, "umount({target}, MNT_DETACH)"),
            Call::WriteFile { path, contents } => write!(f, "write({path}, {contents:?})"),
            Call::FinitModule { path, params } => write!(f, "finit_module({path}, {params:?})"),
            Call::Sethostname { name } => write!(f, "sethostname({name})"),
            Call::Kill { target, signal } => write!(f, "kill({target:?}, {signal})"),
            Call::Sync => write!(f, "sync()"),
            Call::Reboot { how } => write!(f, "reboot({how:?})"),
            Call::NetlinkRoute { request } => write!(f, "netlink({request})"),
            Call::ClockSettime { unix_nanos } => {
                let secs = unix_nanos.div_euclid(1_000_000_000);
                let date = crate::net::clock::date(i64::try_from(secs).unwrap_or(i64::MAX));
                write!(f, "clock_settime({date})")
            }
            Call::Adjtime { micros } => write!(f, "adjtime({micros}us)"),
        }
    }
}

#[cfg(test)]
type CallPredicate = Box<dyn Fn(&Call) -> bool>;

/// A test double that records every call and fails the ones a test scripts to fail.
#[cfg(test)]
pub struct Recorder {
    /// The calls made so far, in order.
    pub calls: Vec<Call>,
    failures: Vec<(CallPredicate, i32)>,
}

#[cfg(test)]
impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

#[cfg(test)]
impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            calls: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Calls matching `predicate` fail with `errno`.
    pub fn fail_when(&mut self, predicate: impl Fn(&Call) -> bool + 'static, errno: i32) {
        self.failures.push((Box::new(predicate), errno));
    }

    /// One line per call, the way the transcript is compared in tests.
    pub fn transcript(&self) -> String {
        self.calls.iter().map(|c| format!("{c}\n")).collect()
    }

    fn record(&mut self, call: Call) -> io::Result<()> {
        let errno = self
            .failures
            .iter()
            .find(|(p, _)| p(&call))
            .map(|(_, e)| *e);
        self.calls.push(call);
        match errno {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
fn s(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
impl Sys for Recorder {
    fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        let call = Call::Mount {
            source: source.into(),
            target: s(target),
            fstype: fstype.into(),
            flags,
            data: data.into(),
        };
        self.record(call)
    }
    fn unmount(&mut self, target: &Path) -> io::Result<()> {
        self.record(Call::Unmount { target: s(target) })
    }
    fn remount(&mut self, target: &Path, flags: MountFlags) -> io::Result<()> {
        self.record(Call::Remount {
            target: s(target),
            flags,
        })
    }
    fn mkdir(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(Call::Mkdir {
            path: s(path),
            mode,
        })
    }
    fn mknod(
        &mut self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.record(Call::Mknod {
            path: s(path),
            kind,
            mode,
            major,
            minor,
        })
    }
    fn symlink(&mut self, target: &Path, link: &Path) -> io::Result<()> {
        self.record(Call::Symlink {
            target: s(target),
            link: s(link),
        })
    }
    fn unlink(&mut self, path: &Path) -> io::Result<()> {
        self.record(Call::Unlink { path: s(path) })
    }
    fn chmod(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(Call::Chmod {
            path: s(path),
            mode,
        })
    }
    fn chown(&mut self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        self.record(Call::Chown {
            path: s(path),
            uid,
            gid,
        })
    }
    fn unmount_detach(&mut self, target: &Path) -> io::Result<()> {
        self.record(Call::UnmountDetach { target: s(target) })
    }
    fn write_file(&mut self, path: &Path, contents: &str) -> io::Result<()> {
        self.record(Call::WriteFile {
            path: s(path),
            contents: contents.into(),
        })
    }
    fn finit_module(&mut self, path: &Path, params: &str) -> io::Result<()> {
        self.record(Call::FinitModule {
            path: s(path),
            params: params.into(),
        })
    }
    fn sethostname(&mut self, name: &str) -> io::Result<()> {
        self.record(Call::Sethostname { name: name.into() })
    }
    fn kill(&mut self, target: KillTarget, signal: i32) -> io::Result<()> {
        self.record(Call::Kill { target, signal })
    }
    fn sync(&mut self) {
        let _ = self.record(Call::Sync);
    }
    fn reboot(&mut self, how: Reboot) -> io::Result<()> {
        self.record(Call::Reboot { how })
    }
    fn netlink_route(&mut self, request: &RouteRequest) -> io::Result<()> {
        self.record(Call::NetlinkRoute {
            request: request.clone(),
        })
    }
    fn clock_settime(&mut self, unix_nanos: i128) -> io::Result<()> {
        self.record(Call::ClockSettime { unix_nanos })
    }
    fn adjtime(&mut self, micros: i64) -> io::Result<()> {
        self.record(Call::Adjtime { micros })
    }
}
