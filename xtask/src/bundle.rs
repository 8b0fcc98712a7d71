//! Task `bundle`: the folder a Raspberry Pi boots from — copy it onto any FAT-formatted SD
//! card. The GPU firmware (Debian's `raspi-firmware`: `bootcode.bin`, `start*.elf`,
//! `fixup*.dat`), the kernel and the board's device trees (Debian's `linux-image-arm64`),
//! `config.txt` and `cmdline.txt`, the initramfs (boxinit and the modules the board needs),
//! `init.toml` and `box`. Optionally also an SD card image of that folder (MBR + FAT, the
//! `image` task's writer). Every fetched input can be given as a path instead, so a folder
//! can be made from files downloaded on any computer.
//!
//! What the firmware does with these files: the boot ROM loads `bootcode.bin` (Pi 3 and
//! Zero 2 W; the Pi 4 has it in EEPROM), which loads `start.elf` (`start4.elf`), which reads
//! `config.txt`, loads the kernel, the device tree of the board it runs on and the initramfs,
//! and starts the kernel with `cmdline.txt`. With `upstream_kernel=1` it looks for the
//! upstream device tree names (`bcm2837-rpi-3-b.dtb`) that Debian's kernel ships, instead of
//! Raspberry Pi OS's (`bcm2710-rpi-3-b.dtb`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use boxinit::config::board::{Board as BoardFeatures, UsbSerial};
use boxinit::config::{self, Config};

use crate::fdt::{self, Fdt};
use crate::fetch::kernel::KernelArgs;
use crate::image::{self, Image, ImageOptions};
use crate::pack::initramfs::{self, Initramfs};
use crate::qemu::{Machine, PrepareOptions, Prepared};
use crate::tools::arch::Arch;
use crate::{display_path, format_size, progress, target_dir};

/// A Raspberry Pi model family a bundle is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Board {
    /// Raspberry Pi 3 Model B, B+, A+ and Compute Module 3 (BCM2837)
    #[value(name = "rpi3")]
    Rpi3,
    /// Raspberry Pi 4 Model B, Pi 400 and Compute Module 4 (BCM2711)
    #[value(name = "rpi4")]
    Rpi4,
    /// Raspberry Pi Zero 2 W (RP3A0, a BCM2837)
    #[value(name = "rpi02w")]
    Rpi02w,
}

/// The kernel's file name in the bundle (`kernel=` in config.txt).
pub const KERNEL: &str = "kernel8.img";
/// The initramfs's file name in the bundle (`initramfs` in config.txt).
pub const INITRAMFS: &str = "initramfs.cpio.gz";

impl Board {
    /// Its name on the command line: `rpi3`, `rpi4`, `rpi02w`.
    pub fn name(self) -> &'static str {
        match self {
            Board::Rpi3 => "rpi3",
            Board::Rpi4 => "rpi4",
            Board::Rpi02w => "rpi02w",
        }
    }

    /// The GPU firmware files this board's boot needs (from `raspi-firmware`).
    pub fn firmware(self) -> &'static [&'static str] {
        match self {
            Board::Rpi3 | Board::Rpi02w => &["bootcode.bin", "start.elf", "fixup.dat"],
            // the Pi 4 boots from its EEPROM: no bootcode.bin; its own start4/fixup4
            Board::Rpi4 => &["start4.elf", "fixup4.dat"],
        }
    }

    /// Device trees with the upstream kernel's names (Debian's kernel), one per model.
    pub fn upstream_dtbs(self) -> &'static [&'static str] {
        match self {
            Board::Rpi3 => &[
                "bcm2837-rpi-3-b.dtb",
                "bcm2837-rpi-3-b-plus.dtb",
                "bcm2837-rpi-3-a-plus.dtb",
                "bcm2837-rpi-cm3-io3.dtb",
            ],
            Board::Rpi4 => &[
                "bcm2711-rpi-4-b.dtb",
                "bcm2711-rpi-400.dtb",
                "bcm2711-rpi-cm4-io.dtb",
            ],
            Board::Rpi02w => &["bcm2837-rpi-zero-2-w.dtb"],
        }
    }

    /// Device trees with Raspberry Pi OS's names (its `kernel8.img` and `*.dtb`).
    pub fn downstream_dtbs(self) -> &'static [&'static str] {
        match self {
            Board::Rpi3 => &[
                "bcm2710-rpi-3-b.dtb",
                "bcm2710-rpi-3-b-plus.dtb",
                "bcm2710-rpi-cm3.dtb",
            ],
            Board::Rpi4 => &[
                "bcm2711-rpi-4-b.dtb",
                "bcm2711-rpi-400.dtb",
                "bcm2711-rpi-cm4.dtb",
            ],
            Board::Rpi02w => &["bcm2710-rpi-zero-2-w.dtb"],
        }
    }

    /// The modules packed for every bundle of this board (those the kernel has; coldplug
    /// loads the ones whose devices are there): the SD host, FAT and its code pages, the
    /// watchdog, the random number generator, USB host and storage, keyboards (HID, evdev).
    pub fn modules(self) -> Vec<&'static str> {
        let mut modules = vec![
            // SD card: the sdhost controller (Pi 3, Zero 2 W) and the SDHCI one (the Pi 4's
            // card, the Pi 3's Wi-Fi)
            "bcm2835",
            "sdhci_iproc",
            "vfat",
            "nls_cp437",
            "nls_ascii",
            "nls_utf8",
            "nls_iso8859_1",
            "bcm2835_wdt",
            "bcm2835_rng",
            // USB: the DesignWare controller and its PHY, sticks, keyboards and mice
            "dwc2",
            "phy_generic",
            "usb_storage",
            "uas",
            "sd_mod",
            "usbhid",
            "hid_generic",
            "evdev",
        ];
        if self == Board::Rpi4 {
            // the Pi 4's USB-A ports: a VL805 xHCI on PCIe, its firmware loaded through the
            // firmware's reset controller
            modules.extend(["xhci_pci", "reset_raspberrypi"]);
        }
        modules
    }

    /// The QEMU machine that emulates this board: only the Pi 3 (QEMU 7.2 has no raspi4b and
    /// no Zero 2 W).
    pub fn qemu_machine(self) -> Result<Machine> {
        match self {
            Board::Rpi3 => Ok(Machine::Raspi3b),
            other => bail!(
                "QEMU cannot boot {}: its only 64-bit Raspberry Pi is raspi3b (--board rpi3)",
                other.name()
            ),
        }
    }

    /// The serial console on GPIO 14/15 (pins 8 and 10) with Debian's kernel: the mini UART,
    /// `serial1` in the upstream device trees, so `ttyS1` (the PL011 drives Bluetooth).
    pub fn serial_console(self) -> &'static str {
        "ttyS1"
    }
}

