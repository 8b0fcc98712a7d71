//! What the Pi's firmware reads from the card: `config.txt` (64-bit mode, the kernel and
//! initramfs, the UART, the `[board]` features' switches) and `cmdline.txt`, the files
//! `config.txt` names, and what a bundle folder lacks to boot.

use std::path::Path;

use boxinit::config::board::{Board as BoardFeatures, UsbSerial};

use crate::media::board::{Board, DtbNames};

/// The kernel's file name in the bundle (`kernel=` in config.txt).
pub const KERNEL: &str = "kernel8.img";
/// The initramfs's file name in the bundle (`initramfs` in config.txt).
pub const INITRAMFS: &str = "initramfs.cpio.gz";

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

#[cfg(test)]
mod tests {
    use super::*;

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
        let dir = crate::tools::testing::temp_dir("config-txt-missing");
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
}
