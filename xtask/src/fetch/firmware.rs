//! Raspberry Pi firmware from Debian (arm64, `non-free-firmware` through the private apt),
//! fetched once: the GPU's boot files (`raspi-firmware`: `bootcode.bin`, `start*.elf`,
//! `fixup*.dat`, into `target/firmware/`) and the `brcmfmac` Wi-Fi firmware of the boards'
//! chips (`firmware-brcm80211`, with raspi-firmware's NVRAM files, into
//! `target/debian/firmware/`). Which board gets what is the bundle's (`media/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::fetch::apt::Apt;
use crate::fetch::closure;
use crate::fetch::deb::{self, Source};
use crate::target_dir;
use crate::tools::arch::Arch;

/// Debian's `raspi-firmware`, fetched once into `target/firmware/`: the folder holding
/// `bootcode.bin`, `start*.elf` and `fixup*.dat`.
pub fn boot_firmware() -> Result<PathBuf> {
    let dir = target_dir().join("firmware");
    let files = dir.join("root/usr/lib/raspi-firmware");
    if files.join("start.elf").is_file() {
        return Ok(files);
    }
    let package = Apt::new("arm64")
        .download("raspi-firmware", &dir)
        .context("pass the firmware folder with --firmware")?;
    deb::unpack(&package, &dir.join("root"), &|_| true)?;
    if !files.join("start.elf").is_file() {
        bail!(
            "{} holds no usr/lib/raspi-firmware/start.elf",
            package.display()
        );
    }
    Ok(files)
}

/// Debian's non-free firmware for the Pi's Wi-Fi chips.
pub const FIRMWARE_PACKAGE: &str = "firmware-brcm80211";
/// Debian's Raspberry Pi boot firmware, which also ships the chips' NVRAM `.txt` files.
pub const RASPI_FIRMWARE_PACKAGE: &str = "raspi-firmware";

/// The Wi-Fi chip of a Pi board, by the name its device tree gives it (`compatible`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PiWifi {
    /// the board's compatible string: the NVRAM file is `brcmfmac<chip>-sdio.<board>.txt`
    pub board: &'static str,
    /// the chip: `43430`, `43455`
    pub chip: &'static str,
}

/// The boards whose Wi-Fi firmware Debian ships complete.
pub const PI_BOARDS: &[PiWifi] = &[
    PiWifi {
        board: "raspberrypi,3-model-b",
        chip: "43430",
    },
    PiWifi {
        board: "raspberrypi,3-model-b-plus",
        chip: "43455",
    },
    PiWifi {
        board: "raspberrypi,3-model-a-plus",
        chip: "43455",
    },
    PiWifi {
        board: "raspberrypi,4-model-b",
        chip: "43455",
    },
];

/// What the Zero 2 W lacks in Debian 12, for messages and the README: its NVRAM file and the
/// firmware its chip revision may ask for.
pub const ZERO_2_W_MISSING: &[&str] = &[
    "brcm/brcmfmac43430-sdio.raspberrypi,model-zero-2-w.txt",
    "brcm/brcmfmac43430b0-sdio.bin",
];

/// The firmware files (paths under `lib/firmware/`) the brcmfmac driver loads on these
/// boards: per chip the `.bin` and `.clm_blob` (from firmware-brcm80211, links into
/// `../cypress/` followed), per board the NVRAM `.txt` (from raspi-firmware, or
/// firmware-brcm80211 when it has it).
pub fn pi_firmware_files(boards: &[PiWifi]) -> Vec<String> {
    let mut files = Vec::new();
    for b in boards {
        for name in [
            format!("brcm/brcmfmac{}-sdio.bin", b.chip),
            format!("brcm/brcmfmac{}-sdio.clm_blob", b.chip),
            format!("brcm/brcmfmac{}-sdio.{}.txt", b.chip, b.board),
        ] {
            if !files.contains(&name) {
                files.push(name);
            }
        }
    }
    files
}

/// The Wi-Fi firmware for `boards`, as files for the initramfs (paths under `lib/firmware/`,
/// where the kernel's firmware loader reads them, and contents): `brcmfmac`'s files from
/// Debian's `firmware-brcm80211` and `raspi-firmware` (non-free-firmware, arm64; fetched once
/// into `target/debian/firmware/`). A file neither package has is an error naming it.
pub fn wifi_firmware(boards: &[PiWifi]) -> Result<Vec<(String, Vec<u8>)>> {
    // the private arm64 apt lists main and non-free-firmware (`fetch/apt.rs`)
    let apt = Source::for_arch(Arch::Aarch64);
    let dir = target_dir().join("debian").join("firmware");
    let packages = [
        FIRMWARE_PACKAGE.to_string(),
        RASPI_FIRMWARE_PACKAGE.to_string(),
    ];
    let root = deb::unpacked_root(&apt, &packages, &dir, &dir.join("root"))?;
    let mut files = Vec::new();
    for file in pi_firmware_files(boards) {
        let found = firmware_file(&root, &file)?;
        let data =
            std::fs::read(&found).with_context(|| format!("cannot read {}", found.display()))?;
        files.push((format!("lib/firmware/{file}"), data));
    }
    Ok(files)
}

/// `file` (under `lib/firmware/`) in the unpacked packages: Debian 12 ships firmware in
/// `lib/firmware`, raspi-firmware's NVRAM in `usr/lib/firmware` or `lib/firmware`; links are
/// followed (the `.bin` files link into `../cypress/`).
fn firmware_file(root: &Path, file: &str) -> Result<PathBuf> {
    for dir in ["lib/firmware", "usr/lib/firmware"] {
        let mut closure = closure::Closure::new();
        let path = format!("{dir}/{file}");
        if let Ok(real) = closure::add_file(root, &path, &mut closure) {
            return Ok(root.join(real));
        }
    }
    bail!(
        "no {file} in {} or {}: the packages changed? (looked under {})",
        FIRMWARE_PACKAGE,
        RASPI_FIRMWARE_PACKAGE,
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pi_firmware_names() {
        let files = pi_firmware_files(PI_BOARDS);
        assert_eq!(
            files,
            [
                "brcm/brcmfmac43430-sdio.bin",
                "brcm/brcmfmac43430-sdio.clm_blob",
                "brcm/brcmfmac43430-sdio.raspberrypi,3-model-b.txt",
                "brcm/brcmfmac43455-sdio.bin",
                "brcm/brcmfmac43455-sdio.clm_blob",
                "brcm/brcmfmac43455-sdio.raspberrypi,3-model-b-plus.txt",
                "brcm/brcmfmac43455-sdio.raspberrypi,3-model-a-plus.txt",
                "brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.txt",
            ]
        );
    }
}
