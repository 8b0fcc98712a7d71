//! The QEMU machines xtask boots (`pc`, `virt`, `raspi3b`) and one boot's command line: the
//! kernel, the initramfs, the disk, the console, the monitor, the user network with its
//! forwarded ports. It prepares no files (`qemu/prepare.rs`) and reads no console
//! (`qemu/console.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};

use crate::media::board::Board;
use crate::tools::arch::Arch;

/// The QEMU machine a boot runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Machine {
    /// x86_64: QEMU's default PC
    #[default]
    Pc,
    /// aarch64: QEMU's `virt` board (Cortex-A53), virtio disk
    Virt,
    /// aarch64: QEMU's Raspberry Pi 3 Model B; the disk is its SD card, the device tree the
    /// bundle's `bcm2837-rpi-3-b.dtb`, memory fixed at 1 GiB
    Raspi3b,
}

impl Machine {
    /// The machine `cargo xtask run --arch ARCH` boots.
    pub fn for_arch(arch: Arch) -> Machine {
        match arch {
            Arch::X86_64 => Machine::Pc,
            Arch::Aarch64 => Machine::Virt,
        }
    }

    /// The machine that emulates a Raspberry Pi `board`: only the Pi 3's (QEMU 7.2 has no
    /// raspi4b and no Zero 2 W).
    pub fn for_board(board: Board) -> Result<Machine> {
        match board {
            Board::Rpi3 => Ok(Machine::Raspi3b),
            other => bail!(
                "QEMU cannot boot {}: its only 64-bit Raspberry Pi is raspi3b (--board rpi3)",
                other.name()
            ),
        }
    }

    /// The architecture its kernel and binaries are built for.
    pub fn arch(self) -> Arch {
        match self {
            Machine::Pc => Arch::X86_64,
            Machine::Virt | Machine::Raspi3b => Arch::Aarch64,
        }
    }

    /// Its name in a scenario's `board` file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Pc => "pc",
            Machine::Virt => "virt",
            Machine::Raspi3b => "raspi3b",
        }
    }

    /// The machine called `name` ([`Machine::name`]).
    pub fn from_name(name: &str) -> Result<Machine> {
        [Machine::Pc, Machine::Virt, Machine::Raspi3b]
            .into_iter()
            .find(|m| m.name() == name.trim())
            .with_context(|| format!("unknown machine `{name}` (known: pc, virt, raspi3b)"))
    }

    /// QEMU's machine, CPU and accelerator options.
    fn qemu_args(self) -> &'static [&'static str] {
        match self {
            // /dev/kvm may exist but is nested and fails on these hosts: TCG always.
            Machine::Pc => &["-accel", "tcg"],
            Machine::Virt => &["-M", "virt", "-cpu", "cortex-a53", "-accel", "tcg"],
            // multi-threaded TCG makes this board's boots take 5-30 s (DESIGN.md); its
            // memory is fixed by the board
            Machine::Raspi3b => &["-M", "raspi3b", "-accel", "tcg,thread=single"],
        }
    }
}

/// One QEMU boot: a kernel, an initramfs, maybe a disk, and the command line.
#[derive(Clone, Debug)]
pub struct Boot {
    pub arch: Arch,
    /// the board; [`Boot::new`] takes the arch's ([`Machine::for_arch`])
    pub machine: Machine,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// the device tree (`-dtb`); the Pi needs its board's, `virt` makes its own
    pub dtb: Option<PathBuf>,
    /// attached as a virtio disk (raw), or the SD card of a Pi
    pub disk: Option<PathBuf>,
    /// words added after `console=... panic=-1`, or after [`Boot::card_cmdline`]
    pub append: String,
    /// a Pi card's own `cmdline.txt`, which then replaces `console=... panic=-1`: the
    /// console is the card's (`raspi3b`: the mini UART, `ttyS1`, QEMU's second serial port)
    pub card_cmdline: Option<String>,
    /// guest memory; 256 MiB when 0
    pub memory_mib: u32,
    /// more QEMU arguments, appended last
    pub extra_args: Vec<String>,
    /// QEMU's human monitor on this unix socket (not interactive only; else no monitor)
    pub monitor: Option<PathBuf>,
    /// the disk's `cache=` mode (`writethrough`: the guest's writes reach the image in the
    /// order they complete, for power-cut tests); None: QEMU's default
    pub disk_cache: Option<String>,
    /// more options of the disk's `-drive`, each appended as `,OPTION`
    /// (`throttling.bps-write=163840`: a slow card)
    pub disk_options: Vec<String>,
}

impl Boot {
    pub fn new(arch: Arch, kernel: &Path, initrd: &Path) -> Boot {
        Boot {
            arch,
            machine: Machine::for_arch(arch),
            kernel: kernel.to_path_buf(),
            initrd: initrd.to_path_buf(),
            dtb: None,
            disk: None,
            append: String::new(),
            card_cmdline: None,
            memory_mib: 256,
            extra_args: Vec::new(),
            monitor: None,
            disk_cache: None,
            disk_options: Vec::new(),
        }
    }

