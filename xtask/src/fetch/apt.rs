//! The apt client: `apt-get download` through the host's apt, or through a private apt
//! configuration under `target/apt/<debian arch>/` for packages of any architecture: its own
//! sources list (Debian's mirror, `main` and `non-free-firmware`, bookworm with its updates
//! and security suites), package lists and download cache. The host's `/etc/apt` and dpkg's
//! architectures are never touched, so this works for arm64 on an amd64 host, on Ubuntu, and
//! without root. It does not unpack (`fetch/deb.rs` does).
//!
//! The options are those DESIGN.md measured: `Dir::Etc::sourcelist`, `Dir::Etc::sourceparts=-`,
//! `Dir::State::Lists`, `Dir::Cache`, `APT::Architectures::=ARCH`, `APT::Architecture=ARCH`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

use crate::tools::arch::Arch;
use crate::{display_path, progress, target_dir};

/// Debian's own mirror (any host's apt sources may point at Ubuntu's, which lacks these
/// packages); `BOXINIT_DEBIAN_MIRROR` replaces it (a local mirror or proxy).
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// The release whose packages are fetched (the kernels DESIGN.md measured).
pub const SUITE: &str = "bookworm";
/// The key that signs Debian's archive (package `debian-archive-keyring`, also on Ubuntu).
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Package lists older than this are fetched again before a download.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A private apt for one Debian architecture (`amd64`, `arm64`).
#[derive(Clone, Debug)]
pub struct Apt {
    /// `target/apt/<arch>/`
    pub dir: PathBuf,
    pub arch: &'static str,
}

impl Apt {
    /// The private apt for `arch` under `target/apt/`.
    pub fn new(arch: &'static str) -> Apt {
        Apt {
            dir: target_dir().join("apt").join(arch),
            arch,
        }
    }

    /// The sources list: the mirror's bookworm and bookworm-updates, and the security suite
    /// (kernels get their fixes there), `main` and `non-free-firmware`.
    pub fn sources_list(&self, mirror: &str) -> String {
        let security = mirror
            .trim_end_matches('/')
            .replace("/debian", "/debian-security");
        let options = format!("[arch={} signed-by={KEYRING}]", self.arch);
        format!(
            "deb {options} {mirror} {SUITE} main non-free-firmware\n\
             deb {options} {mirror} {SUITE}-updates main non-free-firmware\n\
             deb {options} {security} {SUITE}-security main non-free-firmware\n"
        )
    }

    /// apt's options pointing every state and cache directory into [`Apt::dir`].
    fn options(&self) -> Vec<String> {
        let dir = &self.dir;
        let mut options = vec![
            format!(
                "Dir::Etc::sourcelist={}",
                dir.join("sources.list").display()
            ),
            "Dir::Etc::sourceparts=-".to_string(),
            format!("Dir::State::Lists={}", dir.join("lists").display()),
            format!("Dir::Cache={}", dir.join("cache").display()),
            format!("APT::Architectures::={}", self.arch),
            format!("APT::Architecture={}", self.arch),
        ];
        if running_as_root() {
            // apt drops to `_apt` to download, who cannot write into target/
            options.push("APT::Sandbox::User=root".to_string());
        }
        options
            .into_iter()
            .flat_map(|o| ["-o".to_string(), o])
            .collect()
    }

    /// `tool` (`apt-get`, `apt-cache`) with this apt's options.
    pub fn apt(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.args(self.options());
        cmd
    }

