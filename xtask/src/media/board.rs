//! The Raspberry Pi boards a bundle is made for and what differs between them: the GPU
//! firmware files (full or cut down), the device trees under both namings (and SPI0 switched on in Debian's, as
//! `dtparam=spi=on` does in Raspberry Pi OS's), the modules packed for every bundle, the serial
//! console. Writing the folder is `media/bundle.rs`'s.

use std::path::Path;

use anyhow::{bail, Context, Result};
use boxinit::config::Config;

use crate::media::fdt::{self, Fdt};

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

impl Board {
    /// Its name on the command line: `rpi3`, `rpi4`, `rpi02w`.
    pub fn name(self) -> &'static str {
        match self {
            Board::Rpi3 => "rpi3",
            Board::Rpi4 => "rpi4",
            Board::Rpi02w => "rpi02w",
        }
    }

    /// The second-stage boot loader the boot ROM reads from the card, on the boards that
    /// have one: the Pi 4 boots from its EEPROM.
    pub fn bootcode(self) -> Option<&'static str> {
        match self {
            Board::Rpi3 | Board::Rpi02w => Some("bootcode.bin"),
            Board::Rpi4 => None,
        }
    }

    /// The GPU firmware and its fixup file (a matched pair): the full one, or the cut-down
    /// one (`start_cd.elf`: no codecs, no 3D, a limited framebuffer; the Pi 4's `start4cd.elf`).
    pub fn start_fixup(self, cut_down: bool) -> [&'static str; 2] {
        match (self, cut_down) {
            (Board::Rpi3 | Board::Rpi02w, false) => ["start.elf", "fixup.dat"],
            (Board::Rpi3 | Board::Rpi02w, true) => ["start_cd.elf", "fixup_cd.dat"],
            (Board::Rpi4, false) => ["start4.elf", "fixup4.dat"],
            (Board::Rpi4, true) => ["start4cd.elf", "fixup4cd.dat"],
        }
    }

    /// The GPU firmware files this board's boot reads (from `raspi-firmware`), with the
    /// full or the cut-down firmware: only these go in the folder.
    pub fn firmware(self, cut_down: bool) -> Vec<&'static str> {
        self.bootcode()
            .into_iter()
            .chain(self.start_fixup(cut_down))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_name_their_files() {
        assert_eq!(
            Board::Rpi3.firmware(false),
            ["bootcode.bin", "start.elf", "fixup.dat"]
        );
        assert_eq!(
            Board::Rpi02w.firmware(true),
            ["bootcode.bin", "start_cd.elf", "fixup_cd.dat"]
        );
        assert_eq!(Board::Rpi4.firmware(false), ["start4.elf", "fixup4.dat"]);
        assert_eq!(Board::Rpi4.firmware(true), ["start4cd.elf", "fixup4cd.dat"]);
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
    fn packed_modules_follow_board_and_card() {
        let dir = crate::tools::testing::temp_dir("board-pack");
        let path = dir.join("init.toml");
        std::fs::write(
            &path,
            "[board]\nsound = true\nusb_serial = \"box\"\n[modules]\nload = [\"ads1015\"]\n",
        )
        .unwrap();
        let card =
            crate::tools::config::check(&path, boxinit::config::Place::BootPartition).unwrap();
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
    fn dtbs_found_by_either_naming() {
        let dir = crate::tools::testing::temp_dir("board-dtbs");
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
