//! `[board]`: the Raspberry Pi's features, one key each — the USB serial console (gadget),
//! sound, I2C and SPI. Each key stands for the modules it needs (and, for the serial console,
//! a program on `/dev/ttyGS0`); `config::load` adds them to the rest of the configuration,
//! so the loader, coldplug and supervisor do the work. `cargo xtask bundle` reads the same
//! keys to pack those modules and write `config.txt`, and the keys that only it reads: the
//! HDMI display, and the firmware's boot-time switches (cut-down firmware, `boot_delay`, the
//! splash, the PoE fan and HAT EEPROM probes, the gzip-compressed kernel), each one key away
//! from the firmware's own default. The init checks those and does nothing with them. Pure:
//! no I/O.

use serde::Deserialize;

/// The USB gadget's serial port, made by `g_serial` once the controller (`dwc2`) is in
/// peripheral mode.
pub const USB_SERIAL_TTY: &str = "/dev/ttyGS0";

/// `[board]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Board {
    /// A serial console over the USB cable (USB gadget, ACM): a shell on it, or the box's
    /// console moved to it.
    pub usb_serial: UsbSerial,
    /// The Pi's own audio (headphone jack, HDMI): `snd_bcm2835` through the VideoCore.
    pub sound: bool,
    /// I2C on GPIO 2/3: `/dev/i2c-1`.
    pub i2c: bool,
    /// SPI on GPIO 7-11: `/dev/spidev0.0` and `0.1`.
    pub spi: bool,
    /// An HDMI display: the firmware's full GPU code with its default GPU memory, and the
    /// kernel's console on the screen (`console=tty1`). Off: serial console only.
    pub display: bool,
    /// The cut-down firmware (`start_cd.elf`, `gpu_mem=16`) when neither `sound` nor
    /// `display` needs the GPU; `false`: always the full one. Read by `cargo xtask bundle`.
    pub cut_down_firmware: bool,
    /// Seconds the firmware waits before loading the kernel (`boot_delay`; its own default
    /// is 1). Read by `cargo xtask bundle`.
    pub boot_delay: u8,
    /// The firmware's rainbow square on HDMI at power-up (`disable_splash` when off).
    pub splash: bool,
    /// The firmware's probe for a PoE HAT's fan on I2C at power-up (`disable_poe_fan` when
    /// off).
    pub poe_fan: bool,
    /// The firmware's read of a HAT's ID EEPROM at power-up (`force_eeprom_read=0` when off).
    pub hat_eeprom: bool,
    /// `kernel8.img` gzip-compressed (the firmware inflates it); `false`: the raw Image.
    pub gzip_kernel: bool,
}

impl Default for Board {
    /// No feature, and every boot-time switch on (the bundle's defaults, README).
    fn default() -> Board {
        Board {
            usb_serial: UsbSerial::Off,
            sound: false,
            i2c: false,
            spi: false,
            display: false,
            cut_down_firmware: true,
            boot_delay: 0,
            splash: false,
            poe_fan: false,
            hat_eeprom: false,
            gzip_kernel: true,
        }
    }
}

/// `board.usb_serial`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsbSerial {
    /// No gadget (the default).
    #[default]
    Off,
    /// A shell (`/bin/sh`, busybox) on `/dev/ttyGS0`, restarted when it exits.
    Shell,
    /// The box's stdin/stdout/stderr on `/dev/ttyGS0`.
    Box,
}

/// The name of the shell service `usb_serial = "shell"` adds.
pub const USB_SHELL_SERVICE: &str = "usb-serial-shell";

