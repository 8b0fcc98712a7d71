//! The real system calls of [`Sys`], through rustix (and nix, and libc where neither has a
//! safe call), plus the calls on one open fd that the seam does not model: the watchdog's
//! timeout ioctl and the DHCP client's link-layer broadcast. The `unsafe` blocks of these
//! are here, each with its `SAFETY:` comment.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use super::{KillTarget, MountFlags, NodeKind, Reboot, Rename, RouteRequest, Sys};

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

    fn remount_with(&mut self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
        rustix::mount::mount_remount(target, flags, c_string(data)?.as_c_str())?;
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

    fn create_file(&mut self, path: &Path, mode: u32, contents: &[u8]) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // create_new: O_CREAT | O_EXCL (std adds O_CLOEXEC)
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        file.write_all(contents)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }

    fn overwrite(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
        let len = rustix::fs::fstat(&fd)?.st_size;
        if u64::try_from(len).ok() != Some(contents.len() as u64) {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            ));
        }
        let mut done = 0;
        while let Some(rest) = contents.get(done..).filter(|r| !r.is_empty()) {
            done += rustix::io::pwrite(&fd, rest, done as u64)?;
        }
        Ok(())
    }

    fn create(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o644))?;
        let mut done = 0;
        while let Some(rest) = contents.get(done..).filter(|r| !r.is_empty()) {
            done += rustix::io::write(&fd, rest)?;
        }
        Ok(())
    }

    fn fdatasync(&mut self, path: &Path) -> io::Result<()> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        rustix::fs::fdatasync(&fd)?;
        Ok(())
    }

    fn fsync(&mut self, path: &Path) -> io::Result<()> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        rustix::fs::fsync(&fd)?;
        Ok(())
    }

    fn syncfs(&mut self, path: &Path) -> io::Result<()> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        rustix::fs::syncfs(&fd)?;
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path, how: Rename) -> io::Result<()> {
        use rustix::fs::{RenameFlags, CWD};
        let flags = match how {
            Rename::Exchange => RenameFlags::EXCHANGE,
            Rename::NoReplace => RenameFlags::NOREPLACE,
        };
        rustix::fs::renameat_with(CWD, from, CWD, to, flags)?;
        Ok(())
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
            Reboot::Tryboot => return restart2(c"0 tryboot"),
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

/// `sendto(2)` of `datagram` (a whole IPv4 packet, from `ipv4::udp_datagram`) on a packet
/// socket (packet(7), `SOCK_DGRAM`: the kernel adds the Ethernet header), out of the interface
/// `index` to the Ethernet broadcast address: the DHCP client's broadcasts before its
/// interface has an address. rustix has no `sockaddr_ll`, so this call goes through libc.
pub fn send_link_broadcast(
    socket: &std::os::fd::OwnedFd,
    index: u32,
    datagram: &[u8],
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: sockaddr_ll is plain data, for which all zeroes is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    to.sll_ifindex = i32::try_from(index).map_err(|_| io::Error::other("interface index"))?;
    to.sll_halen = 6;
    to.sll_addr = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
    // SAFETY: the buffer and the address are valid for the call and their lengths are theirs.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            datagram.as_ptr().cast(),
            datagram.len(),
            0,
            std::ptr::addr_of!(to).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `reboot(2)` with `LINUX_REBOOT_CMD_RESTART2` and its argument, which rustix does not take
/// (the Pi kernel's firmware driver reads `" tryboot"` in it).
fn restart2(arg: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: the four arguments the kernel reads for RESTART2: the two magic numbers, the
    // command, and a pointer to a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            libc::LINUX_REBOOT_CMD_RESTART2,
            arg.as_ptr(),
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