    /// Fetches the package lists when they are missing or a day old (once per process).
    pub fn update(&self) -> Result<()> {
        static DONE: OnceLock<Mutex<Vec<PathBuf>>> = OnceLock::new();
        let done = DONE.get_or_init(Default::default);
        if done.lock().is_ok_and(|d| d.contains(&self.dir)) {
            return Ok(());
        }
        let stamp = self.dir.join("lists").join("updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() < LISTS_MAX_AGE);
        if !fresh {
            self.fetch_lists()?;
            std::fs::write(&stamp, b"").ok();
        }
        if let Ok(mut done) = done.lock() {
            done.push(self.dir.clone());
        }
        Ok(())
    }

    fn fetch_lists(&self) -> Result<()> {
        if !Path::new(KEYRING).is_file() {
            bail!(
                "{KEYRING} is missing: install Debian's archive key (`apt-get install \
                 debian-archive-keyring`, on Ubuntu too), or bring your own files (see --help)"
            );
        }
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(self.dir.join(sub))
                .with_context(|| format!("cannot create {}", self.dir.join(sub).display()))?;
        }
        let mirror = std::env::var("BOXINIT_DEBIAN_MIRROR")
            .ok()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| DEFAULT_MIRROR.to_string());
        std::fs::write(self.dir.join("sources.list"), self.sources_list(&mirror))?;
        progress!(
            "apt-get update for {} (private lists in {})",
            self.arch,
            display_path(&self.dir)
        );
        let out = self
            .apt("apt-get")
            .args(["-qq", "update"])
            .output()
            .context("cannot run apt-get (not a Debian/Ubuntu host?): bring your own files")?;
        if !out.status.success() {
            bail!(
                "apt-get update for {} failed: {}",
                self.arch,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The package a metapackage depends on whose name starts with `prefix`
    /// (`linux-image-arm64` → `linux-image-6.1.0-50-arm64`).
    pub fn dependency(&self, metapackage: &str, prefix: &str) -> Result<String> {
        self.update()?;
        let out = self
            .apt("apt-cache")
            .args(["depends", metapackage])
            .output()
            .context("cannot run apt-cache")?;
        let text = String::from_utf8_lossy(&out.stdout);
        match first_dependency(&text, prefix) {
            Some(package) if out.status.success() => Ok(package),
            _ => bail!(
                "Debian {SUITE} ({}) has no {metapackage}: {}",
                self.arch,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }

    /// The `.deb` of `package`, downloaded once into `dest`.
    pub fn download(&self, package: &str, dest: &Path) -> Result<PathBuf> {
        if let Some(deb) = find_deb(dest, package) {
            return Ok(deb);
        }
        self.update()?;
        std::fs::create_dir_all(dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
        progress!(
            "fetching {package} ({}) into {}",
            self.arch,
            display_path(dest)
        );
        let out = self
            .apt("apt-get")
            .current_dir(dest)
            .args(["-qq", "download", package])
            .output()
            .context("cannot run apt-get")?;
        if !out.status.success() {
            bail!(
                "apt-get download {package} ({}) failed: {}",
                self.arch,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        find_deb(dest, package).with_context(|| {
            format!(
                "apt-get download {package} left no .deb in {}",
                dest.display()
            )
        })
    }
}

/// Debian's name of an architecture: `amd64`, `arm64`.
pub fn deb_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
    }
}

/// `apt-get download PACKAGE` into `dir` with the host's apt (its own architecture and lists).
pub fn download(dir: &Path, package: &str) -> Result<PathBuf> {
    progress!(
        "fetching {package} with apt-get download into {}",
        display_path(dir)
    );
    let mut apt = Command::new("apt-get");
    apt.current_dir(dir).args(["download", package]);
    if running_as_root() {
        // apt drops to the `_apt` user to download, who cannot write into target/: it then
        // warns and downloads as root anyway. Say so up front instead of the warning.
        apt.args(["-o", "APT::Sandbox::User=root"]);
    }
    let status = apt
        .status()
        .context("cannot run apt-get: pass --kernel and --modules-dir")?;
    if !status.success() {
        bail!(
            "`apt-get download {package}` failed ({status}): run `apt-get update` and retry, \
             or pass --kernel and --modules-dir"
        );
    }
    find_deb(dir, package).with_context(|| {
        format!(
            "apt-get download {package} succeeded but left no .deb in {}",
            dir.display()
        )
    })
}

fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    false
}

/// The newest `.deb` of `package` in `dir` (`PACKAGE_VERSION_ARCH.deb`), if one was fetched.
pub fn find_deb(dir: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(&prefix) && name.ends_with(".deb")
        })
        .collect();
    debs.sort();
    debs.pop()
}

/// The first `Depends:` of `apt-cache depends` output starting with `prefix`.
pub fn first_dependency(apt_cache_depends: &str, prefix: &str) -> Option<String> {
    apt_cache_depends.lines().find_map(|line| {
        let dep = line
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends:")?
            .trim()
            .trim_matches(|c| c == '<' || c == '>');
        dep.starts_with(prefix).then(|| dep.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_dependencies() {
        let apt = Apt {
            dir: PathBuf::from("/t/apt/arm64"),
            arch: "arm64",
        };
        let list = apt.sources_list("http://deb.debian.org/debian");
        assert!(list.contains(
            "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://deb.debian.org/debian bookworm main non-free-firmware\n"
        ));
        assert!(list.contains("http://deb.debian.org/debian-security bookworm-security main"));
        let options = apt.options().join(" ");
        assert!(options.contains("-o Dir::Etc::sourcelist=/t/apt/arm64/sources.list"));
        assert!(options.contains("-o APT::Architectures::=arm64 -o APT::Architecture=arm64"));
        let depends = "linux-image-arm64\n  Depends: linux-image-6.1.0-50-arm64\n";
        assert_eq!(
            first_dependency(depends, "linux-image-").as_deref(),
            Some("linux-image-6.1.0-50-arm64")
        );
        assert_eq!(first_dependency(depends, "firmware-"), None);
    }
}
