//! The box checked before it goes on a card or a disk, with the init's own check
//! (`boxinit::supervision::runnable::check_contents`): an ELF for the board's architecture,
//! static or with its loader in the initramfs, or a `#!` script whose interpreter is in the
//! initramfs and passes the same check. Refused with the words boxinit would log at boot,
//! where on a real Pi only a serial cable shows them. What the box may do once it runs is not
//! checked here (permissions and users are the card's `init.toml`'s, checked at boot).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use boxinit::supervision::runnable;

use crate::tools::arch::Arch;
use crate::tools::compression::Compression;

/// Where the box is on the card as boxinit sees it: the name its messages give.
pub const BOX_AT_BOOT: &str = "/boot/box";

/// How far a program's first bytes are read: the init reads 64 KiB (the ELF header, its
/// program headers and the loader's name are there in any program a linker wrote).
const START: usize = 64 * 1024;

/// The files of an initramfs by path (no leading `/`): a file's bytes or a link's target.
pub struct Contents {
    entries: HashMap<String, Member>,
}

enum Member {
    File(Vec<u8>),
    Link(String),
    Other,
}

impl Contents {
    /// The members of the gzip-compressed newc archive `path` (xtask's initramfs).
    pub fn read(path: &Path) -> Result<Contents> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let archive = Compression::Gzip
            .decompress(bytes)
            .with_context(|| format!("cannot inflate {}", path.display()))?;
        let entries = crate::tools::cpio::read_archive(&archive)
            .with_context(|| format!("cannot read the archive {}", path.display()))?;
        Ok(Contents::of(entries))
    }

    fn of(entries: Vec<crate::tools::cpio::Entry>) -> Contents {
        const S_IFREG: u32 = 0o100000;
        const S_IFLNK: u32 = 0o120000;
        let entries = entries
            .into_iter()
            .map(|e| {
                let member = match e.file_type() {
                    S_IFREG => Member::File(e.data),
                    S_IFLNK => Member::Link(String::from_utf8_lossy(&e.data).into_owned()),
                    _ => Member::Other,
                };
                (normal(&e.name), member)
            })
            .collect();
        Contents { entries }
    }

    /// The start of the regular file at `path`, links followed (at most 8, as a loop ends);
    /// None when there is none.
    fn file(&self, path: &str) -> Option<&[u8]> {
        let mut at = normal(path);
        for _ in 0..8 {
            match self.entries.get(&at)? {
                Member::File(data) => return Some(data.get(..START).unwrap_or(data)),
                Member::Link(target) if target.starts_with('/') => at = normal(target),
                Member::Link(target) => {
                    let dir = at.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    at = normal(&format!("{dir}/{target}"));
                }
                Member::Other => return None,
            }
        }
        None
    }
}

/// A path inside the archive as a key: no leading `/` or `./`, `.` and `..` resolved.
fn normal(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The ELF machine number of `arch`'s programs.
pub fn machine_of(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => boxinit::elf::MACHINE_X86_64,
        Arch::Aarch64 => boxinit::elf::MACHINE_AARCH64,
    }
}

/// Checks the program `box_path` as boxinit will check it as `/boot/box` on an `arch`
/// machine booted with `initramfs` (its loader or script interpreter must be there); with no
/// initramfs, only what the file alone says (the architecture, a script names an interpreter).
/// The error is boxinit's own message.
pub fn check(box_path: &Path, arch: Arch, initramfs: Option<&Contents>) -> Result<()> {
    let bytes = read_start(box_path)?;
    let why = match initramfs {
        None => runnable::check_contents(BOX_AT_BOOT, &bytes, machine_of(arch), &|_| true, true)
            .map(|_| ()),
        Some(contents) => check_in(BOX_AT_BOOT, &bytes, arch, contents),
    };
    if let Err(why) = why {
        bail!(
            "{} cannot be the box: {why}\n  (boxinit would refuse it at boot with `cannot start \
             box {BOX_AT_BOOT}: ...: {why}`, on a Pi where only a serial cable shows it)",
            box_path.display()
        );
    }
    Ok(())
}

/// `image`'s check: the box against the initramfs the disk boots with (`--initramfs`), or,
/// none given, against what `cargo xtask initramfs` packs, which has no loader and no shell:
/// a dynamically linked box or a `#!/bin/sh` script is refused then, as boxinit would refuse
/// it at boot, with the way to name another initramfs.
pub fn check_for_image(box_path: &Path, arch: Arch, initramfs: Option<&Path>) -> Result<()> {
    match initramfs {
        Some(path) => check(box_path, arch, Some(&Contents::read(path)?)),
        None => check(box_path, arch, Some(&Contents::of(Vec::new()))).map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\n  (checked against the initramfs `cargo xtask initramfs` makes, which has \
                 no loader and no shell; booting with another? name it: --initramfs FILE)"
            )
        }),
    }
}

/// [`runnable::check_contents`] against the initramfs: the loader and a script's
/// interpreter looked for there; an interpreter on the card itself (`/boot/...`) is not
/// checked.
fn check_in(shown: &str, bytes: &[u8], arch: Arch, contents: &Contents) -> Result<(), String> {
    let exists = |path: &str| contents.file(path).is_some();
    let Some(interpreter) =
        runnable::check_contents(shown, bytes, machine_of(arch), &exists, true)?
    else {
        return Ok(());
    };
    if interpreter.starts_with(&format!("{}/", boxinit_boot())) {
        return Ok(());
    }
    let Some(its) = contents.file(&interpreter) else {
        return Err(runnable::script_error(
            shown,
            &interpreter,
            &runnable::missing_error(&interpreter),
        ));
    };
    runnable::check_contents(&interpreter, its, machine_of(arch), &exists, false)
        .map(|_| ())
        .map_err(|why| runnable::script_error(shown, &interpreter, &why))
}

