//! A dynamically linked program's closure: the program, its dynamic linker and its shared
//! libraries, found in an unpacked root as the dynamic linker would find them, read from the
//! ELF headers (`PT_INTERP`, `DT_NEEDED`: `tools/elf.rs`) — no `ldd`, no chroot, so the answer
//! is the same for an arm64 program on an amd64 host. Every `DT_NEEDED` must be found in the
//! root's library directories, else a clear error names it; every ELF file must be for the
//! architecture asked for (`e_machine`), else an error names the file and both machines.
//! Libraries a program loads with `dlopen` (no `DT_NEEDED` names them) are given by the
//! caller (`closure_with`). Fetching and unpacking the
//! packages is `fetch/deb.rs`'s; what to pack and when is the callers' choice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::tools::arch::Arch;
use crate::tools::elf::elf_deps;

/// The multiarch triple of Debian's library directories: `lib/x86_64-linux-gnu`.
pub fn multiarch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Aarch64 => "aarch64-linux-gnu",
    }
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
    closure_with(root, program, &[], arch)
}

/// [`closure`], with `loaded` too (paths inside `root`): the files `program` opens with
/// `dlopen`, which no `DT_NEEDED` names (OpenSSL's providers), with their own libraries.
pub fn closure_with(root: &Path, program: &str, loaded: &[String], arch: Arch) -> Result<Closure> {
    let triple = multiarch(arch);
    let search: Vec<String> = [
        format!("lib/{triple}"),
        format!("usr/lib/{triple}"),
        "lib".into(),
        "usr/lib".into(),
    ]
    .into();
    let mut out = Closure::new();
    let mut queue: Vec<(String, String)> = loaded
        .iter()
        .map(|p| {
            (
                p.trim_start_matches('/').to_string(),
                format!("{program} (dlopen)"),
            )
        })
        .collect();
    queue.push((program.trim_start_matches('/').to_string(), String::new()));
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
        // a package fetched for another architecture (a host apt that is not amd64, a
        // mirror's mistake) would be packed and fail only at run time, as "not found"
        let machine = boxinit::elf::header(&data).map_or(0, |h| h.machine);
        if machine != arch.elf_machine() {
            bail!(
                "{file} in {} is for ELF machine {machine}, not {arch} ({}): its package was \
                 fetched for another architecture",
                root.display(),
                arch.elf_machine()
            );
        }
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
    fn paths_resolve_through_links_inside_the_root() {
        let dir = crate::tools::testing::temp_dir("debpkg-links");
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

    /// Issue 17: a program for another machine is refused by name, and a `dlopen`ed file
    /// comes with its own libraries.
    #[test]
    fn machines_are_checked_and_loaded_files_packed() {
        let e = closure(Path::new("/"), host_program(), Arch::Aarch64).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("is for ELF machine 62, not aarch64 (183)"),
            "{e}"
        );
        // the host's libz as if a program dlopened it: it and libc come along
        let libz = [
            "usr/lib/x86_64-linux-gnu/libz.so.1",
            "lib/x86_64-linux-gnu/libz.so.1",
        ]
        .into_iter()
        .find(|p| Path::new("/").join(p).exists())
        .expect("the host has libz (Debian's zlib1g)");
        let with = closure_with(
            Path::new("/"),
            host_program(),
            &[libz.to_string()],
            Arch::X86_64,
        )
        .unwrap();
        let without = closure(Path::new("/"), host_program(), Arch::X86_64).unwrap();
        assert!(
            with.contains_key(libz) && !without.contains_key(libz),
            "{with:#?}"
        );
        let missing = closure_with(
            Path::new("/"),
            host_program(),
            &["usr/lib/no-such-provider.so".to_string()],
            Arch::X86_64,
        )
        .unwrap_err();
        assert!(
            format!("{missing:#}")
                .contains("usr/lib/no-such-provider.so, needed by bin/sh (dlopen)"),
            "{missing:#}"
        );
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
        let dir = crate::tools::testing::temp_dir("debpkg-missing");
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