impl Board {
    /// The modules the chosen features need, in load order.
    pub fn modules(&self) -> Vec<&'static str> {
        let mut modules = Vec::new();
        if self.usb_serial != UsbSerial::Off {
            // the controller in peripheral mode, and the legacy serial gadget, which binds
            // to it at once (no configfs setup needed): ACM, /dev/ttyGS0
            modules.extend(["dwc2", "g_serial"]);
        }
        if self.sound {
            // the VideoCore's message queue, and the audio service on it
            modules.extend(["vchiq", "snd_bcm2835"]);
        }
        if self.i2c {
            modules.extend(["i2c_bcm2835", "i2c_dev"]);
        }
        if self.spi {
            modules.extend(["spi_bcm2835", "spidev"]);
        }
        modules
    }

    /// Whether any feature needs a shell in the initramfs.
    pub fn needs_shell(&self) -> bool {
        self.usb_serial == UsbSerial::Shell
    }

    /// Whether the firmware can be the cut-down one: allowed, and nothing asks for the GPU
    /// (sound goes through the VideoCore, a display needs its framebuffer and memory).
    pub fn cut_down(&self) -> bool {
        self.cut_down_firmware && !self.sound && !self.display
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Config, Layer};

    fn parse(text: &str) -> Config {
        let (config, errors) = load(&[Layer::Text {
            name: "init.toml".into(),
            text: text.into(),
        }]);
        assert!(errors.is_empty(), "{errors:?}");
        config
    }

    #[test]
    fn nothing_by_default() {
        let config = parse("");
        assert_eq!(config.board, Board::default());
        assert!(config.modules.load.is_empty());
        assert!(config.service.is_empty());
    }

    #[test]
    fn features_add_modules_and_programs() {
        let config = parse(
            "[board]\nusb_serial = \"shell\"\nsound = true\ni2c = true\nspi = true\n\
             [modules]\nload = [\"i2c-dev\"]\n",
        );
        assert_eq!(
            config.modules.load,
            [
                "i2c-dev",
                "dwc2",
                "g_serial",
                "vchiq",
                "snd_bcm2835",
                "i2c_bcm2835",
                "spi_bcm2835",
                "spidev"
            ]
        );
        assert_eq!(config.service.len(), 1);
        let shell = &config.service[0];
        assert_eq!(shell.path, "/bin/sh");
        assert_eq!(shell.console.as_deref(), Some("/dev/ttyGS0"));
        assert!(config.board.needs_shell());
        let config = parse("[board]\nusb_serial = \"box\"\n");
        assert_eq!(config.box_.console.as_deref(), Some("/dev/ttyGS0"));
        assert!(config.service.is_empty());
    }

    #[test]
    fn applying_twice_changes_nothing() {
        let mut config = parse("[board]\nusb_serial = \"shell\"\nsound = true\n");
        let once = config.clone();
        crate::config::add_board_features(&mut config);
        assert_eq!(config, once);
    }

    #[test]
    fn firmware_switches_parse_and_choose_the_firmware() {
        let config = parse("");
        assert!(config.board.cut_down() && config.board.gzip_kernel);
        assert_eq!(config.board.boot_delay, 0);
        for text in [
            "[board]\nsound = true\n",
            "[board]\ndisplay = true\n",
            "[board]\ncut_down_firmware = false\n",
        ] {
            assert!(!parse(text).board.cut_down(), "{text}");
        }
        let config = parse(
            "[board]\nboot_delay = 1\nsplash = true\npoe_fan = true\nhat_eeprom = true\n\
             gzip_kernel = false\n",
        );
        let board = &config.board;
        assert_eq!(board.boot_delay, 1);
        assert!(board.splash && board.poe_fan && board.hat_eeprom && !board.gzip_kernel);
        // they load nothing and start nothing: the firmware's, not the init's
        assert!(config.modules.load.is_empty() && config.service.is_empty());
    }

    #[test]
    fn unknown_values_are_errors() {
        let (_, errors) = load(&[Layer::Text {
            name: "init.toml".into(),
            text: "[board]\nusb_serial = \"yes\"\n".into(),
        }]);
        assert_eq!(errors.len(), 1);
        let (_, errors) = load(&[Layer::Text {
            name: "init.toml".into(),
            text: "[board]\nsond = true\n".into(),
        }]);
        assert_eq!(errors.len(), 1);
        for text in ["[board]\nboot_delay = 256\n", "[board]\nboot_delay = -1\n"] {
            let (_, errors) = load(&[Layer::Text {
                name: "init.toml".into(),
                text: text.into(),
            }]);
            assert_eq!(errors.len(), 1, "{text}");
        }
    }
}
