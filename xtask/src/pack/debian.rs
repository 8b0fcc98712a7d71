//! Debian's files in an initramfs or the card's extras archive, as `extra::Extra` entries:
//! the programs a scenario or `--wifi` names, with their libraries (`wpa_supplicant` also when
//! the built-in config turns Wi-Fi on, as the init's own `Wifi::source` reads it; it goes to
//! the extras, a program after its libraries), Wi-Fi's regulatory database, and a Pi's Wi-Fi
//! firmware. Fetching them is `fetch/`'s; this file decides what is packed.

use std::path::Path;

use anyhow::{Context, Result};

use crate::fetch::closure::{Closure, Entry};
use crate::fetch::firmware::{self, PiWifi};
use crate::fetch::programs::{self, DebianProgram, WPA_SUPPLICANT};
use crate::pack::extra::Extra;
use crate::tools::arch::Arch;

/// Whether the built-in config at `path` turns Wi-Fi on, as the init decides it
/// (`boxinit::config::wifi::Wifi::source`: a `[wifi]` with `ssid` or `config`). Then
/// `wpa_supplicant` is packed without `--wifi`. A file that does not load says no
/// (`initramfs::make` reports its errors).
pub fn config_wants_wifi(path: &Path) -> bool {
    crate::tools::config::check(path, boxinit::config::Place::Early)
        .is_ok_and(|config| matches!(config.wifi.source(), Ok(Some(_))))
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
        out.push(programs::program(name)?);
    }
    if wifi || config.is_some_and(config_wants_wifi) {
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

/// The initramfs entries for `programs`: each one's ELF interpreter and shared libraries
/// from Debian's packages for `arch`, then the program itself (so that, unpacked in this
/// order from the card's extras, it appears after what it needs), then the regulatory
/// database (none when `programs` is empty).
pub fn program_entries(arch: Arch, programs: &[DebianProgram]) -> Result<Vec<Extra>> {
    let mut entries = Vec::new();
    if programs.is_empty() {
        return Ok(entries);
    }
    for program in programs {
        let closure = programs::fetch(arch, program)?;
        for (path, entry) in program_last(closure, program.path) {
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
    entries.extend(firmware_entries(programs::regulatory_db(arch)?));
    Ok(entries)
}

/// The paths of a program's closure in the order to unpack them: the libraries and the ELF
/// interpreter (by path), then the program at `program`.
fn program_last(mut closure: Closure, program: &str) -> Vec<(String, Entry)> {
    let own = closure.remove(program);
    let mut out: Vec<(String, Entry)> = closure.into_iter().collect();
    out.extend(own.map(|entry| (program.to_string(), entry)));
    out
}

/// [`program_entries`] of `programs`, split: those that serve later than the box
/// ([`DebianProgram::later`]: `wpa_supplicant`) for the card's extras archive, the others
/// (a test's `hostapd`) for the initramfs. (initramfs entries, extras entries)
pub fn split_entries(arch: Arch, programs: &[DebianProgram]) -> Result<(Vec<Extra>, Vec<Extra>)> {
    let (later, now): (Vec<DebianProgram>, Vec<DebianProgram>) =
        programs.iter().partition(|p| p.later);
    Ok((program_entries(arch, &now)?, program_entries(arch, &later)?))
}

/// The Wi-Fi firmware of a Pi's `boards` as initramfs entries (`fetch/firmware.rs`).
pub fn pi_firmware_entries(boards: &[PiWifi]) -> Result<Vec<Extra>> {
    Ok(firmware_entries(firmware::wifi_firmware(boards)?))
}

/// Files under `lib/firmware/` (paths and contents) as initramfs entries.
fn firmware_entries(files: Vec<(String, Vec<u8>)>) -> Vec<Extra> {
    files
        .into_iter()
        .map(|(path, data)| Extra::File {
            path,
            mode: 0o644,
            data,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_comes_after_its_libraries() {
        let closure: Closure = [
            ("lib/ld.so", Entry::Symlink("x".into())),
            ("sbin/wpa_supplicant", Entry::File("/x".into(), 0o755)),
            ("usr/lib/libssl.so.3", Entry::File("/y".into(), 0o644)),
        ]
        .into_iter()
        .map(|(p, e)| (p.to_string(), e))
        .collect();
        let order: Vec<String> = program_last(closure, "sbin/wpa_supplicant")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            order,
            ["lib/ld.so", "usr/lib/libssl.so.3", "sbin/wpa_supplicant"]
        );
    }

    #[test]
    fn builtin_config_turns_wifi_on() {
        let dir = crate::tools::testing::temp_dir("debian-wifi");
        let wants = |text: &str| {
            let path = dir.join("builtin.toml");
            std::fs::write(&path, text).unwrap();
            config_wants_wifi(&path)
        };
        assert!(wants("[wifi]\nssid = \"box\"\n"));
        assert!(wants("[wifi]\nconfig = \"wpa_supplicant.conf\"\n"));
        assert!(!wants("[wifi]\ninterface = \"wlan1\"\n"));
        assert!(!wants("[box]\npath = \"box\"\n"));
        assert!(!wants("[wifi\n"));
        // what the init refuses turns nothing on
        assert!(!wants("[wifi]\nssid = \"box\"\nconfig = \"w.conf\"\n"));
        assert!(!config_wants_wifi(&dir.join("missing.toml")));
        let programs = |wifi, config: Option<&Path>| {
            programs_to_pack(&["hostapd".to_string()], wifi, config)
                .unwrap()
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(programs(false, None), ["hostapd"]);
        assert_eq!(programs(true, None), ["wpa_supplicant", "hostapd"]);
        std::fs::write(dir.join("builtin.toml"), "[wifi]\nssid = \"box\"\n").unwrap();
        let builtin = dir.join("builtin.toml");
        assert_eq!(
            programs(true, Some(&builtin)),
            ["wpa_supplicant", "hostapd"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