/// Which naming the kernel's device trees follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbNames {
    /// Debian's (upstream) names: config.txt needs `upstream_kernel=1`
    Upstream,
    /// Raspberry Pi OS's names
    Downstream,
}

/// What goes into a bundle; everything fetched can be given as a path.
#[derive(Clone, Debug)]
pub struct Options {
    pub board: Board,
    /// the folder to write (created; files of the same name are replaced, others left)
    pub out: PathBuf,
    /// the kernel, its modules and device trees; default Debian's arm64 kernel
    pub kernel: KernelArgs,
    /// a folder with the GPU firmware (`bootcode.bin`, `start*.elf`, `fixup*.dat`), e.g. the
    /// `boot/` folder of github.com/raspberrypi/firmware; default Debian's raspi-firmware
    pub firmware: Option<PathBuf>,
    /// the static aarch64 boxinit; default built
    pub init: Option<PathBuf>,
    /// the program put on the card as `box`; default the demo box, built
    pub box_path: Option<PathBuf>,
    /// `init.toml` for the card; default a short one
    pub config: Option<PathBuf>,
    /// the initramfs's `/etc/init.toml`; default [`builtin_config`]
    pub builtin_config: Option<PathBuf>,
    /// more files for the card (subfolders too)
    pub files: Option<PathBuf>,
    /// more modules to pack (names or aliases), besides the board's
    pub modules: Vec<String>,
    /// also write an SD card image of the folder here
    pub image: Option<PathBuf>,
    /// its size in MiB; 0: the next power of two that fits (QEMU's SD card needs one)
    pub size_mib: u32,
    /// pack Debian's static busybox as `/bin/sh` (also when the card's config asks for a shell)
    pub busybox: bool,
    /// a static aarch64 busybox to pack as `/bin/sh` instead of Debian's (always packed)
    pub busybox_path: Option<PathBuf>,
}

impl Options {
    /// A bundle of `board` into `out` with every input at its default.
    pub fn new(board: Board, out: &Path) -> Options {
        Options {
            board,
            out: out.to_path_buf(),
            kernel: KernelArgs::default(),
            firmware: None,
            init: None,
            box_path: None,
            config: None,
            builtin_config: None,
            files: None,
            modules: Vec::new(),
            image: None,
            size_mib: 0,
            busybox: false,
            busybox_path: None,
        }
    }
}

/// What [`make`] wrote.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub board: Board,
    pub dir: PathBuf,
    /// the kernel's path in the folder
    pub kernel: PathBuf,
    /// the device trees copied, by file name (the first is the board's main model)
    pub dtbs: Vec<String>,
    pub dtb_names: DtbNames,
    pub initramfs: Initramfs,
    /// every file written into the folder, relative to it
    pub files: Vec<String>,
    pub image: Option<Image>,
}

