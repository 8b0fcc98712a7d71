//! Debian packages for the initramfs: fetched with `apt-get download` (the host's apt, or
//! `apt.rs`'s private one for another architecture or component), unpacked
//! in pure Rust, and a dynamically linked program's shared-library closure read from its ELF
//! headers (`PT_INTERP`, `DT_NEEDED`) with `object` — no `ldd`, no `dpkg`, no chroot, so the
//! answer is the same for an arm64 program on an amd64 host. What to pack and when is the
//! callers' choice (`wifi.rs`, `initramfs.rs`); this file does not know any program.
//!
//! Which packages hold the libraries: `apt-cache depends` of the program's package, followed
//! through the `lib*` packages only (the shared libraries; `adduser` or `debconf` are install
//! time tools). The closure walk then checks the result: every `DT_NEEDED` must be found in
//! the unpacked packages' library directories, else a clear error names it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::Endianness;

use crate::arch::Arch;
use crate::compression::Compression;
use crate::kernel::find_deb;

/// Debian's name of an architecture: `amd64`, `arm64`.
pub fn deb_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
    }
}

/// The multiarch triple of Debian's library directories: `lib/x86_64-linux-gnu`.
pub fn multiarch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Aarch64 => "aarch64-linux-gnu",
    }
}

/// Where packages come from: the host's apt (its own architecture and lists), or a private
/// apt (`apt.rs`: another architecture, `non-free-firmware`).
#[derive(Clone, Debug)]
pub enum Source {
    /// `/etc/apt` as configured
    Host,
    /// a private sources list under `target/apt/<arch>/`
    Private(crate::apt::Apt),
}

