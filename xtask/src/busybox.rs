//! Debian's `busybox-static`: a static shell and tools for the guest, fetched once with
//! `apt-get download` into `target/busybox/` and unpacked in pure Rust. The boxinit init does
//! not need it; the benchmark's busybox-script variant and the shell scenarios do.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::arch::Arch;
use crate::kernel::{download, find_deb, unpack_deb};
use crate::{progress, target_dir};

const PACKAGE: &str = "busybox-static";

/// The path of a static busybox binary for `arch` (x86_64 only: the host's apt architecture).
pub fn fetch(arch: Arch) -> Result<PathBuf> {
    if arch != Arch::X86_64 {
        bail!(
            "busybox for {} is not fetched yet: only x86_64",
            arch.name()
        );
    }
    let dir = target_dir().join("busybox").join(arch.name());
    let binary = dir.join("root/bin/busybox");
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let deb = match find_deb(&dir, PACKAGE) {
        Some(deb) => deb,
        None => download(&dir, PACKAGE)?,
    };
    progress!("unpacking {}", deb.display());
    unpack_deb(&deb, &dir.join("root"))?;
    if !binary.is_file() {
        bail!("{} holds no bin/busybox", deb.display());
    }
    Ok(binary)
}
