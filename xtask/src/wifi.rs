//! Wi-Fi in the initramfs: Debian's `wpa_supplicant` (and, for the test, `hostapd`) with their
//! shared-library closures; the generic amd64 kernel whose `mac80211_hwsim` gives QEMU two
//! simulated radios; the `brcmfmac` firmware a Raspberry Pi's Wi-Fi chip loads. Fetching,
//! unpacking and the closure walk are `debpkg`'s; this file says which packages and files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bundle::Board;
use crate::fetch::closure::{self, Entry};
use crate::fetch::deb::{self, Source};
use crate::fetch::kernel::{self, Kernel, KernelArgs};
use crate::initramfs::Extra;
use crate::tools::arch::Arch;
use crate::{format_size, progress, target_dir};

/// A program from a Debian package, packed with its libraries at the package's own path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebianProgram {
    /// what `--wifi` and a scenario's `debian` file call it
    pub name: &'static str,
    /// the Debian package that ships it
    pub package: &'static str,
    /// where the package puts it (and so where it goes in the initramfs), no leading `/`
    pub path: &'static str,
}

/// The Wi-Fi client (`[wifi] supplicant` defaults to its path).
pub const WPA_SUPPLICANT: DebianProgram = DebianProgram {
    name: "wpa_supplicant",
    package: "wpasupplicant",
    path: "sbin/wpa_supplicant",
};

/// An access point, for the Wi-Fi test (scenario 110).
pub const HOSTAPD: DebianProgram = DebianProgram {
    name: "hostapd",
    package: "hostapd",
    path: "usr/sbin/hostapd",
};

/// The programs xtask knows how to pack.
pub const PROGRAMS: &[DebianProgram] = &[WPA_SUPPLICANT, HOSTAPD];

/// The program called `name`; an error lists the known ones.
pub fn program(name: &str) -> Result<DebianProgram> {
    PROGRAMS
        .iter()
        .find(|p| p.name == name)
        .copied()
        .with_context(|| {
            let known: Vec<&str> = PROGRAMS.iter().map(|p| p.name).collect();
            format!(
                "no Debian program {name:?} known (known: {})",
                known.join(", ")
            )
        })
}

/// Whether a built-in config (TOML text) turns Wi-Fi on: a `[wifi]` section with `ssid` or
/// `config`. Then `wpa_supplicant` is packed without `--wifi`.
pub fn config_wants_wifi(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return false; // initramfs::make reports a bad config
    };
    table
        .get("wifi")
        .and_then(|w| w.as_table())
        .is_some_and(|w| w.contains_key("ssid") || w.contains_key("config"))
}

/// The Debian programs to pack: `names` (a scenario's `debian` file), `wpa_supplicant` when
/// `wifi` (the `--wifi` flag) or when the built-in config at `config` turns Wi-Fi on; each
/// once, in that order.
pub fn programs_to_pack(
    names: &[String],
    wifi: bool,
    config: Option<&Path>,
) -> Result<Vec<DebianProgram>> {
    let mut out = Vec::new();
    for name in names {
        out.push(program(name)?);
    }
    let from_config = config
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|text| config_wants_wifi(&text));
    if wifi || from_config {
        out.insert(0, WPA_SUPPLICANT);
    }
    let mut seen = Vec::new();
    out.retain(|p| {
        let new = !seen.contains(&p.name);
        seen.push(p.name);
        new
    });
    Ok(out)
}

/// The initramfs entries for `programs`: each one, its ELF interpreter and its shared
/// libraries from Debian's packages for `arch` (fetched once into `target/debian/<arch>/`).
pub fn program_entries(arch: Arch, programs: &[DebianProgram]) -> Result<Vec<Extra>> {
    let mut entries = Vec::new();
    if programs.is_empty() {
        return Ok(entries);
    }
    let apt = Source::for_arch(arch);
    let dir = target_dir().join("debian").join(arch.name());
    for program in programs {
        let packages = apt.library_packages(program.package)?;
        let root = deb::unpacked_root(&apt, &packages, &dir, &dir.join(program.name))?;
        let closure = closure::closure(&root, program.path, arch).with_context(|| {
            format!(
                "{} from {} (packages: {})",
                program.name,
                program.package,
                packages.join(" ")
            )
        })?;
        progress!(
            "{}: {} files, {} with its libraries",
            program.name,
            closure.len(),
            format_size(closure::closure_size(&closure))
        );
        for (path, entry) in closure {
            entries.push(match entry {
                Entry::File(source, mode) => Extra::File {
                    data: std::fs::read(&source)
                        .with_context(|| format!("cannot read {}", source.display()))?,
                    path,
                    mode,
                },
                Entry::Symlink(target) => Extra::Symlink { path, target },
            });
        }
    }
    entries.extend(regulatory_db(&apt, &dir)?);
    Ok(entries)
}

