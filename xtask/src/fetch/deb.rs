//! Debian packages, fetched and unpacked: where they come from (the host's apt, or
//! `fetch/apt.rs`'s private one for another architecture or component), which packages hold a
//! program's shared libraries (`apt-cache depends` of its package, followed through the `lib*`
//! packages only: `adduser` or `debconf` are install-time tools), and a `.deb`'s data unpacked
//! in pure Rust — no `dpkg`, no chroot, so the answer is the same for an arm64 package on an
//! amd64 host. It does not know any program or walk a closure (`fetch/closure.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::fetch::apt::{self, Apt};
use crate::tools::arch::Arch;
use crate::tools::compression::Compression;

/// Where packages come from: the host's apt (its own architecture and lists), or a private
/// apt (`fetch/apt.rs`: another architecture, `non-free-firmware`).
#[derive(Clone, Debug)]
pub enum Source {
    /// `/etc/apt` as configured
    Host,
    /// a private sources list under `target/apt/<arch>/`
    Private(Apt),
}

impl Source {
    /// The source for `arch`'s packages: the host's for x86_64 (an amd64 host), a private apt
    /// for aarch64.
    pub fn for_arch(arch: Arch) -> Source {
        match arch {
            Arch::X86_64 => Source::Host,
            Arch::Aarch64 => Source::Private(Apt::new(apt::deb_arch(arch))),
        }
    }

    fn command(&self, tool: &str) -> Result<Command> {
        Ok(match self {
            Source::Host => Command::new(tool),
            Source::Private(apt) => {
                apt.update()?;
                apt.apt(tool)
            }
        })
    }

    /// `apt-get download PACKAGE` into `dir`, once (a second call finds the .deb there).
    pub fn download(&self, package: &str, dir: &Path) -> Result<PathBuf> {
        if let Some(deb) = apt::find_deb(dir, package) {
            return Ok(deb);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        match self {
            Source::Host => apt::download(dir, package),
            Source::Private(apt) => apt.download(package, dir),
        }
    }

    /// The direct `Depends`/`PreDepends` of each package (the first of alternatives; virtual
    /// names in `<>` left out), from the package lists.
    pub fn depends(&self, packages: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
        let out = self
            .command("apt-cache")?
            .arg("depends")
            .args(packages)
            .output()
            .context("cannot run apt-cache (not a Debian/Ubuntu host?)")?;
        if !out.status.success() {
            bail!(
                "apt-cache depends {} failed: {} (run `apt-get update`?)",
                packages.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(parse_depends(&String::from_utf8_lossy(&out.stdout)))
    }

    /// `package` and the `lib*` packages it depends on, recursively: the packages that can
    /// hold its shared libraries. One `apt-cache` call per level of the tree.
    pub fn library_packages(&self, package: &str) -> Result<Vec<String>> {
        let mut all: BTreeSet<String> = BTreeSet::from([package.to_string()]);
        let mut level = vec![package.to_string()];
        while !level.is_empty() {
            let deps = self.depends(&level)?;
            if let Some(missing) = level.iter().find(|p| !deps.contains_key(*p)) {
                bail!("apt knows no package {missing}: run `apt-get update`?");
            }
            level = deps
                .into_values()
                .flatten()
                .filter(|d| d.starts_with("lib") && all.insert(d.clone()))
                .collect();
            level.sort();
            level.dedup();
        }
        Ok(all.into_iter().collect())
    }
}

/// `apt-cache depends` output → package → its first-choice Depends/PreDepends.
fn parse_depends(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut alternative = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            let name = line.trim().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            alternative = false;
            continue;
        }
        let trimmed = line.trim_start();
        // `|Depends: a` is followed by its alternatives: take the first only
        let (is_alt, rest) = match trimmed.strip_prefix('|') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let dep = rest
            .strip_prefix("Depends:")
            .or_else(|| rest.strip_prefix("PreDepends:"))
            .map(str::trim);
        if let (Some(dep), Some(pkg)) = (dep, &current) {
            if !alternative && !dep.starts_with('<') {
                out.entry(pkg.clone()).or_default().push(dep.to_string());
            }
        }
        if dep.is_some() || rest.contains(':') {
            alternative = is_alt;
        }
    }
    out
}

/// Unpacks the files of a `.deb`'s data for which `keep` (given the path without `./`) says
/// yes into `dest`, as `dpkg-deb -x` does: an `ar` archive (read with `object`) holding
/// `data.tar.{xz,zst,gz}`, decompressed as a stream and unpacked with `tar`. `usr/share` (docs,
/// bug scripts, lintian overrides) is never unpacked.
pub fn unpack(deb: &Path, dest: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<()> {
    let bytes = std::fs::read(deb).with_context(|| format!("cannot read {}", deb.display()))?;
    let archive = object::read::archive::ArchiveFile::parse(&*bytes)
        .with_context(|| format!("{} is not a .deb (ar archive)", deb.display()))?;
    let mut data = None;
    for member in archive.members() {
        let member = member?;
        let name = String::from_utf8_lossy(member.name()).to_string();
        if name.starts_with("data.tar") {
            data = Some((Compression::split(&name).1, member.data(&*bytes)?));
        }
    }
    let (kind, data) = data.with_context(|| format!("no data.tar.* in {}", deb.display()))?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut archive = tar::Archive::new(kind.reader(data)?);
    archive.set_preserve_mtime(true);
    for entry in archive
        .entries()
        .with_context(|| format!("cannot read the data of {}", deb.display()))?
    {
        let mut entry = entry.with_context(|| format!("bad data in {}", deb.display()))?;
        let path = entry.path()?.to_path_buf();
        let path = path.strip_prefix(".").unwrap_or(&path).to_path_buf();
        if path.starts_with("usr/share") || !keep(&path) {
            continue;
        }
        entry
            .unpack_in(dest)
            .with_context(|| format!("cannot unpack {} from {}", path.display(), deb.display()))?;
    }
    Ok(())
}

/// `packages` downloaded into `debs` and all unpacked into `root` (done once: a file beside
/// `root`, `<root>.packages`, lists the .debs it holds).
pub fn unpacked_root(
    apt: &Source,
    packages: &[String],
    debs: &Path,
    root: &Path,
) -> Result<PathBuf> {
    let stamp = root.with_extension("packages");
    let mut files = Vec::new();
    for package in packages {
        files.push(apt.download(package, debs)?);
    }
    let names: String = files
        .iter()
        .filter_map(|d| d.file_name().map(|n| format!("{}\n", n.to_string_lossy())))
        .collect();
    if root.is_dir() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == names) {
        return Ok(root.to_path_buf());
    }
    let _ = std::fs::remove_dir_all(root);
    for deb in &files {
        unpack(deb, root, &|_| true)?;
    }
    std::fs::write(&stamp, names).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(root.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_output_parses() {
        let text = "\
wpasupplicant
  Depends: libc6
  Depends: libdbus-1-3
 |Depends: libsystemd0
  Depends: libelogind0
  Depends: <libfoo>
  PreDepends: init-system-helpers
  Breaks: network-manager
  Suggests: wpagui
libc6
  Depends: libgcc-s1
  Recommends: libidn2-0
";
        let deps = parse_depends(text);
        assert_eq!(
            deps["wpasupplicant"],
            ["libc6", "libdbus-1-3", "libsystemd0", "init-system-helpers"]
        );
        assert_eq!(deps["libc6"], ["libgcc-s1"]);
    }
}