    /// The kernel command line: the card's `cmdline.txt` when there is one, else the serial
    /// console and `panic=-1` (a panic, e.g. init dying, reboots at once, and `-no-reboot`
    /// turns that into QEMU exiting); then [`Boot::append`].
    pub fn cmdline(&self) -> String {
        let mut line = match &self.card_cmdline {
            // cmdline.txt is one line; the firmware reads no more
            Some(card) => card.lines().next().unwrap_or_default().trim().to_string(),
            None => format!("console={} panic=-1", self.arch.console()),
        };
        if !self.append.trim().is_empty() {
            line.push(' ');
            line += self.append.trim();
        }
        line
    }
}

/// The QEMU command for `boot`. Interactive: `-nographic -nic none`, the serial console and
/// QEMU's monitor on this terminal (Ctrl-A X quits). Not interactive: `-nodefaults -display none
/// -serial stdio -monitor none`, stdin closed, so stdout is exactly the guest's console.
/// QEMU exits when the guest powers off, reboots (`-no-reboot`) or panics (`panic=-1`).
pub fn command(boot: &Boot, interactive: bool) -> Command {
    let mut cmd = Command::new(boot.arch.qemu_binary());
    cmd.args(boot.machine.qemu_args());
    let memory = if boot.memory_mib == 0 {
        256
    } else {
        boot.memory_mib
    };
    if boot.machine != Machine::Raspi3b {
        cmd.args(["-m", &memory.to_string()]);
    }
    cmd.arg("-no-reboot");
    // raspi3b's first serial port, the PL011, drives Bluetooth in Debian's device tree: no
    // /dev/ttyAMA0, typed input never arrives (DESIGN.md). The card's console is the mini
    // UART on GPIO 14/15, ttyS1, QEMU's second serial port.
    let second = boot.machine == Machine::Raspi3b;
    if interactive {
        // no NIC: no iPXE option ROM to load, as in the non-interactive boot
        cmd.args(["-nographic", "-nic", "none"]);
        if second {
            // `mon:` keeps QEMU's monitor and Ctrl-A X on this terminal
            cmd.args(["-serial", "null", "-serial", "mon:stdio"]);
        }
    } else {
        cmd.args(["-nodefaults", "-display", "none"]);
        if second {
            cmd.args(["-serial", "null"]);
        }
        cmd.args(["-serial", "stdio"]);
        match &boot.monitor {
            // a test harness sends commands (device_add, ...) through it
            Some(socket) => cmd.arg("-monitor").arg(format!(
                "unix:{},server=on,wait=off",
                socket.display().to_string().replace(',', ",,")
            )),
            None => cmd.args(["-monitor", "none"]),
        };
        cmd.stdin(Stdio::null());
    }
    cmd.arg("-kernel").arg(&boot.kernel);
    cmd.arg("-initrd").arg(&boot.initrd);
    if let Some(dtb) = &boot.dtb {
        cmd.arg("-dtb").arg(dtb);
    }
    cmd.arg("-append").arg(raw_bytes(&boot.cmdline()));
    if let Some(disk) = &boot.disk {
        let mut spec = std::ffi::OsString::from("file=");
        // QEMU's option syntax doubles commas inside values
        spec.push(disk.to_string_lossy().replace(',', ",,"));
        spec.push(match boot.machine {
            // the card must be a power-of-two size (bundle::card_size_mib)
            Machine::Raspi3b => ",format=raw,if=sd",
            Machine::Pc | Machine::Virt => ",format=raw,if=virtio",
        });
        if let Some(cache) = &boot.disk_cache {
            spec.push(format!(",cache={cache}"));
        }
        for option in &boot.disk_options {
            spec.push(format!(",{option}"));
        }
        cmd.arg("-drive").arg(spec);
    }
    cmd.args(&boot.extra_args);
    cmd
}

/// A command line with each `\xNN` turned into that byte, so a scenario's `cmdline` can give
/// the kernel bytes that are not UTF-8 (as a Latin-1 `cmdline.txt` does); QEMU passes
/// `-append` on as it is.
pub fn raw_bytes(cmdline: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::new();
    let mut rest = cmdline.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        let hex = after
            .strip_prefix(b"x")
            .and_then(|h| h.get(..2))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                rest = after.get(3..).unwrap_or_default();
            }
            _ => {
                out.push(b);
                rest = after;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

/// Fails with what to install when the QEMU binary for `arch` is not on PATH.
pub fn check_qemu(arch: Arch) -> Result<()> {
    match Command::new(arch.qemu_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} not found: `apt-get install {}` (Debian/Ubuntu)",
            arch.qemu_binary(),
            arch.qemu_package()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot run {}", arch.qemu_binary())),
    }
}

/// A port forwarded from the host's loopback into the guest: `8080:80` (TCP) or
/// `udp:5353:53`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub udp: bool,
    pub host: u16,
    pub guest: u16,
}