impl Bundle {
    /// The path of the device tree `name` in the folder.
    pub fn dtb(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The initramfs's `/etc/init.toml` of a Pi bundle: the first FAT partition (any card, any
/// label), coldplug, and the hardware watchdog armed (`bcm2835_wdt`, loaded by coldplug).
pub fn builtin_config(board: Board) -> String {
    format!(
        "# Built-in boxinit configuration of a Raspberry Pi bundle (`cargo xtask bundle --board \
         {}`),\n# /etc/init.toml in the initramfs. init.toml on the card is merged over it.\n\n\
         [boot]\n# the first FAT partition: a card formatted by any tool, with any label\n\
         device = \"auto\"\n\n\
         [modules]\n# no module list: coldplug loads what every device needs\ncoldplug = true\n\n\
         [watchdog]\n# bcm2835_wdt: the machine resets when boxinit stops petting it; add\n\
         # `heartbeat = \"30s\"` in the card's init.toml to make the box prove it is alive\n\
         device = \"/dev/watchdog\"\ntimeout = \"15s\"\n",
        board.name()
    )
}

/// [`builtin_config`] without `[watchdog]`, for QEMU's `raspi3b`: QEMU 7.2 resets that board
/// the moment the watchdog starts (its power-management model acts on the reset
/// configuration at once), so a bundle booted there must not arm it. Power-off still goes
/// through `bcm2835_wdt`, the driver that owns the Pi's reset.
pub fn builtin_config_for_qemu(board: Board) -> String {
    let text = builtin_config(board);
    match text.split_once("\n[watchdog]") {
        Some((before, _)) => format!("{before}\n"),
        None => text,
    }
}

/// The `init.toml` put on the card when none is given.
pub const DEFAULT_CARD_CONFIG: &str = "\
# boxinit's settings for this card, read at every boot. Every key, with its default, is in
# config/init.toml of boxinit; check a file with `boxinit check init.toml`.

[box]
path = \"box\"                  # the program beside this file
restart = \"always\"

# A USB stick labelled STICK, mounted when it is plugged in (any case; read-only by default):
# [[automount]]
# label = \"STICK\"
# path = \"/mnt/stick\"

# Pi features (see README \"Deploy to a Raspberry Pi\"):
# [board]
# usb_serial = \"shell\"         # a shell on the USB cable (Zero 2 W, Pi 4, 3 A+)
# sound = true
# i2c = true
# spi = true
";

/// The card's `init.toml` as boxinit will read it (its `[board]` features applied), or the
/// defaults; an error in it stops the bundle, with boxinit's own message.
pub fn card_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(path) => crate::tools::config::check(path, config::Place::BootPartition),
        None => Ok(Config::default()),
    }
}

/// `config.txt`: 64-bit mode, the kernel and initramfs, the serial console; the upstream
/// device tree names for Debian's kernel; the firmware's switches for the `[board]` features
/// (they act on Raspberry Pi OS's device trees; Debian's have I2C on already, see README).
pub fn config_txt(board: Board, dtb_names: DtbNames, features: &BoardFeatures) -> String {
    let mut text = format!(
        "# Raspberry Pi firmware settings, written by `cargo xtask bundle --board {}` (boxinit).\n\
         # https://www.raspberrypi.com/documentation/computers/config_txt.html\n\
         arm_64bit=1\n\
         kernel={KERNEL}\n\
         # the initramfs is loaded right after the kernel: boxinit is its /init\n\
         initramfs {INITRAMFS} followkernel\n\
         # the serial console on GPIO 14 (TX, pin 8) and 15 (RX, pin 10), 115200 baud\n\
         enable_uart=1\n",
        board.name()
    );
    if dtb_names == DtbNames::Upstream {
        text += "# the kernel's device trees have the upstream names (bcm2837-rpi-3-b.dtb, ...)\n\
                 upstream_kernel=1\n";
    }
    if features.spi && dtb_names == DtbNames::Upstream {
        text += "# SPI0 is switched on in the device trees themselves (spidev on CE0 and CE1)\n";
    }
    let switches = [
        (features.sound, "dtparam=audio=on"),
        (features.i2c, "dtparam=i2c_arm=on"),
        (features.spi, "dtparam=spi=on"),
        (
            features.usb_serial != UsbSerial::Off,
            "dtoverlay=dwc2,dr_mode=peripheral",
        ),
    ];
    if switches.iter().any(|(on, _)| *on) {
        text += "# [board] in init.toml\n";
    }
    for (on, line) in switches {
        if on {
            text += line;
            text.push('\n');
        }
    }
    text
}

/// `cmdline.txt`: the HDMI console (`tty1`) and the serial one, last, so `/dev/console` (the
/// box's output, boxinit's messages) is the serial port; `panic=10` reboots a kernel panic.
pub fn cmdline_txt(board: Board, dtb_names: DtbNames) -> String {
    let serial = match dtb_names {
        DtbNames::Upstream => board.serial_console(),
        // Raspberry Pi OS's kernel resolves the alias to whichever UART is on the pins
        DtbNames::Downstream => "serial0",
    };
    format!("console=tty1 console={serial},115200 panic=10\n")
}

