//! What the Pi's firmware reads from the card: `config.txt` (64-bit mode, the kernel and
//! initramfs, the UART, the boot-time switches, the `[board]` features' switches) and
//! `cmdline.txt`, the files `config.txt` names, and what a bundle folder lacks to boot.
//! Every boot-time switch is checked against the Raspberry Pi documentation
//! (raspberrypi/documentation, `computers/config_txt/boot.adoc`, `memory.adoc`,
//! `configuration/boot_folder.adoc`), written with a comment saying what it does, and one
//! `[board]` key away from the firmware's default (`boxinit::config::board`).

use std::path::Path;

use boxinit::config::board::{Board as BoardFeatures, UsbSerial};

use crate::media::board::{Board, DtbNames};

/// The kernel's file name in the bundle (`kernel=` in config.txt).
pub const KERNEL: &str = "kernel8.img";
/// The initramfs's file name in the bundle (`initramfs` in config.txt).
pub const INITRAMFS: &str = "initramfs.cpio.gz";

/// `config.txt`: 64-bit mode, the kernel and initramfs, the serial console; the upstream
/// device tree names for Debian's kernel; the switches that make the firmware reach the
/// kernel sooner ([`boot_time_switches`]); the firmware's switches for the `[board]`
/// features (they act on Raspberry Pi OS's device trees; Debian's have I2C on already, see
/// README).
pub fn config_txt(board: Board, dtb_names: DtbNames, features: &BoardFeatures) -> String {
    let mut text = format!(
        "# Raspberry Pi firmware settings, written by boxinit's\n\
         # `cargo xtask bundle --board {}`.\n\
         # https://www.raspberrypi.com/documentation/computers/config_txt.html\n\
         arm_64bit=1\n\
         {}\
         kernel={KERNEL}\n\
         # the initramfs is loaded right after the kernel: boxinit is its /init\n\
         initramfs {INITRAMFS} followkernel\n\
         # the serial console on GPIO 14 (TX, pin 8) and 15 (RX, pin 10), 115200 baud\n\
         enable_uart=1\n",
        board.name(),
        comment(if features.gzip_kernel {
            "gzip-compressed: the firmware knows it by its first bytes and inflates it \
             ([board] gzip_kernel)"
        } else {
            "the raw Image ([board] gzip_kernel = false)"
        })
    );
    if dtb_names == DtbNames::Upstream {
        text += "# the kernel's device trees have the upstream names (bcm2837-rpi-3-b.dtb, ...)\n\
                 upstream_kernel=1\n";
    }
    text += &comment(
        "Fewer bytes and less waiting before the kernel starts; each line is one key of \
         [board] in init.toml away from the firmware's default (README).",
    );
    for (why, line) in boot_time_switches(board, features) {
        text += &comment(&why);
        text += &line;
        text.push('\n');
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

/// The firmware ignores what lies past the 98th character of a line ("previously 78",
/// `config_txt/what_is_config_txt.adoc`): comments are wrapped within the older limit.
pub const LINE_LIMIT: usize = 78;

/// `text` as `#` lines of at most [`LINE_LIMIT`] characters.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > LINE_LIMIT && line != "#" {
            out += &line;
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line += word;
    }
    out + &line + "\n"
}

/// The lines that make the firmware reach the kernel sooner, each with its comment, for the
/// `[board]` keys that leave them in (all of them by default). What each does is the
/// Raspberry Pi documentation's: `boot_folder.adoc` (the cut-down firmware), `memory.adoc`
/// (`gpu_mem`), `boot.adoc` (the rest).
pub fn boot_time_switches(board: Board, features: &BoardFeatures) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    if features.cut_down() {
        let [start, fixup] = board.start_fixup(true);
        lines.push((
            format!(
                "the cut-down GPU firmware ({start}: no codecs, no 3D, a small framebuffer; a \
                 third of the full one's bytes or less) with the least GPU memory, 16 MB, \
                 which picks it anyway: no sound or display asked for ([board] \
                 cut_down_firmware)"
            ),
            format!("start_file={start}\nfixup_file={fixup}\ngpu_mem=16"),
        ));
    }
    lines.push((
        format!(
            "the firmware waits {} before loading the kernel (its default: 1 s; [board] \
             boot_delay)",
            match features.boot_delay {
                0 => "no time".to_string(),
                1 => "1 s".to_string(),
                n => format!("{n} s"),
            }
        ),
        format!("boot_delay={}", features.boot_delay),
    ));
    if !features.splash {
        lines.push((
            "no rainbow square on HDMI at power-up ([board] splash)".to_string(),
            "disable_splash=1".to_string(),
        ));
    }
    if !features.poe_fan {
        lines.push((
            "no I2C probe for a PoE HAT's fan at power-up, which happens even without one \
             (\"useful if you need to minimise boot time\"; [board] poe_fan)"
                .to_string(),
            "disable_poe_fan=1".to_string(),
        ));
    }
    if !features.hat_eeprom {
        lines.push((
            "no read of a HAT's ID EEPROM on I2C at power-up; a HAT's overlay is not \
             applied by the firmware ([board] hat_eeprom)"
                .to_string(),
            "force_eeprom_read=0".to_string(),
        ));
    }
    lines
}