/// Where boxinit mounts the boot partition.
fn boxinit_boot() -> &'static str {
    BOX_AT_BOOT.trim_end_matches("/box")
}

fn read_start(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let mut start = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(START as u64).read_to_end(&mut start))
        .with_context(|| format!("cannot read the box {}", path.display()))?;
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::cpio::Entry;
    use boxinit::elf::minimal as elf;

    fn entry(name: &str, mode: u32, data: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            ino: 1,
            mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            rdev: (0, 0),
            data: data.to_vec(),
        }
    }

    #[test]
    fn the_box_is_checked_with_the_inits_words() {
        let arm = elf(183, None);
        let contents = Contents::of(vec![
            entry("init", 0o100755, &arm),
            entry("bin/busybox", 0o100755, &arm),
            entry("/bin/sh", 0o120777, b"busybox"),
            entry("lib/ld-linux-aarch64.so.1", 0o100755, &arm),
            entry("bin/x86", 0o100755, &elf(62, None)),
        ]);
        let check = |bytes: &[u8], with: Option<&Contents>| {
            let dir = std::env::temp_dir().join(format!("xtask-box-check-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("box");
            std::fs::write(&path, bytes).unwrap();
            let result = check(&path, Arch::Aarch64, with).map_err(|e| format!("{e:#}"));
            std::fs::remove_dir_all(&dir).unwrap();
            result
        };
        let c = Some(&contents);
        // (the box's bytes, what the error says; empty: accepted)
        let table: &[(Vec<u8>, &str)] = &[
            (arm.clone(), ""),
            (elf(183, Some("/lib/ld-linux-aarch64.so.1")), ""),
            (b"#!/bin/sh\necho hi\n".to_vec(), ""),
            (b"#!/boot/tool\n".to_vec(), ""),
            (
                elf(62, None),
                "/boot/box is a program for x86_64 (64-bit), this machine runs aarch64: build it for aarch64",
            ),
            (
                elf(183, Some("/lib64/ld-linux-x86-64.so.2")),
                "/boot/box is dynamically linked and needs /lib64/ld-linux-x86-64.so.2, which is not in the initramfs",
            ),
            (
                b"#!/bin/bash\n".to_vec(),
                "/boot/box is a script for /bin/bash, which cannot run: /bin/bash does not exist",
            ),
            (
                b"#!/bin/x86\n".to_vec(),
                "/boot/box is a script for /bin/x86, which cannot run: /bin/x86 is a program for x86_64",
            ),
            (b"#!\n".to_vec(), "starts with #! but names no interpreter"),
            (b"hello\n".to_vec(), "is neither a program (ELF) nor a #! script"),
        ];
        for (bytes, want) in table {
            match check(bytes, c) {
                Ok(()) => assert!(want.is_empty(), "accepted, wanted {want}"),
                Err(e) => {
                    assert!(!want.is_empty() && e.contains(want), "{e}\nwanted: {want}");
                    assert!(e.contains("cannot start box /boot/box"), "{e}");
                }
            }
        }
        // without the initramfs: the architecture only
        assert!(check(&elf(62, None), None).is_err());
        assert!(check(&elf(183, Some("/lib/none")), None).is_ok());
        // the host's /bin/ls, dynamically linked x86_64, on a Pi's card: refused
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(check(&ls, c).unwrap_err().contains("x86_64"));
    }

    #[test]
    fn image_checks_the_loader_against_the_initramfs_it_boots_with() {
        let dir = std::env::temp_dir().join(format!("xtask-image-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (box_path, initramfs) = (dir.join("box"), dir.join("initramfs.cpio.gz"));
        std::fs::write(&box_path, elf(62, Some("/lib/ld-musl-x86_64.so.1"))).unwrap();
        // none named: xtask's initramfs has no loader, so boxinit would refuse the box
        let e = format!(
            "{:#}",
            check_for_image(&box_path, Arch::X86_64, None).unwrap_err()
        );
        assert!(e.contains("dynamically linked and needs /lib/ld-musl-x86_64.so.1, which is not in the initramfs"), "{e}");
        assert!(e.contains("--initramfs FILE"), "{e}");
        // an initramfs with the loader: accepted; without: refused with the init's words
        let pack = |with_loader: bool| {
            let mut cpio = crate::tools::cpio::Writer::new(Vec::new());
            cpio.file("init", 0o100755, &elf(62, None)).unwrap();
            if with_loader {
                cpio.file("lib/ld-musl-x86_64.so.1", 0o100755, &elf(62, None))
                    .unwrap();
            }
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &cpio.finish().unwrap()).unwrap();
            std::fs::write(&initramfs, gz.finish().unwrap()).unwrap();
        };
        pack(true);
        check_for_image(&box_path, Arch::X86_64, Some(&initramfs)).unwrap();
        pack(false);
        let e = format!(
            "{:#}",
            check_for_image(&box_path, Arch::X86_64, Some(&initramfs)).unwrap_err()
        );
        assert!(e.contains("cannot start box /boot/box"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_are_normalised() {
        for (path, want) in [
            ("/bin/sh", "bin/sh"),
            ("./init", "init"),
            ("lib/../bin//sh", "bin/sh"),
        ] {
            assert_eq!(normal(path), want);
        }
    }
}