/// The files `config.txt` makes the firmware load: `kernel=`, `initramfs NAME`,
/// `device_tree=` and `start_file=`/`fixup_file=` (in the order written).
pub fn files_named(config_txt: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in config_txt.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let value = match line.split_once('=') {
            Some((key, value))
                if ["kernel", "device_tree", "start_file", "fixup_file"].contains(&key.trim()) =>
            {
                value.trim()
            }
            _ => match line.strip_prefix("initramfs ") {
                // `initramfs NAME [followkernel|ADDRESS]`
                Some(rest) => rest.split_whitespace().next().unwrap_or(""),
                None => continue,
            },
        };
        if !value.is_empty() {
            names.push(value.to_string());
        }
    }
    names
}

/// What is missing from a bundle folder for `board`: every file its `config.txt` names, the
/// board's firmware, at least one of its device trees, `cmdline.txt`. Empty: complete.
pub fn missing_files(dir: &Path, board: Board) -> Vec<String> {
    let config = std::fs::read_to_string(dir.join("config.txt")).unwrap_or_default();
    let mut missing: Vec<String> = ["config.txt", "cmdline.txt"]
        .into_iter()
        .map(str::to_string)
        .chain(files_named(&config))
        .chain(board.firmware().iter().map(|f| f.to_string()))
        .filter(|name| !dir.join(name).is_file())
        .collect();
    let has_dtb = board
        .upstream_dtbs()
        .iter()
        .chain(board.downstream_dtbs())
        .any(|name| dir.join(name).is_file());
    if !has_dtb {
        missing.push(format!(
            "a device tree ({})",
            board.upstream_dtbs().join(", ")
        ));
    }
    missing
}

/// The device trees of `board` in `dir` and how they are named.
pub fn find_dtbs(board: Board, dir: &Path) -> Result<(Vec<String>, DtbNames)> {
    for (names, kind) in [
        (board.upstream_dtbs(), DtbNames::Upstream),
        (board.downstream_dtbs(), DtbNames::Downstream),
    ] {
        let found: Vec<String> = names
            .iter()
            .filter(|n| dir.join(n).is_file())
            .map(|n| n.to_string())
            .collect();
        if !found.is_empty() {
            return Ok((found, kind));
        }
    }
    bail!(
        "{} has none of the {} device trees ({} or {}): pass the kernel's device tree folder \
         with --dtb-dir",
        dir.display(),
        board.name(),
        board.upstream_dtbs().join(", "),
        board.downstream_dtbs().join(", ")
    )
}

/// Switches SPI0 on in an upstream device tree, as `dtparam=spi=on` does for Raspberry Pi
/// OS's: `status = "okay"`, its pins (GPIO 7-11, the `spi0_gpio7` group) as its pinctrl, and
/// a `spidev` on each chip select (`/dev/spidev0.0`, `0.1`). Upstream spidev refuses a bare
/// "spidev" compatible, so the children name one the driver lists (`rohm,dh2228fv`), as is
/// usual for user-space SPI.
pub fn enable_spi(dtb: &[u8]) -> Result<Vec<u8>> {
    let mut tree = Fdt::parse(dtb)?;
    let next = tree.max_phandle() + 1;
    let pins = tree
        .root
        .find_mut("spi0_gpio7")
        .context("the device tree has no spi0_gpio7 pin group")?;
    let phandle = match pins.prop("phandle").and_then(|v| v.get(..4)) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => {
            pins.set_prop("phandle", fdt::cells(&[next]));
            next
        }
    };
    let spi = tree
        .root
        .find_mut("spi@7e204000")
        .context("the device tree has no spi@7e204000 (SPI0)")?;
    spi.set_prop("status", fdt::string("okay"));
    spi.set_prop("pinctrl-names", fdt::string("default"));
    spi.set_prop("pinctrl-0", fdt::cells(&[phandle]));
    for cs in 0..2u32 {
        let name = format!("spidev@{cs}");
        if spi.children.iter().all(|c| c.name != name) {
            spi.children.push(fdt::Node {
                name,
                props: vec![
                    ("compatible".into(), fdt::string("rohm,dh2228fv")),
                    ("reg".into(), fdt::cells(&[cs])),
                    ("spi-max-frequency".into(), fdt::cells(&[500_000])),
                ],
                children: Vec::new(),
            });
        }
    }
    Ok(tree.to_bytes())
}

/// What the bundle's initramfs packs: the board's modules that this kernel has (`knows`; a
/// Raspberry Pi OS kernel builds some in or lacks others), then `extra` (the command line's)
/// and what the card's `init.toml` loads — its own list and its `[board]` features' modules
/// — which must exist (packing fails on an unknown name, with close ones named).
pub fn modules_to_pack(
    board: Board,
    card: &Config,
    extra: &[String],
    knows: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut modules: Vec<String> = board
        .modules()
        .into_iter()
        .filter(|m| knows(m))
        .map(str::to_string)
        .collect();
    for name in extra.iter().chain(&card.modules.load) {
        if !modules.contains(name) {
            modules.push(name.clone());
        }
    }
    modules
}