impl std::str::FromStr for Forward {
    type Err = String;
    fn from_str(s: &str) -> Result<Forward, String> {
        let (udp, rest) = match s.split_once(':') {
            Some(("udp", rest)) => (true, rest),
            Some(("tcp", rest)) => (false, rest),
            _ => (false, s),
        };
        let bad = || format!("`{s}` is not HOST_PORT:GUEST_PORT (e.g. 8080:80, udp:5353:53)");
        let (host, guest) = rest.split_once(':').ok_or_else(bad)?;
        Ok(Forward {
            udp,
            host: host.parse().map_err(|_| bad())?,
            guest: guest.parse().map_err(|_| bad())?,
        })
    }
}

/// QEMU arguments giving the guest a network card on QEMU's user network (DHCP 10.0.2.15,
/// router 10.0.2.2, DNS 10.0.2.3), with ports forwarded from the host's 127.0.0.1: a virtio
/// card on `pc`/`virt`, a USB one on `raspi3b`.
pub fn user_network(machine: Machine, forwards: &[Forward]) -> Vec<String> {
    let card = match machine {
        Machine::Raspi3b => "usb-net,netdev=net0",
        Machine::Pc | Machine::Virt => "virtio-net-pci,netdev=net0",
    };
    let mut netdev = "user,id=net0".to_string();
    for f in forwards {
        let proto = if f.udp { "udp" } else { "tcp" };
        netdev.push_str(&format!(
            ",hostfwd={proto}:127.0.0.1:{}-:{}",
            f.host, f.guest
        ));
    }
    vec!["-device".into(), card.into(), "-netdev".into(), netdev]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_network_with_forwards() {
        let f: Vec<Forward> = ["8080:80", "udp:5353:53"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            user_network(Machine::Pc, &f),
            [
                "-device",
                "virtio-net-pci,netdev=net0",
                "-netdev",
                "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:53"
            ]
        );
        assert_eq!(
            user_network(Machine::Raspi3b, &[])[1],
            "usb-net,netdev=net0"
        );
        for bad in ["80", "x:80", "8080:99999", "udp:80"] {
            assert!(bad.parse::<Forward>().is_err(), "{bad}");
        }
        assert_eq!(
            "tcp:1:2".parse::<Forward>(),
            Ok(Forward {
                udp: false,
                host: 1,
                guest: 2
            })
        );
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn qemu_command_lines() {
        let mut boot = Boot::new(Arch::X86_64, Path::new("/k/vmlinuz"), Path::new("/r/i.gz"));
        boot.disk = Some(PathBuf::from("/r/a,b.img"));
        boot.append = " boxinit.loglevel=debug ".into();
        let cmd = command(&boot, false);
        assert_eq!(cmd.get_program(), "qemu-system-x86_64");
        let a = args(&cmd).join(" ");
        assert_eq!(
            a,
            "-accel tcg -m 256 -no-reboot -nodefaults -display none -serial stdio -monitor none \
             -kernel /k/vmlinuz -initrd /r/i.gz -append console=ttyS0 panic=-1 \
             boxinit.loglevel=debug -drive file=/r/a,,b.img,format=raw,if=virtio"
        );
        let a = args(&command(&boot, true));
        assert!(a.contains(&"-nographic".to_string()) && !a.contains(&"-nodefaults".to_string()));
        boot.arch = Arch::Aarch64;
        assert!(boot.cmdline().starts_with("console=ttyAMA0 panic=-1"));
        boot.machine = Machine::Raspi3b;
        boot.dtb = Some(PathBuf::from("/b/bcm2837-rpi-3-b.dtb"));
        boot.card_cmdline = Some("console=ttyS1,115200 panic=10\n".into());
        let a = args(&command(&boot, false)).join(" ");
        // the card's console, the mini UART: QEMU's second serial port (the first, the PL011,
        // drives Bluetooth and takes no input)
        assert!(
            a.starts_with(
                "-M raspi3b -accel tcg,thread=single -no-reboot -nodefaults -display none \
                 -serial null -serial stdio -monitor none"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "-dtb /b/bcm2837-rpi-3-b.dtb -append console=ttyS1,115200 panic=10 \
                 boxinit.loglevel=debug"
            ),
            "{a}"
        );
        let a = args(&command(&boot, true)).join(" ");
        assert!(
            a.contains("-nographic -nic none -serial null -serial mon:stdio"),
            "{a}"
        );
        assert!(
            a.ends_with("-drive file=/r/a,,b.img,format=raw,if=sd"),
            "{a}"
        );
        assert_eq!(Machine::from_name("virt").unwrap().arch(), Arch::Aarch64);
        assert!(Machine::from_name("raspi4b").is_err());
    }

    #[test]
    fn escaped_bytes_reach_the_command_line() {
        use std::os::unix::ffi::OsStrExt;
        let cases: &[(&str, &[u8])] = &[
            ("a b", b"a b"),
            ("caf\\xe9 x", b"caf\xe9 x"),
            ("\\xZZ \\x4", b"\\xZZ \\x4"),
            ("\\\\x41", b"\\A"),
        ];
        for (text, bytes) in cases {
            assert_eq!(raw_bytes(text).as_bytes(), *bytes, "{text}");
        }
    }
}