/// `cmdline.txt`: the serial console, so `/dev/console` (the box's output, boxinit's
/// messages) is the serial port; with `[board] display`, the HDMI console (`tty1`) before
/// it, where the kernel's messages show too; `panic=10` reboots a kernel panic.
pub fn cmdline_txt(board: Board, dtb_names: DtbNames, features: &BoardFeatures) -> String {
    let serial = match dtb_names {
        DtbNames::Upstream => board.serial_console(),
        // Raspberry Pi OS's kernel resolves the alias to whichever UART is on the pins
        DtbNames::Downstream => "serial0",
    };
    let hdmi = if features.display {
        "console=tty1 "
    } else {
        ""
    };
    format!("{hdmi}console={serial},115200 panic=10\n")
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

/// The firmware files a folder's `config.txt` makes `board` read: `bootcode.bin` where the
/// board has it, then the `start_file`/`fixup_file` pair it names, or the full firmware's.
pub fn firmware_files(config_txt: &str, board: Board) -> Vec<String> {
    let named = |key: &str| {
        config_txt
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.trim().split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    let [start, fixup] = board.start_fixup(false);
    board
        .bootcode()
        .map(str::to_string)
        .into_iter()
        .chain([
            named("start_file").unwrap_or_else(|| start.to_string()),
            named("fixup_file").unwrap_or_else(|| fixup.to_string()),
        ])
        .collect()
}

/// What is missing from a bundle folder for `board`: every file its `config.txt` names, the
/// firmware it makes the board read, at least one of its device trees, `cmdline.txt`.
/// Empty: complete.
pub fn missing_files(dir: &Path, board: Board) -> Vec<String> {
    let config = std::fs::read_to_string(dir.join("config.txt")).unwrap_or_default();
    let mut missing: Vec<String> = Vec::new();
    for name in ["config.txt".to_string(), "cmdline.txt".to_string()]
        .into_iter()
        .chain(files_named(&config))
        .chain(firmware_files(&config, board))
    {
        if !dir.join(&name).is_file() && !missing.contains(&name) {
            missing.push(name);
        }
    }
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

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

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
            ..Default::default()
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

    /// Every boot-time switch is in by default, each with its comment, and each key takes
    /// its own line out (or changes it) and no other.
    #[test]
    fn boot_time_switches_on_and_off() {
        let all = [
            "start_file=start_cd.elf",
            "fixup_file=fixup_cd.dat",
            "gpu_mem=16",
            "boot_delay=0",
            "disable_splash=1",
            "disable_poe_fan=1",
            "force_eeprom_read=0",
        ];
        let default = config_txt(Board::Rpi3, DtbNames::Upstream, &BoardFeatures::default());
        for line in all {
            assert!(lines(&default).contains(&line), "{line}:\n{default}");
        }
        for features in [
            BoardFeatures::default(),
            BoardFeatures {
                usb_serial: UsbSerial::Box,
                sound: true,
                i2c: true,
                spi: true,
                boot_delay: 200,
                splash: true,
                gzip_kernel: false,
                ..Default::default()
            },
        ] {
            for board in [Board::Rpi3, Board::Rpi4, Board::Rpi02w] {
                let text = config_txt(board, DtbNames::Upstream, &features);
                for line in text.lines() {
                    assert!(
                        line.len() <= LINE_LIMIT,
                        "too long for the firmware: {line}"
                    );
                }
            }
        }
        // a comment before every line, saying which key turns it off
        for (comment, _) in boot_time_switches(Board::Rpi3, &BoardFeatures::default()) {
            assert!(comment.contains("[board]"), "{comment}");
        }
        let rpi4 = config_txt(Board::Rpi4, DtbNames::Upstream, &BoardFeatures::default());
        assert!(lines(&rpi4).contains(&"start_file=start4cd.elf"), "{rpi4}");
        assert!(lines(&rpi4).contains(&"fixup_file=fixup4cd.dat"), "{rpi4}");
        let off = |features: BoardFeatures, gone: &[&str], changed: &[&str]| {
            let text = config_txt(Board::Rpi3, DtbNames::Upstream, &features);
            for line in all {
                let there = lines(&text).contains(&line);
                assert_eq!(there, !gone.contains(&line), "{line}:\n{text}");
            }
            for line in changed {
                assert!(lines(&text).contains(line), "{line}:\n{text}");
            }
        };
        let cut_down = [
            "start_file=start_cd.elf",
            "fixup_file=fixup_cd.dat",
            "gpu_mem=16",
        ];
        off(
            BoardFeatures {
                cut_down_firmware: false,
                ..Default::default()
            },
            &cut_down,
            &[],
        );
        off(
            BoardFeatures {
                display: true,
                ..Default::default()
            },
            &cut_down,
            &[],
        );
        off(
            BoardFeatures {
                sound: true,
                ..Default::default()
            },
            &cut_down,
            &["dtparam=audio=on"],
        );
        off(
            BoardFeatures {
                boot_delay: 1,
                ..Default::default()
            },
            &["boot_delay=0"],
            &["boot_delay=1"],
        );
        off(
            BoardFeatures {
                splash: true,
                ..Default::default()
            },
            &["disable_splash=1"],
            &[],
        );
        off(
            BoardFeatures {
                poe_fan: true,
                ..Default::default()
            },
            &["disable_poe_fan=1"],
            &[],
        );
        off(
            BoardFeatures {
                hat_eeprom: true,
                ..Default::default()
            },
            &["force_eeprom_read=0"],
            &[],
        );
        // the kernel's name stays; only its comment says what it is
        let raw = config_txt(
            Board::Rpi3,
            DtbNames::Upstream,
            &BoardFeatures {
                gzip_kernel: false,
                ..Default::default()
            },
        );
        assert!(raw.contains("# the raw Image") && lines(&raw).contains(&"kernel=kernel8.img"));
        assert!(default.contains("# gzip-compressed"));
    }

    #[test]
    fn every_file_config_txt_names_is_checked() {
        for board in [Board::Rpi3, Board::Rpi4, Board::Rpi02w] {
            let text = config_txt(board, DtbNames::Upstream, &BoardFeatures::default());
            let [start, fixup] = board.start_fixup(true);
            assert_eq!(files_named(&text), [KERNEL, INITRAMFS, start, fixup]);
            assert_eq!(firmware_files(&text, board), board.firmware(true));
            let full = BoardFeatures {
                display: true,
                ..Default::default()
            };
            let text = config_txt(board, DtbNames::Upstream, &full);
            assert_eq!(files_named(&text), [KERNEL, INITRAMFS]);
            assert_eq!(firmware_files(&text, board), board.firmware(false));
        }
        assert_eq!(
            files_named(
                "# kernel=no.img\nkernel = k.img\ninitramfs i.gz 0x1000\ndevice_tree=d.dtb\n"
            ),
            ["k.img", "i.gz", "d.dtb"]
        );
        assert_eq!(
            firmware_files("# start_file=no.elf\n", Board::Rpi3),
            ["bootcode.bin", "start.elf", "fixup.dat"]
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
                "start4cd.elf",
                "fixup4cd.dat",
                "a device tree (bcm2711-rpi-4-b.dtb, bcm2711-rpi-400.dtb, bcm2711-rpi-cm4-io.dtb)"
            ]
        );
        for name in [
            "cmdline.txt",
            KERNEL,
            INITRAMFS,
            "start4cd.elf",
            "fixup4cd.dat",
            "bcm2711-rpi-400.dtb",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert!(missing_files(&dir, Board::Rpi4).is_empty());
    }

    #[test]
    fn cmdline_has_serial_and_hdmi_only_with_a_display() {
        let none = BoardFeatures::default();
        assert_eq!(
            cmdline_txt(Board::Rpi3, DtbNames::Upstream, &none),
            "console=ttyS1,115200 panic=10\n"
        );
        let display = BoardFeatures {
            display: true,
            ..Default::default()
        };
        assert_eq!(
            cmdline_txt(Board::Rpi3, DtbNames::Upstream, &display),
            "console=tty1 console=ttyS1,115200 panic=10\n"
        );
        assert!(cmdline_txt(Board::Rpi02w, DtbNames::Downstream, &none).contains("console=serial0"));
    }
}