/// Writes the bundle folder (and the image, when asked).
pub fn make(opts: &Options) -> Result<Bundle> {
    let arch = Arch::Aarch64;
    let context = crate::pack::context::context(arch, &opts.kernel)?;
    let kernel = &context.kernel;
    let dtb_dir = kernel.dtb_dir.as_ref().with_context(|| {
        format!(
            "no device trees found for the kernel {}: pass their folder with --dtb-dir",
            kernel.image.display()
        )
    })?;
    let (dtbs, dtb_names) = find_dtbs(opts.board, dtb_dir)?;
    let firmware = match &opts.firmware {
        Some(dir) => dir.clone(),
        None => crate::fetch::firmware::boot_firmware()?,
    };
    for name in opts.board.firmware() {
        if !firmware.join(name).is_file() {
            bail!(
                "the firmware folder {} has no {name} ({} needs {})",
                firmware.display(),
                opts.board.name(),
                opts.board.firmware().join(", ")
            );
        }
    }
    let built = match (&opts.init, &opts.box_path) {
        (Some(_), Some(_)) => None,
        _ => Some(crate::pack::binaries::built(arch)?),
    };
    let pick = |given: &Option<PathBuf>, default: fn(&crate::pack::binaries::Built) -> PathBuf| {
        given
            .clone()
            .or_else(|| built.as_ref().map(default))
            .unwrap_or_default()
    };
    let init = pick(&opts.init, |b| b.init.clone());
    let box_path = pick(&opts.box_path, |b| b.demo_box.clone());

    let card = card_config(opts.config.as_deref())?;
    if card.board.usb_serial != UsbSerial::Off && opts.board == Board::Rpi3 {
        progress!(
            "warning: [board] usb_serial needs a USB device port: of the rpi3 family only the \
             3 A+ has one (the 3 B and B+ wire theirs to a hub)"
        );
    }
    let dir = &opts.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = Vec::new();
    let mut copy = |from: &Path, name: &str| -> Result<()> {
        std::fs::copy(from, dir.join(name))
            .with_context(|| format!("cannot copy {} to {}", from.display(), dir.display()))?;
        files.push(name.to_string());
        Ok(())
    };
    for name in opts.board.firmware() {
        copy(&firmware.join(name), name)?;
    }
    copy(&kernel.image, KERNEL)?;
    for name in &dtbs {
        copy(&dtb_dir.join(name), name)?;
    }
    if card.board.spi && dtb_names == DtbNames::Upstream {
        // Debian's device trees leave SPI0 off and `dtparam=spi=on` cannot reach them
        for name in &dtbs {
            let path = dir.join(name);
            let patched = std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|d| enable_spi(&d))
                .with_context(|| format!("cannot switch SPI0 on in {name}"))?;
            std::fs::write(&path, patched)?;
        }
    }
    copy(&box_path, "box")?;
    match &opts.config {
        Some(config) => copy(config, "init.toml")?,
        None => {
            std::fs::write(dir.join("init.toml"), DEFAULT_CARD_CONFIG)?;
            files.push("init.toml".to_string());
        }
    }
    let mut write = |name: &str, text: String| -> Result<()> {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
        files.push(name.to_string());
        Ok(())
    };
    write("config.txt", config_txt(opts.board, dtb_names, &card.board))?;
    write("cmdline.txt", cmdline_txt(opts.board, dtb_names))?;

    let builtin = match &opts.builtin_config {
        Some(path) => path.clone(),
        None => {
            let path = target_dir()
                .join("bundle")
                .join(format!("{}-init.toml", opts.board.name()));
            std::fs::create_dir_all(target_dir().join("bundle"))?;
            std::fs::write(&path, builtin_config(opts.board))?;
            path
        }
    };
    let busybox = match (&opts.busybox_path, opts.busybox || card.board.needs_shell()) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(crate::fetch::busybox::fetch(arch)?),
        (None, false) => None,
    };
    let mut modules = modules_to_pack(opts.board, &card, &opts.modules, |m| context.index.knows(m));
    // Wi-Fi when a config asks for it: the supplicant, the chip's firmware, its modules
    let (wifi, wifi_modules) = crate::wifi::pi_bundle(opts.board, &card, &builtin)?;
    modules.extend(
        wifi_modules
            .iter()
            .filter(|m| context.index.knows(m))
            .map(|m| m.to_string()),
    );
    let initramfs = initramfs::make_verbose(
        &wifi,
        &initramfs::Options {
            arch,
            init: &init,
            net: initramfs::net_beside(&init).as_deref(),
            kernel,
            index: &context.index,
            modules: &modules,
            config: Some(&builtin),
            busybox: busybox.as_deref(),
        },
        &dir.join(INITRAMFS),
    )?;
    files.push(INITRAMFS.to_string());
    if let Some(extra) = &opts.files {
        copy_tree(extra, dir, &mut files)
            .with_context(|| format!("cannot copy the files of {}", extra.display()))?;
    }

    let missing = missing_files(dir, opts.board);
    if !missing.is_empty() {
        bail!(
            "the bundle {} lacks {} (a bug in xtask; please report it)",
            dir.display(),
            missing.join(", ")
        );
    }
    let image = match &opts.image {
        Some(path) => Some(write_image(dir, path, opts.size_mib)?),
        None => None,
    };
    Ok(Bundle {
        board: opts.board,
        dir: dir.clone(),
        kernel: dir.join(KERNEL),
        dtbs,
        dtb_names,
        initramfs,
        files,
        image,
    })
}