/// Debian's wireless regulatory database (`wireless-regdb`): cfg80211 loads
/// `regulatory.db` and its signature from the firmware path to apply `country=`; without it
/// the radio keeps the world domain (fewer channels, passive scans on some).
pub const REGDB_PACKAGE: &str = "wireless-regdb";

/// `lib/firmware/regulatory.db` and `.p7s` for the initramfs: the package's Debian-signed
/// pair (`-debian`; Debian's kernel trusts its signer), which its install script would make
/// the default through update-alternatives.
fn regulatory_db(apt: &Source, dir: &Path) -> Result<Vec<Extra>> {
    let root = deb::unpacked_root(apt, &[REGDB_PACKAGE.to_string()], dir, &dir.join("regdb"))?;
    let mut entries = Vec::new();
    for name in ["regulatory.db", "regulatory.db.p7s"] {
        let source = root.join(format!("lib/firmware/{name}-debian"));
        let data = std::fs::read(&source).with_context(|| {
            format!(
                "cannot read {} ({REGDB_PACKAGE} changed?)",
                source.display()
            )
        })?;
        entries.push(Extra::File {
            path: format!("lib/firmware/{name}"),
            mode: 0o644,
            data,
        });
    }
    Ok(entries)
}

/// Debian's generic amd64 kernel metapackage: unlike the cloud kernel it has wireless,
/// and `mac80211_hwsim` (simulated radios).
pub const GENERIC_PACKAGE: &str = "linux-image-amd64";

/// Module directories of the generic kernel worth unpacking (under `kernel/`): Wi-Fi
/// (cfg80211, mac80211, rfkill, hwsim, its crypto), the QEMU disk and FAT (virtio, nls), and
/// what they need. The other 390 MB stay in the .deb.
const GENERIC_MODULE_DIRS: &[&str] = &[
    "crypto/",
    "lib/",
    "fs/fat/",
    "fs/nls/",
    "net/core/",
    "net/wireless/",
    "net/mac80211/",
    "net/rfkill/",
    "drivers/virtio/",
    "drivers/block/",
    "drivers/char/",
];

/// Whether a path of the generic kernel package is unpacked: the image, the module index
/// files, and the modules of [`GENERIC_MODULE_DIRS`] plus those directly in `drivers/net/`
/// and `drivers/net/wireless/` (virtio_net, mac80211_hwsim; not the hardware drivers below).
pub fn generic_kernel_keeps(path: &Path) -> bool {
    let text = path.to_string_lossy();
    if text.starts_with("boot/vmlinuz-") {
        return true;
    }
    let Some(rest) = text.strip_prefix("lib/modules/") else {
        return false;
    };
    let Some((_release, inside)) = rest.split_once('/') else {
        return true; // the release directory itself
    };
    let Some(module) = inside.strip_prefix("kernel/") else {
        return !inside.contains('/'); // modules.builtin, modules.order, ...
    };
    let direct_in = |dir: &str| {
        module
            .strip_prefix(dir)
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    };
    GENERIC_MODULE_DIRS.iter().any(|d| module.starts_with(d))
        || direct_in("drivers/net/")
        || direct_in("drivers/net/wireless/")
        || module.is_empty()
}

