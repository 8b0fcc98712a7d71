//! The Debian programs xtask can pack (`wpa_supplicant` for `[wifi]`, `hostapd` for the Wi-Fi
//! test) and Wi-Fi's regulatory database, fetched with the packages that hold their shared
//! libraries into `target/debian/<arch>/` and walked into closures there. Which programs an
//! initramfs gets, and how they are packed, is `pack/debian.rs`'s choice.

use anyhow::{Context, Result};

use crate::fetch::closure::{self, Closure};
use crate::fetch::deb::{self, Source};
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
    /// files it loads with `dlopen` (no `DT_NEEDED` names them), `{multiarch}` standing for
    /// the library directory's triple: packed with their libraries
    pub loaded: &'static [&'static str],
    /// it serves later than the box: packed into the card's extras archive
    /// (`pack/extras_archive.rs`), not the initramfs
    pub later: bool,
}

/// OpenSSL 3's legacy provider: wpa_supplicant and hostapd 2.10 load it
/// (`OSSL_PROVIDER_load(NULL, "legacy")`) for MD4, which MSCHAPv2 needs (PEAP and TTLS
/// inner authentication, WPA-Enterprise's usual); libcrypto looks for it in its
/// compiled-in `MODULESDIR`. Without it the handshake fails in the EAP phase (scenario 113).
const OPENSSL_LEGACY: &str = "usr/lib/{multiarch}/ossl-modules/legacy.so";

impl DebianProgram {
    /// [`DebianProgram::loaded`] for `arch`.
    pub fn loaded(&self, arch: Arch) -> Vec<String> {
        self.loaded
            .iter()
            .map(|p| p.replace("{multiarch}", closure::multiarch(arch)))
            .collect()
    }
}

/// The Wi-Fi client (`[wifi] supplicant` defaults to its path).
pub const WPA_SUPPLICANT: DebianProgram = DebianProgram {
    name: "wpa_supplicant",
    package: "wpasupplicant",
    path: "sbin/wpa_supplicant",
    loaded: &[OPENSSL_LEGACY],
    later: true,
};

/// An access point, for the Wi-Fi test (scenario 110): the test's own radio, a service that
/// starts with the box, so it stays in the initramfs.
pub const HOSTAPD: DebianProgram = DebianProgram {
    name: "hostapd",
    package: "hostapd",
    path: "usr/sbin/hostapd",
    loaded: &[OPENSSL_LEGACY],
    later: false,
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

/// `program` for `arch` and its closure: its package and the `lib*` packages it depends on,
/// fetched and unpacked once under `target/debian/<arch>/`, and the program, its dynamic
/// linker and its libraries found there.
pub fn fetch(arch: Arch, program: &DebianProgram) -> Result<Closure> {
    let apt = Source::for_arch(arch);
    let dir = target_dir().join("debian").join(arch.name());
    let packages = apt.library_packages(program.package)?;
    let root = deb::unpacked_root(&apt, &packages, &dir, &dir.join(program.name))?;
    let loaded = program.loaded(arch);
    let closure = closure::closure_with(&root, program.path, &loaded, arch).with_context(|| {
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
    Ok(closure)
}

/// Debian's wireless regulatory database (`wireless-regdb`): cfg80211 loads
/// `regulatory.db` and its signature from the firmware path to apply `country=`; without it
/// the radio keeps the world domain (fewer channels, passive scans on some).
pub const REGDB_PACKAGE: &str = "wireless-regdb";

/// `lib/firmware/regulatory.db` and `.p7s` for the initramfs (paths and contents): the
/// package's Debian-signed pair (`-debian`; Debian's kernel trusts its signer), which its
/// install script would make the default through update-alternatives. Fetched once into
/// `target/debian/<arch>/regdb/`.
pub fn regulatory_db(arch: Arch) -> Result<Vec<(String, Vec<u8>)>> {
    let apt = Source::for_arch(arch);
    let dir = target_dir().join("debian").join(arch.name());
    let root = deb::unpacked_root(&apt, &[REGDB_PACKAGE.to_string()], &dir, &dir.join("regdb"))?;
    let mut files = Vec::new();
    for name in ["regulatory.db", "regulatory.db.p7s"] {
        let source = root.join(format!("lib/firmware/{name}-debian"));
        let data = std::fs::read(&source).with_context(|| {
            format!(
                "cannot read {} ({REGDB_PACKAGE} changed?)",
                source.display()
            )
        })?;
        files.push((format!("lib/firmware/{name}"), data));
    }
    Ok(files)
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
        assert_eq!(
            WPA_SUPPLICANT.loaded(Arch::Aarch64),
            ["usr/lib/aarch64-linux-gnu/ossl-modules/legacy.so"]
        );
        // the init's default supplicant path is where the package puts it
        assert_eq!(
            boxinit::config::wifi::Wifi::default().supplicant,
            format!("/{}", WPA_SUPPLICANT.path)
        );
    }
}