/// The bundle of the Raspberry Pi 3 as QEMU's `raspi3b` boots it: the folder in
/// `out_dir/bundle/`, its SD card image as `out_dir/disk.img`, and a [`Prepared`] boot of
/// its kernel, device tree (`bcm2837-rpi-3-b.dtb`), initramfs and card (for `run --board`
/// and the scenarios with `board` = `raspi3b`). Its built-in config, unless given, is
/// [`builtin_config_for_qemu`].
pub fn prepare_raspi3b(opts: &PrepareOptions, out_dir: &Path) -> Result<Prepared> {
    let folder = out_dir.join("bundle");
    // a folder from an earlier run may hold files this one does not write
    let _ = std::fs::remove_dir_all(&folder);
    let disk = out_dir.join("disk.img");
    let builtin = match &opts.builtin_config {
        Some(path) => path.clone(),
        None => {
            std::fs::create_dir_all(out_dir)?;
            let path = out_dir.join("builtin.toml");
            std::fs::write(&path, builtin_config_for_qemu(Board::Rpi3))?;
            path
        }
    };
    let made = make(&Options {
        kernel: opts.kernel.clone(),
        init: opts.init.clone(),
        box_path: opts.box_path.clone(),
        config: opts.config.clone(),
        builtin_config: Some(builtin),
        files: opts.files.clone(),
        modules: opts.modules.clone(),
        image: Some(disk.clone()),
        size_mib: opts.disk_size_mib,
        busybox: opts.busybox,
        ..Options::new(Board::Rpi3, &folder)
    })?;
    let image = made.image.clone().context("the bundle wrote no image")?;
    Ok(Prepared {
        arch: Arch::Aarch64,
        machine: Machine::Raspi3b,
        kernel: made.kernel.clone(),
        dtb: Some(made.dtb("bcm2837-rpi-3-b.dtb")),
        initrd: made.initramfs.path.clone(),
        disk,
        initramfs: made.initramfs,
        image,
    })
}

/// An SD card image of `folder` made by the host's own tools, not by xtask's FAT writer: an
/// MBR with one FAT32 partition at 1 MiB (`sfdisk`), formatted by `mkfs.vfat` with the label
/// PICARD, the files copied by `mcopy` — as a user's card formatted elsewhere would be.
pub fn card_by_host_tools(folder: &Path, image: &Path, size_mib: u32) -> Result<()> {
    let run = |program: &str, args: &[&std::ffi::OsStr], input: Option<&str>| -> Result<()> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("cannot run {program}: apt-get install fdisk dosfstools mtools")
            })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    let _ = std::fs::remove_file(image);
    std::fs::File::create(image)?.set_len(u64::from(size_mib) << 20)?;
    let img = image.as_os_str();
    run(
        "sfdisk",
        &["-q".as_ref(), img],
        Some("start=2048, type=c\n"),
    )?;
    let blocks = (u64::from(size_mib) * 1024 - 1024).to_string();
    run(
        "mkfs.vfat",
        &[
            "-F".as_ref(),
            "32".as_ref(),
            "-s".as_ref(),
            "1".as_ref(),
            "-n".as_ref(),
            "PICARD".as_ref(),
            "--offset".as_ref(),
            "2048".as_ref(),
            img,
            blocks.as_ref(),
        ],
        None,
    )?;
    let mut target = image.as_os_str().to_os_string();
    target.push("@@1048576");
    let mut args: Vec<std::ffi::OsString> = vec!["-s".into(), "-i".into(), target];
    for entry in std::fs::read_dir(folder)? {
        args.push(entry?.path().into_os_string());
    }
    args.push("::".into());
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    run("mcopy", &args, None)
}

/// Copies every file under `from` into `to`, subfolders too.
fn copy_tree(from: &Path, to: &Path, files: &mut Vec<String>) -> Result<()> {
    let mut found = Vec::new();
    collect(from, from, &mut found)?;
    for relative in found {
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from.join(&relative), &target)
            .with_context(|| format!("cannot copy {}", relative.display()))?;
        files.push(relative.to_string_lossy().into_owned());
    }
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_path_buf());
        }
    }
    Ok(())
}