/// Debian's generic amd64 kernel with the modules Wi-Fi tests need, fetched once into
/// `target/kernel/x86_64-generic/` (70 MB .deb; about 15 MB of its 400 unpacked, in 25 s) and
/// given to the harness as `--kernel`/`--modules-dir` would be.
pub fn generic_kernel() -> Result<Kernel> {
    let dir = target_dir().join("kernel").join("x86_64-generic");
    let apt = Source::Host;
    let package = apt
        .depends(&[GENERIC_PACKAGE.to_string()])?
        .into_values()
        .flatten()
        .find(|d| d.starts_with("linux-image-"))
        .with_context(|| format!("apt-cache knows no kernel for {GENERIC_PACKAGE}"))?;
    let release = package.trim_start_matches("linux-image-").to_string();
    let root = dir.join(&release);
    let image = root.join("boot").join(format!("vmlinuz-{release}"));
    let modules_dir = root.join("lib/modules").join(&release);
    if !(image.is_file() && modules_dir.is_dir()) {
        let deb = apt.download(&package, &dir)?;
        let started = std::time::Instant::now();
        progress!(
            "unpacking the Wi-Fi test's part of {} (pure Rust; about 25 s)",
            deb.display()
        );
        let staging = dir.join(format!("{release}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        deb::unpack(&deb, &staging, &generic_kernel_keeps)?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::rename(&staging, &root).with_context(|| {
            format!("cannot rename {} to {}", staging.display(), root.display())
        })?;
        progress!("unpacked in {:.1} s", started.elapsed().as_secs_f64());
    }
    let args = KernelArgs {
        kernel: Some(image),
        modules_dir: Some(modules_dir),
        dtb_dir: None,
    };
    kernel::resolve(Arch::X86_64, &args)
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

/// The Wi-Fi firmware for `boards`, as initramfs entries under `lib/firmware/` (the kernel's
/// firmware loader reads them from the initramfs): `brcmfmac`'s files from Debian's
/// `firmware-brcm80211` and `raspi-firmware` (non-free-firmware, arm64; fetched once into
/// `target/debian/firmware/`). A file neither package has is an error naming it.
pub fn pi_firmware_entries(boards: &[PiWifi]) -> Result<Vec<Extra>> {
    // the private arm64 apt lists main and non-free-firmware (`apt.rs`)
    let apt = Source::for_arch(Arch::Aarch64);
    let dir = target_dir().join("debian").join("firmware");
    let packages = [
        FIRMWARE_PACKAGE.to_string(),
        RASPI_FIRMWARE_PACKAGE.to_string(),
    ];
    let root = deb::unpacked_root(&apt, &packages, &dir, &dir.join("root"))?;
    let mut entries = Vec::new();
    for file in pi_firmware_files(boards) {
        let found = firmware_file(&root, &file)?;
        let data =
            std::fs::read(&found).with_context(|| format!("cannot read {}", found.display()))?;
        entries.push(Extra::File {
            path: format!("lib/firmware/{file}"),
            mode: 0o644,
            data,
        });
    }
    Ok(entries)
}

/// The Wi-Fi chips of a bundle's board family (the Pi 400's and CM4's NVRAM are not in
/// Debian; the Zero 2 W's neither: [`ZERO_2_W_MISSING`]).
pub fn pi_boards(board: Board) -> Vec<PiWifi> {
    let names: &[&str] = match board {
        Board::Rpi3 => &[
            "raspberrypi,3-model-b",
            "raspberrypi,3-model-b-plus",
            "raspberrypi,3-model-a-plus",
        ],
        Board::Rpi4 => &["raspberrypi,4-model-b"],
        Board::Rpi02w => &[],
    };
    PI_BOARDS
        .iter()
        .filter(|b| names.contains(&b.board))
        .copied()
        .collect()
}

/// Modules a Pi needs for Wi-Fi beyond what coldplug finds on its own: the SDIO chip's
/// driver (its alias is in modules.alias, but it must be packed) and the ciphers WPA2's CCMP
/// asks for through request_module. Names this kernel lacks are left out by the caller.
pub const PI_MODULES: &[&str] = &["brcmfmac", "ctr", "ccm", "cmac", "aes_ce_ccm"];

/// What a Pi bundle adds for Wi-Fi when the card's config (`card`) or the built-in one (the
/// file `builtin`) turns it on: `wpa_supplicant` (arm64) with its libraries, the board's
/// `brcmfmac` firmware, and [`PI_MODULES`]. Nothing when Wi-Fi is off. The bundle calls this.
pub fn pi_bundle(
    board: Board,
    card: &boxinit::config::Config,
    builtin: &Path,
) -> Result<(Vec<Extra>, &'static [&'static str])> {
    let from_card = matches!(card.wifi.source(), Ok(Some(_)));
    let programs = programs_to_pack(&[], from_card, Some(builtin))?;
    if programs.is_empty() {
        return Ok((Vec::new(), &[]));
    }
    if let Err(e) = card.wifi.source() {
        bail!("{e}; fix it before it goes on the card");
    }
    let mut entries = program_entries(Arch::Aarch64, &programs)?;
    entries.extend(pi_firmware_entries(&pi_boards(board))?);
    if board == Board::Rpi02w {
        progress!(
            "warning: the Zero 2 W's Wi-Fi needs files Debian lacks ({}): add them to the \
             initramfs (README, Wi-Fi)",
            ZERO_2_W_MISSING.join(", ")
        );
    }
    Ok((entries, PI_MODULES))
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
    fn programs_by_name() {
        assert_eq!(program("wpa_supplicant").unwrap(), WPA_SUPPLICANT);
        assert_eq!(program("hostapd").unwrap().path, "usr/sbin/hostapd");
        let err = program("iwd").unwrap_err();
        assert!(
            format!("{err}").contains("known: wpa_supplicant, hostapd"),
            "{err}"
        );
        // the init's default supplicant path is where the package puts it
        assert_eq!(
            boxinit::config::wifi::Wifi::default().supplicant,
            format!("/{}", WPA_SUPPLICANT.path)
        );
    }

    #[test]
    fn builtin_config_turns_wifi_on() {
        assert!(config_wants_wifi("[wifi]\nssid = \"box\"\n"));
        assert!(config_wants_wifi(
            "[wifi]\nconfig = \"wpa_supplicant.conf\"\n"
        ));
        assert!(!config_wants_wifi("[wifi]\ninterface = \"wlan1\"\n"));
        assert!(!config_wants_wifi("[box]\npath = \"box\"\n"));
        assert!(!config_wants_wifi("[wifi\n"));
    }

    #[test]
    fn generic_kernel_paths_kept() {
        let keep = |p: &str| generic_kernel_keeps(Path::new(p));
        let m = "lib/modules/6.1.0-57-amd64";
        assert!(keep("boot/vmlinuz-6.1.0-57-amd64"));
        assert!(!keep("boot/System.map-6.1.0-57-amd64"));
        assert!(keep(m));
        assert!(keep(&format!("{m}/modules.builtin")));
        assert!(keep(&format!("{m}/kernel")));
        assert!(keep(&format!("{m}/kernel/net/wireless/cfg80211.ko")));
        assert!(keep(&format!(
            "{m}/kernel/drivers/net/wireless/mac80211_hwsim.ko"
        )));
        assert!(keep(&format!("{m}/kernel/drivers/net/virtio_net.ko")));
        assert!(keep(&format!("{m}/kernel/crypto/ccm.ko")));
        assert!(!keep(&format!(
            "{m}/kernel/drivers/net/wireless/ath/ath9k/ath9k.ko"
        )));
        assert!(!keep(&format!(
            "{m}/kernel/drivers/net/ethernet/intel/e1000/e1000.ko"
        )));
        assert!(!keep(&format!("{m}/kernel/drivers/gpu/drm/drm.ko")));
        assert!(!keep("usr/lib/linux/triggers"));
    }

    #[test]
    fn pi_boards_per_bundle() {
        let chips = |b| pi_boards(b).iter().map(|p| p.chip).collect::<Vec<_>>();
        assert_eq!(chips(Board::Rpi3), ["43430", "43455", "43455"]);
        assert_eq!(chips(Board::Rpi4), ["43455"]);
        assert!(chips(Board::Rpi02w).is_empty());
        // Wi-Fi off: the bundle gets nothing
        let (extra, modules) = pi_bundle(
            Board::Rpi3,
            &boxinit::config::Config::default(),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert!(extra.is_empty() && modules.is_empty());
    }

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