impl Source {
    /// The source for `arch`'s packages: the host's for x86_64 (an amd64 host), a private apt
    /// for aarch64.
    pub fn for_arch(arch: Arch) -> Source {
        match arch {
            Arch::X86_64 => Source::Host,
            Arch::Aarch64 => Source::Private(crate::apt::Apt::new(deb_arch(arch))),
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
        if let Some(deb) = find_deb(dir, package) {
            return Ok(deb);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        match self {
            Source::Host => crate::kernel::download(dir, package),
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

/// What an ELF file asks of the dynamic linker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfDeps {
    /// `PT_INTERP`: the dynamic linker's absolute path; None for a static binary or a library
    pub interpreter: Option<String>,
    /// `DT_NEEDED` sonames, in order
    pub needed: Vec<String>,
}

/// Reads `PT_INTERP` and `DT_NEEDED` of a 64-bit ELF file (either byte order).
pub fn elf_deps(data: &[u8]) -> Result<ElfDeps> {
    let file = ElfFile64::<Endianness>::parse(data).context("not a 64-bit ELF file")?;
    let endian = file.endian();
    let mut deps = ElfDeps::default();
    for header in file.elf_program_headers() {
        if let Some(interp) = header.interpreter(endian, data)? {
            deps.interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
    }
    let dynamic = file.elf_section_table().dynamic_table(endian, data)?;
    for entry in &dynamic {
        if entry.tag == elf::DT_NEEDED {
            let name = dynamic.string(entry)?;
            deps.needed.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok(deps)
}

/// One path of a closure, as it goes into the initramfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// a regular file: its source under the unpacked root, and its mode
    File(PathBuf, u32),
    /// a symbolic link and its target, as the package has it
    Symlink(String),
}

/// A program, its dynamic linker and shared libraries: initramfs path (no leading `/`) →
/// what goes there. Links stay links (a soname link and the file it names, as in the
/// package), so nothing is packed twice.
pub type Closure = BTreeMap<String, Entry>;

/// The closure of `program` (a path inside `root`, e.g. `sbin/wpa_supplicant`): the program,
/// its `PT_INTERP` and every `DT_NEEDED` library, recursively, looked up as the dynamic
/// linker would on a Debian system of `arch` (the multiarch directories, then `lib` and
/// `usr/lib`). A library that cannot be found is an error naming it and who needs it.
/// `RUNPATH` is not followed: Debian's packaged libraries do not use it.
pub fn closure(root: &Path, program: &str, arch: Arch) -> Result<Closure> {
    let triple = multiarch(arch);
    let search: Vec<String> = [
        format!("lib/{triple}"),
        format!("usr/lib/{triple}"),
        "lib".into(),
        "usr/lib".into(),
    ]
    .into();
    let mut out = Closure::new();
    let mut queue = vec![(program.trim_start_matches('/').to_string(), String::new())];
    let mut seen = BTreeSet::new();
    while let Some((path, needed_by)) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let file = add_file(root, &path, &mut out).with_context(|| match needed_by.as_str() {
            "" => format!("{path} is not in {}", root.display()),
            by => format!("{path}, needed by {by}"),
        })?;
        let data =
            std::fs::read(root.join(&file)).with_context(|| format!("cannot read {file}"))?;
        let deps = elf_deps(&data).with_context(|| format!("{file} in {}", root.display()))?;
        if let Some(interp) = deps.interpreter {
            queue.push((interp.trim_start_matches('/').to_string(), file.clone()));
        }
        for soname in deps.needed {
            let found = search
                .iter()
                .map(|dir| format!("{dir}/{soname}"))
                .find(|p| resolve(root, p).is_some());
            match found {
                Some(lib) => queue.push((lib, file.clone())),
                None => bail!(
                    "{soname}, needed by {file}, is in none of {} under {}: add the package \
                     that ships it",
                    search.join(", "),
                    root.display()
                ),
            }
        }
    }
    Ok(out)
}

/// Adds `path` (inside `root`) to `out`, as a link (and its target, recursively) or a file;
/// returns the path of the regular file it finally names.
pub fn add_file(root: &Path, path: &str, out: &mut Closure) -> Result<String> {
    let mut path = path.to_string();
    for _ in 0..16 {
        // directories on the way may be links themselves (a merged-/usr root: lib → usr/lib)
        let real = resolve(root, &path).context("no such file")?;
        let meta = std::fs::symlink_metadata(root.join(&real))
            .with_context(|| format!("cannot stat {real}"))?;
        if real != path {
            out.insert(path.clone(), Entry::Symlink(format!("/{real}")));
        }
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(root.join(&real))?;
            let next = join_link(&real, &target);
            out.insert(real, Entry::Symlink(target.display().to_string()));
            path = next;
            continue;
        }
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o7777
        };
        #[cfg(not(unix))]
        let mode = 0o755;
        out.insert(real.clone(), Entry::File(root.join(&real), mode));
        return Ok(real);
    }
    bail!("too many levels of symbolic links at {path}")
}

/// The path a link at `link` (relative to the root) with `target` points to, relative to the
/// root, `..` resolved lexically.
fn join_link(link: &str, target: &Path) -> String {
    let base = if target.is_absolute() {
        PathBuf::new()
    } else {
        Path::new(link)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf()
    };
    normalize(&base.join(target))
}

/// `a/./b/../c` → `a/c`, without the leading `/`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

/// `path` inside `root` with every directory link on the way followed inside the root
/// (not the last component); None when it does not exist.
fn resolve(root: &Path, path: &str) -> Option<String> {
    let mut done = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut hops = 0;
    let mut pending: std::collections::VecDeque<String> =
        parts.iter().map(|p| p.to_string()).collect();
    while let Some(part) = pending.pop_front() {
        let next = match done.as_str() {
            "" => part.clone(),
            d => format!("{d}/{part}"),
        };
        let meta = std::fs::symlink_metadata(root.join(&next)).ok()?;
        if meta.file_type().is_symlink() && !pending.is_empty() {
            hops += 1;
            if hops > 16 {
                return None;
            }
            let target = std::fs::read_link(root.join(&next)).ok()?;
            let joined = join_link(&next, &target);
            let mut rest: std::collections::VecDeque<String> =
                joined.split('/').map(str::to_string).collect();
            rest.extend(pending.drain(..));
            pending = rest;
            done.clear();
            continue;
        }
        done = next;
    }
    (!done.is_empty()).then_some(done)
}

/// Total bytes of the regular files of a closure.
pub fn closure_size(closure: &Closure) -> u64 {
    closure
        .values()
        .filter_map(|e| match e {
            Entry::File(path, _) => std::fs::metadata(path).ok().map(|m| m.len()),
            Entry::Symlink(_) => None,
        })
        .sum()
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

    #[test]
    fn paths_resolve_through_links_inside_the_root() {
        let dir = crate::image::tests::temp_dir("debpkg-links");
        std::fs::create_dir_all(dir.join("usr/lib/x")).unwrap();
        std::os::unix::fs::symlink("usr/lib", dir.join("lib")).unwrap();
        std::fs::write(dir.join("usr/lib/x/libz.so.1.2"), b"z").unwrap();
        std::os::unix::fs::symlink("libz.so.1.2", dir.join("usr/lib/x/libz.so.1")).unwrap();
        assert_eq!(
            resolve(&dir, "lib/x/libz.so.1").as_deref(),
            Some("usr/lib/x/libz.so.1")
        );
        assert_eq!(resolve(&dir, "lib/x/nothing"), None);
        let mut out = Closure::new();
        let file = add_file(&dir, "lib/x/libz.so.1", &mut out).unwrap();
        assert_eq!(file, "usr/lib/x/libz.so.1.2");
        assert_eq!(
            out["lib/x/libz.so.1"],
            Entry::Symlink("/usr/lib/x/libz.so.1".into())
        );
        assert_eq!(
            out["usr/lib/x/libz.so.1"],
            Entry::Symlink("libz.so.1.2".into())
        );
        assert!(matches!(out["usr/lib/x/libz.so.1.2"], Entry::File(..)));
        assert_eq!(join_link("a/b/c", Path::new("../d")), "a/d");
        assert_eq!(join_link("a/b/c", Path::new("/e/f")), "e/f");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The host's own `/bin/sh` (dash or bash, dynamically linked on Debian): a real ELF.
    fn host_program() -> &'static str {
        "bin/sh"
    }

    #[test]
    fn real_elf_interpreter_and_needed() {
        let bytes = std::fs::read(Path::new("/").join(host_program())).unwrap();
        let deps = elf_deps(&bytes).unwrap();
        assert_eq!(
            deps.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(deps.needed.iter().any(|n| n == "libc.so.6"), "{deps:?}");
        // glibc's libc.so.6 runs as a program too (it has an interpreter) and needs the linker
        let libc = elf_deps(&std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap()).unwrap();
        assert!(
            libc.needed.iter().any(|n| n == "ld-linux-x86-64.so.2"),
            "{libc:?}"
        );
        assert!(elf_deps(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn closure_of_a_real_program_on_the_host() {
        // the host root is a merged-/usr Debian: /lib is a link to usr/lib
        let closure = closure(Path::new("/"), host_program(), Arch::X86_64).unwrap();
        let file = |p: &str| matches!(closure.get(p), Some(Entry::File(..)));
        assert!(
            closure.contains_key("lib64/ld-linux-x86-64.so.2"),
            "{closure:#?}"
        );
        assert!(
            file("usr/lib/x86_64-linux-gnu/libc.so.6") || file("lib/x86_64-linux-gnu/libc.so.6"),
            "{closure:#?}"
        );
        // every link ends at a file of the closure
        for (path, entry) in &closure {
            if let Entry::Symlink(target) = entry {
                let to = join_link(path, Path::new(target));
                assert!(
                    closure.contains_key(&to),
                    "{path} -> {target}: {closure:#?}"
                );
            }
        }
        assert!(closure_size(&closure) > 1_000_000);
    }

    #[test]
    fn a_missing_library_is_named() {
        // a fake root with the host's real /bin/sh and linker, but no libc
        let dir = crate::image::tests::temp_dir("debpkg-missing");
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("lib64")).unwrap();
        std::fs::copy(Path::new("/").join(host_program()), dir.join("bin/sh")).unwrap();
        std::fs::copy(
            "/lib64/ld-linux-x86-64.so.2",
            dir.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        let err = closure(&dir, "bin/sh", Arch::X86_64).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("libc.so.6, needed by bin/sh"), "{text}");
        assert!(text.contains("lib/x86_64-linux-gnu"), "{text}");
        let err = closure(&dir, "sbin/nothing", Arch::X86_64).unwrap_err();
        assert!(
            format!("{err:#}").contains("sbin/nothing is not in"),
            "{err:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