/// The total size of the files under `dir`.
fn folder_size(dir: &Path) -> Result<u64> {
    let mut found = Vec::new();
    collect(dir, dir, &mut found)?;
    found
        .iter()
        .try_fold(0, |sum, f| Ok(sum + std::fs::metadata(dir.join(f))?.len()))
}

/// The smallest power-of-two card, at least 64 MiB, holding `bytes` with a quarter to spare
/// (FAT's own tables, and room for the box to grow). QEMU's SD card must be a power of two.
pub fn card_size_mib(bytes: u64) -> u32 {
    let needed = (bytes + bytes / 4 + (2 << 20)) >> 20;
    let mut size = 64u32;
    while u64::from(size) < needed {
        size *= 2;
    }
    size
}

/// An SD card image (MBR, one FAT partition labelled BOOT) holding the folder.
fn write_image(dir: &Path, path: &Path, size_mib: u32) -> Result<Image> {
    let size_mib = match size_mib {
        0 => card_size_mib(folder_size(dir)?),
        size => size,
    };
    let made = image::make(
        path,
        &ImageOptions {
            size_mib,
            files: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .with_context(|| format!("cannot make the SD card image {}", display_path(path)))?;
    progress!("{}", image::describe(&made));
    Ok(made)
}

/// Lines for the user: the folder, its files, the image.
pub fn describe(bundle: &Bundle) -> String {
    let mut out = format!(
        "bundle {} for {} ({} files): {}\n",
        display_path(&bundle.dir),
        bundle.board.name(),
        bundle.files.len(),
        bundle.files.join(" ")
    );
    out += &initramfs::describe(&bundle.initramfs);
    out.push('\n');
    if let Some(image) = &bundle.image {
        out += &format!(
            "image {}  {}\n",
            display_path(&image.path),
            format_size(image.size)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxinit::config::Layer;

    #[test]
    fn config_txt_names_kernel_initramfs_and_uart() {
        let text = config_txt(Board::Rpi3, DtbNames::Upstream, &BoardFeatures::default());
        assert!(!text.contains("dtparam"));
        for line in [
            "arm_64bit=1",
            "kernel=kernel8.img",
            "initramfs initramfs.cpio.gz followkernel",
            "enable_uart=1",
            "upstream_kernel=1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        let features = BoardFeatures {
            usb_serial: UsbSerial::Shell,
            sound: true,
            i2c: true,
            spi: true,
        };
        let text = config_txt(Board::Rpi4, DtbNames::Downstream, &features);
        assert!(!text.contains("upstream_kernel"));
        for line in [
            "dtparam=audio=on",
            "dtparam=i2c_arm=on",
            "dtparam=spi=on",
            "dtoverlay=dwc2,dr_mode=peripheral",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn every_file_config_txt_names_is_checked() {
        for board in [Board::Rpi3, Board::Rpi4, Board::Rpi02w] {
            let text = config_txt(board, DtbNames::Upstream, &BoardFeatures::default());
            assert_eq!(files_named(&text), [KERNEL, INITRAMFS]);
        }
        assert_eq!(
            files_named(
                "# kernel=no.img\nkernel = k.img\ninitramfs i.gz 0x1000\ndevice_tree=d.dtb\n"
            ),
            ["k.img", "i.gz", "d.dtb"]
        );
        let dir = crate::tools::testing::temp_dir("bundle-missing");
        let text = config_txt(Board::Rpi4, DtbNames::Upstream, &BoardFeatures::default());
        std::fs::write(dir.join("config.txt"), text).unwrap();
        assert_eq!(
            missing_files(&dir, Board::Rpi4),
            [
                "cmdline.txt",
                "kernel8.img",
                "initramfs.cpio.gz",
                "start4.elf",
                "fixup4.dat",
                "a device tree (bcm2711-rpi-4-b.dtb, bcm2711-rpi-400.dtb, bcm2711-rpi-cm4-io.dtb)"
            ]
        );
        for name in [
            "cmdline.txt",
            KERNEL,
            INITRAMFS,
            "start4.elf",
            "fixup4.dat",
            "bcm2711-rpi-400.dtb",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert!(missing_files(&dir, Board::Rpi4).is_empty());
    }

    #[test]
    fn cmdline_has_hdmi_then_serial() {
        assert_eq!(
            cmdline_txt(Board::Rpi3, DtbNames::Upstream),
            "console=tty1 console=ttyS1,115200 panic=10\n"
        );
        assert!(cmdline_txt(Board::Rpi02w, DtbNames::Downstream).contains("console=serial0"));
    }

    #[test]
    fn boards_name_their_files() {
        assert_eq!(
            Board::Rpi3.firmware(),
            ["bootcode.bin", "start.elf", "fixup.dat"]
        );
        assert_eq!(Board::Rpi4.firmware(), ["start4.elf", "fixup4.dat"]);
        assert!(Board::Rpi4.modules().contains(&"xhci_pci"));
        assert!(!Board::Rpi3.modules().contains(&"xhci_pci"));
        for board in [Board::Rpi3, Board::Rpi4, Board::Rpi02w] {
            let modules = board.modules();
            for needed in [
                "bcm2835_wdt",
                "vfat",
                "nls_cp437",
                "dwc2",
                "usb_storage",
                "usbhid",
            ] {
                assert!(modules.contains(&needed), "{}: {needed}", board.name());
            }
        }
    }

    #[test]
    fn card_config_features_become_modules() {
        let dir = crate::tools::testing::temp_dir("bundle-card");
        let path = dir.join("init.toml");
        std::fs::write(&path, "[board]\nsound = true\ni2c = true\n").unwrap();
        let card = card_config(Some(&path)).unwrap();
        assert_eq!(
            card.modules.load,
            ["vchiq", "snd_bcm2835", "i2c_bcm2835", "i2c_dev"]
        );
        std::fs::write(&path, "[board]\nsond = true\n").unwrap();
        let err = card_config(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("init.toml:2:1") && err.contains("sond"),
            "{err}"
        );
        assert_eq!(card_config(None).unwrap(), Config::default());
    }

    #[test]
    fn builtin_configs_arm_the_watchdog_but_not_in_qemu() {
        let (config, errors) = config::load(&[Layer::Text {
            name: "builtin".into(),
            text: builtin_config(Board::Rpi3),
        }]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(config.watchdog.device.as_deref(), Some("/dev/watchdog"));
        assert!(config.modules.coldplug && config.modules.load.is_empty());
        assert_eq!(config.boot.device.to_string(), "auto");
        let (config, errors) = config::load(&[Layer::Text {
            name: "qemu".into(),
            text: builtin_config_for_qemu(Board::Rpi3),
        }]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(config.watchdog.device, None);
        assert_eq!(config.boot.device.to_string(), "auto");
        // the starter card file is checked as the boot partition's file, as boxinit will
        let errors = config::check_file(
            "card",
            DEFAULT_CARD_CONFIG.as_bytes().to_vec(),
            config::Place::BootPartition,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn packed_modules_follow_board_and_card() {
        let dir = crate::tools::testing::temp_dir("bundle-pack");
        let path = dir.join("init.toml");
        std::fs::write(
            &path,
            "[board]\nsound = true\nusb_serial = \"box\"\n[modules]\nload = [\"ads1015\"]\n",
        )
        .unwrap();
        let card = card_config(Some(&path)).unwrap();
        let extra = vec!["spi_bcm2835".to_string()];
        let rpi4 = modules_to_pack(Board::Rpi4, &card, &extra, |_| true);
        for name in [
            "sdhci_iproc",
            "xhci_pci",
            "bcm2835_wdt",
            "vfat",
            "usb_storage",
            "usbhid",
            "evdev",
            "spi_bcm2835",
            "ads1015",
            "vchiq",
            "snd_bcm2835",
            "g_serial",
        ] {
            assert!(
                rpi4.iter().any(|m| m == name),
                "rpi4 lacks {name}: {rpi4:?}"
            );
        }
        assert_eq!(rpi4.iter().filter(|m| *m == "dwc2").count(), 1);
        let rpi3 = modules_to_pack(Board::Rpi3, &Config::default(), &[], |m| m != "uas");
        assert!(
            !rpi3.iter().any(|m| m == "xhci_pci" || m == "uas"),
            "{rpi3:?}"
        );
        assert!(rpi3.iter().any(|m| m == "bcm2835"));
    }

    #[test]
    fn card_sizes_are_powers_of_two() {
        assert_eq!(card_size_mib(0), 64);
        assert_eq!(card_size_mib(40 << 20), 64);
        assert_eq!(card_size_mib(60 << 20), 128);
        assert!(card_size_mib(300 << 20).is_power_of_two());
    }

    #[test]
    fn dtbs_found_by_either_naming() {
        let dir = crate::tools::testing::temp_dir("bundle-dtbs");
        assert!(find_dtbs(Board::Rpi3, &dir).is_err());
        std::fs::write(dir.join("bcm2710-rpi-3-b.dtb"), b"").unwrap();
        assert_eq!(
            find_dtbs(Board::Rpi3, &dir).unwrap(),
            (
                vec!["bcm2710-rpi-3-b.dtb".to_string()],
                DtbNames::Downstream
            )
        );
        std::fs::write(dir.join("bcm2837-rpi-3-b.dtb"), b"").unwrap();
        assert_eq!(find_dtbs(Board::Rpi3, &dir).unwrap().1, DtbNames::Upstream);
    }
}
