//! The `init.toml` files of a Pi bundle: the initramfs's built-in one (the first FAT
//! partition, the board's SD host and watchdog first, then coldplug, the watchdog armed;
//! without the watchdog for QEMU's `raspi3b`), the starter file put on the card, and the
//! card's file read back as boxinit will read it.

use std::path::Path;

use anyhow::Result;
use boxinit::config::{self, Config};

use crate::media::board::Board;

/// The modules that bring up a board's SD card, and its watchdog, which this config arms
/// before the box starts: `[modules] boot`, loaded without a walk of sysfs (reading the Pi 3's
/// 45 modaliases took 53-58 ms under QEMU) and without the other storage drivers coldplug's
/// first pass would load (the Pi 3's Wi-Fi SDHCI host). A Pi booting from USB finds no SD
/// card within 2 s of them: every device's driver is loaded then, dwc2 with the rest.
pub fn boot_modules(board: Board) -> &'static [&'static str] {
    match board {
        // the SD card on the sdhost controller
        Board::Rpi3 | Board::Rpi02w => &["bcm2835", "bcm2835_wdt"],
        // the SD card on emmc2, an SDHCI
        Board::Rpi4 => &["sdhci_iproc", "bcm2835_wdt"],
    }
}

/// The initramfs's `/etc/init.toml` of a Pi bundle: the first FAT partition (any card, any
/// label), the SD card's and the watchdog's modules first ([`boot_modules`]), coldplug for
/// the rest once the box runs, and the hardware watchdog armed.
pub fn builtin_config(board: Board) -> String {
    let boot: Vec<String> = boot_modules(board)
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect();
    format!(
        "# Built-in boxinit configuration of a Raspberry Pi bundle (`cargo xtask bundle --board \
         {}`),\n# /etc/init.toml in the initramfs. init.toml on the card is merged over it.\n\n\
         [boot]\n# the first FAT partition: a card formatted by any tool, with any label\n\
         device = \"auto\"\n\n\
         [modules]\n# the SD card's and the watchdog's drivers first, without reading sysfs; the \
         box starts\n# once the card is mounted, and coldplug loads what every other device \
         needs after it\n# (wait_for in the card's init.toml says what the box needs first)\n\
         coldplug = true\nboot = [{}]\n\n\
         [watchdog]\n# bcm2835_wdt: the machine resets when boxinit stops petting it; add\n\
         # `heartbeat = \"30s\"` in the card's init.toml to make the box prove it is alive\n\
         device = \"/dev/watchdog\"\ntimeout = \"15s\"\n",
        board.name(),
        boot.join(", ")
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
# config/init.toml of boxinit; check a file in boxinit's folder with
# `cargo xtask check init.toml` before it goes on the card.

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
# display = true               # an HDMI screen: the full GPU firmware and console=tty1
";

/// The card's `init.toml` as boxinit will read it (its `[board]` features applied), or the
/// defaults; an error in it stops the bundle, with boxinit's own message.
pub fn card_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(path) => crate::tools::config::check(path, config::Place::BootPartition),
        None => Ok(Config::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxinit::config::Layer;

    #[test]
    fn card_config_features_become_modules() {
        let dir = crate::tools::testing::temp_dir("init-toml-card");
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
    fn every_boards_boot_modules_are_packed() {
        for board in [Board::Rpi3, Board::Rpi4, Board::Rpi02w] {
            for module in boot_modules(board) {
                assert!(board.modules().contains(module), "{board:?} {module}");
            }
        }
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
        assert_eq!(config.modules.boot, ["bcm2835", "bcm2835_wdt"]);
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
        // and it names the command that checks it on the host (issue 18: `boxinit check`
        // there was no command a user could run)
        assert!(DEFAULT_CARD_CONFIG.contains("`cargo xtask check init.toml`"));
    }
}
